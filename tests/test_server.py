"""Tests of serve(), unix_serve(), Server, basic_auth() and broadcast().

Peers: syncws's client, the ``websockets`` sync client, and raw sockets for hostile clients.
Every server listens on the loopback interface or on a Unix socket in a temporary directory,
and runs ``serve_forever()`` in a thread that :func:`serving` shuts down and joins.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import functools
import gc
import hmac
import inspect
import logging
import os
import queue
import random
import re
import resource
import select
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from io_helpers import (
    TIMEOUT,
    Certificate,
    RawFrame,
    RawPeer,
    RawResponse,
    close_payload,
    count_fds,
    exchange,
    make_certificate,
    require_ipv6_loopback,
    running,
    upgrade_request,
    wait_for,
    ws_server,
)
from io_helpers import syncws_echo as echo
from websockets.exceptions import ConnectionClosedOK as WSConnectionClosedOK
from websockets.sync.client import ClientConnection as WSClientConnection
from websockets.sync.client import connect as ws_connect

import syncws
from syncws.auth import basic_auth
from syncws.client import ClientConnection, connect, unix_connect
from syncws.connection import Connection, broadcast
from syncws.core.frames import Frame
from syncws.core.headers import Headers
from syncws.core.http11 import Request, Response
from syncws.core.protocol import Protocol
from syncws.core.server_protocol import ServerProtocol
from syncws.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
)
from syncws.server import SERVER, Server, ServerConnection, serve, unix_serve

pytestmark = pytest.mark.usefixtures("no_leaks")


# Running a server.


@contextlib.contextmanager
def serving(
    handler: Callable[[ServerConnection], Any], host: str = "127.0.0.1", **kwargs: Any
) -> Iterator[Server]:
    """:func:`serve` on a free port of ``host`` and run it; a short close timeout by default."""
    kwargs.setdefault("close_timeout", 2)
    if kwargs.get("sock") is None:
        kwargs.setdefault("port", 0)
        server = serve(handler, host, **kwargs)
    else:
        server = serve(handler, **kwargs)
    with running(server):
        yield server


def uri(server: Server, scheme: str = "ws", host: str = "127.0.0.1") -> str:
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}:{server.port}/"


def client(target: Server | str, **kwargs: Any) -> ClientConnection:
    """syncws's client, without compression unless asked, with bounded timeouts."""
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", 2)
    connection: ClientConnection = connect(
        uri(target) if isinstance(target, Server) else target, **kwargs
    )
    return connection


# Recent websockets read proxy settings from the environment unless told proxy=None; older
# versions have no proxy argument.
_WS_PROXY = "proxy" in inspect.signature(ws_connect).parameters


@contextlib.contextmanager
def ws_client(target: Server | str, **kwargs: Any) -> Iterator[WSClientConnection]:
    """The websockets sync client, without compression unless asked."""
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", 2)
    if _WS_PROXY:
        kwargs.setdefault("proxy", None)
    # websockets 17 wants connect() used as a context manager.
    with ws_connect(uri(target) if isinstance(target, Server) else target, **kwargs) as connection:
        assert isinstance(connection, WSClientConnection)
        yield connection


def wait_idle(server: Server) -> None:
    """Wait until no worker is busy.

    A client sees the end of the connection a moment before the worker that closed it is
    counted as free: until then, a new connection to a full server gets 503.
    """
    assert wait_for(lambda: not server._active), "a worker is still busy"


def worker_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(("syncws-worker", "syncws-reader"))
    ]


# Basics.


@pytest.mark.parametrize(
    ("open_client", "close_code"),
    [
        pytest.param(client, lambda connection: connection.close_code, id="syncws"),
        pytest.param(ws_client, lambda connection: connection.protocol.close_code, id="websockets"),
    ],
)
def test_echo(open_client: Callable[[Server], Any], close_code: Callable[[Any], int]) -> None:
    with serving(echo) as server, open_client(server) as connection:
        connection.send("hello")
        assert connection.recv(TIMEOUT) == "hello"
        connection.send(b"\x00\xff" * 1000)
        assert connection.recv(TIMEOUT) == b"\x00\xff" * 1000
        connection.send(["frag", "mented"])
        assert connection.recv(TIMEOUT) == "fragmented"
        connection.send([b"frag", b"mented"])
        assert connection.recv(TIMEOUT) == b"fragmented"
    assert close_code(connection) == 1000


def test_handler_returns_closes_with_1000() -> None:
    def handler(connection: ServerConnection) -> None:
        connection.send("bye")

    with serving(handler) as server, client(server) as connection:
        assert connection.recv(TIMEOUT) == "bye"
        connection.wait_closed(TIMEOUT)
        assert connection.close_code == 1000


def test_handler_raising_closes_with_1011_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="syncws.server")

    def handler(connection: ServerConnection) -> None:
        raise ZeroDivisionError("handler bug")

    with serving(handler) as server, client(server) as connection:
        connection.wait_closed(TIMEOUT)
        assert connection.close_code == 1011
    errors = [r for r in caplog.records if r.name == "syncws.server" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[0] is ZeroDivisionError
    assert "handler bug" in caplog.text
    assert "Traceback" in caplog.text


def test_handler_seeing_connection_closed_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="syncws.server")
    seen: queue.Queue[BaseException] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        try:
            connection.recv(TIMEOUT)
        except ConnectionClosed as exc:
            seen.put(exc)
            raise

    with serving(handler) as server:
        connection = client(server)
        connection.abort()
        connection.wait_closed(TIMEOUT)
        assert isinstance(seen.get(timeout=TIMEOUT), ConnectionClosedError)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_handler_raising_another_connections_closed(caplog: pytest.LogCaptureFixture) -> None:
    """A ConnectionClosed from another connection (a backend) still closes this one."""
    caplog.set_level(logging.ERROR, logger="syncws.server")

    def handler(connection: ServerConnection) -> None:
        raise ConnectionClosedError(None, None)

    with serving(handler, max_connections=1) as server, client(server) as connection:
        connection.wait_closed(TIMEOUT)
        assert connection.close_code == 1011
        wait_idle(server)
        assert not server.connections
    assert not caplog.records


def test_partial_handler() -> None:
    def greet(greeting: str, connection: ServerConnection) -> None:
        connection.send(greeting)

    with serving(functools.partial(greet, "hi")) as server, client(server) as connection:
        assert connection.recv(TIMEOUT) == "hi"


def test_port_zero_picks_a_port() -> None:
    with serving(echo) as server:
        assert isinstance(server.port, int)
        assert server.port > 0
        assert server.socket.getsockname()[1] == server.port
        with client(f"ws://127.0.0.1:{server.port}/") as connection:
            assert connection.remote_address == ("127.0.0.1", server.port)


def test_serve_needs_a_port() -> None:
    with pytest.raises(TypeError, match="port"):
        serve(echo, "127.0.0.1")


def test_ipv6() -> None:
    require_ipv6_loopback()
    with serving(echo, "::1") as server:
        assert server.socket.family == socket.AF_INET6
        with client(uri(server, host="::1")) as connection:
            assert connection.remote_address[0] == "::1"
            connection.send("six")
            assert connection.recv(TIMEOUT) == "six"


def test_unix_serve(tmp_path: Path) -> None:
    path = str(tmp_path / "ws.sock")
    addresses: queue.Queue[Any] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        addresses.put(connection.local_address)
        echo(connection)

    server = unix_serve(handler, path, close_timeout=2)
    with running(server):
        assert server.port is None
        with unix_connect(path, compression=None, open_timeout=TIMEOUT) as connection:
            connection.send("over unix")
            assert connection.recv(TIMEOUT) == "over unix"
        assert addresses.get(timeout=TIMEOUT) == path
        assert os.path.exists(path)
    assert server.socket.fileno() == -1
    # The socket file went with the server: the path can be served again.
    assert not os.path.exists(path)
    with (
        running(unix_serve(echo, path, close_timeout=2)),
        unix_connect(path, compression=None, open_timeout=TIMEOUT) as connection,
    ):
        connection.send("again")
        assert connection.recv(TIMEOUT) == "again"
    assert not os.path.exists(path)


def test_unix_serve_leaves_a_replaced_socket_file(tmp_path: Path) -> None:
    """A file that took the path after the server bound it is not the server's to remove."""
    path = tmp_path / "ws.sock"
    server = unix_serve(echo, str(path))
    path.unlink()
    path.write_text("someone else's")
    server.shutdown(TIMEOUT)
    assert path.read_text() == "someone else's"


def test_unix_serve_in_use(tmp_path: Path) -> None:
    path = str(tmp_path / "ws.sock")
    with running(unix_serve(echo, path, close_timeout=2)):
        with pytest.raises(OSError, match="in use"):
            unix_serve(echo, path)
        # The failed attempt left the running server's file alone.
        with unix_connect(path, compression=None, open_timeout=TIMEOUT) as connection:
            connection.send("still here")
            assert connection.recv(TIMEOUT) == "still here"


