"""Tests of connections through proxies: a real tinyproxy, a TLS front for HTTPS proxies, and a
real microsocks for SOCKS5."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import require_executable
from io_helpers import (
    TIMEOUT,
    RawPeer,
    RawServer,
    exchange,
    server_context,
    terminate,
    wait_for,
)
from io_helpers import syncws_echo as echo

import syncws
from syncws.client import _is_transient
from syncws.core.proxy import Proxy, get_proxy, parse_proxy, proxy_bypass
from syncws.core.uri import parse_uri
from syncws.exceptions import (
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    SocksProxyError,
)
from syncws.testing import run_server
from syncws.transport import SocketTransport, TLSTransport

CA = Path(__file__).resolve().parent / "localhost.crt"

ENVIRONMENT = (
    "ws_proxy",
    "wss_proxy",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "REQUEST_METHOD",
)


pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable of the machine running the tests applies."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def trusting() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CA))


@contextlib.contextmanager
def echo_server(*, tls: bool = False) -> Iterator[int]:
    """A syncws echo server on 127.0.0.1; yields its port."""
    with run_server(echo, ssl=server_context() if tls else None, compression=None) as running:
        assert running.port is not None
        yield running.port


def open_client(uri: str, **kwargs: Any) -> syncws.ClientConnection:
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("compression", None)
    connection: syncws.ClientConnection = syncws.connect(uri, **kwargs)
    return connection


# A real HTTP proxy.


class ProxyProgram:
    """A proxy program in the foreground, listening on 127.0.0.1, its output in a log file."""

    name: str

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.log = directory / f"{self.name}.log"

    def _start(self, arguments: list[str]) -> None:
        executable = require_executable(self.name)
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [executable, *arguments],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            if not wait_for(self._listening, TIMEOUT, 0.02):
                pytest.fail(f"{self.name} did not start:\n{self.log.read_text()}")
        except BaseException:
            self.close()
            raise

    def _listening(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT).close()
        except ConnectionRefusedError:
            return False
        return True

    def logged(self, line: str) -> bool:
        """Whether the proxy logged ``line``, waiting a little for it."""
        return wait_for(lambda: line in self.log.read_text(), 2)

    def close(self) -> None:
        terminate(self.process)


class Tinyproxy(ProxyProgram):
    """A tinyproxy process: an HTTP proxy."""

    name = "tinyproxy"

    def __init__(self, directory: Path, settings: list[str]) -> None:
        super().__init__(directory)
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "tinyproxy.conf"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "Listen 127.0.0.1",
                    "Allow 127.0.0.1",
                    "Timeout 30",
                    "MaxClients 16",
                    "LogLevel Connect",
                    *settings,
                    "",
                ]
            )
        )
        self._start(["-d", "-c", str(config)])

    def carried(self, target: str) -> bool:
        """Whether the proxy logged a CONNECT to ``target`` (``host:port``)."""
        return self.logged(f"CONNECT {target} HTTP/1.1")


ProgramT = TypeVar("ProgramT", bound=ProxyProgram)


class Programs:
    """The proxy programs a test starts, each in a folder of its own, closed at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[ProxyProgram] = []

    def start(self, kind: type[ProgramT], *args: Any) -> ProgramT:
        directory = self.directory / f"{kind.name}-{len(self.started)}"
        directory.mkdir()
        program = kind(directory, *args)
        self.started.append(program)
        return program


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[Programs]:
    programs = Programs(tmp_path)
    try:
        yield programs
    finally:
        for program in programs.started:
            program.close()


@pytest.fixture
def start_tinyproxy(programs: Programs) -> Callable[..., Tinyproxy]:
    return lambda *settings: programs.start(Tinyproxy, list(settings))


@pytest.fixture
def tinyproxy(start_tinyproxy: Callable[..., Tinyproxy]) -> Tinyproxy:
    return start_tinyproxy()


