"""The server side of the opening handshake (RFC 6455 §4.2), without any I/O.

::

    protocol = ServerProtocol(origins=[...], subprotocols=[...], extensions=[...])
    protocol.receive_data(data)              # the client's request arrives
    for event in protocol.events_received(): # -> a Request
        response = protocol.accept(event)    # -> 101, or 4xx when the request is not acceptable
        protocol.send_response(response)     # queued; fetch with data_to_send()

When the request cannot even be parsed, no Request comes: :attr:`~ServerProtocol.handshake_exc`
is set instead, and :meth:`~ServerProtocol.reject_exception` builds the answer (400, 405, 414,
431, 505...).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Generator, Sequence
from http import HTTPStatus
from typing import TypeAlias

from ..exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidState,
    InvalidUpgrade,
    NegotiationError,
)
from .extensions.base import Extension, ExtensionParameter, ServerExtensionFactory
from .headers import (
    Headers,
    MultipleValuesError,
    accept_key,
    build_extension,
    parse_all,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
)
from .http11 import Request, Response
from .protocol import Protocol, Side, State

__all__ = ["Origin", "ServerProtocol"]


Origin: TypeAlias = "str | re.Pattern[str] | None"
"""An allowed origin: an exact string, a compiled pattern that must match the whole origin,
or ``None`` to allow requests that have no ``Origin`` header."""



class ServerProtocol(Protocol):
    """The sans-I/O protocol of a WebSocket server connection.

    Args:
        origins: the allowed values of the ``Origin`` header; include ``None`` to allow
            requests without one. ``None`` (the default) does not check the origin.
        extensions: the extensions the server supports, in order of preference.
        subprotocols: the subprotocols the server supports, in its order of preference. When
            set, the client must offer one of them, and the server picks the first of them that
            the client offers, as websockets does.
        select_subprotocol: called with the protocol and the subprotocols the client offered,
            in the client's order, instead of the default rule; returns one of those, or
            ``None`` for no subprotocol. It may raise
            :exc:`~syncws.exceptions.NegotiationError` to refuse the request with 400.
            :class:`~syncws.server.ServerConfig` replaces it, once the connection exists, with
            one that calls the server's hook with the connection.
        state: the initial state; :attr:`~syncws.core.protocol.State.OPEN` skips the handshake.
        max_size: see :class:`~syncws.core.protocol.Protocol`.
        logger: see :class:`~syncws.core.protocol.Protocol`.
    """

    # See Protocol.
    __slots__ = (
        "available_extensions",
        "available_subprotocols",
        "handshake_exc",
        "origins",
        "request",
        "response",
        "select_subprotocol",
        "subprotocol",
    )

    def __init__(
        self,
        *,
        origins: Sequence[Origin] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: Callable[[ServerProtocol, Sequence[str]], str | None] | None = None,
        state: State = State.CONNECTING,
        max_size: int | tuple[int | None, int | None] | None = 2**20,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        if isinstance(origins, str):
            raise TypeError("origins must be a list of origins, not a string")
        self.origins = origins
        self.available_extensions = list(extensions or ())
        self.available_subprotocols = list(subprotocols or ())
        self.select_subprotocol = select_subprotocol
        """The hook that picks the subprotocol, if any; it may be replaced until
        :meth:`accept` is called."""
        self.request: Request | None = None
        """The client's handshake request, once received."""
        self.response: Response | None = None
        """The server's handshake response, once sent."""
        self.subprotocol: str | None = None
        """The subprotocol agreed in the handshake, if any."""
        self.handshake_exc: Exception | None = None
        """Why the opening handshake failed, if it did."""
        super().__init__(
            Side.SERVER,
            state=state,
            max_size=max_size,
            logger=logger,
        )

    def accept(self, request: Request) -> Response:
        """Check the client's request and build the response.

        Returns:
            A 101 response that completes the handshake when the request is acceptable;
            otherwise the error response that :meth:`reject_exception` builds, with the
            reason in :attr:`handshake_exc`. Send it with :meth:`send_response`; it may be
            changed first.
        """
        try:
            key = self._check_request(request)
            self._check_origin(request.headers)
            extensions_header, extensions = self._negotiate_extensions(request.headers)
            subprotocol = self._negotiate_subprotocol(request.headers)
        except InvalidHandshake as exc:
            self.handshake_exc = exc
            if self.debug:
                self.logger.debug("! invalid handshake request: %s", exc)
            return self.reject_exception(exc)

        self.extensions = extensions
        self.subprotocol = subprotocol
        pairs = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ]
        if extensions_header is not None:
            pairs.append(("Sec-WebSocket-Extensions", extensions_header))
        if subprotocol is not None:
            pairs.append(("Sec-WebSocket-Protocol", subprotocol))
        return Response(101, "Switching Protocols", Headers(pairs))

    def reject(self, status: int, text: str) -> Response:
        """Build an HTTP error response with a plain-text body, which closes the connection.

        Args:
            status: the HTTP status, e.g. 403.
            text: the body, sent as UTF-8.
        """
        body = text.encode()
        headers = Headers()
        headers["Connection"] = "close"
        headers["Content-Length"] = str(len(body))
        headers["Content-Type"] = "text/plain; charset=utf-8"
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        return Response(status, reason, headers, body)

    def reject_exception(self, exc: Exception) -> Response:
        """Build the error response for a failed handshake, with the status that fits it.

        400 for a malformed request; the status an :exc:`~syncws.exceptions.InvalidMessage`
        carries (405 with ``Allow: GET``, 414, 431, 505); 403 for a forbidden origin; 426 with
        ``Upgrade: websocket`` when the request is not an upgrade, and with
        ``Sec-WebSocket-Version: 13`` for another protocol version (RFC 6455 §4.4); 500 for
        anything else.
        """
        status = 500
        if isinstance(exc, InvalidMessage):
            status = exc.status
        elif isinstance(exc, InvalidOrigin):
            status = 403
        elif isinstance(exc, InvalidUpgrade) or (
            isinstance(exc, InvalidHeader) and exc.name == "Sec-WebSocket-Version"
        ):
            status = 426
        elif isinstance(exc, InvalidHandshake):
            status = 400
        if status == 500:
            text = "Failed to open a WebSocket connection.\n"
        else:
            text = f"Failed to open a WebSocket connection: {exc}.\n"
        response = self.reject(status, text)
        if status == 405:
            response.headers["Allow"] = "GET"
        elif status == 426:
            if isinstance(exc, InvalidUpgrade):
                response.headers["Upgrade"] = "websocket"
            else:
                response.headers["Sec-WebSocket-Version"] = "13"
        return response

    def send_response(self, response: Response) -> None:
        """Queue the handshake response; fetch the bytes with data_to_send().

        A 101 opens the connection; any other status ends it once sent.

        Raises:
            InvalidState: a response was sent already.
            ValueError: a header or the reason phrase would allow injection.
        """
        if self.state is not State.CONNECTING or self.response is not None:
            raise InvalidState("the handshake response was sent already")
        self.send_data(response.serialize())
        self.response = response
        if response.status_code == 101:
            if self.debug:
                self.logger.debug("= connection is OPEN")
            self.state = State.OPEN
        else:
            if self.debug:
                self.logger.debug("! handshake rejected with HTTP %d", response.status_code)
            self.send_eof()
        # Parse what the client sent after its request, if anything.
        next(self.parser)

    def parse_handshake(self) -> Generator[None, None, None]:
        if self.state is not State.CONNECTING:
            return
        try:
            request = yield from Request.parse(self.reader.read_line)
        except EOFError:
            self.handshake_exc = InvalidMessage("connection closed during handshake")
            return
        except InvalidMessage as exc:
            self.handshake_exc = exc
            return
        if self.debug:
            self.logger.debug("< GET %s HTTP/1.1", request.path)
        self.request = request
        self.events.append(request)
        # RFC 6455 §4.1: the client waits for the response before sending frames; any bytes
        # that came early wait in the buffer until the handshake completes.
        while self.state is State.CONNECTING and not self.eof_sent and not self.reader.eof:
            yield

    def _check_request(self, request: Request) -> str:
        """Check the upgrade headers of RFC 6455 §4.2.1; return Sec-WebSocket-Key."""
        headers = request.headers
        connection = [value.lower() for value in parse_all(headers, "Connection", parse_connection)]
        if "upgrade" not in connection:
            raise InvalidUpgrade("Connection", ", ".join(headers.get_all("Connection")))
        upgrade = [value.lower() for value in parse_all(headers, "Upgrade", parse_upgrade)]
        if "websocket" not in upgrade:
            raise InvalidUpgrade("Upgrade", ", ".join(headers.get_all("Upgrade")))

        _single(headers, "Host")

        key = _single(headers, "Sec-WebSocket-Key")
        # RFC 6455 §4.2.1 item 5: the base64 encoding of 16 bytes, which is 24 characters.
        try:
            raw_key = base64.b64decode(key, validate=True)
        except binascii.Error:
            raise InvalidHeaderValue("Sec-WebSocket-Key", key) from None
        if len(key) != 24 or len(raw_key) != 16:
            raise InvalidHeaderValue("Sec-WebSocket-Key", key)

        version = _single(headers, "Sec-WebSocket-Version")
        if version != "13":
            raise InvalidHeaderValue("Sec-WebSocket-Version", version)
        return key

    def _check_origin(self, headers: Headers) -> None:
        """Check Origin against the allowed origins (RFC 6455 §10.2): exact matches only."""
        if self.origins is None:
            return
        origins = headers.get_all("Origin")
        if len(origins) > 1:
            raise InvalidHeader("Origin", ", ".join(origins))
        origin = origins[0] if origins else None
        for allowed in self.origins:
            if allowed is None:
                if origin is None:
                    return
            elif origin is None:
                continue
            elif isinstance(allowed, str):
                if origin == allowed:
                    return
            elif allowed.fullmatch(origin):
                return
        raise InvalidOrigin(origin)

    def _negotiate_extensions(self, headers: Headers) -> tuple[str | None, list[Extension]]:
        """Accept the first acceptable offer of each supported extension, in offer order."""
        answered: list[tuple[str, list[ExtensionParameter]]] = []
        accepted: list[Extension] = []
        if not self.available_extensions:
            return None, accepted
        for name, params in parse_all(headers, "Sec-WebSocket-Extensions", parse_extension):
            for factory in self.available_extensions:
                if factory.name != name or any(ext.name == name for ext in accepted):
                    continue
                try:
                    response_params, extension = factory.process_request_params(
                        params, accepted
                    )
                except NegotiationError:
                    continue
                answered.append((name, response_params))
                accepted.append(extension)
                break
        return (build_extension(answered) if answered else None), accepted

    def _negotiate_subprotocol(self, headers: Headers) -> str | None:
        offered = parse_all(headers, "Sec-WebSocket-Protocol", parse_subprotocol)
        if self.select_subprotocol is not None:
            chosen = self.select_subprotocol(self, offered)
            if chosen is not None and chosen not in offered:
                raise NegotiationError(f"selected subprotocol {chosen!r} was not offered")
            return chosen
        if not self.available_subprotocols:
            return None
        # The server's preference wins, as in websockets: RFC 6455 §4.2.2 lets the server
        # pick any subprotocol the client offered, whatever the client's order.
        for subprotocol in self.available_subprotocols:
            if subprotocol in offered:
                return subprotocol
        expected = ", ".join(self.available_subprotocols)
        if not offered:
            raise NegotiationError(f"missing subprotocol; expected one of {expected}")
        raise NegotiationError(f"unsupported subprotocols; expected one of {expected}")


def _single(headers: Headers, name: str) -> str:
    """The one value of a header that must appear exactly once."""
    try:
        return headers[name]
    except MultipleValuesError:
        raise InvalidHeader(name, ", ".join(headers.get_all(name))) from None
    except KeyError:
        raise InvalidHeader(name) from None
