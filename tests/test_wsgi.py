"""Tests of syncws.wsgi: WebSocket connections taken over from real WSGI servers.

Servers: Werkzeug's ``make_server(threaded=True)`` in a thread, gunicorn with the ``gthread``
worker as a subprocess, and ``wsgiref`` (unsupported). Clients: syncws's client, the
``websockets`` sync client, and raw sockets to check the bytes on the wire. Everything listens
on 127.0.0.1 with ephemeral ports.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import wsgiref.simple_server
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from io_helpers import (
    KEY,
    TIMEOUT,
    RawFrame,
    RawPeer,
    close_payload,
    frame_bytes,
    terminate,
    upgrade_request,
)
from websockets.sync.client import connect as ws_connect
from werkzeug.serving import make_server

import syncws
import syncws.wsgi
from syncws.core.headers import accept_key
from syncws.exceptions import ConnectionClosedError, InvalidStatus

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("no_leaks")


# Servers.


@contextlib.contextmanager
def werkzeug_server(app: Any, *, threaded: bool = True) -> Iterator[int]:
    """Run Werkzeug's development server on 127.0.0.1 in a thread; yield its port."""
    server = make_server("127.0.0.1", 0, app, threaded=threaded)
    thread = threading.Thread(target=server.serve_forever, name="werkzeug-server")
    thread.start()
    try:
        yield server.port
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
        server.server_close()
        assert not thread.is_alive(), "the werkzeug server did not stop"


# gunicorn 24+ opens a control socket in the home directory by default, shared by every
# instance of the user: turn it off where the option exists.
_GUNICORN_CONFIG = importlib.import_module("gunicorn.config")
CONTROL_SOCKET = (
    ("--no-control-socket",) if hasattr(_GUNICORN_CONFIG, "ControlSocketDisable") else ()
)


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """Wait until something accepts connections on ``port``; fail if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    pytest.fail(f"nothing listens on port {port} after {timeout} seconds")


@contextlib.contextmanager
def gunicorn_server(
    app: str,
    directory: Path,
    *,
    worker: str = "gthread",
    threads: int = 8,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    log_directory: Path | None = None,
) -> Iterator[int]:
    """Run gunicorn as a subprocess serving ``app`` (``module:name`` importable from
    ``directory``) on 127.0.0.1; yield its port. Its output goes to a file in
    ``log_directory`` (by default ``directory``)."""
    port = free_port()
    log = ((log_directory or directory) / f"gunicorn-{port}.log").open("wb")
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(directory), str(ROOT), environment.get("PYTHONPATH", "")]
    )
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"127.0.0.1:{port}",
        "--worker-class", worker,
        "--workers", "1",
        "--threads", str(threads),
        "--graceful-timeout", "2",
        "--chdir", str(directory),
        *CONTROL_SOCKET,
        *extra,
        app,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    try:
        wait_listening(port, process)
        yield port
    finally:
        terminate(process)
        log.close()


# Handlers and applications.


def echo(websocket: syncws.ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def fail(websocket: syncws.ServerConnection) -> None:
    websocket.recv(TIMEOUT)
    raise RuntimeError("the handler failed")


def report(websocket: syncws.ServerConnection) -> None:
    """Send what the connection knows of its handshake, then echo."""
    websocket.send(
        f"{websocket.request.path if websocket.request else ''}|"
        f"{websocket.subprotocol}|{websocket.request_headers.get('X-Test', '')}"
    )
    echo(websocket)


def routes(**options: Any) -> Callable[[dict[str, Any], Any], Any]:
    """A WSGI application: WebSocket routes under /ws, plain HTTP elsewhere."""
    apps = {
        "/ws/echo": syncws.wsgi.WebSocketApp(echo, **options),
        "/ws/fail": syncws.wsgi.WebSocketApp(fail, **options),
        "/ws/report": syncws.wsgi.WebSocketApp(
            report, subprotocols=["chat", "superchat"], **options
        ),
    }

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        route = apps.get(environ["PATH_INFO"])
        if route is not None:
            return route(environ, start_response)
        body = b"plain HTTP\n"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
        return [body]

    return app


GUNICORN_APP = """
import syncws.wsgi
from test_wsgi import routes

