"""The bounded message queue between whoever reads a connection's socket and ``recv()``.

The reader thread, or the thread in ``recv()`` when it reads the socket itself, puts data
frames; :meth:`MessageQueue.get` takes whole messages and
:meth:`MessageQueue.get_iter` takes the frames of one message as they arrive. When the
high-water mark of ``max_queue`` complete messages wait, :meth:`~MessageQueue.put` blocks:
the reader stops reading, the kernel's buffers fill up and TCP pushes back on the peer. It
returns once the consumer brought them down to the low-water mark, so that the reader then
reads many messages in a row rather than one per message taken. Nothing is dropped and
memory stays bounded, at about ``max_queue * max_size``.

:meth:`~MessageQueue.close` wakes every waiting thread: the consumer gets :exc:`EOFError` once
the complete messages already queued are taken; a reader blocked in :meth:`~MessageQueue.put`
returns, and any later ``put`` raises :exc:`EOFError`.
"""

from __future__ import annotations

import codecs
import collections
import threading
import time
from collections.abc import Callable, Generator

from .core.frames import Frame, Opcode
from .deadline import deadline_after, remaining
from .exceptions import ConcurrencyError
from .options import check_max_queue, water_marks

__all__ = ["Data", "MessageQueue"]

# The frames of a queue that was never given one: always empty, since it keeps none
# (maxlen 0), so all queues can share it. put() makes the queue's own deque: a connection that
# never receives a message holds no deque, and an empty one takes 760 bytes.
_NO_FRAMES: collections.deque[Frame] = collections.deque(maxlen=0)

Data = str | bytes
"""A message: :class:`str` for text, :class:`bytes` for binary."""


