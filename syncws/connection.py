"""A WebSocket connection: the blocking API over the sans-I/O protocol and three parts.

:class:`Connection` owns the protocol (:class:`~syncws.core.protocol.Protocol`) and the
message queue (:class:`~syncws.messages.MessageQueue`), and puts together three parts that
each own their state and their lock, and talk to it through callbacks:

- **reading** (:class:`~syncws.reading.Reader`): who reads the socket (the thread in
  ``recv()`` itself, or the reader thread while nobody receives), the reader thread, and the
  checks that hand reading back;
- **writing** (:class:`~syncws.writing.Writer`): the bytes waiting to be written, the write
  lock, retries when the socket takes only part, the end of the stream;
- **keepalive** (:class:`~syncws.keepalive.Keepalive`): pings waiting for their pong, the
  latency, keepalive pings and their timeouts.

Timers (keepalive, pong and close timeouts, retries, hand-back checks, the grace before a
deferred failure) run in the shared timer thread (:mod:`syncws.timers`), which never waits on
the socket.

Locks, in the order they may be taken (a thread holding one may take only those after it):

1. ``Connection._send_lock``: one message at a time, with all its fragments;
2. ``Writer._write_lock``: the one thread writing to the socket. It is never waited for
   while the protocol lock is held: a thread that finds it taken leaves its bytes to the
   writer, which writes everything queued before it lets go, so a pong is never stuck behind
   a lock, only behind the bytes before it;
3. ``Connection._protocol_lock``: the protocol and the writer's list of bytes, which are
   queued in the order the protocol produced them. It is held for protocol calls only, never
   across a system call that may block;
4. ``Keepalive._lock``: the pings waiting for their pong and the keepalive timers.

``Reader._lock`` (who reads), ``MessageQueue._lock`` and the timer thread's lock are leaves:
no other lock is taken while one of them is held, and none of them is taken while a lock of
the list above is held, but for the timer thread's.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from .core.extensions.permessage_deflate import PerMessageDeflate
from .core.frames import CloseCode, Frame, Opcode, valid_close_code
from .core.headers import Headers
from .core.http11 import Request, Response
from .core.protocol import Event, Protocol, Side, State
from .deadline import remaining
from .exceptions import ConnectionClosed, ConnectionClosedOK
from .keepalive import Keepalive, PingWaiter
from .messages import Data, MessageQueue
from .options import ConnectionOptions, check_bool, check_timeout
from .reading import Reader
from .stats import ConnectionStats
from .timers import Timer, call_later
from .transport import SocketTransport, Transport
from .writing import Writer

__all__ = ["Connection", "PingWaiter", "broadcast"]

_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)

_DEFAULT_OPTIONS = ConnectionOptions()

FAILURE_GRACE = 1.0
"""Seconds the messages received before a protocol error of the peer may wait to be received
before the connection fails anyway (see :attr:`Protocol.defer_failures
<syncws.core.protocol.Protocol.defer_failures>`)."""

# broadcast() logs where the server logs: it is mostly used on a server's connections.
_broadcast_logger = logging.getLogger("syncws.server")

class Connection:
    """A WebSocket connection: send and receive messages from any thread.

    Connections are made by :func:`~syncws.client.connect` and :func:`~syncws.server.serve`;
    this class is their common base.

    Args:
        sock: the connected socket.
        protocol: the sans-I/O protocol, with the opening handshake done.
        transport: the transport over ``sock``, when it is not a plain socket (TLS).
        options: the connection's options; by default, the defaults of
            :class:`~syncws.options.ConnectionOptions`.
    """

    # Slots keep an idle connection small; __dict__ stays for the application's own attributes.
    __slots__ = (
        "__dict__",
        "_aborted",
        "_broadcast_skipped",
        "_close_timer",
        "_closed",
        "_failure_timer",
        "_id",
        "_keepalive",
        "_masks",
        "_protocol_lock",
        "_queue",
        "_reading",
        "_send_lock",
        "_transport_error",
        "_writer",
        "close_timeout",
        "local_address",
        "logger",
        "options",
        "protocol",
        "remote_address",
        "request",
        "response",
        "socket",
        "transport",
        "write_limit",
    )

    def __init__(
        self,
        sock: socket.socket,
        protocol: Protocol,
        *,
        transport: Transport | None = None,
        options: ConnectionOptions = _DEFAULT_OPTIONS,
    ) -> None:
        self._id: uuid.UUID | None = None
        self.protocol = protocol
        self.transport = transport if transport is not None else SocketTransport(sock)
        self.socket = sock
        """The socket; use it only to read options, never to read or write."""
        self.logger = protocol.logger
        self.options = options
        """The connection's options, as :func:`~syncws.client.connect` or
        :func:`~syncws.server.serve` were given them."""
        # The two options the connection itself reads, as attributes the application may
        # change; the parts keep their own (see the read-only properties below).
        self.close_timeout = options.close_timeout
        self.write_limit = options.write_limit

        self.request: Request | None = getattr(protocol, "request", None)
        """The opening handshake request."""
        self.response: Response | None = getattr(protocol, "response", None)
        """The opening handshake response."""

        # Addresses are read now: once the socket is closed they are gone.
        self.local_address: Any = _sockname(sock, remote=False)
        """The local address, as ``socket.getsockname()`` gives it."""
        self.remote_address: Any = _sockname(sock, remote=True)
        """The peer's address, as ``socket.getpeername()`` gives it."""

        self._protocol_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._writer = Writer(
            self.transport,
            order_lock=self._protocol_lock,
            write_timeout=options.write_timeout,
            failed=self.abort,
        )
        self._queue = MessageQueue(options.max_queue)
        self._close_timer: Timer | None = None
        # Fails the connection when a protocol error waits behind messages nobody receives.
        self._failure_timer: Timer | None = None
        self._transport_error: BaseException | None = None
        self._aborted = False
        # Messages broadcast() skipped, for stats; changed with the protocol lock held.
        self._broadcast_skipped = 0
        self._closed = _Flag()
        self._reading = Reader(
            name=self._reader_name,
            transport=self.transport,
            read_limit=options.read_limit,
            buffer=self._receive_buffer,
            release_buffer=self._release_receive_buffer,
            receive=self._receive,
            waiting=self._queue.is_waiting,
            poke=self._queue.poke,
            broken=self._reading_failed,
            finish=self._finish,
            internal_error=self._internal_error,
            logger=self.logger,
        )
        self._keepalive = Keepalive(
            ping_interval=options.ping_interval,
            ping_timeout=options.ping_timeout,
            send_ping=self._send_keepalive_ping,
            paused=self._queue.pause_state,
            fail=self._keepalive_timed_out,
            closed=self._closed_exception,
            internal_error=self._internal_error,
            logger=self.logger,
        )
        # Clients mask every frame with a fresh key: their frames can't be shared.
        self._masks = protocol.side is Side.CLIENT

    # Lifecycle.

    def start(self, events: Iterable[Event] = ()) -> None:
        """Start reading and keepalive, once the opening handshake is done.

        Args:
            events: events the protocol produced during the handshake, after the request or
                response (frames that arrived with it).
        """
        events = list(events)
        # The handshake is over: its headers are kept as flat tuples of strings for the
        # connection's life, and rebuilt the first time the application reads them.
        if self.request is not None:
            self.request._compact_headers()
        if self.response is not None:
            self.response._compact_headers()
        # Frames that came with the handshake may have called for an answer (a pong, a Close
        # that fails the connection) or a close timeout: send and arm them now.
        with self._protocol_lock:
            self._collect_output()
        if self._writer.pending():
            try:
                self._flush(wait=False, wait_socket=True)
            except (OSError, TimeoutError) as exc:
                self._transport_error = exc
                self.abort()
                return
        if events:
            # A reader thread queues the frames that came with the handshake before anything
            # else: until it has, recv() must not read the socket, or later frames would
            # overtake them.
            self._reading.start(lambda: self._receive_events(events))
        else:
            # No thread yet: a recv() soon reads the socket itself.
            self._reading.start(None)
            if self.protocol.pending_failure is not None:
                self._failure_found()
        self._keepalive.start()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close(CloseCode.INTERNAL_ERROR)

    # Attributes.

    @property
    def id(self) -> uuid.UUID:
        """A unique identifier, for logs; made when first asked for."""
        if self._id is None:
            self._id = uuid.uuid4()
        return self._id

    @property
    def ping_interval(self) -> float | None:
        """Seconds between keepalive pings; ``None`` when keepalive is off."""
        return self.options.ping_interval

    @property
    def ping_timeout(self) -> float | None:
        """Seconds a keepalive ping waits for its pong."""
        return self.options.ping_timeout

    @property
    def write_timeout(self) -> float | None:
        """Seconds a write may go without progress before the connection is aborted."""
        return self.options.write_timeout

    @property
    def read_limit(self) -> int:
        """Bytes read from the socket at a time."""
        return self.options.read_limit

    @property
    def latency(self) -> float:
        """Latency of the last ping answered, in seconds; 0 until one is."""
        return self._keepalive.latency

    @property
    def stats(self) -> ConnectionStats:
        """What the connection did so far: bytes, frames and messages in and out, pings,
        the queue, the write backlog; a snapshot (see :class:`~syncws.stats.ConnectionStats`).

        Counting is always on; taking a snapshot costs about as much as a ``send()``.
        """
        # The queue's lock is a leaf: not taken inside the protocol lock.
        queue_depth, queue_high_water, paused_seconds = self._queue.counts()
        with self._protocol_lock:
            protocol = self.protocol
            return ConnectionStats(
                bytes_received=protocol.bytes_received,
                bytes_sent=self._writer.bytes_sent,
                messages_received=protocol.messages_received,
                messages_sent=protocol.messages_sent,
                frames_received=protocol.frames_received,
                frames_sent=protocol.frames_sent,
                pings_sent=protocol.pings_sent,
                pongs_received=protocol.pongs_received,
                latency=self._keepalive.latency,
                queue_depth=queue_depth,
                queue_high_water=queue_high_water,
                paused_seconds=paused_seconds,
                broadcast_skipped=self._broadcast_skipped,
                write_backlog=self._writer.backlog(),
            )

    @property
    def state(self) -> State:
        """The state of the connection: OPEN, CLOSING or CLOSED."""
        return self.protocol.state

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the opening handshake, if any."""
        subprotocol: str | None = getattr(self.protocol, "subprotocol", None)
        return subprotocol

    @property
    def close_code(self) -> int | None:
        """The close code the peer sent (1005 if none, 1006 if no Close); ``None`` until closed.

        Once the connection was aborted (:meth:`abort`, a write timeout, a close timeout) or
        lost, it is 1006 at once, unless the peer's Close came before.
        """
        code = self.protocol.close_code
        if code is None and self._aborted:
            rcvd = self.protocol.close_rcvd
            return CloseCode.ABNORMAL_CLOSURE if rcvd is None else rcvd.code
        return code

    @property
    def close_reason(self) -> str | None:
        """The close reason the peer sent; ``None`` until closed (``""`` once aborted)."""
        reason = self.protocol.close_reason
        if reason is None and self._aborted:
            rcvd = self.protocol.close_rcvd
            return "" if rcvd is None else rcvd.reason
        return reason

    @property
    def path(self) -> str:
        """The request path, ``request.path``, as a property of its own.

        For code ported from the legacy API of ``websockets`` (``websockets.legacy``), where
        handlers read ``websocket.path``. ``""`` when there is no request.
        """
        return "" if self.request is None else self.request.path

    @property
    def request_headers(self) -> Headers:
        """The request headers, ``request.headers``, as a property of its own.

        For code ported from the legacy API of ``websockets``, where handlers read
        ``websocket.request_headers``. Empty when there is no request.
        """
        return Headers() if self.request is None else self.request.headers

    @property
    def response_headers(self) -> Headers:
        """The response headers, ``response.headers``, as a property of its own.

        For code ported from the legacy API of ``websockets``, which reads
        ``websocket.response_headers``. Empty when there is no response.
        """
        return Headers() if self.response is None else self.response.headers

    @property
    def open(self) -> bool:
        """Whether the connection is open: ``state is State.OPEN``.

        A shorthand for code ported from the legacy API of ``websockets``. Don't test it before
        sending: another thread or the peer may close the connection in between; send and
        catch :exc:`~syncws.exceptions.ConnectionClosed` instead.
        """
        return self.protocol.state is State.OPEN

    @property
    def closed(self) -> bool:
        """Whether the connection is closed: ``state is State.CLOSED``.

        A shorthand for code ported from the legacy API of ``websockets``. It is ``False``
        during the closing handshake; :meth:`wait_closed` waits for the end of it.
        """
        return self.protocol.state is State.CLOSED

    # Receiving.

    @overload
    def recv(self, timeout: float | None = None, decode: None = None) -> Data: ...

    @overload
    def recv(self, timeout: float | None = None, *, decode: Literal[True]) -> str: ...

    @overload
    def recv(self, timeout: float | None = None, *, decode: Literal[False]) -> bytes: ...

    @overload
    def recv(self, timeout: float | None, decode: Literal[True]) -> str: ...

    @overload
    def recv(self, timeout: float | None, decode: Literal[False]) -> bytes: ...

    @overload
    def recv(self, timeout: float | None = None, decode: bool | None = None) -> Data: ...

    def recv(self, timeout: float | None = None, decode: bool | None = None) -> Data:
        """Receive the next message.

        Args:
            timeout: seconds to wait; ``None`` (the default) waits until a message comes,
                and ``0`` only returns a message that is already here. A timeout never
                loses or splits a message: it stays queued for the next call.
            decode: ``None`` returns text as :class:`str` and binary as :class:`bytes`;
                ``False`` returns :class:`bytes` for both (no decoding cost); ``True``
                returns :class:`str` for both.

        Raises:
            TimeoutError: no message came in time.
            ConnectionClosed: the connection is closed and every message was received.
            ConcurrencyError: another thread is receiving on this connection.
            TypeError: ``timeout`` is not a number.
            ValueError: ``timeout`` is negative, infinite or NaN.
            UnicodeDecodeError: ``decode=True`` and a binary message is not valid UTF-8. The
                message is consumed; text messages are valid UTF-8, checked as they arrive.
        """
        if timeout is not None:
            check_timeout("timeout", timeout)
        queue = self._queue
        queue.start_get()
        try:
            message = queue.take(decode)
            if message is not None:
                return message
            protocol = self.protocol
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                if protocol.parser_exc is not None:
                    # The peer broke the protocol and every message before its error was
                    # received: fail now if the Close waited (under the protocol lock, so
                    # after the parser is done), and say so without waiting for the end of
                    # the closing handshake.
                    self._fail_pending()
                    raise protocol.close_exc from protocol.parser_exc
                if self._reading.claim():
                    # Nobody reads the socket: read it here, with no thread hand-off. Unless
                    # the reader thread queued a message and let go of the socket after the
                    # look at the queue above: then the socket may have nothing more to say.
                    try:
                        if not len(queue):
                            self._reading.read(deadline)
                    finally:
                        self._reading.release()
                else:
                    # The reader thread is reading: it hands the message over.
                    queue.wait(remaining(deadline))
                message = queue.take(decode)
                if message is not None:
                    return message
                if queue.closed:
                    raise EOFError("no more messages")
        except EOFError:
            raise self._closed_exception() from self._transport_error
        finally:
            queue.end_get()

    def recv_streaming(self, decode: bool | None = None) -> Generator[Data, None, None]:
        """Receive the next message fragment by fragment, as the fragments arrive.

        Leaving the loop before the last fragment (``break``, an exception) drops the rest of
        the message, whether it arrived already or not: the next :meth:`recv` returns the
        next message, whole.

        Args:
            decode: as in :meth:`recv`.

        Raises:
            ConnectionClosed: the connection closed before or during the message.
            ConcurrencyError: another thread is receiving on this connection.
            UnicodeDecodeError: ``decode=True`` and a binary fragment is not valid UTF-8.
        """
        if self.protocol.pending_failure is not None and not len(self._queue):
            self._fail_pending()
        # Fragments come through the reader thread: make sure it reads.
        self._reading.wake()
        try:
            yield from self._queue.get_iter(decode)
        except EOFError:
            raise self._closed_exception() from self._transport_error

    def __iter__(self) -> Iterator[Data]:
        """Receive messages until the connection closes.

        Iteration ends when it closes normally (1000 or 1001) and raises
        :exc:`~syncws.exceptions.ConnectionClosedError` otherwise.
        """
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    # Sending.

    def send(
        self,
        message: Data | bytearray | memoryview | Iterable[Data | bytearray | memoryview],
        timeout: float | None = None,
        *,
        text: bool | None = None,
        compress: bool = True,
    ) -> None:
        """Send a message: text for :class:`str`, binary for bytes-like objects.

        An iterable of :class:`str` or of bytes-like objects is sent as one fragmented
        message, one frame per item. An empty iterable is not a message: it raises
        :exc:`ValueError` (send ``""`` or ``b""`` for an empty message). Any number of threads
        may send: messages never interleave.

        ``text`` overrides the type: ``text=True`` sends bytes-like objects as a text message
        as they are, without decoding them (UTF-8 that the caller already has, such as
        encoded JSON: the caller vouches that they are valid UTF-8, else the peer fails the
        connection with 1007); ``text=False`` sends :class:`str` as a binary message, encoded
        in UTF-8. The same holds for the fragments of an iterable.

        Returns once the kernel took every byte.

        Args:
            message: what to send.
            timeout: seconds to wait for the connection and the socket. If it expires before
                any byte of the message was queued, :exc:`TimeoutError` is raised and nothing
                was sent; if it expires later, the connection is aborted as well, since half a
                message can't be taken back. ``None`` waits as long as the write timeout
                allows.
            text: ``True`` for a text message, ``False`` for a binary one, whatever the type
                of ``message``; ``None`` decides by its type.
            compress: ``False`` sends this message uncompressed, when compression was
                negotiated.

        Raises:
            TypeError: the message is not of a type that can be sent, ``timeout`` is not
                a number, or ``text`` is neither a :class:`bool` nor ``None``.
            ValueError: the message is an empty iterable, or ``timeout`` is negative,
                infinite or NaN.
            ConnectionClosed: the connection is closed or closing (also for an empty
                iterable).
            TimeoutError: see ``timeout``; also when the peer stopped reading for longer than
                ``write_timeout`` (then the connection is aborted).
        """
        if timeout is not None:  # every message: skip the call in the common case
            check_timeout("timeout", timeout)
        if text is not None and text is not True and text is not False:
            check_bool("text", text, none="to send str as text and bytes as binary")
        deadline = None if timeout is None else time.monotonic() + timeout
        # The opcode is chosen inline: no call per message for the type.
        if isinstance(message, str):
            opcode = Opcode.BINARY if text is False else Opcode.TEXT
            self._send_message(opcode, message.encode(), deadline, compress)
        elif isinstance(message, bytes):
            self._send_message(Opcode.TEXT if text else Opcode.BINARY, message, deadline, compress)
        elif isinstance(message, bytearray | memoryview):
            self._send_message(
                Opcode.TEXT if text else Opcode.BINARY, bytes(message), deadline, compress
            )
        elif isinstance(message, Mapping):
            raise TypeError("a mapping is not a message; send its JSON encoding")
        elif isinstance(message, Iterable):
            self._send_fragments(iter(message), deadline, compress, text)
        else:
            raise TypeError(f"message must be str, bytes-like or an iterable, not {message!r}")

    def send_many(
        self,
        messages: Iterable[Data | bytearray | memoryview],
        timeout: float | None = None,
        *,
        text: bool | None = None,
        compress: bool = True,
    ) -> None:
        """Send several messages, each one whole, in as few system calls as the socket allows.

        Where a loop of :meth:`send` makes one system call per message, this frames every
        message first and hands them to the kernel together (up to 64 per call): sending
        many small messages costs a fraction of the CPU. The messages go out in order, and no
        other thread's message comes between them. An empty iterable sends nothing.

        Returns once the kernel took every byte.

        Args:
            messages: the messages: each :class:`str` is a text message and each bytes-like
                object a binary one (an iterable inside it is not a fragmented message here).
            timeout: as in :meth:`send`, for all the messages together.
            text: as in :meth:`send`, for every message.
            compress: as in :meth:`send`, for every message.

        Raises:
            TypeError: a message is neither :class:`str` nor bytes-like (then nothing is
                sent), ``timeout`` is not a number, or ``text`` is neither a :class:`bool`
                nor ``None``.
            ValueError: ``timeout`` is negative, infinite or NaN.
            ConnectionClosed: the connection is closed or closing.
            TimeoutError: as in :meth:`send`.
        """
        if timeout is not None:
            check_timeout("timeout", timeout)
        if text is not None and text is not True and text is not False:
            check_bool("text", text, none="to send str as text and bytes as binary")
        frames: list[tuple[Opcode, bytes]] = []
        for message in messages:
            if isinstance(message, str):
                frames.append((Opcode.BINARY if text is False else Opcode.TEXT, message.encode()))
            elif isinstance(message, bytes | bytearray | memoryview):
                frames.append((Opcode.TEXT if text else Opcode.BINARY, bytes(message)))
            else:
                raise TypeError(f"each message must be str or bytes-like, not {message!r}")
        if not frames:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        opcode, data = frames[0]
        self._send_message(opcode, data, deadline, compress, frames[1:])

    def _send_message(
        self,
        opcode: Opcode,
        data: bytes,
        deadline: float | None,
        compress: bool,
        more: list[tuple[Opcode, bytes]] | None = None,
    ) -> None:
        # The hot path of send(): each call and lock here costs every message.
        if not self._send_lock.acquire(timeout=-1 if deadline is None else remaining(deadline)):
            raise TimeoutError("another thread is still sending")
        try:
            with self._protocol_lock:
                protocol = self.protocol
                if protocol.state is not State.OPEN or self._aborted:
                    raise protocol.close_exc
                if not compress:
                    self._skip_compression()
                protocol.send_message(opcode, data)
                if more is not None:  # send_many(): the other messages, behind the first
                    for next_opcode, next_data in more:
                        if not compress:
                            self._skip_compression()
                        protocol.send_message(next_opcode, next_data)
                # Sending a message changes no state: no close timer to arm here.
                self._writer.queue(protocol.data_to_send())
            self._flush_or_abort(deadline)
        finally:
            self._send_lock.release()

    def _send_fragments(
        self,
        fragments: Iterator[Any],
        deadline: float | None,
        compress: bool,
        text: bool | None = None,
    ) -> None:
        try:
            first = next(fragments)
        except StopIteration:
            # Nothing to send is a mistake, whatever the connection's state: say which one.
            with self._protocol_lock:
                self._check_open()
            raise ValueError(
                'an empty iterable is not a message; send "" or b"" for an empty message'
            ) from None
        # Every fragment has the type of the first; the message is text for str, unless
        # ``text`` says otherwise.
        if isinstance(first, str):
            strings = True
        elif isinstance(first, bytes | bytearray | memoryview):
            strings = False
        else:
            raise TypeError(f"fragments must be str or bytes-like, not {first!r}")
        if text is None:
            text = strings
        if not self._send_lock.acquire(timeout=-1 if deadline is None else remaining(deadline)):
            raise TimeoutError("another thread is still sending")
        try:
            with self._protocol_lock:
                self._check_open()
                if not compress:
                    self._skip_compression()
                self.protocol.send_message(
                    Opcode.TEXT if text else Opcode.BINARY,
                    first.encode() if strings else bytes(first),
                    fin=False,
                )
                self._collect_output()
            self._flush_or_abort(deadline)
            try:
                for fragment in fragments:
                    if strings and isinstance(fragment, str):
                        data = fragment.encode()
                    elif not strings and isinstance(fragment, bytes | bytearray | memoryview):
                        data = bytes(fragment)
                    else:
                        raise TypeError("all fragments of a message must be of the same type")
                    with self._protocol_lock:
                        self._check_open()
                        self.protocol.send_continuation(data, fin=False)
                        self._collect_output()
                    self._flush_or_abort(deadline)
            except Exception:
                # Half a message went out: the connection can't go on (RFC 6455 §5.4).
                with self._protocol_lock:
                    if self.protocol.state is State.OPEN:
                        self.protocol.fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                        self._collect_output()
                self._flush(wait=False)
                raise
            with self._protocol_lock:
                self._check_open()
                self.protocol.send_continuation(b"", fin=True)
                self._collect_output()
            self._flush_or_abort(deadline)
        finally:
            self._send_lock.release()

    def ping(self, data: str | bytes | None = None) -> PingWaiter:
        """Send a ping.

        Args:
            data: the ping's payload, :class:`str` (encoded in UTF-8) or bytes-like, at most
                125 bytes; by default 4 random bytes.

        Returns:
            A waiter: ``waiter.wait(timeout)`` returns the latency once the pong comes.

        Raises:
            ConnectionClosed: the connection is closed.
            ConcurrencyError: a ping with the same payload still waits for its pong.
            TypeError: ``data`` is neither :class:`str`, bytes-like nor ``None``.
            ValueError: ``data`` is longer than 125 bytes.
        """
        if data is not None:
            data = _control_payload(data)
        with self._protocol_lock:
            self._check_open()
            # The payload is checked and the connection open: sending it cannot fail.
            data, waiter = self._keepalive.add(data)
            self.protocol.send_ping(data)
            self._collect_output()
        self._flush_or_abort(None)
        # Read the pong as it comes, even if nobody receives: it gives the latency.
        self._reading.wake()
        return waiter

    def _send_keepalive_ping(self) -> bytes | None:
        """Send a keepalive ping without waiting, for the keepalive part; its payload, or
        ``None`` when the connection is not open anymore."""
        with self._protocol_lock:
            if self.protocol.state is not State.OPEN:
                return None
            data, _ = self._keepalive.add(None)
            self.protocol.send_ping(data)
            self._collect_output()
        if not self._flush_soon():
            return None
        # Read the pong as it comes, even if nobody receives.
        self._reading.wake()
        return data

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (send a Close with ``code``), without waiting."""
        with self._protocol_lock:
            if self.protocol.state is State.OPEN:
                self.protocol.fail(code, reason)
                self._collect_output()
        self._flush_soon()

    def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited pong, as a one-way heartbeat.

        Args:
            data: the pong's payload, :class:`str` (encoded in UTF-8) or bytes-like, at most
                125 bytes.

        Raises:
            ConnectionClosed: the connection is closed.
            TypeError: ``data`` is neither :class:`str` nor bytes-like.
            ValueError: ``data`` is longer than 125 bytes.
        """
        data = _control_payload(data)
        with self._protocol_lock:
            self._check_open()
            self.protocol.send_pong(data)
            self._collect_output()
        self._flush_or_abort(None)

    # Closing.

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Run the closing handshake and wait until the connection is closed.

        It is safe to call from any thread, any number of times. Messages that were received
        before can still be read with :meth:`recv`.

        Args:
            code: the close code: 1000, 1001, another code that may be sent in a Close frame
                (RFC 6455 §7.4), or an application's code from 3000 to 4999.
            reason: the close reason, at most 123 bytes once encoded in UTF-8.

        Blocks for at most ``close_timeout`` (plus ``write_timeout`` if the peer stopped
        reading); then the TCP connection is aborted.

        Raises:
            TypeError: ``code`` is not an integer or ``reason`` not a :class:`str`.
            ValueError: ``code`` may not be sent in a Close frame, or ``reason`` is longer
                than 123 bytes once encoded. The arguments are checked on every call, even
                when the connection is closed already.
        """
        check_close(code, reason)
        self._queue_close(code, reason)
        try:
            self._flush(wait=True)
        except (OSError, TimeoutError):
            self.abort()
        self._wait_reader(self.close_timeout)

    def _queue_close(self, code: int, reason: str) -> None:
        """Queue a Close, unless the closing handshake has started, and read on.

        When the peer broke the protocol and its error waits behind messages, the Close has
        the error's code instead.
        """
        protocol = self.protocol
        with self._protocol_lock:
            if protocol.pending_failure is None and protocol.state is State.OPEN:
                protocol.send_close(code, reason)
                self._collect_output()
        if protocol.pending_failure is not None:
            self._fail_pending()  # it reads on too
            return
        # Keep reading so that the peer's Close is seen, even if nobody receives.
        self._queue.resume()
        self._reading.start_closing()

    def _start_close(self, code: int, reason: str = "") -> None:
        """Send a Close without waiting for anything, e.g. for a server shutting down."""
        self._queue_close(code, reason)
        self._flush_soon()

    def _send_prepared(self, opcode: Opcode, data: bytes, frame: bytes | None) -> bool:
        """Queue a whole message without blocking, for :func:`~syncws.connection.broadcast`.

        Args:
            opcode: TEXT or BINARY.
            data: the payload.
            frame: the serialized frame when it is the same for every connection that has
                no extension and does not mask; otherwise it is built here.

        Returns:
            ``False`` when the message was skipped: a fragmented message is being sent, the
            connection is not open, or its unsent backlog is over ``write_limit``.
        """
        # No send lock: a whole message goes in between two others under the protocol lock,
        # so a send() in another thread does not make broadcast skip this connection. Only
        # the frames of a fragmented message must stay together.
        with self._protocol_lock:
            protocol = self.protocol
            if (
                protocol.state is not State.OPEN
                or protocol.sending_fragments
                or self._writer.backlog() > self.write_limit
            ):
                self._broadcast_skipped += 1
                return False
            if frame is not None and not protocol.extensions and not self._masks:
                protocol.send_data(frame)
                protocol.frames_sent += 1
                protocol.messages_sent += 1
            elif opcode is Opcode.TEXT:
                protocol.send_text(data)
            else:
                protocol.send_binary(data)
            self._collect_output()
        self._flush_soon()
        return True

    def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the connection is closed.

        Like every timeout in syncws, an expired ``timeout`` raises :exc:`TimeoutError`, as
        :meth:`Server.wait_closed <syncws.server.Server.wait_closed>` does.

        Args:
            timeout: seconds to wait; ``None`` waits as long as it takes, ``0`` only checks.

        Raises:
            TimeoutError: it is still open after ``timeout`` seconds.
            TypeError: ``timeout`` is not a number.
            ValueError: ``timeout`` is negative, infinite or NaN.
        """
        check_timeout("timeout", timeout)
        if not self._closed.wait(timeout):
            raise TimeoutError("connection is still open")

    def abort(self) -> None:
        """Close the TCP connection at once, without a closing handshake.

        Blocked calls return: :meth:`recv` and :meth:`send` raise
        :exc:`~syncws.exceptions.ConnectionClosedError` (code 1006 unless a Close came).
        """
        self._aborted = True
        self.transport.abort()
        self._queue.close()
        self._reading.stop()

    # Reading, for the reading part.

    @property
    def _reader(self) -> threading.Thread | None:
        """The last reader thread started, to join it."""
        return self._reading.thread

    def _internal_error(self, exc: Exception) -> None:
        """Fail the connection with 1011 after an unexpected error in syncws's own code (the
        reading part or a keepalive timer logged it): send the Close, make every receiver
        raise ConnectionClosedError now, and read on until the end of the closing handshake."""
        with self._protocol_lock:
            self.protocol.keep_failure(exc, first=True)
        self._fail(CloseCode.INTERNAL_ERROR, "internal error")
        self._queue.resume()
        self._queue.poke()
        self._reading.start_closing()

    def _reader_name(self) -> str:
        """The name of the connection's reader thread."""
        return f"syncws-reader-{self.id.hex[:8]}"

    def _keepalive_timed_out(self) -> None:
        """No pong came within ``ping_timeout``: fail the connection."""
        self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    def _reading_failed(self, exc: BaseException) -> None:
        if not self._aborted:
            self._transport_error = exc
            self.logger.debug("connection broken: %s", exc)

    def _receive_buffer(self, size: int) -> memoryview:
        """Where the socket writes what it reads next (see :meth:`Protocol.get_buffer`)."""
        with self._protocol_lock:
            return self.protocol.reader.get_buffer(size)

    def _release_receive_buffer(self) -> None:
        """Let go of that buffer, if nothing in it waits to be read: the reading part waits
        long for bytes."""
        with self._protocol_lock:
            self.protocol.reader.let_go()

    def _receive(self, size: int, block: bool) -> bool:
        """Feed bytes read from the socket to the protocol, write its answers, queue messages.

        Args:
            size: how many bytes the socket wrote into the buffer from
                :meth:`_receive_buffer`.
            block: wait for room in the queue (the reader thread does; the thread in
                ``recv()`` doesn't, since it is the one that makes room).

        Returns:
            Whether a message was handed to a ``recv()`` waiting for it.
        """
        protocol = self.protocol
        writer = self._writer
        with self._protocol_lock:
            protocol.buffer_updated(size)
            events = protocol.events_received()
            # Most reads bring data frames only: nothing to answer, no close timer to arm.
            answered = bool(protocol.writes) or protocol.eof_sent
            if answered:
                self._collect_output()
                backlog = writer.backlog()
        if answered:
            # Over write_limit, wait for the thread that writes and for the socket rather
            # than read more: answers (pongs) to what comes in would pile up.
            writer.flush(wait=backlog > self.write_limit, wait_socket=True)
        return self._receive_events(events, block=block)

    def _receive_events(self, events: Iterable[Event], *, block: bool = True) -> bool:
        """Queue the events received; whether a message was handed over."""
        handed = False
        put = self._queue.put
        for event in events:
            # Once per frame: no call but the queue's for a data frame.
            if not isinstance(event, Frame):
                continue
            opcode = event.opcode
            if opcode in _DATA_OPCODES:
                try:
                    handed |= put(event, block)
                except EOFError:
                    break  # the queue is closed: the connection is over
            elif opcode is Opcode.PONG:
                self._keepalive.acknowledge(event.data)
        if self.protocol.pending_failure is not None:
            self._failure_found()
        return handed

    def _failure_found(self) -> None:
        """The peer broke the protocol after messages that are queued (deliver before failing):
        fail once they are received, or after :data:`FAILURE_GRACE` if they are not."""
        # Only complete messages wait to be received: the fragments of a message that the
        # error interrupted will never make one.
        if not len(self._queue):
            self._fail_pending()
        elif self._failure_timer is None:
            self._failure_timer = call_later(FAILURE_GRACE, self._fail_pending)

    def _fail_pending(self) -> None:
        """Send the Close for the peer's error that waited behind messages."""
        with self._protocol_lock:
            failure = self.protocol.pending_failure
            if failure is None:
                return
            self.protocol.fail(failure.code, str(failure))
            self._collect_output()
        if self._failure_timer is not None:
            self._failure_timer.cancel()
        # Read until the end of the connection, whoever receives; a recv() waiting for a
        # message raises now.
        self._queue.resume()
        self._queue.poke()
        self._reading.start_closing()
        self._flush_soon()

    def _finish(self) -> None:
        """Tear down, in the reader thread, once the connection is over."""
        with self._protocol_lock:
            if not self.protocol.reader.eof:
                self.protocol.receive_eof()
            self.protocol.data_to_send()  # nothing can be written anymore
            self._writer.close()
        self._queue.close()
        self._keepalive.close()
        for timer in (self._close_timer, self._failure_timer):
            if timer is not None:
                timer.cancel()
        try:
            self.transport.close()
        finally:
            # Nothing calls the connection back anymore: without a reference cycle through
            # its parts, it is freed as soon as the application lets go of it.
            self._reading.detach()
            self._keepalive.detach(self.protocol)
            self._closed.set()
            if self.protocol.debug:  # checked once per connection, as for frames
                self.logger.debug(
                    "connection closed: code %s %s",
                    self.protocol.close_code,
                    self.protocol.close_reason,
                )

    def _wait_reader(self, timeout: float | None) -> None:
        """Read until the connection is closed; abort it if that takes longer than ``timeout``.

        The socket is read in this thread when nobody else reads it: closing needs no thread.
        """
        if self._reading.in_reader_thread():
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            if self._reading.claim():
                try:
                    self._reading.read(deadline)
                except TimeoutError:
                    self.abort()
                finally:
                    self._reading.release()
            elif not self._closed.wait(remaining(deadline)):
                self.abort()
                self._closed.wait()

    # Writing.

    def _collect_output(self) -> None:
        """Move what the protocol wants to send to the output list; protocol lock held."""
        protocol = self.protocol
        if protocol.writes or protocol.eof_sent:
            self._writer.queue(protocol.data_to_send(), eof=protocol.eof_sent)
        # While the connection is open and writing, no close timeout is due: skip the call.
        if (
            (protocol.state is not State.OPEN or protocol.eof_sent)
            and self._close_timer is None
            and self.close_timeout is not None
            and protocol.close_expected()
        ):
            self._close_timer = call_later(self.close_timeout, self._close_timed_out)

    def _flush(
        self, *, wait: bool, wait_socket: bool | None = None, deadline: float | None = None
    ) -> None:
        """Write what is queued: see :meth:`Writer.flush <syncws.writing.Writer.flush>`."""
        self._writer.flush(wait=wait, wait_socket=wait_socket, deadline=deadline)

    def _flush_soon(self) -> bool:
        """Write what the socket takes now, the rest later, without waiting for anything;
        abort the connection if it is broken. Returns ``False`` then."""
        try:
            self._flush(wait=False, wait_socket=False)
        except OSError:
            self.abort()
            return False
        return True

    def _flush_or_abort(self, deadline: float | None) -> None:
        """Flush for a caller that waits; on failure, abort and raise what the caller should."""
        try:
            self._writer.flush(wait=True, deadline=deadline)
        except TimeoutError:
            self.abort()
            raise TimeoutError("the peer stopped reading: connection aborted") from None
        except OSError as exc:
            self._transport_error = exc
            self.abort()
            self._closed.wait(self.close_timeout)
            raise self._closed_exception() from exc

    # Timers.

    def _close_timed_out(self) -> None:
        """Abort the connection when the closing handshake takes too long, in the timer thread."""
        self._close_timer = None
        if not self._closed.is_set():
            self.logger.debug("closing handshake timed out; aborting connection")
            self.abort()

    # Helpers.

    def _skip_compression(self) -> None:
        """Send the next message uncompressed; protocol lock held."""
        for extension in self.protocol.extensions:
            if isinstance(extension, PerMessageDeflate):
                extension.skip_next_message()

    def _check_open(self) -> None:
        """Raise ConnectionClosed unless the connection is open; protocol lock held.

        At once: a connection that is closing or failed raises without waiting for the end.
        """
        if self.protocol.state is not State.OPEN or self._aborted:
            raise self.protocol.close_exc

    def _closed_exception(self) -> ConnectionClosed:
        """The exception for using the connection once it closed.

        When the connection is still closing, wait a little for it to finish, so that the
        exception tells what the peer sent.
        """
        if self.protocol.state is not State.OPEN and not self._reading.in_reader_thread():
            self._closed.wait(self.close_timeout)
        return self.protocol.close_exc


