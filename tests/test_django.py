"""Tests of the Django chat example: syncws and the Django ORM in gunicorn's request threads.

The example's database is a SQLite file in the test's temporary directory, migrated with
``manage.py migrate``; the project runs under gunicorn's ``gthread`` worker as a subprocess
on 127.0.0.1. Clients: syncws's client and the ``websockets`` sync client.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from io_helpers import TIMEOUT, check_chat_page
from test_wsgi import gunicorn_server
from websockets.sync.client import connect as ws_connect

import syncws

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "examples" / "django_chat"


pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A migrated, empty database for the example."""
    path = tmp_path / "chat.sqlite3"
    env = dict(os.environ, CHAT_DATABASE=str(path), PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def port(database: Path, tmp_path: Path) -> Iterator[int]:
    with gunicorn_server(
        "chatsite.wsgi",
        PROJECT,
        env={"CHAT_DATABASE": str(database)},
        log_directory=tmp_path,
    ) as port:
        yield port


def test_messages_are_saved_and_sent_as_history(port: int, database: Path) -> None:
    uri = f"ws://127.0.0.1:{port}/ws/"
    with syncws.connect(uri) as alice:
        alice.send("one")
        assert alice.recv(TIMEOUT) == "one"
        alice.send("  two ")
        assert alice.recv(TIMEOUT) == "two"
        # A new client gets the history from the database, then the new messages.
        with ws_connect(uri, open_timeout=TIMEOUT) as bob:
            assert bob.recv(TIMEOUT) == "one"
            assert bob.recv(TIMEOUT) == "two"
            bob.send("three")
            assert bob.recv(TIMEOUT) == "three"
            assert alice.recv(TIMEOUT) == "three"
    assert alice.close_code == 1000
    # sqlite3's context manager commits; closing() closes.
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute("SELECT text FROM chat_message ORDER BY id").fetchall()
    assert rows == [("one",), ("two",), ("three",)]


def test_page_and_plain_requests(port: int) -> None:
    check_chat_page(port, "/ws/")


def test_message_size_limit(port: int) -> None:
    with syncws.connect(f"ws://127.0.0.1:{port}/ws/") as websocket:
        websocket.send("x" * 5000)
        with pytest.raises(syncws.ConnectionClosedError):
            websocket.recv(TIMEOUT)
    assert websocket.close_code == 1009
