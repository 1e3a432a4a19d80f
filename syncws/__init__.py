"""syncws: a synchronous, thread-based WebSocket server and client (RFC 6455, RFC 7692).

The blocking API lives at the top level::

    import syncws

    with syncws.connect("ws://localhost:8765") as websocket:
        websocket.send("Hello")
        print(websocket.recv())
"""

from __future__ import annotations

from .auth import basic_auth
from .client import ClientConnection, connect, unix_connect
from .connection import Connection, broadcast
from .core.frames import CloseCode
from .core.headers import Headers
from .core.http11 import Request, Response
from .core.protocol import State
from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidOrigin,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    SecurityError,
    SocksProxyError,
    WebSocketException,
)
from .keepalive import PingWaiter
from .server import Server, ServerConnection, serve, unix_serve
from .version import __version__

__all__ = [
    "ClientConnection",
    "CloseCode",
    "ConcurrencyError",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Headers",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "NegotiationError",
    "PayloadTooBig",
    "PingWaiter",
    "ProtocolError",
    "ProxyError",
    "SocksProxyError",
    "Request",
    "Response",
    "SecurityError",
    "Server",
    "ServerConnection",
    "State",
    "WebSocketException",
    "__version__",
    "basic_auth",
    "broadcast",
    "connect",
    "serve",
    "unix_connect",
    "unix_serve",
]
