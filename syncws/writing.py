"""Writing a connection's socket: the bytes waiting to be written, one writer at a time.

Any thread may queue bytes (a send, a pong the reader answers with, a keepalive ping, a
broadcast); one thread at a time writes them, holding the write lock. A thread that finds the
lock taken leaves its bytes to the thread that holds it, which writes everything queued before
it lets go: a pong is never stuck behind a lock, only behind the bytes before it. When the
socket does not take everything without waiting, the rest is written from the timer thread:
soon while the peer reads, then less and less often while it doesn't.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from ._noop import ignore
from .deadline import remaining
from .timers import Timer, call_later
from .transport import Chunk, Transport

__all__ = ["RETRY_MAX_DELAY", "RETRY_MIN_DELAY", "Writer"]

RETRY_MIN_DELAY = 0.001
"""The delay before writing again what the socket did not take, while the peer reads."""
RETRY_MAX_DELAY = 0.05
"""The longest delay before writing again, while the peer does not read."""


class Writer:
    """The writing part of a connection.

    The bytes to write are queued in the order the protocol produced them, so the list is
    guarded by the lock that guards the protocol (``order_lock``): :meth:`queue` is called
    with it held, and :meth:`flush` takes it only to take the list. The write lock, taken
    before ``order_lock`` and never inside it, is held by the one thread writing.

    Args:
        transport: where to write.
        order_lock: the connection's protocol lock.
        write_timeout: seconds a write may go without progress; ``None`` for no limit.
        failed: called when writing failed in the background (a retry from the timer
            thread): the connection must be aborted.
    """

    __slots__ = (
        "_closed",
        "_eof",
        "_eof_written",
        "_failed",
        "_order_lock",
        "_out",
        "_retry_delay",
        "_retry_timer",
        "_write_lock",
        "bytes_sent",
        "transport",
        "write_timeout",
    )

    def __init__(
        self,
        transport: Transport,
        *,
        order_lock: threading.Lock,
        write_timeout: float | None,
        failed: Callable[[], None],
    ) -> None:
        self.transport = transport
        self.write_timeout = write_timeout
        self._order_lock = order_lock
        self._failed = failed
        self._write_lock = threading.Lock()
        self._out: list[Chunk] = []
        # The protocol sent the end of the stream: after the bytes before it, nothing more.
        self._eof = False
        self._eof_written = False
        self._retry_timer: Timer | None = None
        self._retry_delay = RETRY_MIN_DELAY
        self._closed = False
        self.bytes_sent = 0
        """Bytes the transport took, for :mod:`syncws.stats`; changed with the write lock held."""

    def queue(self, chunks: list[bytes], *, eof: bool = False) -> None:
        """Add bytes to write, and whether the stream ends after them; order lock held."""
        if self._closed:
            return
        self._out.extend(chunks)
        if eof:
            self._eof = True

    def pending(self) -> bool:
        """Whether bytes or the end of the stream wait to be written."""
        return bool(self._out) or (self._eof and not self._eof_written)

    def backlog(self) -> int:
        """The bytes queued and not taken by the socket yet; order lock held."""
        return sum(map(len, self._out)) + self.transport.backlog()

    def flush(
        self, *, wait: bool, wait_socket: bool | None = None, deadline: float | None = None
    ) -> None:
        """Write what is queued.

        Args:
            wait: wait for the write lock. Otherwise, leave the bytes to the thread that
                holds it, which writes everything queued before it lets go.
            wait_socket: wait for the socket to accept every byte, for up to
                ``write_timeout`` without progress; by default the same as ``wait``. When
                ``False``, whatever the socket does not take now is written later.
            deadline: when waiting, give up at this :func:`time.monotonic` time too.

        Raises:
            TimeoutError: the socket accepted nothing for ``write_timeout`` seconds.
            OSError: the connection is broken.
        """
        if wait_socket is None:
            wait_socket = wait
        timeout = self.write_timeout if wait_socket else 0
        if deadline is not None and timeout != 0:
            # Past the deadline, still wait a little: a timeout of 0 would leave what the
            # socket doesn't take queued (unbounded) instead of raising TimeoutError.
            until_deadline = max(0.001, remaining(deadline))
            timeout = until_deadline if timeout is None else min(timeout, until_deadline)
        lock = self._write_lock
        while True:
            if wait:
                if not lock.acquire(timeout=-1 if timeout is None else timeout):
                    raise TimeoutError("another thread is still writing")
            elif not lock.acquire(blocking=False):
                return
            try:
                if not self._write_all(timeout):
                    return
            finally:
                lock.release()
            # Another thread may have queued bytes after the last check and found the lock
            # taken: write them too.
            if not self._out and (self._eof_written or not self._eof):
                return
            wait = False

    def _write_all(self, timeout: float | None) -> bool:
        """Write until nothing is queued; write lock held. ``False`` if a retry is due."""
        transport = self.transport
        while True:
            with self._order_lock:
                chunks = self._out
                if chunks:
                    self._out = []
                eof = self._eof and not self._eof_written
            if chunks or transport.backlog():
                # One chunk is the common case, and len() costs less than sum(map()).
                size = len(chunks[0]) if len(chunks) == 1 else sum(map(len, chunks))
                if transport.send(chunks, timeout, last=eof):
                    self.bytes_sent += size
                    # The common case: nothing more queued since (a thread that queues now
                    # finds the write lock taken, and flush() checks again after releasing it).
                    if not self._out and not eof:
                        return True
                    continue
                # Only without waiting; what the transport did not take is left in chunks.
                # Retry soon while the peer reads; back off while it doesn't.
                left = sum(map(len, chunks))
                self.bytes_sent += size - left
                if left < size:
                    self._retry_delay = RETRY_MIN_DELAY
                else:
                    self._retry_delay = min(2 * self._retry_delay, RETRY_MAX_DELAY)
                with self._order_lock:
                    self._out[:0] = chunks
                self._schedule_retry()
                return False
            if eof:
                self._eof_written = True
                with contextlib.suppress(OSError):
                    transport.shutdown_write()
            else:
                return True

    def _schedule_retry(self) -> None:
        """Write again soon, when the socket did not take everything at once."""
        if self._retry_timer is None and not self._closed:
            self._retry_timer = call_later(self._retry_delay, self._retry)

    def _retry(self) -> None:
        """A retry, in the timer thread."""
        self._retry_timer = None
        try:
            self.flush(wait=False)
        except (OSError, TimeoutError):
            self._failed()

    def close(self) -> None:
        """Nothing can be written anymore: drop what is queued; order lock held.

        The connection isn't called back anymore either (see ``syncws._noop.ignore()``).
        """
        self._closed = True
        self._out.clear()
        self._failed = ignore
        timer = self._retry_timer
        if timer is not None:
            timer.cancel()