def test_unix_serve_needs_a_path() -> None:
    with pytest.raises(TypeError, match="path"):
        unix_serve(echo)


def test_sock_argument() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    with serving(echo, sock=sock) as server:
        assert server.socket is sock
        with client(server) as connection:
            connection.send("pre-bound")
            assert connection.recv(TIMEOUT) == "pre-bound"
    assert sock.fileno() == -1


def test_context_manager_shuts_down() -> None:
    with serve(echo, "127.0.0.1", 0, close_timeout=2) as server:
        # Not running(): leaving the server's own with block must stop serve_forever().
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        connection = client(server)
        connection.send("in context")
        assert connection.recv(TIMEOUT) == "in context"
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert server.socket.fileno() == -1
    connection.wait_closed(TIMEOUT)
    assert connection.close_code == 1001


def test_serve_forever_twice() -> None:
    with serving(echo) as server:
        assert wait_for(server._serving.is_set)
        with pytest.raises(RuntimeError, match="already running"):
            server.serve_forever()


def test_connections() -> None:
    inside: queue.Queue[bool] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        inside.put(connection in server.connections)
        echo(connection)

    with serving(handler) as server:
        with client(server) as connection:
            assert inside.get(timeout=TIMEOUT)
            assert len(server.connections) == 1
            (server_side,) = server.connections
            assert server_side.remote_address == connection.local_address
        assert wait_for(lambda: not server.connections)


# Handshake options.


def test_server_header_default() -> None:
    with serving(echo) as server, client(server) as connection:
        assert connection.response is not None
        assert connection.response.headers["Server"] == SERVER
        assert SERVER.startswith("Python/")
        assert "syncws/" in SERVER


def test_server_header_none() -> None:
    with serving(echo, server_header=None) as server, client(server) as connection:
        assert connection.response is not None
        assert "Server" not in connection.response.headers
        assert "Date" in connection.response.headers


def test_date_header_is_the_current_time() -> None:
    """The Date header is made once a second: check it follows the clock."""
    with serving(echo) as server:
        for _ in range(2):
            before = int(time.time())
            with client(server) as connection:
                assert connection.response is not None
                date = email.utils.parsedate_to_datetime(connection.response.headers["Date"])
            after = time.time()
            assert before <= date.timestamp() <= after
            assert connection.response.headers["Date"].endswith(" GMT")
            time.sleep(1.1)


def test_server_header_custom() -> None:
    with serving(echo, server_header="mine/1") as server, client(server) as connection:
        assert connection.response is not None
        assert connection.response.headers["Server"] == "mine/1"


def test_extra_headers_mapping() -> None:
    extra = {"X-One": "1", "X-Two": "2"}
    with serving(echo, extra_headers=extra) as server, client(server) as connection:
        assert connection.response is not None
        assert connection.response.headers["X-One"] == "1"
        assert connection.response.headers["X-Two"] == "2"


def test_extra_headers_callable() -> None:
    def extra(connection: ServerConnection) -> dict[str, str]:
        return {"X-Peer-Port": str(connection.remote_address[1])}

    with serving(echo, extra_headers=extra) as server, client(server) as connection:
        assert connection.response is not None
        port = connection.local_address[1]
        assert connection.response.headers["X-Peer-Port"] == str(port)


def test_extra_headers_on_rejections_too() -> None:
    with (
        serving(echo, extra_headers={"X-Always": "yes"}) as server,
        RawPeer.connect(server.port) as raw,
    ):
        raw.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        response = raw.read_response()
    assert response.status == 426
    assert response.headers["x-always"] == "yes"


def test_process_request_health_check() -> None:
    def health_check(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(200, "OK\n")
        return None

    with serving(echo, process_request=health_check) as server:
        with RawPeer.connect(server.port) as raw:
            raw.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            response = raw.read_response()
            raw.wait_eof()
        assert response.status_line == "HTTP/1.1 200 OK"
        assert response.body == b"OK\n"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["connection"] == "close"
        assert response.headers["server"] == SERVER
        # Other paths still upgrade.
        with client(uri(server) + "chat") as connection:
            connection.send("still a websocket")
            assert connection.recv(TIMEOUT) == "still a websocket"


def test_process_request_failing_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="syncws.server")

    def broken(connection: ServerConnection, request: Request) -> Response | None:
        raise RuntimeError("hook bug")

    with serving(echo, process_request=broken) as server:
        with pytest.raises(InvalidStatus) as exc_info:
            client(server)
        assert exc_info.value.response.status_code == 500
    assert "hook bug" in caplog.text


def test_process_response_edits_the_101() -> None:
    def edit(connection: ServerConnection, request: Request, response: Response) -> None:
        assert response.status_code == 101
        response.headers["X-Edited"] = request.path

    with (
        serving(echo, process_response=edit) as server,
        client(uri(server) + "edit") as connection,
    ):
        assert connection.response is not None
        assert connection.response.headers["X-Edited"] == "/edit"
        connection.send("edited")
        assert connection.recv(TIMEOUT) == "edited"


def test_process_response_replaces_the_101() -> None:
    def refuse(connection: ServerConnection, request: Request, response: Response) -> Response:
        return connection.respond(403, "No.\n")

    with serving(echo, process_response=refuse) as server:
        with pytest.raises(InvalidStatus) as exc_info:
            client(server)
        assert exc_info.value.response.status_code == 403
        assert exc_info.value.response.body == b"No.\n"


def test_origins() -> None:
    with serving(echo, origins=["https://good.example"]) as server:
        with client(server, origin="https://good.example") as connection:
            connection.send("welcome")
            assert connection.recv(TIMEOUT) == "welcome"
        with pytest.raises(InvalidStatus) as exc_info:
            client(server, origin="https://evil.example")
        assert exc_info.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as exc_info:
            client(server)
        assert exc_info.value.response.status_code == 403


def test_subprotocols() -> None:
    chosen: queue.Queue[str | None] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        chosen.put(connection.subprotocol)

    with serving(handler, subprotocols=["chat", "superchat"]) as server:
        with client(server, subprotocols=["superchat", "chat"]) as connection:
            assert connection.subprotocol == "chat"
        assert chosen.get(timeout=TIMEOUT) == "chat"
        with pytest.raises(InvalidStatus) as exc_info:
            client(server, subprotocols=["other"])
        assert exc_info.value.response.status_code == 400


def test_select_subprotocol() -> None:
    def last(connection: ServerConnection, offered: Sequence[str]) -> str | None:
        return offered[-1] if offered else None

    with serving(echo, select_subprotocol=last) as server:
        with client(server, subprotocols=["a", "b", "c"]) as connection:
            assert connection.subprotocol == "c"
        with client(server) as connection:
            assert connection.subprotocol is None


def test_compression_negotiated_by_default() -> None:
    extensions: queue.Queue[list[str]] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        extensions.put([extension.name for extension in connection.protocol.extensions])
        echo(connection)

    with serving(handler) as server:
        with ws_client(server, compression="deflate") as connection:
            assert extensions.get(timeout=TIMEOUT) == ["permessage-deflate"]
            message = "compressible " * 1000
            connection.send(message)
            assert connection.recv(TIMEOUT) == message
        with ws_client(server, compression=None):
            assert extensions.get(timeout=TIMEOUT) == []


def test_compression_off() -> None:
    extensions: queue.Queue[list[str]] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        extensions.put([extension.name for extension in connection.protocol.extensions])

    with (
        serving(handler, compression=None) as server,
        ws_client(server, compression="deflate"),
    ):
        assert extensions.get(timeout=TIMEOUT) == []


