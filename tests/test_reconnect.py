"""Tests of connect(reconnect=True): retries, backoff, Retry-After, fatal errors, closing."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import queue
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest
from io_helpers import TIMEOUT, RawServer, server_context, wrong_accept
from io_helpers import running as running_in_thread

import syncws
from syncws.client import _is_transient
from syncws.core.http11 import Request, Response
from syncws.exceptions import (
    InvalidHeaderValue,
    InvalidMessage,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)
from syncws.server import Server, ServerConnection

# Small delays keep the tests short; every loop below also stops after a few connections.
FAST = {"backoff_initial": 0.01, "backoff_factor": 2.0, "backoff_max": 0.05}


pytestmark = pytest.mark.usefixtures("no_leaks")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Running:
    """A syncws server in a thread, that can be stopped and started again on one port."""

    def __init__(
        self,
        handler: Callable[[ServerConnection], None],
        port: int,
        **kwargs: Any,
    ) -> None:
        self.handler = handler
        self.port = port
        self.kwargs = kwargs
        self.server: Server | None = None
        self._thread = contextlib.ExitStack()

    def start(self) -> None:
        # Not run_server(), which picks a free port: the server comes back on the same one.
        # serve() binds with SO_REUSEADDR: the port is free again as soon as it was closed.
        self.server = syncws.serve(self.handler, "127.0.0.1", self.port, **self.kwargs)
        self._thread.enter_context(running_in_thread(self.server))

    def stop(self) -> None:
        self._thread.close()
        self.server = None


@contextlib.contextmanager
def running(
    handler: Callable[[ServerConnection], None], port: int | None = None, **kwargs: Any
) -> Iterator[Running]:
    kwargs.setdefault("compression", None)
    server = Running(handler, free_port() if port is None else port, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def reconnecting(uri: str, **kwargs: Any) -> Generator[syncws.ClientConnection, None, None]:
    """connect(reconnect=True) with small delays, no compression and no proxy."""
    for name, value in FAST.items():
        kwargs.setdefault(name, value)
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("compression", None)
    kwargs.setdefault("proxy", None)
    connections: Generator[syncws.ClientConnection, None, None] = syncws.connect(
        uri, reconnect=True, **kwargs
    )
    return connections


class Counter:
    """A handler that greets each connection with its number, then echoes."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.close_codes: queue.Queue[int | None] = queue.Queue()

    def __call__(self, connection: ServerConnection) -> None:
        with self.lock:
            self.count += 1
            number = self.count
        connection.send(f"welcome {number}")
        with contextlib.suppress(syncws.ConnectionClosed):
            for message in connection:
                connection.send(message)
        self.close_codes.put(connection.close_code)


def retries(caplog: pytest.LogCaptureFixture) -> list[tuple[str, float]]:
    """The (reason, delay) of every retry that syncws.client logged."""
    found = []
    for record in caplog.records:
        if record.name != "syncws.client" or record.levelno != logging.INFO:
            continue
        message = record.getMessage()
        match = re.search(r"in (\d+\.\d+) seconds", message)
        if match is not None:
            found.append((message, float(match.group(1))))
    return found


# Reconnecting.


def test_plain_connect_still_returns_a_connection() -> None:
    with running(Counter()) as server:
        connection = syncws.connect(f"ws://127.0.0.1:{server.port}/", proxy=None)
        with connection:
            assert isinstance(connection, syncws.ClientConnection)
            assert connection.recv(TIMEOUT) == "welcome 1"


