"""Tests for syncws.core.frames: serialization, parsing, masking, close payloads, UTF-8 checks."""

from __future__ import annotations

import codecs
import importlib.util
import random
import sys
import tracemalloc
from collections.abc import Callable, Generator
from itertools import pairwise

import pytest
from helpers import MASK_KEY, run, wire
from hypothesis import given, settings
from hypothesis import strategies as st

from syncws.core import frames
from syncws.core.frames import (
    CONTROL_OPCODES,
    DATA_OPCODES,
    Close,
    CloseCode,
    Frame,
    FrameHeader,
    Opcode,
    _apply_mask_python,
    _parse_frame_python,
    _parse_messages_python,
    apply_mask,
    parse_header,
    read_header,
    read_payload,
    take_payload,
    valid_close_code,
    validate_utf8_prefix,
)
from syncws.core.streams import StreamReader
from syncws.exceptions import PayloadTooBig, ProtocolError

RESERVED_OPCODES = [*range(0x3, 0x8), *range(0xB, 0x10)]


def reader_with(data: bytes, *, eof: bool = False) -> StreamReader:
    reader = StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def parse(data: bytes, *, mask: bool, max_size: int | None = None, rsv: bool = False) -> Frame:
    """Parse one complete frame; check nothing is left over."""
    reader = reader_with(data)
    frame = run(Frame.parse(reader, mask=mask, max_size=max_size, allow_rsv=rsv))
    assert reader.buffer == b""
    return frame


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def naive_mask(data: bytes, key: bytes) -> bytes:
    return bytes(byte ^ key[index % 4] for index, byte in enumerate(data))


# Opcodes and close codes


def test_opcode_sets() -> None:
    assert {Opcode.CONT, Opcode.TEXT, Opcode.BINARY} == DATA_OPCODES
    assert {Opcode.CLOSE, Opcode.PING, Opcode.PONG} == CONTROL_OPCODES
    assert set(Opcode) == DATA_OPCODES | CONTROL_OPCODES
    assert {int(opcode) for opcode in Opcode}.isdisjoint(RESERVED_OPCODES)


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3999, 4000, 4999]  # fmt: skip
INVALID_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_code(code: int) -> None:
    assert valid_close_code(code)


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_code(code: int) -> None:
    assert not valid_close_code(code)


def test_internal_close_codes_are_never_sendable() -> None:
    for code in (CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE):
        assert not valid_close_code(code)


# Serialization: exact bytes, from the examples of RFC 6455 §5.7 and the length boundaries.


@pytest.mark.parametrize(
    ("frame", "mask", "expected"),
    [
        pytest.param(Frame(Opcode.TEXT, b"Hello"), False, "81 05 48656c6c6f", id="text"),
        pytest.param(
            Frame(Opcode.TEXT, b"Hello"), True, "81 85 37fa213d 7f9f4d5158", id="masked-text"
        ),
        pytest.param(Frame(Opcode.TEXT, b"Hel", fin=False), False, "01 03 48656c", id="first"),
        pytest.param(Frame(Opcode.CONT, b"lo"), False, "80 02 6c6f", id="continuation"),
        pytest.param(Frame(Opcode.PING, b"Hello"), False, "89 05 48656c6c6f", id="ping"),
        pytest.param(
            Frame(Opcode.PONG, b"Hello"), True, "8a 85 37fa213d 7f9f4d5158", id="masked-pong"
        ),
        pytest.param(Frame(Opcode.CLOSE, b""), False, "88 00", id="empty-close"),
        pytest.param(Frame(Opcode.BINARY, b"", rsv1=True), False, "c2 00", id="rsv1"),
        pytest.param(Frame(Opcode.BINARY, b"", rsv2=True), False, "a2 00", id="rsv2"),
        pytest.param(Frame(Opcode.BINARY, b"", rsv3=True), False, "92 00", id="rsv3"),
        pytest.param(
            Frame(Opcode.BINARY, b"", fin=False, rsv1=True, rsv2=True, rsv3=True),
            False, "72 00", id="all-rsv-not-fin",
        ),
    ],
)  # fmt: skip
def test_serialize_exact(frame: Frame, mask: bool, expected: str) -> None:
    assert frame.serialize(mask=mask, mask_key=MASK_KEY) == bytes.fromhex(expected)
    assert parse(bytes.fromhex(expected), mask=mask, rsv=True) == frame


@pytest.mark.parametrize(
    ("size", "header"),
    [
        pytest.param(0, "82 00", id="0"),
        pytest.param(125, "82 7d", id="125"),
        pytest.param(126, "82 7e 007e", id="126"),
        pytest.param(256, "82 7e 0100", id="256"),
        pytest.param(65535, "82 7e ffff", id="65535"),
        pytest.param(65536, "82 7f 0000000000010000", id="65536"),
    ],
)
def test_serialize_uses_shortest_length(size: int, header: str) -> None:
    data = random_bytes(size, size)
    assert Frame(Opcode.BINARY, data).serialize(mask=False) == bytes.fromhex(header) + data


def test_serialize_default_mask_key_is_random() -> None:
    frame = Frame(Opcode.BINARY, b"payload")
    first, second = frame.serialize(mask=True), frame.serialize(mask=True)
    assert first[2:6] != second[2:6]
    assert parse(first, mask=True) == parse(second, mask=True) == frame