def test_invalid_arguments_leak_nothing(tmp_path: Path) -> None:
    """The listening socket that serve() or unix_serve() made is closed when they fail."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="compression"):
            serve(echo, "127.0.0.1", 0, compression="gzip")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_connections"):
            serve(echo, "127.0.0.1", 0, max_connections=0)
        with pytest.raises(ValueError, match="max_connections"):
            unix_serve(echo, str(tmp_path / "ws.sock"), max_connections=0)
        gc.collect()
    assert not [warning for warning in caught if warning.category is ResourceWarning]


# Basic authentication.


def whoami(connection: ServerConnection) -> None:
    connection.send(str(connection.username))


def credentials_uri(server: Server, username: str, password: str) -> str:
    return uri(server).replace("ws://", f"ws://{username}:{password}@")


def auth_request(server: Server, authorization: bytes | None) -> RawResponse:
    """Send a handshake request with this Authorization value; return the response."""
    headers = b"" if authorization is None else b"Authorization: " + authorization + b"\r\n"
    with RawPeer.connect(server.port) as raw:
        raw.send(upgrade_request(headers=headers))
        response = raw.read_response()
        if response.status != 101:
            raw.wait_eof()
    return response


def test_basic_auth_credentials_pair() -> None:
    auth = basic_auth(realm="test", credentials=("alice", "secret"))
    with serving(whoami, process_request=auth) as server:
        with client(credentials_uri(server, "alice", "secret")) as connection:
            assert connection.recv(TIMEOUT) == "alice"
        for username, password in [("alice", "wrong"), ("bob", "secret"), ("", "")]:
            with pytest.raises(InvalidStatus) as exc_info:
                client(credentials_uri(server, username, password))
            response = exc_info.value.response
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == 'Basic realm="test", charset="UTF-8"'
        with pytest.raises(InvalidStatus) as exc_info:
            client(server)
        assert exc_info.value.response.status_code == 401
        assert exc_info.value.response.body == b"Missing credentials\n"


def test_basic_auth_credentials_list() -> None:
    auth = basic_auth(credentials=[("alice", "a"), ("bob", "b"), ("carol", "c:d")])
    with serving(whoami, process_request=auth) as server:
        for username, password in [("alice", "a"), ("bob", "b"), ("carol", "c:d")]:
            with client(credentials_uri(server, username, password)) as connection:
                assert connection.recv(TIMEOUT) == username
        for username, password in [("alice", "b"), ("bob", "a"), ("carol", "c")]:
            with pytest.raises(InvalidStatus) as exc_info:
                client(credentials_uri(server, username, password))
            assert exc_info.value.response.status_code == 401
            assert exc_info.value.response.body == b"Invalid credentials\n"


def test_basic_auth_check_credentials() -> None:
    checked: list[tuple[str, str]] = []

    def check(username: str, password: str) -> bool:
        checked.append((username, password))
        return password == username[::-1]

    with serving(whoami, process_request=basic_auth(check_credentials=check)) as server:
        with client(credentials_uri(server, "stressed", "desserts")) as connection:
            assert connection.recv(TIMEOUT) == "stressed"
        with pytest.raises(InvalidStatus) as exc_info:
            client(credentials_uri(server, "stressed", "stressed"))
        assert exc_info.value.response.status_code == 401
    assert checked == [("stressed", "desserts"), ("stressed", "stressed")]


@pytest.mark.parametrize(
    ("credentials", "check"),
    [
        (None, None),
        (("a", "b"), lambda username, password: True),
    ],
)
def test_basic_auth_needs_one_source(
    credentials: tuple[str, str] | None, check: Callable[[str, str], bool] | None
) -> None:
    with pytest.raises(TypeError, match="either"):
        basic_auth(credentials=credentials, check_credentials=check)


@pytest.mark.parametrize(
    "credentials",
    [[("alice",)], [("alice", "a", "b")], [("alice", 1)], ["alice"], [["alice", "a"]]],
)
def test_basic_auth_invalid_credentials(credentials: Any) -> None:
    with pytest.raises(TypeError, match="invalid credentials"):
        basic_auth(credentials=credentials)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param(b"Basic " + b64(b"alice:wrong"), id="wrong-password"),
        pytest.param(b"Basic " + b64(b"mallory:secret"), id="wrong-user"),
        pytest.param(b"Basic !!!", id="not-base64"),
        pytest.param(b"Basic " + b64(b"nocolon"), id="no-colon"),
        pytest.param(b"Basic " + b64(b"\xff\xfe:\xc3\x28"), id="not-utf8"),
        pytest.param(b"Basic " + b64(b"alice:se\x00cret"), id="control-character"),
        pytest.param(b"Basic " + b64(b"\xff" * 6000), id="8KiB"),
        pytest.param(b"Basic " + b64(b"alice:" + b"x" * 6000), id="8KiB-colon"),
        pytest.param(b"Bearer x", id="bearer"),
        pytest.param(b"Basic", id="no-token"),
        pytest.param(b"Basic YWxpY2U6c2VjcmV0 extra", id="trailing-data"),
        pytest.param(b"Basic YWxpY2U6c2VjcmV0===", id="bad-padding"),
        pytest.param(b"", id="empty"),
    ],
)
def test_basic_auth_rejects_with_401(
    authorization: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    """A3: anything but valid credentials gets 401 with a challenge, never a 500."""
    caplog.set_level(logging.ERROR, logger="syncws.server")
    auth = basic_auth(realm="test", credentials=("alice", "secret"))
    with serving(whoami, process_request=auth) as server:
        response = auth_request(server, authorization)
        assert response.status == 401, response.body
        assert response.headers["www-authenticate"] == 'Basic realm="test", charset="UTF-8"'
        # Valid credentials still work.
        with client(credentials_uri(server, "alice", "secret")) as connection:
            assert connection.recv(TIMEOUT) == "alice"
    assert not caplog.records


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(b"Basic \xff\xfe", id="raw-non-ascii"),
        pytest.param(b"Basic " + b"A" * 8192, id="line-too-long"),
    ],
)
def test_basic_auth_hostile_header_never_500(
    authorization: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="syncws.server")
    auth = basic_auth(credentials=("alice", "secret"))
    with serving(whoami, process_request=auth) as server:
        response = auth_request(server, authorization)
    assert response.status in (400, 401, 431), response.status_line
    assert not caplog.records


def test_basic_auth_duplicate_header() -> None:
    auth = basic_auth(credentials=("alice", "secret"))
    value = b"Basic " + b64(b"alice:secret")
    with serving(whoami, process_request=auth) as server:
        response = auth_request(server, value + b"\r\nAuthorization: " + value)
    assert response.status == 401


class FakeConnection:
    """Just enough of a ServerConnection for calling a process_request hook directly."""

    def __init__(self) -> None:
        self.username: str | None = None

    def respond(self, status: int, text: str) -> Response:
        return ServerProtocol().reject(status, text)


@pytest.mark.parametrize("pairs", [1, 3, 10])
def test_basic_auth_compares_every_pair(pairs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A2: user and password digests are compared against every pair, whatever the input.

    Constant time by construction: the number of compare_digest calls doesn't depend on
    whether the user exists, nor on where a password differs. No timing is measured.
    """
    compared: list[tuple[bytes, bytes]] = []
    real_compare_digest = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real_compare_digest(a, b)

    monkeypatch.setattr("syncws.auth.hmac.compare_digest", counting)
    credentials = [(f"user{index}", f"password{index}") for index in range(pairs)]
    auth = basic_auth(credentials=credentials)
    last_user, last_password = credentials[-1]
    cases = {
        "valid first": ("user0", "password0", True),
        "valid last": (last_user, last_password, True),
        "unknown user": ("nobody", "password0", False),
        "first byte differs": ("user0", "Xassword0", False),
        "last byte differs": ("user0", "passwordX", False),
        "empty": ("", "", False),
        "long": ("user0" * 100, "password0" * 100, False),
    }
    for name, (username, password, valid) in cases.items():
        compared.clear()
        connection = FakeConnection()
        authorization = "Basic " + b64(f"{username}:{password}".encode()).decode()
        request = Request("/", Headers({"Authorization": authorization}))
        response = auth(cast(ServerConnection, connection), request)
        assert (response is None) is valid, name
        assert connection.username == (username if valid else None), name
        assert len(compared) == 2 * pairs, name
        # Digests of equal length: compare_digest's time doesn't depend on the input's.
        assert {len(a) for a, _ in compared} == {32}, name
        assert {len(b) for _, b in compared} == {32}, name


# Slow and silent clients (H4).


def closed_after(raw: RawPeer, start: float, send: Callable[[int], bytes] | None) -> float:
    """Wait until the server closes the connection, sending ``send(n)`` every 0.2 s.

    Returns the seconds between ``start`` and the close.
    """
    deadline = time.monotonic() + TIMEOUT
    count = 0
    while time.monotonic() < deadline:
        readable, _, _ = select.select([raw.sock], [], [], 0.2)
        if readable:
            try:
                data = raw.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            assert not data, f"unexpected answer: {data!r}"
            return time.monotonic() - start
        if send is not None:
            try:
                raw.sock.sendall(send(count))
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
            count += 1
    raise AssertionError("the server did not close the connection")


@pytest.mark.parametrize(
    ("first", "more"),
    [
        pytest.param(
            b"GET / HTTP/1.1\r\n", lambda n: f"X-Slow-{n}: {n}\r\n".encode(), id="slowloris"
        ),
        pytest.param(b"", None, id="silent"),
    ],
)
def test_closed_at_open_timeout(first: bytes, more: Callable[[int], bytes] | None) -> None:
    """H4: a silent connection, or header lines that keep coming, don't extend the handshake
    deadline."""
    with serving(echo, open_timeout=1, max_connections=1) as server:
        with RawPeer.connect(server.port) as raw:
            start = time.monotonic()
            raw.send(first)
            elapsed = closed_after(raw, start, more)
        assert 0.8 <= elapsed <= 4, elapsed
        # The only worker is free again.
        wait_idle(server)
        with client(server) as connection:
            connection.send("after the timeout")
            assert connection.recv(TIMEOUT) == "after the timeout"


