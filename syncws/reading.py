"""Reading a connection's socket: who reads it, and the reader thread.

One thread at a time reads the socket of a connection:

- the **consumer**: the thread blocked in ``recv()`` (or in ``close()``, waiting for the
  peer's Close) reads the socket itself, with no hand-off between threads;
- the **reader thread** (``syncws-reader-<id>``), while nobody receives: it feeds the
  protocol, so that pings are answered and Close frames seen, and queues messages until the
  queue is full, when TCP pushes back on the peer.

:class:`ReadOwnership` decides who reads. It is a state machine with no lock, no thread and
no clock of its own: every transition is one of its methods, takes the time as an argument,
and returns the actions its caller must carry out (start or wake the reader thread, check
later, wake the consumer, tear the connection down). Its tests drive it with a fake clock.
:class:`Reader` is the part of a connection that owns the machine, its lock, the reader
thread and the timers that hand reading back, and carries the actions out.

The rules:

- Whenever nobody holds the socket and reading is not over, either the reader thread is
  about to read, or a check is due that gives it the socket: the socket is never left
  unread for longer than the hand-back delay.
- No read waits on a timer while somebody wants to read: a reader thread that stops reading
  while a consumer waits wakes the consumer, which then reads itself; a reader thread parks
  (lets the consumer read) only after it handed a complete message to a waiting consumer,
  which then comes back to read the next one; once the connection is closing, it never parks.
- An unexpected exception in syncws's own code on the way from the socket to the message
  queue (the parser, an extension, the processing of events, these transitions), in whichever
  thread reads, never leaves the connection half-open: it is logged once and the connection
  fails with 1011 (internal error). If processing what comes next fails again, or the reader
  thread itself broke, the connection is torn down at once.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

from ._noop import ignore
from .deadline import remaining
from .timers import Timer, call_later
from .transport import Transport

__all__ = [
    "FINISH",
    "HAND_BACK_DELAY",
    "IDLE_READ_AFTER",
    "POKE",
    "READER_LINGER",
    "RECV_HAND_BACK_DELAY",
    "SCHEDULE",
    "START",
    "WAKE",
    "Holder",
    "ReadOwnership",
    "Reader",
    "ReaderThread",
]

# How long the socket of a new connection may go unread before a reader thread reads it: a
# handler or client that never receives gets one soon, to answer pings and Close frames.
HAND_BACK_DELAY = 0.01

# How long the socket may go unread after a consumer stopped reading it, before the reader
# thread reads it again. A thread that receives in a loop is often away longer than the delay
# above, for its own work or waiting for the GIL among many threads; handing reading back and
# forth would then cost two thread switches per message. Control frames from the peer wait up
# to twice this long while nobody receives; pings sent here have their pong read at once.
RECV_HAND_BACK_DELAY = 0.25

# How long a reader thread with nothing to do (the consumer reads the socket itself) waits
# before it ends. A connection whose handler waits in recv() then costs no thread but its own.
READER_LINGER = 1.0

# A read that waited at least this long for its bytes makes the next one wait without a
# buffer (Transport.wait_readable()), and lend one only once bytes are there: an idle
# connection holds none. A connection that receives more often than this reads at once, with
# one system call per read; one that waits longer pays for one more per read.
IDLE_READ_AFTER = 1.0

# The actions a transition asks for, as bits: cheap to make and to test on every message.
START = 1
"""Start a reader thread."""
WAKE = 2
"""Wake the reader thread: it may read now, or must see that reading is over."""
SCHEDULE = 4
"""Check at :attr:`ReadOwnership.check_at` whether the reader thread must take over."""
POKE = 8
"""Wake the consumer waiting for a message: nobody reads now, it may read itself."""
FINISH = 16
"""Reading is over and nobody holds the socket: tear the connection down (once)."""

# The actions carried out with the lock held (see Reader._apply); the others after.
_UNDER_LOCK = START | WAKE


class Holder(enum.Enum):
    """Who reads the socket now."""

    NOBODY = "nobody"
    CONSUMER = "consumer"
    READER = "reader"


class ReaderThread(enum.Enum):
    """What the reader thread does."""

    ABSENT = "absent"
    """There is none: it never started, or it ended for lack of work."""
    ACTIVE = "active"
    """It reads whenever nobody else does."""
    PARKED = "parked"
    """It leaves the socket to the consumer until a check or a wake-up makes it active."""


class ReadOwnership:
    """Who reads a connection's socket: every transition in one place.

    Not thread-safe: its owner calls it with a lock held. Times are :func:`time.monotonic`
    times, given by the caller.

    Attributes:
        holder: who reads the socket now.
        thread: what the reader thread does.
        done: reading is over (end of the stream, an error, an abort).
        finishing: the connection is being torn down; :data:`FINISH` was returned once.
        closing: the connection is closing: the reader thread does not park anymore.
        check_at: when the check asked for with :data:`SCHEDULE` gives the socket to the
            reader thread; a check that runs earlier asks for another one.
        check_due: a check is scheduled and has not run yet.
    """

    __slots__ = ("check_at", "check_due", "closing", "done", "finishing", "holder", "thread")

    def __init__(self) -> None:
        self.holder = Holder.NOBODY
        self.thread = ReaderThread.ABSENT
        self.done = False
        self.finishing = False
        self.closing = False
        self.check_at = 0.0
        self.check_due = False

    def __repr__(self) -> str:
        flags = [name for name in ("done", "finishing", "closing") if getattr(self, name)]
        return (
            f"<ReadOwnership holder={self.holder.value} thread={self.thread.value}"
            f"{''.join(' ' + flag for flag in flags)}>"
        )

    # Starting.

    def start(self, now: float, *, events: bool) -> int:
        """The opening handshake is done.

        Args:
            now: the time.
            events: frames came with the handshake: a reader thread queues them before
                anyone reads the socket, so that later frames can't overtake them.
        """
        if events:
            self.holder = Holder.READER
            self.thread = ReaderThread.ACTIVE
            return START
        # No thread yet: a recv() soon reads the socket itself.
        return self._schedule(now + HAND_BACK_DELAY)

    def thread_failed(self) -> int:
        """The reader thread could not start: reading is over."""
        self.thread = ReaderThread.ABSENT
        if self.holder is Holder.READER:
            self.holder = Holder.NOBODY
        return self.mark_done()

    # The consumer.

    def consumer_claim(self) -> bool:
        """The consumer wants to read: whether it may, now."""
        if self.holder is Holder.NOBODY and not self.done:
            self.holder = Holder.CONSUMER
            return True
        return False

    def consumer_release(self, now: float) -> int:
        """The consumer stopped reading (it has a message, or gave up)."""
        self.holder = Holder.NOBODY
        if self.done:
            return self._finish_if_free()
        if self.thread is ReaderThread.ACTIVE:
            return WAKE  # it waits for the socket
        return self._schedule(now + RECV_HAND_BACK_DELAY)

    # The reader thread.

    def reader_turn(self) -> bool | None:
        """The reader thread asks to read: ``True`` it may, ``False`` it waits, ``None`` it
        ends because reading is over."""
        if self.done:
            return None
        if self.holder is Holder.NOBODY and self.thread is ReaderThread.ACTIVE:
            self.holder = Holder.READER
            return True
        return False

    def reader_idle(self) -> bool:
        """The reader thread waited :data:`READER_LINGER` for its turn: whether it ends."""
        if not self.done and (
            self.holder is Holder.CONSUMER or self.thread is ReaderThread.PARKED
        ):
            # The consumer does the reading. A check is due, or the consumer schedules one
            # when it lets go of the socket.
            self.thread = ReaderThread.ABSENT
            return True
        return False

    def reader_release(self, now: float, *, handed: bool, waiting: bool) -> int:
        """The reader thread processed what it read.

        Args:
            now: the time.
            handed: it handed a complete message to a consumer that waited for it: the
                consumer will likely be back soon, and reads the socket itself then.
            waiting: a consumer waits for a message now.
        """
        self.holder = Holder.NOBODY
        if self.done:
            return self._finish_if_free()
        if handed and not self.closing:
            self.thread = ReaderThread.PARKED
            actions = self._schedule(now + RECV_HAND_BACK_DELAY)
            # A consumer still waiting (for a message that is not complete yet) must not
            # wait for the check: it reads itself.
            return actions | POKE if waiting else actions
        return 0

    def reader_exit(self) -> int:
        """The reader thread ends: the stream ended, or reading failed."""
        self.thread = ReaderThread.ABSENT
        if self.holder is Holder.READER:
            self.holder = Holder.NOBODY
        self.done = True
        return self._finish_if_free()

    # Hand-back checks, wake-ups, the end.

    def check(self, now: float) -> int:
        """A check asked for with :data:`SCHEDULE` runs."""
        self.check_due = False
        if self.holder is Holder.CONSUMER or self.done:
            return 0  # the consumer's release schedules the next check
        if self.thread is ReaderThread.ACTIVE:
            return 0  # it reads
        if now < self.check_at:
            return self._schedule(self.check_at)
        return self._activate()

    def wake(self) -> int:
        """Make the reader thread read now: a ping waits for its pong, a message is being
        streamed, or the connection is closing."""
        if self.done:
            return 0
        return self._activate()

    def start_closing(self) -> int:
        """The closing handshake started: read until the end, without parking.

        A parked reader thread reads at once. No thread starts for it: the thread that
        closes reads the socket itself while it waits, and otherwise a check is due.
        """
        self.closing = True
        if self.done or self.thread is not ReaderThread.PARKED:
            return 0
        self.thread = ReaderThread.ACTIVE
        return WAKE

    def mark_done(self) -> int:
        """Reading is over (an abort, the end of the stream seen by the consumer)."""
        self.done = True
        actions = WAKE if self.thread is not ReaderThread.ABSENT else 0
        return actions | self._finish_if_free()

    def _activate(self) -> int:
        if self.thread is ReaderThread.PARKED:
            self.thread = ReaderThread.ACTIVE
            return WAKE
        if self.thread is ReaderThread.ABSENT:
            # Even while the consumer reads: the thread takes over when it lets go.
            self.thread = ReaderThread.ACTIVE
            return START
        return 0

    def _schedule(self, at: float) -> int:
        self.check_at = at
        if self.check_due:
            return 0
        self.check_due = True
        return SCHEDULE

    def _finish_if_free(self) -> int:
        if self.done and self.holder is Holder.NOBODY and not self.finishing:
            self.finishing = True
            return FINISH
        return 0


class Reader:
    """The reading part of a connection: the ownership of its socket and its reader thread.

    It owns :class:`ReadOwnership`, the lock that guards it, the reader thread and the
    condition it waits on. It talks to the connection through callbacks, and never holds
    its lock while it calls one.

    Args:
        name: the reader thread's name.
        transport: what to read from.
        read_limit: bytes read at a time, at most, unless a frame needs more.
        buffer: where the connection wants the next bytes read, given ``read_limit``.
        release_buffer: lets go of that buffer, before a wait for bytes that may be long.
        receive: says how many bytes were read into that buffer; ``block`` says whether it
            may wait for room in the message queue (the reader thread may, the consumer may
            not).
            Returns whether a complete message was handed to a waiting consumer.
        waiting: whether a consumer waits for a message now.
        poke: wakes the consumer waiting for a message, to read itself.
        broken: called with the error when reading fails.
        finish: tears the connection down, once reading is over and nobody reads.
        internal_error: fails the connection with 1011 after an unexpected error in what
            processes the bytes read (logged here already); waiters wake up.
        logger: for unexpected errors.
    """

    __slots__ = (
        "_broken",
        "_buffer",
        "_cond",
        "_faulted",
        "_finish",
        "_idle",
        "_internal_error",
        "_lock",
        "_logger",
        "_name",
        "_poke",
        "_receive",
        "_release_buffer",
        "_waiting",
        "read_limit",
        "state",
        "thread",
        "transport",
    )

    def __init__(
        self,
        *,
        name: Callable[[], str],
        transport: Transport,
        read_limit: int,
        buffer: Callable[[int], memoryview],
        release_buffer: Callable[[], None],
        receive: Callable[[int, bool], bool],
        waiting: Callable[[], bool],
        poke: Callable[[], None],
        broken: Callable[[BaseException], None],
        finish: Callable[[], None],
        internal_error: Callable[[Exception], None],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.transport = transport
        self.read_limit = read_limit
        self._name = name
        self._buffer = buffer
        self._release_buffer = release_buffer
        self._receive = receive
        self._waiting = waiting
        self._poke = poke
        self._broken = broken
        self._finish = finish
        self._internal_error = internal_error
        self._logger = logger
        # An unexpected error happened already: the connection was failed with 1011.
        self._faulted = False
        # Whether the last read waited IDLE_READ_AFTER or more: the next one waits for bytes
        # before it takes a buffer. A new connection waits for its first message that way.
        self._idle = True
        self._lock = threading.Lock()
        # For the reader thread to wait on; made with the first one (many connections need
        # none).
        self._cond: threading.Condition | None = None
        self.state = ReadOwnership()
        self.thread: threading.Thread | None = None
        """The last reader thread started, to join it."""

    # What the connection calls.

    def start(self, events: Callable[[], bool] | None) -> None:
        """Start reading once the opening handshake is done.

        Args:
            events: when frames came with the handshake, queues them and returns whether
                a message was handed over; the reader thread calls it first.
        """
        with self._lock:
            actions = self.state.start(time.monotonic(), events=events is not None)
            actions = self._apply(actions, events)
        self._after(actions)

    def claim(self) -> bool:
        """For the consumer: take the socket, unless somebody else reads it."""
        with self._lock:
            return self.state.consumer_claim()

    def read(self, deadline: float | None) -> None:
        """For the consumer that claimed the socket: read once, and process what came.

        Raises:
            TimeoutError: nothing came before ``deadline``; nothing was read.
        """
        # Once per message received by recv() itself: calls are counted here.
        size = 0
        start = time.monotonic()
        try:
            buffer = None
            try:
                ready = self._wait_if_idle(None if deadline is None else remaining(deadline))
                if ready:
                    buffer = self._buffer(self.read_limit)
            except OSError as exc:
                self._broken(exc)
            except Exception as exc:
                self._fault(exc, fatal=True)
            else:
                if not ready:
                    raise TimeoutError("no data received in time")
            if buffer is not None:
                try:
                    size = self.transport.recv_into(
                        buffer, None if deadline is None else remaining(deadline)
                    )
                except TimeoutError:
                    raise
                except OSError as exc:
                    self._broken(exc)
        finally:
            self._idle = time.monotonic() - start >= IDLE_READ_AFTER
        if size:
            try:
                self._feed(size, False)
                return
            except OSError as exc:
                self._broken(exc)
        # The end: the connection is torn down when the consumer lets go.
        self._transition(self.state.mark_done)

    def _wait_if_idle(self, timeout: float | None) -> bool:
        """After a read that waited :data:`IDLE_READ_AFTER` or more, let go of the empty
        receive buffer and wait for bytes without one; whether a read may go ahead now
        (``False``: ``timeout`` passed first)."""
        if not self._idle:
            return True
        self._release_buffer()
        return self.transport.wait_readable(timeout)

    def detach(self) -> None:
        """The connection is over and torn down: stop calling it back (see
        ``syncws._noop.ignore()``). Calls that come later do nothing."""
        self._name = self._buffer = self._release_buffer = self._receive = ignore
        self._broken = self._finish = self._internal_error = ignore

    def release(self) -> None:
        """For the consumer: let go of the socket."""
        with self._lock:
            actions = self.state.consumer_release(time.monotonic())
            if actions & _UNDER_LOCK:
                actions = self._apply(actions)
        if actions:
            self._after(actions)

    def wake(self) -> None:
        """Make the reader thread read now, starting one if needed."""
        self._transition(self.state.wake)

    def start_closing(self) -> None:
        """Read until the end of the connection, whoever receives."""
        self._transition(self.state.start_closing)

    def stop(self) -> None:
        """Reading is over: tear down now if nobody reads, or when the one who does stops."""
        self._transition(self.state.mark_done)

    def in_reader_thread(self) -> bool:
        """Whether this is the reader thread."""
        return threading.current_thread() is self.thread

    def join(self, timeout: float | None = None) -> None:
        """Wait for the reader thread to end, if there is one."""
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def check(self) -> None:
        """A hand-back check, in the timer thread."""
        self._transition(lambda: self.state.check(time.monotonic()))

    # Carrying actions out.

    def _transition(self, transition: Callable[[], int]) -> None:
        """Make a transition under the lock and carry out its actions."""
        with self._lock:
            actions = self._apply(transition())
        if actions:
            self._after(actions)

    def _apply(self, actions: int, events: Callable[[], bool] | None = None) -> int:
        """Carry out what needs the lock; return what must be done without it."""
        if actions & WAKE and self._cond is not None:
            self._cond.notify_all()
        if actions & START:
            actions |= self._start_thread(events)
        return actions

    def _after(self, actions: int) -> None:
        """Carry out what must be done without the lock."""
        if actions & SCHEDULE:
            delay = self.state.check_at - time.monotonic()
            (_checks if delay > HAND_BACK_DELAY else _early_checks).add(self)
        if actions & POKE:
            self._poke()
        if actions & FINISH:
            self._finish()

    def _start_thread(self, events: Callable[[], bool] | None) -> int:
        """Start a reader thread; lock held. Returns more actions if it could not."""
        if self._cond is None:
            self._cond = threading.Condition(self._lock)
        thread = threading.Thread(target=self._run, args=(events,), name=self._name(), daemon=True)
        self.thread = thread
        try:
            thread.start()
        except RuntimeError as exc:  # out of threads or memory
            self._logger.error("cannot start a reader thread: %s", exc)
            self._broken(exc)
            self.transport.abort()
            return self.state.thread_failed()
        return 0

    # The reader thread.

    def _run(self, events: Callable[[], bool] | None) -> None:
        lock = self._lock
        cond = self._cond
        state = self.state
        assert cond is not None
        try:
            if events is not None:
                # The thread holds the socket from the start: the frames that came with
                # the handshake go before anything read later.
                handed = False
                try:
                    handed = events()
                except Exception as exc:
                    self._fault(exc)
                finally:
                    self._released(handed)
            while True:
                with lock:
                    while not (turn := state.reader_turn()):
                        if turn is None:
                            return
                        if not cond.wait(READER_LINGER) and state.reader_idle():
                            return
                # Reading and queuing what was read go together: until every frame of this
                # chunk is queued (which may wait for room), the consumer must not read the
                # socket, or it would get frames out of order.
                size = 0
                handed = False
                start = time.monotonic()
                try:
                    self._wait_if_idle(None)
                    size = self.transport.recv_into(self._buffer(self.read_limit))
                    self._idle = time.monotonic() - start >= IDLE_READ_AFTER
                    if size:
                        handed = self._feed(size, True)
                finally:
                    self._released(handed)
                if not size:
                    return
        except (OSError, TimeoutError) as exc:
            self._broken(exc)
        except Exception as exc:
            # The thread's own bookkeeping broke: whatever it was doing is unknown, so the
            # connection is failed and torn down now rather than left half-open.
            self._fault(exc, fatal=True)
        finally:
            try:
                with lock:
                    if state.thread is not ReaderThread.ABSENT or state.done:
                        actions = self._apply(state.reader_exit())
                    else:
                        actions = 0  # it ended for lack of work
                self._after(actions)
            except Exception as exc:
                self._fault(exc, fatal=True)

    def _feed(self, size: int, block: bool) -> bool:
        """Hand ``size`` bytes read into the buffer lent to the connection; an error there
        fails the connection (1011).

        Raises:
            OSError: writing an answer (a pong, a Close) found the connection broken or the
                peer not reading: the peer's doing, not an error of syncws's.
        """
        try:
            return self._receive(size, block)
        except OSError:
            raise
        except Exception as exc:
            self._fault(exc)
            return False

    def _fault(self, exc: Exception, *, fatal: bool = False) -> None:
        """An unexpected error in syncws's own code while receiving: log it, fail the
        connection with 1011 and, if it can't go on (``fatal``, or a second error), tear it
        down at once.

        The first error is logged, with its traceback; the connection sends a Close with 1011
        and reads on until the peer closes (bounded by ``close_timeout``), dropping what comes.
        """
        with self._lock:
            first = not self._faulted
            self._faulted = True
        if first:
            self._logger.error(
                "unexpected error while receiving; failing the connection with 1011",
                exc_info=exc,
            )
            try:
                self._internal_error(exc)
            except Exception as again:
                self._logger.debug("failing the connection failed: %r", again)
                fatal = True
        else:
            self._logger.debug("unexpected error again while receiving: %r", exc)
            fatal = True
        if fatal:
            self._abort()

    def _abort(self) -> None:
        """End reading now and tear the connection down: at once if nobody else reads the
        socket (this thread lets go of it), otherwise by aborting the transport under the
        thread that reads, which tears down when it lets go."""
        with self._lock:
            state = self.state
            if state.holder is Holder.READER and self.in_reader_thread():
                state.holder = Holder.NOBODY
                state.thread = ReaderThread.ABSENT
            actions = self._apply(state.mark_done())
        if not state.finishing:
            self.transport.abort()
        self._after(actions)

    def _released(self, handed: bool) -> None:
        """The reader thread processed what it read, and lets go of the socket."""
        waiting = self._waiting()
        with self._lock:
            actions = self._apply(
                self.state.reader_release(time.monotonic(), handed=handed, waiting=waiting)
            )
        self._after(actions)


class _Checks:
    """The readers whose socket may go unread: one timer checks them all.

    A consumer that lets go of the socket asks for a check; a timer per release would wake
    the timer thread for every message of every connection. This checks every reader that
    asked in one callback, every ``interval`` seconds while there are some.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._due: list[Reader] = []
        self._timer: Timer | None = None

    def add(self, reader: Reader) -> None:
        """Check ``reader`` at the next round."""
        with self._lock:
            self._due.append(reader)
            if self._timer is None:
                self._timer = call_later(self.interval, self._check)

    def _check(self) -> None:
        """A round, in the timer thread. A reader checked too early asks again."""
        with self._lock:
            self._timer = None
            due, self._due = self._due, []
        for reader in due:
            try:
                reader.check()
            except Exception as exc:  # the others are still checked
                reader._fault(exc, fatal=True)


# New connections are checked soon, connections that a consumer let go of less often.
_early_checks = _Checks(HAND_BACK_DELAY)
_checks = _Checks(RECV_HAND_BACK_DELAY)
