"""What syncws has in common with ``websockets.sync``, tested with the same meaning.

``Server.shutdown(close_connections=False)`` and ``Server.fileno()``; reconnection with
``unix_connect()``; ``send(..., text=...)`` and ``broadcast(..., text=...)``;
``proxy_server_hostname``; ``max_size`` and ``max_queue`` as pairs. Peers: the ``websockets``
client and server, and raw sockets where a peer must misbehave.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import queue
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from io_helpers import (
    TIMEOUT,
    Background,
    RawPeer,
    running,
    syncws_echo,
    wait_for,
    ws_server,
)
from websockets.exceptions import ConnectionClosed as WSConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import Server as WSServer
from websockets.sync.server import ServerConnection as WSServerConnection

from syncws.client import ClientConnection, connect, unix_connect
from syncws.connection import broadcast
from syncws.exceptions import ConnectionClosed
from syncws.server import Server, ServerConnection, serve, unix_serve

pytestmark = pytest.mark.usefixtures("no_leaks")


def uri(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def client(target: str, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", 2)
    connection: ClientConnection = connect(target, **kwargs)
    return connection


# Server.fileno() and Server.shutdown(close_connections=False).


def test_fileno_is_the_listening_socket() -> None:
    server = serve(lambda connection: None, "127.0.0.1", 0)
    with running(server):
        fd = server.fileno()
        assert fd == server.socket.fileno() >= 0
        sock = socket.socket(fileno=os.dup(fd))
        with sock:
            assert sock.getsockname()[1] == server.port
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    assert server.fileno() == -1


def echo_until_closed(connection: ServerConnection, done: queue.Queue[str]) -> None:
    for message in connection:
        connection.send(message)
    done.put(f"handler returned after {connection.close_code}")


def test_shutdown_can_leave_connections_open() -> None:
    """close_connections=False: the server stops accepting, open connections run to their
    end (no Close from the server), and shutdown() returns when their handlers do."""
    done: queue.Queue[str] = queue.Queue()
    server = serve(
        lambda connection: echo_until_closed(connection, done),
        "127.0.0.1",
        0,
        ping_interval=None,
        close_timeout=2,
    )
    with (
        running(server),
        ws_connect(uri(server), compression=None, open_timeout=TIMEOUT) as theirs,
        client(uri(server)) as ours,
    ):
        assert wait_for(lambda: len(server.connections) == 2)
        address = uri(server)
        stopper = threading.Thread(
            target=server.shutdown, kwargs={"timeout": None, "close_connections": False}
        )
        stopper.start()
        try:
            # Not accepting anymore.
            assert wait_for(lambda: server.fileno() == -1)
            with pytest.raises(ConnectionRefusedError):
                client(address)
            # The open connections still work, both ways.
            theirs.send("still here")
            assert theirs.recv(TIMEOUT) == "still here"
            ours.send(b"me too")
            assert ours.recv(TIMEOUT) == b"me too"
            assert stopper.is_alive()
            # One ends: shutdown() waits for the other.
            ours.close()
            assert done.get(timeout=TIMEOUT) == "handler returned after 1000"
            assert stopper.is_alive()
            theirs.send("last")
            assert theirs.recv(TIMEOUT) == "last"
        finally:
            theirs.close()
            stopper.join(TIMEOUT)
        assert not stopper.is_alive()
        assert done.get(timeout=TIMEOUT) == "handler returned after 1000"
        assert not server.connections


def test_shutdown_leaving_connections_open_aborts_them_after_the_timeout() -> None:
    server = serve(
        lambda connection: echo_until_closed(connection, queue.Queue()),
        "127.0.0.1",
        0,
        ping_interval=None,
    )
    with running(server), RawPeer.connect(server.port) as raw:
        raw.handshake()
        assert wait_for(lambda: len(server.connections) == 1)
        server.shutdown(timeout=0.2, close_connections=False)
        # No Close frame: the connection was left open, then aborted at the timeout.
        assert raw.read_frame() is None
        assert not server.connections


def test_shutdown_with_connections_left_open_then_closing_them() -> None:
    """A later shutdown() with the default closes what an earlier one left open, with the
    code and reason given."""
    server = serve(
        lambda connection: echo_until_closed(connection, queue.Queue()),
        "127.0.0.1",
        0,
        ping_interval=None,
    )
    with running(server), client(uri(server)) as ours:
        assert wait_for(lambda: len(server.connections) == 1)
        server.close(close_connections=False)
        ours.send("open")
        assert ours.recv(TIMEOUT) == "open"
        server.shutdown(TIMEOUT, code=1012, reason="restart")
        with pytest.raises(ConnectionClosed):
            ours.recv(TIMEOUT)
        assert (ours.close_code, ours.close_reason) == (1012, "restart")


def test_shutdown_checks_close_connections() -> None:
    server = serve(lambda connection: None, "127.0.0.1", 0)
    with running(server):
        with pytest.raises(TypeError, match="close_connections must be True or False"):
            server.shutdown(close_connections="no")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="close_connections"):
            server.close(close_connections=None)  # type: ignore[arg-type]
        assert server.fileno() >= 0


@pytest.mark.skipif(
    "close_connections" not in inspect.signature(WSServer.shutdown).parameters,
    reason="the websockets installed (before 17, for Python 3.10) has no close_connections",
)
def test_websockets_server_has_the_same_shutdown() -> None:
    """The websockets server this mirrors: shutdown(close_connections=False) leaves a
    connection open until its client closes it."""
    handlers: queue.Queue[WSServerConnection] = queue.Queue()

    def handler(connection: WSServerConnection) -> None:
        handlers.put(connection)
        for message in connection:
            connection.send(message)

    with ws_server(handler) as running_server:
        with client(running_server.uri) as ours:
            handlers.get(timeout=TIMEOUT)
            stopper = threading.Thread(
                target=running_server.server.shutdown, kwargs={"close_connections": False}
            )
            stopper.start()
            ours.send("ping")
            assert ours.recv(TIMEOUT) == "ping"
        stopper.join(TIMEOUT)
        assert not stopper.is_alive()


# Reconnection over a Unix socket.


class Attempts(logging.Handler):
    """Counts the failed attempts that reconnection logs."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = threading.Semaphore(0)

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("connection failed"):
            self.failed.release()


