"""Tests of syncws.wsgi.close_all() and close_all_on_signals(): open connections close with
1001 when a WSGI server stops, under a real gunicorn ``gthread`` worker and under Werkzeug.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from io_helpers import TIMEOUT
from test_wsgi import echo, gunicorn_server, werkzeug_server

import syncws
import syncws.wsgi
from syncws.exceptions import ConnectionClosedOK

pytestmark = pytest.mark.usefixtures("no_leaks")


APP = """
import os

import syncws.wsgi


def report_pid(websocket):
    websocket.send(str(os.getpid()))
    for message in websocket:
        websocket.send(message)


app = syncws.wsgi.WebSocketApp(report_pid)
"""

CONFIG = """
import syncws.wsgi


def post_worker_init(worker):
    syncws.wsgi.close_all_on_signals()
"""


def wait_for_pid_file(path: Path) -> int:
    """The master's pid, once gunicorn wrote it."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text().strip()):
            return int(text)
        time.sleep(0.05)
    pytest.fail("gunicorn wrote no pid file")


@pytest.mark.parametrize(
    ("target", "signum"),
    [
        ("master", signal.SIGTERM),
        ("master", signal.SIGQUIT),
        ("master", signal.SIGINT),
        ("worker", signal.SIGTERM),
        ("worker", signal.SIGQUIT),
    ],
)
def test_gunicorn_stopping_closes_connections_with_1001(
    tmp_path: Path, target: str, signum: signal.Signals
) -> None:
    (tmp_path / "shutdown_app.py").write_text(APP)
    (tmp_path / "gunicorn.conf.py").write_text(CONFIG)
    pid_file = tmp_path / "gunicorn.pid"
    with gunicorn_server(
        "shutdown_app:app",
        tmp_path,
        # A long grace period: without the hook, connections would last until it ends.
        extra=("--config", str(tmp_path / "gunicorn.conf.py"), "--pid", str(pid_file),
               "--graceful-timeout", "60"),
    ) as port:  # fmt: skip
        master = wait_for_pid_file(pid_file)
        clients = [syncws.connect(f"ws://127.0.0.1:{port}/") for _ in range(2)]
        try:
            worker = int(clients[0].recv(TIMEOUT))
            assert clients[1].recv(TIMEOUT) == str(worker)
            clients[0].send("still open")
            assert clients[0].recv(TIMEOUT) == "still open"
            os.kill(master if target == "master" else worker, signum)
            for websocket in clients:
                with pytest.raises(ConnectionClosedOK):
                    websocket.recv(TIMEOUT)
                assert websocket.close_code == 1001
        finally:
            for websocket in clients:
                websocket.close()


def test_close_all_closes_every_open_connection() -> None:
    app = syncws.wsgi.WebSocketApp(echo)
    with werkzeug_server(app) as port:
        clients = [syncws.connect(f"ws://127.0.0.1:{port}/") for _ in range(3)]
        try:
            clients[2].close()
            clients[0].send("open")
            assert clients[0].recv(TIMEOUT) == "open"
            syncws.wsgi.close_all(reason="restarting")
            for websocket in clients[:2]:
                with pytest.raises(ConnectionClosedOK):
                    websocket.recv(TIMEOUT)
                assert (websocket.close_code, websocket.close_reason) == (1001, "restarting")
        finally:
            for websocket in clients:
                websocket.close()
        # Nothing is left to close; a new connection is registered too.
        syncws.wsgi.close_all()
        with syncws.connect(f"ws://127.0.0.1:{port}/") as websocket:
            websocket.send("registered once its handler runs")
            websocket.recv(TIMEOUT)
            syncws.wsgi.close_all(4000)
            with pytest.raises(syncws.ConnectionClosed):
                websocket.recv(TIMEOUT)
        assert websocket.close_code == 4000
