"""Tests of a client connection at work: sending, receiving, pings, closing, and the live rows
of the robustness table, against the websockets server and hostile raw peers."""

from __future__ import annotations

import contextlib
import functools
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from io_helpers import (
    TIMEOUT,
    Background,
    RawFrame,
    RawPeer,
    RawServer,
    WSServer,
    aborting,
    client,
    close_payload,
    echo,
    frame_bytes,
    wait_for,
    ws_server,
)
from websockets.exceptions import ConnectionClosed as WSConnectionClosed
from websockets.sync.server import ServerConnection

import syncws.connection
import syncws.reading
import syncws.testing
import syncws.transport
from syncws.client import ClientConnection
from syncws.core.frames import Frame, Opcode
from syncws.core.protocol import State
from syncws.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
)
from syncws.messages import Data
from syncws.timers import _timers

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture
def echo_server() -> Iterator[WSServer]:
    with ws_server(echo) as server:
        yield server


@pytest.fixture
def connection(echo_server: WSServer) -> Iterator[ClientConnection]:
    with client(echo_server.uri, ping_interval=None) as connection:
        yield connection


class Closes:
    """A websockets handler that echoes and records the Close it received."""

    def __init__(self) -> None:
        self.closes: queue.Queue[tuple[int, str] | None] = queue.Queue()

    def __call__(self, websocket: ServerConnection) -> None:
        try:
            for message in websocket:
                websocket.send(message)
        except WSConnectionClosed:
            pass
        finally:
            rcvd = websocket.protocol.close_rcvd
            self.closes.put(None if rcvd is None else (rcvd.code, rcvd.reason))

    def get(self) -> tuple[int, str] | None:
        return self.closes.get(timeout=TIMEOUT)