def test_unix_connect_reconnects(tmp_path: Path) -> None:
    """unix_connect(reconnect=True) waits for a socket file that isn't there yet, and opens
    a new connection over a new socket when the server restarts."""
    path = str(tmp_path / "ws.sock")
    logger = logging.getLogger("test.parity.unix_reconnect")
    logger.setLevel(logging.INFO)
    attempts = Attempts()
    logger.addHandler(attempts)
    connections = unix_connect(
        path,
        "ws://localhost/chat",
        reconnect=True,
        backoff_initial=0.01,
        backoff_max=0.05,
        compression=None,
        open_timeout=TIMEOUT,
        logger=logger,
    )
    try:
        first = Background(lambda: next(connections))
        # No socket file yet: an attempt failed, and is retried.
        assert attempts.failed.acquire(timeout=TIMEOUT)
        with running(unix_serve(syncws_echo, path)):
            connection = first.join()
            connection.send("first")
            assert connection.recv(TIMEOUT) == "first"
        # The server went away (closing with 1001) and took its socket file with it.
        with pytest.raises(ConnectionClosed):
            connection.recv(TIMEOUT)
        second = Background(lambda: next(connections))
        assert attempts.failed.acquire(timeout=TIMEOUT)
        with running(unix_serve(syncws_echo, path)):
            again = second.join()
            assert again is not connection
            assert again.remote_address == path
            again.send(b"second")
            assert again.recv(TIMEOUT) == b"second"
            connections.close()
            assert again.closed
    finally:
        connections.close()
        logger.removeHandler(attempts)


