"""Tests of connections through proxies: a real tinyproxy, and a TLS front for HTTPS proxies."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_executable
from io_helpers import TIMEOUT, RawServer, check_leaks, wait_for
from io_helpers import syncws_echo as echo

import syncws
from syncws.proxy import (
    InvalidProxy,
    InvalidProxyStatus,
    Proxy,
    TunnelTLSTransport,
    get_proxy,
    parse_proxy,
    proxy_bypass,
)
from syncws.uri import parse_uri

CERT = Path(__file__).resolve().parent / "localhost.pem"
CA = Path(__file__).resolve().parent / "localhost.crt"

ENVIRONMENT = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    with check_leaks():
        yield


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
    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(CERT)
    with syncws.serve(echo, "127.0.0.1", 0, ssl=context, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever, name="test-server")
        thread.start()
        try:
            assert server.port is not None
            yield server.port
        finally:
            server.shutdown(TIMEOUT)
            thread.join(TIMEOUT)


def open_client(uri: str, **kwargs: Any) -> syncws.ClientConnection:
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("compression", None)
    connection: syncws.ClientConnection = syncws.connect(uri, **kwargs)
    return connection


def exchange(connection: syncws.ClientConnection) -> None:
    """Echo a short message and one larger than many TLS records."""
    with connection:
        connection.send("hello")
        assert connection.recv(TIMEOUT) == "hello"
        message = bytes(range(256)) * 1024
        connection.send(message)
        assert connection.recv(TIMEOUT) == message
    assert connection.close_code == 1000


# A real HTTP proxy.


class Tinyproxy:
    """A tinyproxy process in the foreground, listening on 127.0.0.1."""

    def __init__(self, directory: Path, settings: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "tinyproxy.log"
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
        executable = require_executable("tinyproxy")
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [executable, "-d", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            if not wait_for(self._listening, TIMEOUT, 0.02):
                pytest.fail(f"tinyproxy did not start:\n{self.log.read_text()}")
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

    def carried(self, target: str) -> bool:
        """Whether the proxy logged a CONNECT to ``target`` (``host:port``)."""
        return wait_for(lambda: f"CONNECT {target} HTTP/1.1" in self.log.read_text(), 2)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(TIMEOUT)


@pytest.fixture
def start_tinyproxy(tmp_path: Path) -> Iterator[Callable[..., Tinyproxy]]:
    proxies: list[Tinyproxy] = []

    def start(*settings: str) -> Tinyproxy:
        directory = tmp_path / str(len(proxies))
        directory.mkdir()
        proxy = Tinyproxy(directory, list(settings))
        proxies.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in proxies:
            proxy.close()


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


def test_proxy_connection_refused() -> None:
    with pytest.raises(ConnectionRefusedError):
        open_client("ws://127.0.0.1:9/", proxy=f"http://127.0.0.1:{free_port()}")


# An HTTPS proxy: TLS to the proxy, then TLS to the server inside it.


class TLSFront:
    """Accepts TLS with the test certificate and relays the plaintext to ``upstream``.

    With tinyproxy behind it, it makes an HTTPS proxy.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(CERT)
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
        assert isinstance(transport, TunnelTLSTransport)
        assert transport.ssl_object.server_hostname == "localhost"
        exchange(connection)
    assert tinyproxy.carried(f"localhost:{port}")


def test_https_proxy_certificate_is_verified(https_proxy: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        open_client("ws://127.0.0.1:9/", proxy=https_proxy)


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
        ("https://proxy.example", Proxy(True, "proxy.example", 443)),
        ("HTTP://Proxy.Example:8080/", Proxy(False, "proxy.example", 8080)),
        ("proxy.example:3128", Proxy(False, "proxy.example", 3128)),
        ("http://[::1]:3128", Proxy(False, "::1", 3128)),
        ("http://u%40x:p%3Aw@proxy:1", Proxy(False, "proxy", 1, "u@x", "p:w")),
    ],
)
def test_parse_proxy(url: str, proxy: Proxy) -> None:
    assert parse_proxy(url) == proxy


@pytest.mark.parametrize(
    "url",
    ["socks5://proxy:1080", "ftp://proxy", "http://", "http://proxy:99999", "http://proxy/path"],
)
def test_parse_invalid_proxy(url: str) -> None:
    with pytest.raises(InvalidProxy):
        parse_proxy(url)


def test_invalid_proxy_hides_password() -> None:
    with pytest.raises(InvalidProxy) as exc_info:
        syncws.connect("ws://example.com/", proxy="socks5://user:secret@proxy:1080")
    assert "secret" not in str(exc_info.value)