def test_reconnects_after_server_restart(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncws.client")
    counter = Counter()
    port = free_port()
    server = Running(counter, port, compression=None)
    server.start()
    greetings = []
    restarted = False
    try:
        for connection in reconnecting(f"ws://127.0.0.1:{port}/"):
            greetings.append(connection.recv(TIMEOUT))
            if len(greetings) == 2:
                break
            # Stop the server: the connection closes with 1001, and nothing listens until
            # the server starts again, once the client was refused at least twice.
            server.stop()
            assert list(connection) == []
            assert connection.close_code == 1001
            start = threading.Thread(target=restart_after_refusals, args=(server, caplog))
            start.start()
            restarted = True
        else:
            pytest.fail("the iterator ended")
    finally:
        if restarted:
            start.join(TIMEOUT)
        server.stop()
    assert greetings == ["welcome 1", "welcome 2"]
    logged = retries(caplog)
    assert logged[0][0].startswith("connection closed (code 1001); reconnecting in")
    refused = [message for message, _ in logged if "ConnectionRefusedError" in message]
    assert len(refused) >= 2
    assert all(delay <= FAST["backoff_max"] for _, delay in logged)


def restart_after_refusals(server: Running, caplog: pytest.LogCaptureFixture) -> None:
    """Start ``server`` again once the client was refused twice (or after the timeout)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if sum("ConnectionRefusedError" in message for message, _ in retries(caplog)) >= 2:
            break
        time.sleep(0.01)
    server.start()


def test_reconnects_after_abnormal_close() -> None:
    counter = Counter()

    def handler(connection: ServerConnection) -> None:
        if counter.count == 0:
            counter.count += 1
            connection.abort()  # no closing handshake: 1006 on the client
            return
        counter(connection)

    codes = []
    with running(handler) as server:
        for attempt, connection in enumerate(reconnecting(f"ws://127.0.0.1:{server.port}/")):
            try:
                for message in connection:
                    assert message == "welcome 2"
                    break
                else:
                    pytest.fail("iteration ended without an error")
            except syncws.ConnectionClosed as exc:
                codes.append(exc.code)
                assert attempt == 0
                continue
            break
    assert codes == [1006]


def test_body_done_with_open_connection_closes_it_and_reconnects() -> None:
    counter = Counter()
    with running(counter) as server:
        for count, connection in enumerate(reconnecting(f"ws://127.0.0.1:{server.port}/")):
            assert connection.recv(TIMEOUT) == f"welcome {count + 1}"
            if count == 2:
                break
        codes = [counter.close_codes.get(timeout=TIMEOUT) for _ in range(3)]
    assert codes == [1000, 1000, 1000]


def test_break_closes_the_connection() -> None:
    counter = Counter()
    with running(counter) as server:
        for connection in reconnecting(f"ws://127.0.0.1:{server.port}/"):
            assert connection.recv(TIMEOUT) == "welcome 1"
            break
        # The loop dropped the iterator: closing it closed the connection, at once.
        assert connection.state is syncws.State.CLOSED
        assert counter.close_codes.get(timeout=TIMEOUT) == 1000


def test_closing_the_iterator_closes_the_connection() -> None:
    counter = Counter()
    with running(counter) as server:
        connections = reconnecting(f"ws://127.0.0.1:{server.port}/")
        with contextlib.closing(connections):
            connection = next(connections)
            assert connection.recv(TIMEOUT) == "welcome 1"
        assert connection.state is syncws.State.CLOSED
        assert counter.close_codes.get(timeout=TIMEOUT) == 1000


# HTTP statuses.


def answering(statuses: list[int], headers: dict[str, str] | None = None) -> Any:
    """A process_request hook that answers the given statuses, then accepts."""
    requests: queue.Queue[tuple[float, Request]] = queue.Queue()

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        requests.put((time.monotonic(), request))
        if not statuses:
            return None
        response = connection.respond(statuses.pop(0), "Not now\n")
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    process_request.requests = requests  # type: ignore[attr-defined]
    return process_request


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_retries_on_5xx_and_429(status: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncws.client")
    hook = answering([status, status])
    with running(Counter(), process_request=hook) as server:
        for connection in reconnecting(f"ws://127.0.0.1:{server.port}/"):
            assert connection.recv(TIMEOUT) == "welcome 1"
            break
    assert hook.requests.qsize() == 3
    logged = [message for message, _ in retries(caplog)]
    assert len(logged) == 2
    assert all(f"HTTP {status}" in message for message in logged)


def test_retry_after_seconds(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncws.client")
    hook = answering([503], {"Retry-After": "1"})
    with running(Counter(), process_request=hook) as server:
        for connection in reconnecting(f"ws://127.0.0.1:{server.port}/"):
            assert connection.recv(TIMEOUT) == "welcome 1"
            break
    (first, _), (second, _) = hook.requests.get(), hook.requests.get()
    # The backoff alone would wait at most 0.01 seconds.
    assert [delay for _, delay in retries(caplog)] == [1.0]
    assert second - first >= 1.0


def test_retry_after_http_date(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncws.client")
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    hook = answering([429], {"Retry-After": when})
    with running(Counter(), process_request=hook) as server:
        for connection in reconnecting(f"ws://127.0.0.1:{server.port}/"):
            assert connection.recv(TIMEOUT) == "welcome 1"
            break
    ((_, delay),) = retries(caplog)
    # The date has a resolution of one second.
    assert 0.5 < delay <= 2.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_4xx_are_fatal(status: int) -> None:
    hook = answering([status])
    with running(Counter(), process_request=hook) as server:
        with pytest.raises(InvalidStatus) as exc_info:
            next(reconnecting(f"ws://127.0.0.1:{server.port}/"))
        assert hook.requests.qsize() == 1
    assert exc_info.value.response.status_code == status


def test_certificate_verification_failure_is_fatal() -> None:
    context = server_context()
    with running(Counter(), ssl=context) as server, pytest.raises(ssl.SSLCertVerificationError):
        next(reconnecting(f"wss://localhost:{server.port}/"))


def test_invalid_handshake_response_is_fatal() -> None:
    with RawServer(wrong_accept) as server, pytest.raises(InvalidHeaderValue):
        next(reconnecting(server.uri))


def test_invalid_uri_is_raised_at_once() -> None:
    with pytest.raises(InvalidURI):
        syncws.connect("http://localhost/", reconnect=True)


def test_reconnect_refuses_sock() -> None:
    connect: Any = syncws.connect  # the types don't allow it either
    with socket.socket() as sock, pytest.raises(TypeError):
        connect("ws://localhost/", reconnect=True, sock=sock)


def test_closed_during_handshake_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    """A server that closes the connection before answering may be restarting."""
    caplog.set_level(logging.INFO, logger="syncws.client")
    port = free_port()
    counter = Counter()
    server = Running(counter, port, compression=None)
    listener = socket.create_server(("127.0.0.1", port))

    def close_once_then_serve() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.settimeout(TIMEOUT)
            sock.recv(65536)
        listener.close()
        server.start()

    listener.settimeout(TIMEOUT)
    thread = threading.Thread(target=close_once_then_serve)
    thread.start()
    try:
        for connection in reconnecting(f"ws://127.0.0.1:{port}/"):
            assert connection.recv(TIMEOUT) == "welcome 1"
            break
    finally:
        thread.join(TIMEOUT)
        listener.close()
        server.stop()
    assert any("InvalidMessage" in message for message, _ in retries(caplog))


# Backoff.


class StartAfter(logging.Handler):
    """Starts a server once syncws.client logged ``count`` retries."""

    def __init__(self, count: int, start: Callable[[], None]) -> None:
        super().__init__(logging.INFO)
        self.count = count
        self.start = start

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.count -= 1
            if self.count == 0:
                self.start()


@pytest.fixture
def ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the jitter pick the top of its range, so that the delays show the ceiling."""
    monkeypatch.setattr("syncws.client.random.uniform", lambda low, high: high)


@pytest.mark.usefixtures("ceiling")
def test_backoff_grows_up_to_max(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncws.client")
    port = free_port()
    server = Running(Counter(), port, compression=None)
    handler = StartAfter(5, server.start)
    logging.getLogger("syncws.client").addHandler(handler)
    try:
        options = {"backoff_initial": 0.01, "backoff_factor": 3.0, "backoff_max": 0.1}
        for connection in reconnecting(f"ws://127.0.0.1:{port}/", **options):
            assert connection.recv(TIMEOUT) == "welcome 1"
            break
    finally:
        logging.getLogger("syncws.client").removeHandler(handler)
        server.stop()
    assert [delay for _, delay in retries(caplog)] == [0.01, 0.03, 0.09, 0.1, 0.1]


@pytest.mark.usefixtures("ceiling")
@pytest.mark.parametrize(("reset", "delays"), [(60.0, [0.01, 0.03, 0.09]), (0.0, [0.01] * 3)])
def test_backoff_reset_after_connection_stayed_open(
    reset: float, delays: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncws.client")
    with running(lambda connection: None) as server:  # every connection closes at once
        options = {"backoff_initial": 0.01, "backoff_factor": 3.0, "backoff_max": 1.0}
        for count, connection in enumerate(
            reconnecting(f"ws://127.0.0.1:{server.port}/", backoff_reset=reset, **options)
        ):
            assert list(connection) == []
            if count == 3:
                break
    assert [delay for _, delay in retries(caplog)] == delays


def test_invalid_backoff_arguments() -> None:
    with pytest.raises(ValueError, match="backoff"):
        syncws.connect("ws://localhost/", reconnect=True, backoff_initial=2, backoff_max=1)
    with pytest.raises(ValueError, match="backoff"):
        syncws.connect("ws://localhost/", reconnect=True, backoff_factor=0.5)


# Fresh headers.


def test_additional_headers_callable_is_called_before_each_attempt() -> None:
    hook = answering([503, 503])
    tokens = iter(range(1, 100))

    def headers() -> dict[str, str]:
        return {"Authorization": f"Bearer {next(tokens)}"}

    with running(Counter(), process_request=hook) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        for count, _ in enumerate(reconnecting(uri, additional_headers=headers)):
            if count == 1:
                break
        with syncws.connect(uri, additional_headers=headers, proxy=None):
            pass
    seen = [hook.requests.get()[1].headers["Authorization"] for _ in range(5)]
    assert seen == [f"Bearer {number}" for number in range(1, 6)]


# Which errors are worth another attempt.


def response(status: int) -> Response:
    return Response(status, "", syncws.Headers())


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError(), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), True),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), False),
        (InvalidStatus(response(503)), True),
        (InvalidStatus(response(429)), True),
        (InvalidStatus(response(401)), False),
        (InvalidProxyStatus(response(502)), True),
        (InvalidProxyStatus(response(407)), False),
        (InvalidMessage("invalid status line"), False),
        (NegotiationError("no subprotocol"), False),
        (ssl.SSLCertVerificationError(), False),
        (ssl.SSLEOFError(), True),
        (ValueError(), False),
    ],
)
def test_transient_errors(exc: Exception, transient: bool) -> None:
    assert _is_transient(exc) is transient
