"""WebSocket extensions (RFC 6455 §9): the interface, and permessage-deflate (RFC 7692)."""

from __future__ import annotations

from .base import ClientExtensionFactory, Extension, ServerExtensionFactory

__all__ = ["ClientExtensionFactory", "Extension", "ServerExtensionFactory"]
