"""Contracts a user relies on: a misused argument is a clear error that names it, one
convention for timeouts, nothing hangs on shutdown, and the docs say what the code does."""

from __future__ import annotations

import logging
import math
import pathlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from io_helpers import TIMEOUT, Background, RawPeer, client, running

import syncws
from syncws.core.http11 import Request, Response
from syncws.core.protocol import State
from syncws.exceptions import ConnectionClosed, InvalidStatus
from syncws.options import check_timeout
from syncws.server import Server, ServerConnection, serve
from syncws.testing import connected_pair, run_server, run_unix_server

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.usefixtures("no_leaks")

DOCS = pathlib.Path(__file__).parent.parent / "docs"


def echo(connection: ServerConnection) -> None:
    for message in connection:
        connection.send(message)


@pytest.fixture
def pair() -> Iterator[tuple[syncws.ClientConnection, ServerConnection]]:
    with connected_pair(compression=None, close_timeout=2) as pair:
        yield pair


# Misuse: a TypeError for a value of the wrong type, a ValueError for one out of range, and
# the message names the argument.


def test_check_timeout_convention() -> None:
    right: list[object] = [None, 0, 0.0, 0.5, 3]
    for value in right:
        check_timeout("timeout", value)
    wrong: list[object] = ["1", True, [1], b"1"]
    for value in wrong:
        with pytest.raises(TypeError, match="timeout must be a number of seconds"):
            check_timeout("timeout", value)
    for value in (-1, -0.001, math.nan, math.inf):
        with pytest.raises(ValueError, match="timeout must be a finite number of seconds"):
            check_timeout("timeout", value)


@pytest.mark.parametrize(
    ("timeout", "error"),
    [("1", TypeError), (True, TypeError), (-1, ValueError), (math.nan, ValueError)],
)
def test_recv_refuses_a_bad_timeout(
    pair: tuple[syncws.ClientConnection, ServerConnection], timeout: Any, error: type[Exception]
) -> None:
    client_side, server_side = pair
    server_side.send("queued")
    with pytest.raises(error, match="timeout"):
        client_side.recv(timeout)
    # Nothing was lost, and 0 still polls.
    assert client_side.recv(TIMEOUT) == "queued"
    with pytest.raises(TimeoutError):
        client_side.recv(0)


def test_recv_timeout_zero_polls(pair: tuple[syncws.ClientConnection, ServerConnection]) -> None:
    client_side, server_side = pair
    with pytest.raises(TimeoutError):
        client_side.recv(timeout=0)
    server_side.send("here")
    assert client_side.recv(TIMEOUT) == "here"
    assert client_side.state is State.OPEN


@pytest.mark.parametrize(
    ("timeout", "error"), [("x", TypeError), (-1, ValueError), (math.inf, ValueError)]
)
def test_send_refuses_a_bad_timeout_and_sends_nothing(
    pair: tuple[syncws.ClientConnection, ServerConnection], timeout: Any, error: type[Exception]
) -> None:
    client_side, server_side = pair
    with pytest.raises(error, match="timeout"):
        client_side.send("not sent", timeout=timeout)
    client_side.send("sent")
    assert server_side.recv(TIMEOUT) == "sent"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda c: c.close("1000"), TypeError, "code must be an integer"),
        (lambda c: c.close(1000.0), TypeError, "code must be an integer"),
        (lambda c: c.close(999), ValueError, "code 999 may not be sent"),
        (lambda c: c.close(1005), ValueError, "code 1005 may not be sent"),
        (lambda c: c.close(1000, b"bye"), TypeError, "reason must be str"),
        (lambda c: c.close(1000, "é" * 62), ValueError, "reason must be at most 123 bytes"),
        (lambda c: c.ping(123), TypeError, "data must be str or bytes-like"),
        (lambda c: c.ping(b"x" * 126), ValueError, "data must be at most 125 bytes"),
        (lambda c: c.pong(123), TypeError, "data must be str or bytes-like"),
        (lambda c: c.pong("x" * 126), ValueError, "data must be at most 125 bytes"),
        (lambda c: c.wait_closed("1"), TypeError, "timeout must be a number"),
        (lambda c: c.wait_closed(-1), ValueError, "timeout must be a finite number"),
    ],
)
def test_misused_arguments_are_named(
    pair: tuple[syncws.ClientConnection, ServerConnection],
    call: Callable[[syncws.ClientConnection], object],
    error: type[Exception],
    match: str,
) -> None:
    client_side, server_side = pair
    with pytest.raises(error, match=match):
        call(client_side)
    # The mistake changed nothing: the connection is open and works.
    assert client_side.state is State.OPEN
    client_side.send("still open")
    assert server_side.recv(TIMEOUT) == "still open"