def test_open_timeout_none_waits() -> None:
    """Without open_timeout, a slow request still completes."""
    with serving(echo, open_timeout=None) as server, RawPeer.connect(server.port) as raw:
        request = upgrade_request()
        for index in range(0, len(request), 16):
            raw.send(request[index : index + 16])
            time.sleep(0.01)
        response = raw.read_response()
        assert response.status == 101
        raw.send_frame(0x8, close_payload(1000))
        assert raw.read_close()[0].close_code == 1000


# TLS (T1, T2).


@pytest.fixture(scope="module")
def certificate() -> Certificate:
    return make_certificate()


@pytest.fixture
def tls_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert, certificate.key)
    return context


def tls_client(server: Server, certificate: Certificate) -> ClientConnection:
    return client(
        uri(server, "wss"),
        ssl=ssl.create_default_context(cafile=str(certificate.cert)),
        server_hostname="localhost",
    )


def client_hello() -> bytes:
    """The bytes of a real TLS ClientHello."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16"
    return hello


def test_wss(tls_context: ssl.SSLContext, certificate: Certificate) -> None:
    with serving(echo, ssl=tls_context) as server:
        connection = tls_client(server, certificate)
        assert connection.transport.__class__.__name__ == "TLSTransport"
        exchange(connection)


def test_wss_large_messages(tls_context: ssl.SSLContext, certificate: Certificate) -> None:
    # Large payloads are read through TLS straight into the bytes of the message, both ways.
    with serving(echo, ssl=tls_context) as server:
        connection = tls_client(server, certificate)
        try:
            for message in (os.urandom(300_000), "é" * 2**19, os.urandom(2**20)):
                connection.send(message)
                assert connection.recv(TIMEOUT) == message
        finally:
            connection.close()


@pytest.mark.parametrize(
    "first_bytes",
    [pytest.param(b"\x16\x03\x01\x00\xff", id="partial-record"), pytest.param(b"", id="silent")],
)
def test_tls_stall_closed_at_open_timeout(
    first_bytes: bytes, tls_context: ssl.SSLContext, certificate: Certificate
) -> None:
    """T1: a TLS handshake that stalls is closed at open_timeout, and frees its worker."""
    with serving(echo, ssl=tls_context, open_timeout=1, max_connections=1) as server:
        with RawPeer.connect(server.port) as raw:
            start = time.monotonic()
            if first_bytes:
                raw.send(first_bytes)
            elapsed = closed_after(raw, start, None)
        assert 0.8 <= elapsed <= 4, elapsed
        wait_idle(server)
        with tls_client(server, certificate) as connection:
            connection.send("after stall")
            assert connection.recv(TIMEOUT) == "after stall"


def test_plain_http_to_tls_port(
    tls_context: ssl.SSLContext, certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    """T2: plain HTTP on the TLS port fails the TLS handshake at once, quietly."""
    caplog.set_level(logging.ERROR, logger="syncws.server")
    with serving(echo, ssl=tls_context, open_timeout=5, max_connections=1) as server:
        with RawPeer.connect(server.port) as raw:
            start = time.monotonic()
            raw.send(upgrade_request())
            closed = raw.wait_eof()
        assert closed - start < 2.5
        wait_idle(server)
        with tls_client(server, certificate) as connection:
            connection.send("still TLS")
            assert connection.recv(TIMEOUT) == "still TLS"
    assert not caplog.records


def test_tls_to_plain_port(caplog: pytest.LogCaptureFixture) -> None:
    """T2: a ClientHello on the plain port gets 400, or is closed by open_timeout."""
    caplog.set_level(logging.ERROR, logger="syncws.server")
    with serving(echo, open_timeout=1, max_connections=1) as server:
        with RawPeer.connect(server.port) as raw:
            start = time.monotonic()
            raw.send(client_hello())
            data = raw.read_all()
            elapsed = time.monotonic() - start
        if data:
            # A line feed among the ClientHello's random bytes ended a "request line".
            assert data.startswith(b"HTTP/1.1 400 "), data
            assert elapsed < 0.9
        else:
            assert elapsed <= 4
        wait_idle(server)
        with client(server) as connection:
            connection.send("still plain")
            assert connection.recv(TIMEOUT) == "still plain"
    assert not caplog.records


def test_random_bytes_to_tls_port(
    tls_context: ssl.SSLContext, certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    """T2: 64 KiB of noise on the TLS port is closed; the server keeps serving."""
    caplog.set_level(logging.ERROR, logger="syncws.server")
    noise = random.Random(6455).randbytes(2**16)
    with serving(echo, ssl=tls_context, open_timeout=5, max_connections=1) as server:
        with RawPeer.connect(server.port) as raw:
            start = time.monotonic()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                raw.send(noise)
            closed = raw.wait_eof()
        assert closed - start < 2.5
        wait_idle(server)
        with tls_client(server, certificate) as connection:
            connection.send("after noise")
            assert connection.recv(TIMEOUT) == "after noise"
    assert not caplog.records


# A full worker pool (X1).


def hold(connection: ServerConnection) -> None:
    """A handler that keeps the connection until the client closes it."""
    for _ in connection:
        pass


def test_busy_server_answers_503() -> None:
    baseline = threading.active_count()
    with serving(echo, max_connections=2) as server:
        first = client(server)
        second = client(server)
        try:
            assert wait_for(lambda: len(server.connections) == 2)
            with RawPeer.connect(server.port) as raw:
                start = time.monotonic()
                response = raw.read_response()
                assert time.monotonic() - start < 2
                raw.wait_eof()
            assert response.status_line == "HTTP/1.1 503 Service Unavailable"
            assert response.headers["retry-after"] == "1"
            assert response.headers["connection"] == "close"
            assert response.body == b"Server is busy; try again later.\n"
            with pytest.raises(InvalidStatus) as exc_info:
                client(server)
            assert exc_info.value.response.status_code == 503
            assert exc_info.value.response.headers["Retry-After"] == "1"
            # Two server workers and their two readers, the clients' readers, the thread
            # running serve_forever() and the timer thread.
            assert threading.active_count() <= baseline + 2 * 2 + 4
        finally:
            first.close()
            second.close()
        wait_idle(server)
        with client(server) as connection:
            connection.send("served")
            assert connection.recv(TIMEOUT) == "served"


def test_busy_tls_server_closes_at_once(
    tls_context: ssl.SSLContext, certificate: Certificate
) -> None:
    """Over TLS, a full server closes new connections at once, without a TLS handshake."""
    with (
        serving(echo, ssl=tls_context, max_connections=1) as server,
        tls_client(server, certificate),
    ):
        assert wait_for(lambda: len(server.connections) == 1)
        with RawPeer.connect(server.port) as raw:
            start = time.monotonic()
            assert raw.read_all() == b""
            assert time.monotonic() - start < 2


def test_idle_connections_get_503_or_time_out() -> None:
    """X1: 100 connections that never send a byte, against 8 workers."""
    baseline = threading.active_count()
    with serving(echo, max_connections=8, open_timeout=1) as server:
        raws: list[RawPeer] = []
        try:
            for _ in range(100):
                raws.append(RawPeer.connect(server.port))
            start = time.monotonic()
            outcomes: dict[RawPeer, bytes] = {}
            with selectors.DefaultSelector() as selector:
                for raw in raws:
                    raw.sock.setblocking(False)
                    selector.register(raw.sock, selectors.EVENT_READ, raw)
                deadline = start + TIMEOUT
                while len(outcomes) < len(raws) and time.monotonic() < deadline:
                    assert threading.active_count() <= baseline + 8 + 4
                    for key, _ in selector.select(0.1):
                        raw = key.data
                        try:
                            data = raw.sock.recv(65536)
                        except ConnectionResetError:
                            data = b""
                        raw.buffer += data
                        if not data:
                            selector.unregister(raw.sock)
                            outcomes[raw] = bytes(raw.buffer)
            elapsed = time.monotonic() - start
        finally:
            for raw in raws:
                raw.close()
        assert len(outcomes) == 100, "some connections stayed open"
        answered = [data for data in outcomes.values() if data]
        timed_out = len(outcomes) - len(answered)
        assert all(data.startswith(b"HTTP/1.1 503 ") for data in answered)
        # The first 8 took the workers and were closed by the timeout; the others were
        # answered at once. A worker that became free again may have taken a few more.
        assert 8 <= timed_out <= 50, timed_out
        assert len(answered) >= 50
        assert elapsed <= 1 + 3 * (timed_out // 8 + 1), elapsed
        wait_idle(server)
        with client(server) as connection:
            connection.send("legitimate")
            assert connection.recv(TIMEOUT) == "legitimate"


# Shutting down (X4).


def test_shutdown_right_after_the_handshake() -> None:
    """A connection whose 101 went out just before shutdown() still gets a Close 1001."""
    for _ in range(20):
        with serving(echo) as server:
            connection = client(server, ping_interval=None)
            server.shutdown(TIMEOUT)
            with pytest.raises(ConnectionClosedOK) as exc_info:
                connection.recv(TIMEOUT)
            assert exc_info.value.code == 1001
            connection.close()


def test_serve_forever_after_close() -> None:
    """serve_forever() on a server closed before it started returns at once."""
    server = serve(echo, "127.0.0.1", 0)
    server.close()
    server.serve_forever()
    assert server.socket.fileno() == -1
    server.wait_closed(TIMEOUT)


def test_shutdown_in_the_accept_loop_thread_while_it_holds_the_lock() -> None:
    """As from a signal handler that lands while the accept loop holds the server's lock:
    shutdown() returns at once, and serve_forever() returns once the shutdown is done."""
    server = serve(echo, "127.0.0.1", 0, close_timeout=2)
    accept = server._accept
    returned: list[float] = []

    def accept_and_signal() -> None:
        with server._lock:
            start = time.monotonic()
            server.shutdown(TIMEOUT)
            returned.append(time.monotonic() - start)
        accept()

    server._accept = accept_and_signal  # type: ignore[method-assign]
    # Not running(): the test joins serve_forever()'s thread while the shutdown is under way.
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with RawPeer.connect(server.port) as raw:
            raw.send(upgrade_request())
            thread.join(TIMEOUT)
            assert not thread.is_alive(), "serve_forever() did not return"
            assert raw.read_response().status == 503
    finally:
        server.shutdown(TIMEOUT)
        thread.join(TIMEOUT)
    assert returned
    assert returned[0] < 1
    assert server._stopped.is_set()
    assert not worker_threads()


def test_worker_thread_names() -> None:
    names: queue.Queue[str] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        names.put(threading.current_thread().name)

    with serving(handler) as server, client(server):
        assert re.fullmatch(r"syncws-worker-\d+", names.get(timeout=TIMEOUT))


def test_idle_worker_takes_the_next_connection() -> None:
    """A worker that finished waits for the next connection: no new thread per connection,
    and the one that became idle last is used first."""
    names: queue.Queue[str] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        names.put(threading.current_thread().name)
        connection.recv(TIMEOUT)

    with serving(handler, max_connections=4) as server:
        # Two at once: two threads.
        with client(server) as first, client(server) as second:
            pair = {names.get(timeout=TIMEOUT), names.get(timeout=TIMEOUT)}
            assert pair == {"syncws-worker-0", "syncws-worker-1"}
            first.send("done")
            first.wait_closed(TIMEOUT)
            assert wait_for(lambda: len(server._workers._idle) == 1)
            # One after the other, while the second runs: always the first thread.
            for _ in range(3):
                with client(server) as connection:
                    assert names.get(timeout=TIMEOUT) == "syncws-worker-0"
                    connection.send("done")
                    connection.wait_closed(TIMEOUT)
                assert wait_for(lambda: len(server._workers._idle) == 1)
            second.send("done")
        wait_idle(server)
        workers = [t for t in threading.enumerate() if t.name.startswith("syncws-worker")]
        assert sorted(t.name for t in workers) == ["syncws-worker-0", "syncws-worker-1"]
        # Daemons: an idle worker never keeps the process from exiting.
        assert all(thread.daemon for thread in workers)
    assert not worker_threads()


def test_busy_log_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """Under a flood of connections that find every worker busy, one line a second."""
    caplog.set_level(logging.WARNING, logger="syncws.server")
    with serving(echo, max_connections=1) as server, client(server):
        assert wait_for(lambda: len(server.connections) == 1)
        for _ in range(30):
            with RawPeer.connect(server.port) as raw:
                assert raw.read_response().status == 503
        time.sleep(1.1)
        with RawPeer.connect(server.port) as raw:
            assert raw.read_response().status == 503
    lines = [r.getMessage() for r in caplog.records if "every worker is busy" in r.getMessage()]
    # The first line, then at most one per second; the last one counts those held back.
    assert 2 <= len(lines) < 10, lines
    assert re.search(r"\((\d+) more since the last report\)$", lines[-1]), lines


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_shutdown_during_handshake(family: str, tmp_path: Path) -> None:
    """A handshake in progress is answered with 503 at once, not after open_timeout."""
    if family == "unix":
        path = str(tmp_path / "ws.sock")
        server = unix_serve(echo, path, open_timeout=TIMEOUT, close_timeout=2)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
    else:
        server = serve(echo, "127.0.0.1", 0, open_timeout=TIMEOUT, close_timeout=2)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with running(server), RawPeer(sock, client=True) as raw:
        sock.connect(path if family == "unix" else ("127.0.0.1", server.port))
        raw.send(upgrade_request()[:30])
        assert wait_for(lambda: server._active == 1)
        start = time.monotonic()
        server.shutdown()
        assert time.monotonic() - start < 3
        response = raw.read_response()
        assert response.status == 503
        assert response.body == b"Server is shutting down.\n"
        raw.wait_eof()


@pytest.mark.parametrize("stage", ["tls-handshake", "http-request"])
def test_shutdown_during_tls_handshake(
    stage: str, tls_context: ssl.SSLContext, certificate: Certificate
) -> None:
    """Over TLS too, shutdown() doesn't wait for open_timeout."""
    server = serve(echo, "127.0.0.1", 0, ssl=tls_context, open_timeout=TIMEOUT, close_timeout=2)
    with running(server), RawPeer.connect(server.port) as raw:
        tls: ssl.SSLSocket | None = None
        if stage == "http-request":
            context = ssl.create_default_context(cafile=str(certificate.cert))
            tls = context.wrap_socket(raw.sock, server_hostname="localhost")
            tls.sendall(upgrade_request()[:30])
        assert wait_for(lambda: server._active == 1)
        start = time.monotonic()
        server.shutdown()
        assert time.monotonic() - start < 3
        if tls is not None:
            with tls:
                data = b""
                with contextlib.suppress(ssl.SSLError, ConnectionResetError):
                    while chunk := tls.recv(65536):
                        data += chunk
            assert not data or data.startswith(b"HTTP/1.1 503 "), data
        else:
            raw.wait_eof()