def small_buffer_socket(
    port: int, *, sndbuf: int = 4096, rcvbuf: int | None = None
) -> socket.socket:
    """A socket connected to the loopback port, with small kernel buffers."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def accept_and_idle(peer: RawPeer) -> None:
    peer.accept()
    peer.idle()


# Sending and receiving.


def test_send_text_and_binary(connection: ClientConnection) -> None:
    connection.send("héllo")
    connection.send(b"\x00\x01\xff")
    first = connection.recv(TIMEOUT)
    second = connection.recv(TIMEOUT)
    assert (first, type(first)) == ("héllo", str)
    assert (second, type(second)) == (b"\x00\x01\xff", bytes)


def test_send_bytes_like(connection: ClientConnection) -> None:
    connection.send(bytearray(b"array"))
    connection.send(memoryview(b"view"))
    connection.send(memoryview(b"0123456789")[2:5])
    assert connection.recv(TIMEOUT) == b"array"
    assert connection.recv(TIMEOUT) == b"view"
    assert connection.recv(TIMEOUT) == b"234"


def test_send_empty_messages(connection: ClientConnection) -> None:
    connection.send("")
    connection.send(b"")
    assert connection.recv(TIMEOUT) == ""
    assert connection.recv(TIMEOUT) == b""


def test_send_large_message(connection: ClientConnection) -> None:
    message = bytes(range(256)) * 4000  # just under websockets' 1 MiB limit
    connection.send(message)
    assert connection.recv(TIMEOUT) == message


def test_send_fragmented(connection: ClientConnection) -> None:
    connection.send(["frag", "mented ", "téxt"])
    connection.send([b"frag", bytearray(b"mented "), memoryview(b"bytes")])
    connection.send(part for part in ("from ", "a generator"))
    connection.send(("one fragment",))
    assert connection.recv(TIMEOUT) == "fragmented téxt"
    assert connection.recv(TIMEOUT) == b"fragmented bytes"
    assert connection.recv(TIMEOUT) == "from a generator"
    assert connection.recv(TIMEOUT) == "one fragment"


def test_fragments_on_the_wire() -> None:
    def script(peer: RawPeer) -> list[RawFrame]:
        peer.accept()
        frames: list[RawFrame] = []
        while len(frames) < 7:
            frame = peer.read_frame()
            assert frame is not None
            frames.append(frame)
        return frames

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        connection.send(["a", "b", "c"])
        connection.send([b"x", b"y"])
        frames = server.join()
    # One frame per item, then an empty final frame.
    assert [(frame.opcode, frame.fin, frame.payload) for frame in frames] == [
        (0x1, False, b"a"),
        (0x0, False, b"b"),
        (0x0, False, b"c"),
        (0x0, True, b""),
        (0x2, False, b"x"),
        (0x0, False, b"y"),
        (0x0, True, b""),
    ]


def test_send_empty_iterable_raises_and_sends_nothing() -> None:
    def script(peer: RawPeer) -> RawFrame | None:
        peer.accept()
        return peer.read_frame()

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        with pytest.raises(ValueError, match="empty iterable"):
            connection.send([])
        with pytest.raises(ValueError, match="empty iterable"):
            connection.send(iter(()))
        connection.send("next")
        frame = server.join()
    # The first frame on the wire is the next message.
    assert frame is not None
    assert (frame.opcode, frame.payload) == (0x1, b"next")


@pytest.mark.parametrize(
    "fragments", [["text", b"bytes"], [b"bytes", "text"], [b"bytes", 42], ["text", None]]
)
def test_send_mixed_fragments_fails_connection(fragments: list[Any]) -> None:
    closes = Closes()
    with ws_server(closes) as server, client(server.uri) as connection:
        with pytest.raises(TypeError):
            connection.send(fragments)
        # Half a message went out: the connection fails with 1011.
        assert closes.get() == (1011, "error in fragmented message")
        connection.wait_closed(TIMEOUT)
        with pytest.raises(ConnectionClosedError) as exc_info:
            connection.send("more")
        assert exc_info.value.sent is not None
        assert exc_info.value.sent.code == 1011
        # Failing stops reading (RFC 6455 7.1.7): the server's answer is not read.
        assert connection.close_code == 1006


@pytest.mark.parametrize("message", [{"key": "value"}, {}, 42, 4.2, None, [42], [{"a": 1}]])
def test_send_invalid_type(connection: ClientConnection, message: Any) -> None:
    with pytest.raises(TypeError):
        connection.send(message)
    # Nothing went out: the connection is fine.
    assert connection.state is State.OPEN
    connection.send("still open")
    assert connection.recv(TIMEOUT) == "still open"


def test_recv_timeout(connection: ClientConnection) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        connection.recv(0.1)
    assert 0.05 <= time.monotonic() - start < 3
    with pytest.raises(TimeoutError):
        connection.recv(0)
    connection.send("now")
    assert connection.recv(TIMEOUT) == "now"
    # timeout=0 returns a message that is already here.
    connection.send("polled")
    assert wait_for(lambda: len(connection._queue) == 1)
    assert connection.recv(0) == "polled"


@pytest.mark.parametrize(
    ("message", "decode", "expected"),
    [
        ("é", None, "é"),
        ("é", False, "é".encode()),
        ("é", True, "é"),
        ("é".encode(), None, "é".encode()),
        ("é".encode(), True, "é"),
        ("é".encode(), False, "é".encode()),
    ],
)
def test_recv_decode(
    connection: ClientConnection, message: Data, decode: bool | None, expected: Data
) -> None:
    connection.send(message)
    received = connection.recv(TIMEOUT, decode=decode)
    assert (received, type(received)) == (expected, type(expected))


def fragmenting_server(websocket: ServerConnection) -> None:
    """Answer each message with the same message in three fragments."""
    with contextlib.suppress(WSConnectionClosed):
        for message in websocket:
            data = message.encode() if isinstance(message, str) else message
            third = max(1, len(data) // 3)
            websocket.send(
                [data[:third], data[third : 2 * third], data[2 * third :]],
                text=isinstance(message, str),
            )


def test_recv_streaming_abandoned_drops_the_rest_of_the_message() -> None:
    """Leaving recv_streaming() after the first fragment drops the others, those queued and
    those still to come: recv() then returns the next message, not the end of this one."""
    more = threading.Event()

    def handler(websocket: ServerConnection) -> None:
        with contextlib.suppress(WSConnectionClosed):
            for message in websocket:
                if message == "queued":
                    websocket.send(["one", "two", "three"])
                    websocket.send("after queued")
                elif message == "to come":
                    # The first fragment, then the others once the client stopped streaming.
                    websocket.send(fragments())
                    websocket.send("after to come")

    def fragments() -> Iterator[str]:
        yield "one"
        assert more.wait(TIMEOUT)
        yield "two"
        yield "three"

    with ws_server(handler) as server, client(server.uri, ping_interval=None) as connection:
        connection.send("queued")
        # Both messages are in the queue before streaming starts.
        assert wait_for(lambda: len(connection._queue) == 2, TIMEOUT)
        for fragment in connection.recv_streaming():
            assert fragment == "one"
            break
        assert connection.recv(TIMEOUT) == "after queued"

        connection.send("to come")
        stream = connection.recv_streaming()
        assert next(stream) == "one"
        stream.close()
        more.set()
        assert connection.recv(TIMEOUT) == "after to come"
        # Streaming a whole message still works after both.
        connection.send("queued")
        assert "".join(texts(list(connection.recv_streaming()))) == "onetwothree"
        assert connection.recv(TIMEOUT) == "after queued"


def texts(fragments: list[Data]) -> list[str]:
    """Check that every fragment is text and return them."""
    result = [fragment for fragment in fragments if isinstance(fragment, str)]
    assert result == fragments
    return result


def test_recv_streaming() -> None:
    with ws_server(fragmenting_server) as server, client(server.uri) as connection:
        connection.send("abcdefghi")
        fragments = list(connection.recv_streaming())
        assert len(fragments) >= 3
        assert "".join(texts(fragments)) == "abcdefghi"
        # UTF-8 split across fragments is reassembled.
        connection.send("€€")  # 6 bytes: each fragment ends inside a character
        assert "".join(texts(list(connection.recv_streaming()))) == "€€"
        connection.send(b"\x01\x02\x03")
        # websockets ends a fragmented message with an empty frame.
        assert list(connection.recv_streaming()) == [b"\x01", b"\x02", b"\x03", b""]
        connection.send("bytes")
        assert b"".join(connection.recv_streaming(decode=False)) == b"bytes"  # type: ignore[arg-type]
        # recv() reassembles the same messages.
        connection.send("whole")
        assert connection.recv(TIMEOUT) == "whole"


def test_iteration_ends_on_normal_close() -> None:
    def handler(websocket: ServerConnection) -> None:
        for i in range(3):
            websocket.send(f"message {i}")
        # Returning closes the connection with 1000.

    with ws_server(handler) as server, client(server.uri) as connection:
        assert list(connection) == ["message 0", "message 1", "message 2"]
        assert connection.close_code == 1000
        with pytest.raises(ConnectionClosedOK):
            connection.recv(TIMEOUT)
        with pytest.raises(ConnectionClosedOK):
            connection.send("too late")


def test_iteration_raises_on_error_close() -> None:
    def handler(websocket: ServerConnection) -> None:
        websocket.send("before the error")
        websocket.close(1011, "server error")

    with ws_server(handler) as server, client(server.uri) as connection:
        received: list[Data] = []

        def consume() -> None:
            for message in connection:
                received.append(message)

        with pytest.raises(ConnectionClosedError) as exc_info:
            consume()
        assert received == ["before the error"]
        assert exc_info.value.rcvd is not None
        assert exc_info.value.rcvd.code == 1011
        assert exc_info.value.rcvd.reason == "server error"
        assert connection.close_code == 1011
        assert connection.close_reason == "server error"


def test_server_going_away() -> None:
    def handler(websocket: ServerConnection) -> None:
        websocket.close(1001)

    with ws_server(handler) as server, client(server.uri) as connection:
        with pytest.raises(ConnectionClosedOK) as exc_info:
            connection.recv(TIMEOUT)
        assert exc_info.value.code == 1001
        assert connection.close_code == 1001


def test_messages_before_close_can_be_read() -> None:
    def handler(websocket: ServerConnection) -> None:
        websocket.send("one")
        websocket.send("two")

    with ws_server(handler) as server, client(server.uri) as connection:
        connection.wait_closed(TIMEOUT)
        assert connection.recv(0) == "one"
        assert connection.recv(0) == "two"
        with pytest.raises(ConnectionClosedOK):
            connection.recv(0)


# Pings and pongs.


def test_ping(connection: ClientConnection) -> None:
    assert connection.latency == 0
    waiter = connection.ping()
    latency = waiter.wait(TIMEOUT)
    assert latency > 0
    assert waiter.done()
    assert waiter.latency == latency
    assert connection.latency == latency
    # With a payload, as str or bytes.
    assert connection.ping("text").wait(TIMEOUT) > 0
    assert connection.ping(b"\x00" * 125).wait(TIMEOUT) > 0
    with pytest.raises(ValueError, match="125"):
        connection.ping(b"\x00" * 126)


def test_keepalive_updates_latency(echo_server: WSServer) -> None:
    with client(echo_server.uri, ping_interval=0.05, ping_timeout=TIMEOUT) as connection:
        assert wait_for(lambda: connection.latency > 0)
        assert connection.state is State.OPEN


def test_ping_with_same_payload_waiting() -> None:
    with RawServer(accept_and_idle) as server, aborting(client(server.uri)) as connection:
        waiter = connection.ping(b"same")
        with pytest.raises(ConcurrencyError):
            connection.ping(b"same")
        with pytest.raises(TimeoutError):
            waiter.wait(0.05)
        assert not waiter.done()


def test_pong_acknowledges_earlier_pings() -> None:
    def script(peer: RawPeer) -> None:
        peer.accept()
        pings = [peer.read_frame(), peer.read_frame()]
        assert [ping.opcode if ping else None for ping in pings] == [0x9, 0x9]
        # Answer only the second ping: the first one is acknowledged too.
        assert pings[1] is not None
        peer.send(frame_bytes(0xA, b"unsolicited") + frame_bytes(0xA, pings[1].payload))
        peer.idle()

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        first = connection.ping(b"first")
        second = connection.ping(b"second")
        assert second.wait(TIMEOUT) > 0
        assert first.wait(TIMEOUT) >= second.wait(TIMEOUT)
        assert connection.latency == second.latency


def test_ping_waiter_when_connection_closes() -> None:
    with RawServer(accept_and_idle) as server, aborting(client(server.uri)) as connection:
        waiter = connection.ping()
        connection.abort()
        with pytest.raises(ConnectionClosedError):
            waiter.wait(TIMEOUT)
        assert waiter.done()
        with pytest.raises(ConnectionClosedError):
            connection.ping()
        with pytest.raises(ConnectionClosedError):
            connection.pong()


def test_pong() -> None:
    def script(peer: RawPeer) -> list[RawFrame | None]:
        peer.accept()
        return [peer.read_frame(), peer.read_frame()]

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        connection.pong(b"heartbeat")
        connection.pong("text")
        frames = server.join()
    assert [(f.opcode, f.payload) if f else None for f in frames] == [
        (0xA, b"heartbeat"),
        (0xA, b"text"),
    ]


def test_no_timer_left_after_close(echo_server: WSServer) -> None:
    """Once closed, a connection leaves no timer pending in the shared timer thread."""
    connection = client(echo_server.uri, ping_interval=0.05, ping_timeout=60)
    with connection:
        # A keepalive ping went out and came back: its timeout was scheduled.
        assert wait_for(lambda: connection.latency > 0)

    def refers_to_connection(callback: Callable[[], object]) -> bool:
        if getattr(callback, "__self__", None) is connection:
            return True
        cells = getattr(callback, "__closure__", None) or ()
        return any(cell.cell_contents is connection for cell in cells)

    def pending() -> list[Callable[[], object]]:
        with _timers._cond:
            return [
                timer.callback
                for _, _, timer in _timers._heap
                if not timer.cancelled and refers_to_connection(timer.callback)
            ]

    assert wait_for(lambda: not pending(), timeout=2), pending()


# Closing.


def test_applications_may_add_attributes() -> None:
    """Connections keep their own state in slots; the application may still add its own."""
    with ws_server(echo) as server, client(server.uri) as connection:
        connection.user_id = 42  # type: ignore[attr-defined]
        assert connection.user_id == 42  # type: ignore[attr-defined]
        assert vars(connection) == {"user_id": 42}
        connection.protocol.note = "also here"  # type: ignore[attr-defined]
        assert connection.protocol.note == "also here"  # type: ignore[attr-defined]


def test_context_manager_closes_with_1000() -> None:
    closes = Closes()
    with ws_server(closes) as server:
        with client(server.uri) as connection:
            connection.send("hi")
            assert connection.recv(TIMEOUT) == "hi"
        assert closes.get() == (1000, "")
        assert connection.state is State.CLOSED
        assert connection.close_code == 1000
        assert connection.socket.fileno() == -1
        if connection._reader is not None:
            connection._reader.join(TIMEOUT)
            assert not connection._reader.is_alive()


def test_context_manager_closes_with_1011_on_error() -> None:
    closes = Closes()
    with ws_server(closes) as server:
        with pytest.raises(RuntimeError), client(server.uri):
            raise RuntimeError("application error")
        assert closes.get() == (1011, "")


def test_close_with_code_and_reason() -> None:
    closes = Closes()
    with ws_server(closes) as server:
        connection = client(server.uri)
        connection.close(4000, "custom reason")
        assert closes.get() == (4000, "custom reason")
        assert connection.close_code == 4000  # the server echoed it
        # Closing again does nothing.
        connection.close()
        connection.close(1001)
        assert connection.state is State.CLOSED
        # 4000 is not a normal closure.
        with pytest.raises(ConnectionClosedError):
            connection.recv(0)


def test_close_wait_closed_and_abort() -> None:
    with RawServer(accept_and_idle) as server, aborting(client(server.uri)) as connection:
        with pytest.raises(TimeoutError):
            connection.wait_closed(0.05)
        connection.abort()
        connection.wait_closed(TIMEOUT)
        assert connection.close_code == 1006
        assert connection.close_reason == ""
        with pytest.raises(ConnectionClosedError) as exc_info:
            connection.recv(TIMEOUT)
        assert exc_info.value.rcvd is None
        assert exc_info.value.sent is None
        with pytest.raises(ConnectionClosedError):
            connection.send("after abort")
        connection.close()  # returns at once


@contextlib.contextmanager
def closed_after_close_timeout(script: Callable[[RawPeer], Any]) -> Iterator[ClientConnection]:
    """Run ``script`` as the server, check that closing a client to it with a close timeout of
    0.5 s waits that long and no longer, and yield the closed client."""
    with RawServer(script) as server:
        connection = client(server.uri, close_timeout=0.5, ping_interval=None)
        start = time.monotonic()
        connection.close()
        elapsed = time.monotonic() - start
        assert 0.4 <= elapsed < 3
        assert connection.state is State.CLOSED
        yield connection


def test_close_peer_never_closes_tcp() -> None:
    """L5: the server answers the Close but never closes TCP."""

    def script(peer: RawPeer) -> int:
        peer.accept()
        close, _ = peer.read_close()
        peer.send(frame_bytes(0x8, close.payload))
        peer.idle()
        return close.close_code

    with closed_after_close_timeout(script) as connection:
        assert connection.close_code == 1000
        if connection._reader is not None:
            connection._reader.join(TIMEOUT)
            assert not connection._reader.is_alive()
        assert connection.socket.fileno() == -1


def test_close_peer_never_answers() -> None:
    """L5: the server never answers the Close."""

    def script(peer: RawPeer) -> int:
        peer.accept()
        close, _ = peer.read_close()
        peer.idle()
        return close.close_code

    with closed_after_close_timeout(script) as connection:
        assert connection.close_code == 1006
        assert connection.socket.fileno() == -1
        with pytest.raises(ConnectionClosedError) as exc_info:
            connection.recv(0)
        assert exc_info.value.sent is not None
        assert exc_info.value.sent.code == 1000


def test_keepalive_timeout() -> None:
    """L6: the server goes silent after the handshake and never answers pings."""

    def script(peer: RawPeer) -> tuple[int, int]:
        peer.accept()
        close, before = peer.read_close()
        # Return without closing TCP: the socket stays open until the test ends.
        return close.close_code, sum(frame.opcode == 0x9 for frame in before)

    with RawServer(script) as server:
        connection = client(server.uri, ping_interval=0.2, ping_timeout=0.3, close_timeout=0.5)
        with aborting(connection):
            start = time.monotonic()
            with pytest.raises(ConnectionClosedError) as exc_info:
                connection.recv(TIMEOUT)
            elapsed = time.monotonic() - start
            assert 0.8 <= elapsed < 0.2 + 0.3 + 0.5 + 2
            assert exc_info.value.sent is not None
            assert exc_info.value.sent.code == 1011
            assert exc_info.value.rcvd is None
            assert connection.close_code == 1006
            code, pings = server.join()
    assert code == 1011
    assert pings >= 1


# Slow and hostile peers.


def test_slow_consumer_send_times_out() -> None:
    """R1: the server never reads; send() times out once the kernel buffers are full."""
    message = b"m" * 2**20
    with RawServer(accept_and_idle, rcvbuf=4096) as server:
        connection = client(server.uri, ping_interval=None, write_timeout=0.5, close_timeout=0.5)
        with aborting(connection):
            sent = 0

            def send_until_error() -> None:
                nonlocal sent
                # Bounded: the kernel buffers hold a few MiB at most.
                for _ in range(64):
                    connection.send(message)
                    sent += 1

            start = time.monotonic()
            with pytest.raises(TimeoutError):
                send_until_error()
            assert sent < 64
            assert time.monotonic() - start < 0.5 * (sent + 1) + 5
            # The connection is aborted; nothing is left waiting in memory.
            connection.wait_closed(TIMEOUT)
            assert connection.close_code == 1006
            assert connection._writer._out == []
            with pytest.raises(ConnectionClosedError):
                connection.send("more")


def test_send_timeout_argument() -> None:
    """send(timeout=...) raises TimeoutError and aborts when the peer stops reading."""
    with RawServer(accept_and_idle, rcvbuf=4096) as server:
        sock = small_buffer_socket(server.port)
        connection = client(server.uri, sock=sock, ping_interval=None)
        with aborting(connection):
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                connection.send(b"t" * 2**20, timeout=0.3)
            assert 0.2 <= time.monotonic() - start < 3
            connection.wait_closed(TIMEOUT)
            assert connection.close_code == 1006


def test_send_timeout_zero_on_full_socket() -> None:
    """send(timeout=0) never leaves the rest of a message queued in memory."""
    with RawServer(accept_and_idle, rcvbuf=4096) as server:
        sock = small_buffer_socket(server.port)
        connection = client(server.uri, sock=sock, ping_interval=None)
        with aborting(connection):
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                connection.send(b"z" * 4 * 2**20, timeout=0)
            assert time.monotonic() - start < 3
            connection.wait_closed(TIMEOUT)
            assert connection.close_code == 1006
            assert connection._writer._out == []


def test_send_timeout_while_another_thread_sends() -> None:
    """send(timeout=...) gives up, sending nothing, while another message is on its way."""
    with RawServer(accept_and_idle, rcvbuf=4096) as server:
        sock = small_buffer_socket(server.port)
        connection = client(server.uri, sock=sock, ping_interval=None, write_timeout=TIMEOUT)
        with aborting(connection):
            sender = Background(lambda: connection.send(b"s" * 2**20))
            assert wait_for(connection._send_lock.locked)
            with pytest.raises(TimeoutError, match="another thread"):
                connection.send("queued", timeout=0.1)
            assert connection.state is State.OPEN
            connection.abort()
            with pytest.raises(ConnectionClosedError):
                sender.join()


def flood_pings(start: threading.Event | None = None) -> Callable[[RawPeer], int]:
    """A script that sends pings of 125 bytes as fast as it can and never reads."""
    batch = frame_bytes(0x9, b"p" * 125) * 64

    def script(peer: RawPeer) -> int:
        peer.accept()
        if start is not None:
            assert start.wait(TIMEOUT)
        sent = 0
        deadline = time.monotonic() + TIMEOUT
        peer.sock.settimeout(0.05)
        while not peer.stop.is_set() and time.monotonic() < deadline:
            # Resume where the last partial write stopped: frames stay whole.
            offset = sent % len(batch)
            try:
                sent += peer.sock.send(batch[offset:])
            except TimeoutError:
                continue
            except OSError:
                break
        return sent

    return script


def watch_output(connection: ClientConnection) -> int:
    """Sample the connection's unsent output until it closes; return the largest size seen."""
    largest = 0
    deadline = time.monotonic() + TIMEOUT
    while not connection._closed.is_set() and time.monotonic() < deadline:
        largest = max(largest, sum(map(len, list(connection._writer._out))))
        time.sleep(0.002)
    return largest


