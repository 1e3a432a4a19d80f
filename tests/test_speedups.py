"""The optional C accelerator gives the same bytes as the pure-Python path."""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncws.core import frames
from syncws.exceptions import ProtocolError

speedups: ModuleType | None = None
if importlib.util.find_spec("syncws.core.speedups") is not None:
    speedups = importlib.import_module("syncws.core.speedups")

# tox builds the package with a C compiler and sets this, so that a build that silently fell
# back to pure Python fails here instead of passing slowly.
REQUIRED = os.environ.get("SYNCWS_REQUIRE_SPEEDUPS") == "1"


def test_speedups_built_when_required() -> None:
    if REQUIRED:
        assert speedups is not None, "the C accelerator was not built"
        assert frames.apply_mask is speedups.apply_mask
        assert frames.encode_frame is speedups.encode_frame
        assert frames.parse_frame is speedups.parse_frame
        assert frames.parse_messages is speedups.parse_messages
        assert frames.Block is speedups.Block
    elif speedups is None:
        assert frames.apply_mask is frames._apply_mask_python
        assert frames.encode_frame is frames._encode_frame_python
        assert frames.parse_frame is frames._parse_frame_python
        assert frames.parse_messages is frames._parse_messages_python
        assert frames.Block is frames._BlockPython


needs_speedups = pytest.mark.skipif(speedups is None, reason="built without a C compiler")


@needs_speedups
@given(st.binary(max_size=20_000), st.binary(min_size=4, max_size=4))
def test_c_mask_matches_python(data: bytes, key: bytes) -> None:
    assert speedups is not None
    assert speedups.apply_mask(data, key) == frames._apply_mask_python(data, key)


@needs_speedups
@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 65536, 65537, 3 * 2**20 + 3])
def test_c_mask_sizes_and_buffer_types(size: int) -> None:
    assert speedups is not None
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    key = b"\x01\x80\xff\x10"
    expected = frames._apply_mask_python(data, key)
    assert speedups.apply_mask(data, key) == expected
    assert speedups.apply_mask(bytearray(data), key) == expected
    assert speedups.apply_mask(memoryview(data), key) == expected
    # Masking twice gives the data back.
    assert speedups.apply_mask(expected, key) == data


@needs_speedups
@pytest.mark.parametrize("key", [b"", b"abc", b"abcde"])
def test_c_mask_needs_four_byte_key(key: bytes) -> None:
    assert speedups is not None
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.apply_mask(b"data", key)


@needs_speedups
@pytest.mark.parametrize("size", [0, 1, 7, 65536, 65537, 2**20])
@pytest.mark.parametrize("key", [None, b"\x01\x80\xff\x10"])
def test_c_block_gives_what_python_gives(size: int, key: bytes | None) -> None:
    assert speedups is not None
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    block = speedups.Block(size)
    python_block = frames._BlockPython(size)
    assert len(block) == len(python_block) == size
    for target in (block, python_block):
        view = memoryview(target)
        assert not view.readonly
        view[:] = data
        view.release()
    result = block.finish(key)
    assert type(result) is bytes
    assert result == python_block.finish(key)
    assert result == (data if key is None else frames._apply_mask_python(data, key))


@needs_speedups
def test_c_block_lends_no_view_once_finished() -> None:
    assert speedups is not None
    block = speedups.Block(8)
    early = memoryview(block)
    early[:] = b"12345678"
    result = block.finish()
    with pytest.raises(BufferError, match="finished"):
        memoryview(block)
    with pytest.raises(RuntimeError, match="finished already"):
        block.finish()
    # A view taken before keeps the memory it points to alive, even once the block is gone.
    del block, result
    assert bytes(early) == b"12345678"


