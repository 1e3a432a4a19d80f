"""The client side of the opening handshake (RFC 6455 §4.1), without any I/O.

::

    protocol = ClientProtocol(parse_uri("ws://example.com/chat"), subprotocols=[...])
    protocol.send_request(protocol.connect())   # queued; fetch with data_to_send()
    protocol.receive_data(data)                  # the server's response arrives
    protocol.events_received()                   # -> a Response, then frames
    protocol.state                               # OPEN, or handshake_exc says why not
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence

from ..exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
)
from .extensions.base import ClientExtensionFactory, Extension
from .headers import (
    Headers,
    MultipleValuesError,
    accept_key,
    build_authorization_basic,
    build_extension,
    build_host,
    build_subprotocol,
    generate_key,
    parse_all,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
    validate_subprotocols,
)
from .http11 import Request, Response
from .protocol import Protocol, Side, State
from .uri import WebSocketURI

__all__ = ["ClientProtocol"]



class ClientProtocol(Protocol):
    """The sans-I/O protocol of a WebSocket client connection.

    Args:
        uri: where to connect; its user info becomes Basic credentials.
        origin: the ``Origin`` header to send, if any.
        extensions: the extensions to offer, in order of preference.
        subprotocols: the subprotocols to offer, in order of preference.
        state: the initial state; :attr:`~syncws.core.protocol.State.OPEN` skips the handshake.
        max_size: see :class:`~syncws.core.protocol.Protocol`.
        logger: see :class:`~syncws.core.protocol.Protocol`.
    """

    # See Protocol.
    __slots__ = (
        "available_extensions",
        "available_subprotocols",
        "handshake_exc",
        "key",
        "origin",
        "request",
        "response",
        "subprotocol",
        "uri",
    )

    def __init__(
        self,
        uri: WebSocketURI,
        *,
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        state: State = State.CONNECTING,
        max_size: int | tuple[int | None, int | None] | None = 2**20,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        if subprotocols is not None:
            validate_subprotocols(subprotocols)
        self.uri = uri
        self.origin = origin
        self.available_extensions = list(extensions or ())
        self.available_subprotocols = list(subprotocols or ())
        self.key = generate_key()
        self.request: Request | None = None
        """The handshake request, once sent."""
        self.response: Response | None = None
        """The server's handshake response, once received."""
        self.subprotocol: str | None = None
        """The subprotocol agreed in the handshake, if any."""
        self.handshake_exc: Exception | None = None
        """Why the opening handshake failed, if it did."""
        super().__init__(
            Side.CLIENT,
            state=state,
            max_size=max_size,
            logger=logger,
        )

    def connect(self) -> Request:
        """Build the handshake request; it may be changed before :meth:`send_request`."""
        uri = self.uri
        pairs = [("Host", build_host(uri.host, uri.port, uri.secure))]
        user_info = uri.user_info
        if user_info is not None:
            pairs.append(("Authorization", build_authorization_basic(*user_info)))
        if self.origin is not None:
            pairs.append(("Origin", self.origin))
        pairs += [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key),
            ("Sec-WebSocket-Version", "13"),
        ]
        if self.available_extensions:
            pairs.append(("Sec-WebSocket-Extensions", build_extension(
                [(factory.name, list(factory.get_request_params()))
                 for factory in self.available_extensions]
            )))  # fmt: skip
        if self.available_subprotocols:
            pairs.append(
                ("Sec-WebSocket-Protocol", build_subprotocol(self.available_subprotocols))
            )
        return Request(uri.resource_name, Headers(pairs))

    def send_request(self, request: Request) -> None:
        """Queue the handshake request; fetch the bytes with data_to_send().

        Raises:
            ValueError: a header or the path would allow injection.
        """
        self.send_data(request.serialize())
        self.request = request
        if self.debug:
            self.logger.debug("> GET %s HTTP/1.1", request.path)

    def parse_handshake(self) -> Generator[None, None, None]:
        if self.state is not State.CONNECTING:
            return
        reader = self.reader
        status_line: list[bytes] = []

        def read_line(limit: int) -> Generator[None, None, bytes]:
            line = yield from reader.read_line(limit)
            if not status_line:
                status_line.append(line)
            return line

        try:
            # A TLS record has no line end to wait for: look at the first bytes at once.
            if not (yield from reader.at_eof()) and (tls := self._not_websocket(reader.buffer[:2])):
                self._fail_handshake(tls)
                return
            response = yield from Response.parse(read_line, reader.read_exact, reader.read_to_eof)
        except EOFError:
            head = status_line[0] if status_line else bytes(reader.buffer[:80])
            if not head and not self.uri.secure:
                # What a TLS server does with a request in the clear, most of the time.
                exc = InvalidMessage(
                    "connection closed during handshake, before the server answered "
                    "(if it expects TLS, use a wss:// URI)"
                )
            else:
                exc = self._not_websocket(head) or InvalidMessage(
                    "connection closed during handshake"
                )
            self._fail_handshake(exc)
            return
        except InvalidMessage as exc:
            head = status_line[0] if status_line else bytes(reader.buffer[:80])
            self._fail_handshake(self._not_websocket(head) or exc)
            return
        self.response = response
        try:
            self._check_response(response)
        except InvalidHandshake as exc:
            self._fail_handshake(exc)
        else:
            if self.debug:
                self.logger.debug("= connection is OPEN")
            self.state = State.OPEN
        self.events.append(response)

    def _not_websocket(self, head: bytes | bytearray) -> InvalidMessage | None:
        """Say why an answer that is not HTTP/1.1 cannot come from a WebSocket server.

        Args:
            head: the status line, or the first bytes received when no line ended.
        """
        # A TLS record starts with its content type, 21 (alert) or 22 (handshake), then
        # the major version 3 (RFC 8446 §5.1): the server expects TLS.
        if head[:1] in (b"\x15", b"\x16") and head[1:2] == b"\x03" and not self.uri.secure:
            return InvalidMessage("the server answered with TLS: use a wss:// URI")
        # RFC 6455 §4.1: the handshake is an HTTP/1.1 upgrade; an HTTP/1.0 server can't do it.
        if head.startswith(b"HTTP/") and not head.startswith(b"HTTP/1.1"):
            version = head[:8].decode("latin-1")
            line = head[:80].decode("latin-1").rstrip()
            return InvalidMessage(
                f"the server answered with {version}: not a WebSocket server ({line!r})"
            )
        return None

    def _fail_handshake(self, exc: InvalidHandshake) -> None:
        if self.debug:
            self.logger.debug("! handshake failed: %s", exc)
        self.handshake_exc = exc
        # The client closes the connection after a failed handshake (RFC 6455 §4.1).
        self.send_eof()

    def _check_response(self, response: Response) -> None:
        """Check the server's answer (RFC 6455 §4.1, the numbered list after "/response/")."""
        if response.status_code != 101:
            raise InvalidStatus(response)
        headers = response.headers

        connection = [value.lower() for value in parse_all(headers, "Connection", parse_connection)]
        if "upgrade" not in connection:
            raise InvalidUpgrade("Connection", ", ".join(headers.get_all("Connection")))
        upgrade = [value.lower() for value in parse_all(headers, "Upgrade", parse_upgrade)]
        if upgrade != ["websocket"]:
            raise InvalidUpgrade("Upgrade", ", ".join(headers.get_all("Upgrade")))

        try:
            accept = headers["Sec-WebSocket-Accept"]
        except MultipleValuesError:
            raise InvalidHeader(
                "Sec-WebSocket-Accept", ", ".join(headers.get_all("Sec-WebSocket-Accept"))
            ) from None
        except KeyError:
            raise InvalidHeader("Sec-WebSocket-Accept") from None
        if accept != accept_key(self.key):
            raise InvalidHeaderValue("Sec-WebSocket-Accept", accept)

        self.extensions = self._accept_extensions(headers)
        self.subprotocol = self._accept_subprotocol(headers)

    def _accept_extensions(self, headers: Headers) -> list[Extension]:
        """Check that the server accepted only what was offered, and build the extensions."""
        accepted: list[Extension] = []
        for name, params in parse_all(headers, "Sec-WebSocket-Extensions", parse_extension):
            error: NegotiationError | None = None
            for factory in self.available_extensions:
                if factory.name != name:
                    continue
                try:
                    extension = factory.process_response_params(params, accepted)
                except NegotiationError as exc:
                    error = exc
                    continue
                accepted.append(extension)
                break
            else:
                # Tell why the answer was refused, when a factory said so.
                if error is not None:
                    raise error
                raise NegotiationError(f"server accepted an extension that was not offered: {name}")
        return accepted

    def _accept_subprotocol(self, headers: Headers) -> str | None:
        subprotocols = parse_all(headers, "Sec-WebSocket-Protocol", parse_subprotocol)
        if not subprotocols:
            return None
        if len(subprotocols) > 1:
            raise InvalidHeader("Sec-WebSocket-Protocol", ", ".join(subprotocols))
        if subprotocols[0] not in self.available_subprotocols:
            raise NegotiationError(
                f"server chose a subprotocol that was not offered: {subprotocols[0]}"
            )
        return subprotocols[0]