def test_serialize_unmasked_ignores_mask_key() -> None:
    frame = Frame(Opcode.BINARY, b"data")
    assert frame.serialize(mask=False, mask_key=MASK_KEY) == b"\x82\x04data"


@pytest.mark.parametrize("key", [b"", b"abc", b"abcde"])
def test_serialize_mask_key_must_be_4_bytes(key: bytes) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        Frame(Opcode.TEXT, b"x").serialize(mask=True, mask_key=key)


SIZES = [0, 1, 3, 4, 5, 124, 125, 126, 127, 1000, 65535, 65536, 65537]


@settings(max_examples=150)
@given(
    opcode=st.sampled_from(list(Opcode)),
    size=st.sampled_from(SIZES),
    seed=st.integers(0, 2**32),
    fin=st.booleans(),
    rsv=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    mask=st.booleans(),
    key=st.binary(min_size=4, max_size=4),
)
def test_serialize_parse_round_trip(
    *,
    opcode: Opcode,
    size: int,
    seed: int,
    fin: bool,
    rsv: tuple[bool, bool, bool],
    mask: bool,
    key: bytes,
) -> None:
    if opcode in CONTROL_OPCODES:
        size, fin = min(size, 125), True  # control frames: short, never fragmented
    frame = Frame(opcode, random_bytes(size, seed), fin, *rsv)
    data = frame.serialize(mask=mask, mask_key=key)
    header_size = (2 if size < 126 else 4 if size < 65536 else 10) + (4 if mask else 0)
    assert len(data) == header_size + size
    assert parse(data, mask=mask, rsv=True) == frame
    # Also parsed fine when fed in pieces, and the reader keeps what follows.
    reader = StreamReader()
    parser = Frame.parse(reader, mask=mask, allow_rsv=True)
    step = max(1, len(data) // 7)
    for start in range(0, len(data), step):
        assert next(parser) is None
        reader.feed_data(data[start : start + step])
    reader.feed_data(b"next")
    assert run(parser) == frame
    assert reader.buffer == b"next"


# apply_mask: the function frames uses (the C accelerator when built) and the pure-Python one.

Masker = Callable[[bytes | bytearray | memoryview, bytes], bytes]
MASKERS = [
    pytest.param(apply_mask, id="selected"),
    pytest.param(_apply_mask_python, id="python"),
]


@pytest.mark.parametrize("mask", MASKERS)
@settings(max_examples=60)
@given(
    size=st.integers(0, 20_000),
    seed=st.integers(0, 2**32),
    key=st.binary(min_size=4, max_size=4),
)
def test_apply_mask_matches_naive_xor(mask: Masker, size: int, seed: int, key: bytes) -> None:
    data = random_bytes(size, seed)
    masked = mask(data, key)
    assert masked == naive_mask(data, key)
    assert mask(masked, key) == data


@pytest.mark.parametrize("mask", MASKERS)
@pytest.mark.parametrize("size", [0, 1, 4, 8191, 8192, 8193, 8195, 16384, 16387, 3 * 8192 + 1])
def test_apply_mask_chunk_boundaries(mask: Masker, size: int) -> None:
    data = random_bytes(size, 7)
    expected = naive_mask(data, MASK_KEY)
    assert mask(data, MASK_KEY) == expected
    assert mask(bytearray(data), MASK_KEY) == expected
    assert mask(memoryview(data), MASK_KEY) == expected


@pytest.mark.parametrize("mask", MASKERS)
def test_apply_mask_returns_bytes(mask: Masker) -> None:
    assert type(mask(bytearray(b"abc"), MASK_KEY)) is bytes
    assert type(mask(bytearray(10_000), MASK_KEY)) is bytes


def test_pure_python_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Built without a C compiler, there is no syncws.core.speedups: frames masks in pure Python.
    # The module is loaded again under another name, so the rest of the suite is unaffected.
    monkeypatch.setitem(sys.modules, "syncws.core.speedups", None)  # importing it fails
    name = "syncws.core._frames_without_speedups"
    spec = importlib.util.spec_from_file_location(name, frames.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    assert module.apply_mask is module._apply_mask_python
    assert module.parse_frame is module._parse_frame_python
    assert module.parse_messages is module._parse_messages_python
    assert module.Block is module._BlockPython
    assert module.Frame(module.Opcode.TEXT, b"Hello").serialize(
        mask=True, mask_key=MASK_KEY
    ) == bytes.fromhex("81 85 37fa213d 7f9f4d5158")


# read_header

HEADER_ERRORS = pytest.mark.parametrize(
    ("data", "mask", "options", "error", "message"),
    [
        *(
            pytest.param(
                wire(f"{0x80 | op:02x} 00", masked=True), True, {}, ProtocolError,
                "reserved opcode", id=f"reserved-opcode-{op:x}",
            )
            for op in RESERVED_OPCODES
        ),
        pytest.param(wire("c1 00", masked=True), True, {}, ProtocolError, "reserved bits",
                     id="rsv1"),
        pytest.param(wire("a1 00", masked=True), True, {}, ProtocolError, "reserved bits",
                     id="rsv2"),
        pytest.param(wire("91 00", masked=True), True, {}, ProtocolError, "reserved bits",
                     id="rsv3"),
        pytest.param(b"\x81\x00", True, {}, ProtocolError, "incorrect masking: expected",
                     id="unmasked"),
        pytest.param(wire("81 00", masked=True), False, {}, ProtocolError,
                     "incorrect masking: unexpected", id="masked"),
        pytest.param(b"\x09\x00", False, {}, ProtocolError, "fragmented control frame",
                     id="fragmented-ping"),
        pytest.param(b"\x89\x7e", False, {}, ProtocolError, "control frame too long",
                     id="ping-126"),
        pytest.param(b"\x88\x7f", False, {}, ProtocolError, "control frame too long",
                     id="close-127"),
        pytest.param(bytes.fromhex("82 7f 8000000000000005"), False, {"max_size": None},
                     ProtocolError, "most significant bit", id="msb-set"),
        pytest.param(bytes.fromhex("82 7e 0005"), False, {}, ProtocolError, "shortest form",
                     id="5-in-16-bit"),
        pytest.param(bytes.fromhex("82 7e 007d"), False, {}, ProtocolError, "shortest form",
                     id="125-in-16-bit"),
        pytest.param(bytes.fromhex("82 7f 000000000000ffff"), False, {}, ProtocolError,
                     "shortest form", id="65535-in-64-bit"),
        pytest.param(bytes.fromhex("82 7f 7fffffffffffffff"), False, {"max_size": 2**20},
                     PayloadTooBig, "exceeds limit", id="huge"),
        pytest.param(b"\x82\x0b", False, {"max_size": 10}, PayloadTooBig, "exceeds limit",
                     id="just-over-max-size"),
    ],
)  # fmt: skip


@HEADER_ERRORS
def test_read_header_errors(
    data: bytes, mask: bool, options: dict[str, int | None], error: type[Exception], message: str
) -> None:
    # Each error is found from the header alone: no mask key or payload is needed.
    reader = reader_with(data[: 10 if data[1] & 0x7F == 127 else 4 if data[1] & 0x7F == 126 else 2])
    with pytest.raises(error, match=message):
        run(read_header(reader, mask=mask, max_size=options.get("max_size")))


def test_read_header_error_codes() -> None:
    with pytest.raises(ProtocolError) as protocol_error:
        run(read_header(reader_with(b"\x83\x00"), mask=False))
    assert protocol_error.value.code == 1002
    with pytest.raises(PayloadTooBig) as too_big:
        run(read_header(reader_with(b"\x82\x05"), mask=False, max_size=4))
    assert too_big.value.code == 1009


def test_read_header_max_size_is_inclusive() -> None:
    header = run(read_header(reader_with(b"\x82\x0a"), mask=False, max_size=10))
    assert header.size == 10


def test_read_header_allows_rsv_when_asked() -> None:
    reader = reader_with(wire("f1 00", masked=True))
    header = run(read_header(reader, mask=True, allow_rsv=True))
    assert header == FrameHeader(Opcode.TEXT, True, True, True, True, 0, 6, MASK_KEY)


@pytest.mark.parametrize(
    ("data", "mask", "expected"),
    [
        pytest.param("81 05", False,
                     FrameHeader(Opcode.TEXT, True, False, False, False, 5, 2, None),
                     id="7-bit"),
        pytest.param("02 7e 0100", False,
                     FrameHeader(Opcode.BINARY, False, False, False, False, 256, 4, None),
                     id="16-bit"),
        pytest.param("80 ff 0000000000010000 37fa213d", True,
                     FrameHeader(Opcode.CONT, True, False, False, False, 65536, 14, MASK_KEY),
                     id="64-bit-masked"),
    ],
)  # fmt: skip
def test_read_header_leaves_header_in_buffer(data: str, mask: bool, expected: FrameHeader) -> None:
    raw = bytes.fromhex(data)
    reader = reader_with(raw)
    assert run(read_header(reader, mask=mask)) == expected
    assert reader.buffer == raw  # read_payload() removes the header with the payload


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("", id="empty"),
        pytest.param("81", id="1-byte"),
        pytest.param("82 fe 01", id="in-16-bit-length"),
        pytest.param("82 ff 00000000000100", id="in-64-bit-length"),
        pytest.param("81 85 37fa", id="in-mask-key"),
    ],
)
def test_read_header_eof(data: str) -> None:
    raw = bytes.fromhex(data)
    mask = len(raw) > 1 and bool(raw[1] & 0x80)
    reader = StreamReader()
    parser = read_header(reader, mask=mask)
    assert next(parser) is None
    reader.feed_data(raw)
    assert next(parser) is None  # still waiting for the rest of the header
    reader.feed_eof()
    with pytest.raises(EOFError, match="inside a frame header"):
        next(parser)