def test_close_checks_its_arguments_once_closed_too(
    pair: tuple[syncws.ClientConnection, ServerConnection],
) -> None:
    client_side, _ = pair
    client_side.close()
    client_side.close()  # closing again is fine
    with pytest.raises(ValueError, match="code 999"):
        client_side.close(999)
    with pytest.raises(TypeError, match="reason"):
        client_side.close(1000, None)  # type: ignore[arg-type]


def test_ping_and_pong_take_bytes_like_payloads(
    pair: tuple[syncws.ClientConnection, ServerConnection],
) -> None:
    client_side, _ = pair
    waiter = client_side.ping(bytearray(b"ba"))  # type: ignore[arg-type]
    assert waiter.wait(TIMEOUT) >= 0
    client_side.pong(memoryview(b"heartbeat"))  # type: ignore[arg-type]
    assert client_side.state is State.OPEN


def test_send_empty_iterable_on_an_open_connection_is_a_value_error(
    pair: tuple[syncws.ClientConnection, ServerConnection],
) -> None:
    client_side, server_side = pair
    with pytest.raises(ValueError, match="an empty iterable is not a message"):
        client_side.send([])
    with pytest.raises(ValueError, match="an empty iterable is not a message"):
        client_side.send(x for x in "")
    client_side.send("next")
    assert server_side.recv(TIMEOUT) == "next"


@pytest.mark.parametrize("message", [[], iter(()), ["a"], "a", b"a"])
def test_send_on_a_closed_connection_raises_even_an_empty_iterable(
    pair: tuple[syncws.ClientConnection, ServerConnection], message: Any
) -> None:
    client_side, _ = pair
    client_side.close()
    with pytest.raises(ConnectionClosed):
        client_side.send(message)


def _answered_500(caplog: pytest.LogCaptureFixture, **hook: Any) -> str:
    """Open a connection to a server given ``hook``; check that the handshake is answered 500
    and logged once as failed by ``syncws.server``; return the logged message."""
    caplog.set_level(logging.ERROR, logger="syncws.server")
    with (
        run_server(echo, **hook) as running,
        pytest.raises(InvalidStatus) as exc_info,
    ):
        client(running.uri)
    assert exc_info.value.response.status_code == 500
    [record] = [
        record
        for record in caplog.records
        if record.name == "syncws.server" and "opening handshake failed" in record.getMessage()
    ]
    return record.getMessage()


def test_process_request_returning_a_tuple_is_logged_and_answered_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def legacy(connection: ServerConnection, request: Request) -> Any:
        # The legacy websockets form: (status, headers, body).
        return (200, [("Content-Type", "text/plain")], b"OK\n")

    message = _answered_500(caplog, process_request=legacy)
    assert "process_request returned tuple (200," in message
    assert "expected a Response or None" in message


def test_process_response_returning_something_else_is_logged_and_answered_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def wrong(connection: ServerConnection, request: Request, response: Response) -> Any:
        return "OK"

    message = _answered_500(caplog, process_response=wrong)
    assert "process_response returned str 'OK'; expected a Response or None" in message


def test_process_request_returning_a_response_or_none_still_works() -> None:
    def health(connection: ServerConnection, request: Request) -> Response | None:
        return connection.respond(200, "OK\n") if request.path == "/healthz" else None

    with run_server(echo, process_request=health) as running:
        with pytest.raises(InvalidStatus) as exc_info:
            client(running.uri + "healthz")
        assert exc_info.value.response.status_code == 200
        with client(running.uri) as connection:
            connection.send("hi")
            assert connection.recv(TIMEOUT) == "hi"


