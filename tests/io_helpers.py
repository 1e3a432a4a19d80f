"""Helpers for the tests that do real I/O: leak checks, peers and certificates.

Every peer listens on the loopback interface only, every blocking call has a timeout and
every thread and socket started here is cleaned up by the context manager that started it.

* :func:`check_leaks`: checks that a block left no thread and no file descriptor behind (the
  shared ``syncws-timer`` thread excepted: it exits on its own when idle); the ``no_leaks``
  fixture of ``conftest.py`` applies it to a test.
* :func:`ws_server`: the ``websockets`` sync server, a well-behaved peer.
* :class:`RawPeer`: a hostile peer that speaks the handshake and frames byte by byte, on either
  side; :class:`RawServer` runs a script with one in a thread, :meth:`RawPeer.connect` makes
  one a client.
* :func:`check_flask_chat` and :func:`check_chat_page`: the chat examples, seen by clients,
  behind whatever server or proxy runs them.
* :func:`make_certificate`: the committed self-signed test certificate for ``localhost``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import http.client
import importlib.util
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import MASK_KEY
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import Server, ServerConnection, serve, unix_serve

from syncws.client import ClientConnection, connect
from syncws.core.headers import accept_key
from syncws.server import Server as SyncwsServer
from syncws.server import ServerConnection as SyncwsServerConnection

__all__ = [
    "TIMEOUT",
    "KEY",
    "Background",
    "Certificate",
    "RawFrame",
    "RawPeer",
    "RawResponse",
    "RawServer",
    "WSServer",
    "aborting",
    "check_chat_page",
    "check_flask_chat",
    "check_leaks",
    "client",
    "close_payload",
    "count_fds",
    "echo",
    "exchange",
    "frame_bytes",
    "import_fresh",
    "make_certificate",
    "other_threads",
    "require_ipv6_loopback",
    "running",
    "server_context",
    "syncws_echo",
    "terminate",
    "upgrade_request",
    "wait_for",
    "wrong_accept",
    "ws_server",
    "ws_unix_server",
]

TIMEOUT = 10.0
"""The longest any blocking call in a helper waits: a test that hits it has failed."""

SETTLE = 5.0
"""How long the leak check waits for threads and file descriptors to go away."""

TIMER_THREAD = "syncws-timer"


# Leak checks.


def other_threads() -> set[threading.Thread]:
    """The live threads, without the shared timer thread, which exits on its own."""
    return {thread for thread in threading.enumerate() if thread.name != TIMER_THREAD}


def count_fds() -> int:
    """The number of open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def wait_for(predicate: Callable[[], bool], timeout: float = SETTLE, step: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


@contextlib.contextmanager
def check_leaks() -> Iterator[None]:
    """Fail if the block leaves threads or file descriptors behind, once they settled."""
    threads = other_threads()
    fds = count_fds()
    yield
    if not wait_for(lambda: other_threads() <= threads):
        leaked = sorted(thread.name for thread in other_threads() - threads)
        pytest.fail(f"threads left running: {leaked}")
    if not wait_for(lambda: count_fds() <= fds):
        pytest.fail(f"file descriptors leaked: {count_fds() - fds}")


def require_ipv6_loopback() -> None:
    """Skip the test where this machine cannot listen on ``::1``."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")


def terminate(process: subprocess.Popen[Any]) -> None:
    """End a program with SIGTERM, or SIGKILL if it is still there after the timeout."""
    process.terminate()
    try:
        process.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(TIMEOUT)


# Calls in the background.


class Background:
    """Run a call in a thread; keep its result or exception, and when it ended."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.ended = 0.0
        self.done = threading.Event()

        def run() -> None:
            try:
                self.result = call()
            except BaseException as exc:
                self.error = exc
            finally:
                self.ended = time.monotonic()
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = TIMEOUT) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the background call did not return"
        if self.error is not None:
            raise self.error
        return self.result


# Frames on the wire.


def frame_bytes(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = False
) -> bytes:
    """Serialize a frame: unmasked as a server sends it, or masked with :data:`MASK_KEY`."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        header = bytes([first, mask_bit | size])
    elif size < 2**16:
        header = bytes([first, mask_bit | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, mask_bit | 127]) + size.to_bytes(8, "big")
    if mask:
        return header + MASK_KEY + _xor(payload, MASK_KEY)
    return header + payload


def _xor(data: bytes, key: bytes) -> bytes:
    """Mask or unmask ``data`` with a 4-byte ``key`` (RFC 6455 §5.3)."""
    size = len(data)
    # XOR with the key repeated: as one big integer, fast enough for a few MiB.
    repeated = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a Close frame."""
    return code.to_bytes(2, "big") + reason.encode()