def test_ping_flood_peer_not_reading() -> None:
    """R2: pings flood in and the server reads none of the pongs."""
    with RawServer(flood_pings(), rcvbuf=4096) as server:
        sock = small_buffer_socket(server.port)
        connection = client(
            server.uri, sock=sock, ping_interval=None, write_timeout=0.5, close_timeout=0.5
        )
        with aborting(connection):
            start = time.monotonic()
            largest = watch_output(connection)
            assert connection._closed.is_set()
            assert time.monotonic() - start < 0.5 + 0.5 + 3
            assert largest < 2**20
            assert connection.close_code == 1006
            with pytest.raises(ConnectionClosedError):
                connection.recv(TIMEOUT)


def test_ping_flood_while_sending() -> None:
    """R2: pings flood in while another thread's send() is stuck: the reader stops too."""
    start = threading.Event()
    with RawServer(flood_pings(start), rcvbuf=4096) as server:
        sock = small_buffer_socket(server.port)
        connection = client(
            server.uri, sock=sock, ping_interval=None, write_timeout=1, close_timeout=0.5
        )
        with aborting(connection):
            sender = Background(lambda: connection.send(b"s" * 2**20))
            assert wait_for(connection._writer._write_lock.locked)
            start.set()
            begin = time.monotonic()
            largest = watch_output(connection)
            assert connection._closed.is_set()
            assert time.monotonic() - begin < 1 + 0.5 + 3
            # Pongs are not piled up while the socket takes nothing.
            assert largest < 2**20
            with pytest.raises((ConnectionClosed, TimeoutError)):
                sender.join()


