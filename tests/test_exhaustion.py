"""The server survives running out of threads, file descriptors and memory, and its own faults.

Each test injects one failure (a thread that can't start, ``accept()`` failing with
``EMFILE`` or ``ENOMEM``, an unexpected exception in the accept loop or in a worker) and checks
that the client gets an answer (503, 500 or a Close 1011), that the server goes on serving,
that shutdown returns, and that nothing leaks. Idle workers above a floor retire.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from io_helpers import TIMEOUT, Background, RawPeer, client, running, upgrade_request, wait_for

import syncws.server
import syncws.workers
from syncws.core.frames import CloseCode
from syncws.exceptions import ConnectionClosed, ConnectionClosedError
from syncws.server import Server, ServerConnection, serve
from syncws.workers import KEEP_IDLE, Workers

pytestmark = pytest.mark.usefixtures("no_leaks")


def echo(connection: ServerConnection) -> None:
    for message in connection:
        connection.send(message)


@contextlib.contextmanager
def serving(handler: Callable[[ServerConnection], Any] = echo, **kwargs: Any) -> Iterator[Server]:
    """Run a server on a free loopback port; at the end, check that every handler returned."""
    kwargs.setdefault("close_timeout", 2)
    server = serve(handler, "127.0.0.1", 0, **kwargs)
    # The errors of one burst are logged once, however slow the machine is.
    for throttle in (server._accept_error_log, server._thread_error_log, server._worker_error_log):
        throttle.interval = 6 * TIMEOUT
    with running(server):
        yield server
        server.shutdown(TIMEOUT)
        # Raises TimeoutError if the count of running connections was left wrong.
        server.wait_closed(0)


def uri(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def check_echo(server: Server) -> None:
    with client(uri(server)) as connection:
        connection.send("hello")
        assert connection.recv(TIMEOUT) == "hello"


def request_status(server: Server) -> int:
    """Send an upgrade request; return the status of the answer."""
    with RawPeer.connect(server.port) as peer:
        peer.send(upgrade_request())
        status: int = peer.read_response().status
        return status


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if text in record.getMessage()]


@contextlib.contextmanager
def failing_starts(
    monkeypatch: pytest.MonkeyPatch, prefix: str, errors: list[BaseException]
) -> Iterator[list[BaseException]]:
    """Make the next starts of threads named ``prefix...`` raise ``errors``, one each."""
    start = threading.Thread.start
    left = list(errors)

    def failing_start(thread: threading.Thread) -> None:
        if thread.name.startswith(prefix) and left:
            raise left.pop(0)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", failing_start)
    yield left


# Thread-start failure.


def test_worker_thread_that_cannot_start_is_answered_503(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 17: "can't start new thread" (or MemoryError) answers that client 503, is logged
    once, and the server keeps serving; shutdown returns, with no connection counted."""
    errors: list[BaseException] = [RuntimeError("can't start new thread"), MemoryError()]
    with (
        caplog.at_level(logging.ERROR, "syncws.server"),
        serving() as server,
        failing_starts(monkeypatch, "syncws-worker-", errors) as left,
    ):
        assert request_status(server) == 503
        assert request_status(server) == 503
        assert not left
        check_echo(server)
    # The second failure was held back.
    logged = messages(caplog, "could not start a worker thread")
    assert len(logged) == 1
    assert "can't start new thread" in logged[0].getMessage()
    assert "HTTP 503" in logged[0].getMessage()


def test_workers_forget_a_thread_that_did_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    ran = threading.Event()
    workers: Workers[socket.socket] = Workers(lambda sock: ran.set())
    left, right = socket.socketpair()
    try:
        with failing_starts(monkeypatch, "syncws-worker-", [RuntimeError("no thread")]):
            with pytest.raises(RuntimeError, match="no thread"):
                workers.submit(left)
            workers.submit(left)
            assert ran.wait(TIMEOUT)
    finally:
        # Joins the threads it started: it would raise for one that never started.
        workers.shutdown()
        left.close()
        right.close()


# Faults of accept().