class _Flag:
    """Set once, waited for by any number of threads: a :class:`threading.Event` in a lock.

    A connection keeps one for its whole life, so it is worth being small: a lock, held until
    :meth:`set`, where an Event holds a condition variable and a lock.
    """

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._set = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        """Set the flag; call it once."""
        self._set = True
        self._lock.release()

    def is_set(self) -> bool:
        # Not the lock's state: a thread in wait() holds the lock for a moment.
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set; ``False`` if it still isn't after ``timeout`` seconds."""
        if not self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        self._lock.release()
        return True


# What broadcast() returns has the type of what it was given: ServerConnection for
# server.connections, a subclass for an application's own set of connections.
_C = TypeVar("_C", bound=Connection)


def broadcast(
    connections: Iterable[_C],
    message: Data,
    *,
    text: bool | None = None,
    raise_exceptions: bool = False,
) -> list[_C]:
    """Send a message to many connections, never waiting for a slow one.

    The frame is built once for every connection that shares its encoding (server-side
    connections without compression). The message goes in between the messages that other
    threads send on the same connection. A connection is skipped when it is not open, when
    it is in the middle of a fragmented message, or when its unsent backlog is over its
    ``write_limit`` (a client that reads too slowly): broadcast never blocks on it. Skipped
    connections are logged and returned, so that the application can count them or close
    them (with 1008 or 1013, for instance).

    Args:
        connections: where to send.
        message: :class:`str` for text, bytes-like for binary.
        text: ``True`` sends bytes-like objects as text, without decoding them (they must be
            valid UTF-8); ``False`` sends :class:`str` as binary, encoded in UTF-8; ``None``
            decides by the type of ``message``, as for :meth:`Connection.send`.
        raise_exceptions: raise an :exc:`ExceptionGroup` of the errors instead of skipping
            connections that failed (Python 3.11+).

    Returns:
        The connections that did not get the message, as a list of the type of those given
        (``list[ServerConnection]`` for ``server.connections``).

    Raises:
        TypeError: ``message`` is neither :class:`str` nor bytes-like, or ``text`` is
            neither a :class:`bool` nor ``None``.
    """
    if text is not None and text is not True and text is not False:
        check_bool("text", text, none="to send str as text and bytes as binary")
    if isinstance(message, str):
        opcode = Opcode.BINARY if text is False else Opcode.TEXT
        data = message.encode()
    elif isinstance(message, bytes | bytearray | memoryview):
        opcode = Opcode.TEXT if text else Opcode.BINARY
        data = bytes(message)
    else:
        raise TypeError(f"message must be str or bytes-like, not {message!r}")
    frame: bytes | None = None
    skipped: list[_C] = []
    errors: list[Exception] = []
    # A snapshot: server.connections changes as clients come and go, and a set that changes
    # during iteration raises RuntimeError. list() of a set is atomic under the GIL.
    for connection in list(connections):
        if frame is None and not connection._masks and not connection.protocol.extensions:
            frame = Frame(opcode, data).serialize(mask=False)
        try:
            sent = connection._send_prepared(opcode, data, frame)
        except Exception as exc:
            errors.append(exc)
            sent = False
        if not sent:
            skipped.append(connection)
    if skipped:
        _broadcast_logger.info("broadcast skipped %d of its connections", len(skipped))
    if errors and raise_exceptions:
        if sys.version_info >= (3, 11):
            raise ExceptionGroup("broadcast failed", errors)  # noqa: F821
        raise errors[0]
    return skipped


