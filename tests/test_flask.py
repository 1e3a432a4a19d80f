"""Tests of syncws.flask and of the Flask chat example, under real servers and a real browser.

Servers: Werkzeug's ``make_server(threaded=True)`` in a thread and gunicorn ``gthread`` as a
subprocess, on 127.0.0.1 with ephemeral ports. Clients: syncws's client, the ``websockets``
sync client, and headless Chromium for the chat page.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import flask
import pytest
from browser import Browser
from io_helpers import TIMEOUT, check_flask_chat, import_fresh
from test_wsgi import gunicorn_server, werkzeug_server
from websockets.sync.client import connect as ws_connect

import syncws
from syncws.exceptions import ConnectionClosedError, InvalidStatus
from syncws.flask import Sock

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "examples" / "flask_chat"


pytestmark = pytest.mark.usefixtures("no_leaks")


def make_app() -> flask.Flask:
    app = flask.Flask(__name__)
    sock = Sock(app, origins=[None, "http://allowed.example"])

    @app.get("/")
    def index() -> str:
        return "page"

    @sock.route("/echo")
    def echo(websocket: syncws.ServerConnection) -> None:
        for message in websocket:
            websocket.send(message)

    @sock.route("/rooms/<name>", subprotocols=["chat"], origins=None)
    def room(websocket: syncws.ServerConnection, name: str) -> None:
        # The request context is there: request, g, current_app.
        flask.g.visits = 1
        websocket.send(f"{name}|{flask.request.args.get('user')}|{flask.current_app.name}")
        websocket.send(f"{websocket.subprotocol}|{flask.g.visits}")

    @sock.route("/fail")
    def fail(websocket: syncws.ServerConnection) -> None:
        websocket.recv(TIMEOUT)
        raise ValueError("the view failed")

    return app


@pytest.fixture
def port() -> Iterator[int]:
    with werkzeug_server(make_app()) as port:
        yield port


def test_echo(port: int) -> None:
    with syncws.connect(f"ws://127.0.0.1:{port}/echo") as websocket:
        websocket.send("hello")
        assert websocket.recv(TIMEOUT) == "hello"
    assert websocket.close_code == 1000
    with ws_connect(f"ws://127.0.0.1:{port}/echo", open_timeout=TIMEOUT) as other:
        other.send(b"\x01\x02")
        assert other.recv(TIMEOUT) == b"\x01\x02"


def test_url_variables_request_context_and_route_options(port: int) -> None:
    uri = f"ws://127.0.0.1:{port}/rooms/lobby?user=ann"
    with syncws.connect(uri, subprotocols=["chat"], origin="http://anywhere.example") as ws:
        assert ws.recv(TIMEOUT) == f"lobby|ann|{__name__}"
        assert ws.recv(TIMEOUT) == "chat|1"
        with pytest.raises(syncws.ConnectionClosedOK):
            ws.recv(TIMEOUT)
    assert ws.close_code == 1000


def test_view_that_raises_closes_with_1011(port: int) -> None:
    with syncws.connect(f"ws://127.0.0.1:{port}/fail") as websocket:
        websocket.send("go")
        with pytest.raises(ConnectionClosedError):
            websocket.recv(TIMEOUT)
    assert websocket.close_code == 1011


def test_origin_rejected(port: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        syncws.connect(f"ws://127.0.0.1:{port}/echo", origin="http://evil.example")
    assert info.value.response.status_code == 403


@pytest.mark.parametrize(("method", "status"), [("GET", 426), ("POST", 405)])
def test_plain_http_requests(port: int, method: str, status: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request(method, "/echo")
        response = connection.getresponse()
        assert response.status == status
        assert response.read().startswith(b"Failed to open a WebSocket connection")
        connection.request("GET", "/")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"page")
    except http.client.RemoteDisconnected:
        # Werkzeug closes after each response; reconnect for the page.
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        connection.request("GET", "/")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"page")
    finally:
        connection.close()


def test_init_app_and_blueprint() -> None:
    sock = Sock(compression=None)
    blueprint = flask.Blueprint("api", __name__, url_prefix="/api")

    @sock.route("/early")
    def early(websocket: syncws.ServerConnection) -> None:
        websocket.send("early")

    @sock.route("/bp", bp=blueprint)
    def in_blueprint(websocket: syncws.ServerConnection) -> None:
        websocket.send("blueprint")

    app = flask.Flask(__name__)
    app.register_blueprint(blueprint)
    sock.init_app(app)

    @sock.route("/late")
    def late(websocket: syncws.ServerConnection) -> None:
        websocket.send("late")

    with werkzeug_server(app) as port:
        for path, expected in [("/early", "early"), ("/api/bp", "blueprint"), ("/late", "late")]:
            with syncws.connect(f"ws://127.0.0.1:{port}{path}", compression="deflate") as ws:
                assert ws.recv(TIMEOUT) == expected
                # compression=None from Sock's defaults.
                assert ws.protocol.extensions == []


# The chat example.


def load_chat() -> ModuleType:
    """Import the example's app.py as a fresh module."""
    return import_fresh("flask_chat_app", CHAT / "app.py")


def test_chat_example_under_werkzeug() -> None:
    chat = load_chat()
    with werkzeug_server(chat.app) as port:
        check_flask_chat(port)
    assert chat.clients == set()


def test_chat_example_under_gunicorn(tmp_path: Path) -> None:
    with gunicorn_server("app:app", CHAT, log_directory=tmp_path) as port:
        check_flask_chat(port)


def test_chat_example_in_a_browser() -> None:
    chat = load_chat()
    with werkzeug_server(chat.app) as port, Browser() as browser:
        first = browser.open(f"http://127.0.0.1:{port}/")
        second = browser.open(f"http://127.0.0.1:{port}/")
        for page in (first, second):
            page.wait_for("document.getElementById('status').textContent === 'connected'")
        first.evaluate(
            "document.getElementById('text').value = 'hello from the first tab';"
            "document.querySelector('#form button').click()"
        )
        expression = (
            "[...document.querySelectorAll('#messages li')].map(li => li.textContent)"
            ".includes('hello from the first tab')"
        )
        assert second.wait_for(expression) is True
        assert first.wait_for(expression) is True
        second.close()
        # The first tab sees nothing break; the server forgot the closed tab.
        first.evaluate(
            "document.getElementById('text').value = 'still here';"
            "document.querySelector('#form button').click()"
        )
        first.wait_for(
            "[...document.querySelectorAll('#messages li')].some(li => li.textContent === "
            "'still here')"
        )
        first.close()