def test_half_close_during_handshake(caplog: pytest.LogCaptureFixture) -> None:
    """A client that ends its side in the middle of the request is closed, quietly."""
    caplog.set_level(logging.ERROR, logger="syncws.server")
    with serving(echo, max_connections=1) as server:
        with RawPeer.connect(server.port) as raw:
            raw.send(upgrade_request()[:30])
            raw.sock.shutdown(socket.SHUT_WR)
            raw.wait_eof()
        wait_idle(server)
        with client(server) as connection:
            connection.send("next")
            assert connection.recv(TIMEOUT) == "next"
    assert not caplog.records


def server_readers(connections: Sequence[ServerConnection]) -> list[threading.Thread]:
    names = {f"syncws-reader-{connection.id.hex[:8]}" for connection in connections}
    return [thread for thread in threading.enumerate() if thread.name in names]


def test_shutdown_closes_connections_with_1001() -> None:
    opened: queue.Queue[ServerConnection] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        opened.put(connection)
        echo(connection)

    fds = count_fds()
    server = serve(handler, "127.0.0.1", 0, close_timeout=2)
    with running(server), ws_client(server) as theirs:
        ours = client(server)
        ours.send("syncws")
        assert ours.recv(TIMEOUT) == "syncws"
        theirs.send("websockets")
        assert theirs.recv(TIMEOUT) == "websockets"
        server_side = [opened.get(timeout=TIMEOUT), opened.get(timeout=TIMEOUT)]
        assert len(server.connections) == 2
        server.shutdown()
        # Every handler returned, and every worker and reader of the server is gone.
        assert not [thread for thread in threading.enumerate() if "worker" in thread.name]
        assert not server_readers(server_side)
        assert not server.connections
        assert all(connection.closed for connection in server_side)
        assert server.socket.fileno() == -1
        ours.wait_closed(TIMEOUT)
        assert ours.close_code == 1001
        with pytest.raises(WSConnectionClosedOK):
            theirs.recv(TIMEOUT)
        assert theirs.protocol.close_rcvd is not None
        assert theirs.protocol.close_rcvd.code == 1001
        theirs.close()
        # The clients closed their sockets: nothing of the server is left.
        assert count_fds() <= fds + 0
        # Shutting down again does nothing.
        server.shutdown()


