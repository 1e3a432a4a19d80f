"""Tests for syncws.core.streams: the incremental buffer that generator-based parsers read from."""

from __future__ import annotations

import sys
from collections.abc import Generator
from itertools import pairwise
from typing import TypeVar

import pytest
from helpers import run
from hypothesis import given
from hypothesis import strategies as st

from syncws.core.streams import StreamReader

T = TypeVar("T")


def waits(parser: Generator[None, None, T]) -> None:
    """Step a parser and check that it suspends, waiting for more input."""
    assert next(parser) is None


def reader_with(data: bytes = b"", *, eof: bool = False) -> StreamReader:
    reader = StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


# feed_data / feed_eof


def test_feed_data_appends() -> None:
    reader = reader_with(b"ab")
    reader.feed_data(b"")
    reader.feed_data(b"cd")
    assert reader.buffer == b"abcd"
    assert not reader.eof


def test_feed_data_after_eof_raises() -> None:
    reader = reader_with(b"ab", eof=True)
    with pytest.raises(EOFError):
        reader.feed_data(b"c")
    assert reader.buffer == b"ab"


def test_feed_eof_twice_raises() -> None:
    reader = reader_with(eof=True)
    with pytest.raises(EOFError):
        reader.feed_eof()
    assert reader.eof


# read_line


@pytest.mark.parametrize(
    ("data", "limit", "line", "rest"),
    [
        pytest.param(b"\n", 1, b"\n", b"", id="empty-line"),
        pytest.param(b"abc\r\n", 5, b"abc\r\n", b"", id="crlf"),
        pytest.param(b"abc\ndef\n", 10, b"abc\n", b"def\n", id="two-lines"),
        pytest.param(b"abc\ndef", 4, b"abc\n", b"def", id="exactly-limit"),
        pytest.param(b"abc\n" + b"x" * 100, 4, b"abc\n", b"x" * 100, id="long-rest"),
    ],
)
def test_read_line_complete(data: bytes, limit: int, line: bytes, rest: bytes) -> None:
    reader = reader_with(data)
    assert run(reader.read_line(limit)) == line
    assert reader.buffer == rest


def test_read_line_waits_for_newline() -> None:
    reader = StreamReader()
    parser = reader.read_line(100)
    waits(parser)
    reader.feed_data(b"GET / HTTP/1.1")
    waits(parser)
    reader.feed_data(b"\r")
    waits(parser)
    reader.feed_data(b"\nHost")
    assert run(parser) == b"GET / HTTP/1.1\r\n"
    assert reader.buffer == b"Host"


def test_read_line_consecutive_lines_rescan_from_start() -> None:
    reader = StreamReader()
    first = reader.read_line(100)
    waits(first)
    reader.feed_data(b"one")
    waits(first)
    reader.feed_data(b"\ntwo\n")
    assert run(first) == b"one\n"
    # The scan position was reset: the next line is found from the start of the buffer.
    assert reader._scanned == 0
    assert run(reader.read_line(100)) == b"two\n"


@pytest.mark.parametrize(
    ("data", "limit"),
    [
        pytest.param(b"abcd\n", 4, id="newline-just-past-limit"),
        pytest.param(b"abcd", 4, id="limit-reached-without-newline"),
        pytest.param(b"x" * 1000 + b"\n", 10, id="far-past-limit"),
        pytest.param(b"a", 0, id="zero-limit"),
    ],
)
def test_read_line_too_long(data: bytes, limit: int) -> None:
    reader = reader_with(data)
    with pytest.raises(RuntimeError, match=f"line longer than {limit} bytes"):
        run(reader.read_line(limit))
    assert reader._scanned == 0


def test_read_line_fails_as_soon_as_limit_is_reached() -> None:
    reader = StreamReader()
    parser = reader.read_line(8)
    for byte in b"abcdefg":
        reader.feed_data(bytes([byte]))
        waits(parser)
    reader.feed_data(b"h")
    with pytest.raises(RuntimeError):
        next(parser)


