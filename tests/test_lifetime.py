"""A connection that is over is freed by reference counting alone.

Its parts (reader, writer, keepalive, timers, parser) call it back through bound methods; once
it is over they stop, so that no reference cycle holds it. The garbage collector is off in
these tests: a connection, its buffers and the messages nobody received are freed as soon as
nothing refers to them, not at the next full collection, which on a busy server comes minutes
and hundreds of megabytes later.
"""

from __future__ import annotations

import gc
import logging
import socket
import sys
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
from io_helpers import TIMEOUT, RawPeer, RawServer, frame_bytes, wait_for

from syncws import ClientConnection, ServerConnection, connect
from syncws.connection import Connection
from syncws.core.frames import Frame
from syncws.core.protocol import Protocol
from syncws.core.streams import StreamReader
from syncws.exceptions import ConnectionClosed
from syncws.keepalive import Keepalive
from syncws.messages import MessageQueue
from syncws.reading import Reader
from syncws.testing import run_server
from syncws.writing import Writer

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture(autouse=True)
def no_garbage_collection(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[None]:
    # pytest keeps the log records of a test, and with them the tracebacks of the errors
    # logged, which refer to the connection: log nowhere instead.
    syncws_logger = logging.getLogger("syncws")
    monkeypatch.setattr(syncws_logger, "propagate", False)
    monkeypatch.setattr(syncws_logger, "handlers", [logging.NullHandler()])
    gc.collect()
    gc.disable()
    try:
        yield
        # What cycles the test made (its tracebacks, say) hold nothing of syncws's.
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kept = {type(obj).__qualname__ for obj in gc.garbage if _of_a_connection(obj)}
        if getattr(request.node, "allow_protocol_cycle", False):
            kept -= {"ClientProtocol", "StreamReader"}
        assert not kept
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _of_a_connection(obj: object) -> bool:
    """Whether ``obj`` is a part of a connection, or a bound method of one (a server is in
    cycles of its own, made once)."""
    if isinstance(obj, types.MethodType):
        obj = obj.__self__
    return isinstance(
        obj,
        (Connection, Protocol, StreamReader, Reader, Writer, Keepalive, MessageQueue, Frame),
    )


def freed(ref: weakref.ref[Any]) -> bool:
    """Whether the object is gone, within the test's timeout, without a collection."""
    return wait_for(lambda: ref() is None, TIMEOUT)


def open_client(uri: str, compression: Literal["deflate"] | None = None) -> ClientConnection:
    return connect(uri, compression=compression, proxy=None, open_timeout=TIMEOUT)


def receive_until_closed(connection: ClientConnection) -> None:
    """Receive what comes until the connection is closed."""
    for _ in range(10):
        try:
            connection.recv(TIMEOUT)
        except ConnectionClosed:
            return
    raise AssertionError("the connection did not close")


def leave_messages_unreceived(connection: ClientConnection) -> None:
    # The server's handler returns with a message queued that it never receives.
    connection.send(b"x" * 100_000)
    connection.send("close")


SCENARIOS: dict[str, Callable[[ClientConnection], None]] = {
    "client-closes": lambda connection: connection.close(),
    "server-closes": lambda connection: connection.send("close"),
    "handler-raises": lambda connection: connection.send("raise"),
    "client-aborts": lambda connection: connection.abort(),
    "unreceived-messages": leave_messages_unreceived,
}


@pytest.mark.parametrize("compression", [None, "deflate"], ids=["plain", "deflate"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_ends_are_freed_without_the_garbage_collector(
    scenario: str, compression: Literal["deflate"] | None
) -> None:
    server_refs: list[weakref.ref[object]] = []

    def handler(connection: ServerConnection) -> None:
        server_refs.append(weakref.ref(connection))
        for message in connection:
            if message == "close":
                return
            if message == "raise":
                raise RuntimeError("the handler fails on purpose")
            connection.send(message)

    # A logger of its own, outside logging's tree: pytest keeps every record it can reach, and
    # the error the handler raises is logged with its traceback, which holds the connection.
    server_logger = logging.Logger("lifetime")
    server_logger.addHandler(logging.NullHandler())
    with run_server(
        handler, compression=compression, ping_interval=0.05, logger=server_logger
    ) as running:
        connection = open_client(running.uri, compression)
        connection.send(b"y" * 70_000)
        assert connection.recv(TIMEOUT) == b"y" * 70_000
        client_ref = weakref.ref(connection)
        SCENARIOS[scenario](connection)
        if scenario != "client-aborts":
            receive_until_closed(connection)
        connection.close()
        del connection
        assert freed(client_ref)
        assert len(server_refs) == 1
        assert freed(server_refs[0])


def test_a_connection_failed_by_the_peer_is_freed(request: pytest.FixtureRequest) -> None:
    # The peer breaks the protocol: the connection fails with 1002.
    if sys.version_info < (3, 11):
        # Python 3.10 gives the protocol's failure its traceback back after syncws dropped
        # it, so the protocol (not the connection) waits for a collection there.
        request.node.allow_protocol_cycle = True

    def script(peer: RawPeer) -> None:
        peer.accept()
        peer.send(b"\x83\x00")  # reserved opcode

    with RawServer(script) as server:
        connection = open_client(server.uri)
        with pytest.raises(ConnectionClosed):
            connection.recv(TIMEOUT)
        ref = weakref.ref(connection)
        connection.close()
        del connection
        assert freed(ref)


def test_a_connection_dropped_unclosed_by_the_peer_is_freed() -> None:
    def script(peer: RawPeer) -> None:
        peer.accept()
        peer.send(frame_bytes(0x1, b"hello"))
        peer.sock.shutdown(socket.SHUT_RDWR)

    with RawServer(script) as server:
        connection = open_client(server.uri)
        assert connection.recv(TIMEOUT) == "hello"
        with pytest.raises(ConnectionClosed):
            connection.recv(TIMEOUT)
        ref = weakref.ref(connection)
        del connection
        assert freed(ref)