# serve_forever() serves once.


def test_serve_forever_after_it_returned_returns_at_once() -> None:
    server = serve(echo, "127.0.0.1", 0)
    with running(server), client(f"ws://127.0.0.1:{server.port}/") as connection:
        connection.send("hi")
        assert connection.recv(TIMEOUT) == "hi"
    # Shut down and returned: calling it again returns at once instead of raising.
    Background(server.serve_forever).join()
    assert server.socket.fileno() == -1


def test_serve_forever_still_refuses_to_run_twice_at_once() -> None:
    server = serve(echo, "127.0.0.1", 0)
    with running(server):
        assert server._serving.wait(TIMEOUT)
        with pytest.raises(RuntimeError, match="already running"):
            server.serve_forever()


# One convention for wait_closed(timeout): TimeoutError.


def test_server_wait_closed_raises_timeout_error_like_the_connection() -> None:
    release = threading.Event()
    started = threading.Event()

    def stuck(connection: ServerConnection) -> None:
        started.set()
        release.wait(TIMEOUT)

    server = serve(stuck, "127.0.0.1", 0)
    with running(server):
        connection = client(f"ws://127.0.0.1:{server.port}/")
        try:
            assert started.wait(TIMEOUT)
            server.close()
            with pytest.raises(TimeoutError, match="1 connection handler"):
                server.wait_closed(0.1)
            with pytest.raises(TimeoutError):
                server.wait_closed(0)
            # And the connection: the same exception for the same situation.
            connection.wait_closed(TIMEOUT)
            release.set()
            assert server.wait_closed(TIMEOUT) is None  # type: ignore[func-returns-value]
        finally:
            release.set()
            connection.abort()