def test_slow_drip_in_one_frame() -> None:
    """R3: a frame declared at max_size arrives one byte at a time."""
    dripped = threading.Event()
    proceed = threading.Event()
    drip = bytes(range(256)) + bytes(range(44))  # 300 bytes
    size = 2**20

    def script(peer: RawPeer) -> tuple[list[RawFrame], list[RawFrame]]:
        peer.accept()
        peer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer.send(frame_bytes(0x9, b"before"))
        peer.send(b"\x82\x7f" + size.to_bytes(8, "big"))
        during: list[RawFrame] = []
        for byte in drip:
            peer.send(bytes([byte]))
            time.sleep(0.002)
            during += peer.read_available()
        dripped.set()
        assert proceed.wait(TIMEOUT)
        peer.send(bytes(size - len(drip)) + frame_bytes(0x9, b"after"))
        after: list[RawFrame] = []
        while not any(frame.opcode == 0xA and frame.payload == b"after" for frame in after):
            frame = peer.read_frame()
            assert frame is not None
            after.append(frame)
        return during, after

    with RawServer(script) as server:
        connection = client(server.uri, ping_interval=0.1, ping_timeout=None)
        with aborting(connection):
            reader = connection.protocol.reader
            # Once the header came, one block of the payload's size is made, and the bytes go
            # into it as they come.
            assert wait_for(lambda: reader._block is not None)
            block = reader._block
            assert block is not None
            assert len(block) == size
            assert dripped.wait(TIMEOUT)
            assert wait_for(lambda: reader.block_filled == len(drip))
            assert reader._block is block
            assert bytes(block[: len(drip)]) == drip
            assert len(connection._queue) == 0
            proceed.set()
            message = connection.recv(TIMEOUT)
            assert isinstance(message, bytes)
            assert len(message) == size
            assert message[: len(drip)] == drip
            during, after = server.join()
    # The client answered the ping before the frame, kept sending keepalive pings during it,
    # and answered the ping after it.
    assert (during[0].opcode, during[0].payload) == (0xA, b"before")
    assert sum(frame.opcode == 0x9 for frame in during) >= 2
    assert (after[-1].opcode, after[-1].payload) == (0xA, b"after")


