"""Tests of redirects followed by connect(), against syncws servers that answer 3xx."""

from __future__ import annotations

import base64
import contextlib
import queue
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from io_helpers import TIMEOUT, RawPeer, RawServer, server_context
from io_helpers import syncws_echo as echo

import syncws
from syncws.core.http11 import Request, Response
from syncws.exceptions import InvalidStatus, InvalidURI, SecurityError
from syncws.server import Server, ServerConnection
from syncws.testing import run_server

CA = Path(__file__).resolve().parent / "localhost.crt"


pytestmark = pytest.mark.usefixtures("no_leaks")


class Seen:
    """Records the path and headers of every handshake request a server receives."""

    def __init__(self) -> None:
        self.requests: queue.Queue[Request] = queue.Queue()

    def get(self) -> Request:
        return self.requests.get(timeout=TIMEOUT)

    def count(self) -> int:
        return self.requests.qsize()


@contextlib.contextmanager
def running(
    redirects: Callable[[str], str | None],
    *,
    status: int = 302,
    seen: Seen | None = None,
    tls: bool = False,
) -> Iterator[Server]:
    """A syncws echo server that answers ``status`` with ``Location: redirects(path)``.

    Requests for which ``redirects`` returns ``None`` are upgraded.
    """

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if seen is not None:
            seen.requests.put(request)
        location = redirects(request.path)
        if location is None:
            return None
        response = connection.respond(status, "Moved\n")
        response.headers["Location"] = location
        return response

    context = server_context() if tls else None
    with run_server(echo, process_request=process_request, ssl=context, compression=None) as live:
        yield live.server


def open_client(uri: str, **kwargs: Any) -> syncws.ClientConnection:
    """connect() without compression, without proxies from the environment."""
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("compression", None)
    kwargs.setdefault("proxy", None)
    connection: syncws.ClientConnection = syncws.connect(uri, **kwargs)
    return connection


def trusting() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CA))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_relative_location_is_followed(status: int) -> None:
    seen = Seen()
    with running(
        lambda path: "new?x=1" if path == "/dir/old" else None, status=status, seen=seen
    ) as server:
        with open_client(f"ws://127.0.0.1:{server.port}/dir/old") as connection:
            connection.send("hello")
            assert connection.recv(TIMEOUT) == "hello"
            assert connection.request is not None
            assert connection.request.path == "/dir/new?x=1"
        assert [seen.get().path for _ in range(2)] == ["/dir/old", "/dir/new?x=1"]


def test_absolute_location_to_another_server() -> None:
    seen = Seen()
    with running(lambda path: None, seen=seen) as target:
        uri = f"ws://localhost:{target.port}/there"
        with (
            running(lambda path: uri) as first,
            open_client(f"ws://127.0.0.1:{first.port}/here") as connection,
        ):
            connection.send("hi")
            assert connection.recv(TIMEOUT) == "hi"
            assert connection.remote_address[1] == target.port
        request = seen.get()
        assert request.path == "/there"
        assert request.headers["Host"] == f"localhost:{target.port}"


def test_ws_to_wss_upgrade_is_followed() -> None:
    """The second hop runs TLS: the default context refuses the self-signed certificate."""
    with running(lambda path: None, tls=True) as secure:
        uri = f"wss://localhost:{secure.port}/"
        with running(lambda path: uri) as plain, pytest.raises(ssl.SSLCertVerificationError):
            open_client(f"ws://127.0.0.1:{plain.port}/")


def test_wss_to_ws_downgrade_is_refused() -> None:
    seen = Seen()
    with running(lambda path: None, seen=seen) as plain:
        uri = f"ws://127.0.0.1:{plain.port}/"
        with (
            running(lambda path: uri, tls=True) as secure,
            pytest.raises(SecurityError, match="wss:// to ws://"),
        ):
            open_client(f"wss://localhost:{secure.port}/", ssl=trusting())
        assert seen.count() == 0


def credentials(request: Request) -> dict[str, str | None]:
    return {name: request.headers.get(name) for name in ("Authorization", "Cookie", "X-Keep")}


