"""Every exception that syncws raises, in one tree.

::

    WebSocketException
    ├── ConnectionClosed              the connection is closed (has .rcvd, .sent, .code, .reason)
    │   ├── ConnectionClosedOK        ... with close code 1000 or 1001 on both sides
    │   └── ConnectionClosedError     ... any other way (1006, 1002, 1011, ...)
    ├── InvalidHandshake              the opening handshake failed
    │   ├── InvalidURI                not a ws:// or wss:// URI
    │   ├── InvalidMessage            malformed HTTP (has .status, the HTTP status to answer)
    │   │   └── SecurityError         an HTTP limit was exceeded (line, header count, body)
    │   ├── InvalidStatus             the server answered with a status other than 101
    │   ├── InvalidHeader             a header is missing or wrong (has .name, .value)
    │   │   ├── InvalidHeaderFormat   ... it cannot be parsed
    │   │   ├── InvalidHeaderValue    ... it parses but has a value that is not allowed
    │   │   ├── InvalidOrigin         ... Origin is not allowed (403)
    │   │   └── InvalidUpgrade        ... Upgrade / Connection do not ask for websocket (426)
    │   ├── NegotiationError          extensions or subprotocols could not be agreed
    │   │   ├── DuplicateParameter
    │   │   ├── InvalidParameterName
    │   │   └── InvalidParameterValue
    │   ├── InvalidProxy              a proxy's URL is not usable
    │   └── ProxyError                the proxy did not open the tunnel
    │       ├── InvalidProxyMessage   ... its answer was not valid HTTP or SOCKS5
    │       ├── InvalidProxyStatus    ... an HTTP proxy refused: 407, 403, 502... (has .response)
    │       └── SocksProxyError       ... a SOCKS5 proxy refused (has .code)
    ├── ProtocolError                 the peer broke RFC 6455 / RFC 7692 (has .code, the close code)
    │   └── PayloadTooBig             a message is larger than max_size (close code 1009)
    ├── InvalidState                  the API was misused for the connection's state
    └── ConcurrencyError              two threads called recv() at the same time

Errors split two ways, as in h11: :exc:`InvalidState` and :exc:`ConcurrencyError` mean the
application misused the API; everything else means the peer (or the network) misbehaved.
Timeouts raise the builtin :exc:`TimeoutError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core.frames import Close
    from .core.http11 import Response

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DuplicateParameter",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "SecurityError",
    "SocksProxyError",
    "WebSocketException",
]


class WebSocketException(Exception):
    """Base class for every exception that syncws raises."""


class ConnectionClosed(WebSocketException):
    """Raised when using a connection that is closed.

    Attributes:
        rcvd: the Close frame received from the peer, or ``None`` if none was.
        sent: the Close frame sent to the peer, or ``None`` if none was.
        rcvd_then_sent: when both exist, whether the peer's Close came first.
    """

    def __init__(
        self,
        rcvd: Close | None,
        sent: Close | None,
        rcvd_then_sent: bool | None = None,
    ) -> None:
        self.rcvd = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.rcvd is None:
            if self.sent is None:
                return "no close frame received or sent"
            return f"sent {self.sent}; no close frame received"
        if self.sent is None:
            return f"received {self.rcvd}; no close frame sent"
        if self.rcvd_then_sent:
            return f"received {self.rcvd}; then sent {self.sent}"
        return f"sent {self.sent}; then received {self.rcvd}"

    @property
    def code(self) -> int:
        """The close code the peer sent, 1005 if its Close had none, 1006 if none came."""
        return 1006 if self.rcvd is None else self.rcvd.code

    @property
    def reason(self) -> str:
        """The close reason the peer sent, or ``""``."""
        return "" if self.rcvd is None else self.rcvd.reason


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed properly: 1000 or 1001 received and sent."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error, or without a closing handshake."""


class InvalidHandshake(WebSocketException):
    """The opening handshake failed."""


class InvalidURI(InvalidHandshake):
    """A URI is not a valid ws:// or wss:// URI."""

    def __init__(self, uri: str, msg: str) -> None:
        self.uri = uri
        self.msg = msg
        super().__init__(f"{uri!r} is not a valid WebSocket URI: {msg}")


class InvalidMessage(InvalidHandshake):
    """An HTTP request or response is malformed.

    Attributes:
        status: the HTTP status a server answers this error with.
    """

    default_status = 400

    def __init__(self, msg: str, *, status: int | None = None) -> None:
        self.status = self.default_status if status is None else status
        super().__init__(msg)


class SecurityError(InvalidMessage):
    """An HTTP message exceeds a limit: line length, header count or body size."""

    default_status = 431


