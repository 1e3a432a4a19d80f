"""One timer thread per process, shared by every connection.

Keepalive pings, ping timeouts and close timeouts are short callbacks scheduled here, so a
connection needs no thread of its own for them. The thread (``syncws-timer``) starts when the
first timer is scheduled and ends one to two seconds after the last one ran or was cancelled,
so an idle process keeps no thread. Cancelling a timer never wakes the thread: with a timer
scheduled, it looks at the heap at least once a second, so closing a connection costs no thread
switch. A new timer wakes it only when it is due before the thread would wake anyway.

Callbacks run in the timer thread: they must be quick and must never block (the connection
writes from here only without waiting). An exception in a callback is logged once and does not
stop the thread: the other timers, of every other connection, run as usual. A timer that
belongs to a connection names what to do then (``on_error``: fail that connection with 1011).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from ._noop import ignore

__all__ = ["Timer", "call_later"]

logger = logging.getLogger("syncws.timers")

# Seconds the thread waits, with no timer left, before it ends.
_LINGER = 1.0


class Timer:
    """A scheduled callback; :meth:`cancel` stops it from running."""

    __slots__ = ("callback", "cancelled", "deadline", "on_error")

    def __init__(
        self,
        deadline: float,
        callback: Callable[[], object],
        on_error: Callable[[Exception], object] | None = None,
    ) -> None:
        self.deadline = deadline
        self.callback = callback
        self.on_error = on_error
        self.cancelled = False

    def cancel(self) -> None:
        """Make sure the callback does not run, unless it is running already."""
        _timers.cancel(self)


class _TimerThread:
    def __init__(self) -> None:
        # cancel() and call_later() take the lock itself: entering the Condition would cost a
        # Python call each way, on every connection.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Timer]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        # Timers neither run nor cancelled. When none is left the heap is emptied, and the
        # thread ends after lingering, even if cancelled timers were still due later.
        self._pending = 0
        # When the waiting thread wakes up by itself; None while it runs a callback.
        self._wake_at: float | None = None

    def cancel(self, timer: Timer) -> None:
        with self._lock:
            if timer.cancelled:
                return
            timer.cancelled = True
            # Let go of the connection now rather than when the timer would have been due.
            timer.callback = ignore
            timer.on_error = None
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

    def call_later(
        self,
        delay: float,
        callback: Callable[[], object],
        on_error: Callable[[Exception], object] | None = None,
    ) -> Timer:
        timer = Timer(time.monotonic() + delay, callback, on_error)
        with self._lock:
            heapq.heappush(self._heap, (timer.deadline, next(self._counter), timer))
            self._pending += 1
            if self._thread is None:
                self._start()
            elif self._wake_at is not None and timer.deadline < self._wake_at:
                # The thread sleeps past the new deadline: wake it, once.
                self._wake_at = timer.deadline
                self._cond.notify()
        return timer

    def _start(self) -> None:
        """Start the thread; lock held."""
        thread = threading.Thread(target=self._run, name="syncws-timer", daemon=True)
        self._thread = thread
        try:
            thread.start()
        except BaseException:
            self._thread = None  # the next timer tries again
            raise

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            with self._cond:
                if self._thread is threading.current_thread():
                    # It ends by an error of its own, not for lack of timers: don't leave
                    # the timers of every connection to a thread that is gone.
                    self._thread = None
                    self._wake_at = None
                    if self._pending:
                        try:
                            self._start()
                        except RuntimeError:  # out of threads: the next timer tries again
                            logger.error("cannot restart the timer thread", exc_info=True)

    def _loop(self) -> None:
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
            self._call(timer)

    @staticmethod
    def _call(timer: Timer) -> None:
        """Run a timer's callback; an error is logged once and handed to its owner."""
        try:
            timer.callback()
        except Exception as exc:
            logger.error("error in timer callback %r", timer.callback, exc_info=True)
            if timer.on_error is not None:
                try:
                    timer.on_error(exc)
                except Exception:
                    logger.error("error while handling an error in a timer", exc_info=True)
        finally:
            # Let go of its owner now: whoever holds the timer may be held by the owner.
            timer.callback = ignore
            timer.on_error = None


_timers = _TimerThread()


def call_later(
    delay: float,
    callback: Callable[[], object],
    *,
    on_error: Callable[[Exception], object] | None = None,
) -> Timer:
    """Run ``callback`` in the shared timer thread after ``delay`` seconds.

    Args:
        delay: seconds to wait.
        callback: what to run.
        on_error: called with the exception if ``callback`` raises one, after it was logged:
            for a timer of a connection, fails that connection. The timer thread goes on
            either way.
    """
    return _timers.call_later(delay, callback, on_error)
