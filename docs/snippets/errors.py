"""Telling the ways a conversation can end apart."""

import syncws


def ask(uri: str, question: str) -> str:
    try:
        websocket = syncws.connect(uri, open_timeout=5)
    except syncws.InvalidStatus as exc:
        # The server answered the handshake with an HTTP error: 403, 404, 503...
        response = exc.response
        return f"rejected with HTTP {response.status_code}: {response.body.decode()!r}"
    except TimeoutError:
        return "no answer to the opening handshake within 5 seconds"
    except OSError as exc:
        # Refused, unreachable, or the TLS handshake failed (ssl.SSLError is an OSError).
        return f"cannot connect: {exc}"
    with websocket:
        try:
            websocket.send(question)
            return f"answer: {websocket.recv(timeout=10)!r}"
        except TimeoutError:
            return "no answer within 10 seconds"
        except syncws.ConnectionClosedOK as exc:
            # The server closed normally (1000 or 1001) before answering.
            return f"closed by the server: {exc.code} {exc.reason!r}"
        except syncws.ConnectionClosedError as exc:
            # Any other close code, or the TCP connection broke (1006).
            return f"connection lost: {exc.code} {exc.reason!r}"
