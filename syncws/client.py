"""The blocking client: :func:`connect` and :func:`unix_connect`.

``connect()`` runs in the caller's thread: name resolution, TCP, TLS and the HTTP handshake all
happen under one ``open_timeout`` deadline. Then the connection starts its reader thread and is
returned, ready to use.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl as ssl_module
import sys
import threading
import time
from collections.abc import Sequence
from ssl import SSLContext
from typing import Any, Literal

from .client_protocol import ClientProtocol
from .connection import Connection
from .extensions.base import ClientExtensionFactory
from .headers import Headers, HeadersLike
from .protocol import Event
from .transport import Transport, remaining, tls_handshake
from .uri import WebSocketURI, parse_uri
from .version import __version__

__all__ = ["USER_AGENT", "ClientConnection", "connect", "unix_connect"]

USER_AGENT = f"Python/{sys.version_info.major}.{sys.version_info.minor} syncws/{__version__}"
"""The default ``User-Agent`` header."""


class ClientConnection(Connection):
    """A client connection, as :func:`connect` returns it.

    Use it as a context manager to close it on exit.
    """

    protocol: ClientProtocol

    def __enter__(self) -> ClientConnection:
        return self


def connect(
    uri: str,
    *,
    sock: socket.socket | None = None,
    ssl: SSLContext | None = None,
    server_hostname: str | None = None,
    origin: str | None = None,
    extensions: Sequence[ClientExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    additional_headers: HeadersLike | None = None,
    user_agent_header: str | None = USER_AGENT,
    compression: Literal["deflate"] | None = "deflate",
    open_timeout: float | None = 10,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float | None = 10,
    write_timeout: float | None = 10,
    max_size: int | None = 2**20,
    max_queue: int | None = 16,
    read_limit: int = 2**16,
    write_limit: int = 2**16,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    create_connection: type[ClientConnection] | None = None,
    **kwargs: Any,
) -> ClientConnection:
    """Open a WebSocket connection to ``uri`` and return it once the handshake is done.

    Example::

        with syncws.connect("ws://localhost:8765") as websocket:
            websocket.send("Hello world!")
            print(websocket.recv())

    Args:
        uri: a ``ws://`` or ``wss://`` URI; user info in it is sent as Basic credentials.
        sock: a connected socket to use instead of opening one.
        ssl: the TLS context for ``wss://``; by default one that verifies the server's
            certificate and hostname.
        server_hostname: the hostname to verify and send in SNI, when it is not the URI's.
        origin: the ``Origin`` header to send.
        extensions: extensions to offer, as factories.
        subprotocols: subprotocols to offer, in order of preference.
        additional_headers: more headers for the handshake request.
        user_agent_header: the ``User-Agent`` header; ``None`` sends none.
        compression: ``"deflate"`` offers permessage-deflate; ``None`` offers no compression.
        open_timeout: seconds for the whole opening: name resolution, TCP, TLS and the HTTP
            handshake; ``None`` for no limit.
        ping_interval: seconds between keepalive pings; ``None`` turns keepalive off.
        ping_timeout: seconds to wait for a keepalive pong before failing with 1011.
        close_timeout: seconds to wait for the closing handshake before aborting.
        write_timeout: seconds a write may go without progress before aborting.
        max_size: the largest message accepted, in bytes; ``None`` for no limit.
        max_queue: how many received messages may wait before reading pauses.
        read_limit: bytes read from the socket at a time.
        write_limit: unsent bytes over which ``broadcast`` skips the connection.
        logger: the logger; by default ``logging.getLogger("syncws.client")``.
        create_connection: the connection class, to use a subclass.
        **kwargs: passed to :func:`socket.create_connection`, e.g. ``source_address``.

    Raises:
        InvalidURI: ``uri`` is not a valid WebSocket URI.
        OSError: the TCP connection failed.
        ssl.SSLError: the TLS handshake failed.
        InvalidHandshake: the server did not accept the WebSocket handshake; an
            :exc:`~syncws.exceptions.InvalidStatus` has the HTTP response.
        TimeoutError: the opening took longer than ``open_timeout``.
    """
    wsuri = parse_uri(uri)
    if not wsuri.secure and ssl is not None:
        raise ValueError("ssl argument is incompatible with a ws:// URI")
    deadline = None if open_timeout is None else time.monotonic() + open_timeout
    if sock is None:
        sock = _open_tcp(wsuri.host, wsuri.port, deadline, kwargs)
    elif kwargs:
        raise TypeError(f"unexpected arguments with sock: {', '.join(kwargs)}")
    try:
        return _handshake(
            sock,
            wsuri,
            deadline=deadline,
            ssl=ssl,
            server_hostname=server_hostname,
            origin=origin,
            extensions=extensions,
            subprotocols=subprotocols,
            additional_headers=additional_headers,
            user_agent_header=user_agent_header,
            compression=compression,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            write_timeout=write_timeout,
            max_size=max_size,
            max_queue=max_queue,
            read_limit=read_limit,
            write_limit=write_limit,
            logger=logger,
            create_connection=create_connection,
        )
    except BaseException:
        sock.close()
        raise


def unix_connect(path: str, uri: str | None = None, **kwargs: Any) -> ClientConnection:
    """Open a WebSocket connection over the Unix socket at ``path``.

    Args:
        path: the Unix socket's path.
        uri: the URI for the handshake (Host header, path); by default ``ws://localhost/``,
            or ``wss://localhost/`` with ``ssl``.
        **kwargs: as for :func:`connect`.
    """
    if uri is None:
        uri = "wss://localhost/" if kwargs.get("ssl") is not None else "ws://localhost/"
    open_timeout = kwargs.get("open_timeout", 10)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(open_timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return connect(uri, sock=sock, **kwargs)


def _handshake(
    sock: socket.socket,
    wsuri: WebSocketURI,
    *,
    deadline: float | None,
    ssl: SSLContext | None,
    server_hostname: str | None,
    origin: str | None,
    extensions: Sequence[ClientExtensionFactory] | None,
    subprotocols: Sequence[str] | None,
    additional_headers: HeadersLike | None,
    user_agent_header: str | None,
    compression: str | None,
    ping_interval: float | None,
    ping_timeout: float | None,
    close_timeout: float | None,
    write_timeout: float | None,
    max_size: int | None,
    max_queue: int | None,
    read_limit: int,
    write_limit: int,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None,
    create_connection: type[ClientConnection] | None,
) -> ClientConnection:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # Small frames go out at once: syncws writes whole frames, never bytes at a time.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    transport: Transport
    if wsuri.secure:
        if ssl is None:
            ssl = ssl_module.create_default_context()
        if server_hostname is None:
            server_hostname = wsuri.host
        transport = tls_handshake(
            sock, ssl, server_side=False, server_hostname=server_hostname, deadline=deadline
        )
    else:
        transport = Transport(sock)

    if compression == "deflate":
        from .extensions.permessage_deflate import enable_client_permessage_deflate  # noqa: PLC0415

        extensions = enable_client_permessage_deflate(extensions)
    elif compression is not None:
        raise ValueError(f"unsupported compression: {compression}")

    protocol = ClientProtocol(
        wsuri,
        origin=origin,
        extensions=extensions,
        subprotocols=subprotocols,
        max_size=max_size,
        logger=logger,
    )
    request = protocol.connect()
    if additional_headers is not None:
        request.headers.update(Headers(additional_headers))
    if user_agent_header is not None and "User-Agent" not in request.headers:
        request.headers["User-Agent"] = user_agent_header
    protocol.send_request(request)
    events = _exchange(transport, protocol, deadline, read_limit)
    if protocol.handshake_exc is not None:
        transport.close()
        raise protocol.handshake_exc

    connection = (create_connection or ClientConnection)(
        sock,
        protocol,
        transport=transport,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        write_timeout=write_timeout,
        max_queue=max_queue,
        read_limit=read_limit,
        write_limit=write_limit,
    )
    connection.start(events)
    return connection


def _exchange(
    transport: Transport, protocol: ClientProtocol, deadline: float | None, read_limit: int
) -> list[Event]:
    """Send the request, read until the response is complete; return the events after it."""
    transport.send(protocol.data_to_send(), remaining(deadline))
    while protocol.response is None and protocol.handshake_exc is None:
        data = transport.recv(read_limit, remaining(deadline))
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
    if protocol.handshake_exc is not None:
        return []
    events = protocol.events_received()
    # The first event is the response; frames that came with it follow.
    return events[1:]



def _open_tcp(
    host: str, port: int, deadline: float | None, kwargs: dict[str, Any]
) -> socket.socket:
    """Resolve ``host`` and connect to the first address that answers, before ``deadline``."""
    addresses = _resolve(host, port, deadline)
    error: OSError | None = None
    for family, type_, proto, _, address in addresses:
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(remaining(deadline))
            if "source_address" in kwargs:
                sock.bind(kwargs["source_address"])
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


AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


def _getaddrinfo(host: str, port: int) -> list[AddressInfo]:
    infos: list[AddressInfo] = []
    infos.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    return infos


def _resolve(host: str, port: int, deadline: float | None) -> list[AddressInfo]:
    """Resolve ``host`` before ``deadline``.

    ``getaddrinfo`` has no timeout, so a name is resolved in a short-lived thread that is
    left behind if it takes too long. An IP address needs no lookup and no thread.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return _getaddrinfo(host, port)

    results: list[list[AddressInfo]] = []
    errors: list[OSError] = []

    def resolve() -> None:
        try:
            results.append(_getaddrinfo(host, port))
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=resolve, name="syncws-resolve", daemon=True)
    thread.start()
    thread.join(remaining(deadline))
    if thread.is_alive():
        raise TimeoutError("timed out during opening handshake: name resolution")
    if errors:
        raise errors[0]
    return results[0]

