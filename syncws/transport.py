"""Byte transports for connections: a plain socket, or TLS over another transport.

A connection has one reader thread, blocked in :meth:`Transport.recv`, and writer threads that
take turns in :meth:`Transport.send` (the connection serializes them). Sends never block on the
socket's timeout mode: they use non-blocking system calls and wait for the socket to become
writable with ``poll()``, for at most the time they are given. So a blocking ``recv`` in one
thread and a send with a write timeout in another work on one socket.

Transports stack: :class:`SocketTransport` is the socket itself, and :class:`TLSTransport`
encrypts what it carries through an inner transport, which is a socket transport, or another
TLS transport for ``wss://`` through an ``https://`` proxy (TLS inside TLS).

TLS runs through :class:`ssl.SSLObject` and memory buffers instead of :class:`ssl.SSLSocket`:
OpenSSL does not allow two threads to use one TLS connection at the same time, so every use of
the TLS state takes a lock, and no system call ever runs under that lock.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar, cast

from .deadline import remaining
from .timers import Timer, call_later

__all__ = [
    "Chunk",
    "SocketTransport",
    "TLSTransport",
    "Transport",
    "release_freed_memory",
    "tls_handshake",
]

_T = TypeVar("_T")
_B = TypeVar("_B")

Chunk: TypeAlias = "bytes | memoryview"
"""Bytes to write: what is left of a payload that was partly written is a view of it."""

# What a read asks for, unless the last one filled its buffer: the first bytes of a message
# (once data streams in, reads take up to the full read size).
_WAIT_BUFSIZE = 4096

# How much sooner or later than asked a read may time out, in seconds: a read keeps the
# socket's timeout (SO_RCVTIMEO) when it is within this of the wanted one, or up to half of it.
_TIMEOUT_SLACK = 0.001

# Most systems accept at least this many buffers in one sendmsg() call (POSIX IOV_MAX >= 16).
_MAX_BUFFERS = 64

# Linux only: hold the bytes of a send() for the next one, or for the FIN of shutdown().
_MSG_MORE = getattr(socket, "MSG_MORE", 0)

# The most bytes one read takes during the TLS handshake.
_HANDSHAKE_BUFSIZE = 65536


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim()``, or ``None`` where there is no such function."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # noqa: PLC0415 (only where it is used, and optional in some builds)

        function = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):  # no ctypes, or not glibc (musl)
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return cast("Callable[[int], int]", function)


_malloc_trim = _find_malloc_trim()

# How long after a connection closes the heap is trimmed, in seconds: the memory of a
# connection is freed once its handler and its threads are done with it, soon after its
# socket closes; the connections that close in the meantime share the trim.
_TRIM_DELAY = 1.0
_trim_lock = threading.Lock()
_trim: Timer | None = None


def release_freed_memory() -> None:
    """Give the C heap's free pages back to the system soon, once for all the connections
    that close within a second (glibc only; elsewhere it does nothing).

    Each connection allocates message-sized buffers in its own threads, and glibc serves them
    from its arenas once its adaptive mmap threshold has risen above their size, which the
    first large message freed does: what they free stays in the arena, and a process keeps the
    memory of its busiest moment. ``malloc_trim(0)`` walks every arena and returns the free
    pages to the system (``madvise()``); it takes a few milliseconds, without the GIL, in the
    shared timer thread.
    """
    global _trim  # noqa: PLW0603 (one pending trim per process)
    if _malloc_trim is None:
        return
    with _trim_lock:
        if _trim is None:
            _trim = call_later(_TRIM_DELAY, _run_trim)


def _run_trim() -> None:
    global _trim  # noqa: PLW0603 (one pending trim per process)
    with _trim_lock:
        _trim = None
    if _malloc_trim is not None:
        _malloc_trim(0)


class Transport(ABC):
    """A byte stream to the peer, as a connection uses it.

    Only one thread may read at a time, and only one may write at a time; a read and a write
    may run at the same time in two threads.
    """

    @abstractmethod
    def recv(self, bufsize: int, timeout: float | None = None) -> bytes:
        """Read up to ``bufsize`` bytes, blocking; ``b""`` at the end of the stream.

        Raises:
            TimeoutError: nothing came within ``timeout`` seconds (``None``: no limit).
            OSError: the connection is broken.
        """

    def recv_into(self, buffer: memoryview, timeout: float | None = None) -> int:
        """Read up to ``len(buffer)`` bytes into ``buffer``, blocking; how many, ``0`` at the
        end of the stream.

        This one reads with :meth:`recv` and copies; transports that can read in place do.

        Raises:
            TimeoutError: nothing came within ``timeout`` seconds (``None``: no limit).
            OSError: the connection is broken.
        """
        data = self.recv(len(buffer), timeout)
        size = len(data)
        buffer[:size] = data
        return size

    def wait_readable(self, timeout: float | None = None) -> bool:
        """Wait until a read would return at once (bytes, the end of the stream or an
        error), without a buffer; ``False`` if ``timeout`` seconds passed first.

        A connection that waits long for its next message waits here, and lends a buffer to
        :meth:`recv_into` only once bytes are there. This one does not wait: a transport
        that can't tell says a read may go ahead, and the read waits with its buffer.
        """
        return True

    @abstractmethod
    def send(self, chunks: list[Chunk], timeout: float | None, *, last: bool = False) -> bool:
        """Write ``chunks`` in order.

        Args:
            chunks: what to write. The transport removes from the list what it takes: what
                is left in it was not taken.
            timeout: how long to wait each time the socket accepts nothing; ``None`` waits as
                long as it takes, ``0`` does not wait.
            last: :meth:`shutdown_write` comes next: the kernel may hold the bytes to send
                them with the end of the stream, in one packet rather than two.

        Returns:
            Whether everything is written; always, unless ``timeout`` is ``0``. Otherwise
            the rest waits: what the transport did not take is left in ``chunks``, and
            :meth:`backlog` counts what it took but could not write yet. Call :meth:`send`
            again, with what is left of ``chunks`` first (possibly nothing), to write it.

        Raises:
            TimeoutError: the socket accepted nothing for ``timeout`` seconds.
            OSError: the connection is broken.
        """

    @abstractmethod
    def backlog(self) -> int:
        """Bytes that :meth:`send` took but could not write yet."""

    @abstractmethod
    def shutdown_write(self) -> None:
        """Close the write side: the peer reads the end of the stream.

        Raises:
            OSError: the connection is broken.
        """

    @abstractmethod
    def abort(self) -> None:
        """Break the connection now, waking threads blocked in :meth:`recv` or :meth:`send`.

        The socket stays open until :meth:`close`, so that no other socket can take its file
        descriptor while a thread still uses it.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the socket."""


def _poll_fd(fd: int, events: int, timeout: float | None) -> bool:
    """Wait until ``fd`` is ready for ``events``; ``False`` on timeout. A ``timeout`` of 0
    only looks; another waits at least that long, rounded up to the next millisecond."""
    poller = select.poll()
    poller.register(fd, events)
    if timeout is None or timeout == 0:
        return bool(poller.poll(timeout))
    return bool(poller.poll(max(0, int(timeout * 1000) + 1)))


class SocketTransport(Transport):
    """A connected stream socket.

    Args:
        sock: the connected socket; it is put in blocking mode.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        self.sock = sock
        self._fd = sock.fileno()
        self._streaming = False
        # The socket's SO_RCVTIMEO, in seconds; None: reads wait as long as it takes.
        self._recv_timeout: float | None = None

    def recv(self, bufsize: int, timeout: float | None = None) -> bytes:
        # A recv() holds its buffer while it waits, as long as the connection is idle: ask for
        # little unless the last read filled its buffer, which says that more is coming.
        size = bufsize if self._streaming else min(bufsize, _WAIT_BUFSIZE)
        recv = self.sock.recv
        if timeout is not None and timeout < _TIMEOUT_SLACK:
            data = self._read_now(recv, size, socket.MSG_DONTWAIT)
        else:
            data = self._read(recv, size, timeout)
        self._streaming = len(data) == size
        return data

    def recv_into(self, buffer: memoryview, timeout: float | None = None) -> int:
        recv_into = self.sock.recv_into
        if timeout is None and self._recv_timeout is None:
            return recv_into(buffer)  # the reader thread's read, once per read: no call more
        if timeout is not None and timeout < _TIMEOUT_SLACK:
            return self._read_now(recv_into, buffer, 0, socket.MSG_DONTWAIT)
        return self._read(recv_into, buffer, timeout)

    def wait_readable(self, timeout: float | None = None) -> bool:
        if timeout is not None and timeout < _TIMEOUT_SLACK:
            timeout = 0  # as recv_into(): no wait for less than the slack
        return _poll_fd(self._fd, select.POLLIN, timeout)

    @staticmethod
    def _read_now(read: Callable[..., _T], *args: Any) -> _T:
        """One read that doesn't wait."""
        try:
            return read(*args)
        except BlockingIOError:
            raise TimeoutError("no data received in time") from None

    def _read(self, read: Callable[[_B], _T], arg: _B, timeout: float | None) -> _T:
        """One read that waits at most ``timeout`` seconds (more than ``_TIMEOUT_SLACK``)."""
        # One system call, even with a timeout (the kernel's SO_RCVTIMEO rather than poll()
        # first): each call releases the GIL, and with many threads, taking it back is what a
        # woken-up reader waits for.
        while True:
            # Callers ask for slightly different timeouts each time (what is left before a
            # deadline): keep the socket's timeout when it is close enough, rather than change
            # it with a system call per read. It may run out early, never late.
            current = self._recv_timeout
            if timeout is None:
                if current is not None:
                    self._set_recv_timeout(None)
            elif current is None or not timeout / 2 <= current <= timeout + _TIMEOUT_SLACK:
                self._set_recv_timeout(timeout)
                current = timeout
            try:
                return read(arg)
            except BlockingIOError:
                assert timeout is not None
                assert current is not None
                # The wait lasted at least the socket's timeout: wait for what is left.
                timeout -= current
                if timeout < _TIMEOUT_SLACK:
                    raise TimeoutError("no data received in time") from None

    def _set_recv_timeout(self, timeout: float | None) -> None:
        seconds, fraction = divmod(0.0 if timeout is None else timeout, 1.0)
        self.sock.setsockopt(
            socket.SOL_SOCKET,
            socket.SO_RCVTIMEO,
            struct.pack("@ll", int(seconds), int(fraction * 1_000_000)),
        )
        self._recv_timeout = timeout

    def send(self, chunks: list[Chunk], timeout: float | None, *, last: bool = False) -> bool:
        """Write ``chunks`` in order, several per system call, as :meth:`Transport.send` says.

        The socket takes bytes or leaves them: what it did not take is left in ``chunks``, so
        :meth:`backlog` is always 0.
        """
        sock = self.sock
        flags = socket.MSG_DONTWAIT | _MSG_MORE if last else socket.MSG_DONTWAIT
        while chunks:
            try:
                if len(chunks) == 1:
                    sent = sock.send(chunks[0], flags)
                else:
                    sent = sock.sendmsg(chunks[:_MAX_BUFFERS], (), flags)
            except BlockingIOError:
                sent = 0
            if sent:
                if len(chunks) == 1 and sent == len(chunks[0]):
                    chunks.clear()  # the common case: one chunk, written at once
                    return True
                _consume(chunks, sent)
                continue
            if timeout == 0:
                return False
            if not _poll_fd(self._fd, select.POLLOUT, timeout):
                raise TimeoutError(f"no progress writing to the socket for {timeout} seconds")
        return True

    def backlog(self) -> int:
        """None: the socket takes bytes or leaves them in the caller's list."""
        return 0

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # not connected anymore
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()
        release_freed_memory()