def test_shutdown_timeout_aborts_a_peer_that_never_closes() -> None:
    """shutdown(timeout) aborts a connection whose peer ignores the Close, at the timeout."""
    server = serve(hold, "127.0.0.1", 0, close_timeout=TIMEOUT, ping_interval=None)
    with running(server), RawPeer.connect(server.port) as raw:
        raw.handshake()
        assert wait_for(lambda: len(server.connections) == 1)
        start = time.monotonic()
        server.shutdown(timeout=0.5)
        elapsed = time.monotonic() - start
        assert 0.4 <= elapsed < 3, elapsed
        assert raw.read_close()[0].close_code == 1001
        assert raw.read_frame() is None
        assert not worker_threads()


def test_shutdown_timeout_with_a_handler_that_ignores_the_close() -> None:
    """The connection is aborted at the timeout; shutdown() still waits for the handler."""
    release = threading.Event()
    running_handler = threading.Event()

    def stubborn(connection: ServerConnection) -> None:
        running_handler.set()
        release.wait(TIMEOUT)

    server = serve(stubborn, "127.0.0.1", 0, close_timeout=TIMEOUT, ping_interval=None)
    with running(server), RawPeer.connect(server.port) as raw:
        raw.handshake()
        assert running_handler.wait(TIMEOUT)
        start = time.monotonic()
        stopper = threading.Thread(target=server.shutdown, kwargs={"timeout": 0.5})
        stopper.start()
        try:
            assert raw.read_close()[0].close_code == 1001
            assert raw.read_frame() is None
            assert 0.4 <= time.monotonic() - start < 3
            # The handler still runs, and shutdown() waits for it.
            assert stopper.is_alive()
        finally:
            release.set()
            stopper.join(TIMEOUT)
        assert not stopper.is_alive()
        assert not worker_threads()


def serve_with_signal(
    server: Server, on_signal: Callable[[int, object], None], peer: Callable[[], None]
) -> bool:
    """Run ``server.serve_forever()`` in this thread, with ``on_signal`` handling SIGUSR1 and
    ``peer`` running in another thread; shut the server down after.

    Returns:
        Whether serve_forever() returned by itself: a watchdog closes the server after
        TIMEOUT, so that a test fails rather than hangs.
    """
    # serve_forever() runs in this thread, not in one of running(): Python runs signal
    # handlers in the main thread only.
    previous = signal.signal(signal.SIGUSR1, on_signal)
    watchdog = threading.Timer(TIMEOUT, server.close)
    thread = threading.Thread(target=peer)
    try:
        watchdog.start()
        thread.start()
        server.serve_forever()
        return watchdog.is_alive()
    finally:
        watchdog.cancel()
        watchdog.join(TIMEOUT)
        thread.join(TIMEOUT)
        signal.signal(signal.SIGUSR1, previous)
        server.shutdown()


def test_shutdown_from_a_signal_handler() -> None:
    """shutdown() in a signal handler of the thread running serve_forever() returns."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread")
    server = serve(echo, "127.0.0.1", 0, close_timeout=2)
    codes: queue.Queue[int | None] = queue.Queue()
    main = threading.get_ident()

    def stop(signum: int, frame: object) -> None:
        server.shutdown()

    def client_then_signal() -> None:
        with client(server) as connection:
            connection.send("before the signal")
            assert connection.recv(TIMEOUT) == "before the signal"
            signal.pthread_kill(main, signal.SIGUSR1)
            connection.wait_closed(TIMEOUT)
            codes.put(connection.close_code)

    start = time.monotonic()
    assert serve_with_signal(server, stop, client_then_signal)
    assert time.monotonic() - start < TIMEOUT
    assert codes.get(timeout=TIMEOUT) == 1001
    assert server.socket.fileno() == -1
    assert not worker_threads()


def test_signal_taken_by_another_thread_still_stops_the_accept_loop() -> None:
    """A signal may land in any thread; its handler runs in the main thread, and must run
    while serve_forever() blocks there, not at the next connection."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread")
    server = serve(echo, "127.0.0.1", 0)
    handled = threading.Event()

    def stop(signum: int, frame: object) -> None:
        handled.set()
        server.shutdown()

    def signal_this_thread() -> None:
        # The kernel runs the low-level handler in this thread; the main thread's poll()
        # is not interrupted, and only the wakeup fd can tell it.
        if server._serving.wait(TIMEOUT):
            time.sleep(0.2)  # let serve_forever() block in poll()
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

    # Without the wakeup fd, only the watchdog's close() ended the loop.
    assert serve_with_signal(server, stop, signal_this_thread)
    assert handled.is_set()
    assert signal.set_wakeup_fd(-1) == -1  # serve_forever() gave the wakeup fd back
    assert not worker_threads()


# The closing handshake and keepalive against a raw client (L5, L6).


def test_close_timeout_aborts_a_peer_that_never_answers() -> None:
    """L5: the handler returned and the peer never answers the Close nor closes TCP."""

    def handler(connection: ServerConnection) -> None:
        pass

    with serving(handler, close_timeout=0.5, max_connections=1, ping_interval=None) as server:
        with RawPeer.connect(server.port) as raw:
            raw.handshake()
            assert raw.read_close()[0].close_code == 1000
            start = time.monotonic()
            assert raw.read_frame() is None
            elapsed = time.monotonic() - start
        assert 0.3 <= elapsed < 3, elapsed
        wait_idle(server)
        with client(server) as connection:
            connection.wait_closed(TIMEOUT)
            assert connection.close_code == 1000


def test_keepalive_fails_a_silent_peer_with_1011() -> None:
    """L6: pings go unanswered: the server closes with 1011 and frees the worker."""
    with serving(
        hold, ping_interval=0.2, ping_timeout=0.3, close_timeout=0.5, max_connections=1
    ) as server:
        with RawPeer.connect(server.port) as raw:
            raw.handshake()
            start = time.monotonic()
            close, _ = raw.read_close()
            elapsed = time.monotonic() - start
            assert close.close_code == 1011
            assert close.payload[2:] == b"keepalive ping timeout"
            assert raw.read_frame() is None
        assert 0.3 <= elapsed < 3, elapsed
        wait_idle(server)
        assert not server.connections


# Out of file descriptors (R5).

FD_EXHAUSTION_SERVER = """
import logging
import resource
import sys
import threading

from syncws.server import serve

logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))


def echo(connection):
    for message in connection:
        connection.send(message)


server = serve(
    echo, "127.0.0.1", 0, max_connections=200, open_timeout=None, ping_interval=None,
    close_timeout=2,
)
thread = threading.Thread(target=server.serve_forever)
thread.start()
print(server.port, flush=True)
sys.stdin.readline()
server.shutdown(timeout=5)
thread.join(10)
print("alive" if thread.is_alive() else "stopped", flush=True)
"""


def read_line(stream: Any, timeout: float = TIMEOUT) -> str:
    """Read a line from a subprocess's pipe, within ``timeout``."""
    readable, _, _ = select.select([stream], [], [], timeout)
    assert readable, "the subprocess printed nothing in time"
    line: str = stream.readline()
    return line