@dataclasses.dataclass
class RawFrame:
    """A frame read by a raw peer, unmasked."""

    opcode: int
    fin: bool
    payload: bytes

    @property
    def close_code(self) -> int:
        """The code of a Close frame; 1005 when it has none."""
        assert self.opcode == 0x8, f"not a Close frame: opcode {self.opcode:#x}"
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else 1005


# The opening handshake, by hand.

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
"""The Sec-WebSocket-Key of RFC 6455 §1.3, which a raw client sends."""


def upgrade_request(path: str = "/", headers: bytes = b"") -> bytes:
    """A valid opening handshake request, with the fixed key :data:`KEY`."""
    return (
        (
            f"GET {path} HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
        ).encode()
        + headers
        + b"\r\n"
    )


class RawResponse:
    """An HTTP response read by a raw client."""

    def __init__(self, head: bytes, body: bytes = b"") -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ")[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        self.body = body


# The hostile peer.


class RawPeer:
    """One end of a TCP connection that speaks WebSocket byte by byte, driven by a test.

    As a server (the default), it answers the handshake with :meth:`accept`, sends unmasked
    frames and checks that the frames it reads are masked. As a client (``client=True``, or
    :meth:`connect`), it opens the handshake with :meth:`handshake`, masks the frames it sends
    and checks that those it reads are not masked (RFC 6455 §5.1).

    Every read has a deadline; the bytes read but not consumed yet are in :attr:`buffer`.
    """

    def __init__(
        self, sock: socket.socket, stop: threading.Event | None = None, *, client: bool = False
    ) -> None:
        self.sock = sock
        self.client = client
        self.stop = threading.Event() if stop is None else stop
        """Set when the test is over: scripts that wait or loop must end."""
        self.buffer = bytearray()
        self._name = "raw client" if client else "raw server"
        sock.settimeout(TIMEOUT)

    @classmethod
    def connect(
        cls, port: int | None, host: str = "127.0.0.1", *, rcvbuf: int | None = None
    ) -> RawPeer:
        """Open a TCP connection to ``port`` as a client; ``rcvbuf`` sets ``SO_RCVBUF``."""
        assert port is not None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(TIMEOUT)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock, client=True)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        """Write every byte, within the helpers' timeout."""
        self.sock.settimeout(TIMEOUT)
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True) -> None:
        """Send a frame, masked when this end is the client."""
        self.send(frame_bytes(opcode, payload, fin=fin, mask=self.client))

    # Reading bytes.

    def _fill(self, size: int, deadline: float) -> bool:
        """Read until the buffer holds ``size`` bytes; ``False`` at the end of the stream."""
        while len(self.buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self._name}: nothing to read in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                return False
            self.buffer += data
        return True

    def read_all(self, timeout: float = TIMEOUT) -> bytes:
        """Read until the peer closes; return what came, buffered bytes included."""
        deadline = time.monotonic() + timeout
        data = bytes(self.buffer)
        self.buffer.clear()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self._name}: the peer did not close in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def read_eof(self, timeout: float = TIMEOUT) -> int:
        """Read until the peer closes; return how many bytes came."""
        return len(self.read_all(timeout))

    def wait_eof(self, timeout: float = TIMEOUT) -> float:
        """Read until the peer closes; return the time it did."""
        self.read_all(timeout)
        return time.monotonic()

    # The opening handshake.

    def _read_head(self, timeout: float) -> bytes:
        """Read an HTTP head, up to and with the empty line; at most 64 KiB."""
        deadline = time.monotonic() + timeout
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            assert len(self.buffer) < 2**16, "HTTP head too long"
            if not self._fill(len(self.buffer) + 1, deadline):
                raise EOFError(f"{self._name}: connection closed in the HTTP head")
        head = bytes(self.buffer[: end + 4])
        del self.buffer[: end + 4]
        return head

    def read_request(self, timeout: float = TIMEOUT) -> bytes:
        """Read the client's HTTP request, up to the empty line."""
        return self._read_head(timeout)

    def read_response(self, timeout: float = TIMEOUT) -> RawResponse:
        """Read an HTTP response and its body, as long as Content-Length says."""
        deadline = time.monotonic() + timeout
        response = RawResponse(self._read_head(timeout)[:-4])
        size = int(response.headers.get("content-length", "0"))
        assert self._fill(size, deadline), "connection closed in the response body"
        response.body = bytes(self.buffer[:size])
        del self.buffer[:size]
        return response

    def accept(self, extra: bytes = b"", *, headers: bytes = b"") -> bytes:
        """Read the request and answer a valid 101, followed in the same write by ``extra``.

        Returns the request.
        """
        request = self.read_request()
        key = ""
        for line in request.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        assert key, "no Sec-WebSocket-Key in the request"
        response = (
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n" + headers + b"\r\n"
        )
        self.send(response + extra)
        return request

    def handshake(self, path: str = "/", headers: bytes = b"") -> RawResponse:
        """Send a valid request and check that the server accepts it."""
        self.send(upgrade_request(path, headers))
        response = self.read_response()
        assert response.status == 101, response.status_line
        assert response.headers["sec-websocket-accept"] == accept_key(KEY)
        return response

    # Reading frames.

    def _frame_size(self) -> int | None:
        """The size of the frame at the start of the buffer, once its header is there."""
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        if self.client:
            assert not buffer[1] & 0x80, "server frames must not be masked"
        else:
            assert buffer[1] & 0x80, "client frames must be masked"
        size = buffer[1] & 0x7F
        offset = {126: 4, 127: 10}.get(size, 2)
        if len(buffer) < offset:
            return None
        if size == 126:
            size = int.from_bytes(buffer[2:4], "big")
        elif size == 127:
            size = int.from_bytes(buffer[2:10], "big")
        return offset + (0 if self.client else 4) + size

    def _pop_frame(self, total: int) -> RawFrame:
        first = self.buffer[0]
        start = {126: 4, 127: 10}.get(self.buffer[1] & 0x7F, 2)
        if self.client:
            payload = bytes(self.buffer[start:total])
        else:
            key = bytes(self.buffer[start : start + 4])
            payload = _xor(bytes(self.buffer[start + 4 : total]), key)
        del self.buffer[:total]
        return RawFrame(first & 0x0F, bool(first & 0x80), payload)

    def pop_frames(self) -> list[RawFrame]:
        """The whole frames in the buffer, without reading."""
        frames = []
        while (total := self._frame_size()) is not None and len(self.buffer) >= total:
            frames.append(self._pop_frame(total))
        return frames

    def read_frame(self, timeout: float = TIMEOUT) -> RawFrame | None:
        """Read one frame and unmask it; ``None`` at the end of the stream."""
        deadline = time.monotonic() + timeout
        if not self._fill(2, deadline):
            assert not self.buffer, "stream ends inside a frame"
            return None
        while (total := self._frame_size()) is None:
            assert self._fill(len(self.buffer) + 1, deadline), "stream ends inside a frame"
        assert self._fill(total, deadline), "stream ends inside a frame"
        return self._pop_frame(total)

    def read_available(self) -> list[RawFrame]:
        """Read the frames that already arrived, without waiting."""
        # Non-blocking mode: with a timeout, recv() would wait for data first.
        self.sock.settimeout(0)
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not data:
                break
            self.buffer += data
        return self.pop_frames()

    def read_close(self, timeout: float = TIMEOUT) -> tuple[RawFrame, list[RawFrame]]:
        """Read frames up to the peer's Close; return it and the frames before it."""
        deadline = time.monotonic() + timeout
        before: list[RawFrame] = []
        while True:
            frame = self.read_frame(max(0.0, deadline - time.monotonic()))
            assert frame is not None, "the peer closed TCP without a Close frame"
            if frame.opcode == 0x8:
                return frame, before
            before.append(frame)

    def idle(self) -> None:
        """Do nothing, neither read nor write, until the test ends."""
        self.stop.wait(TIMEOUT)