def test_ws_through_http_proxy(tinyproxy: Tinyproxy) -> None:
    with echo_server() as port:
        connection = open_client(f"ws://127.0.0.1:{port}/", proxy=tinyproxy.url)
        # The socket goes to the proxy, not to the server.
        assert connection.remote_address == ("127.0.0.1", tinyproxy.port)
        exchange(connection)
    assert tinyproxy.carried(f"127.0.0.1:{port}")


def test_wss_through_http_proxy(tinyproxy: Tinyproxy) -> None:
    with echo_server(tls=True) as port:
        connection = open_client(f"wss://localhost:{port}/", proxy=tinyproxy.url, ssl=trusting())
        assert connection.remote_address == ("127.0.0.1", tinyproxy.port)
        exchange(connection)
    assert tinyproxy.carried(f"localhost:{port}")


def test_proxy_basic_auth(start_tinyproxy: Callable[..., Tinyproxy]) -> None:
    proxy = start_tinyproxy("BasicAuth user secret")
    with echo_server() as port:
        uri = f"ws://127.0.0.1:{port}/"
        exchange(open_client(uri, proxy=f"http://user:s%65cret@127.0.0.1:{proxy.port}"))
        with pytest.raises(InvalidProxyStatus) as exc_info:
            open_client(uri, proxy=proxy.url)
        assert exc_info.value.status_code == 407
        assert "Proxy-Authenticate" in exc_info.value.response.headers
        assert str(exc_info.value) == "proxy rejected connection: HTTP 407"
        # tinyproxy answers wrong credentials with 401 rather than 407.
        with pytest.raises(InvalidProxyStatus) as exc_info:
            open_client(uri, proxy=f"http://user:wrong@127.0.0.1:{proxy.port}")
        assert exc_info.value.status_code in (401, 407)


def test_proxy_refuses_port(start_tinyproxy: Callable[..., Tinyproxy]) -> None:
    proxy = start_tinyproxy("ConnectPort 443")
    with echo_server() as port, pytest.raises(InvalidProxyStatus) as exc_info:
        open_client(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert exc_info.value.status_code == 403


def test_proxy_cannot_reach_server(tinyproxy: Tinyproxy) -> None:
    with pytest.raises(InvalidProxyStatus) as exc_info:
        open_client(f"ws://127.0.0.1:{free_port()}/", proxy=tinyproxy.url)
    # tinyproxy says 500; others say 502 or 504. Any 5xx is retried by reconnect=True.
    assert exc_info.value.status_code >= 500


def test_open_timeout_covers_the_proxy() -> None:
    with RawServer(lambda peer: peer.idle()) as silent, pytest.raises(TimeoutError):
        open_client(
            "ws://127.0.0.1:9/", proxy=f"http://127.0.0.1:{silent.port}", open_timeout=0.5
        )


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
def test_proxy_connection_refused_names_the_proxy(scheme: str) -> None:
    # The server's port means nothing here: only the proxy was tried.
    port = free_port()
    with pytest.raises(ConnectionRefusedError) as exc_info:
        open_client("ws://127.0.0.1:9/", proxy=f"{scheme}://127.0.0.1:{port}")
    error = exc_info.value
    assert str(error) == (
        f"[Errno {error.errno}] cannot connect to proxy 127.0.0.1:{port}: connection refused"
    )
    assert isinstance(error.__cause__, ConnectionRefusedError)
    # Still an OSError, as a refused direct connection is: reconnection retries it.
    assert _is_transient(error)


# The proxy's answer to CONNECT, from a scripted proxy.


def answering(answer: bytes) -> Callable[[RawPeer], None]:
    """A scripted HTTP proxy that reads the CONNECT request and sends ``answer``."""

    def script(peer: RawPeer) -> None:
        peer.read_request()
        peer.send(answer)
        peer.sock.shutdown(socket.SHUT_WR)
        peer.idle()

    return script


def websocket_that_closes(peer: RawPeer) -> None:
    """Accept the WebSocket handshake, answer the client's Close with its code and end the
    stream: what the scripted proxies put behind a tunnel."""
    peer.accept()
    close, _ = peer.read_close()
    peer.send(b"\x88\x02" + close.payload[:2])
    peer.sock.shutdown(socket.SHUT_WR)


def connect_then_websocket(answer: bytes) -> Callable[[RawPeer], None]:
    """A scripted HTTP proxy that answers CONNECT with ``answer``, then a WebSocket server
    that closes properly."""

    def script(peer: RawPeer) -> None:
        peer.read_request()
        peer.send(answer)
        websocket_that_closes(peer)

    return script


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.0 200 Connection established\r\nProxy-agent: test\r\n\r\n",
        # A 2xx has no body, whatever its headers say: the tunnel starts after the head.
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 204\r\n\r\n",
    ],
    ids=["http-1.1", "http-1.0", "content-length", "no-reason"],
)
def test_proxy_answer_opens_the_tunnel(answer: bytes) -> None:
    with RawServer(connect_then_websocket(answer)) as proxy:
        with open_client("ws://example.com/", proxy=f"http://127.0.0.1:{proxy.port}") as ws:
            assert ws.subprotocol is None
        assert ws.close_code == 1000
        proxy.join()


