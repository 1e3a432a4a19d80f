"""Tests of hand-off: syncws.wsgi and syncws.flask give the WSGI server its thread back.

Under gunicorn's ``gthread`` worker, a WebSocket route with ``hand_off=True`` runs its
handler in a thread of syncws's own, and the request ends right after the handshake: a few
server threads hold any number of connections while plain HTTP requests keep being served.
Under Werkzeug (a thread per request already) and ``wsgiref`` (no socket), nothing changes.
gunicorn runs as a subprocess on 127.0.0.1, stopped by pid.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from io_helpers import TIMEOUT, RawFrame, RawPeer, close_payload, frame_bytes, terminate
from test_wsgi import (
    CONTROL_SOCKET,
    HANDSHAKE_HEADERS,
    REQUEST,
    ROOT,
    free_port,
    wait_listening,
    werkzeug_server,
)

import syncws
import syncws.server
import syncws.wsgi
from syncws.exceptions import ConnectionClosedError, ConnectionClosedOK
from syncws.flask import Sock

pytestmark = pytest.mark.usefixtures("no_leaks")


APP = """
import threading

import syncws.server
import syncws.wsgi


def echo(websocket):
    for message in websocket:
        websocket.send(message)


def where(websocket):
    websocket.send(threading.current_thread().name)
    echo(websocket)


def fail(websocket):
    websocket.recv()
    raise RuntimeError("the handler failed")


ROUTES = {
    "/ws/echo": syncws.wsgi.WebSocketApp(echo, hand_off=True),
    "/ws/where": syncws.wsgi.WebSocketApp(where, hand_off=True),
    "/ws/fail": syncws.wsgi.WebSocketApp(fail, hand_off=True),
}


def app(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is not None:
        return route(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    return [b"plain HTTP\\n"]
"""

FLASK_APP = """
import threading

from flask import Flask, current_app, request

from syncws.flask import Sock

app = Flask("handoff")
sock = Sock(app, hand_off=True)


@app.route("/plain")
def plain():
    return "plain HTTP"


@sock.route("/ws/<name>")
def room(websocket, name):
    if name == "fail":
        websocket.recv()
        raise RuntimeError("the view failed")
    websocket.send(
        f"{current_app.name}|{request.path}|{name}|{threading.current_thread().name}"
    )
    for message in websocket:
        websocket.send(message)
"""

CONFIG = """
import syncws.server
import syncws.wsgi


def post_worker_init(worker):
    syncws.wsgi.close_all_on_signals()
"""


@contextlib.contextmanager
def gunicorn(
    app: str, directory: Path, *, threads: int, extra: tuple[str, ...] = ()
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run gunicorn's ``gthread`` worker on ``app`` (importable from ``directory``); yield its
    port and process. The test may stop it; it is terminated by pid in any case."""
    port = free_port()
    log = (directory / "gunicorn.log").open("wb")
    environment = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(directory), str(ROOT), environment.get("PYTHONPATH", "")]
    )
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"127.0.0.1:{port}",
        "--worker-class", "gthread",
        "--workers", "1",
        "--threads", str(threads),
        "--graceful-timeout", "10",
        "--chdir", str(directory),
        *CONTROL_SOCKET,
        *extra,
        app,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    try:
        wait_listening(port, process)
        yield port, process
    finally:
        terminate(process)
        log.close()


def get_plain(port: int, path: str = "/plain") -> float:
    """GET a plain HTTP route on a new connection; return how long the answer took."""
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        assert response.read().startswith(b"plain HTTP")
    finally:
        connection.close()
    return time.monotonic() - start


def connect_all(uri: str, count: int) -> list[syncws.ClientConnection]:
    clients: list[syncws.ClientConnection] = []
    try:
        for _ in range(count):
            clients.append(syncws.connect(uri, open_timeout=TIMEOUT, compression=None))
    except BaseException:
        for websocket in clients:
            websocket.close()
        raise
    return clients


def echo_all(clients: list[syncws.ClientConnection], text: str) -> None:
    for index, websocket in enumerate(clients):
        websocket.send(f"{text} {index}")
    for index, websocket in enumerate(clients):
        assert websocket.recv(TIMEOUT) == f"{text} {index}"