app = routes(origins=[None, "http://allowed.example"])
plain = syncws.wsgi.WebSocketApp(lambda websocket: None)
"""


@pytest.fixture(params=["werkzeug", "gunicorn"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """The echo application on each supported server."""
    if request.param == "werkzeug":
        app = routes(origins=[None, "http://allowed.example"])
        with werkzeug_server(app) as port:
            yield port
    else:
        (tmp_path / "wsgi_app.py").write_text(GUNICORN_APP)
        # The test module is importable by the application: it holds routes().
        with gunicorn_server(
            "wsgi_app:app", tmp_path, env={"PYTHONPATH": str(Path(__file__).parent)}
        ) as port:
            yield port


# Raw clients.

REQUEST = upgrade_request("/ws/echo", b"Sec-WebSocket-Protocol: chat\r\n")

HANDSHAKE_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
}


# Tests.


def test_echo_syncws_client(server: int) -> None:
    with syncws.connect(f"ws://127.0.0.1:{server}/ws/echo", open_timeout=TIMEOUT) as websocket:
        websocket.send("hello")
        assert websocket.recv(TIMEOUT) == "hello"
        websocket.send(b"\x00\xff" * 1000)
        assert websocket.recv(TIMEOUT) == b"\x00\xff" * 1000
        websocket.send(["frag", "ments"])
        assert websocket.recv(TIMEOUT) == "fragments"
    assert websocket.close_code == 1000


def test_echo_websockets_client(server: int) -> None:
    with ws_connect(f"ws://127.0.0.1:{server}/ws/echo", open_timeout=TIMEOUT) as websocket:
        for index in range(20):
            websocket.send(f"message {index}")
            assert websocket.recv(TIMEOUT) == f"message {index}"
        websocket.send(b"binary")
        assert websocket.recv(TIMEOUT) == b"binary"


def test_request_path_query_and_headers(server: int) -> None:
    uri = f"ws://127.0.0.1:{server}/ws/report?room=a%20b&x=1"
    with syncws.connect(
        uri, subprotocols=["superchat"], additional_headers={"X-Test": "yes"}, compression=None
    ) as websocket:
        assert websocket.recv(TIMEOUT) == "/ws/report?room=a%20b&x=1|superchat|yes"
        assert websocket.subprotocol == "superchat"


def test_subprotocol_required(server: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        syncws.connect(f"ws://127.0.0.1:{server}/ws/report", subprotocols=["other"])
    assert info.value.response.status_code == 400


def test_origin_rejected(server: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        syncws.connect(f"ws://127.0.0.1:{server}/ws/echo", origin="http://evil.example")
    assert info.value.response.status_code == 403
    with syncws.connect(
        f"ws://127.0.0.1:{server}/ws/echo", origin="http://allowed.example"
    ) as websocket:
        websocket.send("ok")
        assert websocket.recv(TIMEOUT) == "ok"


def test_compression_negotiated(server: int) -> None:
    with syncws.connect(f"ws://127.0.0.1:{server}/ws/echo", compression="deflate") as websocket:
        assert websocket.response is not None
        assert "permessage-deflate" in websocket.response.headers["Sec-WebSocket-Extensions"]
        text = "compressible " * 1000
        websocket.send(text)
        assert websocket.recv(TIMEOUT) == text
    with syncws.connect(f"ws://127.0.0.1:{server}/ws/echo", compression=None) as websocket:
        assert websocket.response is not None
        assert "Sec-WebSocket-Extensions" not in websocket.response.headers


def test_close_codes(server: int) -> None:
    with syncws.connect(f"ws://127.0.0.1:{server}/ws/fail") as websocket:
        websocket.send("go")
        with pytest.raises(ConnectionClosedError):
            websocket.recv(TIMEOUT)
    assert websocket.close_code == 1011
    with syncws.connect(f"ws://127.0.0.1:{server}/ws/echo") as websocket:
        websocket.close(4000, "bye")
    # The server echoes the client's Close.
    assert websocket.protocol.close_rcvd is not None
    assert websocket.protocol.close_rcvd.code == 4000


def test_frames_sent_with_the_request_are_not_lost(server: int) -> None:
    """The server read them along with the request head: they must reach the handler."""
    frames = frame_bytes(0x1, b"first", mask=True) + frame_bytes(0x2, b"second", mask=True)
    with RawPeer.connect(server) as raw:
        raw.send(REQUEST + frames)  # one write: one segment on loopback
        response = raw.read_response()
        assert response.status == 101
        assert response.headers["sec-websocket-accept"] == accept_key(KEY)
        assert raw.read_frame() == RawFrame(0x1, True, b"first")
        assert raw.read_frame() == RawFrame(0x2, True, b"second")
        raw.send_frame(0x8, close_payload(1000))
        rest = raw.read_all()
    assert rest == frame_bytes(0x8, close_payload(1000)), "the Close, and nothing after it"


def test_server_writes_nothing_after_the_connection(server: int) -> None:
    """Once the WebSocket is over, the WSGI server's own response must not reach the wire,
    and the socket is not kept alive for another request."""
    with RawPeer.connect(server) as raw:
        raw.send(REQUEST)
        assert raw.read_response().status == 101
        raw.send_frame(0x8, close_payload(1000))
        # A second request on the same connection must not be served either.
        raw.send(b"GET /plain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        # What came after the 101, buffered bytes included.
        rest = raw.read_all()
    assert rest == frame_bytes(0x8, close_payload(1000))


def test_plain_http_still_served(server: int) -> None:
    with syncws.connect(f"ws://127.0.0.1:{server}/ws/echo") as websocket:
        connection = http.client.HTTPConnection("127.0.0.1", server, timeout=TIMEOUT)
        try:
            connection.request("GET", "/plain")
            response = connection.getresponse()
            assert response.status == 200
            assert response.read() == b"plain HTTP\n"
        finally:
            connection.close()
        websocket.send("still open")
        assert websocket.recv(TIMEOUT) == "still open"


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {}, 426),
        ("POST", {"Upgrade": "websocket", "Connection": "Upgrade"}, 405),
        (
            "GET",
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "short",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Protocol": "chat",
            },
            400,
        ),
    ],
)
def test_not_a_handshake(server: int, method: str, headers: dict[str, str], status: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=TIMEOUT)
    try:
        connection.request(method, "/ws/echo", headers=headers)
        response = connection.getresponse()
        assert response.status == status
        assert response.read().startswith(b"Failed to open a WebSocket connection")
        if status == 426:
            assert response.getheader("Upgrade") == "websocket"
    finally:
        connection.close()


def test_many_connections_at_once(server: int) -> None:
    clients = [syncws.connect(f"ws://127.0.0.1:{server}/ws/echo") for _ in range(5)]
    try:
        for index, websocket in enumerate(clients):
            websocket.send(str(index))
        for index, websocket in enumerate(clients):
            assert websocket.recv(TIMEOUT) == str(index)
    finally:
        for websocket in clients:
            websocket.close()


# Unsupported servers.


def test_wsgiref_is_unsupported(caplog: pytest.LogCaptureFixture) -> None:
    class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, routes(), handler_class=QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="wsgiref-server")
    thread.start()
    try:
        # wsgiref answers in HTTP/1.0, which WebSocket clients refuse: read it with http.client.
        connection = http.client.HTTPConnection("127.0.0.1", httpd.server_port, timeout=TIMEOUT)
        try:
            with caplog.at_level(logging.ERROR, "syncws.wsgi"):
                connection.request("GET", "/ws/echo", headers=HANDSHAKE_HEADERS)
                response = connection.getresponse()
                body = response.read()
        finally:
            connection.close()
    finally:
        httpd.shutdown()
        thread.join(TIMEOUT)
        httpd.server_close()
    assert response.status == 500
    assert b"can't open WebSocket connections" in body
    assert "WSGIServer" in caplog.text
    assert "does not give access to the request's socket" in caplog.text


def test_single_threaded_werkzeug_is_unsupported(caplog: pytest.LogCaptureFixture) -> None:
    with (
        werkzeug_server(routes(), threaded=False) as port,
        caplog.at_level(logging.ERROR, "syncws.wsgi"),
        pytest.raises(InvalidStatus) as info,
    ):
        syncws.connect(f"ws://127.0.0.1:{port}/ws/echo", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 500
    assert "threaded=True" in caplog.text


def test_gunicorn_sync_worker_is_unsupported(tmp_path: Path) -> None:
    (tmp_path / "wsgi_app.py").write_text(GUNICORN_APP)
    with (
        gunicorn_server(
            "wsgi_app:plain",
            tmp_path,
            worker="sync",
            threads=1,
            env={"PYTHONPATH": str(Path(__file__).parent)},
        ) as port,
        pytest.raises(InvalidStatus) as info,
    ):
        syncws.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 500
    logs = "".join(path.read_text() for path in tmp_path.glob("gunicorn-*.log"))
    assert "--worker-class gthread" in logs


def test_accept_outside_any_server() -> None:
    with pytest.raises(syncws.wsgi.UnsupportedServer, match=r"'custom/1\.0'"):
        syncws.wsgi.accept({"SERVER_SOFTWARE": "custom/1.0", "REQUEST_METHOD": "GET"})


def test_request_from_environ_without_raw_uri() -> None:
    request = syncws.wsgi._request_from_environ(
        {
            "SCRIPT_NAME": "/app",
            "PATH_INFO": "/caf\xc3\xa9 x",  # PEP 3333: UTF-8 bytes as latin-1 characters
            "QUERY_STRING": "a=1",
            "HTTP_HOST": "example.com",
            "HTTP_SEC_WEBSOCKET_KEY": KEY,
            "CONTENT_TYPE": "",
        }
    )
    assert request.path == "/app/caf%C3%A9%20x?a=1"
    assert request.headers["Host"] == "example.com"
    assert request.headers["Sec-Websocket-Key"] == KEY
    assert "Content-Type" not in request.headers


def test_keepalive_pings_from_a_wsgi_connection() -> None:
    app = syncws.wsgi.WebSocketApp(echo, ping_interval=0.1, ping_timeout=TIMEOUT)
    with (
        werkzeug_server(app) as port,
        RawPeer.connect(port) as raw,
    ):
        raw.send(REQUEST)
        # The 101, then a Ping frame (unmasked from the server) on its own.
        assert raw.read_response().status == 101
        ping = raw.read_frame()
        assert ping is not None
        assert (ping.opcode, ping.fin) == (0x9, True)
        raw.send_frame(0x8, close_payload(1000))
        assert raw.read_all().endswith(frame_bytes(0x8, close_payload(1000)))
