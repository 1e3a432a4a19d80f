"""WebSocket routes inside a WSGI application, on the WSGI server's own port.

A WSGI server that runs each request in its own thread and exposes the request's socket can
hand that socket over: :func:`accept` reads the opening handshake from the ``environ``,
writes the ``101 Switching Protocols`` response on the socket and returns a
:class:`~syncws.server.ServerConnection`, the same connection :func:`~syncws.server.serve`
gives its handlers, with its reader thread, keepalive, timeouts, limits and compression. The
request's thread is then the handler's thread. :class:`WebSocketApp` wraps a handler into a
WSGI application that does all of this.

Supported servers:

- Werkzeug's development server (``flask run``, ``werkzeug.serving.run_simple`` or
  ``make_server`` with ``threaded=True``): the socket is ``environ["werkzeug.socket"]``.
- gunicorn with the ``gthread`` worker: the socket is ``environ["gunicorn.socket"]``.

Anything else raises :exc:`UnsupportedServer`, which :class:`WebSocketApp` turns into a
``500`` response: servers that give no access to the socket (``wsgiref``, mod_wsgi),
gunicorn's ``sync`` worker (one request per process at a time, killed after ``--timeout``)
and its ``gevent`` / ``eventlet`` workers (no real threads), a server that terminates TLS
itself (the socket is a TLS socket whose state can't be handed over), and a single-threaded
Werkzeug server (the WebSocket would block every other request).

How the socket is handed over: the connection works on a duplicate of the server's socket
(:meth:`socket.socket.dup`), so that the server's socket object stays valid until the server
closes it. Bytes the server read past the request head (frames a client sent right behind its
request) are taken out of the server's read buffer and fed to the connection first. When the
connection ends, both directions of the socket are shut down: whatever the server then
writes (its own response to the request) fails with ``EPIPE``, which both servers treat as a
client that went away, silently; what it reads is the end of the stream, so it does not keep
the connection alive for another request. The application must therefore return its WSGI
response only once the connection is closed; :class:`WebSocketApp` and
:class:`syncws.flask.Sock` do so.

Hand-off: gunicorn's ``gthread`` worker has a fixed number of threads (``--threads``), and a
connection that holds one for its whole life takes it from every other request. With
``hand_off=True`` (:class:`WebSocketApp`, :func:`handle`, :class:`syncws.flask.Sock`) or
:func:`hand_off`, the handler runs in a thread of syncws's own instead, and the request
returns right after the handshake. The server's socket object is pointed at a dead end first
(``dup2()`` of a socket pair whose other end is closed), so that the response gunicorn then
writes fails with ``EPIPE`` and its closing of the socket reaches the dead end only, while
the connection lives on in the duplicate.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import FrameType
from typing import Any
from urllib.parse import quote

from typing_extensions import Unpack

from .core.extensions.base import ServerExtensionFactory
from .core.frames import CloseCode
from .core.headers import Headers
from .core.http11 import Request, Response
from .core.protocol import State
from .core.server_protocol import Origin
from .exceptions import InvalidMessage
from .options import (
    Compression,
    ConnectionKeywords,
    ConnectionOptions,
    LoggerLike,
    check_bool,
    check_handler,
    check_keywords,
)
from .server import (
    SERVER,
    ExtraHeaders,
    ServerConfig,
    ServerConnection,
    SubprotocolSelector,
    run_handler,
    server_extensions,
)
from .transport import SocketTransport
from .workers import Workers

__all__ = [
    "AcceptKeywords",
    "StartResponse",
    "UnsupportedServer",
    "UpgradeRejected",
    "WebSocketApp",
    "accept",
    "close_all",
    "close_all_on_signals",
    "hand_off",
    "handle",
    "run_handler",
]

logger = logging.getLogger("syncws.wsgi")

StartResponse = Callable[..., Any]
"""The ``start_response`` callable of a WSGI server."""

_WERKZEUG = "Werkzeug's development server"
_GUNICORN = "gunicorn"


class UnsupportedServer(RuntimeError):
    """The WSGI server can't hand the request's socket over to a WebSocket connection.

    The message names the server and says what to run instead.
    """


class UpgradeRejected(Exception):
    """The request is not an acceptable WebSocket handshake.

    Answer it with ``response`` through the WSGI server, as any HTTP response:
    :meth:`wsgi_response` does it, and :attr:`status`, :attr:`headers` and :attr:`body` give
    its parts for a framework's response class.

    Attributes:
        response: the HTTP response that says why: 400, 403 (origin not allowed), 405 (not
            ``GET``), 426 (not a WebSocket upgrade, or another protocol version), 505.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"WebSocket handshake rejected with HTTP {response.status_code}")

    @property
    def status(self) -> str:
        """The status line for WSGI's ``start_response``, e.g. ``"403 Forbidden"``."""
        return f"{self.response.status_code} {self.response.reason_phrase}"

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The response headers, without ``Connection``: the WSGI server manages it."""
        return [
            (name, value)
            for name, value in self.response.headers.raw_items()
            if name.lower() != "connection"
        ]

    @property
    def body(self) -> bytes:
        """The response body: plain text that says what was wrong."""
        return self.response.body

    def wsgi_response(self, start_response: StartResponse) -> list[bytes]:
        """Start the response and return its body, as a WSGI application returns it."""
        start_response(self.status, self.headers)
        return [self.body]


class _HandedOverTransport(SocketTransport):
    """The transport over a duplicate of a WSGI server's socket.

    Closing it shuts the server's socket down too, so that the server can neither write its
    own response into the WebSocket stream nor wait on the socket for another request.
    """

    def __init__(self, sock: socket.socket, server_socket: socket.socket) -> None:
        super().__init__(sock)
        self._server_socket: socket.socket | None = server_socket

    def release_server_socket(self) -> None:
        """Cut the server's socket off the connection, which lives on in the duplicate.

        The descriptor of the server's socket object is replaced (``dup2()``) by one end of a
        socket pair whose other end is closed: whatever the server writes next fails with
        ``EPIPE``, it reads the end of the stream, and shutting down or closing its socket
        reaches the dead end only, never the client. The server may then do with its socket
        all it does after a request, while the connection goes on.
        """
        server_socket, self._server_socket = self._server_socket, None
        if server_socket is None:
            return
        dead_end, peer = socket.socketpair()
        with dead_end, peer:
            os.dup2(dead_end.fileno(), server_socket.fileno(), inheritable=False)

    def close(self) -> None:
        # Shutdown acts on the connection that both descriptors share, and is harmless when
        # the closing handshake has already shut it down.
        server_socket = self._server_socket
        if server_socket is not None:
            with contextlib.suppress(OSError):
                server_socket.shutdown(socket.SHUT_RDWR)
        super().close()


def _server_name(environ: Mapping[str, Any]) -> str:
    software = environ.get("SERVER_SOFTWARE")
    return repr(software) if software else "this WSGI server"


def _find_socket(environ: Mapping[str, Any]) -> tuple[str, socket.socket]:
    """Return the server's name and the request's socket, or say why there is none."""
    if "werkzeug.socket" in environ:
        name, sock = _WERKZEUG, environ["werkzeug.socket"]
        if not (environ.get("wsgi.multithread") or environ.get("wsgi.multiprocess")):
            raise UnsupportedServer(
                f"{name} runs one request at a time, and a WebSocket connection would block "
                "every other request: start it with threaded=True (flask run does)"
            )
    elif "gunicorn.socket" in environ:
        name, sock = _GUNICORN, environ["gunicorn.socket"]
        if not environ.get("wsgi.multithread"):
            raise UnsupportedServer(
                "gunicorn's sync worker runs one request per process at a time and kills "
                "requests that last longer than --timeout: run gunicorn with "
                "--worker-class gthread (and --threads N for N connections at once)"
            )
    else:
        raise UnsupportedServer(
            f"{_server_name(environ)} does not give access to the request's socket, so it "
            "can't hand it over to a WebSocket connection: run the application under "
            "Werkzeug's development server (threaded) or gunicorn --worker-class gthread, "
            "or serve WebSocket with syncws.serve() on its own port"
        )
    if isinstance(sock, ssl.SSLSocket):
        raise UnsupportedServer(
            f"{name} terminates TLS itself, and the TLS state can't be handed over: "
            "terminate TLS in a reverse proxy (nginx) in front of the server"
        )
    # gunicorn's gevent and eventlet workers run requests in greenlets, on sockets of their
    # own that are not the standard library's: syncws's threads would block them all.
    if type(sock).__module__ != "socket" or not isinstance(sock, socket.socket):
        raise UnsupportedServer(
            f"{name} gives a socket of type {type(sock).__module__}.{type(sock).__qualname__}: "
            "syncws needs real threads and standard sockets (gevent and eventlet workers "
            "are not supported; use --worker-class gthread)"
        )
    return name, sock


def _take_buffered(name: str, environ: Mapping[str, Any], sock: socket.socket) -> bytes:
    """Take the bytes the server read past the request head out of its read buffer."""
    stream = environ.get("wsgi.input")
    if name == _WERKZEUG:
        # Werkzeug reads the request head through a buffered reader on the socket, which
        # may hold the first frames already. peek() only returns what is buffered when the
        # socket is non-blocking: with nothing buffered, it would wait for more otherwise.
        if isinstance(stream, io.BufferedReader):
            timeout = sock.gettimeout()
            sock.setblocking(False)
            try:
                data = stream.peek()
                return stream.read(len(data)) if data else b""
            finally:
                sock.settimeout(timeout)
        if isinstance(stream, io.RawIOBase):
            return b""  # unbuffered: nothing was read ahead
    elif name == _GUNICORN:
        # gunicorn's parser keeps what it read past the head in the "unreader" of the body
        # reader. Recent versions have take_buffered(); older ones keep a BytesIO in buf.
        unreader = getattr(getattr(stream, "reader", None), "unreader", None)
        take = getattr(unreader, "take_buffered", None)
        if callable(take):
            data = take()
            if isinstance(data, bytes):
                return data
        buffer = getattr(unreader, "buf", None)
        if isinstance(buffer, io.BytesIO):
            data = buffer.getvalue()
            unreader.buf = io.BytesIO()  # type: ignore[union-attr]
            return data
    raise UnsupportedServer(
        f"{name} reads the request through {type(stream).__name__}, whose read buffer syncws "
        "can't reach: frames sent right after the request could be lost (was wsgi.input "
        "replaced by a middleware?)"
    )


def _request_from_environ(environ: Mapping[str, Any]) -> Request:
    """Rebuild the handshake request from the CGI-style variables of the environ."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if not target.startswith("/"):
        # PEP 3333 gives the path decoded and as latin-1 characters: encode it back.
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        target = quote(path.encode("latin-1"), safe="/;=,@:!$&'()*+~")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
    headers = Headers()
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            name = key[5:].replace("_", "-").title()
            headers[name] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").title()] = value
    return Request(target, headers)