def failing_accepts(
    monkeypatch: pytest.MonkeyPatch, server: Server, errors: list[BaseException]
) -> list[BaseException]:
    """Make the next ``accept()`` calls of the server's listening socket raise ``errors``."""
    accept = socket.socket.accept
    left = list(errors)

    def failing_accept(sock: socket.socket) -> tuple[socket.socket, Any]:
        if sock is server.socket and left:
            raise left.pop(0)
        return accept(sock)

    monkeypatch.setattr(socket.socket, "accept", failing_accept)
    return left


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EMFILE, "Too many open files"),
        OSError(errno.ENFILE, "Too many open files in system"),
        OSError(errno.ENOBUFS, "No buffer space available"),
        OSError(errno.ENOMEM, "Cannot allocate memory"),
        MemoryError(),
    ],
    ids=["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "MemoryError"],
)
def test_accept_out_of_resources_pauses_and_keeps_serving(
    error: BaseException, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """R5: accept() fails a few times; each time accepting pauses, and the client that
    waits in the backlog is served afterwards. Logged once, not once per failure."""
    with caplog.at_level(logging.ERROR, "syncws.server"), serving() as server:
        left = failing_accepts(monkeypatch, server, [error] * 3)
        check_echo(server)
        assert not left
    logged = messages(caplog, "accept failed")
    assert len(logged) == 1
    assert "pausing accept for 0.1 s" in logged[0].getMessage()


def test_shutdown_cuts_an_accept_pause_short(monkeypatch: pytest.MonkeyPatch) -> None:
    paused = threading.Event()
    with serving() as server:
        pause = server._pause_accepting

        def pause_and_report(exc: BaseException) -> None:
            paused.set()
            pause(exc)

        monkeypatch.setattr(server, "_pause_accepting", pause_and_report)
        monkeypatch.setattr(syncws.server, "_ACCEPT_PAUSE", 3 * TIMEOUT)
        failing_accepts(monkeypatch, server, [OSError(errno.EMFILE, "Too many open files")])
        with RawPeer.connect(server.port):
            assert paused.wait(TIMEOUT)
            # serving() shuts down and joins serve_forever() within TIMEOUT.


def test_socket_option_out_of_buffers_closes_that_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOBUFS setting TCP_NODELAY on an accepted socket: that connection is closed and the
    error logged without a traceback; the server goes on."""
    setsockopt = socket.socket.setsockopt
    left = [OSError(errno.ENOBUFS, "No buffer space available")]

    def failing_setsockopt(sock: socket.socket, *args: Any) -> None:
        if args[1] == socket.TCP_NODELAY and left:
            raise left.pop(0)
        setsockopt(sock, *args)

    with caplog.at_level(logging.ERROR, "syncws.server"), serving() as server:
        monkeypatch.setattr(socket.socket, "setsockopt", failing_setsockopt)
        with RawPeer.connect(server.port) as peer:
            peer.read_eof()
        assert not left
        check_echo(server)
    (logged,) = messages(caplog, "No buffer space")
    assert logged.getMessage() == "opening handshake failed: [Errno 105] No buffer space available"
    assert logged.exc_info is None


def test_accepted_socket_out_of_buffers_is_answered_503(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOBUFS from the accepted socket before a worker took it: 503, accepting pauses, and
    the count of connections stays right."""
    setblocking = socket.socket.setblocking
    left = [OSError(errno.ENOBUFS, "No buffer space available")]

    def failing_setblocking(sock: socket.socket, flag: bool) -> None:
        if flag and left:
            raise left.pop(0)
        setblocking(sock, flag)

    with caplog.at_level(logging.ERROR, "syncws.server"), serving() as server:
        monkeypatch.setattr(socket.socket, "setblocking", failing_setblocking)
        assert request_status(server) == 503
        monkeypatch.undo()
        assert not left
        check_echo(server)
    (logged,) = messages(caplog, "accept failed")
    assert "No buffer space available" in logged.getMessage()


# Unexpected errors of syncws's own.


def test_unexpected_error_in_the_accept_loop_is_answered_503(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "syncws.server"), serving() as server:
        submit = server._workers.submit
        left = [ValueError("bug")]

        def failing_submit(sock: socket.socket) -> None:
            if left:
                raise left.pop(0)
            submit(sock)

        monkeypatch.setattr(server._workers, "submit", failing_submit)
        assert request_status(server) == 503
        check_echo(server)
    (logged,) = messages(caplog, "unexpected error accepting a connection")
    assert logged.exc_info is not None


def test_unexpected_error_in_a_worker_fails_the_open_connection_with_1011(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection is open and its handler never ran: it is closed with 1011 rather than
    left open with nobody reading it."""
    run_handler = syncws.server.run_handler
    left = [RuntimeError("bug")]

    def failing_run_handler(connection: ServerConnection, *args: Any) -> None:
        if left:
            raise left.pop(0)
        run_handler(connection, *args)

    with caplog.at_level(logging.ERROR, "syncws.server"), serving() as server:
        monkeypatch.setattr(syncws.server, "run_handler", failing_run_handler)
        with client(uri(server)) as connection:
            with pytest.raises(ConnectionClosedError) as caught:
                connection.recv(TIMEOUT)
            assert caught.value.rcvd is not None
            assert caught.value.rcvd.code == CloseCode.INTERNAL_ERROR
        check_echo(server)
    (logged,) = messages(caplog, "unexpected error in connection worker")
    assert logged.exc_info is not None


def no_memory(connection: ServerConnection) -> dict[str, str]:
    raise MemoryError


def test_unexpected_error_in_the_handshake_is_answered_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The request was read, and no answer can be built (here even the 500 that answers a
    failing hook fails): the client gets a plain 500 rather than nothing."""
    with (
        caplog.at_level(logging.ERROR, "syncws.server"),
        serving(extra_headers=no_memory) as server,
    ):
        assert request_status(server) == 500
        assert request_status(server) == 500
    # Logged once: the second was held back.
    assert len(messages(caplog, "unexpected error in connection worker")) == 1


class UnstartableConnection(ServerConnection):
    def start(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("can't start new thread")


def test_connection_that_cannot_start_fails_with_1011() -> None:
    with (
        serving(create_connection=UnstartableConnection) as server,
        client(uri(server)) as connection,
    ):
        with pytest.raises(ConnectionClosedError) as caught:
            connection.recv(TIMEOUT)
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == CloseCode.INTERNAL_ERROR


# Leaving the with block.


def test_leaving_the_with_block_returns_despite_a_handler_that_never_returns() -> None:
    """Server.__exit__ shuts down with close_timeout as its timeout: the stuck handler is
    left behind in its daemon thread, and the block is left anyway."""
    started = threading.Event()
    release = threading.Event()

    def stuck(connection: ServerConnection) -> None:
        started.set()
        release.wait(6 * TIMEOUT)

    server = serve(stuck, "127.0.0.1", 0, close_timeout=0.2)
    thread = threading.Thread(target=server.serve_forever, name="test-serve-forever")
    thread.start()
    try:
        with client(uri(server)) as connection:
            assert started.wait(TIMEOUT)

            def leave() -> None:
                with server:
                    pass

            Background(leave).join(TIMEOUT)
            with pytest.raises(TimeoutError):
                server.wait_closed(0)
            with pytest.raises(ConnectionClosed):
                connection.recv(TIMEOUT)
    finally:
        release.set()
        server.shutdown(TIMEOUT)
        thread.join(TIMEOUT)
    server.wait_closed(0)


# Idle workers.


def worker_threads() -> int:
    return sum(thread.name.startswith("syncws-worker-") for thread in threading.enumerate())


def test_idle_workers_above_the_floor_retire() -> None:
    count = KEEP_IDLE + 4
    with serving(worker_idle_timeout=0.05) as server:
        before = worker_threads()
        connections = [client(uri(server)) for _ in range(count)]
        try:
            assert worker_threads() >= before + count
        finally:
            for connection in connections:
                connection.close()
        assert wait_for(lambda: worker_threads() == KEEP_IDLE, TIMEOUT), worker_threads()
        # The threads that stay still serve.
        check_echo(server)
        assert worker_threads() == KEEP_IDLE


def test_a_retiring_worker_gives_freed_memory_back(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[int] = []
    monkeypatch.setattr(syncws.workers, "release_freed_memory", lambda: released.append(1))
    go = threading.Event()

    def run(job: int) -> None:
        go.wait(TIMEOUT)

    workers: Workers[int] = Workers(run, idle_timeout=0.01)
    try:
        for job in range(KEEP_IDLE + 1):
            workers.submit(job)
        assert workers.counts() == (KEEP_IDLE + 1, 0)
        go.set()
        # Nothing is released while the workers run or wait; once, for the one that ends.
        assert wait_for(lambda: sum(workers.counts()) == KEEP_IDLE, TIMEOUT)
        assert wait_for(lambda: released == [1], TIMEOUT), released
    finally:
        go.set()
        workers.shutdown()


def test_workers_stay_without_an_idle_timeout() -> None:
    count = KEEP_IDLE + 2
    with serving(worker_idle_timeout=None) as server:
        connections = [client(uri(server)) for _ in range(count)]
        for connection in connections:
            connection.close()
        # Every worker took back its place among the idle ones: none ended.
        assert wait_for(lambda: len(server._workers._idle) == count, TIMEOUT)
        assert worker_threads() == count


def test_a_worker_that_ran_long_enough_ends_after_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its allocator's cache of freed blocks goes with it; the next connection gets a new
    # thread, and nothing else changes.
    monkeypatch.setattr(syncws.workers, "MAX_AGE", 0.0)
    released: list[int] = []
    monkeypatch.setattr(syncws.workers, "release_freed_memory", lambda: released.append(1))
    names: list[str] = []

    def run(job: int) -> None:
        names.append(threading.current_thread().name)

    workers: Workers[int] = Workers(run, idle_timeout=60)
    try:
        for job in range(3):
            workers.submit(job)
            assert wait_for(lambda: sum(workers.counts()) == 0, TIMEOUT)
        assert len(set(names)) == 3
        assert released == [1, 1, 1]
    finally:
        workers.shutdown()


def test_without_an_idle_timeout_workers_never_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syncws.workers, "MAX_AGE", 0.0)
    names: list[str] = []
    workers: Workers[int] = Workers(
        lambda job: names.append(threading.current_thread().name), idle_timeout=None
    )
    try:
        for job in range(3):
            workers.submit(job)
            assert wait_for(lambda: workers.counts() == (0, 1), TIMEOUT)
        assert len(set(names)) == 1
    finally:
        workers.shutdown()


def test_churn_reuses_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sequential connections run on the same thread, however short the idle timeout: the
    thread idle for the shortest time takes the next connection."""
    started: list[str] = []
    start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    with serving(worker_idle_timeout=1) as server:
        monkeypatch.setattr(threading.Thread, "start", counting_start)
        for _ in range(30):
            check_echo(server)
        monkeypatch.undo()
    workers = [name for name in started if name.startswith("syncws-worker-")]
    assert len(workers) <= 3, workers
