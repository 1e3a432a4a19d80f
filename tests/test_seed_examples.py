"""The guide's example programs run as written and do what their docstrings say.

Servers run as real subprocesses on an ephemeral port of 127.0.0.1 (each prints the port it
listens on first), clients too, with real peers on the other end: syncws, the
``websockets`` package, ``urllib``, or a raw socket for keepalive. Examples whose point is
how threads end (consumer and producer, registration) are imported and run in this process,
under the leak check.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime
import importlib.util
import json
import os
import re
import select
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from io_helpers import TIMEOUT, RawPeer, close_payload, wait_for
from websockets.exceptions import ConnectionClosedOK as WebsocketsConnectionClosedOK
from websockets.sync.client import connect as websockets_connect

import syncws
from syncws.testing import run_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The folders of the guide's examples; other examples have tests of their own.
SEED_FOLDERS = ["hello", "secure", "show_time", "counter", "patterns", "faq"]

_LISTENING = re.compile(r"Listening on \w+://127\.0\.0\.1:(\d+)/")
_UTC_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


pytestmark = pytest.mark.usefixtures("no_leaks")


# Running the examples.


def example_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Import the syncws of this source tree, installed or not; print lines as they come.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_client(
    name: str, *args: str, input: str = "", timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run a client example to its end."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        input=input,
        capture_output=True,
        text=True,
        env=example_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


@dataclasses.dataclass
class Running:
    """An example server, running in a subprocess."""

    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def output(self) -> str:
        """What the server printed so far, standard output and error."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_output(self, text: str) -> str:
        """Wait until the server printed ``text``; return the whole output."""
        if not wait_for(lambda: text in self.output(), TIMEOUT):
            pytest.fail(f"the server did not print {text!r}:\n{self.output()}")
        return self.output()


@contextlib.contextmanager
def example_server(
    name: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[Running]:
    """Start an example server on an ephemeral port; kill it on exit if it still runs."""
    log = tmp_path / f"{Path(name).stem}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=example_env(**(env or {})),
            cwd=ROOT,
        )
    running = Running(process, log)
    try:
        deadline = time.monotonic() + TIMEOUT
        while (match := _LISTENING.search(running.output())) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not start listening:\n{running.output()}")
            time.sleep(0.02)
        running.port = int(match.group(1))
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(TIMEOUT)


