"""syncws: a synchronous, thread-based WebSocket server and client (RFC 6455, RFC 7692)."""

from __future__ import annotations

from .version import __version__

__all__ = ["__version__"]
