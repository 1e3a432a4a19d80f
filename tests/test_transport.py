"""Tests of the socket and TLS transports, over real sockets."""

from __future__ import annotations

import contextlib
import platform
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from io_helpers import TIMEOUT, Background, Certificate, make_certificate

from syncws import transport as transport_module
from syncws.timers import Timer
from syncws.transport import Chunk, SocketTransport, TLSTransport, Transport, tls_handshake

pytestmark = pytest.mark.usefixtures("no_leaks")


SMALL_BUFFER = 4096


@contextlib.contextmanager
def unix_pair(sndbuf: int | None = None) -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        if sndbuf is not None:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
        b.settimeout(TIMEOUT)
        yield a, b


@contextlib.contextmanager
def tcp_pair(small: bool = False) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of TCP sockets on the loopback interface."""
    with socket.socket() as listener:
        if small:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.socket()
        with client:
            if small:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
            client.settimeout(TIMEOUT)
            client.connect(listener.getsockname())
            listener.settimeout(TIMEOUT)
            server, _ = listener.accept()
            with server:
                server.settimeout(TIMEOUT)
                yield client, server


def read_exactly(sock: socket.socket, size: int) -> bytes:
    """Read ``size`` bytes from a socket with a timeout."""
    data = bytearray()
    deadline = time.monotonic() + TIMEOUT
    while len(data) < size:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(size - len(data))
        assert chunk, "unexpected end of stream"
        data += chunk
    return bytes(data)


def recv_exactly(transport: Transport, size: int) -> bytes:
    """Read ``size`` bytes from a transport with a timeout."""
    data = bytearray()
    deadline = time.monotonic() + TIMEOUT
    while len(data) < size:
        chunk = transport.recv(size - len(data), max(0.01, deadline - time.monotonic()))
        assert chunk, "unexpected end of stream"
        data += chunk
    return bytes(data)


# Socket transport.


def test_send_recv() -> None:
    with unix_pair() as (a, b):
        transport = SocketTransport(a)
        assert a.gettimeout() is None  # blocking mode
        chunks: list[Chunk] = [b"one", b"two", b"three"]
        assert transport.send(chunks, None) is True
        assert chunks == []  # consumed
        assert read_exactly(b, 11) == b"onetwothree"
        b.sendall(b"back")
        assert recv_exactly(transport, 4) == b"back"


def recv_into_exactly(transport: Transport, size: int) -> bytes:
    """Read ``size`` bytes from a transport into one buffer, with a timeout."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    deadline = time.monotonic() + TIMEOUT
    while done < size:
        count = transport.recv_into(view[done:], max(0.01, deadline - time.monotonic()))
        assert count, "unexpected end of stream"
        done += count
    return bytes(buffer)


def test_recv_into() -> None:
    with unix_pair() as (a, b):
        transport = SocketTransport(a)
        b.sendall(b"into the buffer")
        assert recv_into_exactly(transport, 15) == b"into the buffer"
        with pytest.raises(TimeoutError):
            transport.recv_into(memoryview(bytearray(10)), 0)
        with pytest.raises(TimeoutError):
            transport.recv_into(memoryview(bytearray(10)), 0.05)
        b.shutdown(socket.SHUT_WR)
        assert transport.recv_into(memoryview(bytearray(10)), TIMEOUT) == 0