def read_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    """Read ``count`` lines from a subprocess's standard output, within the timeout."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    buffer = b""
    deadline = time.monotonic() + TIMEOUT
    while buffer.count(b"\n") < count:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        if not ready:
            pytest.fail(f"only got {buffer!r} from the subprocess")
        data = os.read(fd, 65536)
        if not data:
            pytest.fail(f"the subprocess exited after {buffer!r}")
        buffer += data
    lines = buffer.decode().splitlines()
    assert len(lines) == count, f"more output than expected: {lines}"
    return lines


@contextlib.contextmanager
def client_process(name: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Start a client example; kill it on exit if it still runs."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=example_env(),
        cwd=ROOT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def load_example(name: str) -> Any:
    """Import an example as a fresh module, to call its functions in this process."""
    path = EXAMPLES / name
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_threads(*names: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name in names]


def recv_text(websocket: syncws.ClientConnection) -> str:
    return websocket.recv(timeout=TIMEOUT, decode=True)


def close_code_received(websocket: syncws.ClientConnection) -> int:
    """Receive and drop messages until the server closes; return its close code."""
    closed: syncws.ConnectionClosed | None = None
    for _ in range(1000):
        try:
            websocket.recv(timeout=TIMEOUT)
        except syncws.ConnectionClosedOK as exc:
            closed = exc
            break
    assert closed is not None, "the server kept sending and did not close"
    assert closed.rcvd is not None
    return closed.rcvd.code


# Every example is a documented program, listed in examples/README.md.


def seed_examples() -> list[Path]:
    return sorted(path for folder in SEED_FOLDERS for path in (EXAMPLES / folder).glob("*.py"))


def test_every_example_is_a_documented_program_listed_in_the_readme() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    examples = seed_examples()
    assert len(examples) >= 18
    for path in examples:
        relative = path.relative_to(EXAMPLES).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{relative} has no module docstring"
        assert "if __name__ == \"__main__\":" in path.read_text(encoding="utf-8"), relative
        assert f"`{relative}`" in readme, f"{relative} is not in examples/README.md"


# 1. Hello world.


def test_hello_client_greets_through_the_hello_server(tmp_path: Path) -> None:
    with example_server("hello/server.py", tmp_path) as server:
        result = run_client("hello/client.py", str(server.port), input="Alice\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "What's your name? >>> Alice\n<<< Hello Alice!\n"
        output = server.wait_output(">>> Hello Alice!")
        assert "<<< Alice\n>>> Hello Alice!\n" in output


def test_hello_server_greets_a_websockets_client(tmp_path: Path) -> None:
    with (
        example_server("hello/server.py", tmp_path) as server,
        websockets_connect(server.uri, open_timeout=TIMEOUT) as websocket,
    ):
        websocket.send("websockets")
        assert websocket.recv(timeout=TIMEOUT) == "Hello websockets!"
        # The handler returned: the server closed the connection normally.
        with pytest.raises(WebsocketsConnectionClosedOK):
            websocket.recv(timeout=TIMEOUT)


# 2. Secure hello world.


def test_secure_client_greets_through_the_secure_server(tmp_path: Path) -> None:
    with example_server("secure/server.py", tmp_path) as server:
        result = run_client("secure/client.py", str(server.port), input="Bob\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "What's your name? >>> Bob\n<<< Hello Bob!\n"
        server.wait_output(">>> Hello Bob!")


def test_secure_server_requires_tls_and_its_certificate(tmp_path: Path) -> None:
    with example_server("secure/server.py", tmp_path) as server:
        uri = f"wss://127.0.0.1:{server.port}/"
        # Without the test certificate among its authorities, a client refuses the server.
        with pytest.raises(ssl.SSLCertVerificationError):
            syncws.connect(uri, open_timeout=TIMEOUT)
        # Plain ws:// gets no WebSocket handshake.
        with pytest.raises((syncws.InvalidHandshake, OSError, EOFError)):
            syncws.connect(server.uri, open_timeout=TIMEOUT)
        context = ssl.create_default_context(cafile=EXAMPLES / "secure" / "localhost.pem")
        with syncws.connect(uri, ssl=context, open_timeout=TIMEOUT) as websocket:
            websocket.send("TLS")
            assert recv_text(websocket) == "Hello TLS!"


def test_secure_example_uses_the_test_certificate() -> None:
    example = (EXAMPLES / "secure" / "localhost.pem").read_text(encoding="ascii")
    committed = (ROOT / "tests" / "localhost.pem").read_text(encoding="ascii")
    assert example.endswith(committed)
    assert "TEST CERTIFICATE" in example.splitlines()[0]


# 3. and 4. show_time.


def check_times(messages: list[str]) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    for message in messages:
        assert _UTC_TIME.fullmatch(message), message
        sent = datetime.datetime.strptime(message, "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs(sent.replace(tzinfo=datetime.timezone.utc) - now) < datetime.timedelta(
            minutes=5
        )
    assert messages == sorted(messages)


def test_show_time_sends_the_utc_time_to_each_client(tmp_path: Path) -> None:
    env = {"SHOW_TIME_INTERVAL": "0.01 0.03"}
    with example_server("show_time/show_time.py", tmp_path, env=env) as server:
        with syncws.connect(server.uri) as first, syncws.connect(server.uri) as second:
            check_times([recv_text(first) for _ in range(3)])
            check_times([recv_text(second) for _ in range(3)])
        # Each client had its own handler; the server goes on after they leave.
        with syncws.connect(server.uri) as third:
            check_times([recv_text(third)])


def test_show_time_broadcast_sends_the_same_messages_to_every_client(tmp_path: Path) -> None:
    env = {"SHOW_TIME_INTERVAL": "0.01 0.03"}
    with example_server("show_time/show_time_broadcast.py", tmp_path, env=env) as server:
        with syncws.connect(server.uri) as first, syncws.connect(server.uri) as second:
            from_second = [recv_text(second) for _ in range(3)]
            check_times(from_second)
            # The first client was connected before: it got the same messages, maybe more.
            from_first: list[str] = []
            for _ in range(100):
                from_first.append(recv_text(first))
                if from_first[-1] == from_second[-1]:
                    break
            assert from_first[-3:] == from_second
            # Ctrl-C stops the producer thread and the server: every client gets a 1001.
            server.process.send_signal(signal.SIGINT)
            assert close_code_received(first) == 1001
            assert close_code_received(second) == 1001
        # The process ended with the KeyboardInterrupt, rather than hang on the producer.
        assert server.process.wait(TIMEOUT) == -signal.SIGINT


# 5. The counter.


def counter_events(websocket: syncws.ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(recv_text(websocket)) for _ in range(count)]


def test_counter_serves_its_page_on_the_same_port(tmp_path: Path) -> None:
    with example_server("counter/counter.py", tmp_path) as server:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/", timeout=TIMEOUT) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            page = response.read()
        assert page == (EXAMPLES / "counter" / "counter.html").read_bytes()
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{base}/missing", timeout=TIMEOUT)
        assert raised.value.code == 404
        raised.value.close()


def test_counter_keeps_every_client_in_sync(tmp_path: Path) -> None:
    with (
        example_server("counter/counter.py", tmp_path) as server,
        syncws.connect(server.uri) as first,
    ):
        assert counter_events(first, 2) == [
            {"type": "users", "count": 1},
            {"type": "value", "value": 0},
        ]
        with syncws.connect(server.uri) as second:
            assert counter_events(second, 2) == [
                {"type": "users", "count": 2},
                {"type": "value", "value": 0},
            ]
            assert counter_events(first, 1) == [{"type": "users", "count": 2}]
            first.send(json.dumps({"action": "plus"}))
            first.send(json.dumps({"action": "plus"}))
            expected = [{"type": "value", "value": value} for value in (1, 2)]
            assert counter_events(first, 2) == expected
            assert counter_events(second, 2) == expected
            second.send(json.dumps({"action": "minus"}))
            assert counter_events(first, 1) == [{"type": "value", "value": 1}]
            assert counter_events(second, 1) == [{"type": "value", "value": 1}]
            # An unknown action is logged and changes nothing.
            second.send(json.dumps({"action": "reset"}))
            server.wait_output("unsupported event")
            second.send(json.dumps({"action": "plus"}))
            assert counter_events(first, 1) == [{"type": "value", "value": 2}]
        # The second client left: the first one is alone.
        assert counter_events(first, 1) == [{"type": "users", "count": 1}]


# 6. The patterns.


def test_consumer_processes_every_message(tmp_path: Path) -> None:
    with example_server("patterns/consumer.py", tmp_path) as server:
        with syncws.connect(server.uri) as websocket:
            websocket.send("first")
            websocket.send(b"second")
        output = server.wait_output("consumer: b'second'")
        assert "consumer: 'first'\nconsumer: b'second'\n" in output


def test_producer_sends_messages_until_the_client_leaves(tmp_path: Path) -> None:
    env = {"PRODUCER_INTERVAL": "0.01"}
    with example_server("patterns/producer.py", tmp_path, env=env) as server:
        with syncws.connect(server.uri) as websocket:
            assert [recv_text(websocket) for _ in range(3)] == [
                "message 1",
                "message 2",
                "message 3",
            ]
        # The first handler ended on ConnectionClosed; the server serves the next client.
        with syncws.connect(server.uri) as websocket:
            assert re.fullmatch(r"message \d+", recv_text(websocket))


@pytest.fixture
def consumer_producer() -> Any:
    module = load_example("patterns/consumer_producer.py")
    module.PRODUCER_INTERVAL = 0.01
    return module


def test_consumer_producer_stops_the_producer_when_the_client_leaves(
    consumer_producer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with run_server(consumer_producer.handler) as running:
        with syncws.connect(running.uri) as websocket:
            websocket.send("hi")
            assert [recv_text(websocket) for _ in range(3)] == [
                "message 1",
                "message 2",
                "message 3",
            ]
            assert len(example_threads("consumer", "producer")) == 2
        # The consumer's loop ended: the producer stopped, the handler returned.
        assert wait_for(lambda: not example_threads("consumer", "producer"))
        assert wait_for(lambda: not running.server.connections)
    assert "consumer: 'hi'" in capsys.readouterr().out


def test_consumer_producer_closes_the_connection_when_the_producer_ends(
    consumer_producer: Any,
) -> None:
    consumer_producer.PRODUCER_MESSAGES = 2
    with run_server(consumer_producer.handler) as running:
        with syncws.connect(running.uri) as websocket:
            assert [recv_text(websocket) for _ in range(2)] == ["message 1", "message 2"]
            # The producer has nothing more: the server stops the consumer and closes.
            with pytest.raises(syncws.ConnectionClosedOK) as raised:
                websocket.recv(timeout=TIMEOUT)
            assert raised.value.rcvd is not None
            assert raised.value.rcvd.code == 1000
        assert wait_for(lambda: not example_threads("consumer", "producer"))
        assert wait_for(lambda: not running.server.connections)


def test_registration_tracks_clients_and_broadcasts_to_them() -> None:
    registration = load_example("patterns/registration.py")
    with run_server(registration.handler) as running:
        uri = running.uri
        with syncws.connect(uri) as first:
            assert recv_text(first) == "Hello!"
            with syncws.connect(uri) as second:
                assert recv_text(second) == "Hello!"
                assert recv_text(first) == "Hello!"
                assert wait_for(lambda: len(registration.connected) == 2)
                second.send("hi all")
                assert recv_text(first) == "hi all"
                assert recv_text(second) == "hi all"
            assert wait_for(lambda: len(registration.connected) == 1)
        # The finally block unregistered every connection.
        assert wait_for(lambda: not registration.connected)


# 7. The FAQ.


def test_extra_argument_reaches_the_handler(tmp_path: Path) -> None:
    with (
        example_server("faq/extra_argument.py", tmp_path) as server,
        syncws.connect(server.uri) as websocket,
    ):
        websocket.send("eggs")
        assert recv_text(websocket) == "spam: eggs"


def test_server_stops_on_sigterm_and_closes_connections_with_1001(tmp_path: Path) -> None:
    with example_server("faq/server_sigterm.py", tmp_path) as server:
        with syncws.connect(server.uri) as websocket:
            websocket.send("ping")
            assert recv_text(websocket) == "ping"
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(syncws.ConnectionClosedOK) as raised:
                websocket.recv(timeout=TIMEOUT)
            assert raised.value.rcvd is not None
            assert raised.value.rcvd.code == 1001
        assert server.process.wait(TIMEOUT) == 0
        assert server.output().endswith("Server stopped\n")


def test_server_stops_on_sigterm_without_clients(tmp_path: Path) -> None:
    with example_server("faq/server_sigterm.py", tmp_path) as server:
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(TIMEOUT) == 0
        assert server.output().endswith("Server stopped\n")


def test_http_and_websocket_share_a_port(tmp_path: Path) -> None:
    with example_server("faq/http_same_port.py", tmp_path) as server:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/", timeout=TIMEOUT) as response:
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert b"new WebSocket(" in response.read()
        with urllib.request.urlopen(f"{base}/healthz", timeout=TIMEOUT) as response:
            assert response.read() == b"OK\n"
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{base}/missing", timeout=TIMEOUT)
        assert raised.value.code == 404
        raised.value.close()
        with syncws.connect(server.uri) as websocket:
            websocket.send("same port")
            assert recv_text(websocket) == "same port"


def test_client_closes_with_1000_on_sigterm() -> None:
    close_codes: list[int | None] = []

    def handler(websocket: syncws.ServerConnection) -> None:
        websocket.send("first")
        for _ in websocket:
            pass
        close_codes.append(websocket.close_code)

    with (
        run_server(handler) as running,
        client_process("faq/client_sigterm.py", str(running.port)) as process,
    ):
        assert read_lines(process, 2) == ["Connected", "first"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
        assert process.stdout is not None
        assert process.stdout.read() == "Connection closed with code 1000\n"
        assert wait_for(lambda: close_codes == [1000])


@pytest.mark.parametrize(
    ("message", "timeout", "output"),
    [
        pytest.param(None, "0.2", "No message within 0.2 seconds\n", id="nothing-comes"),
        pytest.param("on time", "10", "Received: on time\n", id="a-message-comes"),
    ],
)
def test_recv_timeout(message: str | None, timeout: str, output: str) -> None:
    def handler(websocket: syncws.ServerConnection) -> None:
        if message is not None:
            websocket.send(message)
        with contextlib.suppress(TimeoutError):
            websocket.wait_closed(TIMEOUT)

    with run_server(handler) as running:
        result = run_client("faq/recv_timeout.py", str(running.port), timeout)
    assert result.returncode == 0, result.stderr
    assert result.stdout == output


def read_ping(client: RawPeer) -> bytes:
    """Read a frame, which must be a Ping; return its payload."""
    ping = client.read_frame()
    assert ping is not None
    assert ping.opcode == 0x9
    return ping.payload


def test_keepalive_pings_and_drops_a_client_that_stops_answering(tmp_path: Path) -> None:
    with example_server("faq/keepalive.py", tmp_path, "0.05", "0.5") as server:
        with RawPeer.connect(server.port) as client:
            client.handshake()
            client.send_frame(0xA, read_ping(client))
            # A Pong kept the connection alive: the next frame is another Ping.
            read_ping(client)
            # No more Pongs: the server gives up with 1011 after ping_timeout.
            close, pings = client.read_close()
            assert {frame.opcode for frame in pings} <= {0x9}
            assert close.close_code == 1011
        server.wait_output("Connection closed")


def test_keepalive_measures_the_latency_with_the_pong(tmp_path: Path) -> None:
    with example_server("faq/keepalive.py", tmp_path, "0.05", "5") as server:
        with RawPeer.connect(server.port) as client:
            client.handshake()
            client.send_frame(0xA, read_ping(client))
            # The server reads frames in order: it handles the Pong before the Close.
            client.send_frame(0x8, close_payload(1000))
            close, pings = client.read_close()
            assert {frame.opcode for frame in pings} <= {0x9}
            assert close.payload == close_payload(1000)
        output = server.wait_output("Connection closed with code 1000")
        latency = re.search(r"latency (\S+)", output)
        assert latency is not None
        assert float(latency.group(1)) > 0


def test_sends_from_several_threads_never_interleave(tmp_path: Path) -> None:
    with (
        example_server("faq/send_from_threads.py", tmp_path) as server,
        syncws.connect(server.uri) as websocket,
    ):
        messages = [str(message) for message in websocket]
        assert websocket.close_code == 1000
    assert len(messages) == 4 * 25
    for worker in range(4):
        mine = [message for message in messages if message.startswith(f"worker {worker}:")]
        assert mine == [f"worker {worker}: message {number}" for number in range(25)]


def test_debug_logging_shows_handshakes_and_frames() -> None:
    result = run_client("faq/debug_logging.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello world!\n"
    assert "syncws.server: = connection is OPEN" in result.stderr
    assert "MainThread syncws.client: > TEXT 'Hello world!'" in result.stderr
    assert "syncws.client: < CLOSE 1000" in result.stderr


def test_reconnect_client_connects_again_after_each_end() -> None:
    count = 0

    def handler(websocket: syncws.ServerConnection) -> None:
        nonlocal count
        count += 1
        websocket.send(f"connection {count}")
        if count == 1:
            websocket.abort()  # a broken connection, without a closing handshake
        elif count >= 3:
            with contextlib.suppress(TimeoutError):
                websocket.wait_closed(TIMEOUT)
        # The second one closes normally as the handler returns.

    with (
        run_server(handler) as running,
        client_process("faq/reconnect_client.py", str(running.port)) as process,
    ):
        assert read_lines(process, 8) == [
            "Connected",
            "connection 1",
            "Connection lost",
            "Connected",
            "connection 2",
            "Connection closed with code 1000",
            "Connected",
            "connection 3",
        ]
        process.terminate()
        process.wait(TIMEOUT)
