"""The code shown in the documentation runs, and does what the documentation says.

Every script under ``docs/snippets`` is included verbatim in a page. Each test here imports
one (or runs it as a program) and drives it against a real peer on the loopback interface:
the ``websockets`` package, or a syncws server or client where that is the point.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import require_executable
from io_helpers import TIMEOUT, echo, wait_for, ws_server
from io_helpers import syncws_echo as echo_syncws
from websockets.exceptions import ConnectionClosed as WSConnectionClosed
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import ClientConnection as WSClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import ServerConnection as WSServerConnection

import syncws
from syncws.testing import connected_pair, run_server

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "docs" / "snippets"


def load(name: str) -> ModuleType:
    """Import ``docs/snippets/<name>.py`` as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"snippet_{name}", SNIPPETS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures("no_leaks")


class Program:
    """A snippet run as a program, with ``PORT=0``: it prints the port it listens on."""

    def __init__(self, name: str) -> None:
        env = dict(os.environ, PORT="0")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, str(SNIPPETS / f"{name}.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        line = self.readline()
        assert line.startswith("listening on port "), line
        self.port = int(line.rsplit(" ", 1)[1])

    def readline(self) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], TIMEOUT)
        assert ready, "the program printed nothing in time"
        return self.process.stdout.readline().decode()

    def stop(self, signum: int) -> tuple[int, str, str]:
        """Send ``signum``; return the exit status and what the program printed."""
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode, out.decode(), err.decode()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=TIMEOUT)


@contextlib.contextmanager
def program(name: str) -> Iterator[Program]:
    running = Program(name)
    try:
        yield running
    finally:
        running.kill()


# Getting started.


def test_first_client_gets_the_echo() -> None:
    first_client = load("first_client")
    with ws_server(echo) as server:
        assert first_client.hello(server.uri) == "Hello world!"


def test_first_server_echoes_and_stops_on_ctrl_c() -> None:
    with program("first_server") as server:
        with ws_connect(f"ws://127.0.0.1:{server.port}/", open_timeout=TIMEOUT) as websocket:
            websocket.send("one")
            websocket.send(b"two")
            assert websocket.recv(timeout=TIMEOUT) == "one"
            assert websocket.recv(timeout=TIMEOUT) == b"two"
        status, _, err = server.stop(signal.SIGINT)
        assert status == 0, err


def test_stopping_closes_clients_with_1001_on_sigterm() -> None:
    with program("stopping") as server:
        websocket = ws_connect(f"ws://127.0.0.1:{server.port}/", open_timeout=TIMEOUT)
        with websocket:
            websocket.send("still here?")
            assert websocket.recv(timeout=TIMEOUT) == "still here?"
            status, out, err = server.stop(signal.SIGTERM)
            with pytest.raises(ConnectionClosedOK):
                websocket.recv(timeout=TIMEOUT)
        assert status == 0, err
        assert out.splitlines() == ["stopped"]
        assert websocket.close_code == 1001


def wait_closed(websocket: WSClientConnection) -> bool:
    """Receive until the server closes the connection; websockets 16 has no wait_closed()."""
    deadline = time.monotonic() + TIMEOUT
    with contextlib.suppress(WSConnectionClosed):
        while time.monotonic() < deadline:
            websocket.recv(timeout=max(0.0, deadline - time.monotonic()))
    return websocket.close_code is not None


def test_handler_that_returns_closes_with_1000() -> None:
    handlers = load("handlers")
    with (
        run_server(handlers.greet) as running,
        ws_connect(running.uri, open_timeout=TIMEOUT) as websocket,
    ):
        websocket.send("Ada")
        assert websocket.recv(timeout=TIMEOUT) == "Hello Ada!"
        assert wait_closed(websocket)
        assert websocket.close_code == 1000


def test_handler_that_raises_closes_with_1011_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    handlers = load("handlers")
    with (
        caplog.at_level(logging.ERROR, logger="syncws.server"),
        run_server(handlers.add) as running,
        ws_connect(running.uri, open_timeout=TIMEOUT) as websocket,
    ):
        websocket.send("[1, 2, 3]")
        assert websocket.recv(timeout=TIMEOUT) == "6"
        websocket.send("not JSON")
        assert wait_closed(websocket)
        assert websocket.close_code == 1011
    assert any(record.exc_info for record in caplog.records)