class RecvOnly(Transport):
    """A transport that implements what it must and nothing more."""

    def recv(self, bufsize: int, timeout: float | None = None) -> bytes:
        return b"abcdef"[:bufsize]

    def send(self, chunks: list[Chunk], timeout: float | None, *, last: bool = False) -> bool:
        raise NotImplementedError

    def backlog(self) -> int:
        return 0

    def shutdown_write(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_recv_into_of_a_transport_that_only_recvs() -> None:
    # A transport that implements recv() only gets a recv_into() that copies.
    buffer = bytearray(b"..........")
    assert RecvOnly().recv_into(memoryview(buffer)[2:6]) == 4
    assert buffer == b"..abcd...."


def test_send_many_chunks() -> None:
    # More buffers than one sendmsg() call takes.
    with unix_pair() as (a, b):
        transport = SocketTransport(a)
        chunks: list[Chunk] = [bytes([i]) * 10 for i in range(200)]
        expected = b"".join(chunks)
        assert transport.send(chunks, TIMEOUT) is True
        assert read_exactly(b, len(expected)) == expected


def seconds_to_time_out(transport: Transport, timeout: float) -> float:
    """How long ``transport.recv(10, timeout)`` takes to raise TimeoutError."""
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        transport.recv(10, timeout)
    return time.monotonic() - start


def test_recv_timeout() -> None:
    with unix_pair() as (a, _):
        assert 0.05 <= seconds_to_time_out(SocketTransport(a), 0.1) < 3


def test_wait_readable_without_a_buffer() -> None:
    with unix_pair() as (a, b):
        transport = SocketTransport(a)
        assert transport.wait_readable(0) is False
        start = time.monotonic()
        assert transport.wait_readable(0.05) is False
        assert time.monotonic() - start >= 0.04
        b.sendall(b"ready")
        assert transport.wait_readable(0) is True
        assert transport.wait_readable(None) is True
        assert recv_exactly(transport, 5) == b"ready"
        b.shutdown(socket.SHUT_WR)
        assert transport.wait_readable(TIMEOUT) is True  # the end of the stream is there
        assert transport.recv(10, TIMEOUT) == b""


def test_wait_readable_of_a_transport_that_cannot_tell() -> None:
    # It says a read may go ahead: the read then waits, with its buffer.
    assert RecvOnly().wait_readable(0) is True


def test_abort_wakes_wait_readable() -> None:
    with unix_pair() as (a, _):
        transport = SocketTransport(a)
        assert abort_while_blocked(transport, lambda: transport.wait_readable(TIMEOUT)) is True


def test_recv_timeouts_near_the_last_one_keep_the_socket_timeout() -> None:
    """A read with a deadline asks for a little less each time: no system call for that."""
    with unix_pair() as (a, b):
        transport = SocketTransport(a)
        calls: list[float | None] = []
        set_recv_timeout = transport._set_recv_timeout

        def counting(timeout: float | None) -> None:
            calls.append(timeout)
            set_recv_timeout(timeout)

        transport._set_recv_timeout = counting  # type: ignore[method-assign]
        # Up to 1 ms more or less, or longer but less than twice as long (that one waits in
        # two parts when nothing comes).
        for timeout in (10.0, 9.9995, 10.0005, 15.0):
            b.sendall(b"x")
            assert transport.recv(10, timeout) == b"x"
        assert calls == [10.0]
        b.sendall(b"x")
        assert transport.recv(10, 4.0) == b"x"  # shorter: set again
        b.sendall(b"x")
        assert transport.recv(10, None) == b"x"
        assert calls == [10.0, 4.0, None]


def test_recv_timeout_shorter_than_the_socket_timeout() -> None:
    with unix_pair() as (a, _):
        transport = SocketTransport(a)
        seconds_to_time_out(transport, 0.4)  # the socket's timeout is 0.4 s now
        assert 0.2 <= seconds_to_time_out(transport, 0.3) < 0.38  # not the socket's 0.4 s


def test_recv_timeout_longer_than_the_socket_timeout() -> None:
    """The socket's timeout runs out first: the read goes on for the rest of the time."""
    with unix_pair() as (a, b):
        transport = SocketTransport(a)
        seconds_to_time_out(transport, 0.4)  # the socket's timeout is 0.4 s now
        # It keeps 0.4 s, then waits 0.2 s more.
        assert 0.55 <= seconds_to_time_out(transport, 0.6) < 3
        # Data that comes after the socket's timeout, within the one asked for, is read.
        timer = threading.Timer(0.5, b.sendall, (b"late",))
        timer.start()
        try:
            assert transport.recv(10, 0.7) == b"late"
        finally:
            timer.join(TIMEOUT)


def test_recv_end_of_stream() -> None:
    with unix_pair() as (a, b):
        transport = SocketTransport(a)
        b.shutdown(socket.SHUT_WR)
        assert transport.recv(10, TIMEOUT) == b""


def test_send_timeout_zero_leaves_what_did_not_fit() -> None:
    with unix_pair(sndbuf=SMALL_BUFFER) as (a, b):
        transport = SocketTransport(a)
        data = bytes(range(256)) * 4096  # 1 MiB: much more than the buffers hold
        chunks: list[Chunk] = [data[: len(data) // 2], data[len(data) // 2 :]]
        start = time.monotonic()
        assert transport.send(chunks, 0) is False
        assert time.monotonic() - start < 3  # it did not wait
        assert transport.backlog() == 0  # what the socket did not take is in chunks
        left = chunks
        rest = b"".join(left)
        written = len(data) - len(rest)
        assert 0 < written < len(data)
        # What's left is exactly the end of the data: nothing lost, nothing duplicated.
        assert rest == data[written:]
        # Read what was written while the rest is sent.
        received = bytearray(read_exactly(b, written))
        sender = threading.Thread(target=transport.send, args=(left, TIMEOUT))
        sender.start()
        received += read_exactly(b, len(rest))
        sender.join(TIMEOUT)
        assert not sender.is_alive()
        assert received == data


def test_send_leaves_a_view_of_a_chunk_taken_in_part() -> None:
    """What the socket did not take of a large chunk is a view of it: no copy per write."""
    with unix_pair(sndbuf=SMALL_BUFFER) as (a, b):
        transport = SocketTransport(a)
        data = bytes(range(256)) * 4096
        chunks: list[Chunk] = [b"head", data]
        assert transport.send(chunks, 0) is False
        assert len(chunks) == 1
        rest = chunks[0]
        assert isinstance(rest, memoryview)
        assert rest.obj is data
        written = 4 + len(data) - len(rest)
        received = bytearray(read_exactly(b, written))
        sender = threading.Thread(target=transport.send, args=(chunks, TIMEOUT))
        sender.start()
        received += read_exactly(b, len(rest))
        sender.join(TIMEOUT)
        assert not sender.is_alive()
        assert received == b"head" + data


def test_send_timeout_raises_when_peer_does_not_read() -> None:
    with unix_pair(sndbuf=SMALL_BUFFER) as (a, _):
        transport = SocketTransport(a)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            transport.send([b"x" * 2**20], 0.2)
        assert 0.15 <= time.monotonic() - start < 3


def test_send_waits_for_progress() -> None:
    """The timeout bounds each wait without progress, not the whole send."""
    with unix_pair(sndbuf=SMALL_BUFFER) as (a, b):
        transport = SocketTransport(a)
        data = b"y" * 2**19
        received = bytearray()

        def read_slowly() -> None:
            while len(received) < len(data):
                time.sleep(0.001)
                chunk = b.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        reader = threading.Thread(target=read_slowly)
        reader.start()
        try:
            assert transport.send([data], 0.5) is True
        finally:
            reader.join(TIMEOUT)
        assert not reader.is_alive()
        assert received == data


def abort_while_blocked(transport: Transport, call: Callable[[], object]) -> object:
    """Start ``call`` in a thread, abort ``transport`` while it blocks, check that the call ends
    within 2 s, and return what it returned or the ``OSError`` it raised."""
    blocked = Background(call)
    time.sleep(0.1)
    start = time.monotonic()
    transport.abort()
    blocked.thread.join(TIMEOUT)
    assert not blocked.thread.is_alive()
    assert blocked.ended - start < 2
    if isinstance(blocked.error, OSError):
        return blocked.error
    return blocked.join()


def test_abort_wakes_blocked_recv() -> None:
    with tcp_pair() as (client, _):
        transport = SocketTransport(client)
        # Linux returns the end of the stream, not an error.
        assert abort_while_blocked(transport, lambda: transport.recv(10, TIMEOUT)) == b""
        # The socket stays open until close(): its descriptor is not reused meanwhile.
        assert client.fileno() >= 0
        transport.abort()  # twice is fine
        transport.close()
        assert client.fileno() == -1


def test_abort_wakes_blocked_send() -> None:
    with unix_pair(sndbuf=SMALL_BUFFER) as (a, _):
        transport = SocketTransport(a)
        error = abort_while_blocked(transport, lambda: transport.send([b"z" * 2**20], TIMEOUT))
        assert isinstance(error, OSError)
        assert not isinstance(error, TimeoutError)


def test_shutdown_write() -> None:
    with tcp_pair() as (client, server):
        transport = SocketTransport(client)
        transport.send([b"last"], TIMEOUT)
        transport.shutdown_write()
        assert read_exactly(server, 4) == b"last"
        assert server.recv(10) == b""
        # The other direction still works.
        server.sendall(b"reply")
        assert recv_exactly(transport, 5) == b"reply"


def test_closes_give_freed_memory_back_once_a_second_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims: list[int] = []
    scheduled: list[tuple[float, Callable[[], object]]] = []

    def call_later(delay: float, callback: Callable[[], object]) -> Timer:
        scheduled.append((delay, callback))
        return Timer(0.0, callback)

    monkeypatch.setattr(transport_module, "_malloc_trim", trims.append)
    monkeypatch.setattr(transport_module, "call_later", call_later)
    monkeypatch.setattr(transport_module, "_trim", None)
    for _ in range(3):
        with unix_pair() as (a, _b):
            SocketTransport(a).close()
            assert a.fileno() == -1
    # One trim for the three closes, a second later, once their memory is freed.
    assert [delay for delay, _ in scheduled] == [1.0]
    assert trims == []
    scheduled[0][1]()
    assert trims == [0]
    with unix_pair() as (a, _b):
        SocketTransport(a).close()
    assert len(scheduled) == 2


def test_close_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "_malloc_trim", None)
    monkeypatch.setattr(transport_module, "_trim", None)
    with unix_pair() as (a, _b):
        SocketTransport(a).close()
        assert a.fileno() == -1
    assert transport_module._trim is None


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_malloc_trim_is_found_on_glibc() -> None:
    trim = transport_module._find_malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)


def segments_sent(sock: socket.socket) -> int:
    """The TCP segments ``sock`` sent: ``tcpi_segs_out`` of Linux's ``struct tcp_info``."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int.from_bytes(info[136:140], sys.byteorder)


@pytest.mark.skipif(not hasattr(socket, "MSG_MORE"), reason="MSG_MORE is Linux's")
@pytest.mark.parametrize(("last", "segments"), [(True, 1), (False, 2)])
def test_last_bytes_go_out_with_the_end_of_the_stream(last: bool, segments: int) -> None:
    """Bytes sent just before shutdown_write() share the FIN's packet: the peer gets one
    packet, not two, to wake up for (the server's Close, at the end of every connection)."""
    with tcp_pair() as (client, server):
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = SocketTransport(client)
        before = segments_sent(client)
        transport.send([b"\x88\x02", b"\x03\xe8"], TIMEOUT, last=last)
        transport.shutdown_write()
        assert read_exactly(server, 4) == b"\x88\x02\x03\xe8"
        assert server.recv(10) == b""
        assert segments_sent(client) - before == segments


# TLS transport.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def server_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert, certificate.key)
    return context


def client_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificate.cert))
    return context


