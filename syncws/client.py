"""The blocking client: :func:`connect` and :func:`unix_connect`.

``connect()`` runs in the caller's thread: name resolution, TCP, the proxy's tunnel, TLS, the
HTTP handshake and any redirects all happen under one ``open_timeout`` deadline. Then the
connection starts its reader thread and is returned, ready to use.

``connect(uri, reconnect=True)`` returns an iterator instead: it opens a connection, yields it,
and when the connection ends or an attempt fails for a reason that may go away, waits and opens
another one.
"""

from __future__ import annotations

import _socket
import dataclasses
import email.utils
import logging
import os
import random
import socket
import ssl as ssl_module
import sys
import threading
import time
from collections.abc import Callable, Generator, Sequence
from ssl import SSLContext
from typing import Any, Literal, overload
from urllib.parse import urljoin

from typing_extensions import Unpack

from .connection import Connection
from .core.client_protocol import ClientProtocol
from .core.extensions.base import ClientExtensionFactory
from .core.headers import Headers, HeadersLike
from .core.protocol import Event
from .core.proxy import get_proxy, parse_proxy
from .core.uri import WebSocketURI, parse_uri
from .deadline import deadline_after, remaining
from .exceptions import (
    InvalidHandshake,
    InvalidMessage,
    InvalidProxyStatus,
    InvalidStatus,
    SecurityError,
    SocksProxyError,
)
from .options import (
    Compression,
    ConnectionKeywords,
    ConnectionOptions,
    LoggerLike,
    check_compression,
    check_keywords,
)
from .proxy import open_socks5_tunnel, open_tunnel
from .transport import SocketTransport, Transport, tls_handshake
from .version import __version__

__all__ = ["USER_AGENT", "ClientConnection", "connect", "unix_connect"]

_DEFAULT_OPTIONS = ConnectionOptions()

_logger = logging.getLogger("syncws.client")

USER_AGENT = f"Python/{sys.version_info.major}.{sys.version_info.minor} syncws/{__version__}"
"""The default ``User-Agent`` header."""

AdditionalHeaders = HeadersLike | Callable[[], HeadersLike]
"""Request headers to add, or a callable that returns them, called before each attempt."""


# RFC 9110 §15.4: the redirections that name another location. 300 and 304 do not.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Headers that carry credentials for one origin; they don't follow a redirect to another one.
_CREDENTIALS = ("Authorization", "Cookie")


class ClientConnection(Connection):
    """A client connection, as :func:`connect` returns it.

    Use it as a context manager to close it on exit.
    """

    protocol: ClientProtocol

    def __enter__(self) -> ClientConnection:
        return self


class UnixConnectKeywords(ConnectionKeywords, total=False):
    """The keyword arguments of :func:`unix_connect` after ``reconnect`` and the
    ``backoff_*`` ones: those of :func:`connect` but these and ``sock``.

    For type checkers: ``**kwargs: Unpack[UnixConnectKeywords]`` checks every name and type.
    """

    ssl: SSLContext | None
    server_hostname: str | None
    origin: str | None
    extensions: Sequence[ClientExtensionFactory] | None
    subprotocols: Sequence[str] | None
    additional_headers: AdditionalHeaders | None
    user_agent_header: str | None
    compression: Compression
    proxy: str | Literal[True] | None
    proxy_ssl: SSLContext | None
    proxy_server_hostname: str | None
    max_redirects: int
    source_address: tuple[str, int] | None
    logger: LoggerLike | None
    create_connection: type[ClientConnection] | None


class ConnectKeywords(UnixConnectKeywords, total=False):
    """The keyword arguments of :func:`connect` but ``reconnect``, for type checkers."""

    backoff_initial: float
    backoff_factor: float
    backoff_max: float
    backoff_reset: float
    sock: socket.socket | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ClientConfig:
    """What every attempt of one :func:`connect` call opens its connection with."""

    ssl: SSLContext | None
    server_hostname: str | None
    origin: str | None
    extensions: Sequence[ClientExtensionFactory] | None
    subprotocols: Sequence[str] | None
    user_agent_header: str | None
    proxy: str | Literal[True] | None
    proxy_ssl: SSLContext | None
    proxy_server_hostname: str | None
    max_redirects: int
    source_address: tuple[str, int] | None
    logger: LoggerLike
    create_connection: type[ClientConnection]
    options: ConnectionOptions