def test_handler_can_close_with_its_own_code() -> None:
    handlers = load("handlers")
    with run_server(handlers.policy) as running:
        with ws_connect(running.uri + "v1", open_timeout=TIMEOUT) as websocket:
            assert wait_closed(websocket)
            assert websocket.close_code == 1008
            assert websocket.close_reason == "this server speaks /v2 only"
        with ws_connect(running.uri + "v2", open_timeout=TIMEOUT) as websocket:
            assert websocket.recv(timeout=TIMEOUT) == "welcome to v2"


def test_receiving() -> None:
    receiving = load("receiving")
    release = threading.Event()

    def talk(websocket: WSServerConnection) -> None:
        websocket.send("first")
        websocket.send(b"second")
        websocket.send('{"n": 3}')
        release.wait(TIMEOUT)
        websocket.send("late")
        websocket.send(b'["binary", "json"]')
        websocket.send("last")

    with ws_server(talk) as server, syncws.connect(server.uri) as websocket:
        assert wait_for(lambda: len(websocket._queue) == 3)
        assert receiving.drain(websocket) == ["first", b"second", '{"n": 3}']
        assert receiving.next_or_none(websocket, 0.05) is None
        release.set()
        assert receiving.next_or_none(websocket, TIMEOUT) == "late"
        assert receiving.recv_json(websocket) == ["binary", "json"]
        assert websocket.recv(timeout=TIMEOUT, decode=False) == b"last"


def test_iteration_prints_until_a_normal_close(capsys: pytest.CaptureFixture[str]) -> None:
    receiving = load("receiving")

    def talk(websocket: WSServerConnection) -> None:
        websocket.send("a")
        websocket.send("b")

    with ws_server(talk) as server, syncws.connect(server.uri) as websocket:
        receiving.print_all(websocket)
    assert capsys.readouterr().out.splitlines() == ["a", "b"]