def test_unix_connect_checks_reconnect_arguments_at_once(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.sock")
    with pytest.raises(ValueError, match="backoff needs"):
        unix_connect(missing, reconnect=True, backoff_initial=5, backoff_max=1)
    with pytest.raises(ValueError, match="ssl argument is incompatible"):
        unix_connect(missing, "ws://localhost/", reconnect=True, ssl=ssl.create_default_context())
    with pytest.raises(TypeError, match="unexpected keyword argument 'sock'"):
        unix_connect(missing, reconnect=True, sock=None)  # type: ignore[call-overload]


def test_unix_connect_without_reconnect_still_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        unix_connect(str(tmp_path / "missing.sock"), reconnect=False)


# send(..., text=...) and broadcast(..., text=...).


def recorder(
    received: queue.Queue[str | bytes],
) -> Callable[[WSServerConnection], None]:
    def handler(connection: WSServerConnection) -> None:
        with contextlib.suppress(WSConnectionClosed):
            for message in connection:
                received.put(message)

    return handler


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_send_with_text_overrides_the_type(compression: Any) -> None:
    """As the websockets server receives them: the frame's opcode decides str or bytes."""
    received: queue.Queue[str | bytes] = queue.Queue()
    with (
        ws_server(recorder(received), compression=compression) as server,
        client(server.uri, compression=compression) as connection,
    ):
        connection.send(b'{"caf\xc3\xa9": 1}', text=True)
        connection.send(bytearray(b"ok"), text=True)
        connection.send(memoryview(b"fine"), text=True)
        connection.send("café", text=False)
        connection.send([b"frag", b"ments"], text=True)
        connection.send(iter(["fr", "ag"]), text=False)
        # text=None and the matching flag change nothing.
        connection.send("str", text=True)
        connection.send(b"bytes", text=False)
        connection.send("plain")
        connection.send([b"by", b"tes"], text=None)
        assert [received.get(timeout=TIMEOUT) for _ in range(10)] == [
            '{"café": 1}',
            "ok",
            "fine",
            "café".encode(),
            "fragments",
            b"frag",
            "str",
            b"bytes",
            "plain",
            b"bytes",
        ]


def test_send_with_text_true_does_not_check_utf8() -> None:
    """The caller vouches for the bytes: invalid UTF-8 reaches the peer, which fails the
    connection with 1007, as websockets does when it is the sender."""
    with (
        ws_server(recorder(queue.Queue())) as server,
        client(server.uri) as connection,
    ):
        connection.send(b"\xff\xfe", text=True)
        with pytest.raises(ConnectionClosed):
            connection.recv(TIMEOUT)
        assert connection.close_code == 1007


def test_send_fragments_with_text_keep_one_type() -> None:
    with (
        ws_server(recorder(queue.Queue())) as server,
        client(server.uri) as connection,
    ):
        with pytest.raises(TypeError, match="all fragments of a message must be of the same type"):
            connection.send([b"a", "b"], text=True)
        # Half a message went out: the connection fails, as without text.
        connection.wait_closed(TIMEOUT)
        assert connection.protocol.close_sent is not None
        assert connection.protocol.close_sent.code == 1011


@pytest.mark.parametrize("text", ["yes", 1, 0])
def test_send_and_broadcast_check_text(text: object) -> None:
    with (
        ws_server(recorder(queue.Queue())) as server,
        client(server.uri) as connection,
    ):
        with pytest.raises(TypeError, match=r"^text must be True, False, or None"):
            connection.send("hello", text=text)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^text must be True, False, or None"):
            broadcast([connection], "hello", text=text)  # type: ignore[arg-type]
        # Nothing was sent: the connection is still usable.
        connection.send("still open")
        assert not connection.closed


def test_broadcast_with_text() -> None:
    opened: queue.Queue[ServerConnection] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        opened.put(connection)
        for _ in connection:
            pass

    server = serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None)
    with (
        running(server),
        ws_connect(uri(server), compression=None, open_timeout=TIMEOUT) as first,
        ws_connect(uri(server), compression="deflate", open_timeout=TIMEOUT) as second,
    ):
        connections = [opened.get(timeout=TIMEOUT), opened.get(timeout=TIMEOUT)]
        assert broadcast(connections, b'{"n": 1}', text=True) == []
        assert broadcast(connections, "binary", text=False) == []
        assert broadcast(connections, b"still binary") == []
        for websocket in (first, second):
            assert websocket.recv(TIMEOUT) == '{"n": 1}'
            assert websocket.recv(TIMEOUT) == b"binary"
            assert websocket.recv(TIMEOUT) == b"still binary"