def _consume(chunks: list[Chunk], size: int) -> None:
    """Drop the first ``size`` bytes of ``chunks``, in place."""
    while size:
        first = chunks[0]
        if size >= len(first):
            size -= len(first)
            del chunks[0]
        else:
            # A view, not a copy: what is left of a large payload may take several writes.
            chunks[0] = memoryview(first)[size:]
            size = 0


class TLSTransport(Transport):
    """TLS over another transport, through :class:`ssl.SSLObject` and memory buffers.

    Build it with :func:`tls_handshake`. Closing or aborting it closes or aborts the inner
    transport, and so the socket.

    Attributes:
        inner: the transport that carries the encrypted bytes.
        ssl_object: the TLS session: the peer's certificate, the protocol version, etc.
    """

    def __init__(
        self,
        inner: Transport,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        self.inner = inner
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._tls_lock = threading.Lock()
        # Encrypted bytes that the inner transport did not take yet, and TLS records produced
        # while reading (e.g. a TLS 1.3 key update answer): they go out first with the next
        # write, in order.
        self._pending: list[Chunk] = []

    def handshake(self, deadline: float | None) -> None:
        """Run the TLS handshake before ``deadline`` (a :func:`time.monotonic` time).

        Raises:
            TimeoutError: the deadline passed.
            ssl.SSLError: the handshake failed, e.g. the certificate did not verify.
            OSError: the connection broke.
        """
        while True:
            try:
                self.ssl_object.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            records = self._outgoing.read()
            if records:
                self.inner.send([records], remaining(deadline, during="TLS handshake"))
            if done:
                return
            try:
                data = self.inner.recv(
                    _HANDSHAKE_BUFSIZE, remaining(deadline, during="TLS handshake")
                )
            except TimeoutError:
                raise TimeoutError("timed out during TLS handshake") from None
            if not data:
                raise ConnectionResetError("connection closed during TLS handshake")
            self._incoming.write(data)

    def recv(self, bufsize: int, timeout: float | None = None) -> bytes:
        return cast(bytes, self._recv(bufsize, None, timeout))

    def recv_into(self, buffer: memoryview, timeout: float | None = None) -> int:
        return cast(int, self._recv(len(buffer), buffer, timeout))

    def wait_readable(self, timeout: float | None = None) -> bool:
        with self._tls_lock:
            # Plaintext decrypted already, or records received and not decrypted yet: a
            # read takes them without the socket.
            if self.ssl_object.pending() or self._incoming.pending or self._incoming.eof:
                return True
        return self.inner.wait_readable(timeout)

    def _recv(self, size: int, buffer: memoryview | None, timeout: float | None) -> bytes | int:
        """Decrypt up to ``size`` bytes, into ``buffer`` (and say how many) unless it is
        ``None`` (and return them)."""
        ssl_object = self.ssl_object
        while True:
            with self._tls_lock:
                try:
                    if buffer is None:
                        data: bytes | int = ssl_object.read(size)
                    else:
                        data = ssl_object.read(size, buffer)
                except ssl.SSLWantReadError:
                    data = 0
                except ssl.SSLZeroReturnError:
                    return b"" if buffer is None else 0  # close_notify: the session ended
                records = self._outgoing.read()
                if records:
                    self._pending.append(records)
                if data:
                    return data
                if self._incoming.eof:
                    return b"" if buffer is None else 0
            raw = self.inner.recv(size, timeout)
            with self._tls_lock:
                if raw:
                    self._incoming.write(raw)
                else:
                    self._incoming.write_eof()

    def send(self, chunks: list[Chunk], timeout: float | None, *, last: bool = False) -> bool:
        """Encrypt ``chunks`` and write them, as :meth:`Transport.send` says.

        The plaintext is always taken, all of it: encrypted bytes that the inner transport
        did not take wait in :meth:`backlog`. ``last`` is ignored: the end of the stream
        starts with a TLS record of its own.
        """
        with self._tls_lock:
            raw = self._pending
            self._pending = []
            for chunk in chunks:
                if chunk:
                    self.ssl_object.write(chunk)
            chunks.clear()
            records = self._outgoing.read()
        if records:
            raw.append(records)
        written = self.inner.send(raw, timeout)
        if raw:
            # Encrypted bytes can't be taken back: keep them first in line.
            with self._tls_lock:
                self._pending[:0] = raw
        return written

    def backlog(self) -> int:
        """Encrypted bytes waiting, here and in the inner transport."""
        with self._tls_lock:
            pending = sum(map(len, self._pending))
        return pending + self.inner.backlog()

    def shutdown_write(self) -> None:
        # Send close_notify, then end the stream underneath. unwrap() raises SSLWantReadError
        # while the peer's close_notify has not come; ours is in the buffer by then.
        with self._tls_lock:
            with contextlib.suppress(ssl.SSLError):
                self.ssl_object.unwrap()
            records = [*self._pending, self._outgoing.read()]
            self._pending = []
        try:
            self.inner.send([record for record in records if record], 0)
        finally:
            self.inner.shutdown_write()

    def abort(self) -> None:
        self.inner.abort()

    def close(self) -> None:
        self.inner.close()


def tls_handshake(
    inner: Transport,
    context: ssl.SSLContext,
    *,
    server_side: bool,
    server_hostname: str | None = None,
    deadline: float | None = None,
) -> TLSTransport:
    """Run the TLS handshake over ``inner`` before ``deadline`` (a :func:`time.monotonic` time).

    Args:
        inner: the transport to the peer: a :class:`SocketTransport`, or a
            :class:`TLSTransport` to a proxy for TLS inside TLS.
        context: the TLS settings: certificates, verification.
        server_side: run the server's side of the handshake.
        server_hostname: the name that the server's certificate must have (client side).
        deadline: the :func:`time.monotonic` time to finish by; ``None`` for no limit.

    Returns:
        The TLS transport over ``inner``. On failure, ``inner`` is left open.

    Raises:
        TimeoutError: the deadline passed.
        ssl.SSLError: the handshake failed, e.g. the certificate did not verify.
        OSError: the connection broke.
    """
    transport = TLSTransport(
        inner, context, server_side=server_side, server_hostname=server_hostname
    )
    transport.handshake(deadline)
    return transport