class InvalidStatus(InvalidHandshake):
    """The server rejected the handshake: it did not answer 101.

    Attributes:
        response: the server's HTTP response, with its body.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(
            f"server rejected WebSocket connection: HTTP {response.status_code}"
        )


class InvalidHeader(InvalidHandshake):
    """A handshake header is missing, repeated or invalid."""

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name = name
        self.value = value
        if value is None:
            msg = f"missing {name} header"
        elif value == "":
            msg = f"empty {name} header"
        else:
            msg = f"invalid {name} header: {_shorten(value)}"
        super().__init__(msg)


class InvalidHeaderFormat(InvalidHeader):
    """A header value cannot be parsed."""

    def __init__(self, name: str, error: str, header: str, pos: int) -> None:
        self.error = error
        self.pos = pos
        super().__init__(name, f"{error} at {pos} in {_shorten(header)}")


class InvalidHeaderValue(InvalidHeader):
    """A header value parses but is not allowed."""


class InvalidOrigin(InvalidHeader):
    """The Origin header is missing or not allowed."""

    def __init__(self, origin: str | None) -> None:
        super().__init__("Origin", origin)


class InvalidUpgrade(InvalidHeader):
    """The Upgrade or Connection header does not ask for a WebSocket upgrade."""


class NegotiationError(InvalidHandshake):
    """Extensions or subprotocols could not be negotiated."""


class DuplicateParameter(NegotiationError):
    """An extension parameter appears twice."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"duplicate parameter: {name}")


class InvalidParameterName(NegotiationError):
    """An extension parameter is not known."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"invalid parameter name: {name}")


class InvalidParameterValue(NegotiationError):
    """An extension parameter has a value that is not allowed."""

    def __init__(self, name: str, value: str | None) -> None:
        self.name = name
        self.value = value
        if value is None:
            msg = f"missing value for parameter {name}"
        else:
            msg = f"invalid value for parameter {name}: {value!r}"
        super().__init__(msg)


class InvalidProxy(InvalidHandshake):
    """A proxy URL is not a valid ``http://``, ``https://``, ``socks5://`` or ``socks5h://``
    URL.

    Attributes:
        proxy: the URL, password included.
        msg: what is wrong with it.
    """

    def __init__(self, proxy: str, msg: str) -> None:
        self.proxy = proxy
        self.msg = msg
        super().__init__(f"{_redact(proxy)!r} is not a valid proxy: {msg}")


class ProxyError(InvalidHandshake):
    """The proxy did not open a tunnel to the server."""


class InvalidProxyMessage(ProxyError):
    """The proxy's answer is not valid: not an HTTP response to ``CONNECT`` from an HTTP
    proxy, not a SOCKS5 reply from a SOCKS proxy."""


class InvalidProxyStatus(ProxyError):
    """The proxy refused to open the tunnel: it answered with a status other than 2xx.

    Attributes:
        response: the proxy's response; its body holds what came with the header section.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"proxy rejected connection: HTTP {response.status_code}")

    @property
    def status_code(self) -> int:
        """The proxy's status code, e.g. 407 (Proxy Authentication Required) or 403."""
        return self.response.status_code


class SocksProxyError(ProxyError):
    """A SOCKS5 proxy refused to open the tunnel.

    Attributes:
        code: the proxy's reply code (RFC 1928 §6), e.g. 5 when the server refused the
            connection or 2 when the proxy's rules forbid it; ``None`` when the proxy
            refused the credentials, or asked for a kind of authentication syncws lacks.
    """

    def __init__(self, msg: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(msg)


class ProtocolError(WebSocketException):
    """The peer broke the WebSocket protocol.

    Attributes:
        code: the close code the connection fails with (1002 unless a subclass says otherwise,
            1007 for invalid UTF-8).
    """

    default_code = 1002

    def __init__(self, msg: str, *, code: int | None = None) -> None:
        self.code = self.default_code if code is None else code
        super().__init__(msg)


class PayloadTooBig(ProtocolError):
    """A frame or message exceeds ``max_size``; each fragment after the first counts 128 bytes
    more."""

    default_code = 1009


class InvalidState(WebSocketException):
    """An operation is not allowed in the connection's current state."""


class ConcurrencyError(WebSocketException, RuntimeError):
    """Two threads tried to receive from one connection at the same time."""


def _redact(proxy: str) -> str:
    """``proxy`` without its password, for error messages and logs."""
    scheme, sep, rest = proxy.rpartition("://")
    userinfo, at, hostport = rest.rpartition("@")
    if not at:
        return proxy
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{hostport}"


def _shorten(text: str, limit: int = 80) -> str:
    """Keep error messages readable when a peer sends a huge header."""
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...{text[-limit // 4 :]}"
