"""Signals that wake a blocking wait: shared by the server's accept loop and the CLI."""

from __future__ import annotations

import signal
import threading

__all__ = ["wake_on_signals"]


def wake_on_signals(fd: int) -> bool:
    """Make ``fd`` Python's signal wakeup fd, in the main thread; return whether it is.

    Python runs a signal handler when the main thread next runs Python code, so a signal
    that lands just before a wait blocks, or in another thread, leaves its handler waiting
    until the wait ends by itself. With ``fd`` as the wakeup fd, a wait that watches the
    other end of it wakes at once. A wakeup fd set by someone else (an event loop) is left
    alone. The caller undoes it with ``signal.set_wakeup_fd(-1)``.

    Args:
        fd: the writing end of a pipe or socket pair, in non-blocking mode.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    if previous != -1:
        signal.set_wakeup_fd(previous)
        return False
    return True