def _control_payload(data: object) -> bytes:
    """The payload of a ping or a pong, checked: :class:`str` or bytes-like, 125 bytes at most.

    Raises:
        TypeError: ``data`` is neither :class:`str` nor bytes-like.
        ValueError: ``data`` is longer than 125 bytes (RFC 6455 §5.5).
    """
    if isinstance(data, str):
        payload = data.encode()
    elif isinstance(data, bytes | bytearray | memoryview):
        payload = bytes(data)
    else:
        raise TypeError(
            f"data must be str or bytes-like, the payload of the control frame; got"
            f" {type(data).__name__} {data!r}"
        )
    if len(payload) > 125:
        raise ValueError(
            f"data must be at most 125 bytes, the limit of a control frame; got {len(payload)}"
        )
    return payload


def check_close(code: object, reason: object) -> None:
    """Check the arguments of :meth:`Connection.close` and :meth:`Server.close
    <syncws.server.Server.close>`.

    Raises:
        TypeError: ``code`` is not an integer or ``reason`` not a :class:`str`.
        ValueError: ``code`` may not be sent in a Close frame, or ``reason`` is longer than
            123 bytes once encoded (RFC 6455 §5.5.1).
    """
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"code must be an integer close code; got {type(code).__name__} {code!r}")
    if not valid_close_code(code):
        raise ValueError(
            f"code {code} may not be sent in a Close frame: use 1000 (normal closure), 1001,"
            " 1008, 1011, another code of RFC 6455 §7.4.1, or 3000-4999"
        )
    if not isinstance(reason, str):
        raise TypeError(f"reason must be str; got {type(reason).__name__} {reason!r}")
    size = len(reason.encode())
    if size > 123:
        raise ValueError(f"reason must be at most 123 bytes once encoded in UTF-8; got {size}")


def _sockname(sock: socket.socket, *, remote: bool) -> Any:
    try:
        return sock.getpeername() if remote else sock.getsockname()
    except OSError:
        return None

