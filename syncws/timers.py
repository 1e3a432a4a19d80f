"""One timer thread per process, shared by every connection.

Keepalive pings, ping timeouts and close timeouts are short callbacks scheduled here, so a
connection needs no thread of its own for them. The thread (``syncws-timer``) starts when the
first timer is scheduled and ends one second after the last one, so an idle process keeps no
thread.

Callbacks run in the timer thread: they must be quick and must never block (the connection
writes from here only without waiting). An exception in a callback is logged and does not stop
the thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Timer", "call_later"]

logger = logging.getLogger("syncws.timers")

# Seconds the thread waits, with no timer left, before it ends.
_LINGER = 1.0


class Timer:
    """A scheduled callback; :meth:`cancel` stops it from running."""

    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], object]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Make sure the callback does not run, unless it is running already."""
        _timers.cancel(self)


class _TimerThread:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Timer]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        # Timers neither run nor cancelled. When none is left the thread ends at once, even
        # if cancelled timers still sit in the heap.
        self._pending = 0

    def cancel(self, timer: Timer) -> None:
        with self._cond:
            if timer.cancelled:
                return
            timer.cancelled = True
            self._pending -= 1
            if not self._pending:
                self._heap.clear()
                self._cond.notify()

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(time.monotonic() + delay, callback)
        with self._cond:
            # Wake the thread only when the new timer is due before the one it waits for.
            if not self._heap or timer.deadline < self._heap[0][0]:
                self._cond.notify()
            heapq.heappush(self._heap, (timer.deadline, next(self._counter), timer))
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="syncws-timer", daemon=True)
                self._thread.start()
        return timer

    def _run(self) -> None:
        idle_until: float | None = None
        while True:
            with self._cond:
                while True:
                    # Drop cancelled timers so that the heap does not hold them until due.
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        # Linger a little before ending: connections come and go, and
                        # starting a thread costs more than waiting for the next one.
                        if idle_until is None:
                            idle_until = time.monotonic() + _LINGER
                        remaining = idle_until - time.monotonic()
                        if remaining <= 0:
                            self._thread = None
                            return
                        self._cond.wait(remaining)
                        continue
                    idle_until = None
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        timer = heapq.heappop(self._heap)[2]
                        # It runs now: cancelling it later changes nothing.
                        timer.cancelled = True
                        self._pending -= 1
                        break
                    self._cond.wait(delay)
            try:
                timer.callback()
            except Exception:
                logger.exception("error in timer callback")


_timers = _TimerThread()


def call_later(delay: float, callback: Callable[[], object]) -> Timer:
    """Run ``callback`` in the shared timer thread after ``delay`` seconds."""
    return _timers.call_later(delay, callback)
