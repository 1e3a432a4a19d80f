"""syncws.router: one server, handlers chosen by path with Werkzeug's URL rules.

Every server is a real one on 127.0.0.1 (or a Unix socket), reached by syncws's client, the
``websockets`` client or a raw socket that reads the HTTP answer byte by byte.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets.exceptions
from io_helpers import TIMEOUT, RawPeer, RawResponse, client, running, upgrade_request
from websockets.sync.client import connect as ws_connect
from werkzeug.routing import Map, Rule

import syncws
from syncws.core.http11 import Request, Response
from syncws.router import Router, route, unix_route
from syncws.server import Server, ServerConnection

pytestmark = pytest.mark.usefixtures("no_leaks")

ROOT = Path(__file__).resolve().parent.parent


# Handlers that say what they were called with.


def room(websocket: ServerConnection, number: int) -> None:
    websocket.send(f"room {number!r} ({type(number).__name__})")


def files(websocket: ServerConnection, name: str) -> None:
    websocket.send(f"file {name}")


def echo(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def url_map() -> Map:
    return Map(
        [
            Rule("/rooms/<int:number>", endpoint=room),
            Rule("/files/<path:name>", endpoint=files),
            Rule("/echo", endpoint=echo),
            Rule("/lobby/", endpoint=echo),
        ]
    )


@contextlib.contextmanager
def routed(rules: Map | None = None, **kwargs: Any) -> Iterator[Server]:
    """Run ``route()`` on a free port of 127.0.0.1 in a thread."""
    kwargs.setdefault("compression", None)
    kwargs.setdefault("ping_interval", None)
    server = route(url_map() if rules is None else rules, "127.0.0.1", 0, **kwargs)
    with running(server):
        yield server


def uri(server: Server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def raw_answer(server: Server, path: str, *, host: str | None = "") -> RawResponse:
    """Send a handshake request for ``path`` with this ``Host`` (the server's address and
    port by default, none for ``None``) and read the answer, then close."""
    if host == "":
        host = f"127.0.0.1:{server.port}"
    replaced = b"" if host is None else f"Host: {host}\r\n".encode()
    request = upgrade_request(path).replace(b"Host: 127.0.0.1\r\n", replaced)
    with RawPeer.connect(server.port) as peer:
        peer.send(request)
        response = peer.read_response()
        if response.status == 101:
            # Read what the handler sends, then its Close, and close in turn.
            frame = peer.read_frame()
            assert frame is not None
            response.body = frame.payload
            peer.read_close()
        return response


# Routing to handlers, with the values the rules capture.


def test_each_path_reaches_its_handler_with_the_converted_values() -> None:
    with routed() as server:
        with client(uri(server, "/rooms/42")) as websocket:
            assert websocket.recv(TIMEOUT) == "room 42 (int)"
        with client(uri(server, "/files/docs/caf%C3%A9/notes.txt")) as websocket:
            # The path converter takes slashes; the value is decoded, as in a WSGI app.
            assert websocket.recv(TIMEOUT) == "file docs/café/notes.txt"
        with client(uri(server, "/echo?token=abc")) as websocket:
            # The query string is no part of the match.
            websocket.send("hello")
            assert websocket.recv(TIMEOUT) == "hello"


def test_the_websockets_client_connects_through_the_router() -> None:
    with routed() as server:
        with ws_connect(uri(server, "/rooms/7"), open_timeout=TIMEOUT) as websocket:
            assert websocket.recv(TIMEOUT) == "room 7 (int)"
        with ws_connect(uri(server, "/echo"), open_timeout=TIMEOUT) as websocket:
            websocket.send(b"\x00\x01")
            assert websocket.recv(TIMEOUT) == b"\x00\x01"
        # The redirect of a missing trailing slash: websockets 17 follows it; before, its
        # client reports it, and the Location it names is the route.
        redirect = None
        try:
            websocket = ws_connect(uri(server, "/lobby"), open_timeout=TIMEOUT)
        except websockets.exceptions.InvalidStatus as exc:
            redirect = exc.response
        if redirect is not None:
            assert redirect.status_code == 308
            assert redirect.headers["Location"] == uri(server, "/lobby/")
            websocket = ws_connect(redirect.headers["Location"], open_timeout=TIMEOUT)
        with websocket:
            assert websocket.request is not None
            assert websocket.request.path == "/lobby/"
        with pytest.raises(websockets.exceptions.InvalidStatus) as raised:
            ws_connect(uri(server, "/nowhere"), open_timeout=TIMEOUT)
        assert raised.value.response.status_code == 404


# Answers without a handler.


@pytest.mark.parametrize("path", ["/nowhere", "/rooms/abc", "/rooms/", "/echo/more"])
def test_a_path_that_matches_no_rule_is_answered_404(path: str) -> None:
    with routed() as server:
        with pytest.raises(syncws.InvalidStatus) as raised:
            client(uri(server, path))
        assert raised.value.response.status_code == 404
        response = raw_answer(server, path)
        assert response.status == 404
        assert response.body == b"Not Found\n"
        assert "location" not in response.headers


def test_a_missing_trailing_slash_is_redirected_with_werkzeugs_status() -> None:
    with routed() as server:
        response = raw_answer(server, "/lobby?x=1")
        assert (response.status, response.status_line) == (308, "HTTP/1.1 308 Permanent Redirect")
        # The Host header names the server; the query string is kept.
        assert response.headers["location"] == f"ws://127.0.0.1:{server.port}/lobby/?x=1"
        # syncws's client follows the redirect to the handler.
        with client(uri(server, "/lobby")) as websocket:
            assert websocket.request is not None
            assert websocket.request.path == "/lobby/"
            websocket.send("here")
            assert websocket.recv(TIMEOUT) == "here"


def test_redirects_name_server_name_and_wss_when_a_proxy_ends_tls() -> None:
    # ssl=True: the proxy in front speaks TLS, this server plain WebSocket.
    with routed(server_name="chat.example", ssl=True) as server:
        response = raw_answer(server, "/lobby")
        assert response.status == 308
        assert response.headers["location"] == "wss://chat.example/lobby/"
        assert raw_answer(server, "/rooms/1").body == b"room 1 (int)"


def test_a_rule_that_leaves_out_get_is_answered_405() -> None:
    rules = Map([Rule("/upload", endpoint=echo, methods=["POST"])])
    with routed(rules) as server:
        response = raw_answer(server, "/upload")
        assert response.status == 405
        assert response.body == b"Method Not Allowed\n"


@pytest.mark.parametrize("host", [None, "127.0.0.1\r\nHost: 127.0.0.2"])
def test_a_request_without_one_host_is_refused_by_the_handshake(host: str | None) -> None:
    # Not routed, and not an error of the router's: the handshake answers 400.
    with routed() as server:
        assert raw_answer(server, "/echo", host=host).status == 400


# Host matching.


def alpha(websocket: ServerConnection) -> None:
    websocket.send("alpha")


def beta(websocket: ServerConnection, sub: str) -> None:
    websocket.send(f"beta {sub}")


def host_map() -> Map:
    return Map(
        [
            Rule("/", host="alpha.test", endpoint=alpha),
            Rule("/", host="<sub>.beta.test", endpoint=beta),
        ],
        host_matching=True,
    )


def test_host_rules_match_the_host_header() -> None:
    with routed(host_map()) as server:
        assert raw_answer(server, "/", host="alpha.test").body == b"alpha"
        assert raw_answer(server, "/", host="eu.beta.test").body == b"beta eu"
        assert raw_answer(server, "/", host="gamma.test").status == 404
        # The Host header of a client that connects by address names no rule.
        with pytest.raises(syncws.InvalidStatus) as raised:
            client(uri(server, "/"))
        assert raised.value.response.status_code == 404


def test_server_name_replaces_the_host_header() -> None:
    with routed(host_map(), server_name="alpha.test") as server:
        with client(uri(server, "/")) as websocket:
            assert websocket.recv(TIMEOUT) == "alpha"
        assert raw_answer(server, "/", host="eu.beta.test").body == b"alpha"
    with routed(host_map(), server_name="gamma.test") as server:
        assert raw_answer(server, "/", host="alpha.test").status == 404


# The application's own process_request, and a router of its own.


def test_the_applications_process_request_runs_first() -> None:
    seen: list[str] = []

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        seen.append(request.path)
        if request.path == "/healthz":
            return connection.respond(200, "OK\n")
        if request.path == "/rooms/13":
            return connection.respond(403, "Forbidden\n")
        return None

    with routed(process_request=process_request) as server:
        # No rule matches /healthz: the hook answers it before routing.
        response = raw_answer(server, "/healthz")
        assert (response.status, response.body) == (200, b"OK\n")
        assert raw_answer(server, "/rooms/13").status == 403
        assert raw_answer(server, "/nowhere").status == 404
        with client(uri(server, "/rooms/12")) as websocket:
            assert websocket.recv(TIMEOUT) == "room 12 (int)"
    assert seen == ["/healthz", "/rooms/13", "/nowhere", "/rooms/12"]


def test_a_process_request_that_returns_something_else_is_still_refused() -> None:
    def process_request(connection: ServerConnection, request: Request) -> Any:
        return "OK"

    with routed(process_request=process_request) as server:
        assert raw_answer(server, "/echo").status == 500


def test_create_router_changes_the_answers() -> None:
    made: list[Router] = []

    class GoneRouter(Router):
        def __init__(self, url_map: Map, server_name: str | None, url_scheme: str) -> None:
            super().__init__(url_map, server_name, url_scheme)
            made.append(self)

        def not_found(self, connection: ServerConnection) -> Response:
            return connection.respond(410, "Gone\n")

    with routed(create_router=GoneRouter) as server:
        assert raw_answer(server, "/nowhere").status == 410
        with client(uri(server, "/rooms/3")) as websocket:
            assert websocket.recv(TIMEOUT) == "room 3 (int)"
    (router,) = made
    assert (router.server_name, router.url_scheme) == (None, "ws")
    assert all(rule.websocket for rule in router.url_map.iter_rules())
    # The handler took its route: nothing stays behind for the connection.
    assert not router._routes


def test_a_handler_that_fails_closes_its_connection_with_1011() -> None:
    def broken(websocket: ServerConnection) -> None:
        raise RuntimeError("oops")

    with routed(Map([Rule("/broken", endpoint=broken)])) as server:
        websocket = client(uri(server, "/broken"))
        with pytest.raises(syncws.ConnectionClosedError):
            websocket.recv(TIMEOUT)
        assert websocket.close_code == 1011


# Unix sockets.


def test_unix_route_routes_over_a_unix_socket() -> None:
    with tempfile.TemporaryDirectory(prefix="syncws-") as directory:
        path = os.path.join(directory, "ws.sock")
        server = unix_route(url_map(), path, compression=None, ping_interval=None)
        with running(server):
            with syncws.unix_connect(path, "ws://localhost/rooms/5") as websocket:
                assert websocket.recv(TIMEOUT) == "room 5 (int)"
            with pytest.raises(syncws.InvalidStatus) as raised:
                syncws.unix_connect(path, "ws://localhost/nowhere", open_timeout=TIMEOUT)
            assert raised.value.response.status_code == 404
        assert not os.path.exists(path)


# Arguments are checked before any I/O.


def unexpected(caller: str, name: str) -> str:
    return "^" + re.escape(f"{caller}() got an unexpected keyword argument '{name}'")


def _no_socket(*args: object, **kwargs: object) -> socket.socket:
    raise AssertionError("a socket was made before the arguments were checked")


def test_route_refuses_bad_arguments_before_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "create_server", _no_socket)
    rules = url_map()
    with pytest.raises(TypeError, match=unexpected("route", "ping_intervall")):
        route(rules, "127.0.0.1", 0, ping_intervall=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=unexpected("route", "max_conections")):
        route(rules, "127.0.0.1", 0, max_conections=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=unexpected("route", "handler")):
        route(rules, "127.0.0.1", 0, handler=echo)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"^max_size must be at least 1"):
        route(rules, "127.0.0.1", 0, max_size=0)
    with pytest.raises(TypeError, match=r"^url_map must be a werkzeug.routing.Map; got dict"):
        route({"/echo": echo}, "127.0.0.1", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^ssl must be an ssl.SSLContext, True"):
        route(rules, "127.0.0.1", 0, ssl="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^server_name must be a str or None"):
        route(rules, "127.0.0.1", 0, server_name=b"example.com")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^process_request must be callable"):
        route(rules, "127.0.0.1", 0, process_request="hook")  # type: ignore[arg-type]


def test_unix_route_refuses_bad_arguments_before_binding(tmp_path: Path) -> None:
    path = tmp_path / "ws.sock"
    with pytest.raises(TypeError, match=unexpected("unix_route", "port")):
        unix_route(url_map(), str(path), port=8765)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=unexpected("unix_route", "reuse_port")):
        unix_route(url_map(), str(path), reuse_port=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=unexpected("unix_route", "max_conections")):
        unix_route(url_map(), str(path), max_conections=5)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"^close_timeout must be"):
        unix_route(url_map(), str(path), close_timeout=-1)
    assert not path.exists()


# Werkzeug is optional.


def test_importing_the_router_without_werkzeug_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(sys.modules):
        if name == "werkzeug" or name.startswith("werkzeug."):
            # None in sys.modules makes an import of that name fail.
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "syncws.router")
    message = r"^syncws.router needs werkzeug: install the syncws\[router\] extra"
    with pytest.raises(ImportError, match=message) as raised:
        importlib.import_module("syncws.router")
    assert raised.value.name == "werkzeug"
    assert isinstance(raised.value.__cause__, ImportError)


def test_syncws_imports_without_werkzeug() -> None:
    code = (
        "import sys\n"
        "sys.modules['werkzeug'] = None\n"
        "import syncws, syncws.server, syncws.client, syncws.testing\n"
        "print(sorted(name for name in sys.modules if name.startswith('syncws.router')))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