# parse_frame: the function the protocol uses (the C accelerator's when built) and the
# pure-Python one.

FrameParser = Callable[[bytearray, int, int, bool, int | None, bool], frames.ParsedFrame | None]
FRAME_PARSERS = [
    pytest.param(frames.parse_frame, id="selected"),
    pytest.param(_parse_frame_python, id="python"),
]


@pytest.mark.parametrize("parse_frame", FRAME_PARSERS)
@HEADER_ERRORS
def test_parse_frame_errors_are_parse_header_errors(
    parse_frame: FrameParser,
    data: bytes,
    mask: bool,
    *,
    options: dict[str, int | None],
    error: type[Exception],
    message: str,
) -> None:
    # The same exception, message and close code as parse_header(), from the header alone.
    header_size = 10 if data[1] & 0x7F == 127 else 4 if data[1] & 0x7F == 126 else 2
    buffer = bytearray(b"..." + data[:header_size])
    max_size = options.get("max_size")
    with pytest.raises(error, match=message) as expected:
        parse_header(buffer, 3, mask=mask, max_size=max_size)
    with pytest.raises(error) as raised:
        parse_frame(buffer, 3, len(buffer), mask, max_size, False)
    assert type(raised.value) is type(expected.value)
    assert str(raised.value) == str(expected.value)
    assert raised.value.code == expected.value.code  # type: ignore[attr-defined]


