"""Helpers for testing programs that use syncws.

* :func:`run_server` and :func:`run_unix_server` run a server in a background thread for the
  duration of a ``with`` block;
* :func:`connected_pair` makes a client and a server connection talking to each other over a
  socket pair, without a listening socket;
* :func:`assert_receives`, :func:`receive_all` and :func:`assert_closes` check what a
  connection receives, with a timeout, and fail with an :exc:`AssertionError` that says what
  came instead.

They work with any test framework; :mod:`syncws.testing.pytest_plugin` wraps them in pytest
fixtures, whose types are :class:`ServerFactory` and :data:`ConnectedPair`. Every helper cleans
up the threads and sockets it started, and every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Literal, Protocol

from typing_extensions import Unpack

from ..client import ClientConnection, connect
from ..connection import Connection
from ..deadline import remaining
from ..exceptions import ConnectionClosed
from ..messages import Data
from ..options import ConnectionOptions
from ..server import (
    Handler,
    ServeKeywords,
    Server,
    ServerConfig,
    ServerConnection,
    UnixServeKeywords,
    handshake,
    serve,
    server_extensions,
    unix_serve,
)
from ..transport import SocketTransport

__all__ = [
    "ConnectedPair",
    "RunningServer",
    "ServerFactory",
    "assert_closes",
    "assert_receives",
    "connected_pair",
    "receive_all",
    "run_server",
    "run_unix_server",
]

# The longest message shown in an assertion error, in characters of its repr().
_SHOWN = 200


# Servers.


@dataclasses.dataclass(frozen=True)
class RunningServer:
    """A server that :func:`run_server` or :func:`run_unix_server` runs in a thread.

    Attributes:
        server: the :class:`~syncws.server.Server`, to reach its ``connections``.
        uri: the URI to connect to: ``ws://127.0.0.1:PORT/`` for TCP, ``ws://localhost/``
            for a Unix socket (connect to it with :func:`~syncws.client.unix_connect` and
            ``path``).
        port: the TCP port; ``None`` for a Unix socket.
        path: the Unix socket's path; ``None`` for TCP.
    """

    server: Server
    uri: str
    port: int | None = None
    path: str | None = None


@contextlib.contextmanager
def run_server(
    handler: Handler,
    host: str = "127.0.0.1",
    *,
    shutdown_timeout: float = 10,
    **serve_options: Unpack[ServeKeywords],
) -> Iterator[RunningServer]:
    """Run :func:`~syncws.server.serve` on a free port in a thread, for a ``with`` block.

    Example::

        with run_server(echo) as running:
            with syncws.connect(running.uri) as websocket:
                websocket.send("hi")
                assert_receives(websocket, "hi")

    On exit the server shuts down (:meth:`~syncws.server.Server.shutdown`): connections get a
    Close (1001), and those still open after ``shutdown_timeout`` seconds are aborted, which
    wakes handlers blocked on them; then the thread is joined. A handler that blocks on
    something else (an event, a lock, a queue) fails the exit with :exc:`RuntimeError` instead
    of hanging: its thread, a daemon, is left behind.

    Args:
        handler: the connection handler, as for :func:`~syncws.server.serve`.
        host: the loopback address to listen on.
        shutdown_timeout: seconds the handlers get to return on exit.
        **serve_options: the keyword arguments of :func:`~syncws.server.serve`.

    Raises:
        RuntimeError: on exit, a handler did not return within ``shutdown_timeout`` (plus
            the short grace that :meth:`~syncws.server.Server.shutdown` gives after aborting
            connections), or the server's thread did not stop.
    """
    server = serve(handler, host, 0, **serve_options)
    port = server.port
    assert port is not None
    scheme = "ws" if serve_options.get("ssl") is None else "wss"
    netloc = f"[{host}]" if ":" in host else host
    with _serving(server, shutdown_timeout):
        yield RunningServer(server, f"{scheme}://{netloc}:{port}/", port=port)


@contextlib.contextmanager
def run_unix_server(
    handler: Handler,
    path: str | None = None,
    *,
    shutdown_timeout: float = 10,
    **serve_options: Unpack[UnixServeKeywords],
) -> Iterator[RunningServer]:
    """Run :func:`~syncws.server.unix_serve` in a thread, for a ``with`` block.

    Connect with ``syncws.unix_connect(running.path)``.

    Args:
        handler: the connection handler.
        path: the socket's path; by default one in a new temporary directory, removed on
            exit.
        shutdown_timeout: seconds the handlers get to return on exit, as for
            :func:`run_server`.
        **serve_options: the keyword arguments of :func:`~syncws.server.serve`.

    Raises:
        RuntimeError: on exit, as for :func:`run_server`.
    """
    with contextlib.ExitStack() as stack:
        if path is None:
            # A short directory name: Unix socket paths are limited to about 100 bytes.
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="syncws-"))
            path = os.path.join(directory, "ws.sock")
        server = unix_serve(handler, path, **serve_options)
        scheme = "ws" if serve_options.get("ssl") is None else "wss"
        with _serving(server, shutdown_timeout):
            yield RunningServer(server, f"{scheme}://localhost/", path=path)


@contextlib.contextmanager
def _serving(server: Server, shutdown_timeout: float) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, name="syncws-testing-server")
    try:
        thread.start()
    except BaseException:
        server.shutdown(shutdown_timeout)
        raise
    try:
        yield
    finally:
        # shutdown() returns once the handlers returned, or after aborting what was left
        # and a short grace: a handler blocked on something else than its connection stays
        # behind, in a daemon thread, and is reported below.
        server.shutdown(shutdown_timeout)
        thread.join(shutdown_timeout)
        if thread.is_alive():
            raise RuntimeError("the server's thread did not stop")
        try:
            server.wait_closed(0)
        except TimeoutError:
            raise RuntimeError(
                f"a connection handler did not return within shutdown_timeout="
                f"{shutdown_timeout} s of the shutdown: it blocks on something other than"
                " its connection; its thread is left running, as a daemon"
            ) from None


class ServerFactory(Protocol):
    """The type of the ``syncws_server`` fixture: a function that starts a server.

    It takes the arguments of :func:`run_server` and returns its :class:`RunningServer`;
    every server it started is shut down after the test. Annotate the fixture with it::

        def test_echo(syncws_server: ServerFactory) -> None:
            running = syncws_server(echo, compression=None)
    """

    def __call__(
        self,
        handler: Handler,
        host: str = ...,
        *,
        shutdown_timeout: float = ...,
        **serve_options: Unpack[ServeKeywords],
    ) -> RunningServer: ...


# A connected pair.

ConnectedPair = tuple[ClientConnection, ServerConnection]
"""The type of the ``syncws_pair`` fixture and of what :func:`connected_pair` yields:
``(client, server)``."""


@contextlib.contextmanager
def connected_pair(
    *,
    path: str = "/",
    compression: Literal["deflate"] | None = "deflate",
    subprotocols: Sequence[str] | None = None,
    open_timeout: float = 10,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float | None = 10,
    write_timeout: float | None = 10,
    max_size: int | tuple[int | None, int | None] | None = 2**20,
    max_queue: int | tuple[int | None, int | None] | None = 16,
    read_limit: int = 2**16,
    write_limit: int = 2**16,
) -> Iterator[ConnectedPair]:
    """Connect a client and a server over :func:`socket.socketpair`, for a ``with`` block.

    No socket listens: the opening handshake runs over the pair, the client side in a
    short-lived thread. Both connections are real ones, with their reader threads, and every
    option applies to both sides. On exit both are closed (the client starts the closing
    handshake) and their threads have ended.

    Example::

        with connected_pair() as (client, server):
            client.send("ping")
            assert_receives(server, "ping")

    Args:
        path: the request path, as the server sees it.
        compression: ``"deflate"`` negotiates permessage-deflate; ``None`` disables it.
        subprotocols: the subprotocols the client offers and the server supports; the first
            one is selected.
        open_timeout: seconds for the opening handshake.
        ping_interval: as for :func:`~syncws.client.connect`.
        ping_timeout: as for :func:`~syncws.client.connect`.
        close_timeout: as for :func:`~syncws.client.connect`.
        write_timeout: as for :func:`~syncws.client.connect`.
        max_size: as for :func:`~syncws.client.connect`.
        max_queue: as for :func:`~syncws.client.connect`.
        read_limit: as for :func:`~syncws.client.connect`.
        write_limit: as for :func:`~syncws.client.connect`.

    Yields:
        ``(client, server)``.
    """
    options = ConnectionOptions(
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
    config = ServerConfig(
        extensions=server_extensions(compression, None),
        subprotocols=subprotocols,
        options=options,
    )
    client_sock, server_sock = socket.socketpair()
    deadline = time.monotonic() + open_timeout
    results: list[ClientConnection] = []
    errors: list[BaseException] = []

    def run_client() -> None:
        try:
            results.append(
                connect(
                    f"ws://localhost{path}",
                    sock=client_sock,
                    compression=compression,
                    subprotocols=subprotocols,
                    **options.keywords(),
                )
            )
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run_client, name="syncws-testing-connect")
    thread.start()
    server: ServerConnection | None = None
    try:
        server = _accept(server_sock, config, deadline)
    finally:
        if server is None:
            # Wake the client, which waits for a response that won't come.
            server_sock.close()
        thread.join(remaining(deadline))
    if thread.is_alive():
        if server is not None:
            server.abort()
        thread.join()
        raise TimeoutError("the client's opening handshake did not finish in time")
    if errors:
        if server is not None:
            server.abort()
            server.wait_closed(close_timeout)
        raise errors[0]
    assert server is not None
    client = results[0]
    try:
        yield client, server
    finally:
        client.close()
        server.close()
        client.wait_closed(close_timeout)
        server.wait_closed(close_timeout)


def _accept(sock: socket.socket, config: ServerConfig, deadline: float) -> ServerConnection:
    """Run the server side of the opening handshake on ``sock``; return the connection."""
    connection, response = handshake(sock, SocketTransport(sock), config, deadline=deadline)
    if response.status_code != 101:
        assert connection.protocol.handshake_exc is not None
        raise connection.protocol.handshake_exc
    return connection


# Assertions.


def assert_receives(connection: Connection, expected: Data, timeout: float = 1.0) -> Data:
    """Receive one message and check that it is ``expected``.

    A :class:`str` is expected as a text message, bytes as a binary one: ``"a"`` does not
    match a binary ``b"a"``.

    Args:
        connection: the connection to receive from.
        expected: the message.
        timeout: seconds to wait for it.

    Returns:
        The message.

    Raises:
        AssertionError: another message came, nothing came within ``timeout``, or the
            connection closed; the message says which.
    """
    try:
        message = connection.recv(timeout)
    except TimeoutError:
        raise AssertionError(
            f"expected {_show(expected)}, received nothing within {timeout} s"
        ) from None
    except ConnectionClosed as exc:
        raise AssertionError(
            f"expected {_show(expected)}, but the connection closed with {_show_close(exc)}"
        ) from None
    if not _same(message, expected):
        raise AssertionError(f"expected {_show(expected)}, received {_show(message)}")
    return message


def receive_all(connection: Connection, count: int, timeout: float = 1.0) -> list[Data]:
    """Receive ``count`` messages within ``timeout`` seconds in all.

    Args:
        connection: the connection to receive from.
        count: how many messages to receive.
        timeout: seconds to wait for all of them.

    Returns:
        The messages, in order.

    Raises:
        AssertionError: fewer came within ``timeout``, or the connection closed first; the
            message lists those that came.
    """
    deadline = time.monotonic() + timeout
    messages: list[Data] = []
    while len(messages) < count:
        try:
            messages.append(connection.recv(max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            raise AssertionError(
                f"expected {count} messages within {timeout} s, received {len(messages)}: "
                f"{_show_all(messages)}"
            ) from None
        except ConnectionClosed as exc:
            raise AssertionError(
                f"expected {count} messages, but the connection closed with "
                f"{_show_close(exc)} after {len(messages)}: {_show_all(messages)}"
            ) from None
    return messages


def assert_closes(
    connection: Connection,
    code: int | None = None,
    reason: str | None = None,
    timeout: float = 1.0,
) -> ConnectionClosed:
    """Check that the connection closes, with no other message first.

    Args:
        connection: the connection to watch.
        code: the close code the peer must send (1005 for a Close without a code, 1006 for
            no Close at all); ``None`` accepts any.
        reason: the close reason the peer must send; ``None`` accepts any.
        timeout: seconds to wait for the close.

    Returns:
        The :exc:`~syncws.exceptions.ConnectionClosed` that receiving raises now, with the
        Close frames sent and received.

    Raises:
        AssertionError: a message came first, the connection stayed open for ``timeout``
            seconds, or it closed with another code or reason.
    """
    try:
        message = connection.recv(timeout)
    except TimeoutError:
        raise AssertionError(f"the connection did not close within {timeout} s") from None
    except ConnectionClosed as exc:
        wanted = []
        if code is not None and exc.code != code:
            wanted.append(f"code {code}")
        if reason is not None and exc.reason != reason:
            wanted.append(f"reason {reason!r}")
        if wanted:
            raise AssertionError(
                f"expected the connection to close with {', '.join(wanted)}; "
                f"it closed with {_show_close(exc)}"
            ) from None
        return exc
    raise AssertionError(f"expected the connection to close, received {_show(message)}")


def _same(message: Data, expected: Data) -> bool:
    if isinstance(expected, str):
        return isinstance(message, str) and message == expected
    return isinstance(message, bytes) and message == bytes(expected)


def _show(message: Data) -> str:
    if isinstance(message, str):
        kind, shown, unit = "text", repr(message), "characters"
    else:
        kind, shown, unit = "binary", repr(bytes(message)), "bytes"
    if len(shown) > _SHOWN:
        shown = f"{shown[:_SHOWN]}... ({len(message)} {unit})"
    return f"{kind} {shown}"


def _show_all(messages: list[Data]) -> str:
    return "[" + ", ".join(_show(message) for message in messages) + "]"


def _show_close(exc: ConnectionClosed) -> str:
    if exc.rcvd is None:
        return "code 1006, no Close frame received"
    return f"code {exc.code}, reason {exc.reason!r}"