def test_proxy_refusal_keeps_what_came_with_the_head() -> None:
    answer = (
        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
        b"Proxy-Authenticate: Basic\r\nContent-Length: 100\r\n\r\nlog in"
    )
    with RawServer(answering(answer)) as proxy, pytest.raises(InvalidProxyStatus) as exc_info:
        open_client("ws://example.com/", proxy=f"http://127.0.0.1:{proxy.port}")
    response = exc_info.value.response
    assert response.status_code == 407
    assert response.headers["Proxy-Authenticate"] == "Basic"
    # The rest of the body is not waited for.
    assert response.body == b"log in"
    assert str(exc_info.value) == "proxy rejected connection: HTTP 407"


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"", "closed the connection before answering CONNECT"),
        (b"HTTP/1.1 200 OK\r\nVia: x", "closed the connection before answering CONNECT"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "invalid answer to CONNECT from proxy: unsupported"),
        (b"HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "invalid header line"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"x" * 9000 + b"\r\n\r\n", "longer than 8192 bytes"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: x\r\n" * 200 + b"\r\n", "more than 128 headers"),
        (b"HTTP/1.1 200 OK\r\n\r\nearly", "proxy sent data after its answer to CONNECT"),
    ],
    ids=[
        "closed",
        "closed-in-head",
        "not-http",
        "version",
        "status-line",
        "header-line",
        "line-too-long",
        "too-many-headers",
        "data-after",
    ],
)
def test_invalid_proxy_answer(answer: bytes, match: str) -> None:
    with RawServer(answering(answer)) as proxy, pytest.raises(InvalidProxyMessage, match=match):
        open_client("ws://example.com/", proxy=f"http://127.0.0.1:{proxy.port}")


# An HTTPS proxy: TLS to the proxy, then TLS to the server inside it.