@pytest.mark.parametrize("parse_frame", FRAME_PARSERS)
@pytest.mark.parametrize(
    ("frame", "mask"),
    [
        pytest.param(Frame(Opcode.TEXT, b"Hello"), True, id="masked"),
        pytest.param(Frame(Opcode.BINARY, b"Hello"), False, id="unmasked"),
        pytest.param(Frame(Opcode.CONT, bytes(range(256)) * 3, fin=False), True, id="16-bit"),
        pytest.param(Frame(Opcode.BINARY, random_bytes(70_000, 3)), True, id="64-bit"),
        pytest.param(Frame(Opcode.PING, b""), False, id="empty-ping"),
    ],
)
def test_parse_frame_takes_the_payload_of_a_whole_frame(
    parse_frame: FrameParser, frame: Frame, mask: bool
) -> None:
    raw = frame.serialize(mask=mask, mask_key=MASK_KEY)
    header = parse_header(bytearray(raw), mask=mask)
    assert header is not None
    buffer = bytearray(b"ab" + raw + b"next")
    head, size, offset, mask_key, data = parse_frame(buffer, 2, len(buffer), mask, None, False) or (
        pytest.fail("incomplete")
    )
    assert (head, size, mask_key) == (raw[0], header.size, header.mask_key)
    assert offset == header.offset + 2
    assert data == frame.data
    assert type(data) is bytes
    assert buffer == b"ab" + raw + b"next"  # unchanged
    if frame.data:
        # Until its last byte is there, the header comes without the payload.
        assert parse_frame(buffer, 2, len(buffer) - 5, mask, None, False) == (
            head, size, offset, mask_key, None
        )  # fmt: skip
    # end=-1: to the end of the buffer.
    assert parse_frame(bytearray(raw), 0, -1, mask, None, False) == (
        head, size, offset - 2, mask_key, frame.data
    )  # fmt: skip


@pytest.mark.parametrize("parse_frame", FRAME_PARSERS)
@pytest.mark.parametrize("data", ["", "81", "82 fe 01", "82 ff 00000000000100", "81 85 37fa"])
def test_parse_frame_incomplete_header(parse_frame: FrameParser, data: str) -> None:
    header = bytes.fromhex(data)
    mask = len(header) > 1 and bool(header[1] & 0x80)
    # Bytes after end are not looked at.
    buffer = bytearray(header + b"after the end")
    assert parse_frame(buffer, 0, len(header), mask, None, False) is None


@pytest.mark.parametrize("parse_frame", FRAME_PARSERS)
def test_parse_frame_options(parse_frame: FrameParser) -> None:
    # max_size is inclusive; RSV bits pass when allowed.
    buffer = bytearray(b"\xc2\x0a" + bytes(10))
    assert parse_frame(buffer, 0, 12, False, 10, True) == (0xC2, 10, 2, None, bytes(10))
    with pytest.raises(PayloadTooBig, match="frame of 10 bytes exceeds limit of 9 bytes"):
        parse_frame(buffer, 0, 12, False, 9, True)
    with pytest.raises(ProtocolError, match="reserved bits"):
        parse_frame(buffer, 0, 12, False, 10, False)


# parse_messages: the function the protocol uses (the C accelerator's when built) and the
# pure-Python one.

MessagesParser = Callable[
    [bytearray, int, int, bool, int | None], tuple[bytes, list[bytes], int]
]
MESSAGES_PARSERS = [
    pytest.param(frames.parse_messages, id="selected"),
    pytest.param(_parse_messages_python, id="python"),
]


@pytest.mark.parametrize("parse_messages", MESSAGES_PARSERS)
@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize(
    "stopper",
    [
        pytest.param(Frame(Opcode.TEXT, "é".encode()), id="non-ascii-text"),
        pytest.param(Frame(Opcode.BINARY, b"part", fin=False), id="fragment"),
        pytest.param(Frame(Opcode.CONT, b"part"), id="continuation"),
        pytest.param(Frame(Opcode.PING, b"p"), id="ping"),
        pytest.param(Frame(Opcode.CLOSE, b""), id="close"),
        pytest.param(Frame(Opcode.BINARY, b"z", rsv1=True), id="rsv1"),
        pytest.param(Frame(Opcode.BINARY, b"z" * 101), id="over-max-size"),
        pytest.param(None, id="end-of-buffer"),
    ],
)
def test_parse_messages_takes_whole_messages_until_another_frame(
    parse_messages: MessagesParser, mask: bool, stopper: Frame | None
) -> None:
    messages = [
        Frame(Opcode.BINARY, b"one"),
        Frame(Opcode.TEXT, b"two"),
        Frame(Opcode.BINARY, b""),
        Frame(Opcode.TEXT, b"t" * 100),
    ]
    data = b"".join(frame.serialize(mask=mask, mask_key=MASK_KEY) for frame in messages)
    rest = b"" if stopper is None else stopper.serialize(mask=mask, mask_key=MASK_KEY)
    buffer = bytearray(b"xy" + data + rest + b"after the end")
    end = 2 + len(data) + len(rest)
    heads, payloads, stop = parse_messages(buffer, 2, end, mask, 100)
    assert list(heads) == [0x82, 0x81, 0x82, 0x81]
    assert payloads == [frame.data for frame in messages]
    assert all(type(payload) is bytes for payload in payloads)
    assert stop == 2 + len(data)
    assert buffer == b"xy" + data + rest + b"after the end"  # unchanged