# max_size as a (message, frame) pair, max_queue as (high, low) water marks.


def ws_sender(messages: list[Any]) -> Callable[[WSServerConnection], None]:
    """A websockets handler that sends these messages (a list is sent in fragments), then
    waits for the client to close."""

    def handler(connection: WSServerConnection) -> None:
        with contextlib.suppress(WSConnectionClosed):
            for message in messages:
                connection.send(message)
            connection.recv()

    return handler


@pytest.mark.parametrize("library", ["syncws", "websockets"])
def test_max_size_pair_limits_frames_and_messages_as_in_websockets(library: str) -> None:
    """The same client options, the same outcome with either library as the client: small
    frames make a message up to the message limit, and a message of small frames over it
    fails with 1009."""
    messages = [[b"a" * 1000] * 5, [b"b" * 600] * 20]
    with ws_server(ws_sender(messages), max_size=None) as server:
        if library == "syncws":
            with client(server.uri, max_size=(10_000, 1000)) as connection:
                assert connection.recv(TIMEOUT) == b"a" * 5000
                with pytest.raises(ConnectionClosed):
                    connection.recv(TIMEOUT)
                assert connection.protocol.close_sent is not None
                assert connection.protocol.close_sent.code == 1009
        else:
            with ws_connect(
                server.uri, max_size=(10_000, 1000), compression=None, open_timeout=TIMEOUT
            ) as websocket:
                assert websocket.recv(TIMEOUT) == b"a" * 5000
                with pytest.raises(WSConnectionClosed) as raised:
                    websocket.recv(TIMEOUT)
                assert raised.value.sent is not None
                assert raised.value.sent.code == 1009


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_max_size_pair_fails_a_large_frame_from_a_websockets_client(compression: Any) -> None:
    received: queue.Queue[str | bytes] = queue.Queue()

    def handler(connection: ServerConnection) -> None:
        for message in connection:
            received.put(message)

    server = serve(
        handler, "127.0.0.1", 0, compression=compression, max_size=(2**20, 1000)
    )
    with (
        running(server),
        ws_connect(uri(server), compression=compression, open_timeout=TIMEOUT) as websocket,
    ):
        websocket.send([b"x" * 1000] * 20)  # 20 kB in frames of the largest size allowed
        assert received.get(timeout=TIMEOUT) == b"x" * 20_000
        websocket.send(os.urandom(1001))  # one frame, one byte over, compressed or not
        with pytest.raises(WSConnectionClosed) as raised:
            websocket.recv(TIMEOUT)
        assert raised.value.rcvd is not None
        assert raised.value.rcvd.code == 1009
        assert received.empty()


def test_max_queue_pair_resumes_reading_at_the_low_water_mark() -> None:
    """A websockets server sends 12 messages at once: the client reads 4, pauses, and reads
    again only once 3 are received (down to 1), so 3 pauses in all; without the low-water
    mark, it would pause again after each message received."""
    with (
        ws_server(ws_sender([f"m{i}" for i in range(12)])) as server,
        client(server.uri, ping_interval=None, max_queue=(4, 1)) as connection,
    ):
        received = []
        for pause in range(1, 4):
            assert wait_for(lambda: connection._queue.paused and len(connection._queue) == 4)
            assert connection._queue.pauses == pause
            for _ in range(3):
                received.append(connection.recv(TIMEOUT))
        for _ in range(3):
            received.append(connection.recv(TIMEOUT))
        assert received == [f"m{i}" for i in range(12)]
        assert connection._queue.pauses == 3


def test_max_queue_low_water_mark_defaults_to_a_quarter() -> None:
    with (
        ws_server(ws_sender([])) as server,
        client(server.uri, max_queue=16) as connection,
    ):
        assert (connection._queue.max_queue, connection._queue.low) == (16, 4)