def test_server_wait_closed_checks_its_timeout() -> None:
    server = serve(echo, "127.0.0.1", 0)
    server.close()
    with pytest.raises(TypeError, match="timeout"):
        server.wait_closed("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        server.wait_closed(-1)
    with pytest.raises(ValueError, match="timeout"):
        server.shutdown(math.nan)
    server.wait_closed(TIMEOUT)


# Nothing hangs: a handler stuck on something other than its connection.


class Stuck:
    """A handler that waits on an event, not on its connection, until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, connection: ServerConnection) -> None:
        self.started.set()
        self.release.wait(3 * TIMEOUT)


def test_shutdown_returns_although_a_handler_never_does() -> None:
    handler = Stuck()
    server = serve(handler, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    connection = client(f"ws://127.0.0.1:{server.port}/")
    try:
        assert handler.started.wait(TIMEOUT)
        Background(lambda: server.shutdown(0.2)).join()
        # The connection was closed (1001) all the same, and the handler is still there.
        connection.wait_closed(TIMEOUT)
        assert connection.close_code == 1001
        with pytest.raises(TimeoutError):
            server.wait_closed(0)
    finally:
        handler.release.set()
        thread.join(TIMEOUT)
        server.wait_closed(TIMEOUT)
        connection.abort()


def test_shutdown_wakes_handlers_blocked_on_their_connection() -> None:
    """The abort after the timeout wakes a handler that ignores the Close and then waits on
    its connection: it returns within the grace, and shutdown() waited for it."""
    ended = threading.Event()
    started = threading.Event()

    def stubborn(connection: ServerConnection) -> None:
        started.set()
        try:
            connection.recv()
        except ConnectionClosed:
            ended.set()

    server = serve(stubborn, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    # A raw peer that never answers the Close keeps the handler's recv() waiting.
    with RawPeer.connect(server.port) as peer:
        peer.handshake()
        assert started.wait(TIMEOUT)
        Background(lambda: server.shutdown(0.2)).join()
        assert ended.is_set()
        server.wait_closed(0)
    thread.join(TIMEOUT)


def _leave_stuck(run: Callable[[Stuck], None]) -> None:
    """Run a server helper with a stuck handler in the background: it must raise
    RuntimeError after its shutdown_timeout instead of hanging."""
    handler = Stuck()
    try:
        outcome = Background(lambda: run(handler))
        with pytest.raises(RuntimeError, match=r"did not return within shutdown_timeout=0\.5"):
            outcome.join()
        # The stuck thread is left behind as a daemon.
        workers = [t for t in threading.enumerate() if t.name.startswith("syncws-worker")]
        assert workers
        assert all(worker.daemon for worker in workers)
    finally:
        handler.release.set()


def test_run_server_raises_instead_of_hanging() -> None:
    servers: list[Server] = []

    def run(handler: Stuck) -> None:
        with run_server(handler, shutdown_timeout=0.5) as running:
            servers.append(running.server)
            connection = client(running.uri)
            assert handler.started.wait(TIMEOUT)
            connection.close()

    _leave_stuck(run)
    # Once the handler returns, the server finishes cleaning up.
    servers[0].wait_closed(TIMEOUT)


def test_run_unix_server_raises_instead_of_hanging() -> None:
    servers: list[Server] = []

    def run(handler: Stuck) -> None:
        with run_unix_server(handler, shutdown_timeout=0.5) as running:
            servers.append(running.server)
            assert running.path is not None
            connection = syncws.unix_connect(running.path, open_timeout=TIMEOUT)
            assert handler.started.wait(TIMEOUT)
            connection.close()

    _leave_stuck(run)
    servers[0].wait_closed(TIMEOUT)


STUCK_FIXTURE_TEST = """
import threading

import syncws

release = threading.Event()
started = threading.Event()


def stuck(connection):
    started.set()
    release.wait()


def test_stuck(syncws_server):
    running = syncws_server(stuck, shutdown_timeout=0.5)
    with syncws.connect(running.uri, open_timeout=10) as websocket:
        assert started.wait(10)
"""


def test_pytest_fixture_fails_instead_of_hanging(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(STUCK_FIXTURE_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: a connection handler did not return*"])


# The docs say what the code does.


def test_docs_do_not_promise_a_default_receive_timeout() -> None:
    timeouts = (DOCS / "howto" / "timeouts.rst").read_text()
    migrating = (DOCS / "migrating.rst").read_text()
    assert "each limit has a finite default" not in timeouts
    assert "Every blocking call of syncws has a finite default" not in migrating
    # recv() waits until a message comes, and the guides say so.
    assert "waits until a message comes" in timeouts
    assert "waits until a message comes" in migrating


def test_websocket_client_timeout_maps_to_open_timeout_and_recv_timeout() -> None:
    migrating = (DOCS / "migrating.rst").read_text()
    row = migrating.split("``ws = create_connection(url, timeout=5)``", 1)[1]
    row = row.split("* -", 1)[0]
    assert "open_timeout=5" in row
    assert "recv(timeout=5)" in row
    assert "write_timeout=5" in row
    # And the mapping does what websocket-client's timeout did: a receive gives up.
    with (
        run_server(echo) as running,
        syncws.connect(running.uri, open_timeout=5, write_timeout=5) as websocket,
    ):
        with pytest.raises(TimeoutError):
            websocket.recv(timeout=0.1)
        websocket.send("still usable", timeout=5)
        assert websocket.recv(timeout=5) == "still usable"


def test_ping_waiter_checks_its_timeout(
    pair: tuple[syncws.ClientConnection, ServerConnection],
) -> None:
    client_connection, _ = pair
    waiter = client_connection.ping()
    with pytest.raises(TypeError, match="timeout must be a number of seconds"):
        waiter.wait("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds"):
        waiter.wait(-1)
    assert waiter.wait(TIMEOUT) >= 0


def test_server_close_checks_its_arguments() -> None:
    with run_server(echo) as served:
        with pytest.raises(ValueError, match="may not be sent in a Close frame"):
            served.server.close(1006)
        with pytest.raises(TypeError, match="reason must be str"):
            served.server.close(1001, b"bye")  # type: ignore[arg-type]
        # Nothing was started by the refused calls: the server still serves.
        with syncws.connect(served.uri, open_timeout=TIMEOUT) as connection:
            connection.send("still here")
            assert connection.recv(TIMEOUT) == "still here"