def test_credentials_kept_on_same_origin_redirect() -> None:
    seen = Seen()
    with running(lambda path: "/two" if path == "/one" else None, seen=seen) as server:
        with open_client(
            f"ws://user:secret@127.0.0.1:{server.port}/one",
            additional_headers={"Cookie": "session=1", "X-Keep": "yes"},
        ):
            pass
        first, second = seen.get(), seen.get()
    basic = "Basic " + base64.b64encode(b"user:secret").decode()
    assert credentials(first) == {"Authorization": basic, "Cookie": "session=1", "X-Keep": "yes"}
    assert credentials(second) == credentials(first)


@pytest.mark.parametrize("user_info", [True, False])
def test_credentials_dropped_on_cross_origin_redirect(user_info: bool) -> None:
    seen = Seen()
    with running(lambda path: None, seen=seen) as target:
        # Same host and scheme, another port: another origin.
        uri = f"ws://127.0.0.1:{target.port}/target"
        with running(lambda path: uri if path == "/start" else "/start") as first:
            headers = {"Cookie": "session=1", "X-Keep": "yes"}
            prefix = "user:secret@" if user_info else ""
            if not user_info:
                headers["Authorization"] = "Bearer token"
            # A same-origin hop first, then the cross-origin one.
            with open_client(f"ws://{prefix}127.0.0.1:{first.port}/", additional_headers=headers):
                pass
        request = seen.get()
    assert request.path == "/target"
    assert credentials(request) == {"Authorization": None, "Cookie": None, "X-Keep": "yes"}


def test_too_many_redirects() -> None:
    seen = Seen()
    with running(lambda path: f"/{int(path[1:] or 0) + 1}", seen=seen) as server:
        with pytest.raises(SecurityError, match="more than 3 redirects") as exc_info:
            open_client(f"ws://127.0.0.1:{server.port}/", max_redirects=3)
        assert seen.count() == 4
    assert isinstance(exc_info.value.__cause__, InvalidStatus)


def test_no_redirects_allowed() -> None:
    seen = Seen()
    with (
        running(lambda path: "/next" if path == "/" else None, seen=seen) as server,
        pytest.raises(SecurityError),
    ):
        open_client(f"ws://127.0.0.1:{server.port}/", max_redirects=0)
    assert seen.count() == 1


def test_redirects_share_one_open_timeout() -> None:
    """A redirect loop runs into open_timeout, not into max_redirects."""
    with running(lambda path: path) as server, pytest.raises(TimeoutError):
        open_client(f"ws://127.0.0.1:{server.port}/", max_redirects=10**6, open_timeout=0.5)


def test_each_hop_counts_against_open_timeout() -> None:
    """The second hop gets what is left of the deadline, not a new one."""
    with (
        RawServer(lambda peer: peer.idle()) as silent,
        running(lambda path: silent.uri) as server,
        pytest.raises(TimeoutError),
    ):
        open_client(f"ws://127.0.0.1:{server.port}/", open_timeout=0.5)


def test_redirect_without_location_is_an_error() -> None:
    def script(peer: RawPeer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n")
        peer.read_eof()

    with RawServer(script) as server, pytest.raises(InvalidStatus) as exc_info:
        open_client(server.uri)
    assert exc_info.value.response.status_code == 302


def test_redirect_to_non_websocket_uri() -> None:
    with (
        running(lambda path: "https://example.com/") as server,
        pytest.raises(InvalidURI),
    ):
        open_client(f"ws://127.0.0.1:{server.port}/")


def test_redirect_not_followed_with_sock() -> None:
    with running(lambda path: "/elsewhere" if path == "/" else None) as server:
        port = server.port
        assert port is not None
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        with pytest.raises(InvalidStatus) as exc_info:
            open_client(f"ws://127.0.0.1:{server.port}/", sock=sock)
        assert exc_info.value.response.status_code == 302
        assert sock.fileno() == -1  # closed by connect()
