"""Tests of examples/deployment/nginx.conf: real nginx in front of syncws, on loopback.

Each test runs Debian's nginx in the foreground with a configuration generated from the
example: its ports, and every path it writes (pid, logs, temporary files), point into the
test's temporary directory; the ``user`` directive is dropped. Upstreams: ``syncws.serve()``
in a thread, and the Flask chat example under gunicorn's ``gthread`` worker.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_executable
from io_helpers import TIMEOUT, check_flask_chat
from io_helpers import syncws_echo as echo
from test_wsgi import free_port, gunicorn_server, wait_listening
from websockets.sync.client import connect as ws_connect

import syncws
from syncws.core.http11 import Request, Response
from syncws.testing import run_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "deployment" / "nginx.conf"
CHAT = ROOT / "examples" / "flask_chat"


pytestmark = pytest.mark.usefixtures("no_leaks")


def nginx_config(directory: Path, port: int, upstream: int, read_timeout: str = "") -> str:
    """The example's configuration, with its ports and paths moved into ``directory``."""
    text = EXAMPLE.read_text()
    replacements = [
        (r"^user .*;\n", ""),
        (r"worker_processes auto;", "worker_processes 1;"),
        (r"pid .*;", f"pid {directory}/nginx.pid;"),
        (r"error_log .*;", f"error_log {directory}/error.log info;"),
        (r"access_log .*;", f"access_log {directory}/access.log;"),
        (r"listen 80;", f"listen 127.0.0.1:{port};"),
        (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{upstream};"),
    ]
    if read_timeout:
        replacements.append((r"proxy_read_timeout \S+;", f"proxy_read_timeout {read_timeout};"))
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"the example's config no longer has {pattern!r}"
    # The compiled-in temporary directories are outside the test's directory.
    temp_paths = "".join(
        f"    {name}_temp_path {directory}/{name}_temp;\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return text.replace("http {\n", "http {\n" + temp_paths, 1)


@contextlib.contextmanager
def nginx(directory: Path, upstream: int, **options: str) -> Iterator[int]:
    """Run nginx in front of ``upstream``; yield the port it listens on."""
    executable = require_executable("nginx")
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(nginx_config(directory, port, upstream, **options))
    command = [
        executable,
        "-p", str(directory),
        "-e", str(directory / "error.log"),
        "-c", str(config),
        "-g", "daemon off;",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=directory
    )
    try:
        wait_listening(port, process)
        yield port
    finally:
        process.terminate()  # SIGTERM: fast shutdown
        try:
            _, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate(timeout=TIMEOUT)
        assert b"[emerg]" not in stderr, stderr.decode(errors="replace")


def report(websocket: syncws.ServerConnection) -> None:
    """Send what the server saw of the request, then echo."""
    headers = websocket.request_headers
    websocket.send(f"{headers.get('X-Forwarded-For')}|{headers.get('Host')}|{websocket.path}")
    for message in websocket:
        websocket.send(message)


def health_check(connection: syncws.ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return connection.respond(200, "OK\n")
    return None


@pytest.fixture
def upstream() -> Iterator[int]:
    """A syncws server with a health check on /healthz, in a thread."""
    with run_server(report, process_request=health_check) as running:
        assert running.port is not None
        yield running.port


def test_websocket_through_nginx(tmp_path: Path, upstream: int) -> None:
    with nginx(tmp_path, upstream) as port:
        uri = f"ws://127.0.0.1:{port}/room?x=1"
        with syncws.connect(uri, compression="deflate") as websocket:
            # nginx passes the client's address and the Host header on.
            assert websocket.recv(TIMEOUT) == "127.0.0.1|127.0.0.1|/room?x=1"
            # The extension negotiation passes through nginx untouched.
            assert websocket.response is not None
            assert "permessage-deflate" in websocket.response.headers["Sec-WebSocket-Extensions"]
            websocket.send("hello")
            assert websocket.recv(TIMEOUT) == "hello"
            big = "x" * 500_000
            websocket.send(big)
            assert websocket.recv(TIMEOUT) == big
            websocket.close(4001, "done")
        assert websocket.protocol.close_rcvd is not None
        assert websocket.protocol.close_rcvd.code == 4001
        with ws_connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as other:
            assert other.recv(TIMEOUT) == "127.0.0.1|127.0.0.1|/"
            other.send(b"\x00binary")
            assert other.recv(TIMEOUT) == b"\x00binary"


def test_health_check_through_nginx(tmp_path: Path, upstream: int) -> None:
    with nginx(tmp_path, upstream) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"OK\n")
        finally:
            connection.close()


@pytest.mark.parametrize(("ping_interval", "survives"), [(0.3, True), (None, False)])
def test_keepalive_outlives_proxy_read_timeout(
    tmp_path: Path, ping_interval: float | None, survives: bool
) -> None:
    """With pings more often than proxy_read_timeout, an idle connection stays open; without
    them, nginx closes it."""
    with run_server(echo, ping_interval=ping_interval) as running:
        assert running.port is not None
        with (
            nginx(tmp_path, running.port, read_timeout="1s") as port,
            syncws.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws,
        ):
            # Idle for twice nginx's read timeout, in a bounded loop.
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and ws.state is syncws.State.OPEN:
                time.sleep(0.1)
            assert (ws.state is syncws.State.OPEN) is survives
            if survives:
                ws.send("still there")
                assert ws.recv(TIMEOUT) == "still there"


def test_flask_chat_under_gunicorn_through_nginx(tmp_path: Path) -> None:
    with (
        gunicorn_server("app:app", CHAT, log_directory=tmp_path) as upstream,
        nginx(tmp_path, upstream) as port,
    ):
        check_flask_chat(port)
