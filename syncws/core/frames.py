"""WebSocket frames (RFC 6455 §5): opcodes, close codes, parsing, serialization, masking."""

from __future__ import annotations

import codecs
import dataclasses
import enum
import secrets
import struct
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from ..exceptions import PayloadTooBig, ProtocolError
from .streams import StreamReader

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "Block",
    "Close",
    "CloseCode",
    "Frame",
    "FrameHeader",
    "Opcode",
    "apply_mask",
    "encode_frame",
    "encode_header",
    "parse_frame",
    "parse_messages",
    "parse_header",
    "read_header",
    "read_payload",
    "take_payload",
    "valid_close_code",
    "validate_utf8_prefix",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2). Compare with ``is``."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})

# Opcodes 0x3-0x7 and 0xB-0xF are reserved (RFC 6455 §5.2): None marks them.
_OPCODES: tuple[Opcode | None, ...] = tuple(
    Opcode(value) if value in Opcode._value2member_map_ else None for value in range(16)
)


class CloseCode(enum.IntEnum):
    """Close codes registered with IANA (RFC 6455 §7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005  # never on the wire: a Close frame without a code
    ABNORMAL_CLOSURE = 1006  # never on the wire: the TCP connection closed without a Close
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


# Codes an endpoint may put in a Close frame: RFC 6455 §7.4.1 allows 1000-1003 and 1007-1011;
# IANA has since registered 1012-1014; 3000-3999 are registered by libraries and frameworks,
# 4000-4999 are private. 1004-1006 and 1015 must never appear on the wire.
_SENDABLE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

_CLOSE_CODE_NAMES = {
    1000: "OK",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received [internal]",
    1006: "connection closed abnormally [internal]",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS failure [internal]",
}


def valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may appear in a Close frame on the wire."""
    return code in _SENDABLE_CODES or 3000 <= code < 5000


def validate_utf8_prefix(decoder: codecs.IncrementalDecoder, data: bytes, final: bool) -> None:
    """Feed ``data`` to an incremental UTF-8 decoder and fail as soon as it cannot be valid.

    CPython's decoder already rejects an invalid byte the moment it arrives, with one gap: it
    holds ``ED A0``-``ED BF`` (the start of a UTF-16 surrogate, never valid in UTF-8) until the
    next byte comes. RFC 6455 §8.1 asks to fail as soon as the text is known to be invalid, so
    that case is checked here.

    Raises:
        ProtocolError: with close code 1007 if the text is not valid UTF-8.
    """
    try:
        decoder.decode(data, final)
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"invalid UTF-8: {exc.reason}", code=1007) from None
    if not final:
        pending = decoder.getstate()[0]
        if len(pending) == 2 and pending[0] == 0xED and pending[1] >= 0xA0:
            raise ProtocolError("invalid UTF-8: surrogate", code=1007)


_UNPACK_16 = struct.Struct("!H").unpack_from
_UNPACK_64 = struct.Struct("!Q").unpack_from

# A 32-bit mask key repeated over this many bytes is XORed as one integer. CPython converts
# bytes to int and back in linear time, and chunks of this size stay in the CPU cache.
_MASK_CHUNK = 8192


