"""The callback of a connection that is over."""

from __future__ import annotations

from typing import Any

__all__ = ["ignore"]


def ignore(*args: object) -> Any:
    """Do nothing, whatever the arguments.

    The parts of a connection (its reader, writer, keepalive, timers) call it back through
    bound methods, which hold it. Once the connection is over, their callbacks become this,
    so that nothing holds the connection in a reference cycle: it is freed, with its buffers
    and the messages nobody received, as soon as the application lets go of it, rather than
    at the next full garbage collection, minutes later on a busy server.
    """
    return None
