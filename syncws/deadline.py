"""Deadlines: a point in :func:`time.monotonic` time that several blocking steps must end by.

A deadline is a plain ``float`` (or ``None`` for no deadline), so that it costs nothing to
pass around; :func:`remaining` turns it into the timeout of the next blocking call. It is the
one place that does this arithmetic.
"""

from __future__ import annotations

import time
from typing import overload

__all__ = ["deadline_after", "remaining"]


def deadline_after(timeout: float | None) -> float | None:
    """The deadline ``timeout`` seconds from now; ``None`` for no timeout."""
    return None if timeout is None else time.monotonic() + timeout


@overload
def remaining(deadline: float, during: str | None = None) -> float: ...
@overload
def remaining(deadline: None, during: str | None = None) -> None: ...
@overload
def remaining(deadline: float | None, during: str | None = None) -> float | None: ...


def remaining(deadline: float | None, during: str | None = None) -> float | None:
    """Seconds left until ``deadline``; ``None`` without one.

    Once the deadline has passed this is 0, for a wait that should only poll; with
    ``during``, it raises instead. A socket timeout must never be 0, which would make the
    socket non-blocking rather than time out: steps that block on a socket pass ``during``.

    Args:
        deadline: a :func:`time.monotonic` time, or ``None``.
        during: what was being done, for the message of the :exc:`TimeoutError`.

    Raises:
        TimeoutError: the deadline has passed and ``during`` is given.
    """
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left > 0:
        return left
    if during is not None:
        raise TimeoutError(f"timed out during {during}")
    return 0.0
