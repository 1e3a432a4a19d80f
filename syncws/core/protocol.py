"""The WebSocket framing state machine (RFC 6455 §5-§7), without any I/O.

A :class:`Protocol` takes bytes in and gives events and bytes out::

    protocol.receive_data(data)            # bytes from the network
    protocol.receive_eof()                 # the peer closed its side of the connection
    protocol.events_received()             # -> frames (and, in a handshake, a request/response)
    protocol.data_to_send()                # -> bytes to write, in order
    protocol.send_text(b"...")             # queue frames; fetch them with data_to_send()

It answers pings and echoes Close frames by itself; the I/O layer only flushes what it is given,
closes the transport's write side once :attr:`~Protocol.eof_sent` is set and every byte before it
was written, and arms a close timeout while :meth:`~Protocol.close_expected` is true.
"""

from __future__ import annotations

import codecs
import enum
import logging
import secrets
from collections.abc import Generator
from typing import TypeAlias

from ..exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)
from .extensions.base import Extension
from .frames import (
    _OPCODES,
    Close,
    CloseCode,
    Frame,
    FrameHeader,
    Opcode,
    encode_frame,
    encode_header,
    parse_frame,
    parse_messages,
    read_header,
    read_payload,
    take_payload,
    validate_utf8_prefix,
)
from .http11 import Request, Response
from .streams import StreamReader

__all__ = ["FRAME_OVERHEAD", "Event", "Protocol", "Side", "State"]

Event: TypeAlias = Request | Response | Frame
"""What :meth:`Protocol.events_received` returns: frames, and in a handshake a request or a
response."""

FRAME_OVERHEAD = 128
"""What each frame of a message after the first costs against ``max_size``, beyond its payload.

It is about what a fragment takes in memory, beyond its payload, while the I/O layer holds it
until the end of its message, on 64-bit CPython: the :class:`~syncws.core.frames.Frame` (80
bytes), the header of its ``bytes`` payload (33 bytes, allocated in multiples of 8) and its
entry in the message queue (8 bytes). So a flood of tiny or empty fragments fails once it
would take about ``max_size`` bytes (after ``max_size / 128`` frames), while a message in
fragments of a few hundred bytes or more is limited by its size rather than by its number of
frames (RFC 6455 §5.4 sets no limit on it)."""

_MASK_POOL_SIZE = 1024
# An unmasked payload this large is written after its header, not copied behind it: the
# system call gathers both, and copying would cost more than the second buffer.
_COPY_BELOW = 16384

# The opcode of each first byte that parse_messages() takes.
_MESSAGE_OPCODES = {0x81: Opcode.TEXT, 0x82: Opcode.BINARY}

# A Close with one of these codes on both sides is a normal closure.
_OK_CLOSE_CODES = frozenset(
    {CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD}
)


class Side(enum.Enum):
    """Which end of the connection a protocol runs on."""

    SERVER = 0
    CLIENT = 1