def test_sending(tmp_path: Path) -> None:
    sending = load("sending")
    received: list[tuple[Any, int]] = []
    done = threading.Event()

    def record(websocket: WSServerConnection) -> None:
        for _ in range(4):
            fragments = list(websocket.recv_streaming())
            joined = b"".join(f.encode() if isinstance(f, str) else f for f in fragments)
            received.append((joined, len(fragments)))
        done.set()

    data = os.urandom(200_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with ws_server(record) as server, syncws.connect(server.uri, compression=None) as websocket:
        sending.send_examples(websocket, path)
        assert done.wait(TIMEOUT)
    assert [message for message, _ in received] == [
        b"a text message",
        b"\x00\x01\x02",
        data,
        b"one message, three frames",
    ]
    # The file went out in 64 KiB frames (plus the empty frame that ends the message); the
    # list of three strings in three frames (plus that one).
    assert received[2][1] == len(list(sending.read_chunks(path))) + 1
    assert received[3][1] == 4


def test_errors_tells_each_ending_apart() -> None:
    errors = load("errors")

    def reject(connection: syncws.ServerConnection, request: syncws.Request) -> syncws.Response:
        return connection.respond(403, "Forbidden\n")

    def close_normally(websocket: syncws.ServerConnection) -> None:
        websocket.recv(timeout=TIMEOUT)
        websocket.close(1001, "bye")

    def crash(websocket: syncws.ServerConnection) -> None:
        websocket.recv(timeout=TIMEOUT)
        raise RuntimeError("crash")

    def answer(websocket: syncws.ServerConnection) -> None:
        websocket.send(websocket.recv(timeout=TIMEOUT).upper())

    with run_server(echo_syncws, process_request=reject) as running:
        assert errors.ask(running.uri, "?") == "rejected with HTTP 403: 'Forbidden\\n'"
    with run_server(answer) as running:
        assert errors.ask(running.uri, "hi") == "answer: 'HI'"
    with run_server(close_normally) as running:
        assert errors.ask(running.uri, "hi") == "closed by the server: 1001 'bye'"
    logging.getLogger("syncws.server").disabled = True
    try:
        with run_server(crash) as running:
            assert errors.ask(running.uri, "hi") == "connection lost: 1011 ''"
    finally:
        logging.getLogger("syncws.server").disabled = False
    # A port where nobody listens.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert errors.ask(f"ws://127.0.0.1:{port}/", "hi").startswith("cannot connect: ")


def test_errors_reports_an_unanswered_handshake() -> None:
    errors = load("errors")
    # A socket that listens but never answers: the TCP connection opens in the backlog.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        uri = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
        assert errors.ask(uri, "hi") == "no answer to the opening handshake within 5 seconds"


# Threads.


def test_ticker_sends_from_a_second_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = load("threads")
    monkeypatch.setattr(threads, "TICK", 0.05)
    with (
        run_server(threads.ticker) as running,
        ws_connect(running.uri, open_timeout=TIMEOUT) as websocket,
    ):
        messages = [websocket.recv(timeout=TIMEOUT) for _ in range(2)]
        assert messages == ["tick 1", "tick 2"]
        websocket.send("hello")
        # Ticks keep coming; the echo is among the next few messages.
        following = [websocket.recv(timeout=TIMEOUT) for _ in range(3)]
        assert "hello" in following
        assert all(m == "hello" or str(m).startswith("tick ") for m in following)
    # Leaving the blocks stopped the ticker thread: the leak check proves it.


def test_consume_processes_every_message_in_order() -> None:
    threads = load("threads")

    def produce(websocket: WSServerConnection) -> None:
        for number in range(300):
            websocket.send(str(number))

    processed: list[str | bytes] = []
    with ws_server(produce) as server:
        threads.consume(server.uri, processed.append)
    assert processed == [str(number) for number in range(300)]


def test_consume_stops_both_threads_when_processing_fails() -> None:
    threads = load("threads")
    stop = threading.Event()

    def produce(websocket: WSServerConnection) -> None:
        with contextlib.suppress(Exception):
            for number in range(1000):
                if stop.is_set():
                    break
                websocket.send(str(number))

    def process(message: str | bytes) -> None:
        if message == "10":
            raise ValueError("cannot process 10")

    with ws_server(produce) as server:
        with pytest.raises(ValueError, match="cannot process 10"):
            threads.consume(server.uri, process)
        stop.set()


def test_thread_names() -> None:
    # The names that the threading guide gives. While nobody receives on the client, a reader
    # thread reads its socket.
    def named(prefix: str) -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]

    with run_server(echo_syncws) as running, syncws.connect(running.uri) as client:
        client.send("x")
        assert client.recv(timeout=TIMEOUT) == "x"
        assert wait_for(lambda: bool(named("syncws-reader-")))
        assert all(len(name) == len("syncws-reader-") + 8 for name in named("syncws-reader-"))
        assert named("syncws-worker-")
        assert named("syncws-timer")


def test_two_threads_receiving_is_a_concurrency_error() -> None:
    with run_server(echo_syncws) as running, syncws.connect(running.uri) as websocket:
        started = threading.Event()
        errors: list[BaseException] = []

        def receive() -> None:
            started.set()
            try:
                websocket.recv(timeout=TIMEOUT)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=receive)
        thread.start()
        assert started.wait(TIMEOUT)
        assert wait_for(lambda: websocket._queue._getting)
        with pytest.raises(syncws.ConcurrencyError):
            websocket.recv(timeout=TIMEOUT)
        websocket.send("wake up")
        thread.join(TIMEOUT)
        assert not errors


# Timeouts.


def test_open_connection_and_latency() -> None:
    timeouts = load("timeouts")
    with run_server(echo_syncws) as running, timeouts.open_connection(running.uri) as websocket:
        assert websocket.ping_interval == 20
        assert websocket.write_timeout == 10
        latency = timeouts.measure_latency(websocket)
        assert latency >= 0
        assert websocket.latency == latency
        assert timeouts.send_within(websocket, "hi", 5)
        assert websocket.recv(timeout=TIMEOUT) == "hi"