@pytest.mark.parametrize("parse_messages", MESSAGES_PARSERS)
@pytest.mark.parametrize(
    ("data", "mask", "max_size"),
    [
        pytest.param(b"\x83\x00", False, None, id="reserved-opcode"),
        pytest.param(b"\x82\x00", True, None, id="unmasked"),
        pytest.param(wire("82 00", masked=True), False, None, id="masked"),
        pytest.param(bytes.fromhex("82 7e 0005") + bytes(5), False, None, id="5-in-16-bit"),
        pytest.param(bytes.fromhex("82 7e 007d") + bytes(125), False, None, id="125-in-16-bit"),
        pytest.param(
            bytes.fromhex("82 7f 000000000000ffff") + bytes(65535), False, None,
            id="65535-in-64-bit",
        ),
        pytest.param(bytes.fromhex("82 7f 8000000000000005"), False, None, id="msb-set"),
        pytest.param(b"\x82\x05hello", False, 4, id="over-max-size"),
        pytest.param(b"\x82\x05hello", False, -1, id="negative-max-size"),
        pytest.param(b"\x82\x05hell", False, None, id="incomplete-payload"),
        pytest.param(b"\x82\x7e\x01", False, None, id="incomplete-header"),
        pytest.param(b"\x82", False, None, id="one-byte"),
        pytest.param(b"", False, None, id="empty"),
    ],
)
def test_parse_messages_never_raises_for_a_frame(
    parse_messages: MessagesParser, data: bytes, mask: bool, max_size: int | None
) -> None:
    # parse_frame() raises, or waits, for these: parse_messages() leaves them to it.
    assert parse_messages(bytearray(data), 0, len(data), mask, max_size) == (b"", [], 0)


@pytest.mark.parametrize("parse_messages", MESSAGES_PARSERS)
@pytest.mark.parametrize("size", [1, 7, 8, 9, 16, 17, 300])
def test_parse_messages_leaves_text_that_is_not_ascii(
    parse_messages: MessagesParser, size: int
) -> None:
    # Wherever the first non-ASCII byte is, the text is left for the generic path.
    for position in range(size):
        for byte in (0x80, 0xC3, 0xFF):
            payload = bytearray(b"a" * size)
            payload[position] = byte
            data = bytearray(Frame(Opcode.TEXT, bytes(payload)).serialize(mask=False))
            assert parse_messages(data, 0, len(data), False, None) == (b"", [], 0)
            data = bytearray(Frame(Opcode.BINARY, bytes(payload)).serialize(mask=False))
            assert parse_messages(data, 0, len(data), False, None) == (
                b"\x82", [bytes(payload)], len(data)
            )  # fmt: skip


@pytest.mark.parametrize("parse_messages", MESSAGES_PARSERS)
def test_parse_messages_many_and_large(parse_messages: MessagesParser) -> None:
    # Many frames (their first bytes overflow any fixed table), then one with a 64-bit length.
    large = random_bytes(70_000, 5)
    frames_in = [Frame(Opcode.BINARY, bytes([i % 256])) for i in range(1000)]
    frames_in.append(Frame(Opcode.BINARY, large))
    data = bytearray(b"".join(f.serialize(mask=True, mask_key=MASK_KEY) for f in frames_in))
    heads, payloads, stop = parse_messages(data, 0, len(data), True, None)
    assert heads == b"\x82" * 1001
    assert payloads == [frame.data for frame in frames_in]
    assert stop == len(data)


@pytest.mark.parametrize("parse_messages", MESSAGES_PARSERS)
@pytest.mark.parametrize(("start", "end"), [(-1, 2), (0, 3), (2, 1)])
def test_parse_messages_stays_in_the_buffer(
    parse_messages: MessagesParser, start: int, end: int
) -> None:
    with pytest.raises(ValueError, match="within the buffer"):
        parse_messages(bytearray(b"\x82\x00"), start, end, False, None)


# read_payload


def test_read_payload_eof() -> None:
    reader = reader_with(b"\x82\x05abc")
    header = run(read_header(reader, mask=False))
    parser = read_payload(reader, header)
    assert next(parser) is None
    reader.feed_eof()
    with pytest.raises(EOFError, match="inside a frame payload"):
        next(parser)


def test_read_payload_without_on_data_copies_once() -> None:
    reader = StreamReader()
    data = wire("82 05", b"hello", masked=True)
    reader.feed_data(data[:8])
    header = run(read_header(reader, mask=True))
    parser = read_payload(reader, header)
    assert next(parser) is None
    reader.feed_data(data[8:] + b"\x81")
    assert run(parser) == b"hello"
    assert reader.buffer == b"\x81"