def tls_handshakes(
    client_inner: Transport,
    server_inner: Transport,
    certificate: Certificate,
    *,
    server_hostname: str = "localhost",
) -> tuple[TLSTransport, TLSTransport]:
    """Run the client's TLS handshake over ``client_inner``, the server's over
    ``server_inner`` in a thread."""
    deadline = time.monotonic() + TIMEOUT
    servers: list[TLSTransport] = []
    errors: list[BaseException] = []

    def handshake() -> None:
        try:
            servers.append(
                tls_handshake(
                    server_inner, server_context(certificate), server_side=True,
                    deadline=deadline,
                )
            )  # fmt: skip
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=handshake)
    thread.start()
    try:
        client = tls_handshake(
            client_inner,
            client_context(certificate),
            server_side=False,
            server_hostname=server_hostname,
            deadline=deadline,
        )
    finally:
        if thread.is_alive():
            thread.join(TIMEOUT)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    return client, servers[0]


@contextlib.contextmanager
def tls_pair(
    certificate: Certificate, *, small: bool = False, server_hostname: str = "localhost"
) -> Iterator[tuple[TLSTransport, TLSTransport]]:
    """Client and server TLS transports over TCP sockets, handshake done."""
    with tcp_pair(small) as (client_sock, server_sock):
        yield tls_handshakes(
            SocketTransport(client_sock),
            SocketTransport(server_sock),
            certificate,
            server_hostname=server_hostname,
        )