def wrong_accept(peer: RawPeer) -> None:
    """A script: answer the request with a 101 whose Sec-WebSocket-Accept is wrong."""
    peer.read_request()
    peer.send(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"
    )
    peer.read_eof()


class RawServer:
    """A TCP server for one connection, run by ``script(peer)`` in a thread.

    Use it as a context manager: on exit the script is told to stop, its socket is shut down
    to wake it, and its thread is joined. :meth:`join` waits for the script to end by itself
    and returns what it returned, or raises what it raised.

    Args:
        script: what the server does with the connection.
        rcvbuf: ``SO_RCVBUF`` of the accepted socket, to make it fill up sooner.
        sndbuf: ``SO_SNDBUF`` of the accepted socket.
    """

    def __init__(
        self,
        script: Callable[[RawPeer], Any],
        *,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
    ) -> None:
        self.script = script
        self.stop = threading.Event()
        self.peer: RawPeer | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Accepted sockets inherit the buffer sizes of the listening socket.
            if rcvbuf is not None:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf is not None:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
        except BaseException:
            listener.close()
            raise
        self.listener = listener
        self.port: int = listener.getsockname()[1]
        self.uri = f"ws://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self._run, name="raw-server", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn = None
        try:
            deadline = time.monotonic() + TIMEOUT
            self.listener.settimeout(0.02)
            while conn is None:
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                with contextlib.suppress(TimeoutError):
                    conn, _ = self.listener.accept()
            self.peer = RawPeer(conn, self.stop)
            # close() reads self.peer after setting stop: it shuts the socket down, or the
            # script doesn't start.
            if self.stop.is_set():
                return
            self.result = self.script(self.peer)
        except BaseException as exc:
            # Once the test told the script to stop, its errors are the teardown's doing.
            if not self.stop.is_set():
                self.error = exc
        finally:
            self.finished.set()

    def join(self, timeout: float = TIMEOUT) -> Any:
        """Wait for the script to end; return its result or raise its error."""
        assert self.finished.wait(timeout), "the raw server's script did not end in time"
        if self.error is not None:
            raise self.error
        return self.result

    def close(self) -> None:
        """Stop the script, wake it, wait for its thread and close the sockets."""
        self.stop.set()
        peer = self.peer
        if peer is not None:
            with contextlib.suppress(OSError):
                peer.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the raw server's thread did not end"
        # Read it again: the thread may have accepted a connection meanwhile.
        if self.peer is not None:
            self.peer.sock.close()
        self.listener.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        if exc_info[0] is None and self.error is not None:
            raise self.error


