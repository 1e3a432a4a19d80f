"""A client that reconnects by itself, with exponential backoff.

``syncws.connect(uri, reconnect=True)`` is an iterator: it yields an open connection, and
when that connection ends, or an attempt fails for a reason that may go away (the server is
restarting, refuses connections or answers 503), it waits and connects again. The waits
are random, up to a ceiling that doubles after each failure (from 1 to 60 seconds by
default), so that clients do not all come back at once. Errors that would happen again,
such as a 403 or a certificate that does not verify, are raised. Run::

    python examples/faq/reconnect_client.py [port]

against a server that sends messages, e.g. ``show_time.py``; stop and restart the server
to see the client reconnect. Stop the client with Ctrl-C.
"""

import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765


def main(port: int = PORT) -> None:
    for websocket in syncws.connect(f"ws://{HOST}:{port}/", reconnect=True):
        print("Connected")
        try:
            for message in websocket:
                print(message)
        except syncws.ConnectionClosed:
            # The connection broke (no closing handshake): the loop connects again.
            print("Connection lost")
            continue
        print(f"Connection closed with code {websocket.close_code}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