def test_accept_out_of_file_descriptors(tmp_path: Path) -> None:
    """R5: accept() fails with EMFILE: logged, and the server keeps serving."""
    script = tmp_path / "server.py"
    script.write_text(FD_EXHAUSTION_SERVER)
    log = tmp_path / "stderr.txt"
    env = dict(os.environ)
    # The subprocess imports the syncws that the tests import.
    package_root = str(Path(syncws.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None
    assert stdout is not None
    raws: list[RawPeer] = []
    try:
        port = int(read_line(stdout))
        with client(f"ws://127.0.0.1:{port}/") as before:
            before.send("before")
            assert before.recv(TIMEOUT) == "before"
            # More connections than the server has descriptors for; they wait in the
            # backlog once it can't accept anymore.
            for _ in range(80):
                raws.append(RawPeer.connect(port))
            assert wait_for(lambda: "accept failed" in log.read_text(), TIMEOUT), log.read_text()
            # Open connections are still served.
            before.send("during")
            assert before.recv(TIMEOUT) == "during"
            # Free some descriptors: the server accepts again.
            for raw in raws[:40]:
                raw.close()
            with client(f"ws://127.0.0.1:{port}/") as after:
                after.send("after")
                assert after.recv(TIMEOUT) == "after"
        for raw in raws:
            raw.close()
        stdin.write("stop\n")
        stdin.flush()
        assert read_line(stdout) == "stopped\n"
        assert process.wait(TIMEOUT) == 0
    finally:
        for raw in raws:
            raw.close()
        if process.poll() is None:
            process.kill()
        process.wait(TIMEOUT)
        stdin.close()
        stdout.close()
    errors = log.read_text()
    assert "ERROR syncws.server accept failed: [Errno 24] Too many open files" in errors
    assert "Traceback" not in errors


# Many connections.


@contextlib.contextmanager
def raised_fd_limit(wanted: int) -> Iterator[int]:
    """Raise the soft RLIMIT_NOFILE towards ``wanted``, as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = soft
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield target
    finally:
        if target != soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_raw_connections(port: int | None, count: int, batch: int = 100) -> list[RawPeer]:
    """Open ``count`` WebSocket connections with raw sockets, a batch at a time."""
    raws: list[RawPeer] = []
    try:
        while len(raws) < count:
            group = [RawPeer.connect(port) for _ in range(min(batch, count - len(raws)))]
            raws.extend(group)
            for raw in group:
                raw.send(upgrade_request())
            for raw in group:
                response = raw.read_response()
                assert response.status == 101, response.status_line
    except BaseException:
        for raw in raws:
            raw.close()
        raise
    return raws


def test_thousand_connections() -> None:
    """1000 open connections; shutdown() closes them all with 1001 and frees everything."""
    with raised_fd_limit(4096) as limit:
        # Each connection takes two descriptors here: the client's and the server's.
        count = min(1000, (limit - count_fds() - 100) // 2)
        note = f"{count} connections (RLIMIT_NOFILE {limit})"
        assert count >= 100, f"only {note} fit"
        server = serve(
            hold,
            "127.0.0.1",
            0,
            max_connections=count + 100,
            ping_interval=None,
            close_timeout=2,
            backlog=1024,
        )
        with running(server):
            raws = open_raw_connections(server.port, count)
            try:
                assert wait_for(lambda: len(server.connections) == count, TIMEOUT), note
                # One thread per connection, the handler's, which reads the socket itself
                # while it waits in recv(); a reader thread only where a handler was slow
                # to start receiving on a loaded machine.
                assert count <= len(worker_threads()) <= 2 * count, note
                stopper = threading.Thread(target=server.shutdown)
                stopper.start()
                try:
                    for raw in raws:
                        close, _ = raw.read_close()
                        assert close.close_code == 1001, note
                        raw.send_frame(0x8, close.payload)
                        raw.close()
                finally:
                    stopper.join(TIMEOUT)
                assert not stopper.is_alive(), note
                assert not server.connections
                assert not worker_threads(), note
            finally:
                for raw in raws:
                    raw.close()


def test_threads_per_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler that waits in recv() is the connection's only thread. A handler that stops
    receiving gets a reader thread, which ends once the handler receives again."""
    monkeypatch.setattr(syncws.reading, "READER_LINGER", 0.2)
    count = 10
    go = threading.Event()

    def late(connection: ServerConnection) -> None:
        go.wait(TIMEOUT)
        for message in connection:
            connection.send(message)

    def threads(prefix: str) -> int:
        return sum(thread.name.startswith(prefix) for thread in threading.enumerate())

    with serving(late, ping_interval=None) as server:
        raws = open_raw_connections(server.port, count)
        try:
            assert wait_for(lambda: len(server.connections) == count, TIMEOUT)
            assert threads("syncws-worker") == count
            # Nobody receives: each connection gets a reader thread, so that control
            # frames are still answered.
            assert wait_for(lambda: threads("syncws-reader") == count, TIMEOUT)
            for raw in raws:
                raw.send_frame(0x9, b"ping")
                assert raw.read_frame() == RawFrame(0xA, True, b"ping")
            go.set()
            # Once a reader thread hands a message to a handler that waits for it, the
            # handler reads the socket itself, and the reader thread ends.
            deadline = time.monotonic() + TIMEOUT
            while threads("syncws-reader") and time.monotonic() < deadline:
                for raw in raws:
                    raw.send_frame(0x1, b"back")
                    assert raw.read_frame() == RawFrame(0x1, True, b"back")
                time.sleep(0.05)
            assert threads("syncws-reader") == 0
            assert threads("syncws-worker") == count
            for raw in raws:
                raw.send_frame(0x1, b"again")
                assert raw.read_frame() == RawFrame(0x1, True, b"again")
            assert threads("syncws-reader") == 0
        finally:
            for raw in raws:
                raw.close()


# Broadcast.


class Readers:
    """Read 1 KiB binary messages on many raw connections in one thread; check their order.

    Each message starts with its sequence number, 4 bytes big-endian.
    """

    def __init__(self, raws: Sequence[RawPeer]) -> None:
        self.raws = list(raws)
        self.received = dict.fromkeys(range(len(self.raws)), 0)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-readers")

    def __enter__(self) -> Readers:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()

    def least(self) -> int:
        return min(self.received.values())

    def _run(self) -> None:
        deadline = time.monotonic() + 6 * TIMEOUT
        with selectors.DefaultSelector() as selector:
            for index, raw in enumerate(self.raws):
                raw.sock.setblocking(False)
                selector.register(raw.sock, selectors.EVENT_READ, index)
            while not self.stop.is_set() and time.monotonic() < deadline:
                for key, _ in selector.select(0.05):
                    index = key.data
                    raw = self.raws[index]
                    try:
                        data = raw.sock.recv(2**18)
                    except BlockingIOError:
                        continue
                    if not data:
                        selector.unregister(raw.sock)
                        continue
                    raw.buffer += data
                    for frame in raw.pop_frames():
                        expected = self.received[index]
                        sequence = int.from_bytes(frame.payload[:4], "big")
                        if frame.opcode != 0x2 or not frame.fin or sequence != expected:
                            self.errors.append(f"reader {index}: {frame.opcode} {sequence}")
                        self.received[index] = expected + 1


def test_broadcast_with_a_stuck_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """X4: 499 readers get every message in order; a client that doesn't read is skipped."""
    built: list[bytes] = []

    class CountingFrame(Frame):
        def serialize(self, *, mask: bool, mask_key: bytes | None = None) -> bytes:
            frame = super().serialize(mask=mask, mask_key=mask_key)
            built.append(frame)
            return frame

    encoded: list[bytes] = []
    send_binary = Protocol.send_binary

    def counting_send_binary(self: Protocol, data: bytes, fin: bool = True) -> None:
        encoded.append(data)
        send_binary(self, data, fin)

    with raised_fd_limit(2048):
        server = serve(hold, "127.0.0.1", 0, max_connections=600, ping_interval=None, backlog=1024)
        with running(server):
            raws = open_raw_connections(server.port, 499)
            try:
                stuck = RawPeer.connect(server.port, rcvbuf=2048)
                raws.append(stuck)
                stuck.handshake()
                assert wait_for(lambda: len(server.connections) == 500, TIMEOUT)
                (stuck_connection,) = [
                    connection
                    for connection in server.connections
                    if connection.remote_address == stuck.sock.getsockname()
                ]
                # Over loopback, the kernel grows the send buffer of a connection whose peer
                # doesn't read to megabytes: bound it, as a real network's would be, so that
                # the backlog goes over write_limit.
                stuck_connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                monkeypatch.setattr("syncws.connection.Frame", CountingFrame)
                monkeypatch.setattr(Protocol, "send_binary", counting_send_binary)
                skipped: list[list[Connection]] = []
                durations: list[float] = []
                with Readers(raws[:499]) as readers:
                    for sequence in range(200):
                        message = sequence.to_bytes(4, "big") + bytes(1020)
                        before = time.monotonic()
                        skipped.append(broadcast(server.connections, message))
                        durations.append(time.monotonic() - before)
                        if sequence % 10 == 9:
                            # Let the readers keep up: only the stuck client falls behind.
                            behind = sequence - 20
                            assert wait_for(lambda: readers.least() >= behind, TIMEOUT)  # noqa: B023
                    assert wait_for(lambda: readers.least() == 200, TIMEOUT), readers.least()
                assert not readers.errors, readers.errors[:10]
                assert set(readers.received.values()) == {200}
            finally:
                for raw in raws:
                    raw.close()
    # Never waiting for the stuck client: a blocked call would last write_timeout (10 s).
    assert max(durations) < 3, max(durations)
    assert sum(durations) < 20, sum(durations)
    assert all(skip in ([], [stuck_connection]) for skip in skipped)
    assert sum(1 for skip in skipped if skip) >= 1
    # Once per broadcast, not once per connection.
    assert len(built) == 200
    assert not encoded


def test_broadcast_skips_a_stuck_tls_client(
    tls_context: ssl.SSLContext, certificate: Certificate
) -> None:
    """Over TLS, the backlog that counts is the encrypted bytes the socket did not take: the
    plaintext is encrypted, and gone from the connection's own queue, at once."""
    with serving(hold, ssl=tls_context, ping_interval=None) as server:
        # A client that stops reading after one message, with small buffers on both sides
        # (the kernel would otherwise hold megabytes on loopback).
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", server.port))
        with syncws.connect(
            uri(server, "wss"),
            sock=sock,
            ssl=ssl.create_default_context(cafile=str(certificate.cert)),
            server_hostname="localhost",
            compression=None,
            max_queue=1,
            ping_interval=None,
            close_timeout=1,
        ) as stuck:
            assert wait_for(lambda: len(server.connections) == 1, TIMEOUT)
            (connection,) = server.connections
            connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            message = bytes(16384)
            sent = 0
            while not broadcast([connection], message):
                sent += 1
                assert sent < 1000, "broadcast never skipped the stuck client"
            # Skipped once the encrypted backlog went over write_limit, not much later.
            backlog = connection.transport.backlog()
            assert connection.write_limit < backlog < connection.write_limit + 2 * len(message)
            # The plaintext queue is empty: every byte waits encrypted, in the transport.
            assert sum(map(len, connection._writer._out)) == 0
            stuck.abort()


def test_broadcast_encodings() -> None:
    """Plain and compressed server connections, and a client connection, which masks."""
    received: queue.Queue[str | bytes] = queue.Queue()
    opened: queue.Queue[ServerConnection] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        opened.put(connection)
        for message in connection:
            received.put(message)

    with (
        serving(handler) as server,
        client(server) as plain,
        ws_client(server, compression="deflate") as compressed,
    ):
        server_side = {opened.get(timeout=TIMEOUT), opened.get(timeout=TIMEOUT)}
        assert sorted(len(connection.protocol.extensions) for connection in server_side) == [0, 1]
        messages: list[Any] = ["text " * 100, b"binary", bytearray(b"array"), memoryview(b"view")]
        for message in messages:
            assert broadcast([*server_side, plain], message) == []
            expected = message if isinstance(message, str) else bytes(message)
            assert plain.recv(TIMEOUT) == expected
            assert compressed.recv(TIMEOUT) == expected
            assert received.get(timeout=TIMEOUT) == expected
        with pytest.raises(TypeError, match="str or bytes-like"):
            broadcast(server_side, 42)  # type: ignore[arg-type]


def test_broadcast_next_to_send_and_fragmented_send() -> None:
    """broadcast() does not skip a connection because another thread sends a message on it;
    it skips one in the middle of a fragmented message, whose frames must stay together."""
    opened: queue.Queue[ServerConnection] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        opened.put(connection)
        hold(connection)

    with serving(handler) as server, client(server) as peer:
        server_side = opened.get(timeout=TIMEOUT)
        # As while a send() of one message runs in another thread.
        with server_side._send_lock:
            assert broadcast([server_side], "while sending") == []
        assert peer.recv(TIMEOUT) == "while sending"

        middle = threading.Event()
        resume = threading.Event()

        def fragments() -> Iterator[str]:
            yield "one "
            middle.set()
            resume.wait(TIMEOUT)
            yield "two"

        sender = threading.Thread(target=server_side.send, args=(fragments(),))
        sender.start()
        try:
            assert middle.wait(TIMEOUT)
            assert broadcast([server_side], "skipped") == [server_side]
        finally:
            resume.set()
            sender.join(TIMEOUT)
        assert peer.recv(TIMEOUT) == "one two"
        assert broadcast([server_side], "after") == []
        assert peer.recv(TIMEOUT) == "after"


def test_broadcast_skips_closed_connections() -> None:
    opened: queue.Queue[ServerConnection] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        opened.put(connection)
        hold(connection)

    with serving(handler) as server:
        with client(server):
            server_side = opened.get(timeout=TIMEOUT)
        server_side.wait_closed(TIMEOUT)
        assert broadcast([server_side], "too late") == [server_side]


def test_broadcast_while_clients_come_and_go() -> None:
    """broadcast(server.connections) while workers add and remove connections."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        deadline = time.monotonic() + TIMEOUT
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                with client(server):
                    pass
        except BaseException as exc:
            errors.append(exc)

    with serving(hold, ping_interval=None) as server:
        steady = [client(server) for _ in range(10)]
        churners = [threading.Thread(target=churn) for _ in range(2)]
        try:
            for thread in churners:
                thread.start()
            deadline = time.monotonic() + 1
            count = 0
            while time.monotonic() < deadline:
                broadcast(server.connections, "churn")
                count += 1
        finally:
            stop.set()
            for thread in churners:
                thread.join(TIMEOUT)
            for connection in steady:
                connection.close()
    assert not errors
    assert count > 10


# Closing without shutting down.


def test_close_then_wait_closed() -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(connection: ServerConnection) -> None:
        started.set()
        release.wait(TIMEOUT)

    server = serve(slow, "127.0.0.1", 0, close_timeout=2)
    with running(server), client(server) as connection:
        assert started.wait(TIMEOUT)
        start = time.monotonic()
        server.close()
        assert time.monotonic() - start < 1
        connection.wait_closed(TIMEOUT)
        assert connection.close_code == 1001
        # The handler is still running.
        with pytest.raises(TimeoutError):
            server.wait_closed(0.2)
        release.set()
        server.wait_closed(TIMEOUT)
        assert not worker_threads()


def test_close_before_serve_forever() -> None:
    server = serve(echo, "127.0.0.1", 0)
    server.close()
    assert server.socket.fileno() == -1
    server.wait_closed(TIMEOUT)


# Compression and max_size: a message that fits uncompressed is never refused.


def test_max_size_message_of_random_bytes_with_compression() -> None:
    message = os.urandom(2**20)

    with serving(echo) as server, client(server, compression="deflate") as connection:
        assert [extension.name for extension in connection.protocol.extensions] == [
            "permessage-deflate"
        ]
        connection.send(message)
        assert connection.recv(TIMEOUT) == message


def test_max_size_message_of_random_bytes_to_websockets() -> None:
    message = os.urandom(2**20)

    def send_message(connection: ServerConnection) -> None:
        connection.send(message)
        connection.recv(TIMEOUT)

    with (
        serving(send_message) as server,
        ws_client(server, compression="deflate") as connection,
    ):
        assert connection.recv(TIMEOUT) == message
        connection.send("thanks")


def test_max_size_message_of_random_bytes_from_syncws_to_websockets() -> None:
    message = os.urandom(2**20)

    def compare(websocket: Any) -> None:
        # Answer shortly: websockets would compress the message itself, and grow it.
        websocket.send("same" if websocket.recv(TIMEOUT) == message else "different")

    with (
        ws_server(compare, compression="deflate") as server,
        client(server.uri, compression="deflate") as connection,
    ):
        connection.send(message)
        assert connection.recv(TIMEOUT) == "same"


@pytest.mark.parametrize("compression", [None, "deflate"])
@pytest.mark.parametrize("size", [65_535, 65_536, 300_000, 2**20])
def test_large_messages_from_a_websockets_client_echoed(compression: str | None, size: int) -> None:
    # From 64 KiB to 1 MiB, a frame that does not come whole is read straight into the bytes
    # of the message: text and binary, masked by websockets, come back the same. Compressed,
    # 1 MiB of random bytes makes a frame of more than 1 MiB: the message still fits.
    binary = os.urandom(size)
    text = "é" * (size // 2)

    with (
        serving(echo, compression=compression) as server,
        ws_client(server, compression=compression, max_size=None) as connection,
    ):
        for message in (binary, text, binary):
            connection.send(message)
            assert connection.recv(TIMEOUT) == message


# Memory of idle connections.


def test_open_connection_keeps_handshake_headers_compactly() -> None:
    results: queue.Queue[object] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        try:
            request, response = connection.request, connection.response
            assert request is not None
            assert response is not None
            # Until read, neither holds a Headers object: only flat strings.
            held = [value for value in vars(request).values() if isinstance(value, Headers)]
            held += [value for value in vars(response).values() if isinstance(value, Headers)]
            assert held == []
            assert request.path == "/compact"
            assert request.headers["X-Trace"] == "abc"
            assert request.headers.get_all("x-many") == ["1", "2"]
            assert ("X-Trace", "abc") in list(request.headers.raw_items())
            assert request.headers is connection.request.headers  # type: ignore[union-attr]
            assert connection.protocol.request is request
            assert response.status_code == 101
            assert response.headers["Upgrade"] == "websocket"
            request.headers["X-Added"] = "kept"
            assert connection.request.headers["x-added"] == "kept"  # type: ignore[union-attr]
            results.put(None)
        except BaseException as exc:
            results.put(exc)
        for message in connection:
            connection.send(message)

    headers = [("X-Trace", "abc"), ("X-Many", "1"), ("X-Many", "2")]
    with (
        serving(handler) as server,
        client(uri(server) + "compact", additional_headers=headers) as connection,
    ):
        outcome = results.get(timeout=TIMEOUT)
        if outcome is not None:
            raise AssertionError("the handler's checks failed") from cast(BaseException, outcome)
        connection.send("still open")
        assert connection.recv(TIMEOUT) == "still open"
