"""The sans-I/O core: the WebSocket protocol as bytes in, events out, with no I/O at all.

Nothing in this package touches a socket, a thread or a clock: it never imports ``socket``,
``ssl``, ``select``, ``selectors``, ``threading``, ``queue``, ``concurrent`` or ``time``, and
imports nothing from syncws but its own modules and :mod:`syncws.exceptions`
(``tests/test_layering.py`` checks this). The thread-based I/O layer around it
(:mod:`syncws.connection`, :mod:`syncws.client`, :mod:`syncws.server`...) feeds it the bytes it
reads and writes the bytes it is given.

Modules:

- :mod:`~syncws.core.frames`: opcodes, close codes, frame parsing and serialization, masking;
- :mod:`~syncws.core.streams`: the buffer that the parsers read from;
- :mod:`~syncws.core.http11`: the HTTP/1.1 request and response of the opening handshake;
- :mod:`~syncws.core.headers`: header values (tokens, extensions, subprotocols, credentials);
- :mod:`~syncws.core.uri`: ``ws://`` and ``wss://`` URIs;
- :mod:`~syncws.core.proxy`: proxy URLs and the environment variables that choose a proxy;
- :mod:`~syncws.core.protocol`: the framing state machine;
- :mod:`~syncws.core.client_protocol` and :mod:`~syncws.core.server_protocol`: the two sides
  of the opening handshake;
- :mod:`~syncws.core.extensions`: permessage-deflate (RFC 7692).

The names most programs need are importable from here::

    from syncws.core import Frame, Opcode, Protocol, Side
"""

from __future__ import annotations

from .client_protocol import ClientProtocol
from .frames import Close, CloseCode, Frame, Opcode
from .headers import Headers
from .http11 import Request, Response
from .protocol import Event, Protocol, Side, State
from .server_protocol import ServerProtocol
from .uri import WebSocketURI, parse_uri

__all__ = [
    "ClientProtocol",
    "Close",
    "CloseCode",
    "Event",
    "Frame",
    "Headers",
    "Opcode",
    "Protocol",
    "Request",
    "Response",
    "ServerProtocol",
    "Side",
    "State",
    "WebSocketURI",
    "parse_uri",
]