@needs_speedups
@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((-1,), ValueError, "negative"),
        (("8",), TypeError, "integer"),
    ],
)
def test_c_block_checks_its_size(
    args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    assert speedups is not None
    with pytest.raises(error, match=message):
        speedups.Block(*args)


@needs_speedups
@pytest.mark.parametrize("key", [b"abc", "abcd", 1234])
def test_c_block_needs_a_four_byte_key(key: object) -> None:
    assert speedups is not None
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.Block(4).finish(key)


@needs_speedups
@given(
    st.integers(0, 255),
    st.binary(max_size=70_000),
    st.none() | st.binary(min_size=4, max_size=4),
)
def test_c_frame_matches_python(head: int, data: bytes, key: bytes | None) -> None:
    assert speedups is not None
    assert speedups.encode_frame(head, data, key) == frames._encode_frame_python(head, data, key)


@needs_speedups
@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 3 * 2**20 + 3])
@pytest.mark.parametrize("key", [None, b"\x01\x80\xff\x10"])
def test_c_frame_length_forms_and_buffer_types(size: int, key: bytes | None) -> None:
    assert speedups is not None
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    expected = frames._encode_frame_python(0x82, data, key)
    assert speedups.encode_frame(0x82, data, key) == expected
    assert speedups.encode_frame(0x82, bytearray(data), key) == expected
    assert speedups.encode_frame(0x82, memoryview(data), key) == expected
    # The header says how long the payload is, in the shortest form, and whether it is masked.
    header = frames.encode_header(0x82, size, key is not None)
    assert expected.startswith(header)
    assert len(expected) == len(header) + (0 if key is None else 4) + size


@needs_speedups
@pytest.mark.parametrize(
    ("head", "key", "message"),
    [
        (256, None, "head must be a byte"),
        (-1, None, "head must be a byte"),
        (0x81, b"abc", "4 bytes"),
        (0x81, b"abcde", "4 bytes"),
    ],
)
def test_c_frame_refuses_bad_arguments(head: int, key: bytes | None, message: str) -> None:
    assert speedups is not None
    with pytest.raises(ValueError, match=message):
        speedups.encode_frame(head, b"data", key)


def parse_outcome(parse_frame: Callable[..., object], *args: object) -> object:
    """What parse_frame returns, or the exception it raises: its type, message and code."""
    try:
        return parse_frame(*args)
    except ProtocolError as exc:
        return type(exc), str(exc), exc.code


# Headers in every length form, shortest or not, with lengths around the boundaries, then the
# rest of the frame; any byte may be cut off at the end.
FIRST_BYTES = [0x81, 0x82, 0x01, 0x00, 0x80, 0x88, 0x89, 0xC1]
LENGTHS = st.sampled_from([0, 1, 125, 126, 127, 200, 65535, 65536, 2**63 - 1, 2**63, 2**64 - 1])


@st.composite
def frame_bytes(draw: st.DrawFn, masked: bool) -> bytes:
    head0 = draw(st.sampled_from(FIRST_BYTES) | st.integers(0, 255))
    size = draw(st.integers(0, 300) | LENGTHS)
    form = draw(st.sampled_from(["shortest", "shortest", "7", "16", "64"]))
    if form == "shortest":
        form = "7" if size < 126 else "16" if size < 65536 else "64"
    key = draw(st.binary(min_size=4, max_size=4))
    return frame_with_length(head0, masked, size, form, key)


@st.composite
def received_frames(draw: st.DrawFn) -> tuple[bytearray, int, int, bool]:
    """A buffer with a frame (or any bytes) at start, the bytes up to end received, and
    whether frames must be masked (mostly as the frame is)."""
    masked = draw(st.booleans())
    data = draw(frame_bytes(masked) | st.binary(max_size=20))
    prefix = draw(st.binary(max_size=5))
    cut = draw(st.just(0) | st.integers(0, 20))
    start = len(prefix)
    end = max(start, start + len(data) - cut)
    mask = masked != draw(st.sampled_from([False, False, False, True]))
    return bytearray(prefix + data + b"tail"), start, end, mask


@needs_speedups
@settings(max_examples=1000)
@given(
    received=received_frames(),
    max_size=st.none() | st.integers(-1, 70_000) | LENGTHS | st.just(2**70),
    allow_rsv=st.booleans(),
)
def test_c_parse_frame_matches_python(
    received: tuple[bytearray, int, int, bool], max_size: int | None, allow_rsv: bool
) -> None:
    assert speedups is not None
    args = (*received, max_size, allow_rsv)
    expected = parse_outcome(frames._parse_frame_python, *args)
    assert parse_outcome(speedups.parse_frame, *args) == expected


