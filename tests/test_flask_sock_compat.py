"""Tests of syncws.flask as a compatibility layer for flask-sock.

The application below is written for flask-sock, with its API only (``receive``, ``send``,
``close(reason, message)``, ``connected``, ``ConnectionClosed``, ``SOCK_SERVER_OPTIONS``); its
one change is the import. It runs under Werkzeug's threaded server and gunicorn ``gthread``,
driven by syncws's client and the ``websockets`` client.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import flask
import pytest
from io_helpers import TIMEOUT, import_fresh
from test_wsgi import gunicorn_server, werkzeug_server
from websockets.sync.client import connect as ws_connect

import syncws
import syncws.flask
from syncws.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

pytestmark = pytest.mark.usefixtures("no_leaks")


FLASK_SOCK_APP = """
import threading

from flask import Flask
from syncws.flask import Sock, ConnectionClosed  # was: from flask_sock import ...

app = Flask(__name__)
app.config["SOCK_SERVER_OPTIONS"] = {
    "ping_interval": 25,
    "max_message_size": 100,
    "subprotocols": ["chat"],
}
sock = Sock(app)

# What the /watch view saw, for the tests.
seen = []
done = threading.Event()


@sock.route("/echo")
def echo(ws):
    while ws.connected:
        data = ws.receive()
        if data == "close":
            ws.close(reason=4001, message="bye")
        else:
            ws.send(data)


@sock.route("/options")
def options(ws):
    ws.send(f"{ws.ping_interval}|{ws.options.max_size}|{ws.subprotocol}")


@sock.route("/timeout")
def timeout(ws):
    data = ws.receive(timeout=0.01)
    ws.send(repr(data))
    ws.send(repr(ws.receive(timeout=5)))


@sock.route("/watch")
def watch(ws):
    try:
        while True:
            ws.receive()
    except ConnectionClosed as exc:
        seen.append((exc.reason, exc.message, ws.connected))
    try:
        ws.send("too late")
    except ConnectionClosed as exc:
        seen.append((exc.reason, exc.message))
    done.set()