@pytest.mark.parametrize("data", [b"", b"partial"])
def test_read_line_eof_before_newline(data: bytes) -> None:
    reader = StreamReader()
    parser = reader.read_line(100)
    waits(parser)
    reader.feed_data(data)
    reader.feed_eof()
    with pytest.raises(EOFError, match=f"after {len(data)} bytes"):
        next(parser)
    assert reader._scanned == 0


def test_read_line_line_before_eof_is_read() -> None:
    reader = reader_with(b"last\n", eof=True)
    assert run(reader.read_line(10)) == b"last\n"


def test_read_line_scans_linearly() -> None:
    # A long line fed one byte at a time: each step scans only the new byte, so the scan
    # position follows the end of the buffer instead of restarting at 0.
    reader = StreamReader()
    parser = reader.read_line(10_000)
    waits(parser)
    for size in range(1, 5_000):
        reader.feed_data(b"x")
        waits(parser)
        assert reader._scanned == size
    reader.feed_data(b"\n")
    assert run(parser) == b"x" * 4_999 + b"\n"
    assert reader._scanned == 0


def test_read_line_scan_position_capped_at_limit() -> None:
    reader = StreamReader()
    parser = reader.read_line(5)
    reader.feed_data(b"abc")
    waits(parser)
    assert reader._scanned == 3