def test_tls_handshake_and_echo(certificate: Certificate) -> None:
    with tls_pair(certificate) as (client, server):
        assert isinstance(client, TLSTransport)
        assert isinstance(client.inner, SocketTransport)
        assert client.ssl_object.version() in ("TLSv1.2", "TLSv1.3")
        cert = client.ssl_object.getpeercert()
        assert cert is not None
        assert client.send([b"hello", b" ", b"tls"], TIMEOUT) is True
        assert recv_exactly(server, 9) == b"hello tls"
        assert server.send([b"echo: hello tls"], TIMEOUT) is True
        assert recv_exactly(client, 15) == b"echo: hello tls"
        assert client.send([b"and into a buffer"], TIMEOUT) is True
        assert recv_into_exactly(server, 17) == b"and into a buffer"


def test_tls_wait_readable_sees_what_tls_holds_already(certificate: Certificate) -> None:
    with tls_pair(certificate) as (client, server):
        assert server.wait_readable(0) is False
        assert client.send([b"one TLS record"], TIMEOUT) is True
        assert server.wait_readable(TIMEOUT) is True
        # Read part of the plaintext: the rest waits in the TLS session, not in the socket.
        assert recv_exactly(server, 3) == b"one"
        assert server.wait_readable(0) is True
        assert recv_exactly(server, 11) == b" TLS record"
        assert server.wait_readable(0) is False


