"""The ``syncws`` command, run as a user runs it: in a terminal, against real servers.

Interactive sessions run ``python -m syncws`` in a pseudo-terminal whose line discipline is in
its default (cooked) mode, so typing Ctrl-D ends the input and typing Ctrl-C sends SIGINT to the
program, as in a real terminal. Error cases run it with plain pipes.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import queue
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from io_helpers import TIMEOUT, server_context

from syncws import cli
from syncws.client import connect, unix_connect
from syncws.core.http11 import Request, Response
from syncws.exceptions import ConnectionClosed
from syncws.messages import Data
from syncws.server import ServerConnection
from syncws.testing import run_server

ROOT = Path(__file__).resolve().parent.parent

# Make the pseudo-terminal the controlling terminal of the program (it leads a session of its
# own), so that Ctrl-C typed in it sends SIGINT, then run the command.
_LAUNCHER = (
    "import fcntl, os, sys, termios; "
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'syncws', *sys.argv[1:]])"
)

CTRL_C = "\x03"
CTRL_D = "\x04"


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # Import the syncws of this source tree, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("COLUMNS", None)
    env["TERM"] = "xterm"
    return env


pytestmark = pytest.mark.usefixtures("no_leaks")


# A terminal.


class Terminal:
    """``syncws`` running in a pseudo-terminal of 80 columns by 24 lines."""

    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            self.process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                env=_environment(),
                cwd=ROOT,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master = master
        self.screen = b""
        """Everything the program wrote, escape sequences included."""
        self._position = 0
        self._eof = False

    def _read(self, timeout: float) -> None:
        """Read what is available within ``timeout``; note the end when the program is gone."""
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: every copy of the other side is closed
            data = b""
        if data:
            self.screen += data
        else:
            self._eof = True

    def expect(self, text: str, timeout: float = TIMEOUT) -> str:
        """Wait until ``text`` appears after the previous match; return what came before it."""
        needle = text.encode()
        deadline = time.monotonic() + timeout
        while (index := self.screen.find(needle, self._position)) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._eof:
                why = "the program ended" if self._eof else f"nothing after {timeout} s"
                pytest.fail(f"{text!r} not shown ({why}); the terminal shows:\n{self.text()}")
            self._read(remaining)
        before = self.screen[self._position : index].decode(errors="replace")
        self._position = index + len(needle)
        return before

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Read until the program exits; return its exit status."""
        deadline = time.monotonic() + timeout
        while not self._eof and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        try:
            return self.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pytest.fail(f"the program did not exit; the terminal shows:\n{self.text()}")

    def text(self) -> str:
        return self.screen.decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)
        os.close(self.master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``syncws`` with no terminal and nothing on standard input."""
    return subprocess.run(
        [sys.executable, "-m", "syncws", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_environment(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


# A server that records what the command sends.


class Peer:
    """A syncws server on 127.0.0.1 that records every connection and what it receives.

    Use it as a context manager: on exit the server shuts down and its thread is joined.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.connections: queue.Queue[ServerConnection] = queue.Queue()
        self.received: queue.Queue[Data] = queue.Queue()
        self.closes: queue.Queue[tuple[int | None, str | None]] = queue.Queue()
        self._stack = contextlib.ExitStack()
        running = self._stack.enter_context(run_server(self._handle, **kwargs))
        self.server = running.server
        self.uri = f"ws://127.0.0.1:{running.port}/"

    def _handle(self, connection: ServerConnection) -> None:
        self.connections.put(connection)
        try:
            for message in connection:
                self.received.put(message)
        finally:
            # The code and reason of the Close the command sent.
            self.closes.put((connection.close_code, connection.close_reason))

    def connection(self) -> ServerConnection:
        return self.connections.get(timeout=TIMEOUT)

    def message(self) -> Data:
        return self.received.get(timeout=TIMEOUT)

    def close_received(self) -> tuple[int | None, str | None]:
        return self.closes.get(timeout=TIMEOUT)

    def __enter__(self) -> Peer:
        return self

    def shutdown(self) -> None:
        """Shut the server down and join its thread; exiting the ``with`` block does it too."""
        self._stack.close()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


@pytest.fixture
def peer() -> Iterator[Peer]:
    with Peer() as peer:
        yield peer


@pytest.fixture
def session(peer: Peer) -> Iterator[Terminal]:
    """``syncws connect`` to the peer, connected and showing its prompt."""
    with Terminal("connect", peer.uri) as terminal:
        terminal.expect(f"Connected to {peer.uri}.")
        terminal.expect("> ")
        yield terminal


# syncws connect: a signal while waiting for a key.


class Interrupted(Exception):
    pass


def test_signal_in_another_thread_wakes_the_wait_for_a_key() -> None:
    """Python runs a handler when the main thread runs Python code again: a signal handled
    by another thread (or landing just before select() blocks) must still wake the wait for
    a key, so that Ctrl-C closes the connection at once."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread")

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    keys_read, keys_write = os.pipe()
    wake_read, wake_write = os.pipe()
    previous = signal.signal(signal.SIGUSR1, interrupt)
    signals = cli._SignalPipe()
    # Another thread takes the signal: the main thread's select() is not interrupted.
    def signal_this_thread() -> None:
        time.sleep(0.2)  # the main thread waits in select() by then
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

    other = threading.Thread(target=signal_this_thread)
    # If the signal does not wake select(), the watchdog ends the wait instead.
    watchdog = threading.Timer(TIMEOUT, os.write, (wake_write, b"\0"))
    try:
        assert signals.fd is not None
        with open(keys_read, closefd=False) as keys:
            lines = cli._read_lines(keys, wake_read, cli._Console(False), signals.fd)

            def wait_for_keys() -> list[str]:
                other.start()
                return list(lines)

            watchdog.start()
            with pytest.raises(Interrupted):
                wait_for_keys()
        assert watchdog.is_alive()
    finally:
        watchdog.cancel()
        watchdog.join(TIMEOUT)
        other.join(TIMEOUT)
        signals.close()
        signal.signal(signal.SIGUSR1, previous)
        for fd in (keys_read, keys_write, wake_read, wake_write):
            os.close(fd)
    # The wakeup fd is Python's again: none.
    assert signal.set_wakeup_fd(-1) == -1


# syncws connect: the session.


def test_lines_typed_are_sent_and_messages_received_are_shown(
    peer: Peer, session: Terminal
) -> None:
    session.type("Hello, server!\r")
    assert peer.message() == "Hello, server!"
    session.type("Ünïcödé ✓\r")
    assert peer.message() == "Ünïcödé ✓"
    peer.connection().send("Hello, user!")
    session.expect("< Hello, user!")


def test_binary_messages_are_shown_in_hex(peer: Peer, session: Terminal) -> None:
    peer.connection().send(b"\x00\xffhi")
    session.expect("< (binary, 4 bytes) 00 ff 68 69")


def test_a_message_arriving_while_typing_keeps_what_was_typed(
    peer: Peer, session: Terminal
) -> None:
    connection = peer.connection()
    session.type("half a li")
    session.expect("half a li")
    connection.send("interruption")
    session.expect("< interruption")
    # What was typed before the message is still part of the line being edited.
    session.type("ne\r")
    assert peer.message() == "half a line"
    # The message went in above the prompt: the cursor was saved, a line was inserted, and
    # the cursor came back to the prompt, one line down.
    assert "\x1b7" in session.text()
    assert "\x1b[L< interruption\x1b8\x1b[B" in session.text()


def test_ctrl_d_closes_with_1000_and_exits_0(peer: Peer, session: Terminal) -> None:
    session.type("last words\r")
    assert peer.message() == "last words"
    session.type(CTRL_D)
    assert peer.close_received() == (1000, "")
    session.expect("Connection closed: 1000 (OK).")
    assert session.wait() == 0


def test_ctrl_c_closes_with_1000_and_exits_0(peer: Peer, session: Terminal) -> None:
    session.type("typed, never sent")
    session.type(CTRL_C)
    assert peer.close_received() == (1000, "")
    session.expect("Connection closed: 1000 (OK).")
    assert session.wait() == 0
    assert "Traceback" not in session.text()
    assert peer.received.empty()


def test_ctrl_d_in_the_middle_of_a_line_sends_it_first(peer: Peer, session: Terminal) -> None:
    # As with cat: a first Ctrl-D hands over the partial line, a second one ends the input.
    session.type("no newline")
    session.type(CTRL_D)
    assert peer.message() == "no newline"
    # The connection is still open, with a new prompt, on a line of its own.
    session.expect("no newline\r\n> ")
    session.type("next\r")
    assert peer.message() == "next"
    session.type(CTRL_D)
    assert peer.close_received() == (1000, "")
    assert session.wait() == 0


def test_server_closing_shows_the_code_and_reason_and_exits(
    peer: Peer, session: Terminal
) -> None:
    peer.connection().close(1001, "restarting")
    session.expect("Connection closed: 1001 (going away) restarting.")
    assert session.wait() == 0


def test_server_closing_with_an_error_exits_1(peer: Peer, session: Terminal) -> None:
    peer.connection().close(1011, "oops")
    session.expect("Connection closed: 1011 (internal error) oops.")
    assert session.wait() == 1


def test_server_going_away_while_typing_ends_the_session(
    peer: Peer, session: Terminal
) -> None:
    session.type("unfinished")
    peer.shutdown()
    session.expect("Connection closed: 1001 (going away).")
    assert session.wait() == 0


def test_options_shape_the_handshake() -> None:
    requests: queue.Queue[Request] = queue.Queue()

    def record(connection: ServerConnection, request: Request) -> Response | None:
        requests.put(request)
        return None

    with Peer(subprotocols=["chat", "superchat"], process_request=record) as peer:
        args = [
            "connect",
            f"{peer.uri}room?id=1",
            "--header",
            "X-Token: abc 123",
            "--header",
            "X-Other:two",
            "--origin",
            "http://example.test",
            "--subprotocol",
            "superchat",
            "--no-compression",
        ]
        with Terminal(*args) as terminal:
            terminal.expect("(subprotocol superchat).")
            request = requests.get(timeout=TIMEOUT)
            assert request.path == "/room?id=1"
            assert request.headers["X-Token"] == "abc 123"
            assert request.headers["X-Other"] == "two"
            assert request.headers["Origin"] == "http://example.test"
            assert request.headers["Sec-WebSocket-Protocol"] == "superchat"
            assert "Sec-WebSocket-Extensions" not in request.headers
            terminal.type(CTRL_D)
            assert terminal.wait() == 0


def test_compression_is_offered_by_default(peer: Peer) -> None:
    with Terminal("connect", peer.uri) as terminal:
        terminal.expect("> ")
        assert "permessage-deflate" in peer.connection().request_headers.get(
            "Sec-WebSocket-Extensions", ""
        )
        terminal.type(CTRL_D)
        assert terminal.wait() == 0


def test_without_a_terminal_messages_go_to_stdout_and_the_rest_to_stderr(peer: Peer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "syncws", "connect", peer.uri],
        input="one\ntwo\r\n",
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [peer.message(), peer.message()] == ["one", "two"]
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Connected to {peer.uri}.",
        "Connection closed: 1000 (OK).",
    ]


def _echo_then_close(count: int) -> Callable[[ServerConnection], None]:
    """An echo handler that closes with 1000 once it has echoed ``count`` messages."""

    def handler(connection: ServerConnection) -> None:
        for _ in range(count):
            connection.send(connection.recv(TIMEOUT))
        connection.close()

    return handler


def pipe(uri: str, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``syncws connect uri`` with ``text`` on standard input, through pipes."""
    return subprocess.run(
        [sys.executable, "-m", "syncws", "connect", uri, *args],
        input=text,
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=30,
        check=False,
    )


def test_piped_input_prints_every_answer_before_closing() -> None:
    # The input ends before the answers come: the command must not close before they do,
    # since a server answers a Close before it answers anything else.
    lines = [f"line {number}" for number in range(5)]
    with run_server(_echo_then_close(len(lines))) as running:
        for _ in range(5):
            result = pipe(running.uri, "".join(f"{line}\n" for line in lines), "--wait", "30")
            assert result.returncode == 0, result.stderr
            assert result.stdout.splitlines() == [f"< {line}" for line in lines]
            assert result.stderr.splitlines()[-1] == "Connection closed: 1000 (OK)."


def test_piped_input_closes_once_the_server_is_quiet(peer: Peer) -> None:
    # An echo server that never closes: the command closes itself, after the answers.
    def echo_all(connection: ServerConnection) -> None:
        for message in connection:
            connection.send(message)

    with run_server(echo_all) as running:
        result = pipe(running.uri, "one\ntwo\n", "--wait", "0.5")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"Connected to {running.uri}.",
        "Connection closed: 1000 (OK).",
    ]