class AcceptKeywords(ConnectionKeywords, total=False):
    """The keyword arguments of :func:`accept`, for type checkers.

    :class:`WebSocketApp`, :func:`handle` and :class:`syncws.flask.Sock` take them and
    pass them on: ``**kwargs: Unpack[AcceptKeywords]`` checks every name and type.
    """

    origins: Sequence[Origin] | None
    extensions: Sequence[ServerExtensionFactory] | None
    subprotocols: Sequence[str] | None
    select_subprotocol: SubprotocolSelector | None
    compression: Compression
    server_header: str | None
    extra_headers: ExtraHeaders | None
    logger: LoggerLike | None
    create_connection: type[ServerConnection] | None


def accept(
    environ: Mapping[str, Any],
    *,
    origins: Sequence[Origin] | None = None,
    extensions: Sequence[ServerExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    select_subprotocol: SubprotocolSelector | None = None,
    compression: Compression = "deflate",
    server_header: str | None = SERVER,
    extra_headers: ExtraHeaders | None = None,
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
) -> ServerConnection:
    """Upgrade the WSGI request to a WebSocket connection, in the request's thread.

    Use the connection, close it (``with`` does), and only then return a response from the
    application: any response, since the server can't send it anymore. Example::

        def app(environ, start_response):
            try:
                websocket = syncws.wsgi.accept(environ)
            except syncws.wsgi.UpgradeRejected as exc:
                return exc.wsgi_response(start_response)
            with websocket:
                for message in websocket:
                    websocket.send(message)
            start_response("101 Switching Protocols", [])
            return []

    Args:
        environ: the request's WSGI environ.
        origins: allowed ``Origin`` values (exact strings or compiled patterns, ``None``
            for no header); anything else gets 403.
        extensions: extensions the server supports, as factories.
        subprotocols: subprotocols the server supports, in order of preference; clients must
            offer one, and the first of them that the client offers is chosen.
        select_subprotocol: picks the subprotocol instead of the default rule; called with the
            connection (see :data:`~syncws.server.SubprotocolSelector`).
        compression: ``"deflate"`` enables permessage-deflate; ``None`` disables it.
        server_header: the ``Server`` header of the 101 response; ``None`` sends none.
        extra_headers: more headers for the 101 response (cookies, for instance), or a
            callable that returns them for the connection.
        open_timeout: seconds to write the 101 response (the WSGI server has read the
            request already); ``None`` for no limit.
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
        write_limit: unsent bytes over which :func:`~syncws.connection.broadcast` skips the
            connection.
        logger: the logger; by default ``logging.getLogger("syncws.server")``.
        create_connection: the connection class, to use a subclass.

    Returns:
        The open connection.

    Raises:
        TypeError: an argument has the wrong type, or is not a parameter of ``accept``.
        ValueError: an argument is out of range, e.g. a timeout that is not positive, or a
            ``max_queue`` whose low-water mark is above its high-water mark.
        UpgradeRejected: the request is not an acceptable handshake; answer with its
            response.
        UnsupportedServer: the WSGI server can't hand over the socket; the message says why.
        OSError: writing the 101 response failed: the client went away.
    """
    config = ServerConfig(
        origins=origins,
        extensions=server_extensions(compression, extensions),
        subprotocols=subprotocols,
        select_subprotocol=select_subprotocol,
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
    return _upgrade(environ, config)


def _upgrade(environ: Mapping[str, Any], config: ServerConfig) -> ServerConnection:
    """Upgrade the request of ``environ``, as :func:`accept` does, set up by ``config``."""
    name, server_socket = _find_socket(environ)
    # The request head was parsed by the WSGI server: the protocol starts OPEN, after the
    # handshake, and only checks the request and builds the response here.
    protocol = config.new_protocol(State.OPEN)
    request = _request_from_environ(environ)
    method = environ.get("REQUEST_METHOD", "GET")
    version = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    if method != "GET":
        # RFC 6455 §4.1: the handshake is a GET request.
        exc = InvalidMessage(f"unsupported HTTP method: {method}", status=405)
        raise UpgradeRejected(protocol.reject_exception(exc))
    if version != "HTTP/1.1":
        # RFC 6455 §4.1: the handshake is an HTTP/1.1 request (HTTP/2 would need RFC 8441).
        exc = InvalidMessage(f"unsupported HTTP version: {version}", status=505)
        raise UpgradeRejected(protocol.reject_exception(exc))

    sock = server_socket.dup()
    transport = _HandedOverTransport(sock, server_socket)
    try:
        connection = config.new_connection(sock, protocol, transport)
        response = config.respond(connection, protocol, request)
    except BaseException:
        sock.close()
        raise
    if response.status_code != 101:
        # The WSGI server answers, on its own socket: the duplicate is not needed.
        sock.close()
        raise UpgradeRejected(response)
    try:
        buffered = _take_buffered(name, environ, server_socket)
        connection.request = protocol.request = request
        connection.response = protocol.response = response
        transport.send([response.serialize()], config.options.open_timeout)
        if buffered:
            protocol.receive_data(buffered)
    except BaseException:
        with contextlib.suppress(OSError):
            server_socket.shutdown(socket.SHUT_RDWR)
        sock.close()
        raise
    connection.start(protocol.events_received())
    with _connections_lock:
        # Closed connections leave as new ones come: there are as many as the server has
        # threads, so the scan is short.
        for closed in [other for other in _connections if other.state is State.CLOSED]:
            _connections.discard(closed)
        _connections.add(connection)
    return connection


# The connections accept() opened in this process, for close_all(). Reentrant: close_all()
# may run in a signal handler while the same thread is adding a connection.
_connections: set[ServerConnection] = set()
_connections_lock = threading.RLock()


def close_all(code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
    """Start closing every open connection that :func:`accept` opened in this process.

    Returns at once, without waiting for the closing handshakes: each handler sees its
    connection close (its loop ends, :meth:`~syncws.connection.Connection.recv` raises
    :exc:`~syncws.exceptions.ConnectionClosedOK`), returns, and its request ends. Call it when
    the WSGI server stops a worker, from gunicorn's ``worker_int`` or ``worker_exit`` hooks,
    or through :func:`close_all_on_signals`. It is safe to call from a signal handler, as
    long as the interrupted thread does not hold a connection's lock (under gunicorn, the
    main thread never uses the connections).

    Args:
        code: the close code; 1001 (going away) by default.
        reason: the close reason.
    """
    with _connections_lock:
        connections = list(_connections)
    for connection in connections:
        connection._start_close(code, reason)


def close_all_on_signals(
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT),
) -> None:
    """Call :func:`close_all` when one of ``signals`` arrives, then the signal's handler.

    gunicorn stops a worker with SIGTERM (graceful: the worker waits up to
    ``--graceful-timeout`` for its requests, which WebSocket connections don't end on their
    own) or SIGQUIT and SIGINT (at once), and has a hook for the last two only. Call this from
    its ``post_worker_init`` hook, once the worker installed its handlers, so that every
    connection closes with 1001 as the worker stops, instead of 1006 when it exits::

        # gunicorn.conf.py
        import syncws.wsgi

        def post_worker_init(worker):
            syncws.wsgi.close_all_on_signals()

    The handler in place for each signal still runs after :func:`close_all`; the default
    action too, when there was no Python handler.

    Args:
        signals: the signals to act on.

    Raises:
        ValueError: not called in the main thread.
    """
    for signum in signals:
        previous = signal.getsignal(signum)
        signal.signal(signum, functools.partial(_close_all_then, previous))


def _close_all_then(
    previous: Callable[[int, FrameType | None], Any] | int | None,
    signum: int,
    frame: FrameType | None,
) -> None:
    close_all()
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


# Handing connections off to syncws's own threads.

Job = Callable[[], None]
"""A handed-off connection's work: run its handler, close it."""

# By process: threads do not survive fork(), and a server that imports the application
# first (gunicorn --preload) then forks workers needs threads in each of them.
_pools: dict[int, Workers[Job]] = {}
_pools_lock = threading.Lock()

# As serve()'s worker_idle_timeout: threads idle this long end, down to a few.
_IDLE_TIMEOUT = 60


def _run(job: Job) -> None:
    try:
        job()
    except Exception:
        # run_handler() deals with the handler's errors: this is a fault of syncws's own or of
        # the framework around the handler (a Flask teardown function). The thread goes on.
        logger.error("handed-off connection failed", exc_info=True)


def _workers() -> Workers[Job]:
    """The threads that run handed-off connections, started in this process."""
    pid = os.getpid()
    with _pools_lock:
        pool = _pools.get(pid)
        if pool is None:
            pool = _pools[pid] = Workers(_run, idle_timeout=_IDLE_TIMEOUT, name="syncws-wsgi")
            atexit.register(_close_at_exit)
        return pool


def _hand_off_supported(environ: Mapping[str, Any]) -> bool:
    """Whether the WSGI server lets a WebSocket connection leave the request's thread.

    gunicorn's ``gthread`` worker does: its threads are a fixed pool (``--threads``) that a
    connection held for its whole life would take from every other request, and it lets the
    application keep a socket it has upgraded. Werkzeug's development server gives every
    request a thread of its own, with no limit: there is nothing to set free, and the
    connection stays in the request's thread.

    Args:
        environ: the request's WSGI environ.
    """
    return "gunicorn.socket" in environ and bool(environ.get("wsgi.multithread"))


def hand_off(environ: Mapping[str, Any], connection: ServerConnection, job: Job) -> bool:
    """Run ``job`` in a thread of syncws's own, and let the request end at once.

    For a connection that :func:`accept` opened in this request, under gunicorn's
    ``gthread`` worker: the server's socket is cut off the connection (what the server writes
    on it from then on fails, and closing it leaves the connection open) and ``job`` runs in
    a ``syncws-wsgi-<n>`` thread. The application then returns at once, with any response,
    which the server can't send, and the server's thread serves other requests. Under
    Werkzeug's development server, which gives every request a thread of its own with no
    limit, there is nothing to set free: ``job`` stays with the caller. For a Django view::

        websocket = syncws.wsgi.accept(request.environ)
        job = functools.partial(syncws.server.run_handler, websocket, handler)
        if not syncws.wsgi.hand_off(request.environ, websocket, job):
            job()
        return HttpResponse(status=101)

    :func:`close_all` sees handed-off connections as the others. As the process exits (a
    gunicorn worker stopping), the connections still open are closed with 1001 (going away)
    and it waits for their closing handshakes, up to their ``close_timeout``: their threads
    are daemons, and gunicorn no longer waits for them as it waits for requests.

    Args:
        environ: the request's WSGI environ.
        connection: the connection that :func:`accept` returned for this request.
        job: what to run, e.g. ``functools.partial(run_handler, connection, handler)``;
            exceptions it raises are logged.

    Returns:
        ``True`` once ``job`` is on its way; ``False`` when the server does not allow it or
        no thread could be started (logged): run ``job`` in the request's thread then, as
        without hand-off.
    """
    transport = connection.transport
    if not _hand_off_supported(environ) or not isinstance(transport, _HandedOverTransport):
        return False
    transport.release_server_socket()
    try:
        _workers().submit(job)
    except (RuntimeError, MemoryError) as exc:
        # Out of threads: the request's thread runs the connection, as without hand-off.
        # The server's socket is cut off already, which changes nothing for it.
        logger.warning("no thread to hand the connection off to (%s): it keeps the request's", exc)
        return False
    return True


def _close_at_exit() -> None:
    """Close the connections still open with 1001 as the process exits, and wait for their
    closing handshakes: handed-off connections run in daemon threads, which the interpreter
    would stop in the middle (1006), and the WSGI server no longer waits for them."""
    close_all()
    with _connections_lock:
        connections = [each for each in _connections if each.state is not State.CLOSED]
    timeouts = [each.close_timeout for each in connections]
    deadline = None
    if None not in timeouts:
        deadline = time.monotonic() + max((t for t in timeouts if t is not None), default=0)
    for connection in connections:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
        with contextlib.suppress(TimeoutError):
            connection.wait_closed(remaining)


# handle(), WebSocketApp and syncws.flask take a parameter of the same name.
_hand_off = hand_off


_UNSUPPORTED_TEXT = b"This server can't open WebSocket connections; see its log.\n"


class WebSocketApp:
    """A WSGI application that runs ``handler`` on each WebSocket connection.

    Mount it where the WebSocket route goes (e.g. with a dispatcher middleware), or call it
    from a WSGI application for that route. Requests that are not acceptable handshakes get
    their 4xx response; on an unsupported server, the error is logged and the request gets a
    ``500``. The handler runs in the request's thread, or with ``hand_off=True`` under
    gunicorn's ``gthread`` worker, in a thread of syncws's own while the request ends at once
    (see :func:`hand_off`); when it returns the connection closes with 1000, when it raises
    with 1011.

    Example::

        def echo(websocket):
            for message in websocket:
                websocket.send(message)

        app = syncws.wsgi.WebSocketApp(echo, origins=["https://example.com"], hand_off=True)

    Args:
        handler: called with each :class:`~syncws.server.ServerConnection`.
        hand_off: run the handler in a thread of syncws's own where the server allows it,
            and give the request's thread back to the server at once.
        **options: keyword arguments of :func:`accept` (see :class:`AcceptKeywords`).

    Raises:
        TypeError: ``handler`` is not callable, ``hand_off`` is not a :class:`bool`, or an
            option is not one of :func:`accept`'s or has the wrong type: when the
            application is made, not at the first request.
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        handler: Callable[[ServerConnection], Any],
        *,
        hand_off: bool = False,
        **options: Unpack[AcceptKeywords],
    ) -> None:
        check_handler(handler)
        check_bool("hand_off", hand_off)
        check_keywords(accept, options, caller="WebSocketApp")
        self.handler = handler
        self.hand_off = hand_off
        self.options = options

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return handle(environ, start_response, self.handler, hand_off=self.hand_off, **self.options)


def handle(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    handler: Callable[[ServerConnection], Any],
    *,
    hand_off: bool = False,
    **options: Unpack[AcceptKeywords],
) -> Iterable[bytes]:
    """Serve one WSGI request with ``handler``, as :class:`WebSocketApp` does.

    Args:
        environ: the request's WSGI environ.
        start_response: the server's ``start_response``.
        handler: called with the connection.
        hand_off: run the handler in a thread of syncws's own where the server allows it
            (see :func:`hand_off`), and return at once.
        **options: keyword arguments of :func:`accept` (see :class:`AcceptKeywords`).

    Returns:
        The WSGI response: the 4xx or 500 answer when there is no connection; otherwise an
        empty ``101`` that the server can't send anymore, once the connection is closed or
        handed off.

    Raises:
        TypeError: an option is not one of :func:`accept`'s, or has the wrong type.
        ValueError: an option is out of range.
    """
    log = options.get("logger") or logger
    try:
        connection = accept(environ, **options)
    except UpgradeRejected as exc:
        log.debug("WebSocket handshake rejected: %s", exc.body.decode(errors="replace").strip())
        return exc.wsgi_response(start_response)
    except UnsupportedServer as exc:
        log.error("cannot open a WebSocket connection: %s", exc)
        start_response(
            "500 Internal Server Error",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(_UNSUPPORTED_TEXT))),
            ],
        )
        return [_UNSUPPORTED_TEXT]
    except OSError as exc:
        log.debug("opening handshake failed: %s", exc)
        start_response("101 Switching Protocols", [])
        return []
    job = functools.partial(run_handler, connection, handler, log)
    if not (hand_off and _hand_off(environ, connection, job)):
        job()
    # The socket is shut down, or cut off the connection: the server can't write this
    # response, only log it. 101 is what the client got.
    start_response("101 Switching Protocols", [])
    return []