def test_write_timeout_aborts_a_connection_whose_peer_stops_reading() -> None:
    release = threading.Event()

    def stop_reading(websocket: syncws.ServerConnection) -> None:
        release.wait(TIMEOUT)

    payload = os.urandom(256 * 1024)
    with run_server(stop_reading, max_queue=1) as running:
        websocket = syncws.connect(running.uri, write_timeout=0.5, compression=None)
        try:

            def fill() -> None:
                for _ in range(1000):
                    websocket.send(payload)

            with pytest.raises(TimeoutError):
                fill()
            # The connection was aborted: no closing handshake, code 1006.
            websocket.wait_closed(TIMEOUT)
            assert websocket.close_code == 1006
            with pytest.raises(syncws.ConnectionClosedError):
                websocket.send("more")
        finally:
            release.set()
            websocket.close()


def test_shutdown_timeout_aborts_handlers_that_do_not_return() -> None:
    def stubborn(websocket: syncws.ServerConnection) -> None:
        # Ignores the Close of the shutdown until its connection is aborted.
        with contextlib.suppress(syncws.ConnectionClosed):
            while True:
                websocket.recv(timeout=TIMEOUT)

    with (
        run_server(stubborn) as running,
        syncws.connect(running.uri, close_timeout=1) as websocket,
    ):
        assert wait_for(lambda: len(running.server.connections) == 1)
        running.server.shutdown(timeout=0.5)
        assert not running.server.connections
        assert websocket.close_code == 1001


# Broadcast.


def test_publisher_reaches_every_client() -> None:
    broadcasting = load("broadcasting")
    with run_server(broadcasting.subscriber) as running, contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(ws_connect(running.uri, open_timeout=TIMEOUT)) for _ in range(5)
        ]
        assert wait_for(lambda: len(running.server.connections) == 5)
        publisher = broadcasting.Publisher(running.server)
        assert publisher.publish("news") == 5
        assert [client.recv(timeout=TIMEOUT) for client in clients] == ["news"] * 5


def test_publisher_closes_a_client_that_stopped_reading() -> None:
    broadcasting = load("broadcasting")
    payload = os.urandom(64 * 1024)
    with run_server(broadcasting.subscriber, compression=None) as running:
        # The laggard reads nothing: its queue fills up (max_queue=1), then its socket
        # buffers, then the server's backlog for it grows past write_limit.
        with (
            ws_connect(running.uri, open_timeout=TIMEOUT, max_queue=1, compression=None) as laggard,
            ws_connect(running.uri, open_timeout=TIMEOUT, compression=None) as reader,
        ):
            received: list[int] = []

            def read() -> None:
                with contextlib.suppress(Exception):
                    for message in reader:
                        received.append(len(message))

            thread = threading.Thread(target=read)
            thread.start()
            assert wait_for(lambda: len(running.server.connections) == 2)
            publisher = broadcasting.Publisher(running.server, max_skips=3)
            laggard_connection = next(
                connection
                for connection in running.server.connections
                if connection.remote_address == laggard.local_address
            )
            for sent in range(1, 2001):
                publisher.publish(payload)
                # The fast reader keeps up: it got every message before the next one.
                assert wait_for(lambda: len(received) == sent)  # noqa: B023
                if laggard_connection.state is not syncws.State.OPEN:
                    break
            assert laggard_connection.state is not syncws.State.OPEN
            reader.close()
            thread.join(TIMEOUT)
        assert laggard_connection.close_code is not None
        # The laggard's Close was 1008 "too slow", queued behind what it had not read.
        laggard_connection.wait_closed(TIMEOUT)
        assert laggard_connection.protocol.close_sent is not None
        assert laggard_connection.protocol.close_sent.code == 1008