def test_gunicorn_four_threads_hold_a_hundred_connections_and_serve_http(
    tmp_path: Path,
) -> None:
    (tmp_path / "handoff_app.py").write_text(APP)
    with gunicorn("handoff_app:app", tmp_path, threads=4) as (port, process):
        clients = connect_all(f"ws://127.0.0.1:{port}/ws/echo", 100)
        try:
            echo_all(clients, "open")
            # Every thread of the server would be taken four times over without hand-off.
            latencies = [get_plain(port) for _ in range(20)]
            print(
                "HTTP with 100 WebSocket connections open on 4 threads: "
                f"median {sorted(latencies)[10] * 1000:.1f} ms, "
                f"max {max(latencies) * 1000:.1f} ms"
            )
            echo_all(clients, "still open")
            for websocket in clients:
                websocket.close()
                assert websocket.close_code == 1000
        finally:
            for websocket in clients:
                websocket.close()

        # Stopping gunicorn closes the handed-off connections with 1001, and it exits.
        clients = connect_all(f"ws://127.0.0.1:{port}/ws/echo", 10)
        try:
            echo_all(clients, "before stopping")
            process.send_signal(signal.SIGTERM)
            for websocket in clients:
                with pytest.raises(ConnectionClosedOK):
                    websocket.recv(TIMEOUT)
                assert websocket.close_code == 1001
            assert process.wait(TIMEOUT) == 0
        finally:
            for websocket in clients:
                websocket.close()
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log, log


def test_gunicorn_hand_off_runs_in_syncws_threads(tmp_path: Path) -> None:
    (tmp_path / "handoff_app.py").write_text(APP)
    with gunicorn("handoff_app:app", tmp_path, threads=2) as (port, _):
        with syncws.connect(f"ws://127.0.0.1:{port}/ws/where") as websocket:
            assert websocket.recv(TIMEOUT, decode=True).startswith("syncws-wsgi-")
        # A handler that raises closes its connection with 1011; one that returns, 1000.
        with syncws.connect(f"ws://127.0.0.1:{port}/ws/fail") as websocket:
            websocket.send("go")
            with pytest.raises(ConnectionClosedError):
                websocket.recv(TIMEOUT)
        assert websocket.close_code == 1011
        with syncws.connect(f"ws://127.0.0.1:{port}/ws/echo") as websocket:
            websocket.close(4000, "bye")
        assert websocket.protocol.close_rcvd is not None
        assert websocket.protocol.close_rcvd.code == 4000
    log = (tmp_path / "gunicorn.log").read_text()
    assert "the handler failed" in log