@overload
def connect(
    uri: str, *, reconnect: Literal[False] = False, **kwargs: Unpack[ConnectKeywords]
) -> ClientConnection: ...


@overload
def connect(
    uri: str, *, reconnect: Literal[True], **kwargs: Unpack[ConnectKeywords]
) -> Generator[ClientConnection, None, None]: ...


def connect(
    uri: str,
    *,
    reconnect: bool = False,
    backoff_initial: float = 1.0,
    backoff_factor: float = 2.0,
    backoff_max: float = 60.0,
    backoff_reset: float = 60.0,
    sock: socket.socket | None = None,
    ssl: SSLContext | None = None,
    server_hostname: str | None = None,
    origin: str | None = None,
    extensions: Sequence[ClientExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    additional_headers: AdditionalHeaders | None = None,
    user_agent_header: str | None = USER_AGENT,
    compression: Compression = "deflate",
    proxy: str | Literal[True] | None = True,
    proxy_ssl: SSLContext | None = None,
    proxy_server_hostname: str | None = None,
    max_redirects: int = 10,
    source_address: tuple[str, int] | None = None,
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
    create_connection: type[ClientConnection] | None = None,
) -> ClientConnection | Generator[ClientConnection, None, None]:
    """Open a WebSocket connection to ``uri`` and return it once the handshake is done.

    Example::

        with syncws.connect("ws://localhost:8765") as websocket:
            websocket.send("Hello world!")
            print(websocket.recv())

    With ``reconnect=True``, return an iterator that yields a new open connection each time
    the previous one ended or an attempt failed for a reason that may go away::

        for websocket in syncws.connect("ws://localhost:8765", reconnect=True):
            try:
                for message in websocket:
                    ...
            except syncws.ConnectionClosed:
                continue

    Between failed attempts it waits a random time between 0 and a ceiling that starts at
    ``backoff_initial`` and grows by ``backoff_factor`` after each failure up to
    ``backoff_max`` ("full jitter": clients that lost the same server spread their attempts
    over the whole window instead of coming back together). When a connection ends, the next
    attempt waits up to the ceiling too; a connection that stayed open ``backoff_reset``
    seconds or more brings the ceiling back to ``backoff_initial``. A ``Retry-After`` header
    on a 503 or a 429 sets the least delay. Each wait is logged at ``INFO``. Breaking out of
    the loop closes the current connection.

    These failures are retried: the connection was refused, reset or timed out, a temporary
    failure of name resolution, an HTTP status 5xx or 429 from the server or the proxy, a
    SOCKS5 proxy that could not reach the server, the server closing the connection during
    the handshake. Every other error is raised, because
    trying again gives the same answer: an invalid URI or argument, a name that does not
    exist, any other 4xx (:exc:`~syncws.exceptions.InvalidStatus`, e.g. 401 or 403), a proxy
    refusal other than 5xx or 429 (407, 403), a TLS certificate that does not verify or
    another TLS failure such as a version mismatch, and an invalid handshake response (not
    HTTP, not a WebSocket upgrade, a wrong ``Sec-WebSocket-Accept``, extensions or
    subprotocols that were not offered): the server is not a WebSocket server, or not a
    compatible one.

    Proxies: with ``proxy=True`` (the default), the environment variables ``https_proxy``
    (for ``wss://``), ``http_proxy`` (for ``ws://``), ``all_proxy`` and ``no_proxy`` decide,
    as :func:`syncws.core.proxy.get_proxy` describes. The client asks an ``http://`` or
    ``https://`` proxy for a tunnel with ``CONNECT``, with Basic credentials when the proxy's
    URL has user info, and a ``socks5h://`` or ``socks5://`` proxy with SOCKS5 (RFC 1928),
    with a user name and password (RFC 1929) when the URL has them. A ``socks5h://`` proxy
    resolves the server's name; for ``socks5://`` the client does.

    Redirects: a 301, 302, 303, 307 or 308 answer with a ``Location`` is followed, up to
    ``max_redirects`` times, within the same ``open_timeout``. A redirect from ``wss://`` to
    ``ws://`` is refused. After a redirect to another origin (scheme, host or port), the
    ``Authorization`` and ``Cookie`` headers of ``additional_headers`` and the user info of
    the first URI are not sent anymore.

    Args:
        uri: a ``ws://`` or ``wss://`` URI; user info in it is sent as Basic credentials.
        reconnect: return an iterator of connections that reconnects, as above.
        backoff_initial: with ``reconnect``, the first ceiling of the wait, in seconds.
        backoff_factor: with ``reconnect``, how much the ceiling grows after each failure.
        backoff_max: with ``reconnect``, the highest ceiling, in seconds.
        backoff_reset: with ``reconnect``, how many seconds a connection must stay open for
            the ceiling to go back to ``backoff_initial``.
        sock: a connected socket to use instead of opening one; then no proxy is used, no
            redirect is followed, and ``reconnect`` is not available.
        ssl: the TLS context for ``wss://``; by default one that verifies the server's
            certificate and hostname.
        server_hostname: the hostname to verify and send in SNI, when it is not the URI's
            (for the first URI: after a redirect to another host, that host's name is used).
        origin: the ``Origin`` header to send.
        extensions: extensions to offer, as factories.
        subprotocols: subprotocols to offer, in order of preference.
        additional_headers: more headers for the handshake request, or a callable that
            returns them; it is called before each attempt, e.g. for a fresh token.
        user_agent_header: the ``User-Agent`` header; ``None`` sends none.
        compression: ``"deflate"`` offers permessage-deflate; ``None`` offers no compression.
        proxy: a proxy URL (``http://[user:password@]host:port``, ``https://...``,
            ``socks5h://...`` or ``socks5://...``) to go through, ``True`` to follow the
            environment, ``None`` to connect directly.
        proxy_ssl: the TLS context for an ``https://`` proxy; by default one that verifies
            the proxy's certificate and hostname.
        proxy_server_hostname: the hostname to verify and send in SNI to an ``https://``
            proxy, when it is not the one in the proxy's URL (e.g. a proxy reached by its IP
            address).
        max_redirects: how many redirects to follow at most.
        source_address: the local ``(host, port)`` to connect from, as for
            :func:`socket.create_connection`.
        open_timeout: seconds for the whole opening: name resolution, TCP, the proxy, TLS,
            the HTTP handshake and redirects; ``None`` for no limit.
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
        write_limit: unsent bytes over which ``broadcast`` skips the connection.
        logger: the logger; by default ``logging.getLogger("syncws.client")``.
        create_connection: the connection class, to use a subclass.

    Returns:
        The open connection; with ``reconnect=True``, an iterator of open connections.

    Raises:
        TypeError: an argument has the wrong type, or is not a parameter of ``connect`` (a
            misspelt name fails here, before any I/O).
        ValueError: an argument is out of range, e.g. a timeout that is not positive, or a
            ``max_queue`` whose low-water mark is above its high-water mark.
        InvalidURI: ``uri`` is not a valid WebSocket URI, nor a ``Location`` it redirects to.
        OSError: the TCP connection failed; when it was to a proxy, the message names the
            proxy (the type and ``errno`` are those of the error).
        ssl.SSLError: the TLS handshake failed.
        InvalidHandshake: the server did not accept the WebSocket handshake; an
            :exc:`~syncws.exceptions.InvalidStatus` has the HTTP response.
        SecurityError: more than ``max_redirects`` redirects, or one from ``wss://`` to
            ``ws://``.
        ~syncws.exceptions.ProxyError: the proxy did not open the tunnel; an
            :exc:`~syncws.exceptions.InvalidProxyStatus` has its response, a
            :exc:`~syncws.exceptions.SocksProxyError` the SOCKS5 reply code.
        ~syncws.exceptions.InvalidProxy: the proxy's URL is not valid.
        TimeoutError: the opening took longer than ``open_timeout``.
    """
    options = ConnectionOptions.shared(
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        write_timeout=write_timeout,
        max_size=max_size,
        max_queue=max_queue,
        read_limit=read_limit,
        write_limit=write_limit,
    )
    check_compression(compression)
    wsuri = _check_target(uri, ssl=ssl, max_redirects=max_redirects, proxy=proxy)
    if proxy_server_hostname is not None and not isinstance(proxy_server_hostname, str):
        raise TypeError(
            "proxy_server_hostname must be a hostname (str), or None for the proxy URL's;"
            f" got {type(proxy_server_hostname).__name__} {proxy_server_hostname!r}"
        )
    if sock is not None and source_address is not None:
        raise TypeError("source_address is for a socket that connect() opens, not for sock")
    if compression == "deflate":
        from .core.extensions.permessage_deflate import (  # noqa: PLC0415
            enable_client_permessage_deflate,
        )

        extensions = enable_client_permessage_deflate(extensions)
    if logger is None:
        logger = _logger
    config = _ClientConfig(
        ssl=ssl,
        server_hostname=server_hostname,
        origin=origin,
        extensions=extensions,
        subprotocols=subprotocols,
        user_agent_header=user_agent_header,
        proxy=proxy,
        proxy_ssl=proxy_ssl,
        proxy_server_hostname=proxy_server_hostname,
        max_redirects=max_redirects,
        source_address=source_address,
        logger=logger,
        create_connection=create_connection or ClientConnection,
        options=options,
    )

    def attempt() -> ClientConnection:
        headers = additional_headers() if callable(additional_headers) else additional_headers
        return _open(
            uri,
            wsuri,
            config,
            sock=sock,
            additional_headers=None if headers is None else Headers(headers),
        )

    if not reconnect:
        return attempt()
    if sock is not None:
        raise TypeError("reconnect=True opens its own connections: it does not take sock")
    backoff = _Backoff(backoff_initial, backoff_factor, backoff_max, backoff_reset)
    return _reconnect(attempt, backoff, logger)


@overload
def unix_connect(
    path: str,
    uri: str | None = None,
    *,
    reconnect: Literal[False] = False,
    backoff_initial: float = ...,
    backoff_factor: float = ...,
    backoff_max: float = ...,
    backoff_reset: float = ...,
    **kwargs: Unpack[UnixConnectKeywords],
) -> ClientConnection: ...


@overload
def unix_connect(
    path: str,
    uri: str | None = None,
    *,
    reconnect: Literal[True],
    backoff_initial: float = ...,
    backoff_factor: float = ...,
    backoff_max: float = ...,
    backoff_reset: float = ...,
    **kwargs: Unpack[UnixConnectKeywords],
) -> Generator[ClientConnection, None, None]: ...


def unix_connect(
    path: str,
    uri: str | None = None,
    *,
    reconnect: bool = False,
    backoff_initial: float = 1.0,
    backoff_factor: float = 2.0,
    backoff_max: float = 60.0,
    backoff_reset: float = 60.0,
    **kwargs: Unpack[UnixConnectKeywords],
) -> ClientConnection | Generator[ClientConnection, None, None]:
    """Open a WebSocket connection over the Unix socket at ``path``.

    With ``reconnect=True``, return an iterator that yields a new open connection each time
    the previous one ended or an attempt failed for a reason that may go away, as
    :func:`connect` does; each attempt opens a new socket. A socket file that does not exist
    (yet, or anymore: a server that restarts removes it) and a refused connection are such
    reasons::

        for websocket in syncws.unix_connect("/run/app.sock", reconnect=True):
            try:
                for message in websocket:
                    ...
            except syncws.ConnectionClosed:
                continue

    Args:
        path: the Unix socket's path.
        uri: the URI for the handshake (Host header, path); by default ``ws://localhost/``,
            or ``wss://localhost/`` with ``ssl``.
        reconnect: return an iterator of connections that reconnects, as for
            :func:`connect`.
        backoff_initial: with ``reconnect``, as for :func:`connect`.
        backoff_factor: with ``reconnect``, as for :func:`connect`.
        backoff_max: with ``reconnect``, as for :func:`connect`.
        backoff_reset: with ``reconnect``, as for :func:`connect`.
        **kwargs: the other keyword arguments of :func:`connect`, but ``sock`` (see
            :class:`UnixConnectKeywords`).

    Returns:
        The open connection; with ``reconnect=True``, an iterator of open connections.

    Raises:
        TypeError: as for :func:`connect`, before the socket is opened.
        ValueError: as for :func:`connect`, before the socket is opened.
        InvalidURI: ``uri`` is not a valid WebSocket URI.
        OSError: the socket could not connect (without ``reconnect``, or when retrying
            can't help); other errors as for :func:`connect`.
    """
    check_keywords(
        connect, kwargs, caller="unix_connect", allowed=UnixConnectKeywords.__annotations__
    )
    if uri is None:
        uri = "wss://localhost/" if kwargs.get("ssl") is not None else "ws://localhost/"
    target = uri

    def attempt() -> ClientConnection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(kwargs.get("open_timeout", _DEFAULT_OPTIONS.open_timeout))
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        connection: ClientConnection = connect(target, sock=sock, **kwargs)
        return connection

    if not reconnect:
        return attempt()
    _check_target(
        uri,
        ssl=kwargs.get("ssl"),
        max_redirects=kwargs.get("max_redirects", 0),
        proxy=kwargs.get("proxy"),
    )
    backoff = _Backoff(backoff_initial, backoff_factor, backoff_max, backoff_reset)
    return _reconnect(attempt, backoff, kwargs.get("logger") or _logger)


def _check_target(
    uri: str, *, ssl: SSLContext | None, max_redirects: int, proxy: str | Literal[True] | None
) -> WebSocketURI:
    """Check what :func:`connect` connects to, before any I/O; return ``uri`` parsed.

    Raises:
        InvalidURI: ``uri`` is not a valid WebSocket URI.
        ValueError: ``ssl`` with a ``ws://`` URI, or ``max_redirects`` is negative.
        InvalidProxy: ``proxy`` is not a valid proxy URL.
    """
    wsuri = parse_uri(uri)
    if not wsuri.secure and ssl is not None:
        raise ValueError("ssl argument is incompatible with a ws:// URI")
    if max_redirects < 0:
        raise ValueError("max_redirects must be 0 or more")
    if isinstance(proxy, str):
        parse_proxy(proxy)  # a bad URL is an error now, not at the first attempt
    return wsuri


# Reconnection.


@dataclasses.dataclass(frozen=True)
class _Backoff:
    """The ``backoff_*`` arguments of :func:`connect`, checked when made: before the first
    attempt, at the call that asks for reconnection.

    Raises:
        ValueError: they are out of range or out of order.
    """

    initial: float
    factor: float
    maximum: float
    reset: float

    def __post_init__(self) -> None:
        if not 0 <= self.initial <= self.maximum or self.factor < 1 or self.reset < 0:
            raise ValueError(
                "backoff needs 0 <= backoff_initial <= backoff_max, backoff_factor >= 1 "
                "and backoff_reset >= 0"
            )


def _reconnect(
    attempt: Callable[[], ClientConnection], backoff: _Backoff, logger: LoggerLike
) -> Generator[ClientConnection, None, None]:
    """Yield connections from ``attempt()``, waiting between them; see :func:`connect`."""
    ceiling = backoff.initial
    while True:
        try:
            connection = attempt()
        except Exception as exc:
            if not _is_transient(exc):
                raise
            delay = random.uniform(0, ceiling)
            retry_after = _retry_after(exc)
            if retry_after is not None:
                delay = max(delay, retry_after)
            logger.info("connection failed (%s); retrying in %.3f seconds", _reason(exc), delay)
            ceiling = min(ceiling * backoff.factor, backoff.maximum)
            time.sleep(delay)
            continue
        opened = time.monotonic()
        try:
            yield connection
        finally:
            # Reached when the loop body is done with the connection, and when the caller
            # broke out of the loop and the generator is closed.
            connection.close()
        if time.monotonic() - opened >= backoff.reset:
            ceiling = backoff.initial
        delay = random.uniform(0, ceiling)
        logger.info(
            "connection closed (code %s); reconnecting in %.3f seconds",
            connection.close_code,
            delay,
        )
        ceiling = min(ceiling * backoff.factor, backoff.maximum)
        time.sleep(delay)


def _is_transient(exc: Exception) -> bool:
    """Whether another attempt to connect may succeed where this one failed with ``exc``."""
    if isinstance(exc, SocksProxyError):
        # RFC 1928 §6: failure, network or host unreachable, refused, TTL expired.
        return exc.code in (1, 3, 4, 5, 6)
    if isinstance(exc, (InvalidStatus, InvalidProxyStatus)):
        status = exc.response.status_code
        return status >= 500 or status == 429
    if isinstance(exc, InvalidMessage):
        # The server closed the connection before answering: it may be restarting.
        return isinstance(exc.__cause__, EOFError)
    if isinstance(exc, InvalidHandshake):
        return False
    if isinstance(exc, ssl_module.SSLError):
        # An EOF in the middle of TLS is a connection cut short; every other TLS error (the
        # certificate, the protocol version, TLS spoken to a plain server) comes back.
        return isinstance(exc, (ssl_module.SSLEOFError, ssl_module.SSLZeroReturnError))
    if isinstance(exc, socket.gaierror):
        # EAI_AGAIN is "try again later"; a name that does not exist stays so.
        return exc.errno == socket.EAI_AGAIN
    # Refused, reset, unreachable, timed out.
    return isinstance(exc, OSError)


def _retry_after(exc: Exception) -> float | None:
    """The seconds a 503 or 429 answer asks to wait (RFC 9110 §10.2.3), if it does."""
    if not isinstance(exc, (InvalidStatus, InvalidProxyStatus)):
        return None
    response = exc.response
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get_all("Retry-After")
    if len(value) != 1:
        return None
    text = value[0].strip()
    # Retry-After = HTTP-date / delay-seconds
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        date = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if date.tzinfo is None:  # -0000: RFC 5322's "unknown zone"; HTTP dates are in GMT
        return None
    return max(0.0, date.timestamp() - time.time())


def _reason(exc: Exception) -> str:
    """A short description of a failed attempt, for the log."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# One attempt: redirects, proxy, TLS and the handshake.


def _open(
    uri: str,
    wsuri: WebSocketURI,
    config: _ClientConfig,
    *,
    sock: socket.socket | None,
    additional_headers: Headers | None,
) -> ClientConnection:
    """Open a connection to ``uri`` (``wsuri`` once parsed), following redirects, within
    ``open_timeout``."""
    deadline = deadline_after(config.options.open_timeout)
    first = wsuri
    redirects = 0
    while True:
        # The name given for the first host means nothing to another one.
        server_hostname = config.server_hostname if wsuri.host == first.host else None
        if sock is None:
            transport, raw = _open_transport(
                wsuri,
                deadline=deadline,
                ssl=config.ssl,
                server_hostname=server_hostname,
                proxy=config.proxy,
                proxy_ssl=config.proxy_ssl,
                proxy_server_hostname=config.proxy_server_hostname,
                user_agent_header=config.user_agent_header,
                source_address=config.source_address,
            )
        else:
            try:
                transport = _wrap(sock, wsuri, deadline, config.ssl, server_hostname)
            except BaseException:
                sock.close()
                raise
            raw = sock
        try:
            return _handshake(
                transport,
                raw,
                wsuri,
                config,
                deadline=deadline,
                additional_headers=additional_headers,
            )
        except InvalidStatus as exc:
            transport.close()
            locations = exc.response.headers.get_all("Location")
            if sock is not None or exc.response.status_code not in _REDIRECTS or not locations:
                raise
            if len(locations) > 1:
                raise InvalidMessage("more than one Location header in a redirect") from exc
            if redirects >= config.max_redirects:
                raise SecurityError(f"more than {config.max_redirects} redirects") from exc
            redirects += 1
            # RFC 9110 §10.2.2: a relative Location is resolved against the request's URI.
            uri = urljoin(uri, locations[0])
            target = parse_uri(uri)
            if wsuri.secure and not target.secure:
                raise SecurityError(f"redirect from wss:// to ws:// refused: {uri}") from exc
            # Credentials are meant for one origin. urljoin() keeps the URI's user info only
            # for a Location without an authority, which is the same origin.
            if additional_headers is not None and _origin(target) != _origin(wsuri):
                additional_headers = additional_headers.copy()
                for name in _CREDENTIALS:
                    if name in additional_headers:
                        del additional_headers[name]
            config.logger.info("redirected with HTTP %d to %s", exc.response.status_code, uri)
            wsuri = target
        except BaseException:
            transport.close()
            raise


def _origin(wsuri: WebSocketURI) -> tuple[bool, str, int]:
    return wsuri.secure, wsuri.host, wsuri.port


def _open_transport(
    wsuri: WebSocketURI,
    *,
    deadline: float | None,
    ssl: SSLContext | None,
    server_hostname: str | None,
    proxy: str | Literal[True] | None,
    proxy_ssl: SSLContext | None,
    proxy_server_hostname: str | None,
    user_agent_header: str | None,
    source_address: tuple[str, int] | None,
) -> tuple[Transport, socket.socket]:
    """Connect to the server of ``wsuri``, through a proxy if there is one, and run TLS."""
    proxy_url = get_proxy(wsuri, os.environ) if proxy is True else proxy
    if proxy_url is None:
        sock = _open_tcp(wsuri.host, wsuri.port, deadline, source_address)
        try:
            return _wrap(sock, wsuri, deadline, ssl, server_hostname, tcp=True), sock
        except BaseException:
            sock.close()
            raise

    settings = parse_proxy(proxy_url)
    target = wsuri.host
    if settings.scheme == "socks5":
        # The proxy gets an address: the name is resolved here, as for a direct connection.
        target = _resolve(target, wsuri.port, deadline)[0][4][0]
    try:
        sock = _open_tcp(settings.host, settings.port, deadline, source_address)
    except OSError as exc:
        raise _proxy_error(exc, settings.host, settings.port) from exc
    try:
        tunnel = _wrap(sock, None, deadline, None, None)
        if settings.socks:
            open_socks5_tunnel(tunnel, settings, target, wsuri.port, deadline=deadline)
        else:
            if settings.secure:
                tunnel = tls_handshake(
                    tunnel,
                    proxy_ssl or ssl_module.create_default_context(),
                    server_side=False,
                    server_hostname=proxy_server_hostname or settings.host,
                    deadline=deadline,
                )
            open_tunnel(
                tunnel,
                settings,
                wsuri.host,
                wsuri.port,
                user_agent=user_agent_header,
                deadline=deadline,
            )
        if not wsuri.secure:
            return tunnel, sock
        # TLS to the server, through the tunnel: inside TLS to an https:// proxy.
        return tls_handshake(
            tunnel,
            ssl or ssl_module.create_default_context(),
            server_side=False,
            server_hostname=server_hostname or wsuri.host,
            deadline=deadline,
        ), sock
    except BaseException:
        sock.close()
        raise


def _proxy_error(exc: OSError, host: str, port: int) -> OSError:
    """The same error as ``exc``, with a message that blames the proxy, not the server.

    The type and ``errno`` stay, so that :exc:`ConnectionRefusedError` is still one (and still
    transient for reconnection).
    """
    proxy = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, TimeoutError):
        return TimeoutError(f"timed out during opening handshake: connecting to proxy {proxy}")
    why = exc.strerror or str(exc) or type(exc).__name__
    message = f"cannot connect to proxy {proxy}: {why[:1].lower()}{why[1:]}"
    if exc.errno is None:
        return type(exc)(message)
    return type(exc)(exc.errno, message)


def _wrap(
    sock: socket.socket,
    wsuri: WebSocketURI | None,
    deadline: float | None,
    ssl: SSLContext | None,
    server_hostname: str | None,
    *,
    tcp: bool | None = None,
) -> Transport:
    """The transport over a connected socket: TLS for a ``wss://`` URI, else plain.

    ``tcp`` says whether ``sock`` is a TCP socket, when the caller knows; otherwise its family
    tells.
    """
    if tcp is None:
        tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
    if tcp:
        # Small frames go out at once: syncws writes whole frames, never bytes at a time.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    transport = SocketTransport(sock)
    if wsuri is None or not wsuri.secure:
        return transport
    return tls_handshake(
        transport,
        ssl or ssl_module.create_default_context(),
        server_side=False,
        server_hostname=server_hostname or wsuri.host,
        deadline=deadline,
    )


def _handshake(
    transport: Transport,
    sock: socket.socket,
    wsuri: WebSocketURI,
    config: _ClientConfig,
    *,
    deadline: float | None,
    additional_headers: Headers | None,
) -> ClientConnection:
    protocol = ClientProtocol(
        wsuri,
        origin=config.origin,
        extensions=config.extensions,
        subprotocols=config.subprotocols,
        max_size=config.options.max_size,
        logger=config.logger,
    )
    # Messages that come before an error of the server are delivered first.
    protocol.defer_failures = True
    request = protocol.connect()
    if additional_headers is not None:
        request.headers.update(additional_headers)
    user_agent_header = config.user_agent_header
    if user_agent_header is not None and "User-Agent" not in request.headers:
        request.headers["User-Agent"] = user_agent_header
    protocol.send_request(request)
    events, eof = _exchange(transport, protocol, deadline, config.options.read_limit)
    if protocol.handshake_exc is not None:
        if eof and isinstance(protocol.handshake_exc, InvalidMessage):
            raise protocol.handshake_exc from EOFError("the server closed the connection")
        raise protocol.handshake_exc

    connection = config.create_connection(
        sock, protocol, transport=transport, options=config.options
    )
    connection.start(events)
    return connection


def _exchange(
    transport: Transport, protocol: ClientProtocol, deadline: float | None, read_limit: int
) -> tuple[list[Event], bool]:
    """Send the request, read until the response is complete.

    Returns:
        The events after the response, and whether the stream ended.
    """
    transport.send(list(protocol.data_to_send()), remaining(deadline, during="opening handshake"))
    eof = False
    answered = False
    while protocol.response is None and protocol.handshake_exc is None:
        try:
            data = transport.recv(read_limit, remaining(deadline, during="opening handshake"))
        except ConnectionResetError as exc:
            if answered or protocol.uri.secure:
                raise
            # What a TLS server may do with a request in the clear.
            raise ConnectionResetError(
                exc.errno,
                "connection reset during handshake, before the server answered "
                "(if it expects TLS, use a wss:// URI)",
            ) from exc
        answered = answered or bool(data)
        if data:
            protocol.receive_data(data)
        else:
            eof = True
            protocol.receive_eof()
    if protocol.handshake_exc is not None:
        return [], eof
    events = protocol.events_received()
    # The first event is the response; frames that came with it follow.
    return events[1:], eof


def _open_tcp(
    host: str, port: int, deadline: float | None, source_address: tuple[str, int] | None
) -> socket.socket:
    """Resolve ``host`` and connect to the first address that answers, before ``deadline``."""
    addresses = _resolve(host, port, deadline)
    error: OSError | None = None
    for family, type_, proto, _, address in addresses:
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(remaining(deadline, during="opening handshake"))
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(address)
            return sock
        except TimeoutError:
            sock.close()
            raise TimeoutError("timed out during opening handshake") from None
        except OSError as exc:
            sock.close()
            error = exc
    assert error is not None
    raise error


# Family, type, protocol, canonical name, address; the numbers as the OS gives them.
AddressInfo = tuple[int, int, int, str, Any]


def _getaddrinfo(host: str, port: int, flags: int = 0) -> list[AddressInfo]:
    # socket.getaddrinfo() turns each family and type into an enum member, with Python calls
    # that every connection would pay for; socket.socket() takes the numbers as they are.
    return _socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, flags)


def _resolve(host: str, port: int, deadline: float | None) -> list[AddressInfo]:
    """Resolve ``host`` before ``deadline``.

    ``getaddrinfo`` has no timeout, so a name is resolved in a short-lived thread that is
    left behind if it takes too long. An IP address needs no lookup and no thread.
    """
    try:
        # An IP address: getaddrinfo() only converts it, at once.
        return _getaddrinfo(host, port, socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass

    results: list[list[AddressInfo]] = []
    errors: list[OSError] = []

    def resolve() -> None:
        try:
            results.append(_getaddrinfo(host, port))
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=resolve, name="syncws-resolve", daemon=True)
    thread.start()
    thread.join(remaining(deadline, during="opening handshake"))
    if thread.is_alive():
        raise TimeoutError("timed out during opening handshake: name resolution")
    if errors:
        raise errors[0]
    return results[0]
