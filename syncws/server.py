"""The thread-pool server: :func:`serve`, :func:`unix_serve`, :class:`Server`.

The accept loop runs in the thread that calls :meth:`Server.serve_forever`. Each connection
gets a worker thread from a bounded pool (``max_connections``), which runs the opening
handshake under ``open_timeout`` and then the handler; the connection's reader thread is the
second thread. When every worker is busy, the accept thread answers ``503 Service
Unavailable`` with ``Retry-After`` at once and closes the connection: nothing queues up.

:meth:`Server.shutdown` wakes the accept loop through a socket pair (no polling), answers
handshakes in progress with 503, closes open connections with 1001 (going away), waits for
handlers, then aborts what is left.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import email.utils
import errno
import logging
import os
import select
import signal
import socket
import ssl as ssl_module
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, TypedDict

from typing_extensions import Unpack

from ._signals import wake_on_signals
from .connection import Connection, check_close
from .core.extensions.base import ServerExtensionFactory
from .core.extensions.permessage_deflate import enable_server_permessage_deflate
from .core.frames import CloseCode
from .core.headers import (
    Headers,
    HeadersLike,
)
from .core.http11 import Request, Response
from .core.protocol import State
from .core.server_protocol import Origin, ServerProtocol
from .deadline import deadline_after, remaining
from .exceptions import (
    ConnectionClosed,
)
from .options import (
    Compression,
    ConnectionKeywords,
    ConnectionOptions,
    LoggerLike,
    check_bool,
    check_compression,
    check_count,
    check_handler,
    check_keywords,
    check_seconds,
    check_timeout,
)
from .stats import ClosedTraffic, ConnectionStats, ServerStats
from .transport import SocketTransport, Transport, tls_handshake
from .version import __version__
from .workers import Workers

__all__ = [
    "SERVER",
    "CommonServeKeywords",
    "ExtraHeaders",
    "Handler",
    "ProcessRequest",
    "ProcessResponse",
    "ServeKeywords",
    "Server",
    "ServerConfig",
    "ServerConnection",
    "TCPServeKeywords",
    "UnixServeKeywords",
    "handshake",
    "run_handler",
    "serve",
    "server_extensions",
    "unix_serve",
]

SERVER = f"Python/{sys.version_info.major}.{sys.version_info.minor} syncws/{__version__}"
"""The default ``Server`` header."""

logger = logging.getLogger("syncws.server")

_DEFAULT_OPTIONS = ConnectionOptions()

_ABORT_GRACE = 1.0
"""Seconds that :meth:`Server.shutdown` gives handlers to return once it aborted their
connections (at most its ``timeout``)."""

_EXIT_TIMEOUT = 10.0
"""The timeout of the :meth:`Server.shutdown` that leaving a ``with`` block runs, when the
server's ``close_timeout`` is ``None``."""

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""The errors of ``accept()`` that say the process or the system is short of file descriptors
or memory: accepting pauses, and resumes."""

_ACCEPT_PAUSE = 0.1
"""Seconds that accepting pauses after an error of :data:`_OUT_OF_RESOURCES`."""

_BUSY_TEXT = b"Server is busy; try again later.\n"
_RESPONSE_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n"
    b"%s"
) % (len(_BUSY_TEXT), _BUSY_TEXT)

_ERROR_TEXT = b"Internal server error.\n"
_RESPONSE_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\n"
    b"Connection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n"
    b"%s"
) % (len(_ERROR_TEXT), _ERROR_TEXT)

Handler = Callable[["ServerConnection"], Any]
"""A connection handler: called with each connection, in a worker thread."""
ProcessRequest = Callable[["ServerConnection", Request], "Response | None"]
"""A hook called before the handshake: return a response to send it instead of upgrading."""
ProcessResponse = Callable[["ServerConnection", Request, Response], "Response | None"]
"""A hook called with the handshake response: it may change it or return another one."""
ExtraHeaders = HeadersLike | Callable[["ServerConnection"], HeadersLike]
"""Response headers to add, or a callable that returns them for a connection."""
SubprotocolSelector = Callable[["ServerConnection", Sequence[str]], "str | None"]
"""A hook that picks the subprotocol, as in websockets: called with the connection and the
subprotocols the client offered, in the client's order, when the request is accepted (after
``process_request``, if that returns ``None``). It returns one of them, or ``None`` for no
subprotocol, and may raise :exc:`~syncws.exceptions.NegotiationError` to refuse the request
with 400. It replaces the default rule: the first of the server's ``subprotocols`` that the
client offers."""


class ServerConnection(Connection):
    """A server connection, as the handler receives it."""

    protocol: ServerProtocol

    def __init__(
        self,
        sock: socket.socket,
        protocol: ServerProtocol,
        *,
        transport: Transport | None = None,
        options: ConnectionOptions = _DEFAULT_OPTIONS,
    ) -> None:
        super().__init__(sock, protocol, transport=transport, options=options)
        self.username: str | None = None
        """The user name, once :func:`~syncws.auth.basic_auth` accepted the credentials."""

    def respond(self, status: int, text: str) -> Response:
        """Build a plain-text HTTP response, for ``process_request`` hooks.

        Example::

            def health_check(connection, request):
                if request.path == "/healthz":
                    return connection.respond(200, "OK\\n")
        """
        return self.protocol.reject(status, text)


# The server side of the opening handshake, shared by serve(), syncws.wsgi and syncws.testing.


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """How the server side of every connection is set up.

    :func:`serve`, :func:`syncws.wsgi.accept` and the :mod:`syncws.testing` helpers build one
    from their arguments, checked; the handshake code reads it from there.
    """

    origins: Sequence[Origin] | None = None
    extensions: Sequence[ServerExtensionFactory] | None = None
    """The extensions offered, compression included (see :func:`server_extensions`)."""
    subprotocols: Sequence[str] | None = None
    select_subprotocol: SubprotocolSelector | None = None
    process_request: ProcessRequest | None = None
    process_response: ProcessResponse | None = None
    server_header: str | None = SERVER
    extra_headers: ExtraHeaders | None = None
    logger: LoggerLike = logger
    create_connection: type[ServerConnection] = ServerConnection
    options: ConnectionOptions = _DEFAULT_OPTIONS

    def new_protocol(self, state: State = State.CONNECTING) -> ServerProtocol:
        """A protocol for a new connection, in ``state``.

        Messages that come before an error of the client are delivered first: see
        :attr:`~syncws.core.protocol.Protocol.defer_failures`.
        """
        protocol = ServerProtocol(
            origins=self.origins,
            extensions=self.extensions,
            subprotocols=self.subprotocols,
            state=state,
            max_size=self.options.max_size,
            logger=self.logger,
        )
        protocol.defer_failures = True
        return protocol

    def new_connection(
        self, sock: socket.socket, protocol: ServerProtocol, transport: Transport
    ) -> ServerConnection:
        """The connection object for ``sock``, not started yet.

        ``select_subprotocol`` is handed to ``protocol`` here, called with this connection:
        the sans-I/O protocol knows nothing of connections.
        """
        connection = self.create_connection(
            sock, protocol, transport=transport, options=self.options
        )
        select = self.select_subprotocol
        if select is not None:

            def select_for_connection(
                protocol: ServerProtocol, offered: Sequence[str]
            ) -> str | None:
                return select(connection, offered)

            protocol.select_subprotocol = select_for_connection
        return connection

    def respond(
        self, connection: ServerConnection, protocol: ServerProtocol, request: Request | None
    ) -> Response:
        """The response to ``request``: ``process_request``, the handshake, the headers added
        here, ``process_response``; for ``None``, the error that the request had."""
        if request is None:
            assert protocol.handshake_exc is not None
            self.logger.debug("invalid handshake request: %s", protocol.handshake_exc)
            return self.add_headers(connection, protocol.reject_exception(protocol.handshake_exc))
        response: Response | None = None
        try:
            if self.process_request is not None:
                response = _hook_result(
                    "process_request", self.process_request(connection, request)
                )
            if response is None:
                response = protocol.accept(request)
            response = self.add_headers(connection, response)
            if self.process_response is not None:
                response = (
                    _hook_result(
                        "process_response",
                        self.process_response(connection, request, response),
                    )
                    or response
                )
        except Exception as exc:
            # 500: the error is the application's, and its details are for the log only.
            self.logger.error("opening handshake failed: %s", exc, exc_info=True)
            response = self.add_headers(connection, protocol.reject_exception(exc))
        return response

    def add_headers(self, connection: ServerConnection, response: Response) -> Response:
        """Add ``Date``, ``Server`` and the extra headers to ``response``."""
        headers = response.headers
        if "Date" not in headers:
            headers["Date"] = http_date()
        if self.server_header is not None and "Server" not in headers:
            headers["Server"] = self.server_header
        if self.extra_headers is not None:
            extra = self.extra_headers
            if callable(extra):
                extra = extra(connection)
            headers.update(Headers(extra))
        return response


def _hook_result(hook: str, result: object) -> Response | None:
    """Check what ``process_request`` or ``process_response`` returned.

    Raises:
        TypeError: it is neither a :class:`~syncws.core.http11.Response` nor ``None``; the
            message says what it was, since the error is logged and the client gets a 500.
    """
    if result is None or isinstance(result, Response):
        return result
    shown = repr(result)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    raise TypeError(
        f"{hook} returned {type(result).__name__} {shown}; expected a Response or None"
        " (build a Response with connection.respond(status, text))"
    )


def server_extensions(
    compression: Compression, extensions: Sequence[ServerExtensionFactory] | None
) -> Sequence[ServerExtensionFactory] | None:
    """The extensions a server offers: ``extensions``, with permessage-deflate for
    ``compression="deflate"``.

    Raises:
        ValueError: ``compression`` is neither ``"deflate"`` nor ``None``.
    """
    check_compression(compression)
    if compression == "deflate":
        return enable_server_permessage_deflate(extensions)
    return extensions


def handshake(
    sock: socket.socket,
    transport: Transport,
    config: ServerConfig,
    *,
    deadline: float | None,
    stopping: Callable[[], bool] = lambda: False,
    on_request: Callable[[], None] | None = None,
) -> tuple[ServerConnection, Response]:
    """Run the server side of the opening handshake over ``transport``.

    Reads the request, answers it, and on ``101`` starts the connection.

    Args:
        sock: the connected socket.
        transport: the transport over it (TLS done).
        config: how to answer.
        deadline: when the handshake must be done (a :func:`time.monotonic` time).
        stopping: tells whether the server is stopping: then the answer is 503.
        on_request: called once the request is read, before it is answered.

    Returns:
        The connection, started if the response is ``101``, and the response sent.

    Raises:
        EOFError: the client closed the connection before its request was complete.
        OSError: the connection broke.
        TimeoutError: ``deadline`` passed.
        Exception: any other error, of syncws or of ``config.create_connection`` (a
            :exc:`MemoryError`, a reader thread that can't start): raised once the client
            got a 500, or once the open connection failed with 1011 and closed.
    """
    answered = False
    try:
        protocol = config.new_protocol()
        connection = config.new_connection(sock, protocol, transport)
        request = _read_request(transport, protocol, deadline, config.options.read_limit, stopping)
        if on_request is not None:
            on_request()
        if stopping():
            rejection = protocol.reject(503, "Server is shutting down.\n")
            response = config.add_headers(connection, rejection)
        else:
            response = config.respond(connection, protocol, request)
        protocol.send_response(response)
        answered = True
        transport.send(
            list(protocol.data_to_send()), remaining(deadline, during="opening handshake")
        )
    except (OSError, TimeoutError, EOFError):
        raise
    except Exception:
        # A fault of syncws's own (no memory, a bug) or of a connection class: answer 500
        # rather than leave the client waiting for open_timeout, unless an answer went out.
        if not answered:
            with contextlib.suppress(OSError, TimeoutError):
                transport.send([_RESPONSE_500], 0, last=True)
        raise
    if response.status_code == 101:
        connection.request = protocol.request
        connection.response = response
        try:
            connection.start(protocol.events_received())
        except Exception:
            # No reader thread, say: the WebSocket is open, so it fails with 1011.
            _tear_down(connection)
            raise
    return connection, response


def _read_request(
    transport: Transport,
    protocol: ServerProtocol,
    deadline: float | None,
    read_limit: int,
    stopping: Callable[[], bool],
) -> Request | None:
    """Read the handshake request; ``None`` if it is invalid, or if reading was stopped."""
    while True:
        events = protocol.events_received()
        if events:
            request = events[0]
            assert isinstance(request, Request)
            return request
        if protocol.handshake_exc is not None:
            return None
        data = transport.recv(read_limit, remaining(deadline, during="opening handshake"))
        if data:
            protocol.receive_data(data)
        elif stopping():
            # The server shut the read side down to wake this thread: it answers 503.
            return None
        else:
            # Nothing can be answered once the protocol took the end of the stream: it is
            # closed then, and send_response() would raise InvalidState.
            protocol.receive_eof()
            raise EOFError("connection closed during handshake")


def run_handler(
    connection: ServerConnection,
    handler: Callable[[ServerConnection], Any],
    log: LoggerLike = logger,
) -> None:
    """Run a handler on a connection and close it, as :func:`serve` does.

    When the handler returns, the connection closes with 1000; when it raises, with 1011
    and the error is logged. Returns once the connection is closed and its reader thread
    has ended.

    Args:
        connection: the open connection.
        handler: called with the connection.
        log: where errors go.
    """
    try:
        handler(connection)
    except ConnectionClosed as exc:
        # The peer went away while the handler used the connection: routine. Close anyway:
        # the exception may come from another connection, and closing waits for the end of
        # this one.
        log.debug("connection closed while the handler ran: %s", exc)
        connection.close(CloseCode.INTERNAL_ERROR)
    except Exception:
        log.error("connection handler failed", exc_info=True)
        connection.close(CloseCode.INTERNAL_ERROR)
    else:
        connection.close()
    # close() returned once the reader thread finished its work: let the thread end too,
    # so that the caller leaves no thread behind.
    connection._reading.join()


def _tear_down(connection: Connection) -> None:
    """Fail ``connection`` with 1011 after a fault of syncws's own, and make sure it ends:
    closing may fail too, and aborting is what is left then."""
    try:
        connection.close(CloseCode.INTERNAL_ERROR)
    except Exception:
        logger.debug("closing after an error failed", exc_info=True)
    connection.abort()
    connection._reading.join(_ABORT_GRACE)


class Server:
    """A WebSocket server, as :func:`serve` returns it.

    Use it as a context manager: on exit, it shuts down with :meth:`shutdown`, whose timeout
    is the server's ``close_timeout`` (10 s if that is ``None``): handlers get that long to
    return, then their connections are aborted, and leaving the ``with`` block never waits
    longer than the timeout plus a grace of one second, even for a handler that never returns.

    Attributes:
        socket: the listening socket.
        connections: the connections whose handlers are running, some of which may be
            closing; :func:`~syncws.connection.broadcast` skips those. A set that changes as
            clients come and go: iterate over a copy, as ``broadcast`` does.
    """

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        *,
        ssl: SSLContext | None,
        max_connections: int,
        config: ServerConfig,
        worker_idle_timeout: float | None = 60,
    ) -> None:
        self.socket = sock
        self.handler = handler
        self.ssl = ssl
        self.max_connections = max_connections
        self.config = config
        self.logger = config.logger
        self.connections: set[ServerConnection] = set()
        # Reentrant: shutdown() may run in a signal handler in the thread of serve_forever(),
        # at a moment when the accept loop holds the lock.
        self._lock = threading.RLock()
        # Notified when the last handler returns.
        self._idle = threading.Condition(self._lock)
        self._active = 0
        # Sockets of the workers that haven't made their connection yet, and among them those
        # still waiting for their request (close() wakes those up).
        self._sockets: set[socket.socket] = set()
        self._awaiting: set[socket.socket] = set()
        self._closing = False
        # Whether close() closes the connections too, or only stops accepting.
        self._close_connections = True
        self._close_code: int = CloseCode.GOING_AWAY
        self._close_reason = ""
        # The timeout of a shutdown() called in the thread of serve_forever(), which finishes
        # it, as (timeout,); None if there was none.
        self._deferred_shutdown: tuple[float | None] | None = None
        self._serving = threading.Event()
        self._stopped = threading.Event()
        self._serve_thread: threading.Thread | None = None
        self._wake_recv, self._wake_send = socket.socketpair()
        self._wake_recv.setblocking(False)
        self._wake_send.setblocking(False)
        self._workers = Workers(self._handle, idle_timeout=worker_idle_timeout)
        self._busy_log = _Throttle()
        self._accept_error_log = _Throttle()
        self._thread_error_log = _Throttle()
        self._worker_error_log = _Throttle()
        # The Unix socket file to remove on close, with its inode: see unix_serve().
        self._unix_path: tuple[str, int] | None = None
        # Counters for stats. Those of the accept loop change in its thread only, the one
        # writer: no update is lost. The others change under _lock, in the workers.
        self._refused_busy = 0
        self._accept_errors = 0
        self._handshakes_accepted = 0
        self._handshakes_rejected: collections.Counter[int] = collections.Counter()
        self._closes: collections.Counter[int] = collections.Counter()
        self._closed_traffic = ClosedTraffic()
        # Accepted sockets have the listening socket's family: ask once, not per connection.
        self._tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        sock.setblocking(False)

    @property
    def port(self) -> int | None:
        """The TCP port the server listens on; ``None`` for a Unix socket."""
        address = self.socket.getsockname()
        return address[1] if isinstance(address, tuple) else None

    @property
    def stats(self) -> ServerStats:
        """What the server did so far: connections, handshakes, workers, closes, and the
        traffic of its connections, summed; a snapshot (see :class:`~syncws.stats.ServerStats`).
        """
        with self._lock:
            connections = list(self.connections)
            closed_traffic = self._closed_traffic.snapshot()
            accepted = self._handshakes_accepted
            rejected = dict(self._handshakes_rejected)
            closes = dict(self._closes)
        busy, idle = self._workers.counts()
        traffic = closed_traffic
        for connection in connections:
            traffic = traffic + connection.stats
        return ServerStats(
            connections_open=len(connections),
            handshakes_accepted=accepted,
            handshakes_rejected=types.MappingProxyType(rejected),
            refused_busy=self._refused_busy,
            workers_busy=busy,
            workers_idle=idle,
            accept_errors=self._accept_errors,
            closes=types.MappingProxyType(closes),
            traffic=traffic,
        )

    def fileno(self) -> int:
        """The file descriptor of the listening socket, as :meth:`socket.socket.fileno`
        gives it: ``-1`` once the server stopped listening."""
        return self.socket.fileno()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        timeout = self.config.options.close_timeout
        self.shutdown(_EXIT_TIMEOUT if timeout is None else timeout)

    # Accepting.

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown` or :meth:`close`, in this thread.

        Returns at once if the server was closed already, or if an earlier call returned: a
        server serves once. When :meth:`shutdown` is called in this thread (from a signal
        handler), it returns once the shutdown is complete.

        Running out of resources does not end it: when ``accept()`` fails for lack of file
        descriptors, buffers or memory (``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM``,
        :exc:`MemoryError`), accepting pauses for 0.1 s and the error is logged at most once
        a second; a client for which no worker thread can start is answered 503, as when
        every worker is busy. Any other error of syncws's own about one connection is logged
        and that connection only is answered (503 from here, 500 during its handshake) or
        failed with 1011 once open.

        Raises:
            RuntimeError: it is running in another thread.
        """
        with self._lock:
            # Once the loop stopped, the listening socket is closed: nothing to serve.
            if self._closing or self._stopped.is_set():
                return
            if self._serving.is_set():
                raise RuntimeError("serve_forever() is already running")
            self._serve_thread = threading.current_thread()
            self._serving.set()
        signals = self._watch_signals()
        try:
            poller = select.poll()
            poller.register(self.socket, select.POLLIN)
            poller.register(self._wake_recv, select.POLLIN)
            wake_fd = self._wake_recv.fileno()
            while not self._closing:
                ready = [fd for fd, _ in poller.poll()]
                if wake_fd in ready:
                    # A byte from close(), or a signal number written by Python's low-level
                    # handler. The Python handler runs before the loop tests _closing again.
                    self._drain_wake()
                elif not self._closing:
                    self._accept()
        finally:
            if signals:
                signal.set_wakeup_fd(-1)
            self._stopped.set()
            self._close_listener()
        if self._deferred_shutdown is not None:
            (timeout,) = self._deferred_shutdown
            self._finish_shutdown(timeout)

    def _watch_signals(self) -> bool:
        """In the main thread, have signals wake the accept loop; return whether they do.

        A signal handler (say one that calls :meth:`shutdown`) would otherwise wait for the
        next connection: see :func:`wake_on_signals`.
        """
        return wake_on_signals(self._wake_send.fileno())

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_recv.recv(4096):
                pass

    def _accept(self) -> None:
        try:
            sock, _ = self.socket.accept()
        except BlockingIOError:
            return  # another process or thread took it
        except (OSError, MemoryError) as exc:
            if isinstance(exc, MemoryError) or exc.errno in _OUT_OF_RESOURCES:
                self._accept_errors += 1
                self._pause_accepting(exc)
                return
            if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                return  # the client gave up before we accepted it
            raise
        registered = False
        try:
            sock.setblocking(True)
            with self._lock:
                busy = self._active >= self.max_connections or self._closing
                if not busy:
                    self._active += 1
                    self._sockets.add(sock)
                    self._awaiting.add(sock)
                    registered = True
            if busy:
                self._reject_busy(sock)
                return
            self._workers.submit(sock)
        except (RuntimeError, MemoryError) as exc:
            # No thread for this connection ("can't start new thread", or no memory for its
            # stack): the client gets 503 as when every worker is busy, and later ones are
            # served once threads are free again.
            self._unregister(sock, registered)
            self._refused_busy += 1
            held = self._thread_error_log.ready()
            if held is not None:
                self.logger.error(
                    "could not start a worker thread: %s; connection rejected with HTTP 503%s",
                    exc,
                    _also(held),
                )
            self._refuse(sock)
        except OSError as exc:
            # The socket failed before a worker took it: the client went away, or the system
            # is short of buffers.
            self._unregister(sock, registered)
            self._accept_errors += 1
            self._refuse(sock)
            if exc.errno in _OUT_OF_RESOURCES:
                self._pause_accepting(exc)
            else:
                self.logger.debug("accepted connection failed: %s", exc)
        except Exception:
            # A fault of syncws's own: this connection is refused, the server goes on.
            self._unregister(sock, registered)
            self._accept_errors += 1
            held = self._thread_error_log.ready()
            if held is not None:
                self.logger.error(
                    "unexpected error accepting a connection%s", _also(held), exc_info=True
                )
            self._refuse(sock)

    def _pause_accepting(self, exc: BaseException) -> None:
        """Out of file descriptors or memory: log (once a second at most), then wait a little
        rather than spin, and keep serving the connections that are open. :meth:`close` cuts
        the wait short."""
        held = self._accept_error_log.ready()
        if held is not None:
            self.logger.error(
                "accept failed: %s; pausing accept for %s s%s",
                str(exc) or type(exc).__name__,
                _ACCEPT_PAUSE,
                _also(held),
            )
        with contextlib.suppress(OSError, ValueError):
            select.select([self._wake_recv], [], [], _ACCEPT_PAUSE)

    def _unregister(self, sock: socket.socket, registered: bool) -> None:
        """Undo the accounting of a connection that no worker took."""
        if not registered:
            return
        with self._lock:
            self._active -= 1
            self._sockets.discard(sock)
            self._awaiting.discard(sock)
            if not self._active:
                self._idle.notify_all()

    def _reject_busy(self, sock: socket.socket) -> None:
        """Answer 503 at once from the accept thread, and close."""
        self._refused_busy += 1
        held = self._busy_log.ready()
        if held is not None:
            self.logger.warning(
                "every worker is busy: connection rejected with HTTP 503%s", _also(held)
            )
        self._refuse(sock)

    def _refuse(self, sock: socket.socket) -> None:
        """Answer 503 without waiting, and close ``sock``."""
        try:
            if self.ssl is None:
                sock.send(_RESPONSE_503, socket.MSG_DONTWAIT)
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            sock.close()

    # Handling a connection, in a worker thread.

    def _handle(self, sock: socket.socket) -> None:
        connection: ServerConnection | None = None
        try:
            connection = self._open(sock)
            if connection is None:
                return
            with self._lock:
                self._sockets.discard(sock)
                self.connections.add(connection)
                closing = self._closing and self._close_connections
            if closing:
                # close() ran after the 101 went out, before the connection was registered.
                connection._start_close(self._close_code, self._close_reason)
            if connection.protocol.debug:  # checked once per connection, as for frames
                self.logger.debug("connection open: %s", connection.remote_address)
            run_handler(connection, self.handler, self.logger)
        except Exception:
            # A fault of syncws's own, not of the handler (run_handler logs those): the
            # connection is failed with 1011 and torn down, so that nothing waits for it.
            held = self._worker_error_log.ready()
            if held is not None:
                self.logger.error(
                    "unexpected error in connection worker%s", _also(held), exc_info=True
                )
            if connection is not None:
                _tear_down(connection)
        finally:
            # An open connection's reader thread closes the socket; otherwise it's ours.
            if connection is None:
                with self._lock:
                    self._sockets.discard(sock)
                sock.close()
            else:
                final = connection.stats
            with self._lock:
                self._active -= 1
                self._sockets.discard(sock)
                self._awaiting.discard(sock)
                if connection is not None:
                    self.connections.discard(connection)
                    self._count_closed(connection, final)
                if not self._active:
                    self._idle.notify_all()

    def _count_closed(self, connection: ServerConnection, final: ConnectionStats) -> None:
        """Add a connection that ended to the stats; lock held."""
        code = connection.close_code
        self._closes[CloseCode.ABNORMAL_CLOSURE if code is None else code] += 1
        # What is still queued is dropped with the connection.
        self._closed_traffic.add(final)

    def _open(self, sock: socket.socket) -> ServerConnection | None:
        """Run TLS and the opening handshake; return the open connection or ``None``."""
        deadline = deadline_after(self.config.options.open_timeout)
        try:
            if self._tcp:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            transport: Transport = SocketTransport(sock)
            if self.ssl is not None:
                transport = tls_handshake(transport, self.ssl, server_side=True, deadline=deadline)
            connection, response = handshake(
                sock,
                transport,
                self.config,
                deadline=deadline,
                stopping=lambda: self._closing,
                # From now on, close() no longer wakes this worker: it answers 503 if it
                # sees close() in time, or the connection gets a Close once registered.
                on_request=lambda: self._request_read(sock),
            )
        except (OSError, TimeoutError, ssl_module.SSLError, EOFError) as exc:
            if isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES:
                held = self._accept_error_log.ready()
                if held is not None:
                    self.logger.error("opening handshake failed: %s%s", exc, _also(held))
            else:
                self.logger.debug("opening handshake failed: %s", exc)
            return None
        with self._lock:
            if response.status_code == 101:
                self._handshakes_accepted += 1
            else:
                self._handshakes_rejected[response.status_code] += 1
        if response.status_code != 101:
            self.logger.debug("handshake rejected with HTTP %d", response.status_code)
            with contextlib.suppress(OSError):
                transport.shutdown_write()
            return None
        return connection

    def _request_read(self, sock: socket.socket) -> None:
        with self._lock:
            self._awaiting.discard(sock)

    # Shutting down.

    def close(
        self,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "",
        *,
        close_connections: bool = True,
    ) -> None:
        """Stop accepting and start closing every connection; return without waiting.

        Handshakes in progress are answered with 503. Use :meth:`wait_closed` to wait for
        the handlers, or :meth:`shutdown` for both.

        Args:
            code: the close code each connection closes with, as for
                :meth:`Connection.close <syncws.connection.Connection.close>`.
            reason: the close reason.
            close_connections: ``False`` only stops accepting: open connections get no
                Close and run until their handler returns. A later call with ``True`` (the
                default) closes them.

        Raises:
            TypeError: ``code`` is not an integer, ``reason`` not a :class:`str`, or
                ``close_connections`` not a :class:`bool`.
            ValueError: ``code`` may not be sent in a Close frame, or ``reason`` is longer
                than 123 bytes once encoded.
        """
        check_close(code, reason)
        check_bool("close_connections", close_connections)
        with self._lock:
            if not self._closing or not self._close_connections:
                self._close_code = code
                self._close_reason = reason
            self._closing = True
            self._close_connections = close_connections
            connections = list(self.connections) if close_connections else []
            # Wake the workers that wait for a request: they answer 503 rather than wait
            # for open_timeout. Under the lock: a worker takes its socket out of _sockets
            # before closing it, so this never touches a reused file descriptor.
            for sock in self._awaiting:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)
            serving = self._serving.is_set()
        with contextlib.suppress(OSError):
            self._wake_send.send(b"\0")
        if not serving:
            self._close_listener()
        for connection in connections:
            connection._start_close(code, reason)

    def wait_closed(self, timeout: float | None = None) -> None:
        """Wait for every handler to return, and for :meth:`serve_forever` to return.

        Call it after :meth:`close`. Like every timeout in syncws, an expired ``timeout``
        raises :exc:`TimeoutError`, as :meth:`Connection.wait_closed
        <syncws.connection.Connection.wait_closed>` does; the server is left as it is, and
        a later call may wait again.

        Args:
            timeout: seconds to wait; ``None`` waits as long as it takes, ``0`` only checks.

        Raises:
            TimeoutError: a handler still runs after ``timeout`` seconds (or
                :meth:`serve_forever` has not returned yet).
            TypeError: ``timeout`` is not a number.
            ValueError: ``timeout`` is negative, infinite or NaN.
        """
        check_timeout("timeout", timeout)
        deadline = deadline_after(timeout)
        with self._lock:
            if not self._idle.wait_for(lambda: not self._active, remaining(deadline)):
                raise TimeoutError(
                    f"{self._active} connection handler(s) still running after {timeout} s"
                )
        if (
            self._serving.is_set()
            and threading.current_thread() is not self._serve_thread
            and not self._stopped.wait(remaining(deadline))
        ):
            raise TimeoutError(f"serve_forever() still running after {timeout} s")
        self._workers.shutdown()
        self._wake_recv.close()
        self._wake_send.close()

    def shutdown(
        self,
        timeout: float | None = None,
        *,
        close_connections: bool = True,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "",
    ) -> None:
        """Stop the server: every handler returns, or is aborted after ``timeout`` seconds.

        Connections get a Close (1001, or ``code`` and ``reason``). The connections of
        handlers still running after ``timeout`` seconds are aborted, so that their
        ``recv()`` and ``send()`` raise, and those handlers get a grace of one second more
        (at most ``timeout``) to return. A handler that still runs then (one blocked on
        something other than its connection) is left behind in its daemon thread, and
        logged: ``shutdown`` returns anyway. :meth:`wait_closed` ``(0)`` raises
        :exc:`TimeoutError` while such a handler runs. With ``timeout=None``, it waits for
        every handler, however long.

        With ``close_connections=False``, the server stops accepting (handshakes in
        progress are answered with 503) and open connections get no Close: they run to
        their end, and ``shutdown`` waits for their handlers to return, as long as it takes
        with ``timeout=None``; handlers still running after ``timeout`` seconds have their
        connections aborted, as above.

        Safe to call from any thread. Called in the thread of :meth:`serve_forever` (from a
        signal handler), it returns at once, and :meth:`serve_forever` finishes the shutdown
        before it returns: the accept loop can't go on until the signal handler returns.

        Args:
            timeout: seconds to wait for the handlers before aborting their connections;
                ``None`` waits as long as it takes.
            close_connections: ``False`` leaves open connections to end on their own.
            code: the close code each connection closes with, as for :meth:`close`.
            reason: the close reason.

        Raises:
            TypeError: ``timeout`` is not a number, ``close_connections`` not a
                :class:`bool`, ``code`` not an integer or ``reason`` not a :class:`str`.
            ValueError: ``timeout`` is negative, infinite or NaN, ``code`` may not be sent
                in a Close frame, or ``reason`` is longer than 123 bytes once encoded.
        """
        check_timeout("timeout", timeout)
        self.close(code, reason, close_connections=close_connections)
        if threading.current_thread() is self._serve_thread and not self._stopped.is_set():
            if self._deferred_shutdown is None:
                self._deferred_shutdown = (timeout,)
            return
        self._finish_shutdown(timeout)

    def _finish_shutdown(self, timeout: float | None) -> None:
        """Wait for the handlers, then abort the connections left after ``timeout``, and
        give their handlers a grace; leave behind those that ignore their connection."""
        try:
            self.wait_closed(timeout)
        except TimeoutError:
            pass
        else:
            return
        assert timeout is not None
        with self._lock:
            connections = list(self.connections)
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for connection in connections:
            connection.abort()
        try:
            self.wait_closed(min(timeout, _ABORT_GRACE))
        except TimeoutError as exc:
            self.logger.warning("shutdown left a connection handler that did not return: %s", exc)

    def _close_listener(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.close()
        if self._unix_path is not None:
            path, inode = self._unix_path
            self._unix_path = None
            # Remove the socket file, unless another server took the path meanwhile.
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    os.unlink(path)


# The Date header of the current second, as (second, value).
_date: tuple[int, str] = (0, "")


def http_date() -> str:
    """The Date header for now (RFC 9110 §6.6.1), made once a second."""
    global _date  # noqa: PLW0603
    second = int(time.time())
    cached = _date
    if cached[0] != second:
        cached = _date = (second, email.utils.formatdate(second, usegmt=True))
    return cached[1]


class _Throttle:
    """Let a log line that repeats through at most once per ``interval`` seconds."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next = 0.0
        self._held = 0

    def ready(self) -> int | None:
        """How many lines were held back since the last one, or ``None`` to hold this one."""
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return None
        held, self._held = self._held, 0
        self._next = now + self.interval
        return held


def _also(held: int) -> str:
    return f" ({held} more since the last report)" if held else ""


def serve(
    handler: Handler,
    host: str | None = None,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    ssl: SSLContext | None = None,
    origins: Sequence[Origin] | None = None,
    extensions: Sequence[ServerExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    select_subprotocol: SubprotocolSelector | None = None,
    process_request: ProcessRequest | None = None,
    process_response: ProcessResponse | None = None,
    server_header: str | None = SERVER,
    extra_headers: ExtraHeaders | None = None,
    compression: Compression = "deflate",
    max_connections: int = 2048,
    worker_idle_timeout: float | None = 60,
    open_timeout: float | None = 10,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float | None = 10,
    write_timeout: float | None = 10,
    max_size: int | tuple[int | None, int | None] | None = 2**20,
    max_queue: int | tuple[int | None, int | None] | None = 16,
    read_limit: int = 2**16,
    write_limit: int = 2**16,
    logger: LoggerLike | None = None,
    create_connection: type[ServerConnection] | None = None,
    backlog: int = 128,
    reuse_port: bool = False,
    family: socket.AddressFamily = socket.AF_UNSPEC,
) -> Server:
    """Listen on ``host`` and ``port`` and return a :class:`Server`; run it with
    :meth:`~Server.serve_forever`.

    Example::

        def echo(websocket):
            for message in websocket:
                websocket.send(message)

        with syncws.serve(echo, "localhost", 8765) as server:
            server.serve_forever()

    Args:
        handler: called with each :class:`ServerConnection` in a worker thread; when it
            returns the connection closes with 1000, when it raises with 1011.
        host: the address to listen on; ``None`` or ``""`` for every interface.
        port: the TCP port; 0 picks a free one (see :attr:`Server.port`).
        sock: a listening socket to use instead.
        ssl: a server-side TLS context, for ``wss://``.
        origins: allowed ``Origin`` values (exact strings or compiled patterns, ``None``
            for no header); anything else gets 403.
        extensions: extensions the server supports, as factories.
        subprotocols: subprotocols the server supports, in order of preference; clients must
            offer one, and the first of them that the client offers is chosen.
        select_subprotocol: picks the subprotocol instead of the default rule; called with the
            connection (see :data:`~syncws.server.SubprotocolSelector`).
        process_request: called with ``(connection, request)`` before the handshake; return
            a :class:`~syncws.core.http11.Response` to answer with it instead of upgrading
            (health checks, auth), or ``None`` to go on.
        process_response: called with ``(connection, request, response)``; may change the
            response, or return another one.
        server_header: the ``Server`` header; ``None`` sends none.
        extra_headers: more response headers, or a callable returning them for a connection.
        compression: ``"deflate"`` enables permessage-deflate; ``None`` disables it.
        max_connections: the size of the worker pool: how many connections at once.
        worker_idle_timeout: seconds a worker thread waits for a connection before it ends,
            above a floor of four threads that stay; ``None`` keeps every thread. The
            threads and memory of a spike come back after it; steady churn reuses threads.
            A thread also ends after the connection it runs once it has run for a minute
            (:data:`syncws.workers.MAX_AGE`), which gives back the memory the allocator
            keeps for it; with ``None``, threads never end.
        open_timeout: seconds for TLS and the opening handshake of each connection.
        ping_interval: seconds between keepalive pings; ``None`` turns keepalive off.
        ping_timeout: seconds to wait for a keepalive pong before failing with 1011.
        close_timeout: seconds to wait for the closing handshake before aborting.
        write_timeout: seconds a write may go without progress before aborting.
        max_size: the largest message accepted, in bytes; each fragment after the first
            counts 128 bytes more. ``None`` for no limit. A ``(message, frame)`` pair also
            limits the payload of each frame, as in websockets (see :ref:`limits`).
        max_queue: the high-water mark: how many received messages may wait before
            reading pauses; reading resumes when no more than the low-water mark,
            ``max_queue // 4``, wait. A ``(high, low)`` pair sets both, as in websockets
            (counted in messages, not frames); ``None`` for no limit.
        read_limit: bytes read from the socket at a time.
        write_limit: unsent bytes over which :func:`~syncws.connection.broadcast` skips a
            connection.
        logger: the logger; by default ``logging.getLogger("syncws.server")``.
        create_connection: the connection class, to use a subclass.
        backlog: the listen backlog.
        reuse_port: set ``SO_REUSEPORT``, to share the port between processes.
        family: the address family when ``host`` is a name.

    Raises:
        TypeError: ``handler`` is not callable, an argument has the wrong type, or is not
            a parameter of ``serve`` (a misspelt name fails here, before any I/O).
        ValueError: an argument is out of range, e.g. a timeout that is not positive, or a
            ``max_queue`` whose low-water mark is above its high-water mark.
        OSError: the socket could not be made, bound or listened on (the port is taken,
            for instance).
    """
    check_handler(handler)
    check_count("max_connections", max_connections, minimum=1)
    check_seconds("worker_idle_timeout", worker_idle_timeout, none="to keep every thread")
    config = ServerConfig(
        origins=origins,
        extensions=server_extensions(compression, extensions),
        subprotocols=subprotocols,
        select_subprotocol=select_subprotocol,
        process_request=process_request,
        process_response=process_response,
        server_header=server_header,
        extra_headers=extra_headers,
        logger=logger or logging.getLogger("syncws.server"),
        create_connection=create_connection or ServerConnection,
        options=ConnectionOptions(
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            write_timeout=write_timeout,
            max_size=max_size,
            max_queue=max_queue,
            read_limit=read_limit,
            write_limit=write_limit,
        ),
    )
    if sock is None:
        if port is None:
            raise TypeError("serve() needs a port, or a socket with sock=")
        sock = socket.create_server(
            (host or "", port),
            family=family if family != socket.AF_UNSPEC else _family(host),
            backlog=backlog,
            reuse_port=reuse_port,
            dualstack_ipv6=not host and socket.has_dualstack_ipv6(),
        )
    return Server(
        sock,
        handler,
        ssl=ssl,
        max_connections=max_connections,
        config=config,
        worker_idle_timeout=worker_idle_timeout,
    )


class CommonServeKeywords(ConnectionKeywords, total=False):
    """The keyword arguments that every server entry point takes: :func:`serve`,
    :func:`unix_serve`, :func:`~syncws.router.route` and :func:`~syncws.router.unix_route`.

    The keyword arguments of each build on this, for type checkers.
    """

    origins: Sequence[Origin] | None
    extensions: Sequence[ServerExtensionFactory] | None
    subprotocols: Sequence[str] | None
    select_subprotocol: SubprotocolSelector | None
    process_response: ProcessResponse | None
    server_header: str | None
    extra_headers: ExtraHeaders | None
    compression: Compression
    max_connections: int
    worker_idle_timeout: float | None
    logger: LoggerLike | None
    create_connection: type[ServerConnection] | None
    backlog: int


class TCPServeKeywords(TypedDict, total=False):
    """The keyword arguments of :func:`serve` and :func:`~syncws.router.route` that the Unix
    socket entry points don't take in ``**kwargs``, for type checkers."""

    sock: socket.socket | None
    reuse_port: bool
    family: socket.AddressFamily


class UnixServeKeywords(CommonServeKeywords, total=False):
    """The keyword arguments of :func:`unix_serve` after ``sock``: those of :func:`serve` but
    ``host``, ``port``, ``sock``, ``reuse_port`` and ``family``.

    For type checkers: ``**kwargs: Unpack[UnixServeKeywords]`` checks every name and type.
    """

    ssl: SSLContext | None
    process_request: ProcessRequest | None


class ServeKeywords(UnixServeKeywords, TCPServeKeywords, total=False):
    """The keyword arguments of :func:`serve`, for type checkers."""


def unix_serve(
    handler: Handler,
    path: str | None = None,
    *,
    sock: socket.socket | None = None,
    **kwargs: Unpack[UnixServeKeywords],
) -> Server:
    """Listen on the Unix socket at ``path`` and return a :class:`Server`.

    The socket file is removed when the server closes (unless another program replaced it
    meanwhile); with ``sock=``, the file is the caller's.

    Args:
        handler: as for :func:`serve`.
        path: the socket's path.
        sock: a listening Unix socket to use instead of ``path``.
        **kwargs: the keyword arguments of :func:`serve`, but ``sock``, ``reuse_port`` and
            ``family`` (see :class:`UnixServeKeywords`).

    Raises:
        TypeError: as for :func:`serve`, before the socket is made.
        ValueError: as for :func:`serve`, before the socket is made.
        OSError: the socket could not be made, bound or listened on.
    """
    check_keywords(serve, kwargs, caller="unix_serve", allowed=UnixServeKeywords.__annotations__)
    check_handler(handler)
    if sock is not None:
        return serve(handler, sock=sock, **kwargs)
    if path is None:
        raise TypeError("unix_serve() needs a path, or a socket with sock=")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except BaseException:
        sock.close()
        raise
    try:
        inode = os.stat(path).st_ino
        sock.listen(kwargs.pop("backlog", 128))
        server = serve(handler, sock=sock, **kwargs)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    # The socket file is this server's: it goes when the server closes.
    server._unix_path = (path, inode)
    return server


def _family(host: str | None) -> socket.AddressFamily:
    if host and ":" in host:
        return socket.AF_INET6
    if not host and socket.has_dualstack_ipv6():
        return socket.AF_INET6
    return socket.AF_INET