def test_gunicorn_writes_nothing_on_a_handed_off_connection(tmp_path: Path) -> None:
    """Frames sent with the request reach the handler; once the request has returned,
    gunicorn's own response and its closing of the socket never reach the wire, and the
    socket is not kept alive for another request."""
    (tmp_path / "handoff_app.py").write_text(APP)
    frames = frame_bytes(0x1, b"first", mask=True) + frame_bytes(0x2, b"second", mask=True)
    with gunicorn("handoff_app:app", tmp_path, threads=1) as (port, _):
        with RawPeer.connect(port) as raw:
            raw.send(REQUEST + frames)
            assert raw.read_response().status == 101
            assert raw.read_frame() == RawFrame(0x1, True, b"first")
            assert raw.read_frame() == RawFrame(0x2, True, b"second")
            # The only server thread is free: plain HTTP is served while this stays open.
            get_plain(port)
            raw.send_frame(0x1, b"third")
            assert raw.read_frame() == RawFrame(0x1, True, b"third")
            raw.send_frame(0x8, close_payload(1000))
            raw.send(b"GET /plain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            rest = raw.read_all()
        assert rest == frame_bytes(0x8, close_payload(1000)), "the Close, and nothing after it"


def test_gunicorn_close_all_on_signals_with_hand_off(tmp_path: Path) -> None:
    (tmp_path / "handoff_app.py").write_text(APP)
    (tmp_path / "gunicorn.conf.py").write_text(CONFIG)
    extra = ("--config", str(tmp_path / "gunicorn.conf.py"))
    with gunicorn("handoff_app:app", tmp_path, threads=2, extra=extra) as (port, process):
        clients = connect_all(f"ws://127.0.0.1:{port}/ws/echo", 5)
        try:
            echo_all(clients, "open")
            process.send_signal(signal.SIGTERM)
            for websocket in clients:
                with pytest.raises(ConnectionClosedOK):
                    websocket.recv(TIMEOUT)
                assert websocket.close_code == 1001
            assert process.wait(TIMEOUT) == 0
        finally:
            for websocket in clients:
                websocket.close()


def test_flask_sock_hand_off_under_gunicorn(tmp_path: Path) -> None:
    (tmp_path / "flask_handoff.py").write_text(FLASK_APP)
    with gunicorn("flask_handoff:app", tmp_path, threads=2) as (port, _):
        clients = connect_all(f"ws://127.0.0.1:{port}/ws/lobby", 10)
        try:
            for websocket in clients:
                name, path, room, thread = websocket.recv(TIMEOUT, decode=True).split("|")
                # The view runs in syncws's thread, in a copy of the request context.
                assert (name, path, room) == ("handoff", "/ws/lobby", "lobby")
                assert thread.startswith("syncws-wsgi-")
            get_plain(port)
            echo_all(clients, "hello")
        finally:
            for websocket in clients:
                websocket.close()
        with syncws.connect(f"ws://127.0.0.1:{port}/ws/fail") as websocket:
            websocket.send("go")
            with pytest.raises(ConnectionClosedError):
                websocket.recv(TIMEOUT)
        assert websocket.close_code == 1011


def test_werkzeug_keeps_the_request_thread() -> None:
    """Werkzeug gives each request a thread of its own: nothing to set free, nothing
    changes."""

    def where(websocket: syncws.ServerConnection) -> None:
        websocket.send(threading.current_thread().name)
        for message in websocket:
            websocket.send(message)

    app = syncws.wsgi.WebSocketApp(where, hand_off=True)
    with werkzeug_server(app) as port:
        with syncws.connect(f"ws://127.0.0.1:{port}/") as websocket:
            assert not websocket.recv(TIMEOUT, decode=True).startswith("syncws-wsgi-")
            websocket.send("echo")
            assert websocket.recv(TIMEOUT) == "echo"
        assert websocket.close_code == 1000


def test_wsgiref_is_still_unsupported(caplog: pytest.LogCaptureFixture) -> None:
    """A server that gives no socket answers 500, as without hand-off."""
    app = syncws.wsgi.WebSocketApp(lambda websocket: None, hand_off=True)
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="wsgiref-server")
    thread.start()
    try:
        # wsgiref answers in HTTP/1.0, which WebSocket clients refuse: read it with http.client.
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=TIMEOUT)
        try:
            with caplog.at_level(logging.ERROR, "syncws.wsgi"):
                connection.request("GET", "/", headers=HANDSHAKE_HEADERS)
                response = connection.getresponse()
                response.read()
        finally:
            connection.close()
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
        server.server_close()
    assert response.status == 500
    assert "does not give access to the request's socket" in caplog.text


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_hand_off_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="hand_off"):
        syncws.wsgi.WebSocketApp(lambda websocket: None, hand_off="yes")  # type: ignore[arg-type]


def test_hand_off_declines_where_the_server_gives_a_thread_per_request() -> None:
    """hand_off() says False under Werkzeug: the caller runs the job, as a Django view
    without hand-off would."""
    results: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        websocket = syncws.wsgi.accept(environ)
        job = functools.partial(syncws.server.run_handler, websocket, echo)
        results.append(syncws.wsgi.hand_off(environ, websocket, job))
        if not results[-1]:
            job()
        start_response("101 Switching Protocols", [])
        return []

    def echo(websocket: syncws.ServerConnection) -> None:
        for message in websocket:
            websocket.send(message)

    with werkzeug_server(app) as port, syncws.connect(f"ws://127.0.0.1:{port}/") as websocket:
        websocket.send("in the request's thread")
        assert websocket.recv(TIMEOUT) == "in the request's thread"
    assert results == [False]


def test_sock_connection_sends_bytes_as_text() -> None:
    """SockConnection.send() takes Connection.send()'s text flag."""
    app = Flask("text")
    sock = Sock(app)

    @sock.route("/")
    def view(websocket: syncws.ServerConnection) -> None:
        websocket.send(b"caf\xc3\xa9", text=True)

    with werkzeug_server(app) as port, syncws.connect(f"ws://127.0.0.1:{port}/") as websocket:
        assert websocket.recv(TIMEOUT) == "café"