def test_a_redirect_shows_the_final_uri() -> None:
    def redirect(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/final":
            return None
        response = connection.respond(302, "")
        response.headers["Location"] = "/final"
        return response

    with Peer(process_request=redirect) as peer:
        result = pipe(peer.uri + "start", "")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"Connected to {peer.uri}final, redirected from {peer.uri}start."
    )


# syncws connect: errors.


def assert_error(result: subprocess.CompletedProcess[str], status: int, message: str) -> None:
    """The command failed with ``status`` and one line on stderr that contains ``message``."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("syncws: ")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://example.com/", "invalid URI 'http://example.com/'"),
        ("ws://", "invalid URI"),
        ("not a uri", "invalid URI"),
    ],
)
def test_invalid_uri(uri: str, message: str) -> None:
    assert_error(run("connect", uri), 2, message)


def test_invalid_header_option() -> None:
    assert_error(run("connect", "ws://127.0.0.1:1/", "--header", "no colon"), 2, "NAME:VALUE")
    assert_error(run("connect", "ws://127.0.0.1:1/", "--header", "bad name:x"), 2, "header")


def test_connection_refused() -> None:
    # A port that was free a moment ago: nothing listens on it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run("connect", f"ws://127.0.0.1:{port}/")
    assert_error(result, 1, f"connection refused by 127.0.0.1:{port}")


def test_timeout_when_the_server_never_answers() -> None:
    # The kernel completes the TCP handshake for a listening socket, but nobody accepts:
    # the WebSocket handshake never gets an answer.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = run("connect", f"ws://127.0.0.1:{port}/", "--timeout", "0.5")
    assert_error(result, 1, f"timed out connecting to 127.0.0.1:{port} (--timeout 0.5)")


def test_ctrl_c_while_connecting_exits_130() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        with Terminal("connect", f"ws://127.0.0.1:{port}/") as terminal:
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(TIMEOUT)
                request = b""
                while not request.endswith(b"\r\n\r\n"):
                    chunk = sock.recv(4096)
                    assert chunk, "the command closed the connection"
                    request += chunk
                # The command sent its request and waits for the answer.
                terminal.type(CTRL_C)
                assert terminal.wait() == 130
                assert sock.recv(4096) == b""  # it closed the connection
            assert "Traceback" not in terminal.text()


def test_rejected_handshake_shows_the_status() -> None:
    def forbid(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(403, "Go away.\n")

    with Peer(process_request=forbid) as peer:
        result = run("connect", peer.uri)
    # The first line of the body says why.
    assert_error(result, 1, "server rejected the connection: HTTP 403 Forbidden: Go away.")


@pytest.fixture
def tls_peer() -> Iterator[Peer]:
    with Peer(ssl=server_context()) as peer:
        yield peer


def test_untrusted_certificate_fails_and_insecure_skips_the_check(tls_peer: Peer) -> None:
    uri = f"wss://localhost:{tls_peer.server.port}/"
    result = run("connect", uri)
    assert_error(result, 1, "TLS certificate verification failed")
    assert "--insecure" in result.stderr

    result = run("connect", uri, "--insecure")
    assert result.returncode == 0, result.stderr
    assert f"Connected to {uri}." in result.stderr
    assert tls_peer.close_received() == (1000, "")


def test_tls_handshake_with_a_plain_server_fails(peer: Peer) -> None:
    result = run("connect", f"wss://127.0.0.1:{peer.server.port}/", "--timeout", "5")
    assert_error(result, 1, "TLS handshake with 127.0.0.1")
    assert "ws:// connects without it" in result.stderr


def test_ws_to_a_tls_server_suggests_wss(tls_peer: Peer) -> None:
    result = run("connect", f"ws://127.0.0.1:{tls_peer.server.port}/", "--timeout", "5")
    assert_error(result, 1, "use a wss:// URI")


def test_http_1_0_server_is_not_a_websocket_server() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def answer() -> None:
            listener.settimeout(TIMEOUT)
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(TIMEOUT)
                sock.recv(4096)
                sock.sendall(b"HTTP/1.0 200 OK\r\n\r\nHello")

        thread = threading.Thread(target=answer)
        thread.start()
        try:
            result = run("connect", f"ws://127.0.0.1:{port}/", "--timeout", "5")
        finally:
            thread.join(TIMEOUT)
    assert_error(result, 1, "the server answered with HTTP/1.0: not a WebSocket server")


def test_proxy_connection_refused_names_the_proxy() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {name: value for name, value in _environment().items() if "proxy" not in name.lower()}
    env["ws_proxy"] = f"http://127.0.0.1:{port}"
    result = subprocess.run(
        [sys.executable, "-m", "syncws", "connect", "ws://127.0.0.1:18765/"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert_error(result, 1, f"cannot connect to proxy 127.0.0.1:{port}: connection refused")
    assert "18765" not in result.stderr


# --version, --help.


def test_version() -> None:
    from syncws import __version__  # noqa: PLC0415

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"syncws {__version__}\n"


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("connect", "serve", "demo"):
        assert command in result.stdout
    result = run("connect", "--help")
    assert result.returncode == 0
    for option in ("--header", "--subprotocol", "--origin", "--no-compression", "--insecure"):
        assert option in result.stdout


def test_no_command_prints_usage_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage: syncws" in result.stderr


# syncws serve.


def _listening_port(terminal: Terminal, scheme: str) -> int:
    terminal.expect(f"{scheme}://127.0.0.1:")
    return int(terminal.expect("/"))


def test_serve_echoes_and_ctrl_c_stops_it() -> None:
    with Terminal("serve", "--port", "0") as terminal:
        port = _listening_port(terminal, "ws")
        terminal.expect("Press Ctrl-C to stop.")
        with connect(f"ws://127.0.0.1:{port}/chat", open_timeout=TIMEOUT) as websocket:
            websocket.send("echo?")
            assert websocket.recv(timeout=TIMEOUT) == "echo?"
            websocket.send(b"\x01\x02")
            assert websocket.recv(timeout=TIMEOUT) == b"\x01\x02"
            terminal.expect("connected, path /chat")
            terminal.type(CTRL_C)
            # The server closes open connections as it stops: 1001, going away.
            with pytest.raises(ConnectionClosed) as raised:
                websocket.recv(timeout=TIMEOUT)
            assert raised.value.code == 1001
        assert terminal.wait() == 0
        assert "Traceback" not in terminal.text()


def test_serve_stops_on_sigterm() -> None:
    with Terminal("serve", "--port", "0") as terminal:
        port = _listening_port(terminal, "ws")
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as websocket:
            websocket.send("still there?")
            assert websocket.recv(timeout=TIMEOUT) == "still there?"
            terminal.process.send_signal(signal.SIGTERM)
            websocket.wait_closed(TIMEOUT)
            assert websocket.close_code == 1001
        assert terminal.wait() == 0


def test_serve_on_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    with Terminal("serve", "--unix", str(path)) as terminal:
        terminal.expect(f"listening on the Unix socket {path}.")
        with unix_connect(str(path), open_timeout=TIMEOUT) as websocket:
            websocket.send("over a Unix socket")
            assert websocket.recv(timeout=TIMEOUT) == "over a Unix socket"
        terminal.process.send_signal(signal.SIGTERM)
        assert terminal.wait() == 0
    assert not path.exists()


def test_serve_on_a_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert_error(result, 1, f"cannot listen on 127.0.0.1:{port}")


# syncws demo.


def _get(port: int, path: str) -> tuple[int, str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode()
    finally:
        connection.close()


def _next(websocket: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(websocket.recv(timeout=TIMEOUT))
    return message


def test_demo_serves_the_page_and_keeps_clients_in_sync() -> None:
    with Terminal("demo", "--port", "0") as terminal:
        port = _listening_port(terminal, "http")
        terminal.expect("in a browser")

        status, content_type, page = _get(port, "/")
        assert (status, content_type) == (200, "text/html; charset=utf-8")
        assert "<title>syncws counter</title>" in page
        assert _get(port, "/missing")[0] == 404

        uri = f"ws://127.0.0.1:{port}/"
        with connect(uri, open_timeout=TIMEOUT) as alice:
            assert _next(alice) == {"type": "value", "value": 0}
            assert _next(alice) == {"type": "users", "count": 1}
            with connect(uri, open_timeout=TIMEOUT) as bob:
                assert _next(bob) == {"type": "value", "value": 0}
                assert _next(bob) == {"type": "users", "count": 2}
                assert _next(alice) == {"type": "users", "count": 2}

                alice.send(json.dumps({"action": "plus"}))
                assert _next(alice) == {"type": "value", "value": 1}
                assert _next(bob) == {"type": "value", "value": 1}
                bob.send(json.dumps({"action": "minus"}))
                bob.send(json.dumps({"action": "minus"}))
                for websocket in (alice, bob):
                    assert _next(websocket) == {"type": "value", "value": 0}
                    assert _next(websocket) == {"type": "value", "value": -1}
            assert _next(alice) == {"type": "users", "count": 1}
            terminal.type(CTRL_C)
            alice.wait_closed(TIMEOUT)
            assert alice.close_code == 1001
        assert terminal.wait() == 0
        assert "Traceback" not in terminal.text()


def test_demo_on_a_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("demo", "--port", str(port))
    assert_error(result, 1, f"cannot listen on 127.0.0.1:{port}")


def test_python_dash_m_and_the_console_script_are_the_same_command() -> None:
    script = Path(sys.executable).parent / "syncws"
    if not script.exists():
        pytest.skip("the syncws console script is not installed next to this Python")
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == run("--version").stdout
    assert re.fullmatch(r"syncws \S+\n", result.stdout)