def large_payload(data: bytes, mask: bool) -> tuple[StreamReader, Generator[None, None, bytes]]:
    """A reader fed the first 64 KiB of the frame ``data``, and its payload's parser."""
    reader = StreamReader()
    reader.feed_data(data[:65536])
    header = run(read_header(reader, mask=mask))
    return reader, read_payload(reader, header)


@pytest.mark.parametrize("mask", [False, True], ids=["unmasked", "masked"])
def test_read_payload_lets_go_of_a_large_buffer_once_read(mask: bool) -> None:
    # A large message arrives in several reads, so the buffer grows to its size; once it is
    # read, the connection must not hold that much memory while it waits for the next one.
    payload = random.Random(1).randbytes(300_000)
    data = wire("82 7f 00 00 00 00 00 04 93 e0", payload, masked=mask)
    reader, parser = large_payload(data, mask)
    for start in range(65536, len(data), 65536):
        assert next(parser) is None
        reader.feed_data(data[start : start + 65536])
    assert run(parser) == payload
    assert len(reader) == 0
    assert sys.getsizeof(reader.data) < 1024


def read_into(reader: StreamReader, data: bytes) -> int:
    """Write the start of ``data`` into the view that ``reader`` lends, as a connection's
    ``recv_into()`` does; how many bytes the view took."""
    view = reader.get_buffer(len(data))
    taken = min(len(view), len(data))
    view[:taken] = data[:taken]
    reader.buffer_updated(taken)
    return taken


BLOCKS = [
    pytest.param(
        frames.Block,
        id="selected",
        marks=pytest.mark.skipif(
            frames.Block is frames._BlockPython, reason="built without a C compiler"
        ),
    ),
    pytest.param(frames._BlockPython, id="python"),
]


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("mask", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("size", [65535, 65536, 300_000, 2**20, 2**20 + 1])
@pytest.mark.parametrize("piece", [1000, 65536, 400_000])
def test_a_large_payload_in_pieces_reads_the_same_through_a_block(
    monkeypatch: pytest.MonkeyPatch, block: type, mask: bool, size: int, piece: int
) -> None:
    # From 64 KiB to 1 MiB, a payload that did not come whole with its header is read into
    # a block of its own; the bytes, and those passed to on_data, are the same either way.
    made: list[int] = []

    def make_block(size: int) -> object:
        made.append(size)
        return block(size)

    monkeypatch.setattr(frames, "Block", make_block)
    payload = random.Random(size).randbytes(size)
    data = Frame(Opcode.BINARY, payload).serialize(mask=mask, mask_key=MASK_KEY) + b"next"
    reader = StreamReader()
    reader.feed_data(data[:20])
    header = run(read_header(reader, mask=mask))
    pieces: list[bytes] = []
    parser = read_payload(reader, header, pieces.append)
    result = None
    position = 20
    while result is None:
        position += read_into(reader, data[position : position + piece])
        try:
            next(parser)
        except StopIteration as stop:
            result = stop.value
    reader.feed_data(data[position:])
    assert result == payload
    assert b"".join(pieces) == payload
    assert reader.buffer == b"next"
    assert made == ([size] if 65536 <= size <= 2**20 else [])


@pytest.mark.skipif(frames.Block is frames._BlockPython, reason="built without a C compiler")
@pytest.mark.parametrize("mask", [False, True], ids=["unmasked", "masked"])
def test_a_large_payload_read_in_pieces_is_allocated_once(mask: bool) -> None:
    # The socket writes the payload straight into the bytes object the frame carries: the
    # whole read allocates one payload's worth, not a buffer and then a copy of it.
    payload = random.Random(3).randbytes(1_000_000)
    data = wire("82 7f 00 00 00 00 00 0f 42 40", payload, masked=mask)
    tracemalloc.start()
    try:
        reader, parser = large_payload(data, mask)
        for start in range(65536, len(data), 65536):
            assert next(parser) is None
            # The block lends what is left of the payload: each piece goes in whole.
            assert read_into(reader, data[start : start + 65536]) == min(65536, len(data) - start)
        del data
        result = run(parser)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result == payload
    assert peak < 1_000_000 + 200_000


@pytest.mark.parametrize("mask", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "in-pieces"])
def test_payload_is_copied_once(mask: bool, split: bool) -> None:
    # The payload leaves the buffer as one bytes object, without an intermediate copy of
    # its size: with many threads, every message-sized allocation counts.
    payload = random.Random(2).randbytes(300_000)
    data = wire("82 7f 00 00 00 00 00 04 93 e0", payload, masked=mask)
    reader = StreamReader()
    reader.feed_data(data[:100_000] if split else data)
    header = run(read_header(reader, mask=mask))
    tracemalloc.start()
    try:
        if split:
            parser = read_payload(reader, header)
            assert next(parser) is None
            reader.feed_data(data[100_000:])
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            result = run(parser)
        else:
            before = 0
            result = take_payload(reader, header)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result == payload
    assert peak - before < len(payload) + 50_000