@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"") + b"\n"), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
)
def test_read_line_any_split(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(lines)
    points = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    chunks = [data[start:end] for start, end in pairwise(points)]
    reader = StreamReader()
    got: list[bytes] = []
    parser = reader.read_line(32)
    for chunk in chunks:
        reader.feed_data(chunk)
        while True:
            try:
                next(parser)
            except StopIteration as exc:
                got.append(exc.value)
                parser = reader.read_line(32)
            else:
                break
    assert got == lines
    assert reader.buffer == b""


# read_exact


def test_read_exact_zero() -> None:
    reader = StreamReader()
    assert run(reader.read_exact(0)) == b""


def test_read_exact_leaves_rest() -> None:
    reader = reader_with(b"abcdef")
    assert run(reader.read_exact(4)) == b"abcd"
    assert reader.buffer == b"ef"


def test_read_exact_waits() -> None:
    reader = StreamReader()
    parser = reader.read_exact(5)
    waits(parser)
    reader.feed_data(b"ab")
    waits(parser)
    reader.feed_data(b"cdefg")
    assert run(parser) == b"abcde"
    assert reader.buffer == b"fg"


def test_read_exact_eof() -> None:
    reader = StreamReader()
    parser = reader.read_exact(5)
    reader.feed_data(b"abc")
    waits(parser)
    reader.feed_eof()
    with pytest.raises(EOFError, match="after 3 bytes, expected 5 bytes"):
        next(parser)


def test_read_exact_at_eof_with_enough_data() -> None:
    reader = reader_with(b"abc", eof=True)
    assert run(reader.read_exact(3)) == b"abc"


# read_to_eof


def test_read_to_eof_waits_for_eof() -> None:
    reader = StreamReader()
    parser = reader.read_to_eof(10)
    waits(parser)
    reader.feed_data(b"body")
    waits(parser)
    reader.feed_data(b"!")
    waits(parser)
    reader.feed_eof()
    assert run(parser) == b"body!"
    assert reader.buffer == b""


@pytest.mark.parametrize("size", [0, 1, 10])
def test_read_to_eof_up_to_limit(size: int) -> None:
    reader = reader_with(b"x" * size, eof=True)
    assert run(reader.read_to_eof(10)) == b"x" * size


def test_read_to_eof_limit_exceeded_while_waiting() -> None:
    reader = StreamReader()
    parser = reader.read_to_eof(10)
    reader.feed_data(b"x" * 10)
    waits(parser)
    reader.feed_data(b"x")
    with pytest.raises(RuntimeError, match="more than 10 bytes"):
        next(parser)


def test_read_to_eof_limit_exceeded_at_eof() -> None:
    reader = reader_with(b"x" * 11, eof=True)
    with pytest.raises(RuntimeError, match="more than 10 bytes"):
        run(reader.read_to_eof(10))


# at_eof


@pytest.mark.parametrize(
    ("data", "eof", "expected"),
    [
        pytest.param(b"x", False, False, id="data"),
        pytest.param(b"x", True, False, id="data-then-eof"),
        pytest.param(b"", True, True, id="eof"),
    ],
)
def test_at_eof_immediate(data: bytes, eof: bool, expected: bool) -> None:
    reader = reader_with(data, eof=eof)
    assert run(reader.at_eof()) is expected
    assert reader.buffer == data  # at_eof() never consumes


def test_at_eof_waits_then_data() -> None:
    reader = StreamReader()
    parser = reader.at_eof()
    waits(parser)
    reader.feed_data(b"")
    waits(parser)
    reader.feed_data(b"x")
    assert run(parser) is False


def test_at_eof_waits_then_eof() -> None:
    reader = StreamReader()
    parser = reader.at_eof()
    waits(parser)
    reader.feed_eof()
    assert run(parser) is True


# Views of the buffer


def test_reads_move_past_the_bytes_read_and_feeds_drop_them() -> None:
    reader = reader_with(b"line\nrest")
    assert run(reader.read_line(100)) == b"line\n"
    assert run(reader.read_exact(2)) == b"re"
    assert (len(reader), reader.buffer) == (2, b"st")
    reader.feed_data(b"more")
    # The bytes read were dropped to make room, in the same buffer: it was large enough.
    assert (reader.pos, reader.end, len(reader.data)) == (0, 6, 9)
    assert reader.data[:6] == b"stmore"
    reader.skip()
    assert (len(reader), reader.buffer, reader.data) == (0, b"", bytearray())


@pytest.mark.parametrize("read_all", [False, True], ids=["bytes-left", "all-read"])
def test_a_view_of_the_buffer_never_makes_a_feed_or_a_read_fail(read_all: bool) -> None:
    # A memory profiler, or anything else in another thread, may hold a view of the buffer:
    # resizing it would raise BufferError. The buffer is never resized: bytes move within
    # it, or to a new one when it is too small.
    reader = reader_with(b"0123456789")
    assert run(reader.read_exact(10 if read_all else 4)) == (b"0123456789" if read_all else b"0123")
    view = memoryview(reader.data)
    reader.feed_data(b"abc")
    assert run(reader.read_exact(3 if read_all else 9)) == (b"abc" if read_all else b"456789abc")
    view_of_new = memoryview(reader.data)
    reader.feed_data(b"xyz" * 10)
    assert run(reader.read_exact(30)) == b"xyz" * 10
    reader.skip()
    buffer = reader.get_buffer(100)
    buffer[:3] = b"!!!"
    reader.buffer_updated(3)
    assert run(reader.read_exact(3)) == b"!!!"
    view.release()
    view_of_new.release()
    reader.feed_data(b"!")
    assert reader.buffer == b"!"


def test_advance_keeps_a_small_buffer_and_lets_go_of_a_large_one_once_read() -> None:
    reader = reader_with(b"x" * 100)
    reader.advance(40)
    assert (reader.pos, len(reader)) == (40, 60)
    reader.advance(100)
    assert reader.pos == 100  # small: kept, dropped by the next feed as before
    large = b"y" * 200_000
    reader.feed_data(large)
    reader.advance(100_000)
    assert (len(reader), reader.buffer) == (100_000, large[100_000:])
    reader.advance(200_000)
    assert (reader.pos, len(reader.data)) == (0, 0)
    assert sys.getsizeof(reader.data) < 1024
    reader.feed_data(b"next")
    assert reader.buffer == b"next"


def test_advance_leaves_a_viewed_large_buffer_to_its_viewer() -> None:
    reader = reader_with(b"z" * 100_000)
    view = memoryview(reader.data)
    reader.advance(100_000)
    assert (reader.pos, reader.data) == (0, bytearray())
    assert len(view) == 100_000
    view.release()


# Reading into the buffer


def test_get_buffer_lends_free_space_that_buffer_updated_counts() -> None:
    reader = StreamReader()
    view = reader.get_buffer(10)
    assert len(view) >= 10
    view[:5] = b"hello"
    reader.buffer_updated(5)
    assert reader.buffer == b"hello"
    # The view is released: the buffer can be replaced or moved again.
    with pytest.raises(ValueError, match="released"):
        bytes(view)
    view = reader.get_buffer(10)
    view[:6] = b" world"
    reader.buffer_updated(6)
    assert run(reader.read_exact(11)) == b"hello world"


def test_reading_into_a_buffer_reuses_it() -> None:
    # Once it is large enough, the same buffer takes read after read: nothing is allocated.
    reader = StreamReader()
    reader.get_buffer(4096)
    reader.buffer_updated(0)
    buffer = reader.data
    for index in range(100):
        view = reader.get_buffer(4096)
        chunk = bytes([index]) * 1000
        view[:1000] = chunk
        reader.buffer_updated(1000)
        assert run(reader.read_exact(600)) == chunk[:600]
        assert run(reader.read_exact(400)) == chunk[600:]
    assert reader.data is buffer


def test_get_buffer_makes_room_for_the_whole_frame_announced() -> None:
    # The parser reads a header that announces 300,000 bytes: the next view takes them all,
    # in one buffer, rather than growing it read after read.
    reader = reader_with(b"abc")
    reader.want = 300_003
    view = reader.get_buffer(4096)
    assert len(view) >= 300_000
    reader.buffer_updated(0)
    buffer = reader.data
    payload = (bytes(range(256)) * 1172)[:300_000]
    for start in range(0, 300_000, 65536):
        piece = payload[start : start + 65536]
        view = reader.get_buffer(4096)
        view[: len(piece)] = piece
        reader.buffer_updated(len(piece))
        assert reader.data is buffer
    reader.want = 0
    assert run(reader.read_exact(300_003)) == b"abc" + payload[:300_000]


def test_a_hostile_length_costs_memory_only_as_bytes_come() -> None:
    # A frame that announces 2**40 bytes: the buffer grows by doubling from 1 MiB (and a
    # header), as the bytes arrive, never to the length announced.
    reader = StreamReader()
    reader.want = 2**40
    first = 2**20 + 14
    assert len(reader.get_buffer(4096)) == first
    reader.buffer_updated(first)
    assert len(reader.get_buffer(4096)) == first
    reader.buffer_updated(0)
    assert len(reader.data) == 2 * first


def test_an_idle_reader_lets_go_of_a_large_buffer_before_it_waits() -> None:
    reader = StreamReader()
    # While bytes stream in, each view lent is filled, and the next one is as large as asked.
    assert len(reader.get_buffer(65536)) == 4096
    reader.buffer_updated(4096)
    view = reader.get_buffer(65536)
    assert len(view) >= 65536
    view[:46_000] = b"a" * 46_000
    reader.buffer_updated(46_000)
    assert run(reader.read_exact(50_096)) == bytes(4096) + b"a" * 46_000
    # The last view was not filled: the message is over, the next read waits for another,
    # with a small buffer.
    assert len(reader.get_buffer(65536)) == 4096
    reader.buffer_updated(0)
    assert len(reader.data) == 4096


def test_let_go_drops_a_buffer_that_holds_nothing_to_read() -> None:
    reader = StreamReader()
    reader.get_buffer(4096)[:5] = b"hello"
    reader.buffer_updated(5)
    assert run(reader.read_exact(5)) == b"hello"
    assert len(reader.data) == 4096
    reader.let_go()
    assert len(reader.data) == 0
    # The next read gets a buffer again, and what comes is read as usual.
    reader.get_buffer(4096)[:3] = b"abc"
    reader.buffer_updated(3)
    assert run(reader.read_exact(3)) == b"abc"


def test_let_go_keeps_bytes_not_read_yet() -> None:
    reader = reader_with(b"half a frame")
    reader.let_go()
    assert reader.buffer == b"half a frame"


def test_let_go_keeps_a_buffer_lent_or_a_block_being_filled() -> None:
    reader = StreamReader()
    view = reader.get_buffer(4096)
    reader.let_go()  # the socket may be writing into the view
    view[:2] = b"ok"
    reader.buffer_updated(2)
    assert reader.buffer == b"ok"
    assert run(reader.read_exact(2)) == b"ok"
    block = bytearray(10)
    reader.start_block(memoryview(block))
    reader.let_go()
    reader.feed_data(b"0123456789")
    assert reader.block_filled == 10
    assert bytes(block) == b"0123456789"


def test_a_buffer_replaced_while_lent_gets_a_copy() -> None:
    # skip() in another thread (the connection failed) while the socket writes into the view.
    reader = reader_with(b"x" * 100_000)
    reader.advance(99_000)
    view = reader.get_buffer(4096)
    reader.skip()
    view[:3] = b"new"
    reader.buffer_updated(3)
    assert reader.buffer == b"new"


def test_buffer_updated_checks_its_argument() -> None:
    reader = StreamReader()
    with pytest.raises(RuntimeError, match="without get_buffer"):
        reader.buffer_updated(1)
    view = reader.get_buffer(10)
    with pytest.raises(RuntimeError, match="bytes written in a buffer of"):
        reader.buffer_updated(len(view) + 1)
    reader.feed_eof()
    with pytest.raises(EOFError):
        reader.get_buffer(10)


# Reading into a block of its own


def test_a_block_takes_the_bytes_fed_then_those_read_into_it() -> None:
    # Three bytes of header, then a payload of 100,000 bytes of which 5 came with the header.
    reader = reader_with(b"hdrABCDE")
    block = bytearray(100_000)
    reader.start_block(memoryview(block), 3)
    assert reader.block_filled == 5
    assert len(reader) == 0
    # Reading into the reader writes into the block, as much as it still needs.
    view = reader.get_buffer(4096)
    assert view.obj is block
    assert len(view) == 99_995
    view[:10] = b"0123456789"
    reader.buffer_updated(10)
    assert reader.block_filled == 15
    # Bytes fed go to the block first, and to the reader's buffer once it is full.
    reader.feed_data(b"x" * 99_985 + b"next")
    assert reader.block_filled == 100_000
    assert bytes(block) == b"ABCDE0123456789" + b"x" * 99_985
    assert reader.buffer == b"next"
    # Full, the block lends nothing more: the reader's own buffer does.
    view = reader.get_buffer(10)
    assert view.obj is reader.data
    reader.buffer_updated(0)
    reader.end_block()
    assert reader.block_filled == 0
    assert run(reader.read_exact(4)) == b"next"


def test_a_block_leaves_no_large_buffer_behind() -> None:
    # The bytes fed before the block move into it: the reader lets go of its large buffer.
    reader = reader_with(b"h" + b"p" * 70_000)
    block = bytearray(200_000)
    reader.start_block(memoryview(block), 1)
    assert len(reader.data) <= 4096
    assert bytes(block[:70_000]) == b"p" * 70_000


def test_one_block_at_a_time() -> None:
    reader = StreamReader()
    reader.start_block(memoryview(bytearray(10)))
    with pytest.raises(RuntimeError, match="already"):
        reader.start_block(memoryview(bytearray(10)))


def test_skip_ends_a_block_and_a_view_of_it_lent_meanwhile_is_copied() -> None:
    # skip() in another thread (the connection failed) while the socket writes into the block.
    reader = StreamReader()
    block = bytearray(100)
    reader.start_block(memoryview(block))
    view = reader.get_buffer(4096)
    reader.skip()
    view[:3] = b"new"
    reader.buffer_updated(3)
    assert reader.block_filled == 0
    assert reader.buffer == b"new"
    # The reader reads into its own buffer again.
    assert reader.get_buffer(10).obj is reader.data
