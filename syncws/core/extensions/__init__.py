"""WebSocket extensions (RFC 6455 §9): the interface, and permessage-deflate (RFC 7692)."""

from __future__ import annotations

from .base import ClientExtensionFactory, Extension, ServerExtensionFactory
from .permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)

__all__ = [
    "ClientExtensionFactory",
    "ClientPerMessageDeflateFactory",
    "Extension",
    "PerMessageDeflate",
    "ServerExtensionFactory",
    "ServerPerMessageDeflateFactory",
    "enable_client_permessage_deflate",
    "enable_server_permessage_deflate",
]
