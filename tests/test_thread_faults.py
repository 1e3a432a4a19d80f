"""Faults inside syncws's own threads: the reader, the timer thread, keepalive.

An unexpected exception in syncws's code on the receiving path (the parser, the
decompressor, the processing of events, the hand-off between the thread in ``recv()`` and
the reader thread) or in a timer callback must not leave a connection half-open: it is
logged once, the connection fails with 1011 (the peer gets that Close), every waiter returns,
and nothing leaks. Each test injects one failure (a ``RuntimeError`` raised once) at one of
these points, in a client connection talking to a syncws server in the same process.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
from io_helpers import TIMEOUT, client

from syncws import reading
from syncws.client import ClientConnection
from syncws.core import frames
from syncws.core.streams import StreamReader
from syncws.exceptions import ConnectionClosed, ConnectionClosedError
from syncws.keepalive import Keepalive
from syncws.reading import ReadOwnership
from syncws.server import ServerConnection
from syncws.testing import run_server
from syncws.timers import call_later

pytestmark = pytest.mark.usefixtures("no_leaks")


class Injected(RuntimeError):
    """The failure the tests inject."""


def raise_once(call: Callable[..., Any], when: Callable[..., bool] = lambda *a, **k: True) -> Any:
    """Wrap ``call``: the first call for which ``when`` holds raises :exc:`Injected`."""
    raised = threading.Event()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not raised.is_set() and when(*args, **kwargs):
            raised.set()
            raise Injected("injected failure")
        return call(*args, **kwargs)

    wrapper.raised = raised  # type: ignore[attr-defined]
    return wrapper


def injected_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The log records that carry the injected failure."""
    return [
        record
        for record in caplog.records
        if record.exc_info is not None and isinstance(record.exc_info[1], Injected)
    ]


@pytest.fixture
def server() -> Iterator[tuple[str, queue.Queue[BaseException | None]]]:
    """A syncws echo server; its handler reports how its connection ended."""
    ends: queue.Queue[BaseException | None] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        try:
            for message in connection:
                connection.send(message)
        except ConnectionClosed as exc:
            ends.put(exc)
        else:
            ends.put(None)

    with run_server(handler, ping_interval=None, compression="deflate") as running:
        yield running.uri, ends