@needs_speedups
def test_c_parse_frame_reads_any_buffer_and_stays_in_it() -> None:
    assert speedups is not None
    frame = b"\x82\x03abc"
    for buffer in (frame, bytearray(frame), memoryview(frame)):
        assert speedups.parse_frame(buffer, 0, -1, False, None, False) == (
            0x82, 3, 2, None, b"abc"
        )  # fmt: skip
    for start, end in [(-1, 5), (0, 6), (4, 3)]:
        with pytest.raises(ValueError, match="within the buffer"):
            speedups.parse_frame(bytearray(frame), start, end, False, None, False)
    with pytest.raises(TypeError, match="6 arguments"):
        speedups.parse_frame(bytearray(frame), 0, 5)


def frame_with_length(
    head0: int, masked: bool, size: int, form: str, key: bytes = b"\x37\xfa\x21\x3d"
) -> bytes:
    """A frame whose header announces ``size`` in the given length form (masked with ``key``
    if ``masked``), and up to 300 bytes of payload."""
    mask_bit = 0x80 if masked else 0
    if form == "7":
        header = bytes([head0, mask_bit | (size & 0x7F)])
    elif form == "16":
        header = bytes([head0, mask_bit | 126]) + (size & 0xFFFF).to_bytes(2, "big")
    else:
        header = bytes([head0, mask_bit | 127]) + (size % 2**64).to_bytes(8, "big")
    return header + (key if masked else b"") + (bytes(range(256)) * 2)[: min(size, 300)]


@needs_speedups
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 300, 65535, 65536, 2**63 - 1, 2**63])
@pytest.mark.parametrize("form", ["7", "16", "64"])
@pytest.mark.parametrize("head0", [0x82, 0x81, 0x89, 0x09, 0xC1])
@pytest.mark.parametrize("masked", [True, False])
def test_c_parsers_match_python_at_every_length_boundary(
    size: int, form: str, head0: int, masked: bool
) -> None:
    assert speedups is not None
    frame = frame_with_length(head0, masked, size, form)
    if size <= 300:  # complete: parse_messages() may take it, then stops at the end
        frame += frame
    for mask in (masked, not masked):
        for max_size in (None, 125, 65536):
            for cut in range(len(frame) + 1):
                args = (bytearray(frame), 0, len(frame) - cut, mask, max_size)
                expected = parse_outcome(frames._parse_frame_python, *args, False)
                assert parse_outcome(speedups.parse_frame, *args, False) == expected
                expected = frames._parse_messages_python(*args)
                assert speedups.parse_messages(*args) == expected


@st.composite
def whole_message(draw: st.DrawFn, masked: bool) -> bytes:
    """A binary or text message in one frame, its text mostly ASCII."""
    opcode = draw(st.sampled_from([frames.Opcode.BINARY, frames.Opcode.TEXT]))
    ascii_text = st.text(st.characters(max_codepoint=127), max_size=300).map(str.encode)
    payload = draw(ascii_text | st.binary(max_size=300) | st.just(b"x" * 70_000))
    key = draw(st.binary(min_size=4, max_size=4))
    return frames.Frame(opcode, payload).serialize(mask=masked, mask_key=key)


@st.composite
def message_streams(draw: st.DrawFn) -> tuple[bytes, bool]:
    """Frames as a peer sends them, mostly whole messages, and whether they are masked."""
    masked = draw(st.booleans())
    pieces = draw(st.lists(whole_message(masked) | frame_bytes(masked), max_size=8))
    return b"".join(pieces), masked


@needs_speedups
@settings(max_examples=500)
@given(
    stream=message_streams(),
    cut=st.integers(0, 20),
    flip_mask=st.sampled_from([False, False, False, True]),
    max_size=st.none() | st.integers(-1, 70_000) | LENGTHS,
)
def test_c_parse_messages_matches_python(
    stream: tuple[bytes, bool], cut: int, flip_mask: bool, max_size: int | None
) -> None:
    assert speedups is not None
    data, masked = stream
    args = (bytearray(data + b"tail"), 0, max(0, len(data) - cut), masked != flip_mask, max_size)
    expected = frames._parse_messages_python(*args)
    assert speedups.parse_messages(*args) == expected