class TLSFront:
    """Accepts TLS with the test certificate and relays the plaintext to ``upstream``.

    With tinyproxy behind it, it makes an HTTPS proxy.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.context = server_context()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.relays: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, name="tls-front")
        self.thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            relay = threading.Thread(target=self._relay, args=(sock,), name="tls-relay")
            self.relays.append(relay)
            relay.start()

    def _relay(self, sock: socket.socket) -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(sock)
            sock.settimeout(TIMEOUT)
            try:
                tls = stack.enter_context(self.context.wrap_socket(sock, server_side=True))
            except (OSError, ssl.SSLError):
                return  # the client refused the certificate
            upstream = stack.enter_context(
                socket.create_connection(("127.0.0.1", self.upstream), timeout=TIMEOUT)
            )
            deadline = time.monotonic() + TIMEOUT
            while not self.stop.is_set() and time.monotonic() < deadline:
                if tls.pending():
                    readable: list[socket.socket] = [tls]
                else:
                    readable, _, _ = select.select([tls, upstream], [], [], 0.05)
                for source in readable:
                    destination = upstream if source is tls else tls
                    try:
                        data = source.recv(65536)
                    except (OSError, ssl.SSLError):
                        return
                    if not data:
                        return
                    destination.sendall(data)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT)
        for relay in self.relays:
            relay.join(TIMEOUT)
        self.listener.close()


@pytest.fixture
def https_proxy(tinyproxy: Tinyproxy) -> Iterator[str]:
    front = TLSFront(tinyproxy.port)
    try:
        yield f"https://localhost:{front.port}"
    finally:
        front.close()


def test_ws_through_https_proxy(https_proxy: str, tinyproxy: Tinyproxy) -> None:
    with echo_server() as port:
        connection = open_client(f"ws://127.0.0.1:{port}/", proxy=https_proxy, proxy_ssl=trusting())
        assert connection.transport.__class__.__name__ == "TLSTransport"
        exchange(connection)
    assert tinyproxy.carried(f"127.0.0.1:{port}")


def test_wss_through_https_proxy(https_proxy: str, tinyproxy: Tinyproxy) -> None:
    with echo_server(tls=True) as port:
        connection = open_client(
            f"wss://localhost:{port}/", proxy=https_proxy, proxy_ssl=trusting(), ssl=trusting()
        )
        # TLS inside TLS: one session with the proxy, one with the server through it.
        transport = connection.transport
        assert isinstance(transport, TLSTransport)
        assert transport.ssl_object.server_hostname == "localhost"
        assert isinstance(transport.inner, TLSTransport)
        assert isinstance(transport.inner.inner, SocketTransport)
        exchange(connection)
    assert tinyproxy.carried(f"localhost:{port}")


def test_https_proxy_certificate_is_verified(https_proxy: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        open_client("ws://127.0.0.1:9/", proxy=https_proxy)


def test_proxy_server_hostname_is_the_name_verified_on_the_proxy(
    https_proxy: str, tinyproxy: Tinyproxy
) -> None:
    """The name sent in SNI to the proxy and checked against its certificate (which is for
    "localhost" and 127.0.0.1), instead of the host of the proxy's URL."""
    by_address = https_proxy.replace("localhost", "127.0.0.1")
    with echo_server(tls=True) as port:
        connection = open_client(
            f"wss://localhost:{port}/",
            proxy=by_address,
            proxy_ssl=trusting(),
            proxy_server_hostname="localhost",
            ssl=trusting(),
        )
        transport = connection.transport
        assert isinstance(transport, TLSTransport)
        assert isinstance(transport.inner, TLSTransport)
        # The proxy's session has the name given; the server's, its own.
        assert transport.inner.ssl_object.server_hostname == "localhost"
        assert transport.ssl_object.server_hostname == "localhost"
        exchange(connection)
        with pytest.raises(ssl.SSLCertVerificationError, match=r"example\.test"):
            open_client(
                f"wss://localhost:{port}/",
                proxy=https_proxy,
                proxy_ssl=trusting(),
                proxy_server_hostname="example.test",
                ssl=trusting(),
            )
    assert tinyproxy.carried(f"localhost:{port}")


def test_proxy_server_hostname_must_be_a_name() -> None:
    with pytest.raises(TypeError, match=r"^proxy_server_hostname must be a hostname"):
        syncws.connect("ws://127.0.0.1:9/", proxy_server_hostname=b"localhost")  # type: ignore[call-overload]


# The environment.


