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
    assert (reader.pos, reader.data) == (0, bytearray(b"stmore"))
    reader.skip()
    assert (len(reader), reader.buffer, reader.data) == (0, b"", bytearray())


@pytest.mark.parametrize("read_all", [False, True], ids=["bytes-left", "all-read"])
def test_a_view_of_the_buffer_never_makes_a_feed_or_a_read_fail(read_all: bool) -> None:
    # A memory profiler, or anything else in another thread, may hold a view of the buffer:
    # resizing it would raise BufferError. Reading moves an offset; feeding goes on with a
    # copy of the unread bytes and leaves the viewed buffer as it was.
    reader = reader_with(b"0123456789")
    assert run(reader.read_exact(10 if read_all else 4)) == (
        b"0123456789" if read_all else b"0123"
    )
    viewed = reader.data
    view = memoryview(viewed)
    reader.feed_data(b"abc")
    assert run(reader.read_exact(3 if read_all else 9)) == (b"abc" if read_all else b"456789abc")
    view_of_new = memoryview(reader.data)
    reader.feed_data(b"xyz")
    assert run(reader.read_exact(3)) == b"xyz"
    assert bytes(view) == b"0123456789"
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
