"""The interface between the protocol and WebSocket extensions (RFC 6455 §9).

An extension negotiated in the opening handshake sits between the frames on the wire and the
frames the protocol works with. Outgoing frames go through :meth:`Extension.encode` in the
order the extensions were negotiated; incoming frames go through :meth:`Extension.decode` in
the reverse order. An extension that uses an RSV bit clears it in :meth:`~Extension.decode`;
any RSV bit still set after every extension has decoded the frame fails the connection (1002).

Negotiation runs through factories: a client factory offers parameters and checks the server's
answer; a server factory reads an offer and answers it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..frames import Frame
from ..headers import ExtensionParameter

__all__ = [
    "ClientExtensionFactory",
    "Extension",
    "ExtensionParameter",
    "ServerExtensionFactory",
]


class Extension:
    """A negotiated extension, applied to each frame of a connection."""

    # No __dict__ of its own, so that a subclass with __slots__ has none either; a subclass
    # without __slots__ gets one as usual.
    __slots__ = ()

    name: str
    """The extension's registered name, e.g. ``permessage-deflate``."""

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Turn a frame received from the peer into the frame it stands for.

        Args:
            frame: the frame as received.
            max_size: how many more bytes of payload the current message may hold; an
                extension that expands data must not produce more than this.

        Raises:
            PayloadTooBig: decoding would exceed ``max_size``.
            ProtocolError: the frame is not valid for this extension.
        """
        raise NotImplementedError

    def encode(self, frame: Frame) -> Frame:
        """Turn a frame about to be sent into the frame to put on the wire."""
        raise NotImplementedError


class ClientExtensionFactory:
    """Offers an extension in a client's handshake and accepts the server's answer."""

    name: str
    """The extension's registered name."""

    def get_request_params(self) -> Sequence[ExtensionParameter]:
        """The parameters to offer in ``Sec-WebSocket-Extensions``."""
        raise NotImplementedError

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> Extension:
        """Check the parameters the server answered with and build the extension.

        Args:
            params: the parameters in the server's answer.
            accepted_extensions: extensions accepted earlier in the same answer.

        Raises:
            NegotiationError: the answer is not acceptable; the handshake fails.
        """
        raise NotImplementedError


class ServerExtensionFactory:
    """Answers a client's offer of an extension in a server's handshake."""

    name: str
    """The extension's registered name."""

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], Extension]:
        """Check one offer and answer it.

        Args:
            params: the parameters of this offer.
            accepted_extensions: extensions accepted earlier in the same handshake.

        Returns:
            The parameters to answer with, and the extension to use.

        Raises:
            NegotiationError: this offer is not acceptable; the server tries the next one,
                or goes on without the extension.
        """
        raise NotImplementedError