def _apply_mask_python(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``mask`` (RFC 6455 §5.3), whole integers at a time."""
    size = len(data)
    if size <= _MASK_CHUNK:
        key = (mask * ((size >> 2) + 1))[:size]
        return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
            size, "little"
        )
    key_int = int.from_bytes(mask * (_MASK_CHUNK >> 2), "little")
    from_bytes = int.from_bytes
    view = memoryview(data)
    out = bytearray(size)
    end = size - size % _MASK_CHUNK
    for start in range(0, end, _MASK_CHUNK):
        stop = start + _MASK_CHUNK
        out[start:stop] = (from_bytes(view[start:stop], "little") ^ key_int).to_bytes(
            _MASK_CHUNK, "little"
        )
    if end < size:
        # Every chunk is a multiple of 4 bytes, so the tail starts at mask offset 0.
        out[end:] = _apply_mask_python(view[end:], mask)
    return bytes(out)


_PACK_SHORT = struct.Struct("!BB").pack
_PACK_MEDIUM = struct.Struct("!BBH").pack
_PACK_LONG = struct.Struct("!BBQ").pack


def encode_header(head: int, size: int, masked: bool = False) -> bytes:
    """The header of a frame carrying ``size`` bytes, with the shortest length form (RFC 6455
    §5.2), without the mask key.

    Args:
        head: the first byte: FIN and RSV bits and the opcode.
        size: the length of the payload.
        masked: whether a mask key follows the header.
    """
    mask_bit = 0x80 if masked else 0
    if size < 126:
        return _PACK_SHORT(head, mask_bit | size)
    if size < 65536:
        return _PACK_MEDIUM(head, mask_bit | 126, size)
    return _PACK_LONG(head, mask_bit | 127, size)


def _encode_frame_python(
    head: int, data: bytes | bytearray | memoryview, mask_key: bytes | None = None
) -> bytes:
    """Serialize one frame, with the shortest length form (RFC 6455 §5.2).

    Args:
        head: the first byte: FIN and RSV bits and the opcode.
        data: the payload, unmasked.
        mask_key: the 4-byte mask key, to mask the payload; ``None`` not to mask.
    """
    if mask_key is None:
        return encode_header(head, len(data)) + data
    return encode_header(head, len(data), True) + mask_key + apply_mask(data, mask_key)


ParsedFrame: TypeAlias = tuple[int, int, int, "bytes | None", "bytes | None"]
"""What :func:`parse_frame` returns: the first byte of the frame, the length of its payload,
where the payload starts in the buffer, the mask key (``None`` if not masked) and the payload
unmasked (``None`` if it is not all in the buffer yet)."""


def _parse_frame_python(  # noqa: PLR0917 (positional, as the C version's arguments are)
    buffer: bytearray,
    start: int,
    end: int,
    mask: bool,
    max_size: int | None,
    allow_rsv: bool,
    /,
) -> ParsedFrame | None:
    """Check the frame header at ``start`` in ``buffer`` and, if the whole frame is there,
    take its payload, unmasked, in the same call: what the receive path does for most frames.

    :func:`parse_frame` is this function, or the C accelerator's version of it when built.
    The checks are those of :func:`parse_header`, with the same exceptions, made before any
    payload is read; the arguments are its own, passed by position. The buffer is not changed.

    Returns:
        ``None`` while the header is incomplete; otherwise a tuple ``(head, size, offset,
        mask_key, data)``: the first byte of the frame (FIN, RSV bits and opcode), the length
        of the payload, where it starts in ``buffer``, the mask key (``None`` if the frame is
        not masked) and the payload unmasked, or ``None`` if it does not end before ``end``
        yet.

    Raises:
        ProtocolError: the frame breaks RFC 6455 (close code 1002).
        PayloadTooBig: the payload is larger than ``max_size`` (close code 1009).
    """
    header = parse_header(buffer, start, end, mask=mask, max_size=max_size, allow_rsv=allow_rsv)
    if header is None:
        return None
    if end < 0:
        end = len(buffer)
    offset = header.offset
    stop = offset + header.size
    data = None
    if stop <= end:
        data = _payload_slice(buffer, offset, stop, offset, header.mask_key)
    return buffer[start], header.size, offset, header.mask_key, data


def _parse_messages_python(
    buffer: bytearray, start: int, end: int, mask: bool, max_size: int | None, /
) -> tuple[bytes, list[bytes], int]:
    """Take the frames from ``start`` on that are whole messages and complete in the buffer,
    as long as they come: the common case, checked and unmasked in one call.

    :func:`parse_messages` is this function, or the C accelerator's version of it when built.
    It takes binary or ASCII text frames with FIN set and no RSV bit, masked as ``mask``
    says, with their length in its shortest form and at most ``max_size`` (``None`` for no
    limit), complete before ``end``. It stops before the first frame that is anything else,
    incomplete or invalid, and never raises for it: :func:`parse_frame` takes it from there,
    with the errors of :func:`parse_header`. The buffer is not changed.

    Returns:
        ``(heads, payloads, stop)``: the first byte of each frame taken (``0x81`` or
        ``0x82``), their payloads unmasked, and where the frame after them starts.

    Raises:
        ValueError: ``start`` and ``end`` are not within the buffer.
    """
    if not 0 <= start <= end <= len(buffer):
        raise ValueError("start and end must be within the buffer")
    heads = bytearray()
    payloads = []
    while end - start >= 2:
        try:
            parsed = _parse_frame_python(buffer, start, end, mask, max_size, False)
        except ProtocolError:  # PayloadTooBig too
            break
        if parsed is None:
            break
        head, size, offset, _, data = parsed
        if data is None or not (head == 0x82 or (head == 0x81 and data.isascii())):
            break
        heads.append(head)
        payloads.append(data)
        start = offset + size
    return bytes(heads), payloads, start


class _BlockPython(bytearray):
    """A buffer that a large payload is read into, then handed out as bytes (:class:`Block`).

    :class:`Block` is this class, or the C accelerator's version of it when built, which
    writes into the bytes object it hands out, so that the payload is never copied.
    """

    __slots__ = ()

    def finish(self, mask_key: bytes | None = None, /) -> bytes:
        """The bytes written, unmasked with ``mask_key`` if given."""
        if mask_key is None:
            return bytes(self)
        return _apply_mask_python(self, mask_key)


if TYPE_CHECKING:
    from .speedups import Block as _CBlock

Block: type[_BlockPython | _CBlock]

try:
    from .speedups import Block, apply_mask, encode_frame, parse_frame, parse_messages
except ImportError:  # built without a C compiler
    Block = _BlockPython
    apply_mask = _apply_mask_python
    encode_frame = _encode_frame_python
    parse_frame = _parse_frame_python
    parse_messages = _parse_messages_python


@dataclasses.dataclass(slots=True)
class Frame:
    """One WebSocket frame.

    Attributes:
        opcode: what the frame carries.
        data: the payload, unmasked.
        fin: whether this is the last frame of a message.
        rsv1: RSV1 bit, used by permessage-deflate (RFC 7692).
        rsv2: RSV2 bit, reserved for extensions.
        rsv3: RSV3 bit, reserved for extensions.
    """

    opcode: Opcode
    data: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False

    def __str__(self) -> str:
        """A one-line summary for logs, with the payload shortened."""
        size = len(self.data)
        if self.opcode is Opcode.TEXT or self.opcode is Opcode.CONT:
            try:
                text = self.data.decode()
                body = repr(text if len(text) <= 60 else text[:40] + "..." + text[-12:])
            except UnicodeDecodeError:
                body = _hex(self.data)
        elif self.opcode is Opcode.CLOSE:
            try:
                body = str(Close.parse(self.data))
            except ProtocolError:
                body = _hex(self.data)
        else:
            body = _hex(self.data)
        flags = "" if self.fin else ", continued"
        return f"{self.opcode.name} {body} [{size} bytes{flags}]"

    def serialize(self, *, mask: bool, mask_key: bytes | None = None) -> bytes:
        """Encode the frame for the wire.

        Args:
            mask: mask the payload, as every client-to-server frame must be (RFC 6455 §5.3).
            mask_key: the 4-byte key, for tests only; by default a fresh one comes from
                :mod:`secrets`, so that keys are unpredictable (RFC 6455 §10.3).
        """
        head = (
            (0x80 if self.fin else 0)
            | (0x40 if self.rsv1 else 0)
            | (0x20 if self.rsv2 else 0)
            | (0x10 if self.rsv3 else 0)
            | self.opcode
        )
        if not mask:
            return encode_frame(head, self.data)
        if mask_key is None:
            mask_key = secrets.token_bytes(4)
        elif len(mask_key) != 4:
            raise ValueError("mask_key must be 4 bytes")
        return encode_frame(head, self.data, mask_key)

    @classmethod
    def parse(
        cls,
        reader: StreamReader,
        *,
        mask: bool,
        max_size: int | None = None,
        allow_rsv: bool = False,
    ) -> Generator[None, None, Frame]:
        """Read one frame from ``reader``.

        See :func:`read_header` for the checks made before any payload is read.

        Raises:
            ProtocolError: the frame breaks RFC 6455 (close code 1002).
            PayloadTooBig: the payload is larger than ``max_size`` (close code 1009).
            EOFError: the stream ends inside the frame.
        """
        header = yield from read_header(reader, mask=mask, max_size=max_size, allow_rsv=allow_rsv)
        data = yield from read_payload(reader, header)
        return cls(header.opcode, data, header.fin, header.rsv1, header.rsv2, header.rsv3)


class FrameHeader(NamedTuple):
    """A parsed frame header: what :func:`read_payload` needs to read the payload."""

    opcode: Opcode
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    size: int
    """Length of the payload."""
    offset: int
    """Where the payload starts in the reader's buffer (:attr:`StreamReader.data
    <syncws.core.streams.StreamReader.data>`)."""
    mask_key: bytes | None


def read_header(
    reader: StreamReader,
    *,
    mask: bool,
    max_size: int | None = None,
    allow_rsv: bool = False,
) -> Generator[None, None, FrameHeader]:
    """Read and check a frame header, leaving it in the buffer for :func:`read_payload`.

    See :func:`parse_header` for the checks, made before any payload is read.

    Raises:
        ProtocolError: the frame breaks RFC 6455 (close code 1002).
        PayloadTooBig: the payload is larger than ``max_size`` (close code 1009).
        EOFError: the stream ends inside the header.
    """
    while True:
        header = parse_header(
            reader.data, reader.pos, reader.end, mask=mask, max_size=max_size, allow_rsv=allow_rsv
        )
        if header is not None:
            return header
        if reader.eof:
            raise EOFError("stream ends inside a frame header")
        yield


def parse_header(
    buffer: bytearray,
    start: int = 0,
    end: int = -1,
    *,
    mask: bool,
    max_size: int | None = None,
    allow_rsv: bool = False,
) -> FrameHeader | None:
    """Check the frame header at ``start`` in ``buffer``; ``None`` while it is incomplete.

    Every check that the header allows is made here, each as soon as the bytes it needs are
    there, before any payload is read: so a hostile length costs neither memory nor time. A
    reserved opcode, a bad control frame, wrong masking, a length with the most significant
    bit set or a length over ``max_size`` fails at once. The buffer is not changed.

    Args:
        buffer: the bytes received, with a frame at ``start``.
        start: where the frame starts; :attr:`FrameHeader.offset` counts from the start of
            ``buffer`` too.
        end: where the bytes received end in ``buffer``; -1: at its end.
        mask: whether the frame must be masked (frames from a client) or must not be.
        max_size: the largest payload allowed, or ``None`` for no limit.
        allow_rsv: accept RSV bits (a negotiated extension checks them); otherwise any RSV
            bit fails the frame.

    Raises:
        ProtocolError: the frame breaks RFC 6455 (close code 1002).
        PayloadTooBig: the payload is larger than ``max_size`` (close code 1009).
    """
    if end < 0:
        end = len(buffer)
    if end - start < 2:
        return None
    head0 = buffer[start]
    head1 = buffer[start + 1]

    opcode = _OPCODES[head0 & 0x0F]
    if opcode is None:
        raise ProtocolError(f"reserved opcode {head0 & 0x0F:#x}")
    if head0 & 0x70 and not allow_rsv:
        raise ProtocolError("reserved bits must be 0 without a negotiated extension")
    fin = head0 >= 0x80
    if (head1 >= 0x80) is not mask:
        raise ProtocolError("incorrect masking: " + ("expected" if mask else "unexpected"))

    size = head1 & 0x7F
    # RFC 6455 §5.5: control frames are never fragmented and carry at most 125 bytes.
    if opcode >= 0x8:
        if not fin:
            raise ProtocolError("fragmented control frame")
        if size > 125:
            raise ProtocolError("control frame too long")

    offset = start + 2
    if size >= 126:
        if size == 126:
            if end < start + 4:
                return None
            (size,) = _UNPACK_16(buffer, offset)
            offset += 2
            minimum = 126
        else:
            if end < start + 10:
                return None
            (size,) = _UNPACK_64(buffer, offset)
            offset += 8
            if size >> 63:
                raise ProtocolError("payload length with the most significant bit set")
            minimum = 65536
        # RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length".
        # syncws is strict: a longer form than needed is a protocol error.
        if size < minimum:
            raise ProtocolError(f"payload length {size} not encoded in its shortest form")
    if max_size is not None and size > max_size:
        raise PayloadTooBig(f"frame of {size} bytes exceeds limit of {max_size} bytes")

    mask_key = None
    if mask:
        if end < offset + 4:
            return None
        mask_key = bytes(buffer[offset : offset + 4])
        offset += 4
    return FrameHeader(
        opcode, fin, bool(head0 & 0x40), bool(head0 & 0x20), bool(head0 & 0x10),
        size, offset, mask_key,
    )  # fmt: skip


def take_payload(
    reader: StreamReader,
    header: FrameHeader,
    on_data: Callable[[bytes], None] | None = None,
) -> bytes:
    """Take the payload of a frame that is complete in ``reader``, and unmask it.

    It does what :func:`read_payload` does, without a generator, for the common case where
    the whole frame arrived already.
    """
    start = header.offset
    end = start + header.size
    data = _payload_slice(reader.data, start, end, start, header.mask_key)
    if end < reader.end:
        reader.pos = end  # more frames follow in the buffer: nothing to let go of
    else:
        reader.advance(end)
    if on_data is not None:
        on_data(data)
    return data


def _payload_slice(
    buffer: bytearray | memoryview, begin: int, stop: int, start: int, mask_key: bytes | None
) -> bytes:
    """Bytes ``begin:stop`` of a payload that starts at ``start`` in ``buffer``, unmasked."""
    if mask_key is None:
        # Through a view, copied once: a slice of the bytearray would be a second copy.
        return bytes(memoryview(buffer)[begin:stop])
    # The key repeats every 4 bytes from the start of the payload: rotate it to begin there.
    shift = (begin - start) & 3
    if shift:
        mask_key = mask_key[shift:] + mask_key[:shift]
    return apply_mask(memoryview(buffer)[begin:stop], mask_key)


# A payload this long, or longer, that has not all arrived with its header is read into a
# buffer of its own (a Block), up to the longest frame that the reader makes room for at once:
# a longer one grows its buffer as its bytes arrive, so that a hostile length costs memory only
# as fast as bytes come.
_BLOCK_SIZES = (65536, 2**20)


def _read_payload_block(
    reader: StreamReader,
    header: FrameHeader,
    on_data: Callable[[bytes], None] | None,
) -> Generator[None, None, bytes]:
    """:func:`read_payload` for a large payload: the socket writes it into a :class:`Block`,
    the bytes object the frame will carry, unmasked there in one pass once it is complete."""
    size = header.size
    mask_key = header.mask_key
    block = Block(size)
    view = memoryview(block)
    reader.start_block(view, header.offset - reader.pos)
    done = 0  # bytes before this point were passed to on_data
    try:
        while reader.block_filled < size:
            if reader.eof:
                raise EOFError("stream ends inside a frame payload")
            filled = reader.block_filled
            if on_data is not None and filled > done:
                on_data(_payload_slice(view, done, filled, 0, mask_key))
                done = filled
            yield
    finally:
        reader.end_block()
    if on_data is not None and done < size:
        on_data(_payload_slice(view, done, size, 0, mask_key))
    view.release()
    return block.finish(mask_key)


def read_payload(
    reader: StreamReader,
    header: FrameHeader,
    on_data: Callable[[bytes], None] | None = None,
) -> Generator[None, None, bytes]:
    """Read the payload of the frame whose header :func:`read_header` returned, and unmask it.

    Args:
        reader: the stream the header came from.
        header: the frame header.
        on_data: called with each piece of the payload, unmasked, as soon as it arrives, so
            that a caller can check it before the frame is complete (UTF-8 fails fast even
            inside one large frame); every byte of the payload is passed exactly once.

    Raises:
        EOFError: the stream ends inside the payload.
    """
    if _BLOCK_SIZES[0] <= header.size <= _BLOCK_SIZES[1]:
        return (yield from _read_payload_block(reader, header, on_data))
    # Positions count from the start of the frame, at reader.pos: feeding the reader may
    # move the bytes not read yet to the start of its buffer, or to another buffer.
    base = reader.pos
    start = header.offset - base
    end = start + header.size
    mask_key = header.mask_key
    done = start  # bytes before this point were passed to on_data
    # Ask for the whole frame: the reader makes room for it once, and the socket fills it.
    reader.want = end
    try:
        while reader.end - reader.pos < end:
            if reader.eof:
                raise EOFError("stream ends inside a frame payload")
            if on_data is not None:
                base = reader.pos
                available = reader.end - base
                if available > done:
                    on_data(
                        _payload_slice(
                            reader.data, base + done, base + available, base + start, mask_key
                        )
                    )
                    done = available
            yield
    finally:
        reader.want = 0
    base = reader.pos
    buffer = reader.data
    if on_data is not None and done < end:
        on_data(_payload_slice(buffer, base + done, base + end, base + start, mask_key))
    # The payload is still whole in the buffer: copy it out once.
    data = _payload_slice(buffer, base + start, base + end, base + start, mask_key)
    reader.advance(base + end)
    return data


@dataclasses.dataclass(slots=True, frozen=True)
class Close:
    """The payload of a Close frame.

    Attributes:
        code: the close code; 1005 stands for a Close frame without a payload.
        reason: the close reason.
    """

    code: int
    reason: str

    def __str__(self) -> str:
        if 3000 <= self.code < 4000:
            explanation = "registered"
        elif 4000 <= self.code < 5000:
            explanation = "private use"
        else:
            explanation = _CLOSE_CODE_NAMES.get(self.code, "unknown")
        text = f"{self.code} ({explanation})"
        return f"{text} {self.reason}" if self.reason else text

    @classmethod
    def parse(cls, data: bytes) -> Close:
        """Decode the payload of a Close frame.

        Raises:
            ProtocolError: a 1-byte payload or a close code that must not be sent (1002),
                a reason that is not UTF-8 (1007).
        """
        if len(data) >= 2:
            (code,) = struct.unpack_from("!H", data)
            try:
                reason = data[2:].decode()
            except UnicodeDecodeError:
                raise ProtocolError("close reason is not valid UTF-8", code=1007) from None
            if not valid_close_code(code):
                raise ProtocolError(f"invalid close code {code}")
            return cls(code, reason)
        if not data:
            return cls(CloseCode.NO_STATUS_RCVD, "")
        raise ProtocolError("close frame with a 1-byte payload")

    def serialize(self) -> bytes:
        """Encode the payload of a Close frame.

        Raises:
            ValueError: the code may not be sent or the payload would exceed 125 bytes.
        """
        if self.code == CloseCode.NO_STATUS_RCVD:
            if self.reason:
                raise ValueError("a close reason needs a close code")
            return b""
        if not valid_close_code(self.code):
            raise ValueError(f"close code {self.code} may not be sent")
        data = struct.pack("!H", self.code) + self.reason.encode()
        if len(data) > 125:
            raise ValueError("close reason longer than 123 bytes once encoded")
        return data


def _hex(data: bytes) -> str:
    if len(data) <= 24:
        return data.hex(" ")
    return data[:16].hex(" ") + " ... " + data[-4:].hex(" ")