def test_http_proxy_from_environment(tinyproxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    with echo_server() as port:
        exchange(open_client(f"ws://127.0.0.1:{port}/"))
        assert tinyproxy.carried(f"127.0.0.1:{port}")
        # proxy=None ignores the environment: with a dead proxy, only a direct route works.
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        exchange(open_client(f"ws://127.0.0.1:{port}/", proxy=None))
        with pytest.raises(ConnectionRefusedError):
            open_client(f"ws://127.0.0.1:{port}/")


def test_https_proxy_from_environment(
    tinyproxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", tinyproxy.url)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")  # not for wss
    with echo_server(tls=True) as port:
        exchange(open_client(f"wss://localhost:{port}/", ssl=trusting()))
    assert tinyproxy.carried(f"localhost:{port}")


def test_all_proxy_from_environment(tinyproxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", tinyproxy.url)
    with echo_server() as port:
        exchange(open_client(f"ws://127.0.0.1:{port}/"))
    assert tinyproxy.carried(f"127.0.0.1:{port}")


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "*", "example.com, 127.0.0.1"])
def test_no_proxy_from_environment(no_proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("NO_PROXY", no_proxy)
    with echo_server() as port:
        exchange(open_client(f"ws://127.0.0.1:{port}/"))


# Choosing a proxy, without I/O.


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("example.com", 80, "", False),
        ("example.com", 80, "*", True),
        ("example.com", 80, "example.com", True),
        ("www.example.com", 80, "example.com", True),
        ("www.example.com", 80, ".example.com", True),
        ("example.com", 80, ".example.com", True),
        ("www.example.com", 80, "*.example.com", True),
        ("badexample.com", 80, "example.com", False),
        ("example.com", 80, "www.example.com", False),
        ("EXAMPLE.COM.", 80, "Example.com", False),  # hosts come lower-cased from parse_uri
        ("example.com.", 80, "example.com", True),
        ("example.com", 8080, "example.com:8080", True),
        ("example.com", 80, "example.com:8080", False),
        ("example.com", 80, "other.org, example.com", True),
        ("example.com", 80, "other.org example.com", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("10.1.2.3", 80, "10.1.2.3", True),
        ("10.1.2.3", 443, "10.1.2.3:443", True),
        ("10.1.2.3", 80, "10.1.2.3:443", False),
        ("::1", 80, "::1", True),
        ("::1", 80, "[::1]", True),
        ("::1", 8080, "[::1]:8080", True),
        ("::1", 80, "[::1]:8080", False),
        ("fd00::5", 80, "fd00::/8", True),
        ("fe80::5", 80, "fd00::/8", False),
        ("10.1.2.3", 80, "3", False),  # not a suffix match on an IP address
        ("example.com", 80, "not/a/network", False),
    ],
)
def test_proxy_bypass(host: str, port: int, no_proxy: str, bypass: bool) -> None:
    assert proxy_bypass(host, port, no_proxy) is bypass


@pytest.mark.parametrize(
    ("uri", "environ", "proxy"),
    [
        ("ws://example.com/", {}, None),
        ("ws://example.com/", {"http_proxy": "http://p:1"}, "http://p:1"),
        ("ws://example.com/", {"HTTP_PROXY": "http://p:1"}, "http://p:1"),
        ("ws://example.com/", {"http_proxy": "http://a:1", "HTTP_PROXY": "http://b:1"}, "http://a:1"),
        ("ws://example.com/", {"https_proxy": "http://p:1"}, None),
        ("wss://example.com/", {"https_proxy": "http://p:1"}, "http://p:1"),
        ("wss://example.com/", {"HTTPS_PROXY": "https://p:1"}, "https://p:1"),
        ("wss://example.com/", {"http_proxy": "http://p:1"}, None),
        ("wss://example.com/", {"all_proxy": "http://p:1"}, "http://p:1"),
        ("ws://example.com/", {"ALL_PROXY": "http://p:1"}, "http://p:1"),
        ("ws://example.com/", {"http_proxy": "http://a:1", "all_proxy": "http://b:1"}, "http://a:1"),
        ("ws://example.com/", {"http_proxy": "http://p:1", "no_proxy": "example.com"}, None),
        ("ws://example.com/", {"http_proxy": "http://p:1", "NO_PROXY": "*"}, None),
        ("ws://example.com/", {"http_proxy": " "}, None),
        # WebSocket-only variables come first.
        ("ws://example.com/", {"ws_proxy": "socks5h://p:1", "http_proxy": "http://q:1"}, "socks5h://p:1"),
        ("wss://example.com/", {"WSS_PROXY": "http://p:1", "https_proxy": "http://q:1"}, "http://p:1"),
        ("wss://example.com/", {"ws_proxy": "http://p:1"}, None),
        ("ws://example.com/", {"wss_proxy": "http://p:1"}, None),
        # A CGI program: HTTP_PROXY may come from the client's Proxy header.
        ("ws://example.com/", {"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"}, None),
        ("ws://example.com/", {"http_proxy": "http://p:1", "REQUEST_METHOD": "GET"}, "http://p:1"),
    ],
)
def test_get_proxy(uri: str, environ: dict[str, str], proxy: str | None) -> None:
    assert get_proxy(parse_uri(uri), environ) == proxy