# The well-behaved peer.


@dataclasses.dataclass
class WSServer:
    """A running ``websockets`` server."""

    server: Server
    uri: str


def _run_server(server: Server, uri: str) -> Iterator[WSServer]:
    thread = threading.Thread(target=server.serve_forever, name="ws-server")
    thread.start()
    try:
        yield WSServer(server, uri)
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "the websockets server did not stop"
        # serve_forever() leaves its selector in a reference cycle: release its descriptor
        # now, so that the leak check only sees syncws's own.
        gc.collect()
        # websockets 16 (the newest for Python 3.10) never closes the pipe it wakes
        # serve_forever() with; websockets 17 doesn't have it.
        for name in ("shutdown_watcher", "shutdown_notifier"):
            fd = getattr(server, name, None)
            if isinstance(fd, int):
                with contextlib.suppress(OSError):
                    os.close(fd)


@contextlib.contextmanager
def ws_server(
    handler: Callable[[ServerConnection], None],
    host: str = "127.0.0.1",
    *,
    sock: socket.socket | None = None,
    **kwargs: Any,
) -> Iterator[WSServer]:
    """Run a ``websockets`` server in a thread, without compression nor keepalive by default.

    Args:
        handler: the connection handler.
        host: the address to listen on, when ``sock`` is not given.
        sock: a listening socket to use instead.
        kwargs: for :func:`websockets.sync.server.serve`.
    """
    kwargs.setdefault("compression", None)
    kwargs.setdefault("ping_interval", None)
    if sock is None:
        server = serve(handler, host, 0, **kwargs)
    else:
        server = serve(handler, sock=sock, **kwargs)
    host, port = server.socket.getsockname()[:2]
    scheme = "wss" if kwargs.get("ssl") is not None else "ws"
    netloc = f"[{host}]" if ":" in host else host
    yield from _run_server(server, f"{scheme}://{netloc}:{port}/")


@contextlib.contextmanager
def ws_unix_server(
    handler: Callable[[ServerConnection], None], path: str, **kwargs: Any
) -> Iterator[WSServer]:
    """Run a ``websockets`` server on a Unix socket in a thread."""
    kwargs.setdefault("compression", None)
    kwargs.setdefault("ping_interval", None)
    server = unix_serve(handler, path, **kwargs)
    yield from _run_server(server, "ws://localhost/")