def test_tls_large_transfer_both_ways(certificate: Certificate) -> None:
    data = bytes(range(256)) * 4096
    with tls_pair(certificate, small=True) as (client, server):
        received: list[bytes] = []

        def echo() -> None:
            message = recv_exactly(server, len(data))
            received.append(message)
            server.send([message], TIMEOUT)

        thread = threading.Thread(target=echo)
        thread.start()
        try:
            assert client.send([data], TIMEOUT) is True
            assert recv_exactly(client, len(data)) == data
        finally:
            thread.join(TIMEOUT)
        assert not thread.is_alive()
        assert received == [data]


def test_tls_recv_end_of_stream(certificate: Certificate) -> None:
    with tls_pair(certificate) as (client, server):
        server.send([b"bye"], TIMEOUT)
        server.shutdown_write()  # close_notify, then FIN
        assert recv_exactly(client, 3) == b"bye"
        assert client.recv(10, TIMEOUT) == b""
        assert client.recv_into(memoryview(bytearray(10)), TIMEOUT) == 0


def test_tls_abort_wakes_blocked_recv(certificate: Certificate) -> None:
    with tls_pair(certificate) as (client, _):
        result = abort_while_blocked(client, lambda: client.recv(10, TIMEOUT))
        # The end of the TCP stream without close_notify: an end of stream or a TLS error,
        # never a timeout.
        assert not isinstance(result, TimeoutError)
        assert result == b"" or isinstance(result, ssl.SSLError)