class MessageQueue:
    """Frames in, messages out, for one consumer thread at a time.

    Args:
        max_queue: the high-water mark: how many complete messages may wait before
            :meth:`put` blocks, until no more than the low-water mark, ``max_queue // 4``,
            wait; a ``(high, low)`` pair sets both (see :ref:`limits`); ``None`` for no
            limit.

    Raises:
        TypeError: ``max_queue`` is neither an integer, ``None`` nor a pair of them.
        ValueError: a water mark is out of range.
    """

    # Slots keep an idle connection small: each connection holds one queue. __dict__ stays,
    # made only when an attribute outside these is set.
    __slots__ = (
        "__dict__",
        "_closed",
        "_complete",
        "_cond",
        "_frames",
        "_getting",
        "_high_water",
        "_lock",
        "_paused_since",
        "_paused_time",
        "_poked",
        "_resume_at",
        "_skipping",
        "_streaming",
        "_waiting",
        "low",
        "max_queue",
        "paused",
        "pauses",
    )

    def __init__(self, max_queue: int | tuple[int | None, int | None] | None = 16) -> None:
        check_max_queue(max_queue)
        high, low = water_marks(max_queue)
        self.max_queue = high
        """The high-water mark; ``None`` for no limit."""
        self.low = low
        """The low-water mark; ``None`` for no limit."""
        # How many complete messages may wait when a blocked put() returns: the low-water
        # mark, or one less than the high-water mark when they are equal.
        self._resume_at = 0 if high is None or low is None else min(low, high - 1)
        # Critical sections take the lock itself: `with lock` runs in C, while `with
        # condition` runs two Python methods. The condition is only for waiting.
        self._lock = threading.Lock()
        # Made by the first thread that waits: a connection whose recv() reads the socket
        # itself never needs one.
        self._cond: threading.Condition | None = None
        self._frames = _NO_FRAMES
        # How many complete messages _frames holds: its frames with fin set.
        self._complete = 0
        self._getting = False
        # Whether the consumer waits in wait() for a whole message, or in get_iter() for a
        # frame: then put() hands one over.
        self._waiting = False
        self._streaming = False
        # Whether poke() asked the consumer waiting in wait() to stop waiting.
        self._poked = False
        # Whether put() drops frames up to the end of a message whose streaming was abandoned.
        self._skipping = False
        self._closed = False
        self.paused = False
        """Whether :meth:`put` is blocked because the queue is full."""
        self.pauses = 0
        """How many times :meth:`put` blocked because the queue was full."""
        # For counts(): the most complete messages that waited at once, the seconds put()
        # blocked on a full queue, and when the pause in progress started.
        self._high_water = 0
        self._paused_time = 0.0
        self._paused_since = 0.0

    def __len__(self) -> int:
        """The number of complete messages waiting."""
        return self._complete

    def counts(self) -> tuple[int, int, float]:
        """The complete messages waiting, the most that ever waited at once, and the seconds
        :meth:`put` blocked because the queue was full (the pause in progress included)."""
        with self._lock:
            paused_time = self._paused_time
            if self.paused:
                paused_time += time.monotonic() - self._paused_since
            return self._complete, self._high_water, paused_time

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def put(self, frame: Frame, block: bool = True) -> bool:
        """Add a data frame; block while ``max_queue`` complete messages wait.

        Args:
            frame: a TEXT, BINARY or CONT frame.
            block: wait for room; the thread that receives never waits for itself.

        Returns:
            Whether it completed a message that a consumer waiting in :meth:`wait` takes
            now: it was handed over.

        Raises:
            EOFError: the queue is closed.
        """
        with self._lock:
            if self._closed:
                raise EOFError("message queue is closed")
            if self._skipping:
                self._skipping = not frame.fin
                return False
            frames = self._frames
            if frames is _NO_FRAMES:
                frames = self._frames = collections.deque()
            frames.append(frame)
            handed = False
            if frame.fin:
                self._complete += 1
                # Not max(): a call for every message.
                if self._complete > self._high_water:  # noqa: PLR1730
                    self._high_water = self._complete
                handed = self._waiting
            if handed or self._streaming:
                self._notify()
            max_queue = self.max_queue
            if block and max_queue is not None and self._complete >= max_queue:
                self.paused = True
                self.pauses += 1
                self._paused_since = time.monotonic()
                try:
                    # Hysteresis: wait for the low-water mark, not for the first room.
                    while (
                        self.max_queue is not None
                        and self._complete > self._resume_at
                        and not self._closed
                    ):
                        self._condition().wait()
                finally:
                    self.paused = False
                    self._paused_time += time.monotonic() - self._paused_since
        return handed

    def start_get(self) -> None:
        """Become the one consumer; end with :meth:`end_get`.

        Raises:
            ConcurrencyError: another thread is receiving.
        """
        with self._lock:
            if self._getting:
                raise ConcurrencyError("another thread is already receiving")
            self._getting = True

    def end_get(self) -> None:
        """Stop being the consumer."""
        self._getting = False

    def take(self, decode: bool | None = None) -> Data | None:
        """Take the next complete message if there is one, without waiting.

        Args:
            decode: as in :meth:`get`.
        """
        with self._lock:
            if not self._complete:
                return None
            frame = self._frames.popleft()
            opcode = frame.opcode
            if frame.fin:
                data = frame.data
            else:
                chunks = [frame.data]
                while not frame.fin:
                    frame = self._frames.popleft()
                    chunks.append(frame.data)
                data = b"".join(chunks)
            self._complete -= 1
            if self.paused and self._complete <= self._resume_at:
                # Wake the reader: the queue is down to the low-water mark.
                self._notify()
        if decode is None:
            return data.decode() if opcode is Opcode.TEXT else data
        return data.decode() if decode else data

    @property
    def waiting(self) -> bool:
        """Whether a consumer waits in :meth:`wait` now."""
        return self._waiting

    def is_waiting(self) -> bool:
        """:attr:`waiting`, as a method: for a part that is handed it as a callback."""
        return self._waiting

    def pause_state(self) -> tuple[bool, int]:
        """Whether :meth:`put` is paused on a full queue now, and how many times it paused."""
        return self.paused, self.pauses

    def wait(self, timeout: float | None = None) -> None:
        """Wait until a message is complete, the queue is closed, or :meth:`poke` is called.

        Raises:
            TimeoutError: none of these happened within ``timeout`` seconds.
        """
        with self._lock:
            self._waiting = True
            try:
                self._wait(timeout, lambda: self._complete > 0 or self._poked)
            finally:
                self._waiting = False
                self._poked = False

    def poke(self) -> None:
        """Make the consumer waiting in :meth:`wait` return now, or the next one at once:
        nobody reads the socket, and the consumer may read it itself."""
        with self._lock:
            self._poked = True
            if self._waiting:
                self._notify()

    def get(self, timeout: float | None = None, decode: bool | None = None) -> Data:
        """Take the next complete message.

        Args:
            timeout: seconds to wait; ``None`` waits as long as it takes, ``0`` only takes a
                message that is already complete.
            decode: ``None`` gives text messages as :class:`str` and binary messages as
                :class:`bytes`; ``True`` gives :class:`str` for both (binary is decoded as
                UTF-8); ``False`` gives :class:`bytes` for both.

        Raises:
            TimeoutError: no message was complete in time; nothing was consumed.
            EOFError: the queue is closed and holds no complete message.
            ConcurrencyError: another thread is receiving.
        """
        self.start_get()
        try:
            message = self.take(decode)
            if message is None:
                self.wait(timeout)
                message = self.take(decode)
                if message is None:
                    raise EOFError("no more messages")
            return message
        finally:
            self.end_get()

    def get_iter(self, decode: bool | None = None) -> Generator[Data, None, None]:
        """Take the frames of the next message as they arrive.

        An iteration abandoned before the last frame (closed, or dropped) drops the rest of
        the message, queued or still to come: the next message is a whole one.

        Args:
            decode: as in :meth:`get`; text split inside a UTF-8 sequence is reassembled.

        Raises:
            EOFError: the queue closed before the message started or ended.
            ConcurrencyError: another thread is receiving.
        """
        with self._lock:
            if self._getting:
                raise ConcurrencyError("another thread is already receiving")
            self._getting = True
        started = done = False
        try:
            decoder: codecs.IncrementalDecoder | None = None
            first = True
            while True:
                with self._lock:
                    self._streaming = True
                    try:
                        self._wait(None, lambda: bool(self._frames))
                    finally:
                        self._streaming = False
                    if not self._frames:
                        raise EOFError("no more messages")
                    frame = self._frames.popleft()
                    started = True
                    done = frame.fin
                    if frame.fin:
                        self._complete -= 1
                        self._notify()
                if first:
                    first = False
                    if decode is None:
                        decode = frame.opcode is Opcode.TEXT
                    if decode:
                        decoder = codecs.getincrementaldecoder("utf-8")()
                if decoder is not None:
                    yield decoder.decode(frame.data, frame.fin)
                else:
                    yield frame.data
                if frame.fin:
                    return
        finally:
            with self._lock:
                self._getting = False
                if started and not done:
                    self._drop_rest()

    def _drop_rest(self) -> None:
        """Drop the frames of the message being streamed, queued and to come; lock held."""
        frames = self._frames
        while frames:
            if frames.popleft().fin:
                self._complete -= 1
                self._notify()  # room for the reader, if it waits
                return
        self._skipping = True

    def resume(self) -> None:
        """Lift ``max_queue``: :meth:`put` stops blocking, for good.

        A closing connection does this so that its reader sees the peer's Close even when
        nobody receives.
        """
        with self._lock:
            self.max_queue = None
            self._notify(every=True)

    def close(self) -> None:
        """End the queue: wake the consumer and the reader."""
        with self._lock:
            self._closed = True
            self._notify(every=True)

    def _condition(self) -> threading.Condition:
        """The condition to wait on; lock held."""
        if self._cond is None:
            self._cond = threading.Condition(self._lock)
        return self._cond

    def _notify(self, *, every: bool = False) -> None:
        """Wake a waiting thread, or all of them; lock held. No condition, no waiter."""
        if self._cond is not None:
            if every:
                self._cond.notify_all()
            else:
                self._cond.notify()

    def _wait(self, timeout: float | None, ready: Callable[[], bool]) -> None:
        """Wait, with the lock held, until ``ready()`` or the queue closes.

        Raises:
            TimeoutError: neither happened within ``timeout`` seconds.
        """
        if ready() or self._closed:
            return
        cond = self._condition()
        if timeout is None:
            while not ready() and not self._closed:
                cond.wait()
            return
        deadline = deadline_after(timeout)
        while not ready() and not self._closed:
            left = remaining(deadline)
            if not left:
                raise TimeoutError("no message received in time")
            cond.wait(left)
