"""Tests of connect() and unix_connect(), against the websockets server and hostile peers."""

from __future__ import annotations

import base64
import contextlib
import logging
import queue
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path

import pytest
from conftest import require_executable
from io_helpers import (
    TIMEOUT,
    Certificate,
    RawPeer,
    RawServer,
    aborting,
    client,
    close_payload,
    echo,
    exchange,
    frame_bytes,
    make_certificate,
    require_ipv6_loopback,
    syncws_echo,
    wait_for,
    wrong_accept,
    ws_server,
    ws_unix_server,
)
from websockets.http11 import Request as WSRequest
from websockets.http11 import Response as WSResponse
from websockets.sync.server import ServerConnection

from syncws.client import USER_AGENT, ClientConnection, connect, unix_connect
from syncws.core.protocol import State
from syncws.exceptions import (
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    SecurityError,
)
from syncws.testing import run_server

pytestmark = pytest.mark.usefixtures("no_leaks")


class Recorder:
    """A handler that records the handshake request, then echoes."""

    def __init__(self) -> None:
        self.requests: queue.Queue[WSRequest] = queue.Queue()
        self.subprotocols: queue.Queue[str | None] = queue.Queue()
        self.extensions: queue.Queue[list[str]] = queue.Queue()

    def __call__(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        self.requests.put(websocket.request)
        self.subprotocols.put(websocket.subprotocol)
        self.extensions.put([extension.name for extension in websocket.protocol.extensions])
        echo(websocket)

    def request(self) -> WSRequest:
        return self.requests.get(timeout=TIMEOUT)


# Plain connections.


def test_connect_echo() -> None:
    with ws_server(echo) as server, client(server.uri) as connection:
        assert isinstance(connection, ClientConnection)
        state = connection.state
        assert state is State.OPEN
        connection.send("hello")
        assert connection.recv(TIMEOUT) == "hello"
    assert connection.state is State.CLOSED
    assert connection.close_code == 1000


def test_attributes() -> None:
    recorder = Recorder()
    with ws_server(recorder, subprotocols=["chat"]) as server:
        uri = server.uri + "path/to?query=1"
        with client(uri, subprotocols=["superchat", "chat"]) as connection:
            port = int(server.uri.rsplit(":", 1)[1].strip("/"))
            assert isinstance(connection.id, uuid.UUID)
            assert connection.local_address[0] == "127.0.0.1"
            assert connection.local_address == connection.socket.getsockname()
            assert connection.remote_address == ("127.0.0.1", port)
            state = connection.state
            assert state is State.OPEN
            assert connection.open
            assert not connection.closed
            assert connection.close_code is None
            assert connection.close_reason is None
            assert connection.subprotocol == "chat"

            request = connection.request
            assert request is not None
            assert request.path == "/path/to?query=1"
            assert request.headers["Host"] == f"127.0.0.1:{port}"
            assert request.headers["User-Agent"] == USER_AGENT
            assert request.headers["Sec-WebSocket-Protocol"] == "superchat, chat"
            assert connection.path == "/path/to?query=1"
            assert connection.request_headers is request.headers

            response = connection.response
            assert response is not None
            assert response.status_code == 101
            assert response.headers["Sec-WebSocket-Protocol"] == "chat"
            assert connection.response_headers is response.headers

            # What the server saw.
            seen = recorder.request()
            assert seen.path == "/path/to?query=1"
            assert seen.headers["User-Agent"] == USER_AGENT
            assert recorder.subprotocols.get(timeout=TIMEOUT) == "chat"
        # Addresses outlive the socket.
        assert connection.remote_address == ("127.0.0.1", port)
        assert connection.state is State.CLOSED
        assert not connection.open
        assert connection.closed
        assert connection.close_code == 1000
        assert connection.close_reason == ""


def test_default_user_agent() -> None:
    assert USER_AGENT.startswith("Python/")
    assert "syncws/" in USER_AGENT


def test_no_user_agent() -> None:
    recorder = Recorder()
    with ws_server(recorder) as server, client(server.uri, user_agent_header=None):
        assert "User-Agent" not in recorder.request().headers


def test_custom_user_agent() -> None:
    recorder = Recorder()
    with ws_server(recorder) as server, client(server.uri, user_agent_header="agent/1.0"):
        assert recorder.request().headers["User-Agent"] == "agent/1.0"


def test_additional_headers_and_origin() -> None:
    recorder = Recorder()
    with ws_server(recorder) as server:
        with client(
            server.uri,
            additional_headers={"X-Token": "secret", "X-Other": "1"},
            origin="https://example.com",
        ):
            headers = recorder.request().headers
            assert headers["X-Token"] == "secret"
            assert headers["X-Other"] == "1"
            assert headers["Origin"] == "https://example.com"
        # A list of pairs keeps repeated headers.
        with client(server.uri, additional_headers=[("X-Repeated", "a"), ("X-Repeated", "b")]):
            assert recorder.request().headers.get_all("X-Repeated") == ["a", "b"]


def test_user_info_becomes_basic_credentials() -> None:
    recorder = Recorder()
    with ws_server(recorder) as server:
        uri = server.uri.replace("ws://", "ws://user:pass@")
        with client(uri):
            authorization = recorder.request().headers["Authorization"]
    assert authorization == "Basic " + base64.b64encode(b"user:pass").decode()


def test_no_subprotocol() -> None:
    with ws_server(echo) as server, client(server.uri) as connection:
        assert connection.subprotocol is None


def test_create_connection_subclass() -> None:
    class MyConnection(ClientConnection):
        pass

    with (
        ws_server(echo) as server,
        client(server.uri, create_connection=MyConnection) as connection,
    ):
        assert type(connection) is MyConnection
        connection.send("sub")
        assert connection.recv(TIMEOUT) == "sub"


def test_sock_argument() -> None:
    with ws_server(echo) as server:
        host, port = server.server.socket.getsockname()
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
        with client(server.uri, sock=sock) as connection:
            assert connection.socket is sock
            connection.send("over my socket")
            assert connection.recv(TIMEOUT) == "over my socket"
        assert sock.fileno() == -1


def test_sock_argument_with_connection_arguments() -> None:
    with socket.socket() as sock, pytest.raises(TypeError, match="source_address"):
        connect("ws://127.0.0.1:1/", sock=sock, source_address=("127.0.0.1", 0))


def test_source_address() -> None:
    with (
        ws_server(echo) as server,
        client(server.uri, source_address=("127.0.0.1", 0)) as connection,
    ):
        connection.send("from a chosen address")
        assert connection.recv(TIMEOUT) == "from a chosen address"


def test_ipv6() -> None:
    require_ipv6_loopback()
    with (
        ws_server(echo, "::1", family=socket.AF_INET6) as server,
        client(server.uri) as connection,
    ):
        assert server.uri.startswith("ws://[::1]:")
        assert connection.remote_address[0] == "::1"
        connection.send("six")
        assert connection.recv(TIMEOUT) == "six"


def test_unix_connect(tmp_path: Path) -> None:
    path = str(tmp_path / "ws.sock")
    recorder = Recorder()
    with ws_unix_server(recorder, path):
        with unix_connect(path, compression=None, open_timeout=TIMEOUT) as connection:
            assert connection.remote_address == path
            connection.send("over unix")
            assert connection.recv(TIMEOUT) == "over unix"
            assert recorder.request().headers["Host"] == "localhost"
        with unix_connect(path, "ws://example.test/chat", compression=None):
            request = recorder.request()
            assert request.headers["Host"] == "example.test"
            assert request.path == "/chat"


def test_unix_connect_no_server(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        unix_connect(str(tmp_path / "missing.sock"), compression=None)


# Failures to connect.


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1/", "ws://", "not a uri", "ws://127.0.0.1:99999/", "ws://a b/"]
)
def test_invalid_uri(uri: str) -> None:
    with pytest.raises(InvalidURI):
        connect(uri, compression=None)


def test_ssl_with_ws_uri() -> None:
    with pytest.raises(ValueError, match="ssl"):
        connect("ws://127.0.0.1:1/", ssl=ssl.create_default_context())


def test_unsupported_compression() -> None:
    with ws_server(echo) as server, pytest.raises(ValueError, match="compression"):
        connect(server.uri, compression="gzip")  # type: ignore[call-overload]


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    with pytest.raises(ConnectionRefusedError):
        connect(f"ws://127.0.0.1:{port}/", compression=None, open_timeout=TIMEOUT)


def test_invalid_status() -> None:
    def forbid(connection: ServerConnection, request: WSRequest) -> WSResponse:
        return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")

    with (
        ws_server(echo, process_request=forbid) as server,
        pytest.raises(InvalidStatus) as exc_info,
    ):
        client(server.uri)
    response = exc_info.value.response
    assert response.status_code == 403
    assert response.body == b"Forbidden\n"


def test_open_timeout_server_never_answers() -> None:
    def silent(peer: RawPeer) -> int:
        peer.read_request()
        # Never answer; return once the client gave up and closed its socket.
        return peer.read_eof()

    with RawServer(silent) as server:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            client(server.uri, open_timeout=0.5)
        elapsed = time.monotonic() - start
        assert 0.4 <= elapsed < 3
        # The client closed its socket: the server read the end of the stream.
        assert server.join() == 0


def test_open_timeout_server_never_accepts() -> None:
    # A listening socket whose backlog is full: the TCP handshake itself never completes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(address)
            start = time.monotonic()
            try:
                connection = client(f"ws://127.0.0.1:{address[1]}/", open_timeout=0.5)
            except TimeoutError:
                assert time.monotonic() - start < 3
            else:  # pragma: no cover (a kernel that accepts anyway)
                connection.abort()
                connection.wait_closed(TIMEOUT)
                pytest.skip("the kernel completed the TCP handshake anyway")
        finally:
            for filler in fillers:
                filler.close()


# Hostile servers during the handshake (K2, K3).


def test_frame_in_handshake_segment() -> None:
    """K2: a frame sent with the 101, in the same TCP segment, is delivered."""

    def script(peer: RawPeer) -> None:
        peer.accept(frame_bytes(0x1, b"early") + frame_bytes(0x2, b"bird"))
        peer.idle()

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        assert connection.recv(TIMEOUT) == "early"
        assert connection.recv(TIMEOUT) == b"bird"


def test_frames_with_handshake_stay_in_order_with_a_full_queue() -> None:
    """Frames that came with the 101 are queued before recv() may read the socket itself."""

    def script(peer: RawPeer) -> None:
        # Many more frames than max_queue in the 101's segment, then more later.
        peer.accept(b"".join(frame_bytes(0x1, str(i).encode()) for i in range(20)))
        time.sleep(0.2)
        peer.sock.sendall(b"".join(frame_bytes(0x1, str(i).encode()) for i in range(20, 40)))
        peer.idle()

    with RawServer(script) as server, aborting(client(server.uri, max_queue=1)) as connection:
        received = [connection.recv(TIMEOUT) for _ in range(40)]
        assert received == [str(i) for i in range(40)]


def test_ping_in_handshake_segment() -> None:
    """K2: a ping sent with the 101 is answered at once."""

    def script(peer: RawPeer) -> bytes:
        peer.accept(frame_bytes(0x9, b"are you there"))
        frame = peer.read_frame()
        assert frame is not None
        assert frame.opcode == 0xA
        return frame.payload

    with RawServer(script) as server, aborting(client(server.uri, ping_interval=None)):
        assert server.join() == b"are you there"


def test_close_in_handshake_segment() -> None:
    """K2: a Close sent with the 101 is answered, and the connection closes."""

    def script(peer: RawPeer) -> int:
        peer.accept(frame_bytes(0x8, close_payload(1001, "bye")))
        close, _ = peer.read_close()
        peer.sock.shutdown(socket.SHUT_WR)
        return close.close_code

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        assert server.join() == 1001
        with pytest.raises(ConnectionClosedOK):
            connection.recv(TIMEOUT)
        connection.wait_closed(TIMEOUT)
        assert connection.close_code == 1001
        assert connection.close_reason == "bye"


def status_line_then(lines: Iterator[bytes]) -> Callable[[RawPeer], int]:
    """A script that answers with a 101 status line then ``lines``, until the client leaves."""

    def script(peer: RawPeer) -> int:
        peer.read_request()
        peer.send(b"HTTP/1.1 101 Switching Protocols\r\n")
        sent = 0
        try:
            for line in lines:
                if peer.stop.is_set():
                    break
                peer.send(line)
                sent += len(line)
        except OSError:
            pass  # the client gave up
        return sent

    return script


def test_endless_header_lines() -> None:
    """K3: header lines that never end fail the handshake after MAX_HEADERS lines."""
    lines = (b"X-Header-%d: value\r\n" % i for i in range(100_000))
    with (
        RawServer(status_line_then(lines)) as server,
        pytest.raises(SecurityError, match="headers"),
    ):
        client(server.uri)


def test_too_many_headers() -> None:
    """K3: 129 headers, one over the limit."""

    def lines() -> Iterator[bytes]:
        for i in range(129):
            yield b"X-Header-%d: value\r\n" % i
        yield b"\r\n"

    with (
        RawServer(status_line_then(lines())) as server,
        pytest.raises(SecurityError, match="headers"),
    ):
        client(server.uri)


def test_endless_header_line() -> None:
    """K3: a header line that never ends fails the handshake after MAX_LINE bytes."""
    chunks = (b"X-Long: " if i == 0 else b"a" * 1024 for i in range(100_000))
    with (
        RawServer(status_line_then(chunks)) as server,
        pytest.raises(SecurityError, match="longer than"),
    ):
        client(server.uri)


def test_large_body_without_length() -> None:
    """K3: a non-101 response with a body over 1 MiB fails, with bounded memory."""
    chunk = b"b" * 2**16

    def script(peer: RawPeer) -> int:
        peer.read_request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        sent = 0
        try:
            # Up to 64 MiB: far more than the client may buffer.
            for _ in range(1024):
                if peer.stop.is_set():
                    break
                peer.send(chunk)
                sent += len(chunk)
        except OSError:
            pass
        return sent

    with RawServer(script) as server:
        tracemalloc.start()
        try:
            with pytest.raises(SecurityError, match="body"):
                client(server.uri)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        sent = server.join()
    assert sent < 64 * 2**20
    assert peak < 16 * 2**20


def test_large_content_length() -> None:
    """K3: a Content-Length over 1 MiB fails before the body is read."""

    def script(peer: RawPeer) -> int:
        peer.read_request()
        peer.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2000000\r\n\r\n")
        return peer.read_eof()

    with RawServer(script) as server:
        with pytest.raises(SecurityError, match="body"):
            client(server.uri)
        assert server.join() == 0


def test_invalid_response() -> None:
    def script(peer: RawPeer) -> None:
        peer.read_request()
        peer.send(b"SSH-2.0-OpenSSH\r\n\r\n")
        peer.read_eof()

    with RawServer(script) as server, pytest.raises(InvalidMessage):
        client(server.uri)


def test_connection_closed_during_handshake() -> None:
    def script(peer: RawPeer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
        peer.sock.shutdown(socket.SHUT_WR)
        peer.read_eof()

    with RawServer(script) as server, pytest.raises(InvalidMessage, match="closed"):
        client(server.uri)


def test_http_1_0_server_is_not_a_websocket_server() -> None:
    def script(peer: RawPeer) -> None:
        peer.read_request()
        peer.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html></html>")
        peer.sock.shutdown(socket.SHUT_WR)
        peer.read_eof()

    with RawServer(script) as server, pytest.raises(InvalidMessage) as exc_info:
        client(server.uri)
    assert str(exc_info.value) == (
        "the server answered with HTTP/1.0: not a WebSocket server ('HTTP/1.0 200 OK')"
    )


def test_tls_answer_to_ws_suggests_wss() -> None:
    def script(peer: RawPeer) -> None:
        peer.read_request()
        # A TLS alert record: fatal, protocol_version. The connection stays open.
        peer.send(b"\x15\x03\x01\x00\x02\x02\x46")
        peer.idle()

    with RawServer(script) as server, pytest.raises(InvalidMessage) as exc_info:
        client(server.uri)
    assert str(exc_info.value) == "the server answered with TLS: use a wss:// URI"


def test_ws_to_a_tls_server_suggests_wss(tls_server: str) -> None:
    # A TLS server closes or resets a connection that starts with a request in the clear.
    with pytest.raises((InvalidMessage, ConnectionResetError)) as exc_info:
        client(tls_server.replace("wss://", "ws://"))
    assert "(if it expects TLS, use a wss:// URI)" in str(exc_info.value)


def test_ws_to_a_closing_server_suggests_wss() -> None:
    def script(peer: RawPeer) -> None:
        peer.read_request()
        peer.sock.shutdown(socket.SHUT_WR)
        peer.read_eof()

    with RawServer(script) as server, pytest.raises(InvalidMessage) as exc_info:
        client(server.uri)
    assert str(exc_info.value) == (
        "connection closed during handshake, before the server answered "
        "(if it expects TLS, use a wss:// URI)"
    )


def test_wrong_accept_key() -> None:
    with RawServer(wrong_accept) as server, pytest.raises(InvalidHandshake):
        client(server.uri)


# TLS.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(certificate: Certificate) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert, certificate.key)
    with ws_server(echo, ssl=context) as server:
        yield server.uri


def trusting(certificate: Certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate.cert))


def test_wss_default_context_refuses_self_signed(tls_server: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        client(tls_server)


def test_wss_custom_context(tls_server: str, certificate: Certificate) -> None:
    port = tls_server.rsplit(":", 1)[1].strip("/")
    connection = client(f"wss://localhost:{port}/", ssl=trusting(certificate))
    assert connection.transport.__class__.__name__ == "TLSTransport"
    exchange(connection)


def test_wss_server_hostname(tls_server: str, certificate: Certificate) -> None:
    # By IP address, with the certificate's name given for verification.
    with client(tls_server, ssl=trusting(certificate), server_hostname="localhost") as connection:
        connection.send("by address")
        assert connection.recv(TIMEOUT) == "by address"
    # The name is really used for verification.
    with pytest.raises(ssl.SSLCertVerificationError):
        client(tls_server, ssl=trusting(certificate), server_hostname="other.example")


def test_wss_certificate_for_another_name(tmp_path: Path) -> None:
    """T3: a trusted certificate, but for another name: hostname verification fails."""
    openssl = require_executable("openssl")
    key, certificate = tmp_path / "key.pem", tmp_path / "certificate.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(certificate), "-subj", "/CN=other.example",
         "-addext", "subjectAltName=DNS:other.example"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate, key)
    client_context = ssl.create_default_context(cafile=str(certificate))
    with run_server(syncws_echo, ssl=server_context) as running:
        uri = f"wss://localhost:{running.port}/"
        with pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname"):
            client(uri, ssl=client_context)
        # The certificate itself is valid: for the name it was made for, it is accepted.
        with client(uri, ssl=client_context, server_hostname="other.example") as connection:
            connection.send("verified")
            assert connection.recv(TIMEOUT) == "verified"


def test_wss_open_timeout() -> None:
    def silent(peer: RawPeer) -> None:
        peer.read_eof()  # never a TLS handshake

    with RawServer(silent) as server:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            client(server.uri.replace("ws://", "wss://"), open_timeout=0.5)
        assert time.monotonic() - start < 3
        server.join()


# Compression.


def test_compression_negotiated() -> None:
    recorder = Recorder()
    with ws_server(recorder, compression="deflate") as server:
        with connect(server.uri, open_timeout=TIMEOUT) as connection:
            assert [extension.name for extension in connection.protocol.extensions] == [
                "permessage-deflate"
            ]
            assert "permessage-deflate" in connection.response_headers["Sec-WebSocket-Extensions"]
            assert recorder.extensions.get(timeout=TIMEOUT) == ["permessage-deflate"]
            message = "compressible " * 10_000
            connection.send(message)
            assert connection.recv(TIMEOUT) == message
            connection.send([b"frag", b"mented"])
            assert connection.recv(TIMEOUT) == b"fragmented"
            data = bytes(range(256)) * 64
            connection.send(data)
            assert connection.recv(TIMEOUT) == data
        assert connection.close_code == 1000


def test_compression_declined() -> None:
    recorder = Recorder()
    with ws_server(recorder, compression=None) as server, connect(server.uri) as connection:
        assert connection.protocol.extensions == []
        assert "Sec-WebSocket-Extensions" in recorder.request().headers
        connection.send("plain")
        assert connection.recv(TIMEOUT) == "plain"


def test_compression_off() -> None:
    recorder = Recorder()
    with ws_server(recorder, compression="deflate") as server, client(server.uri):
        assert "Sec-WebSocket-Extensions" not in recorder.request().headers
        assert recorder.extensions.get(timeout=TIMEOUT) == []


def test_compression_bomb() -> None:
    """A compressed message that inflates past max_size fails the connection with 1009."""
    import zlib  # noqa: PLC0415

    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(bytes(64 * 2**20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert bomb.endswith(b"\x00\x00\xff\xff")
    bomb = bomb[:-4]
    assert len(bomb) < 2**17

    def script(peer: RawPeer) -> int:
        request = peer.accept(headers=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        assert b"permessage-deflate" in request
        frame = frame_bytes(0x2, bomb)
        peer.send(bytes([frame[0] | 0x40]) + frame[1:])  # RSV1: compressed
        close, _ = peer.read_close()
        peer.sock.shutdown(socket.SHUT_WR)
        return close.close_code

    with RawServer(script) as server:
        tracemalloc.start()
        try:
            connection = connect(server.uri, open_timeout=TIMEOUT, close_timeout=2)
            with aborting(connection), pytest.raises(Exception) as exc_info:  # noqa: PT011
                connection.recv(TIMEOUT)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert server.join() == 1009
    exc = exc_info.value
    assert exc.__class__.__name__ == "ConnectionClosedError"
    assert exc.sent is not None  # type: ignore[attr-defined]
    assert exc.sent.code == 1009  # type: ignore[attr-defined]
    assert peak < 32 * 2**20


def _new_threads(before: set[threading.Thread]) -> set[str]:
    """Names of the threads started since ``before``, except the shared timer thread."""
    return {thread.name for thread in set(threading.enumerate()) - before} - {"syncws-timer"}


@pytest.mark.parametrize("ping_interval", [None, 30])
def test_threads_after_connect(ping_interval: float | None) -> None:
    """A client connection runs at most one thread, its reader; none while recv() reads.

    The reader thread starts once the socket went unread for a moment, so that pings are
    answered while nobody receives. Keepalive runs on the shared timer thread.
    """

    def script(peer: RawPeer) -> None:
        peer.accept()
        peer.idle()

    with RawServer(script) as server:
        before = set(threading.enumerate())
        connection = client(server.uri, ping_interval=ping_interval)
        reader_name = f"syncws-reader-{connection.id.hex[:8]}"
        with aborting(connection):
            assert _new_threads(before) <= {reader_name}
            assert wait_for(lambda: _new_threads(before) == {reader_name}, TIMEOUT)
            readers = [thread for thread in threading.enumerate() if thread.name == reader_name]
            assert len(readers) == 1
            assert readers[0].daemon
        readers[0].join(TIMEOUT)
        assert not readers[0].is_alive()


def test_logs_frames_to_syncws_client_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="syncws.client")
    with ws_server(echo) as server, client(server.uri) as connection:
        connection.send("logged")
        assert connection.recv(timeout=TIMEOUT) == "logged"
    messages = [record.getMessage() for record in caplog.records if record.name == "syncws.client"]
    assert any(message.startswith("> TEXT 'logged'") for message in messages)
    assert any(message.startswith("< TEXT 'logged'") for message in messages)
    assert "= connection is OPEN" in messages


def test_custom_logger(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("my.app.websocket")
    caplog.set_level(logging.DEBUG, logger="my.app.websocket")
    with ws_server(echo) as server, client(server.uri, logger=logger) as connection:
        connection.send("hi")
        connection.recv(timeout=TIMEOUT)
    assert any(record.name == "my.app.websocket" for record in caplog.records)
    assert not any(record.name == "syncws.client" for record in caplog.records)