def test_registry_publishes_to_its_own_members() -> None:
    broadcasting = load("broadcasting")
    registry = broadcasting.Registry()
    with run_server(registry.handler) as running:
        with ws_connect(running.uri, open_timeout=TIMEOUT) as first, ws_connect(
            running.uri, open_timeout=TIMEOUT
        ) as second:
            assert wait_for(lambda: len(registry._connections) == 2)
            assert registry.publish("to both") == []
            assert first.recv(timeout=TIMEOUT) == "to both"
            assert second.recv(timeout=TIMEOUT) == "to both"
        assert wait_for(lambda: not registry._connections)


# TLS.


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    """Run the documented openssl commands in ``tmp_path``."""
    openssl = require_executable("openssl")
    script = (SNIPPETS / "make_cert.sh").read_text(encoding="utf-8")
    script = script.replace("openssl ", f"{openssl} ")
    result = subprocess.run(
        ["sh", "-e", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_tls_with_a_self_signed_certificate(certificates: Path) -> None:
    tls = load("tls")
    context = tls.server_context(
        str(certificates / "localhost.crt"), str(certificates / "localhost.key")
    )
    trusted = tls.client_context(str(certificates / "localhost.crt"))
    with run_server(tls.echo, ssl=context) as running:
        assert tls.hello(f"wss://localhost:{running.port}/", trusted) == "Hello over TLS!"
        assert tls.hello(f"wss://127.0.0.1:{running.port}/", trusted) == "Hello over TLS!"
        # The common errors of the TLS guide.
        with pytest.raises(ssl.SSLCertVerificationError, match="self-signed"):
            tls.hello(f"wss://localhost:{running.port}/", tls.client_context())
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            syncws.connect(
                f"wss://127.0.0.1:{running.port}/", ssl=trusted, server_hostname="example.com"
            )
        with pytest.raises(syncws.InvalidMessage):
            syncws.connect(f"ws://127.0.0.1:{running.port}/", open_timeout=TIMEOUT)
        with pytest.raises(ValueError, match="incompatible"):
            syncws.connect(f"ws://127.0.0.1:{running.port}/", ssl=trusted)
    with (
        run_server(echo_syncws) as running,
        pytest.raises(ssl.SSLError, match="WRONG_VERSION_NUMBER"),
    ):
        syncws.connect(running.uri.replace("ws://", "wss://"), ssl=trusted)


def test_mutual_tls(certificates: Path) -> None:
    tls = load("tls")
    server_context = tls.mutual_server_context(
        str(certificates / "localhost.crt"),
        str(certificates / "localhost.key"),
        str(certificates / "client.crt"),
    )
    client_context = tls.mutual_client_context(
        str(certificates / "localhost.crt"),
        str(certificates / "client.crt"),
        str(certificates / "client.key"),
    )
    with run_server(tls.whoami, ssl=server_context) as running:
        uri = f"wss://localhost:{running.port}/"
        with syncws.connect(uri, ssl=client_context) as websocket:
            assert websocket.recv(timeout=TIMEOUT) == "you are alice"
        # Without a client certificate, the server ends the TLS handshake: with TLS 1.3 the
        # client learns it when it reads: from the server's alert, or from a reset when the
        # server closed its socket before the client's last bytes came (the kernel then drops
        # the alert).
        anonymous = tls.client_context(str(certificates / "localhost.crt"))
        with (
            pytest.raises(
                (
                    ssl.SSLError,
                    ConnectionResetError,
                    syncws.InvalidHandshake,
                    syncws.ConnectionClosedError,
                )
            ),
            syncws.connect(uri, ssl=anonymous, open_timeout=TIMEOUT) as websocket,
        ):
            websocket.recv(timeout=TIMEOUT)


# Migrating.


def test_run_forever_becomes_a_loop() -> None:
    migrating = load("migrating")

    def talk(websocket: WSServerConnection) -> None:
        websocket.send("x")
        websocket.send("y")

    received: list[str | bytes] = []
    with ws_server(talk) as server:
        migrating.run_forever(server.uri, received.append)
    assert received == ["x", "y"]


def test_listener_calls_back_from_its_thread(capsys: pytest.CaptureFixture[str]) -> None:
    migrating = load("migrating")
    with ws_server(echo) as server:
        listener = migrating.Listener(server.uri)
        listener.send("ping?")
        assert wait_for(lambda: listener.messages == ["ping?"])
        listener.stop()
        assert not listener.thread.is_alive()
    assert capsys.readouterr().out.splitlines() == ["closed: 1000 ''"]


# Testing.


def test_typed_fixtures_pass_with_the_installed_plugin(tmp_path: Path) -> None:
    # Run from elsewhere, so that pytest loads the plugin that installing syncws registered.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(SNIPPETS / "typed_fixtures.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


# Layout.

# A window this wide shows every code line of up to 100 characters (the line length of the
# sources) whole, on one line; a longer line wraps. No code block is cut.
WINDOW_WIDTH = 1200
LINE_LENGTH = 100

# The longest line of each <pre> on the page that is cut (it scrolls, or ends outside the
# window) or that wraps although its longest line is no longer than LINE_LENGTH.
_PRE_NOT_FITTING = """
Array.from(document.querySelectorAll("pre")).filter(pre => {
    const style = getComputedStyle(pre);
    const lines = pre.textContent.replace(/\\n$/, "").split("\\n");
    const longest = Math.max(...lines.map(line => line.length));
    const height = pre.clientHeight - parseFloat(style.paddingTop)
        - parseFloat(style.paddingBottom);
    const wraps = height > lines.length * parseFloat(style.lineHeight) + 1;
    return pre.scrollWidth > pre.clientWidth
        || pre.getBoundingClientRect().right > window.innerWidth
        || (wraps && longest <= LINE_LENGTH);
}).map(pre => pre.textContent.split("\\n").reduce((a, b) => a.length >= b.length ? a : b))
""".replace("LINE_LENGTH", str(LINE_LENGTH))


def test_code_blocks_fit_in_a_1200_px_window(tmp_path: Path) -> None:
    pytest.importorskip("sphinx")
    from browser import Browser  # noqa: PLC0415

    out = tmp_path / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-E", "-b", "html", str(ROOT / "docs"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    pages = [
        page
        for page in sorted(out.rglob("*.html"))
        if page.parent.name not in {"_static", "_sources", "_modules"}
        and page.name not in {"genindex.html", "search.html", "py-modindex.html"}
    ]
    assert len(pages) > 10
    cut: dict[str, list[str]] = {}
    with Browser() as browser:
        page = browser.open("about:blank")
        page._devtools.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WINDOW_WIDTH, "height": 800, "deviceScaleFactor": 1, "mobile": False},
            TIMEOUT,
        )
        for path in pages:
            page._devtools.call("Page.navigate", {"url": path.as_uri()}, TIMEOUT)
            page.wait_for(
                f"location.href === {json.dumps(path.as_uri())}"
                " && document.readyState === 'complete'"
            )
            assert page.evaluate("window.innerWidth") == WINDOW_WIDTH
            if lines := page.evaluate(_PRE_NOT_FITTING):
                cut[str(path.relative_to(out))] = lines
    assert not cut, cut


# Reference.


def test_recv_decode_raises_what_its_docstring_says() -> None:
    for method in (syncws.Connection.recv, syncws.Connection.recv_streaming):
        assert "UnicodeDecodeError: ``decode=True``" in (method.__doc__ or "")
    with connected_pair() as (client, server):
        client.send(b"\xff")
        client.send(b"next")
        with pytest.raises(UnicodeDecodeError):
            server.recv(TIMEOUT, decode=True)
        # The message that could not be decoded is consumed.
        assert server.recv(TIMEOUT, decode=True) == "next"


def test_reference_says_what_the_aliases_are_for() -> None:
    for name in ("path", "request_headers", "response_headers", "open", "closed"):
        doc = getattr(syncws.Connection, name).__doc__ or ""
        assert "seed-era" not in doc, name
        assert "ported from the legacy API of ``websockets``" in doc, name
    # One description of Server.connections: the one of the broadcasting guide.
    guide = (ROOT / "docs" / "howto" / "broadcast.rst").read_text(encoding="utf-8")
    assert "holds the connections whose handlers are\nrunning" in guide
    assert "connections: the connections whose handlers are running" in (
        syncws.Server.__doc__ or ""
    )