@pytest.mark.parametrize(
    ("url", "proxy"),
    [
        ("http://proxy.example:3128", Proxy(False, "proxy.example", 3128)),
        ("http://proxy.example", Proxy(False, "proxy.example", 80)),
        ("https://proxy.example", Proxy(True, "proxy.example", 443, scheme="https")),
        ("HTTP://Proxy.Example:8080/", Proxy(False, "proxy.example", 8080)),
        ("proxy.example:3128", Proxy(False, "proxy.example", 3128)),
        ("http://[::1]:3128", Proxy(False, "::1", 3128)),
        ("http://u%40x:p%3Aw@proxy:1", Proxy(False, "proxy", 1, "u@x", "p:w")),
        ("socks5://proxy.example", Proxy(False, "proxy.example", 1080, scheme="socks5")),
        ("SOCKS5H://u:p@proxy:9050", Proxy(False, "proxy", 9050, "u", "p", "socks5h")),
    ],
)
def test_parse_proxy(url: str, proxy: Proxy) -> None:
    assert parse_proxy(url) == proxy


@pytest.mark.parametrize(
    "url",
    [
        "socks4://proxy:1080",
        "socks4a://proxy:1080",
        "ftp://proxy",
        "http://",
        "http://proxy:99999",
        "http://proxy/path",
        f"socks5://{'u' * 256}:p@proxy",
        "socks5://u:@proxy",
    ],
)
def test_parse_invalid_proxy(url: str) -> None:
    with pytest.raises(InvalidProxy):
        parse_proxy(url)


def test_invalid_proxy_hides_password() -> None:
    with pytest.raises(InvalidProxy) as exc_info:
        syncws.connect("ws://example.com/", proxy="socks4://user:secret@proxy:1080")
    assert "secret" not in str(exc_info.value)


# A real SOCKS5 proxy.