def check_failed_with_1011(
    connection: ClientConnection,
    ends: queue.Queue[BaseException | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every wait returns, the peer got 1011, the error was logged once, all is closed.

    The echo may be delivered first, if the failure came after it was queued.
    """
    received: list[str | bytes] = []
    with pytest.raises(ConnectionClosedError) as raised:  # noqa: PT012
        while len(received) < 2:
            received.append(connection.recv(timeout=TIMEOUT))
    assert received in ([], ["hello"])
    assert raised.value.sent is not None
    assert raised.value.sent.code == 1011
    connection.wait_closed(TIMEOUT)
    connection.close()  # returns at once
    with pytest.raises(ConnectionClosedError):
        connection.send("more")
    with pytest.raises(ConnectionClosedError):
        for _ in connection.recv_streaming():
            pass
    end = ends.get(timeout=TIMEOUT)
    assert isinstance(end, ConnectionClosedError)
    assert end.rcvd is not None
    assert end.rcvd.code == 1011
    assert len(injected_errors(caplog)) == 1


# The receiving path, in the thread in recv() and in the reader thread.

RECEIVERS = ["recv", "reader-thread"]


def trigger(connection: ClientConnection, where: str) -> None:
    """Make the connection run the code where the failure waits, in the thread ``where``."""
    if where == "timer-thread":
        # The check that gives the socket to a reader thread runs in the timer thread.
        reading._checks.add(connection._reading)
    else:
        # Make the peer send something, for the connection to read.
        connection.send("hello")
    if where != "recv":
        # Nobody receives: the connection fails in the other thread.
        connection.wait_closed(TIMEOUT)


Inject = Callable[[ClientConnection, pytest.MonkeyPatch], None]


def fail_parser(connection: ClientConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    protocol = connection.protocol
    monkeypatch.setattr(protocol, "buffer_updated", raise_once(protocol.buffer_updated))


def fail_receive_buffer(connection: ClientConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    # Making room for the next read fails (MemoryError, say), before anything is read.
    reader = connection.protocol.reader
    failing = raise_once(StreamReader.get_buffer, lambda self, *a, **k: self is reader)
    monkeypatch.setattr(StreamReader, "get_buffer", failing)


def fail_decompressor(connection: ClientConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    [extension] = connection.protocol.extensions
    monkeypatch.setattr(extension, "decode", raise_once(extension.decode))


def fail_message_queue(connection: ClientConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    # The processing of events: what was received is put on the queue of messages.
    queue_ = connection._queue
    monkeypatch.setattr(queue_, "put", raise_once(queue_.put))


def fail_read_ownership(method: str) -> Inject:
    """Fail ``ReadOwnership.<method>`` once for this connection (the server's share it)."""

    def inject(connection: ClientConnection, monkeypatch: pytest.MonkeyPatch) -> None:
        state = connection._reading.state
        call = getattr(ReadOwnership, method)
        failing = raise_once(call, lambda self, *a, **k: self is state)
        monkeypatch.setattr(ReadOwnership, method, failing)

    return inject


class Fault(NamedTuple):
    """A failure to inject, where the connection meets it, and the client's options."""

    inject: Inject
    where: str
    options: dict[str, Any]


RECEIVING_FAULTS = [
    *(
        pytest.param(Fault(inject, where, options), id=f"{name}-in-{where}")
        for name, inject, options in [
            ("parser", fail_parser, {}),
            ("receive-buffer", fail_receive_buffer, {}),
            ("decompressor", fail_decompressor, {"compression": "deflate"}),
            ("message-queue", fail_message_queue, {}),
        ]
        for where in RECEIVERS
    ),
    # The reader thread's own bookkeeping breaks after it processed what it read: it can't
    # go on, so the connection is failed and torn down at once.
    pytest.param(
        Fault(fail_read_ownership("reader_release"), "reader-thread", {}),
        id="reader-hand-off-in-reader-thread",
    ),
    pytest.param(
        Fault(fail_read_ownership("check"), "timer-thread", {}),
        id="hand-back-check-in-timer-thread",
    ),
]


@pytest.mark.parametrize("fault", RECEIVING_FAULTS)
def test_receiving_fault_fails_the_connection_with_1011(
    server: tuple[str, queue.Queue[BaseException | None]],
    fault: Fault,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri, ends = server
    with client(uri, **fault.options) as connection:
        fault.inject(connection, monkeypatch)
        trigger(connection, fault.where)
        check_failed_with_1011(connection, ends, caplog)


def test_view_of_the_receive_buffer_held_while_messages_arrive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fault of the report: a memory profiler in another thread held a view of a receive
    # buffer (gc.get_objects() returns the memoryview that unmasking makes for a moment). Here
    # every such view is kept, and a view of every buffer the socket is read into (the
    # stream's, or the block of a large payload), while messages of every size arrive: all
    # come back intact.
    views: list[memoryview] = []
    unmask = frames.apply_mask
    get_buffer = StreamReader.get_buffer

    def keep_view(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
        if isinstance(data, memoryview):
            views.append(data)
        return unmask(data, mask)

    def keep_buffer(reader: StreamReader, size: int) -> memoryview:
        view = get_buffer(reader, size)
        views.append(memoryview(view.obj))
        return view

    def echo(connection: ServerConnection) -> None:
        for message in connection:
            connection.send(message)

    messages = [b"x" * size for size in (0, 1, 125, 126, 4000, 65536, 300_000)] * 3
    with run_server(echo, ping_interval=None, compression=None) as running:
        monkeypatch.setattr(frames, "apply_mask", keep_view)
        monkeypatch.setattr(StreamReader, "get_buffer", keep_buffer)
        with client(running.uri, max_size=None) as connection:
            for message in messages:
                connection.send(message)
            received = [connection.recv(timeout=TIMEOUT) for _ in messages]
    assert received == messages
    # Views of both kinds of buffer were held.
    assert any(isinstance(view.obj, bytearray) for view in views)
    assert any(not isinstance(view.obj, bytearray) for view in views) or (
        frames.Block is frames._BlockPython
    )


# Timers.


def test_keepalive_timer_fails(
    server: tuple[str, queue.Queue[BaseException | None]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri, ends = server
    failing = raise_once(Keepalive._ping)
    monkeypatch.setattr(Keepalive, "_ping", failing)
    with client(uri, ping_interval=0.05, ping_timeout=TIMEOUT) as connection:
        assert failing.raised.wait(TIMEOUT)
        # Another timer still runs: the timer thread goes on for every other connection.
        ran = threading.Event()
        call_later(0.01, ran.set)
        assert ran.wait(TIMEOUT)
        check_failed_with_1011(connection, ends, caplog)


def test_ping_waiter_returns_when_the_connection_fails(
    server: tuple[str, queue.Queue[BaseException | None]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A ping waits for its pong; the pong is what fails to be processed.
    uri, ends = server
    with client(uri) as connection:
        protocol = connection.protocol
        monkeypatch.setattr(protocol, "buffer_updated", raise_once(protocol.buffer_updated))
        waiter = connection.ping()
        with pytest.raises(ConnectionClosedError):
            waiter.wait(TIMEOUT)
        check_failed_with_1011(connection, ends, caplog)


# A broken connection is the peer's doing, not a fault of syncws's.


@pytest.mark.parametrize("receiver", RECEIVERS)
def test_answer_to_a_broken_connection_is_not_an_internal_error(
    receiver: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Writing the pong for a ping finds the connection broken (the peer left): the connection
    is lost (1006) and torn down, and nothing is logged as an error or sent as 1011."""

    def handler(connection: ServerConnection) -> None:
        connection.recv(TIMEOUT)
        connection.ping()
        with pytest.raises(ConnectionClosed):
            connection.recv(TIMEOUT)

    with run_server(handler, ping_interval=None) as running, client(running.uri) as connection:
        transport = connection.transport
        send = transport.send

        def broken_for_a_pong(chunks: list[Any], timeout: float | None, **kwargs: Any) -> bool:
            if any(bytes(chunk[:1]) == b"\x8a" for chunk in chunks):
                raise BrokenPipeError(32, "Broken pipe")
            return send(chunks, timeout, **kwargs)

        monkeypatch.setattr(transport, "send", broken_for_a_pong)
        connection.send("ping me")
        if receiver == "recv":
            with pytest.raises(ConnectionClosedError) as raised:
                connection.recv(TIMEOUT)
            assert raised.value.rcvd is None
            assert raised.value.sent is None
        connection.wait_closed(TIMEOUT)
        assert connection.close_code == 1006
        assert isinstance(connection._transport_error, BrokenPipeError)
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