def echo(websocket: ServerConnection) -> None:
    """A handler that sends back every message, as it came."""
    with contextlib.suppress(Exception):
        for message in websocket:
            websocket.send(message)


def syncws_echo(connection: SyncwsServerConnection) -> None:
    """The same for a syncws server; an error reaches the server, which closes with 1011."""
    for message in connection:
        connection.send(message)


@contextlib.contextmanager
def running(server: SyncwsServer) -> Iterator[SyncwsServer]:
    """Run ``serve_forever()`` of a syncws server in a thread; shut it down and join it on exit.

    :func:`syncws.testing.run_server` builds its server from a handler: this runs one that the
    test built otherwise, with ``serve_demo()``, on a socket of its own, or with options that
    need the :class:`~syncws.server.Server` before it runs.
    """
    thread = threading.Thread(target=server.serve_forever, name="test-serve-forever")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown(TIMEOUT)
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "serve_forever() did not return"


# The client under test.


def client(uri: str, **kwargs: Any) -> ClientConnection:
    """:func:`~syncws.connect` with a short open timeout, without compression unless asked."""
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", 2)
    connection: ClientConnection = connect(uri, **kwargs)
    return connection


def exchange(connection: ClientConnection) -> None:
    """Echo a short message and one larger than many TLS records, then close with 1000."""
    with connection:
        connection.send("hello")
        assert connection.recv(TIMEOUT) == "hello"
        message = bytes(range(256)) * 1024
        connection.send(message)
        assert connection.recv(TIMEOUT) == message
    assert connection.close_code == 1000


@contextlib.contextmanager
def aborting(connection: ClientConnection) -> Iterator[ClientConnection]:
    """Abort the connection on exit and wait until it is closed, for peers that won't close."""
    try:
        yield connection
    finally:
        connection.abort()
        connection.wait_closed(TIMEOUT)


# The examples.


def import_fresh(name: str, path: Path) -> ModuleType:
    """Import the file at ``path`` as a new module ``name``, forgetting any earlier import."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    spec.loader.exec_module(module)
    return module


def check_chat_page(port: int, websocket_path: str) -> None:
    """Check a chat example's HTTP side on ``port``: the page at ``/`` opens a WebSocket, and
    a plain GET of ``websocket_path`` is refused with 426 Upgrade Required."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200
        assert b"new WebSocket(" in response.read()
        connection.request("GET", websocket_path)
        response = connection.getresponse()
        assert response.status == 426
        assert response.getheader("Upgrade") == "websocket"
        assert response.read().startswith(b"Failed to open a WebSocket connection")
    finally:
        connection.close()


def check_flask_chat(port: int) -> None:
    """Check the Flask chat example on ``port``: a syncws client and a ``websockets`` client
    join, each message goes to both, stripped; then the page, as :func:`check_chat_page`."""
    uri = f"ws://127.0.0.1:{port}/chat"
    with connect(uri, open_timeout=TIMEOUT) as alice:
        assert alice.recv(TIMEOUT) == "* someone joined (1 here)"
        with ws_connect(uri, open_timeout=TIMEOUT) as bob:
            assert bob.recv(TIMEOUT) == "* someone joined (2 here)"
            assert alice.recv(TIMEOUT) == "* someone joined (2 here)"
            alice.send("hi bob")
            assert bob.recv(TIMEOUT) == "hi bob"
            assert alice.recv(TIMEOUT) == "hi bob"
            bob.send("  hi alice  ")
            assert alice.recv(TIMEOUT) == "hi alice"
            assert bob.recv(TIMEOUT) == "hi alice"
    check_chat_page(port, "/chat")


# Certificates.


@dataclasses.dataclass
class Certificate:
    """A self-signed certificate and its key, as PEM files."""

    cert: Path
    key: Path


def server_context() -> ssl.SSLContext:
    """A TLS server context with the test certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(make_certificate().key)
    return context


def make_certificate(directory: Path | None = None) -> Certificate:
    """The test certificate: self-signed for ``localhost``, ``127.0.0.1`` and ``::1``.

    It was generated once, valid for 100 years, and is committed next to the tests:
    ``tests/localhost.pem`` holds the key and the certificate, ``tests/localhost.crt`` the
    certificate alone, to trust it as a CA. ``directory`` is accepted and unused, for callers
    that pass one.
    """
    here = Path(__file__).resolve().parent
    return Certificate(here / "localhost.crt", here / "localhost.pem")