class State(enum.IntEnum):
    """The state of a WebSocket connection (RFC 6455 §4, §7). Compare with ``is``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Protocol:
    """The sans-I/O WebSocket protocol, shared by both sides.

    Args:
        side: which end of the connection this is.
        state: the initial state; :attr:`~syncws.core.protocol.State.OPEN` to use the protocol
            without a handshake.
        max_size: the largest message accepted, in bytes, after decompression. Each frame of a
            message after the first costs :data:`FRAME_OVERHEAD` (128) bytes more against it,
            about what holding the frame takes in memory: a message in 1000 frames may hold
            ``max_size - 999 * 128`` bytes. Larger messages fail the connection with 1009.
            ``None`` for no limit, neither on the size nor on the number of frames: a message
            then takes as much memory as the peer sends, so only for trusted peers.
            A ``(message, frame)`` pair, as in websockets, also limits the payload of each
            frame: a frame whose length is over it fails with 1009 before its payload is
            read, and so does a compressed frame that decompresses to more. Either may be
            ``None``; an integer or ``None`` alone limits the message only.
        logger: where to log; frames are logged at DEBUG level.
    """

    # Slots: every connection has one. __dict__ stays for subclasses' own attributes.
    __slots__ = (
        "__dict__",
        "_frame_limit",
        "_mask_pool",
        "_mask_position",
        "_recv_opcode",
        "_recv_size",
        "_recv_transformed",
        "_send_expect_cont",
        "_utf8",
        "_utf8_started",
        "bytes_received",
        "close_rcvd",
        "close_rcvd_then_sent",
        "close_sent",
        "debug",
        "defer_failures",
        "eof_sent",
        "events",
        "extensions",
        "frames_received",
        "frames_sent",
        "logger",
        "max_frame_size",
        "max_size",
        "messages_received",
        "messages_sent",
        "parser",
        "parser_exc",
        "pending_failure",
        "pings_sent",
        "pongs_received",
        "reader",
        "side",
        "state",
        "writes",
    )

    def __init__(
        self,
        side: Side,
        *,
        state: State = State.OPEN,
        max_size: int | tuple[int | None, int | None] | None = 2**20,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.side = side
        self.state = state
        if isinstance(max_size, tuple):
            message_limit, frame_limit = max_size
        else:
            message_limit, frame_limit = max_size, None
        self.max_size: int | None = message_limit
        """The largest message accepted, in bytes; ``None`` for no limit."""
        self.max_frame_size: int | None = frame_limit
        """The largest frame payload accepted, in bytes; ``None`` for no limit but the
        message's."""
        # What a frame's header may announce: no frame can be larger than its message.
        self._frame_limit = (
            message_limit
            if frame_limit is None
            else frame_limit
            if message_limit is None
            else min(message_limit, frame_limit)
        )
        # ... unless an extension transforms it: a compressor makes data that doesn't compress
        # a little larger (zlib's stored blocks, at most 5 bytes per 128 with memLevel 1), and
        # the limits apply to what the extension decodes anyway. With extensions, the header
        # may announce this much; a frame that no extension transforms is held to the limit
        # above, once its header says so (_check_data_frame).
        self._transformed_frame_limit = (
            None if self._frame_limit is None else self._frame_limit + (self._frame_limit >> 4) + 64
        )
        if logger is None:
            logger = logging.getLogger("syncws.client" if side is Side.CLIENT else "syncws.server")
        self.logger = logger
        # Checked once: formatting every frame for a disabled logger would cost more than
        # the rest of the frame handling.
        self.debug = logger.isEnabledFor(logging.DEBUG)

        self.extensions: list[Extension] = []
        """Extensions negotiated in the opening handshake, in the order they apply."""

        self.close_rcvd: Close | None = None
        """The Close frame received from the peer, if any."""
        self.close_sent: Close | None = None
        """The Close frame sent to the peer, if any."""
        self.close_rcvd_then_sent: bool | None = None
        """When both Close frames exist, whether the peer's came first."""

        self.parser_exc: Exception | None = None
        """Why the connection failed, when the peer broke the protocol."""
        self.defer_failures = False
        """Deliver before failing: when the peer breaks the protocol on an open connection,
        stop parsing but do not send the Close yet. The messages completed before the error
        are delivered as events; the error waits in :attr:`pending_failure` until the I/O
        layer calls :meth:`fail` with it (once the application has received those messages,
        or after a bounded grace). Meanwhile the connection stays open for sending (replies
        to those messages go out before the Close) and every byte received is dropped."""
        self.pending_failure: ProtocolError | None = None
        """With :attr:`defer_failures`, the error that waits for :meth:`fail`."""
        self.eof_sent = False
        """Whether the protocol is done sending: close the transport's write side."""

        self.reader = StreamReader()
        self.events: list[Event] = []
        self.writes: list[bytes] = []

        # The message being received: its opcode (None between messages), its cost so far
        # against max_size (payload after decompression, plus FRAME_OVERHEAD per frame after
        # the first), whether an extension transforms it (RSV bit on its first frame).
        self._recv_opcode: Opcode | None = None
        self._recv_size = 0
        self._recv_transformed = False
        # UTF-8 validation of the text message being received. The decoder is made only for
        # the first non-ASCII byte: ASCII text, the common case, needs one isascii() call.
        self._utf8: codecs.IncrementalDecoder | None = None
        self._utf8_started = False
        # The message being sent is fragmented and expects a continuation frame.
        self._send_expect_cont = False
        # Random bytes for mask keys, used up 4 at a time.
        self._mask_pool = b""
        self._mask_position = 0

        # Counters for syncws.stats: plain increments where the work is done, no calls.
        self.bytes_received = 0
        """Bytes of frames received (once the opening handshake is parsed, without it)."""
        self.frames_received = 0
        self.frames_sent = 0
        self.messages_received = 0
        self.messages_sent = 0
        self.pings_sent = 0
        self.pongs_received = 0

        self.parser = self.parse()
        next(self.parser)

    # Public API: input.

    def receive_data(self, data: bytes) -> None:
        """Take bytes received from the network.

        Afterwards, call :meth:`events_received` and :meth:`data_to_send`.

        Raises:
            EOFError: :meth:`receive_eof` was called already.
        """
        self.reader.feed_data(data)
        self.bytes_received += len(data)
        try:
            next(self.parser)
        except Exception as exc:
            self._parser_broke(exc)

    def get_buffer(self, size: int) -> memoryview:
        """Lend free space for bytes from the network to be written into directly, as with
        ``socket.recv_into()``: at least ``size`` bytes, or what is left of a large payload
        being read into the bytes of its frame (see :meth:`StreamReader.get_buffer
        <syncws.core.streams.StreamReader.get_buffer>`).

        Then call :meth:`buffer_updated` with how many bytes were written, before anything
        else of this protocol's input. Reading this way costs no allocation per read; it is
        what the I/O layer does, and :meth:`receive_data` is the same for bytes at hand.

        Raises:
            EOFError: :meth:`receive_eof` was called already.
        """
        return self.reader.get_buffer(size)

    def buffer_updated(self, nbytes: int) -> None:
        """Take ``nbytes`` written at the start of the view that :meth:`get_buffer` lent.

        Afterwards, call :meth:`events_received` and :meth:`data_to_send`.

        Raises:
            RuntimeError: no view was lent, or ``nbytes`` is more than it holds.
        """
        self.reader.buffer_updated(nbytes)
        self.bytes_received += nbytes
        try:
            next(self.parser)
        except Exception as exc:
            self._parser_broke(exc)

    def receive_eof(self) -> None:
        """Take the end of the stream: the peer closed its side of the connection.

        Afterwards, call :meth:`events_received` and :meth:`data_to_send`.

        Raises:
            EOFError: it was called already.
        """
        self.reader.feed_eof()
        try:
            next(self.parser)
        except Exception as exc:
            self._parser_broke(exc)

    # Public API: output.

    def events_received(self) -> list[Event]:
        """Return the events received since the last call, in order."""
        events, self.events = self.events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return the bytes to write since the last call, in order.

        Once :attr:`eof_sent` is true, write them, then close the transport's write side.
        """
        writes, self.writes = self.writes, []
        return writes

    def close_expected(self) -> bool:
        """Tell whether the peer should close the TCP connection soon.

        The I/O layer then arms a close timeout and closes the connection itself when the
        peer does not.
        """
        return self.state is State.CLOSING or (self.eof_sent and self.state is not State.CLOSED)

    @property
    def close_code(self) -> int | None:
        """The close code received, 1005 for a Close without one, 1006 without a Close.

        ``None`` until the connection is closed.
        """
        if self.state is not State.CLOSED:
            return None
        return CloseCode.ABNORMAL_CLOSURE if self.close_rcvd is None else self.close_rcvd.code

    @property
    def close_reason(self) -> str | None:
        """The close reason received; ``None`` until the connection is closed."""
        if self.state is not State.CLOSED:
            return None
        return "" if self.close_rcvd is None else self.close_rcvd.reason

    @property
    def close_exc(self) -> ConnectionClosed:
        """The exception to raise when the application uses the connection once it closed.

        :exc:`~syncws.exceptions.ConnectionClosedOK` when both sides sent 1000 or 1001 (or a
        Close without a code), :exc:`~syncws.exceptions.ConnectionClosedError` otherwise.
        """
        rcvd, sent = self.close_rcvd, self.close_sent
        exc_type: type[ConnectionClosed]
        if (
            rcvd is not None
            and sent is not None
            and rcvd.code in _OK_CLOSE_CODES
            and (sent.code in _OK_CLOSE_CODES)
        ):
            exc_type = ConnectionClosedOK
        else:
            exc_type = ConnectionClosedError
        return exc_type(rcvd, sent, self.close_rcvd_then_sent)

    # Public API: sending frames.

    def send_text(self, data: bytes, fin: bool = True) -> None:
        """Queue a text frame; ``data`` is UTF-8.

        With ``fin=False``, the message goes on with :meth:`send_continuation`.

        Raises:
            InvalidState: the connection is not open, or a fragmented message is unfinished.
        """
        self.send_message(Opcode.TEXT, data, fin)

    def send_binary(self, data: bytes, fin: bool = True) -> None:
        """Queue a binary frame.

        With ``fin=False``, the message goes on with :meth:`send_continuation`.

        Raises:
            InvalidState: the connection is not open, or a fragmented message is unfinished.
        """
        self.send_message(Opcode.BINARY, data, fin)

    def send_continuation(self, data: bytes, fin: bool) -> None:
        """Queue the next frame of a fragmented message.

        Raises:
            InvalidState: the connection is not open, or no fragmented message is unfinished.
        """
        if not self._send_expect_cont:
            raise InvalidState("no fragmented message to continue")
        if self.state is not State.OPEN:
            raise InvalidState(f"cannot send while {self.state.name.lower()}")
        self._send_expect_cont = not fin
        self.messages_sent += fin
        self.send_frame(Frame(Opcode.CONT, data, fin))

    def send_close(self, code: int | None = None, reason: str = "") -> None:
        """Queue a Close frame and start the closing handshake (RFC 6455 §7.1.2).

        Args:
            code: the close code; ``None`` sends a Close frame without a payload.
            reason: the close reason, at most 123 bytes once encoded in UTF-8.

        Raises:
            InvalidState: the connection is not open.
            ValueError: the code may not be sent, or the reason is too long.
        """
        if self.state is not State.OPEN:
            raise InvalidState(f"cannot close while {self.state.name.lower()}")
        if code is None:
            if reason:
                raise ValueError("a close reason needs a close code")
            close = Close(CloseCode.NO_STATUS_RCVD, "")
        else:
            close = Close(code, reason)
        self.send_frame(Frame(Opcode.CLOSE, close.serialize()))
        self.close_sent = close
        self.state = State.CLOSING

    def send_ping(self, data: bytes) -> None:
        """Queue a Ping frame.

        Raises:
            InvalidState: the connection is not open or closing.
            ValueError: ``data`` is longer than 125 bytes.
        """
        self._send_control(Opcode.PING, data)
        self.pings_sent += 1

    def send_pong(self, data: bytes) -> None:
        """Queue a Pong frame (an unsolicited one is a heartbeat, RFC 6455 §5.5.3).

        Raises:
            InvalidState: the connection is not open or closing.
            ValueError: ``data`` is longer than 125 bytes.
        """
        self._send_control(Opcode.PONG, data)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (RFC 6455 §7.1.7): send a Close if still open, stop reading.

        The I/O layer calls it for errors it detects itself, e.g. 1011 when a keepalive ping
        goes unanswered, and for the :attr:`pending_failure` once it is time. Code 1006 sends
        no Close frame.
        """
        self.pending_failure = None
        self._fail(code, reason)
        self.parser = self.discard()
        next(self.parser)

    # Frame I/O, for subclasses and the I/O layer.

    def send_frame(self, frame: Frame) -> None:
        """Encode a frame through the extensions and queue it.

        Raises:
            InvalidState: the protocol already sent its end of stream.
        """
        if self.eof_sent:
            raise InvalidState("cannot write after the end of stream")
        for extension in self.extensions:
            frame = extension.encode(frame)
        self.frames_sent += 1
        if self.debug:
            self.logger.debug("> %s", frame)
        if self.side is Side.CLIENT:
            self.writes.append(frame.serialize(mask=True, mask_key=self._next_mask_key()))
        else:
            self.writes.append(frame.serialize(mask=False))

    def _next_mask_key(self) -> bytes:
        """A fresh, unpredictable mask key (RFC 6455 §5.3, §10.3).

        Keys come from :mod:`secrets` 1 KiB at a time: one system call per 256 frames rather
        than one per frame. Every key is still used once and drawn from the OS's CSPRNG.
        """
        position = self._mask_position
        if position >= len(self._mask_pool):
            self._mask_pool = secrets.token_bytes(_MASK_POOL_SIZE)
            position = 0
        self._mask_position = position + 4
        return self._mask_pool[position : position + 4]

    @property
    def sending_fragments(self) -> bool:
        """Whether a fragmented message is being sent: only its continuations may come next."""
        return self._send_expect_cont

    def send_data(self, data: bytes) -> None:
        """Queue raw bytes, for handshakes."""
        if self.eof_sent:
            raise InvalidState("cannot write after the end of stream")
        self.writes.append(data)

    def send_eof(self) -> None:
        """Mark the end of what this side sends."""
        if self.eof_sent:
            raise InvalidState("end of stream already sent")
        self.eof_sent = True

    # Parsing.

    def parse(self) -> Generator[None, None, None]:
        """Parse frames until the connection ends; runs as a generator fed by receive_data."""
        try:
            yield from self.parse_handshake()
            # Count the frames' bytes only: what the handshake read is not theirs.
            self.bytes_received = len(self.reader)
            if self.state is State.OPEN or self.state is State.CLOSING:
                yield from self._parse_frames()
        except ProtocolError as exc:
            self.keep_failure(exc)
            if self.defer_failures and self.state is State.OPEN and not self.eof_sent:
                self.pending_failure = exc
                yield from self._hold()
            self._fail(exc.code, str(exc))
        except EOFError:
            # The peer closed TCP inside a frame; the connection closes abnormally.
            self._fail(CloseCode.ABNORMAL_CLOSURE, "")
        except Exception as exc:
            # A bug in an extension (or here): fail the connection rather than the caller.
            self.logger.error("unexpected error while parsing", exc_info=True)
            self.keep_failure(exc)
            self._fail(CloseCode.INTERNAL_ERROR, "")
        yield from self.discard()

    def keep_failure(self, exc: Exception, *, first: bool = False) -> None:
        """Keep ``exc`` as :attr:`parser_exc`, why the connection failed; with ``first``, only
        if none was kept before.

        It is kept without its traceback (and those of its causes), which was logged if it
        mattered: the traceback's frames hold the protocol and the connection, and keeping
        them would hold both in a reference cycle until the next full garbage collection.
        """
        if first and self.parser_exc is not None:
            return
        cause: BaseException | None = exc
        seen: set[int] = set()
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            cause.__traceback__ = None
            cause = cause.__cause__ or cause.__context__
        self.parser_exc = exc

    def _parser_broke(self, exc: Exception) -> None:
        """The parser itself raised (or ended), a bug: fail the connection with 1011 rather
        than the caller, and drop what comes until the end of the stream."""
        self.logger.error("unexpected error in the parser", exc_info=exc)
        self.keep_failure(exc, first=True)
        self.pending_failure = None
        self._fail(CloseCode.INTERNAL_ERROR, "")
        self.parser = self.discard()
        next(self.parser)

    def parse_handshake(self) -> Generator[None, None, None]:
        """Parse the opening handshake; subclasses implement it, this one has none."""
        return
        yield  # pragma: no cover

    def _hold(self) -> Generator[None, None, None]:
        """Drop every byte while a failure waits for :meth:`fail`, which replaces this parser.

        If the stream ends first, the peer is gone: the Close can't be delivered anymore.
        """
        reader = self.reader
        while True:
            reader.skip()
            if reader.eof:
                self.pending_failure = None
                self._fail(CloseCode.ABNORMAL_CLOSURE, "")
                return
            yield

    def discard(self) -> Generator[None, None, None]:
        """Drop every byte until the end of the stream, then mark the connection closed.

        RFC 6455 §1.4 and §7.1.7: after a Close, or after failing, further data is ignored.
        """
        reader = self.reader
        while True:
            reader.skip()
            if reader.eof:
                break
            yield
        self._set_closed()
        # Nothing more can come: hand over to a parser that holds nothing, so that this
        # generator, which holds the protocol, doesn't keep it in a reference cycle.
        self.parser = _closed_parser()
        next(self.parser)
        yield

    def _set_closed(self) -> None:
        if self.debug:
            self.logger.debug("= connection is CLOSED")
        self.state = State.CLOSED
        # Make sure the I/O layer closes the transport even if the peer closed first.
        if not self.eof_sent:
            self.send_eof()

    def _parse_frames(self) -> Generator[None, None, None]:
        reader = self.reader
        mask = self.side is Side.SERVER
        while True:
            # The reader's buffer may be another one after each yield: look it up again.
            pos = reader.pos
            end = reader.end
            while end <= pos:
                if reader.eof:
                    # The peer closed TCP between frames.
                    return
                yield
                pos = reader.pos
                end = reader.end
            buffer = reader.data
            # Read self.extensions for each frame, as recv_frame() does. The common case, a
            # whole frame in the buffer, runs without a generator, its header checked and its
            # payload unmasked in one call.
            allow_rsv = bool(self.extensions)
            limit = self._transformed_frame_limit if allow_rsv else self._frame_limit
            try:
                parsed = parse_frame(buffer, pos, end, mask, limit, allow_rsv)
                if parsed is None:
                    header = yield from read_header(
                        reader, mask=mask, max_size=limit, allow_rsv=allow_rsv
                    )
            except PayloadTooBig as exc:
                if allow_rsv:
                    raise PayloadTooBig(
                        f"{exc} for a frame that an extension transforms, "
                        f"{self._frame_limit} bytes for another"
                    ) from None
                raise
            if parsed is None:
                data = None
            else:
                head, size, offset, mask_key, data = parsed
                # The most common frame: a whole message, binary or ASCII text, FIN set, no
                # RSV bit, no extension, no message in progress, within max_size. It needs
                # none of the checks of _check_data_frame() and recv_frame() but the size.
                # (_recv_size and _recv_transformed are left alone: without extensions, they
                # are read only while a message is in progress, and set when one starts.)
                if (
                    data is not None
                    and (head == 0x82 or (head == 0x81 and data.isascii()))
                    and self._recv_opcode is None
                    and not allow_rsv
                    and (self.max_size is None or size <= self.max_size)
                ):
                    frame = Frame(_MESSAGE_OPCODES[head], data)
                    self.frames_received += 1
                    self.messages_received += 1
                    if self.debug:
                        self.logger.debug("< %s", frame)
                    self.events.append(frame)
                    stop = offset + size
                    if stop < end:
                        # More frames follow: in a stream, mostly more such messages.
                        stop = self._take_messages(buffer, stop, end, mask)
                    if stop < end:
                        reader.pos = stop  # more frames follow: nothing to let go of
                    else:
                        reader.advance(stop)
                    continue
                opcode = _OPCODES[head & 0x0F]
                assert opcode is not None  # parse_frame() refused reserved opcodes
                header = FrameHeader(
                    opcode, head >= 0x80, bool(head & 0x40), bool(head & 0x20), bool(head & 0x10),
                    size, offset, mask_key,
                )  # fmt: skip
            opcode = header.opcode
            on_data = None
            if opcode is Opcode.CONT or opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                self._check_data_frame(opcode, header.size, header.rsv1, header.rsv2, header.rsv3)
                if self._recv_opcode is Opcode.TEXT and not self._recv_transformed:
                    # Validate text as it arrives: fail fast even inside one frame.
                    on_data = self._check_utf8
            if data is not None:
                # parse_frame() took the payload already: the whole frame was there.
                reader.advance(header.offset + header.size)
                if on_data is not None:
                    on_data(data)
            elif reader.end >= header.offset + header.size:
                data = take_payload(reader, header, on_data)
            else:
                data = yield from read_payload(reader, header, on_data)
            frame = Frame(opcode, data, header.fin, header.rsv1, header.rsv2, header.rsv3)
            self.frames_received += 1
            if self.debug:
                self.logger.debug("< %s", frame)
            self.recv_frame(frame)
            if self.close_rcvd is not None:
                return

    def _take_messages(self, buffer: bytearray, start: int, end: int, mask: bool) -> int:
        """Deliver the whole messages that come next in ``buffer``, as many as there are, in
        one call; return where the frame after them starts.

        They are the frames that :func:`~syncws.core.frames.parse_messages` takes: binary or
        ASCII text, FIN set, no RSV bit, within max_size, complete. Only without extensions
        and between messages, as the fast path of :meth:`_parse_frames`.
        """
        limit = self._frame_limit
        max_size = self.max_size
        if max_size is not None and (limit is None or max_size < limit):
            limit = max_size
        heads, payloads, stop = parse_messages(buffer, start, end, mask, limit)
        events = self.events
        debug = self.debug
        for head, payload in zip(heads, payloads, strict=True):
            frame = Frame(_MESSAGE_OPCODES[head], payload)
            if debug:
                self.logger.debug("< %s", frame)
            events.append(frame)
        self.frames_received += len(payloads)
        self.messages_received += len(payloads)
        return stop

    def _check_data_frame(self, opcode: Opcode, size: int, *rsv: bool) -> None:
        """Check a data frame against the message in progress, before its payload is read."""
        if opcode is Opcode.CONT:
            if self._recv_opcode is None:
                raise ProtocolError("unexpected continuation frame")
            # A fragment costs memory beyond its payload until its message ends: without this
            # charge, a flood of empty fragments would never reach max_size (G4).
            self._recv_size += FRAME_OVERHEAD
        else:
            if self._recv_opcode is not None:
                raise ProtocolError("expected a continuation frame")
            self._recv_opcode = opcode
            self._recv_size = 0
            self._recv_transformed = any(rsv)
        limit = self._frame_limit
        if limit is not None and size > limit and not any(rsv):
            # Only with extensions: the header was allowed more, for a transformed frame.
            raise PayloadTooBig(f"frame of {size} bytes exceeds limit of {limit} bytes")
        if self.max_size is None:
            return
        # The size of a message that no extension transforms is known from the header; an
        # extension checks the size of the data it produces against what is left (recv_frame).
        cost = self._recv_size if self._recv_transformed else self._recv_size + size
        if cost > self.max_size:
            counted = ""
            if opcode is Opcode.CONT:
                counted = f" ({FRAME_OVERHEAD} bytes per frame after the first)"
            raise PayloadTooBig(
                f"message of over {cost} bytes exceeds limit of {self.max_size} bytes{counted}"
            )

    def _check_utf8(self, data: bytes) -> None:
        if not self._utf8_started:
            if data.isascii():
                return
            self._utf8_started = True
            if self._utf8 is None:
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
        assert self._utf8 is not None
        validate_utf8_prefix(self._utf8, data, False)

    def _end_utf8(self) -> None:
        if self._utf8_started:
            assert self._utf8 is not None
            self._utf8_started = False
            try:
                self._utf8.decode(b"", True)
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8: truncated text", code=1007) from None
            finally:
                self._utf8.reset()

    def recv_frame(self, frame: Frame) -> None:
        """Process a complete frame: decode it through the extensions, then act on it."""
        opcode = frame.opcode
        if self.extensions:
            remaining = None
            if self.max_size is not None:
                remaining = self.max_size - self._recv_size
            frame_limit = self.max_frame_size
            if frame_limit is not None and (remaining is None or frame_limit < remaining):
                # The frame limit applies to the payload once decompressed too, as in
                # websockets: each frame of a compressed message stays bounded in memory.
                try:
                    for extension in reversed(self.extensions):
                        frame = extension.decode(frame, max_size=frame_limit)
                except PayloadTooBig:
                    raise PayloadTooBig(
                        f"decompressed frame exceeds limit of {frame_limit} bytes"
                    ) from None
            else:
                for extension in reversed(self.extensions):
                    frame = extension.decode(frame, max_size=remaining)
            if frame.rsv1 or frame.rsv2 or frame.rsv3:
                raise ProtocolError("reserved bits must be 0 once extensions decoded the frame")

        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if self._recv_transformed:
                self._recv_size += len(frame.data)
                if self.max_size is not None and self._recv_size > self.max_size:
                    raise PayloadTooBig(f"message exceeds limit of {self.max_size} bytes")
                if self._recv_opcode is Opcode.TEXT:
                    self._check_utf8(frame.data)
            else:
                self._recv_size += len(frame.data)
            if frame.fin:
                if self._recv_opcode is Opcode.TEXT:
                    self._end_utf8()
                self._recv_opcode = None
                self.messages_received += 1
            self.events.append(frame)

        elif opcode is Opcode.PING:
            # RFC 6455 §5.5.2: a Ping is answered by a Pong with the same payload, as soon as
            # possible. Once the closing handshake started, no more Pongs are owed.
            if self.state is State.OPEN:
                self.send_frame(Frame(Opcode.PONG, frame.data))
            self.events.append(frame)

        elif opcode is Opcode.PONG:
            self.pongs_received += 1
            self.events.append(frame)

        else:
            self._recv_close(frame)

    def _recv_close(self, frame: Frame) -> None:
        # Parsing the payload may fail with 1002 or 1007: then no Close is recorded.
        self.close_rcvd = Close.parse(frame.data)
        # RFC 6455 §5.4 and §7.1.2: a message in progress is dropped; this is a normal close.
        self._recv_opcode = None
        self._utf8_started = False
        if self._utf8 is not None:
            self._utf8.reset()
        if self.state is State.OPEN:
            # RFC 6455 §5.5.1: answer with a Close, echoing the code and the reason received
            # (a valid payload, at most 125 bytes: it fits as it is).
            self.close_rcvd_then_sent = True
            self.send_frame(Frame(Opcode.CLOSE, frame.data))
            self.close_sent = self.close_rcvd
            self.state = State.CLOSING
        elif self.close_rcvd_then_sent is None:
            self.close_rcvd_then_sent = False
        self.events.append(frame)
        # RFC 6455 §7.1.1: the server closes the TCP connection first; the client waits for
        # it (with a timeout, in the I/O layer).
        if self.side is Side.SERVER:
            self.send_eof()

    def _fail(self, code: int, reason: str) -> None:
        if self.debug:
            self.logger.debug("! failing connection with code %d", code)
        # Once the end of stream was sent (e.g. after fail(1006)), no Close can follow it.
        if self.state is State.OPEN and code != CloseCode.ABNORMAL_CLOSURE and not self.eof_sent:
            # The reason describes our own error; cut it to fit a control frame.
            close = Close(code, reason.encode()[:123].decode(errors="ignore"))
            self.send_frame(Frame(Opcode.CLOSE, close.serialize()))
            self.close_sent = close
            self.state = State.CLOSING
        # RFC 6455 §7.1.7: failing closes the TCP connection, on both sides.
        if not self.eof_sent:
            self.send_eof()

    # Helpers.

    def send_message(self, opcode: Opcode, data: bytes, fin: bool = True) -> None:
        """Queue the first frame of a text or binary message (the whole message with ``fin``).

        With ``fin=False``, the message goes on with :meth:`send_continuation`.

        Raises:
            InvalidState: the connection is not open, or a fragmented message is unfinished.
        """
        if self._send_expect_cont:
            raise InvalidState("a fragmented message is unfinished: send a continuation")
        if self.state is not State.OPEN:
            raise InvalidState(f"cannot send while {self.state.name.lower()}")
        self._send_expect_cont = not fin
        self.messages_sent += fin
        if self.extensions or self.debug or self.eof_sent:
            self.send_frame(Frame(opcode, data, fin))
            return
        self.frames_sent += 1
        if self.side is Side.CLIENT:
            # The common cases, without a Frame object: they are the hot path of send().
            head = (0x80 if fin else 0) | opcode
            self.writes.append(encode_frame(head, data, self._next_mask_key()))
        elif len(data) < _COPY_BELOW:
            self.writes.append(encode_frame((0x80 if fin else 0) | opcode, data))
        else:
            # A large unmasked payload goes out as it is, after its header: no copy.
            self.writes += (encode_header((0x80 if fin else 0) | opcode, len(data)), data)

    def _send_control(self, opcode: Opcode, data: bytes) -> None:
        if self.state is not State.OPEN and self.state is not State.CLOSING:
            raise InvalidState(f"cannot send {opcode.name} while {self.state.name.lower()}")
        if len(data) > 125:
            raise ValueError("control frame payload longer than 125 bytes")
        self.send_frame(Frame(opcode, data))


def _closed_parser() -> Generator[None, None, None]:
    """The parser of a closed connection: nothing comes anymore."""
    while True:
        yield