@settings(max_examples=150)
@given(
    size=st.sampled_from([0, 1, 2, 3, 4, 5, 125, 126, 1000, 9000]),
    seed=st.integers(0, 2**32),
    mask=st.booleans(),
    key=st.binary(min_size=4, max_size=4),
    cuts=st.lists(st.integers(0, 9100), max_size=12),
)
def test_read_payload_on_data_sees_every_byte_once(
    size: int, seed: int, mask: bool, key: bytes, cuts: list[int]
) -> None:
    payload = random_bytes(size, seed)
    data = Frame(Opcode.TEXT, payload).serialize(mask=mask, mask_key=key) + b"\x89\x00"
    points = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    chunks = [data[start:end] for start, end in pairwise(points)]
    pieces: list[bytes] = []
    reader = StreamReader()
    header_parser = read_header(reader, mask=mask)
    result: bytes | None = None
    payload_parser = None
    for chunk in chunks:
        reader.feed_data(chunk)
        if payload_parser is None:
            try:
                next(header_parser)
                continue
            except StopIteration as exc:
                payload_parser = read_payload(reader, exc.value, pieces.append)
        try:
            next(payload_parser)
        except StopIteration as exc:
            result = exc.value
            break
    assert result == payload
    assert b"".join(pieces) == payload
    # What follows the frame is left in the buffer, possibly not yet all fed.
    assert bytes(reader.buffer) == b"\x89\x00"[: len(reader.buffer)]


# Frame.parse


def test_parse_max_size() -> None:
    data = Frame(Opcode.BINARY, b"x" * 100).serialize(mask=False)
    assert parse(data, mask=False, max_size=100).data == b"x" * 100
    with pytest.raises(PayloadTooBig):
        parse(data, mask=False, max_size=99)


def test_parse_is_incremental() -> None:
    reader = StreamReader()
    parser = Frame.parse(reader, mask=False)
    data = b"\x81\x05Hello"
    for byte in data:
        assert next(parser) is None
        reader.feed_data(bytes([byte]))
    assert run(parser) == Frame(Opcode.TEXT, b"Hello")


# Frame.__str__


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        pytest.param(Frame(Opcode.TEXT, b"hello"), "TEXT 'hello' [5 bytes]", id="text"),
        pytest.param(Frame(Opcode.TEXT, "café".encode()), "TEXT 'café' [5 bytes]", id="unicode"),
        pytest.param(Frame(Opcode.TEXT, b"x" * 60), f"TEXT '{'x' * 60}' [60 bytes]",
                     id="text-60"),
        pytest.param(Frame(Opcode.TEXT, b"a" * 40 + b"b" * 30 + b"c" * 12),
                     f"TEXT '{'a' * 40}...{'c' * 12}' [82 bytes]", id="text-long"),
        pytest.param(Frame(Opcode.TEXT, b"\xff\xfe"), "TEXT ff fe [2 bytes]",
                     id="text-invalid-utf8"),
        pytest.param(Frame(Opcode.TEXT, b"frag", fin=False), "TEXT 'frag' [4 bytes, continued]",
                     id="text-fragment"),
        pytest.param(Frame(Opcode.CONT, b"end"), "CONT 'end' [3 bytes]", id="continuation"),
        pytest.param(Frame(Opcode.BINARY, b"\x00\x01\x02"), "BINARY 00 01 02 [3 bytes]",
                     id="binary"),
        pytest.param(Frame(Opcode.BINARY, bytes(range(24))),
                     f"BINARY {bytes(range(24)).hex(' ')} [24 bytes]", id="binary-24"),
        pytest.param(Frame(Opcode.BINARY, bytes(range(100))),
                     f"BINARY {bytes(range(16)).hex(' ')} ... 60 61 62 63 [100 bytes]",
                     id="binary-long"),
        pytest.param(Frame(Opcode.CLOSE, b"\x03\xe8bye"), "CLOSE 1000 (OK) bye [5 bytes]",
                     id="close"),
        pytest.param(Frame(Opcode.CLOSE, b""), "CLOSE 1005 (no status received [internal]) "
                     "[0 bytes]", id="close-empty"),
        pytest.param(Frame(Opcode.CLOSE, b"\x03"), "CLOSE 03 [1 bytes]", id="close-1-byte"),
        pytest.param(Frame(Opcode.CLOSE, b"\x00\x00"), "CLOSE 00 00 [2 bytes]",
                     id="close-bad-code"),
        pytest.param(Frame(Opcode.CLOSE, b"\x03\xe8\xff"), "CLOSE 03 e8 ff [3 bytes]",
                     id="close-bad-reason"),
        pytest.param(Frame(Opcode.PING, b""), "PING  [0 bytes]", id="ping-empty"),
        pytest.param(Frame(Opcode.PONG, b"hi"), "PONG 68 69 [2 bytes]", id="pong"),
    ],
)  # fmt: skip
def test_frame_str(frame: Frame, expected: str) -> None:
    assert str(frame) == expected


# Close