class Microsocks(ProxyProgram):
    """A microsocks process: a SOCKS5 proxy, with credentials if given."""

    name = "microsocks"

    def __init__(self, directory: Path, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(directory)
        arguments = ["-i", "127.0.0.1", "-p", str(self.port)]
        if credentials is not None:
            arguments += ["-u", credentials[0], "-P", credentials[1]]
        self._start(arguments)

    def url(self, scheme: str = "socks5h", userinfo: str = "") -> str:
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"

    def carried(self, target: str) -> bool:
        """Whether the proxy logged a connection to ``target`` (``host:port``)."""
        return self.logged(f"connected to {target}\n")


@pytest.fixture
def microsocks(programs: Programs) -> Microsocks:
    return programs.start(Microsocks)


@pytest.fixture
def microsocks_auth(programs: Programs) -> Microsocks:
    return programs.start(Microsocks, ("alice", "s3cret"))


def test_ws_through_socks5h_proxy(microsocks: Microsocks) -> None:
    with echo_server() as port:
        connection = open_client(f"ws://localhost:{port}/", proxy=microsocks.url("socks5h"))
        assert connection.remote_address == ("127.0.0.1", microsocks.port)
        exchange(connection)
    # socks5h: the proxy got the name, and resolved it.
    assert microsocks.carried(f"localhost:{port}")


def test_ws_through_socks5_proxy_resolves_the_name_itself(microsocks: Microsocks) -> None:
    with echo_server() as port:
        exchange(open_client(f"ws://localhost:{port}/", proxy=microsocks.url("socks5")))
    # socks5: the client resolved the name and sent the address.
    assert microsocks.carried(f"127.0.0.1:{port}")


def test_wss_through_socks5_proxy(microsocks: Microsocks) -> None:
    with echo_server(tls=True) as port:
        connection = open_client(
            f"wss://localhost:{port}/", proxy=microsocks.url(), ssl=trusting()
        )
        assert connection.remote_address == ("127.0.0.1", microsocks.port)
        exchange(connection)
    assert microsocks.carried(f"localhost:{port}")


def test_socks5_credentials(microsocks_auth: Microsocks) -> None:
    with echo_server() as port:
        uri = f"ws://127.0.0.1:{port}/"
        exchange(open_client(uri, proxy=microsocks_auth.url(userinfo="alice:s3cr%65t@")))
        with pytest.raises(SocksProxyError, match="rejected the user name") as exc_info:
            open_client(uri, proxy=microsocks_auth.url(userinfo="alice:wrong@"))
        assert exc_info.value.code is None
        assert not _is_transient(exc_info.value)
        with pytest.raises(SocksProxyError, match="requires credentials"):
            open_client(uri, proxy=microsocks_auth.url())


def test_socks5_proxy_cannot_reach_the_server(microsocks: Microsocks) -> None:
    with pytest.raises(SocksProxyError, match="connection refused") as exc_info:
        open_client(f"ws://127.0.0.1:{free_port()}/", proxy=microsocks.url())
    assert exc_info.value.code == 5
    # The server may be restarting: reconnect=True tries again.
    assert _is_transient(exc_info.value)


def test_socks5_proxy_from_environment(
    microsocks: Microsocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("all_proxy", microsocks.url())
    with echo_server() as port:
        exchange(open_client(f"ws://localhost:{port}/"))
    assert microsocks.carried(f"localhost:{port}")


# SOCKS5 replies that no working proxy sends, from a scripted one.


def read_exactly(peer: RawPeer, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = peer.sock.recv(size - len(data))
        assert chunk, "the client closed the connection"
        data += chunk
    return data


def socks_then_websocket(reply: bytes, requests: list[bytes]) -> Callable[[RawPeer], None]:
    """A SOCKS5 proxy that answers CONNECT with ``reply``, then a WebSocket server that
    closes properly; the CONNECT requests go to ``requests``."""

    def script(peer: RawPeer) -> None:
        assert read_exactly(peer, 3) == b"\x05\x01\x00"
        peer.send(b"\x05\x00")
        request = read_exactly(peer, 4)
        if request[3] == 3:  # a name, after its length
            request += read_exactly(peer, 1)
            size = request[4]
        else:
            size = {1: 4, 4: 16}[request[3]]
        request += read_exactly(peer, size + 2)
        requests.append(request)
        peer.send(reply)
        websocket_that_closes(peer)

    return script


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("localhost", b"\x03\x09localhost"),
        ("127.0.0.1", b"\x01\x7f\x00\x00\x01"),
        ("[::1]", b"\x04" + bytes(15) + b"\x01"),
    ],
    ids=["name", "ipv4", "ipv6"],
)
@pytest.mark.parametrize(
    "bound",
    [b"\x01\x0a\x00\x00\x01\x30\x39", b"\x03\x05proxy\x30\x39", b"\x04" + bytes(16) + b"\x30\x39"],
    ids=["bound-ipv4", "bound-name", "bound-ipv6"],
)
def test_socks5_request_and_reply(host: str, address: bytes, bound: bytes) -> None:
    """The CONNECT request carries a name, an IPv4 or an IPv6 address, and the proxy's bound
    address in the reply, in any of the three forms, is read to its last byte: the HTTP
    response that follows parses."""
    requests: list[bytes] = []
    with RawServer(socks_then_websocket(b"\x05\x00\x00" + bound, requests)) as proxy:
        connection = open_client(
            f"ws://{host}:443/", proxy=f"socks5h://127.0.0.1:{proxy.port}"
        )
        with connection:
            assert connection.subprotocol is None
        assert connection.close_code == 1000
        proxy.join()
    assert requests == [b"\x05\x01\x00" + address + b"\x01\xbb"]


def refusing(answers: bytes, *, after_greeting: bool = False) -> Callable[[RawPeer], None]:
    """A scripted proxy that reads the greeting (and the request) and sends ``answers``."""

    def script(peer: RawPeer) -> None:
        read_exactly(peer, 3)
        if after_greeting:
            peer.send(b"\x05\x00")
            read_exactly(peer, 4 + 4 + 2)  # CONNECT to an IPv4 address
        peer.send(answers)
        peer.sock.shutdown(socket.SHUT_WR)
        peer.idle()

    return script


@pytest.mark.parametrize(
    ("script", "error", "match"),
    [
        (refusing(b"\x04\x00"), InvalidProxyMessage, "not a SOCKS5 proxy"),
        (refusing(b"\x05\x01"), InvalidProxyMessage, "not offered: 1"),
        (refusing(b"\x05"), InvalidProxyMessage, "closed the connection"),
        (refusing(b""), InvalidProxyMessage, "closed the connection"),
        (refusing(b"\x05\xff"), SocksProxyError, "requires credentials"),
        (refusing(b"\x04\x00\x00\x01", after_greeting=True), InvalidProxyMessage, "version 4"),
        (refusing(b"\x05\x00\x00\x09", after_greeting=True), InvalidProxyMessage, "type 9"),
        (refusing(b"\x05\x02\x00\x01", after_greeting=True), SocksProxyError, "ruleset"),
        (refusing(b"\x05\x63\x00\x01", after_greeting=True), SocksProxyError, "unknown"),
    ],
    ids=[
        "version",
        "method",
        "short",
        "closed",
        "no-method",
        "reply-version",
        "address-type",
        "not-allowed",
        "unknown-code",
    ],
)
def test_socks5_invalid_or_refusing_proxy(
    script: Callable[[RawPeer], None], error: type[Exception], match: str
) -> None:
    with RawServer(script) as proxy, pytest.raises(error, match=match) as exc_info:
        open_client("ws://127.0.0.1:9/", proxy=f"socks5://127.0.0.1:{proxy.port}")
    if isinstance(exc_info.value, SocksProxyError) and exc_info.value.code is not None:
        # Forbidden by the proxy, or an unknown failure: the same next time.
        assert not _is_transient(exc_info.value)


def test_open_timeout_covers_the_socks5_proxy() -> None:
    with RawServer(lambda peer: peer.idle()) as silent, pytest.raises(TimeoutError):
        open_client(
            "ws://127.0.0.1:9/", proxy=f"socks5h://127.0.0.1:{silent.port}", open_timeout=0.5
        )


# The example program, through both kinds of real proxies.

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "client_proxy.py"


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(EXAMPLE.parent.parent), env.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_example_through_socks5_proxy(microsocks: Microsocks) -> None:
    with echo_server() as port:
        result = run_example(f"ws://localhost:{port}/", microsocks.url())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"connecting to ws://localhost:{port}/ through {microsocks.url()}",
        "Hello through the proxy!",
    ]
    assert microsocks.carried(f"localhost:{port}")


def test_example_through_http_proxy_from_environment(
    tinyproxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", tinyproxy.url)
    with echo_server() as port:
        result = run_example(f"ws://127.0.0.1:{port}/")
    assert result.returncode == 0, result.stderr
    assert "Hello through the proxy!" in result.stdout.splitlines()
    assert tinyproxy.carried(f"127.0.0.1:{port}")


def test_example_reports_a_socks5_refusal(microsocks_auth: Microsocks) -> None:
    result = run_example("ws://127.0.0.1:9/", microsocks_auth.url())
    assert result.returncode == 1
    assert result.stderr == "the proxy refused: SOCKS5 proxy requires credentials\n"
