"""The writing part of a connection: one writer at a time, nothing lost, nothing reordered.

A scripted transport stands in for the socket, so that what another thread does while a write
is in progress happens at a chosen point, without threads or timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from syncws.transport import Chunk, Transport
from syncws.writing import Writer


class ScriptedTransport(Transport):
    """Takes every byte at once, records each call, and runs ``during_send`` inside the first
    ``send()``, as another thread would act while this one writes."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.eof = False
        self.during_send: Callable[[], None] | None = None

    def recv(self, bufsize: int, timeout: float | None = None) -> bytes:
        raise AssertionError("not read in these tests")

    def send(self, chunks: list[Chunk], timeout: float | None, *, last: bool = False) -> bool:
        action, self.during_send = self.during_send, None
        if action is not None:
            action()
        self.sends.append(b"".join(bytes(chunk) for chunk in chunks))
        chunks.clear()
        return True

    def backlog(self) -> int:
        return 0

    def shutdown_write(self) -> None:
        self.eof = True

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def pair() -> tuple[Writer, ScriptedTransport, threading.Lock]:
    transport = ScriptedTransport()
    lock = threading.Lock()
    writer = Writer(transport, order_lock=lock, write_timeout=None, failed=lambda: None)
    return writer, transport, lock


def queue(writer: Writer, lock: threading.Lock, *chunks: bytes, eof: bool = False) -> None:
    with lock:
        writer.queue(list(chunks), eof=eof)


def test_one_write_per_flush(pair: tuple[Writer, ScriptedTransport, threading.Lock]) -> None:
    writer, transport, lock = pair
    queue(writer, lock, b"one", b"two")
    writer.flush(wait=True)
    assert transport.sends == [b"onetwo"]
    assert not writer.pending()


def test_bytes_queued_during_a_write_go_out_before_flush_returns(
    pair: tuple[Writer, ScriptedTransport, threading.Lock],
) -> None:
    """Another thread queues while this one holds the write lock: it leaves its bytes to this
    one, which must write them too before it returns."""
    writer, transport, lock = pair
    queue(writer, lock, b"first")
    transport.during_send = lambda: queue(writer, lock, b"second")
    writer.flush(wait=True)
    assert transport.sends == [b"first", b"second"]
    assert not writer.pending()


def test_flush_without_waiting_leaves_bytes_to_the_writer(
    pair: tuple[Writer, ScriptedTransport, threading.Lock],
) -> None:
    """A flush that finds the write lock taken returns at once: the lock holder writes."""
    writer, transport, lock = pair
    queue(writer, lock, b"first")

    def another_thread_flushes() -> None:
        queue(writer, lock, b"pong")
        writer.flush(wait=False)  # the write lock is taken: nothing written here
        assert transport.sends == []

    transport.during_send = another_thread_flushes
    writer.flush(wait=True)
    assert transport.sends == [b"first", b"pong"]


def test_end_of_stream_after_the_bytes_before_it(
    pair: tuple[Writer, ScriptedTransport, threading.Lock],
) -> None:
    writer, transport, lock = pair
    queue(writer, lock, b"close frame", eof=True)
    writer.flush(wait=True)
    assert transport.sends == [b"close frame"]
    assert transport.eof
    assert not writer.pending()


def test_end_of_stream_queued_during_a_write(
    pair: tuple[Writer, ScriptedTransport, threading.Lock],
) -> None:
    writer, transport, lock = pair
    queue(writer, lock, b"data")
    transport.during_send = lambda: queue(writer, lock, b"close", eof=True)
    writer.flush(wait=True)
    assert transport.sends == [b"data", b"close"]
    assert transport.eof


def test_closed_writer_drops_what_is_queued(
    pair: tuple[Writer, ScriptedTransport, threading.Lock],
) -> None:
    writer, transport, lock = pair
    queue(writer, lock, b"dropped")
    with lock:
        writer.close()
    queue(writer, lock, b"after")
    writer.flush(wait=True)
    assert transport.sends == []
    assert not writer.pending()
