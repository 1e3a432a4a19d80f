"""Helpers for the tests that do real I/O: leak checks, peers and certificates.

Every peer listens on the loopback interface only, every blocking call has a timeout and
every thread and socket started here is cleaned up by the context manager that started it.

* :func:`check_leaks`: checks that a block left no thread and no file descriptor behind (the
  shared ``syncws-timer`` thread excepted: it exits on its own when idle); the ``no_leaks``
  fixture of ``conftest.py`` applies it to a test.
* :func:`ws_server`: the ``websockets`` sync server, a well-behaved peer.
* :class:`RawServer`: a scripted TCP server, a hostile peer that answers the handshake and
  then reads and writes raw frame bytes.
* :func:`make_certificate`: the committed self-signed test certificate for ``localhost``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.server import Server, ServerConnection, serve, unix_serve

from syncws.client import ClientConnection, connect
from syncws.core.headers import accept_key
from syncws.server import ServerConnection as SyncwsServerConnection

__all__ = [
    "TIMEOUT",
    "aborting",
    "client",
    "Certificate",
    "RawFrame",
    "RawPeer",
    "RawServer",
    "WSServer",
    "check_leaks",
    "close_payload",
    "count_fds",
    "echo",
    "make_certificate",
    "other_threads",
    "server_frame",
    "wait_for",
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


# Frames on the wire.


def server_frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """Serialize an unmasked frame, as a server sends it."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes([first, size])
    elif size < 2**16:
        header = bytes([first, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, 127]) + size.to_bytes(8, "big")
    return header + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a Close frame."""
    return code.to_bytes(2, "big") + reason.encode()


@dataclasses.dataclass
class RawFrame:
    """A frame read from a client, unmasked."""

    opcode: int
    fin: bool
    payload: bytes

    @property
    def close_code(self) -> int:
        """The code of a Close frame; 1005 when it has none."""
        assert self.opcode == 0x8, f"not a Close frame: opcode {self.opcode:#x}"
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else 1005


# The hostile peer.


class RawPeer:
    """The server end of one TCP connection, driven by a test script in its own thread."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        """Set when the test is over: scripts that wait or loop must end."""
        self._buffer = bytearray()
        sock.settimeout(TIMEOUT)

    def _fill(self, size: int, deadline: float) -> bool:
        """Read until the buffer holds ``size`` bytes; ``False`` at the end of the stream."""
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("raw server: nothing to read in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                return False
            self._buffer += data
        return True

    def read_request(self, timeout: float = TIMEOUT) -> bytes:
        """Read the client's HTTP request, up to the empty line; at most 64 KiB."""
        deadline = time.monotonic() + timeout
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            assert len(self._buffer) < 2**16, "request too long"
            if not self._fill(len(self._buffer) + 1, deadline):
                raise EOFError("raw server: connection closed during the request")
        request = bytes(self._buffer[: end + 4])
        del self._buffer[: end + 4]
        return request

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

    def send(self, data: bytes) -> None:
        """Write every byte, within the helpers' timeout."""
        self.sock.settimeout(TIMEOUT)
        self.sock.sendall(data)

    def _frame_size(self) -> int | None:
        """The size of the frame at the start of the buffer, once its header is there."""
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        assert buffer[1] & 0x80, "client frames must be masked"
        size = buffer[1] & 0x7F
        offset = 2
        if size == 126:
            offset = 4
        elif size == 127:
            offset = 10
        if len(buffer) < offset:
            return None
        if size == 126:
            size = int.from_bytes(buffer[2:4], "big")
        elif size == 127:
            size = int.from_bytes(buffer[2:10], "big")
        return offset + 4 + size

    def read_frame(self, timeout: float = TIMEOUT) -> RawFrame | None:
        """Read one frame from the client and unmask it; ``None`` at the end of the stream."""
        deadline = time.monotonic() + timeout
        if not self._fill(2, deadline):
            assert not self._buffer, "stream ends inside a frame"
            return None
        while (total := self._frame_size()) is None:
            assert self._fill(len(self._buffer) + 1, deadline), "stream ends inside a frame"
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
            self._buffer += data
        frames = []
        while (total := self._frame_size()) is not None and len(self._buffer) >= total:
            frames.append(self._pop_frame(total))
        return frames

    def _pop_frame(self, total: int) -> RawFrame:
        first = self._buffer[0]
        header = {126: 4, 127: 10}.get(self._buffer[1] & 0x7F, 2)
        key = bytes(self._buffer[header : header + 4])
        start = header + 4
        size = total - start
        masked = bytes(self._buffer[start:total])
        del self._buffer[:total]
        # XOR with the key repeated: as one big integer, fast enough for a few MiB.
        repeated = (key * (size // 4 + 1))[:size]
        payload = (int.from_bytes(masked, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
            size, "big"
        )
        return RawFrame(first & 0x0F, bool(first & 0x80), payload)

    def read_close(self, timeout: float = TIMEOUT) -> tuple[RawFrame, list[RawFrame]]:
        """Read frames up to the client's Close; return it and the frames before it."""
        deadline = time.monotonic() + timeout
        before: list[RawFrame] = []
        while True:
            frame = self.read_frame(max(0.0, deadline - time.monotonic()))
            assert frame is not None, "the client closed TCP without a Close frame"
            if frame.opcode == 0x8:
                return frame, before
            before.append(frame)

    def read_eof(self, timeout: float = TIMEOUT) -> int:
        """Read and drop bytes until the end of the stream; return how many."""
        deadline = time.monotonic() + timeout
        count = len(self._buffer)
        self._buffer.clear()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("raw server: the client did not close in time")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return count
            if not data:
                return count
            count += len(data)

    def idle(self) -> None:
        """Do nothing, neither read nor write, until the test ends."""
        self.stop.wait(TIMEOUT)


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


# The client under test.


def client(uri: str, **kwargs: Any) -> ClientConnection:
    """:func:`~syncws.connect` with a short open timeout, without compression unless asked."""
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", 2)
    connection: ClientConnection = connect(uri, **kwargs)
    return connection


@contextlib.contextmanager
def aborting(connection: ClientConnection) -> Iterator[ClientConnection]:
    """Abort the connection on exit and wait until it is closed, for peers that won't close."""
    try:
        yield connection
    finally:
        connection.abort()
        connection.wait_closed(TIMEOUT)


# Certificates.


@dataclasses.dataclass
class Certificate:
    """A self-signed certificate and its key, as PEM files."""

    cert: Path
    key: Path


def make_certificate(directory: Path | None = None) -> Certificate:
    """The test certificate: self-signed for ``localhost``, ``127.0.0.1`` and ``::1``.

    It was generated once, valid for 100 years, and is committed next to the tests:
    ``tests/localhost.pem`` holds the key and the certificate, ``tests/localhost.crt`` the
    certificate alone, to trust it as a CA. ``directory`` is accepted and unused, for callers
    that pass one.
    """
    here = Path(__file__).resolve().parent
    return Certificate(here / "localhost.crt", here / "localhost.pem")