def test_slow_drip_in_fragments() -> None:
    """R3: a message arrives one byte per fragment, with pings between the fragments."""
    count = 300

    def script(peer: RawPeer) -> tuple[list[bytes], list[bytes]]:
        peer.accept()
        peer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer.send(b"\x01\x01a")  # TEXT, not final
        during: list[bytes] = []
        for i in range(count):
            peer.send(b"\x00\x01a")  # CONT, not final
            if i % 10 == 0:
                peer.send(frame_bytes(0x9, b"%d" % i))
            time.sleep(0.001)
            during += [frame.payload for frame in peer.read_available() if frame.opcode == 0xA]
        peer.send(b"\x80\x00")  # CONT, final
        after: list[bytes] = []
        while len(during) + len(after) < count // 10:
            frame = peer.read_frame()
            assert frame is not None
            if frame.opcode == 0xA:
                after.append(frame.payload)
        return during, after

    with RawServer(script) as server:
        connection = client(server.uri, ping_interval=None)
        with aborting(connection):
            assert connection.recv(TIMEOUT) == "a" * (count + 1)
            during, after = server.join()
    assert during + after == [b"%d" % i for i in range(0, count, 10)]
    # Pongs went out while the message was still arriving.
    assert len(during) > 0


def test_queue_backpressure() -> None:
    """R4: the server sends much more than the client receives; nothing is lost."""
    count = 200
    size = 2**16
    sent: list[int] = []

    def handler(websocket: ServerConnection) -> None:
        with contextlib.suppress(WSConnectionClosed):
            for i in range(count):
                websocket.send(i.to_bytes(4, "big") * (size // 4))
                sent.append(i)
            # Wait until the client read everything and closed.
            for _ in websocket:
                pass

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    with ws_server(handler, sock=listener) as server:
        port = listener.getsockname()[1]
        sock = small_buffer_socket(port, rcvbuf=8192)
        with client(server.uri, sock=sock, ping_interval=None, max_queue=4) as connection:
            # The queue fills up and the reader pauses.
            assert wait_for(lambda: connection._queue.paused)
            assert connection._queue.pauses >= 1
            assert len(connection._queue) == 4
            # Then the server can't send anymore: count its messages until it stalls.
            stalled = False
            last = -1
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                before = len(sent)
                time.sleep(0.3)
                if len(sent) == before == last:
                    stalled = True
                    break
                last = len(sent)
            assert stalled
            assert len(sent) < count
            # Everything arrives, in order.
            for i in range(count):
                message = connection.recv(TIMEOUT)
                assert message == i.to_bytes(4, "big") * (size // 4), f"message {i}"
            # The server counts a message once send() returned, maybe after it arrived.
            assert wait_for(lambda: len(sent) == count)
            with pytest.raises(TimeoutError):
                connection.recv(0)


def test_concurrent_senders() -> None:
    """X2: many threads send on one connection; messages never interleave."""
    threads = 16
    messages = 200
    total = threads * messages
    received: list[Data] = []

    def expected(thread: int, seq: int) -> Data:
        kind = seq % 4
        if kind == 0:
            return f"{thread}:{seq}:text"
        if kind == 1:
            return f"{thread}:{seq}:binary".encode()
        if kind == 2:
            return f"{thread}:{seq}:fragments"
        return f"{thread}:{seq}:byte fragments".encode()

    with ws_server(echo) as server, client(server.uri, ping_interval=None) as connection:
        barrier = threading.Barrier(threads)

        def send_all(thread: int) -> None:
            barrier.wait(TIMEOUT)
            for seq in range(messages):
                kind = seq % 4
                if kind == 2:
                    connection.send([f"{thread}:", f"{seq}:", "fragments"])
                elif kind == 3:
                    connection.send([f"{thread}:".encode(), f"{seq}:".encode(), b"byte fragments"])
                else:
                    connection.send(expected(thread, seq))

        def receive_all() -> None:
            while len(received) < total:
                received.append(connection.recv(TIMEOUT))

        receiver = Background(receive_all)
        senders = [Background(functools.partial(send_all, i)) for i in range(threads)]
        for sender in senders:
            sender.join(TIMEOUT * 3)
        receiver.join(TIMEOUT * 3)
        assert connection.state is State.OPEN

    assert len(received) == total
    per_thread: dict[int, list[int]] = {i: [] for i in range(threads)}
    for message in received:
        text = message if isinstance(message, str) else message.decode()
        thread, seq, _ = text.split(":", 2)
        assert message == expected(int(thread), int(seq))
        per_thread[int(thread)].append(int(seq))
    for seqs in per_thread.values():
        assert seqs == list(range(messages))


def test_concurrent_receivers(connection: ClientConnection) -> None:
    """X2: a second thread calling recv() gets ConcurrencyError."""
    first = Background(lambda: connection.recv(TIMEOUT))
    assert wait_for(lambda: connection._queue._getting)
    with pytest.raises(ConcurrencyError):
        connection.recv(TIMEOUT)
    with pytest.raises(ConcurrencyError):
        next(connection.recv_streaming())
    connection.send("for the first")
    assert first.join() == "for the first"
    connection.send("then for anyone")
    assert connection.recv(TIMEOUT) == "then for anyone"


@pytest.mark.parametrize(
    ("stop", "error"), [("close", ConnectionClosedOK), ("abort", ConnectionClosedError)]
)
def test_stop_while_recv_blocked(
    connection: ClientConnection, stop: str, error: type[Exception]
) -> None:
    """X3: close() or abort() from another thread wakes a blocked recv()."""
    receiver = Background(lambda: connection.recv(TIMEOUT))
    assert wait_for(lambda: connection._queue._getting)
    start = time.monotonic()
    getattr(connection, stop)()
    with pytest.raises(error):
        receiver.join()
    assert receiver.ended - start < 2


@pytest.mark.parametrize("stop", ["close", "abort"])
def test_stop_while_send_blocked(stop: str) -> None:
    """X3: close() or abort() from another thread while send() waits for the socket."""
    with RawServer(accept_and_idle, rcvbuf=4096) as server:
        sock = small_buffer_socket(server.port)
        connection = client(
            server.uri, sock=sock, ping_interval=None, write_timeout=TIMEOUT, close_timeout=0.5
        )
        with aborting(connection):
            sender = Background(lambda: connection.send(b"b" * 4 * 2**20))
            assert wait_for(connection._writer._write_lock.locked)
            assert not sender.done.wait(0.1)  # blocked
            start = time.monotonic()
            if stop == "close":
                connection.close()
            else:
                connection.abort()
            with pytest.raises((ConnectionClosed, TimeoutError)):
                sender.join()
            assert sender.ended - start < 3
            assert time.monotonic() - start < 3
            connection.wait_closed(TIMEOUT)
            assert connection.close_code == 1006


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # F1: a frame that declares 2**63 - 1 bytes.
        (bytes.fromhex("827f7fffffffffffffff"), 1009),
        # F2: a 64-bit length with its most significant bit set.
        (bytes.fromhex("827f8000000000000000"), 1002),
        # G4: a flood of one-byte fragments, each costing FRAME_OVERHEAD against max_size.
        (bytes.fromhex("020161") + bytes.fromhex("000161") * 10000, 1009),
        # A frame just over max_size.
        (bytes.fromhex("827f") + (2**20 + 1).to_bytes(8, "big"), 1009),
        # A masked frame from a server.
        (bytes.fromhex("818100000000") + b"a", 1002),
        # A reserved opcode.
        (bytes.fromhex("8300"), 1002),
        # Reserved bits without an extension.
        (bytes.fromhex("c100"), 1002),
        # A control frame over 125 bytes.
        (bytes.fromhex("897e007e") + bytes(126), 1002),
        # Invalid UTF-8 in a text frame.
        (bytes.fromhex("8102c328"), 1007),
        # A continuation frame out of the blue.
        (bytes.fromhex("800161"), 1002),
    ],
    ids=["F1", "F2", "G4", "max_size", "masked", "opcode", "rsv", "control", "utf8", "cont"],
)
def test_hostile_frames(frames: bytes, code: int) -> None:
    """K4: the client fails the connection with the right code and goes on."""

    def script(peer: RawPeer) -> int:
        peer.accept()
        peer.send(frames)
        close, _ = peer.read_close()
        peer.sock.shutdown(socket.SHUT_WR)
        return close.close_code

    with RawServer(script) as server:
        connection = client(server.uri, ping_interval=None)
        with aborting(connection):
            with pytest.raises(ConnectionClosedError) as exc_info:
                connection.recv(TIMEOUT)
            assert exc_info.value.sent is not None
            assert exc_info.value.sent.code == code
            assert exc_info.value.rcvd is None
            assert server.join() == code
            connection.wait_closed(TIMEOUT)
            assert connection.close_code == 1006
            assert connection.protocol.reader.buffer == b""


def test_close_frame_from_server() -> None:
    def script(peer: RawPeer) -> int:
        peer.accept(frame_bytes(0x1, b"last words"))
        peer.send(frame_bytes(0x8, close_payload(1000, "done")))
        close, _ = peer.read_close()
        peer.sock.shutdown(socket.SHUT_WR)
        return close.close_code

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        assert connection.recv(TIMEOUT) == "last words"
        with pytest.raises(ConnectionClosedOK):
            connection.recv(TIMEOUT)
        assert server.join() == 1000
        connection.wait_closed(TIMEOUT)
        assert connection.close_code == 1000
        assert connection.close_reason == "done"


# Direct reading: the thread in recv() reads the socket itself while it keeps receiving.


def test_recv_reads_the_socket_itself_once_it_keeps_receiving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Long enough that a loaded machine never hands reading back during the test.
    monkeypatch.setattr(syncws.reading, "HAND_BACK_DELAY", 10.0)
    monkeypatch.setattr(syncws.reading, "RECV_HAND_BACK_DELAY", 10.0)
    with ws_server(echo) as server, client(server.uri, ping_interval=None) as connection:
        reads: list[str] = []
        original = syncws.reading.Reader.read

        def counting(reader: syncws.reading.Reader, deadline: float | None) -> None:
            if reader is connection._reading:
                reads.append(threading.current_thread().name)
            original(reader, deadline)

        monkeypatch.setattr(syncws.reading.Reader, "read", counting)
        for i in range(50):
            connection.send(f"message {i}")
            assert connection.recv(timeout=TIMEOUT) == f"message {i}"
        # Every reply was read by this thread, without a hand-off: no reader thread started.
        assert len(reads) >= 50
        assert set(reads) == {threading.current_thread().name}
        assert connection._reader is None


def test_recv_takes_a_message_queued_just_before_it_took_the_socket(
    monkeypatch: pytest.MonkeyPatch, connection: ClientConnection
) -> None:
    original = syncws.reading.Reader.claim
    injected: list[bool] = []

    def claim(reader: syncws.reading.Reader) -> bool:
        if reader is connection._reading and not injected:
            # The reader thread queued the last message and let go of the socket between
            # recv()'s look at the queue and its claim: nothing more comes on the socket.
            connection._queue.put(Frame(Opcode.TEXT, b"queued meanwhile"))
            injected.append(True)
        return original(reader)

    monkeypatch.setattr(syncws.reading.Reader, "claim", claim)
    assert connection.recv(timeout=2) == "queued meanwhile"
    assert injected
    # And the socket is read as usual afterwards.
    connection.send("next")
    assert connection.recv(timeout=TIMEOUT) == "next"


class WaitsWatched:
    """Wraps ``SocketTransport.wait_readable`` of one connection: counts the waits, and
    records how many bytes its receive buffer held when each began."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, connection: syncws.Connection) -> None:
        self.connection = connection
        self.buffer_sizes: list[int] = []
        self.waiting = threading.Event()
        original = syncws.transport.SocketTransport.wait_readable
        watched = connection.transport

        def wait_readable(
            transport: syncws.transport.SocketTransport, timeout: float | None = None
        ) -> bool:
            if transport is watched:
                self.buffer_sizes.append(len(connection.protocol.reader.data))
                self.waiting.set()
            return original(transport, timeout)

        monkeypatch.setattr(syncws.transport.SocketTransport, "wait_readable", wait_readable)


def test_an_idle_connection_waits_without_a_receive_buffer(
    monkeypatch: pytest.MonkeyPatch, connection: ClientConnection
) -> None:
    # Every read counts as coming after a long wait.
    monkeypatch.setattr(syncws.reading, "IDLE_READ_AFTER", 0.0)
    waits = WaitsWatched(monkeypatch, connection)
    connection.send("x" * 3000)
    assert connection.recv(TIMEOUT) == "x" * 3000
    assert len(connection.protocol.reader.data) >= 3000  # the buffer that message came in
    receiver = Background(lambda: connection.recv(TIMEOUT))
    assert waits.waiting.wait(TIMEOUT)
    assert wait_for(lambda: len(waits.buffer_sizes) >= 2)
    # It let go of the buffer of the message before before it waited for the next one.
    assert waits.buffer_sizes[-1] == 0
    assert len(connection.protocol.reader.data) == 0
    connection.send("next")
    assert receiver.join() == "next"


def test_a_connection_that_keeps_receiving_reads_at_once(
    monkeypatch: pytest.MonkeyPatch, connection: ClientConnection
) -> None:
    monkeypatch.setattr(syncws.reading, "IDLE_READ_AFTER", 3600.0)
    waits = WaitsWatched(monkeypatch, connection)
    for i in range(20):
        connection.send(f"message {i}")
        assert connection.recv(TIMEOUT) == f"message {i}"
    # Only the first read waited without a buffer: no read after it waited an hour.
    assert len(waits.buffer_sizes) == 1


def test_a_read_that_times_out_without_a_buffer_loses_nothing(
    monkeypatch: pytest.MonkeyPatch, connection: ClientConnection
) -> None:
    monkeypatch.setattr(syncws.reading, "IDLE_READ_AFTER", 0.0)
    waits = WaitsWatched(monkeypatch, connection)
    with pytest.raises(TimeoutError):
        connection.recv(0)
    with pytest.raises(TimeoutError):
        connection.recv(0.05)
    assert len(waits.buffer_sizes) == 2
    connection.send("after the timeouts")
    assert connection.recv(TIMEOUT) == "after the timeouts"


def test_the_reader_thread_of_an_idle_connection_waits_without_a_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(syncws.reading, "IDLE_READ_AFTER", 0.0)
    monkeypatch.setattr(syncws.reading, "HAND_BACK_DELAY", 0.01)
    opened: queue.Queue[syncws.ServerConnection] = queue.Queue()

    def handler(connection: syncws.ServerConnection) -> None:
        opened.put(connection)
        connection.wait_closed()  # never receives: the reader thread reads

    with syncws.testing.run_server(handler) as server, client(server.uri) as connection:
        server_connection = opened.get(timeout=TIMEOUT)
        waits = WaitsWatched(monkeypatch, server_connection)
        connection.send("x" * 3000)
        # The reader thread queues the message, then waits for the next one without a
        # buffer.
        assert wait_for(lambda: len(server_connection._queue) == 1)
        assert wait_for(lambda: len(waits.buffer_sizes) >= 1)
        assert waits.buffer_sizes[-1] == 0
        assert server_connection._reader is not None
        assert server_connection.recv(TIMEOUT) == "x" * 3000


def test_reader_takes_over_when_recv_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once recv() stopped, the reader thread answers pings again, so keepalive works."""
    # Short, but long enough that the round trips below never give reading back.
    monkeypatch.setattr(syncws.reading, "RECV_HAND_BACK_DELAY", 0.5)
    pongs: queue.Queue[float] = queue.Queue()

    def handler(websocket: ServerConnection) -> None:
        with contextlib.suppress(WSConnectionClosed):
            for message in websocket:
                websocket.send(message)
                if message == "ping me":
                    # The client does not call recv() anymore: its reader must answer.
                    pongs.put(websocket.ping().wait(TIMEOUT) is not None and time.monotonic())

    with ws_server(handler) as server, client(server.uri, ping_interval=None) as connection:
        for i in range(20):
            connection.send(str(i))
            connection.recv(timeout=TIMEOUT)
        # recv() read every reply itself: no reader thread yet.
        assert connection._reader is None
        connection.send("ping me")
        # No recv(): the reply stays queued, and the pong comes from a reader thread that
        # started for it.
        assert pongs.get(timeout=TIMEOUT)
        assert connection._reader is not None
        assert connection._reader.is_alive()
        assert connection.recv(timeout=TIMEOUT) == "ping me"


def test_recv_keeps_reading_across_pauses_longer_than_the_first_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread that receives in a loop keeps the socket through pauses of its own: reading is
    handed back after RECV_HAND_BACK_DELAY, not the short delay of a new connection."""
    # Long enough that a loaded machine never hands reading back during the test.
    monkeypatch.setattr(syncws.reading, "RECV_HAND_BACK_DELAY", 10.0)
    with ws_server(echo) as server, client(server.uri, ping_interval=None) as connection:
        for i in range(5):
            connection.send(f"message {i}")
            assert connection.recv(timeout=TIMEOUT) == f"message {i}"
            # Five times the delay after which a new connection gets a reader thread.
            time.sleep(5 * syncws.reading.HAND_BACK_DELAY)
        assert connection._reader is None


@pytest.mark.parametrize("keepalive", [False, True], ids=["ping", "keepalive"])
def test_pong_is_read_at_once_while_nobody_receives(
    monkeypatch: pytest.MonkeyPatch, keepalive: bool
) -> None:
    """A ping sent while recv() is not reading starts reading: the pong is not left unread
    until a hand-back check, which would inflate the latency or fail keepalive."""
    monkeypatch.setattr(syncws.reading, "HAND_BACK_DELAY", 10.0)
    monkeypatch.setattr(syncws.reading, "RECV_HAND_BACK_DELAY", 10.0)
    options: dict[str, Any] = {"ping_interval": None}
    if keepalive:
        options = {"ping_interval": 0.05, "ping_timeout": 2.0}
    with ws_server(echo) as server, client(server.uri, **options) as connection:
        connection.send("hello")
        assert connection.recv(timeout=TIMEOUT) == "hello"
        if keepalive:
            # Pongs unread for 2 s would fail the connection with 1011.
            deadline = time.monotonic() + TIMEOUT
            while connection.latency == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert connection.latency > 0
            time.sleep(2.5)
            assert connection.state is State.OPEN
        else:
            assert connection.ping().wait(TIMEOUT) < 5.0
        assert connection._reader is not None


def test_recv_timeout_while_reading_directly_loses_nothing() -> None:
    release = threading.Event()

    def handler(websocket: ServerConnection) -> None:
        with contextlib.suppress(WSConnectionClosed):
            for message in websocket:
                if message == "slow":
                    release.wait(TIMEOUT)
                websocket.send(message)

    with ws_server(handler) as server, client(server.uri, ping_interval=None) as connection:
        for i in range(10):
            connection.send(str(i))
            connection.recv(timeout=TIMEOUT)
        connection.send("slow")
        with pytest.raises(TimeoutError):
            connection.recv(timeout=0.1)
        with pytest.raises(TimeoutError):
            connection.recv(timeout=0)
        release.set()
        assert connection.recv(timeout=TIMEOUT) == "slow"


def test_keepalive_does_not_blame_peer_for_a_full_local_queue() -> None:
    """Keepalive skips or extends pings while our own reader is paused by a full queue."""
    count = 40

    def handler(websocket: ServerConnection) -> None:
        with contextlib.suppress(WSConnectionClosed):
            for i in range(count):
                websocket.send(i.to_bytes(4, "big") * 4096)
            for _ in websocket:
                pass

    with ws_server(handler) as server, client(
        server.uri, ping_interval=0.1, ping_timeout=0.2, max_queue=2
    ) as connection:
        assert wait_for(lambda: connection._queue.paused)
        # Several ping intervals and timeouts go by while nobody receives.
        time.sleep(1.0)
        assert connection.state is State.OPEN
        received = [connection.recv(timeout=TIMEOUT, decode=False) for _ in range(count)]
        assert [int.from_bytes(data[:4], "big") for data in received] == list(range(count))
        assert connection.state is State.OPEN