def flush_backlog(client: Transport, server: Transport, data: bytes) -> None:
    """Send what waits in ``client``'s backlog while a thread reads it from ``server``; check
    that ``data`` arrives whole and the backlog is empty."""
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(recv_exactly(server, len(data))))
    reader.start()
    try:
        assert client.send([], TIMEOUT) is True
    finally:
        reader.join(TIMEOUT)
    assert not reader.is_alive()
    assert received == [data]
    assert client.backlog() == 0


def test_tls_send_timeout_zero_keeps_encrypted_bytes(certificate: Certificate) -> None:
    """Encrypted bytes that did not fit wait in the backlog, until the caller sends again."""
    data = b"q" * 2**20
    with tls_pair(certificate, small=True) as (client, server):
        chunks: list[Chunk] = [data]
        assert client.send(chunks, 0) is False
        # The plaintext is taken, but encrypted bytes wait: the caller must call again.
        assert chunks == []
        assert client.backlog() > 0
        flush_backlog(client, server, data)


def test_tls_send_timeout(certificate: Certificate) -> None:
    with tls_pair(certificate, small=True) as (client, _):
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            client.send([b"w" * 2**20], 0.2)
        assert 0.15 <= time.monotonic() - start < 3


def test_tls_handshake_fails_verification(certificate: Certificate) -> None:
    with tcp_pair() as (client_sock, server_sock):
        deadline = time.monotonic() + TIMEOUT

        def handshake() -> None:
            with contextlib.suppress(OSError):
                tls_handshake(
                    SocketTransport(server_sock),
                    server_context(certificate),
                    server_side=True,
                    deadline=deadline,
                )

        thread = threading.Thread(target=handshake)
        thread.start()
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                tls_handshake(
                    SocketTransport(client_sock),
                    client_context(certificate),
                    server_side=False,
                    server_hostname="not-localhost.example",
                    deadline=deadline,
                )
        finally:
            client_sock.shutdown(socket.SHUT_RDWR)
            thread.join(TIMEOUT)
        assert not thread.is_alive()


def test_tls_handshake_timeout(certificate: Certificate) -> None:
    with tcp_pair() as (client_sock, _):
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            tls_handshake(
                SocketTransport(client_sock),
                client_context(certificate),
                server_side=False,
                server_hostname="localhost",
                deadline=time.monotonic() + 0.2,
            )
        assert 0.15 <= time.monotonic() - start < 3


def test_tls_handshake_connection_closed(certificate: Certificate) -> None:
    with tcp_pair() as (client_sock, server_sock):
        server_sock.shutdown(socket.SHUT_RDWR)
        with pytest.raises(OSError):  # noqa: PT011 (reset or end of stream)
            tls_handshake(
                SocketTransport(client_sock),
                client_context(certificate),
                server_side=False,
                server_hostname="localhost",
                deadline=time.monotonic() + TIMEOUT,
            )


# TLS inside TLS: to a wss:// server through an https:// proxy.


def test_tls_inside_tls(certificate: Certificate) -> None:
    data = bytes(range(256)) * 4096
    with tls_pair(certificate, small=True) as (outer_client, outer_server):
        client, server = tls_handshakes(outer_client, outer_server, certificate)
        # The same class, over another TLS transport instead of a socket.
        assert type(client) is type(outer_client) is TLSTransport
        assert client.inner is outer_client
        assert client.ssl_object is not outer_client.ssl_object

        # Encrypted twice; what the socket does not take waits in the outer transport.
        assert client.send([data], 0) is False
        assert client.backlog() == outer_client.backlog() > 0
        flush_backlog(client, server, data)

        # Both close_notify, then the end of the TCP stream.
        server.send([b"bye"], TIMEOUT)
        server.shutdown_write()
        assert recv_exactly(client, 3) == b"bye"
        assert client.recv(10, TIMEOUT) == b""
        assert outer_client.recv(10, TIMEOUT) == b""
