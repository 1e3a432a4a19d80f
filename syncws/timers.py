"""One timer thread per process, shared by every connection.

Keepalive pings, ping timeouts and close timeouts are short callbacks scheduled here, so a
connection needs no thread of its own for them. The thread (``syncws-timer``) starts when the
first timer is scheduled and ends one to two seconds after the last one ran or was cancelled,
so an idle process keeps no thread. Cancelling a timer never wakes the thread: with a timer
scheduled, it looks at the heap at least once a second, so closing a connection costs no thread
switch. A new timer wakes it only when it is due before the thread would wake anyway.

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
        # Timers neither run nor cancelled. When none is left the heap is emptied, and the
        # thread ends after lingering, even if cancelled timers were still due later.
        self._pending = 0
        # When the waiting thread wakes up by itself; None while it runs a callback.
        self._wake_at: float | None = None

    def cancel(self, timer: Timer) -> None:
        with self._cond:
            if timer.cancelled:
                return
            timer.cancelled = True
            # Let go of the connection now rather than when the timer would have been due.
            timer.callback = _nothing
            self._pending -= 1
            if not self._pending:
                self._heap.clear()
            elif len(self._heap) > 2 * self._pending + 64:
                # Mostly cancelled timers: keep the heap in proportion to the live ones.
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
            # No wake-up: the thread looks again within _LINGER seconds, and ends then if
            # nothing is left. Waking it for every cancelled timer would cost a thread switch
            # per closed connection.

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(time.monotonic() + delay, callback)
        with self._cond:
            heapq.heappush(self._heap, (timer.deadline, next(self._counter), timer))
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="syncws-timer", daemon=True)
                self._thread.start()
            elif self._wake_at is not None and timer.deadline < self._wake_at:
                # The thread sleeps past the new deadline: wake it, once.
                self._wake_at = timer.deadline
                self._cond.notify()
        return timer

    def _run(self) -> None:
        idle_until: float | None = None
        while True:
            with self._cond:
                while True:
                    # Drop cancelled timers so that the heap does not hold them until due.
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    now = time.monotonic()
                    if self._heap:
                        idle_until = None
                        deadline = self._heap[0][0]
                        if deadline <= now:
                            timer = heapq.heappop(self._heap)[2]
                            # It runs now: cancelling it later changes nothing.
                            timer.cancelled = True
                            self._pending -= 1
                            break
                        # Look again within _LINGER even if the first timer is due later:
                        # cancel() doesn't wake the thread, and it ends soon after the last.
                        wake_at = min(deadline, now + _LINGER)
                    else:
                        # Linger a little before ending: connections come and go, and
                        # starting a thread costs more than waiting for the next one.
                        if idle_until is None:
                            idle_until = now + _LINGER
                        elif now >= idle_until:
                            self._thread = None
                            self._wake_at = None
                            return
                        wake_at = idle_until
                    self._wake_at = wake_at
                    self._cond.wait(wake_at - now)
                    self._wake_at = None
            try:
                timer.callback()
            except Exception:
                logger.exception("error in timer callback")


def _nothing() -> None:
    pass


_timers = _TimerThread()


def call_later(delay: float, callback: Callable[[], object]) -> Timer:
    """Run ``callback`` in the shared timer thread after ``delay`` seconds."""
    return _timers.call_later(delay, callback)