"""


def load_app(directory: Path) -> ModuleType:
    """Write the application to ``directory`` and import it as a fresh module."""
    path = directory / "flask_sock_app.py"
    path.write_text(FLASK_SOCK_APP)
    return import_fresh("flask_sock_app", path)


@pytest.fixture
def app(tmp_path: Path) -> ModuleType:
    return load_app(tmp_path)


@pytest.fixture(params=["werkzeug", "gunicorn"])
def port(request: pytest.FixtureRequest, app: ModuleType, tmp_path: Path) -> Iterator[int]:
    """The application, unchanged, under each supported server."""
    if request.param == "werkzeug":
        with werkzeug_server(app.app) as port:
            yield port
    else:
        with gunicorn_server("flask_sock_app:app", tmp_path) as port:
            yield port


def test_receive_send_and_close_with_reason_and_message(port: int) -> None:
    uri = f"ws://127.0.0.1:{port}/echo"
    with syncws.connect(uri, subprotocols=["chat"]) as websocket:
        websocket.send("hello")
        assert websocket.recv(TIMEOUT) == "hello"
        websocket.send(b"\x00\x01")
        assert websocket.recv(TIMEOUT) == b"\x00\x01"
        websocket.send("close")
        with pytest.raises(ConnectionClosedError):
            websocket.recv(TIMEOUT)
    assert (websocket.close_code, websocket.close_reason) == (4001, "bye")
    with ws_connect(uri, subprotocols=["chat"], open_timeout=TIMEOUT) as other:  # type: ignore[list-item]
        other.send("from websockets")
        assert other.recv(TIMEOUT) == "from websockets"


def test_server_options_are_mapped(port: int) -> None:
    uri = f"ws://127.0.0.1:{port}/options"
    with syncws.connect(uri, subprotocols=["other", "chat"]) as websocket:
        assert websocket.recv(TIMEOUT) == "25|100|chat"
    # max_message_size is max_size: a larger message closes the connection with 1009.
    with syncws.connect(f"ws://127.0.0.1:{port}/echo", subprotocols=["chat"]) as websocket:
        websocket.send("x" * 101)
        with pytest.raises(ConnectionClosedError):
            websocket.recv(TIMEOUT)
    assert websocket.close_code == 1009
    # subprotocols: the server's list.
    with pytest.raises(InvalidStatus):
        syncws.connect(uri, subprotocols=["other"])


def test_receive_returns_none_on_a_timeout(port: int) -> None:
    uri = f"ws://127.0.0.1:{port}/timeout"
    with syncws.connect(uri, subprotocols=["chat"]) as websocket:
        assert websocket.recv(TIMEOUT) == "None"
        websocket.send("late")
        assert websocket.recv(TIMEOUT) == "'late'"


def test_connection_closed_carries_flask_sock_attributes(app: ModuleType) -> None:
    with werkzeug_server(app.app) as port:
        uri = f"ws://127.0.0.1:{port}/watch"
        with syncws.connect(uri, subprotocols=["chat"]) as websocket:
            websocket.close(4000, "done")
        assert app.done.wait(TIMEOUT)
    # reason is the code, message the text; connected is False once closed.
    assert app.seen == [(4000, "done", False), (4000, "done")]


# The connection class and the exception, in process.


def closed_views() -> tuple[flask.Flask, dict[str, Any]]:
    """An application whose views keep what they received and raised."""
    app = flask.Flask(__name__)
    sock = syncws.flask.Sock(app)
    kept: dict[str, Any] = {"done": threading.Event()}

    @sock.route("/keep")
    def keep(ws: syncws.flask.SockConnection) -> None:
        kept["connection"] = ws
        # syncws's own API works on the same connection.
        for message in ws:
            ws.send(message)
        try:
            ws.receive()
        except syncws.flask.ConnectionClosed as exc:
            kept["receive"] = exc
        try:
            ws.send("x")
        except syncws.flask.ConnectionClosed as exc:
            kept["send"] = exc
        kept["done"].set()

    return app, kept


def test_connection_is_a_syncws_connection_with_both_apis() -> None:
    app, kept = closed_views()
    with werkzeug_server(app) as port:
        with syncws.connect(f"ws://127.0.0.1:{port}/keep") as websocket:
            websocket.send("syncws")
            assert websocket.recv(TIMEOUT) == "syncws"
        assert kept["done"].wait(TIMEOUT)
    assert isinstance(kept["connection"], syncws.ServerConnection)
    for name in ("receive", "send"):
        exc = kept[name]
        # flask-sock's class, syncws's class and kind, flask-sock's attributes.
        assert isinstance(exc, syncws.flask.ConnectionClosed)
        assert isinstance(exc, ConnectionClosedOK)
        assert (exc.reason, exc.message, exc.code) == (1000, "", 1000)


def test_close_takes_both_spellings() -> None:
    app = flask.Flask(__name__)
    sock = syncws.flask.Sock(app)
    calls = {
        "/positional": lambda ws: ws.close(4002, "two"),
        "/syncws": lambda ws: ws.close(code=4003, reason="three"),
        "/flask-sock": lambda ws: ws.close(reason=4004),
        "/message": lambda ws: ws.close(message="five"),
    }
    for path, view in calls.items():
        sock.route(path, endpoint=path)(view)
    expected = {
        "/positional": (4002, "two"),
        "/syncws": (4003, "three"),
        "/flask-sock": (4004, ""),
        "/message": (1000, "five"),
    }
    with werkzeug_server(app) as port:
        for path, (code, reason) in expected.items():
            with (
                syncws.connect(f"ws://127.0.0.1:{port}{path}") as websocket,
                pytest.raises((ConnectionClosedOK, ConnectionClosedError)),
            ):
                websocket.recv(TIMEOUT)
            assert (websocket.close_code, websocket.close_reason) == (code, reason)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"code": 4000, "reason": 4001}, "two close codes"),
        ({"reason": "a", "message": "b"}, "two reasons"),
    ],
)
def test_close_refuses_a_code_or_reason_given_twice(
    arguments: dict[str, Any], message: str
) -> None:
    app = flask.Flask(__name__)
    sock = syncws.flask.Sock(app)
    errors: list[BaseException] = []

    @sock.route("/close")
    def close(ws: syncws.flask.SockConnection) -> None:
        try:
            ws.close(**arguments)
        except TypeError as exc:
            errors.append(exc)

    with (
        werkzeug_server(app) as port,
        syncws.connect(f"ws://127.0.0.1:{port}/close") as websocket,
        pytest.raises(ConnectionClosedOK),
    ):
        websocket.recv(TIMEOUT)
    assert len(errors) == 1
    assert message in str(errors[0])


# SOCK_SERVER_OPTIONS checks.


def test_unknown_server_option_fails_at_startup() -> None:
    app = flask.Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = {"thread_class": threading.Thread}
    with pytest.raises(TypeError, match=r"'thread_class'.*ping_interval, max_message_size"):
        syncws.flask.Sock(app)
    sock = syncws.flask.Sock()
    with pytest.raises(TypeError, match="'thread_class'"):
        sock.init_app(app)


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"ping_interval": "25"}, TypeError),
        ({"max_message_size": -1}, ValueError),
        (["ping_interval"], TypeError),
    ],
)
def test_bad_server_option_value_fails_at_startup(config: Any, error: type[Exception]) -> None:
    app = flask.Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = config
    with pytest.raises(error):
        syncws.flask.Sock(app)


def test_server_options_set_after_sock_are_read_at_each_connection() -> None:
    app = flask.Flask(__name__)
    sock = syncws.flask.Sock(app, max_size=10)

    @sock.route("/size")
    def size(ws: syncws.flask.SockConnection) -> None:
        ws.send(f"{ws.options.max_size}|{ws.ping_interval}")

    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": 50, "ping_interval": None}
    with (
        werkzeug_server(app) as port,
        syncws.connect(f"ws://127.0.0.1:{port}/size") as websocket,
    ):
        # Sock's own options come over the configuration.
        assert websocket.recv(TIMEOUT) == "10|None"


def test_create_connection_must_be_a_sock_connection() -> None:
    with pytest.raises(TypeError, match=r"subclass of syncws\.flask\.SockConnection"):
        syncws.flask.Sock(create_connection=syncws.ServerConnection)

    class Custom(syncws.flask.SockConnection):
        pass

    sock = syncws.flask.Sock()
    sock.route("/custom", create_connection=Custom)(lambda ws: None)