@pytest.mark.parametrize(
    ("data", "close"),
    [
        pytest.param(b"", Close(1005, ""), id="empty"),
        pytest.param(b"\x03\xe8", Close(1000, ""), id="code-only"),
        pytest.param(b"\x03\xe9going away", Close(1001, "going away"), id="reason"),
        pytest.param(b"\x0f\xa0" + "ünïcødé 😀".encode(), Close(4000, "ünïcødé 😀"),
                     id="unicode-reason"),
        pytest.param(b"\x0b\xb8", Close(3000, ""), id="registered"),
        pytest.param(b"\x13\x87", Close(4999, ""), id="private-max"),
        pytest.param(b"\x03\xe8" + b"r" * 123, Close(1000, "r" * 123), id="125-bytes"),
    ],
)  # fmt: skip
def test_close_parse_and_serialize(data: bytes, close: Close) -> None:
    assert Close.parse(data) == close
    assert close.serialize() == data


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        pytest.param(b"\x03", 1002, "1-byte", id="1-byte"),
        *(
            pytest.param(code.to_bytes(2, "big"), 1002, "invalid close code", id=f"code-{code}")
            for code in INVALID_CODES
        ),
        pytest.param(b"\x03\xe8\xff\xfe", 1007, "UTF-8", id="reason-not-utf8"),
        pytest.param(b"\x03\xe8\xed\xa0\x80", 1007, "UTF-8", id="reason-surrogate"),
        pytest.param(b"\x03\xe8\xe2\x82", 1007, "UTF-8", id="reason-truncated"),
    ],
)  # fmt: skip
def test_close_parse_errors(data: bytes, code: int, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as exc_info:
        Close.parse(data)
    assert exc_info.value.code == code


@pytest.mark.parametrize(
    ("close", "message"),
    [
        pytest.param(Close(1005, "why"), "needs a close code", id="reason-without-code"),
        pytest.param(Close(1006, ""), "may not be sent", id="1006"),
        pytest.param(Close(1004, ""), "may not be sent", id="1004"),
        pytest.param(Close(5000, ""), "may not be sent", id="5000"),
        pytest.param(Close(1000, "r" * 124), "123 bytes", id="reason-too-long"),
        pytest.param(Close(1000, "é" * 62), "123 bytes", id="reason-too-long-once-encoded"),
    ],
)
def test_close_serialize_errors(close: Close, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        close.serialize()


@pytest.mark.parametrize(
    ("close", "expected"),
    [
        pytest.param(Close(1000, ""), "1000 (OK)", id="ok"),
        pytest.param(Close(1001, "bye"), "1001 (going away) bye", id="reason"),
        pytest.param(Close(1006, ""), "1006 (connection closed abnormally [internal])",
                     id="internal"),
        pytest.param(Close(1015, ""), "1015 (TLS failure [internal])", id="tls"),
        pytest.param(Close(3000, ""), "3000 (registered)", id="registered"),
        pytest.param(Close(3999, ""), "3999 (registered)", id="registered-max"),
        pytest.param(Close(4000, "x"), "4000 (private use) x", id="private"),
        pytest.param(Close(4999, ""), "4999 (private use)", id="private-max"),
        pytest.param(Close(2000, ""), "2000 (unknown)", id="unknown"),
        pytest.param(Close(5000, ""), "5000 (unknown)", id="unknown-high"),
    ],
)  # fmt: skip
def test_close_str(close: Close, expected: str) -> None:
    assert str(close) == expected


# validate_utf8_prefix


def decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")()


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param([b"plain ascii"], id="ascii"),
        pytest.param(["κόσμε".encode()], id="greek"),
        pytest.param([b"\xf0\x9f\x98", b"\x80"], id="astral-split"),
        pytest.param([b"\xed", b"\x9f", b"\xbf"], id="last-char-before-surrogates"),
        pytest.param([b"\xed\x9f", b"\xbf"], id="ed-9f-pending"),
        pytest.param([b"\xee\x80", b"\x80"], id="first-private-use-char"),
        pytest.param([b"\xe2\x82", b"\xac"], id="euro-split"),
        pytest.param([b"", b"a", b""], id="empty-pieces"),
    ],
)
def test_validate_utf8_prefix_valid(pieces: list[bytes]) -> None:
    state = decoder()
    for piece in pieces:
        validate_utf8_prefix(state, piece, False)
    validate_utf8_prefix(state, b"", True)


@pytest.mark.parametrize(
    ("pieces", "final"),
    [
        pytest.param([b"\xff"], False, id="ff"),
        pytest.param([b"\xc0\xaf"], False, id="overlong"),
        pytest.param([b"\xf4\x90\x80\x80"], False, id="above-u10ffff"),
        pytest.param([b"\xed\xa0\x80"], False, id="surrogate"),
        pytest.param([b"ok \xed\xa0"], False, id="surrogate-prefix"),
        pytest.param([b"\xed", b"\xbf"], False, id="surrogate-prefix-split"),
        pytest.param([b"\xe2\x82"], True, id="truncated-at-end"),
        pytest.param([b"\xf0\x9f\x98"], True, id="truncated-astral"),
    ],
)
def test_validate_utf8_prefix_invalid(pieces: list[bytes], final: bool) -> None:
    state = decoder()
    for piece in pieces[:-1]:
        validate_utf8_prefix(state, piece, False)
    with pytest.raises(ProtocolError, match="invalid UTF-8") as exc_info:
        validate_utf8_prefix(state, pieces[-1], final)
    assert exc_info.value.code == 1007


def test_validate_utf8_prefix_cpython_gap() -> None:
    # The case that validate_utf8_prefix exists for: CPython's decoder holds ED A0 silently.
    state = decoder()
    assert state.decode(b"\xed\xa0", False) == ""
    assert state.getstate() == (b"\xed\xa0", 0)
    with pytest.raises(ProtocolError):
        validate_utf8_prefix(decoder(), b"\xed\xa0", False)
