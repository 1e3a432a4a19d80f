"""Deliver before failing, and what a failed or aborted connection reports.

When a valid message and a protocol error arrive together, the application receives the
message and its reply goes out before the Close (Autobahn|Testsuite cases 3.2-3.4,
4.1.3-4.1.5, 4.2.3-4.2.5 and 5.15 rate the opposite NON-STRICT); the Close goes out when the
application asks for the next message, or after a bounded grace if it does not.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from io_helpers import (
    TIMEOUT,
    Background,
    RawPeer,
    RawServer,
    aborting,
    client,
    frame_bytes,
    upgrade_request,
)

import syncws.connection
from syncws.exceptions import ConnectionClosed, ConnectionClosedError
from syncws.server import ServerConnection
from syncws.testing import run_server

pytestmark = pytest.mark.usefixtures("no_leaks")

# A valid text message, then an error, for each family of cases.
ERRORS = {
    # Autobahn 3.2-3.4: a reserved bit set without an extension.
    "rsv": (bytes.fromhex("c1 05") + b"world", 1002),
    # Autobahn 4.1.3-4.1.5: a reserved data opcode.
    "opcode": (bytes.fromhex("83 00"), 1002),
    # Autobahn 4.2.3-4.2.5: a reserved control opcode.
    "control": (bytes.fromhex("8b 00"), 1002),
    # Autobahn 5.15: a continuation with no message to continue.
    "continuation": (bytes.fromhex("80 02") + b"xx", 1002),
    # Autobahn 6.x: invalid UTF-8.
    "utf8": (bytes.fromhex("81 02") + b"\xc0\xaf", 1007),
}


def masked(unmasked: bytes) -> bytes:
    """Mask a frame serialized without a mask (header of 2 bytes, payload under 126)."""
    return frame_bytes(unmasked[0] & 0x0F, unmasked[2:], fin=bool(unmasked[0] & 0x80), mask=True)


def close_code_after(frames: bytes) -> Callable[[RawPeer], int]:
    """A raw server's script: accept with ``frames``, return the code of the Close it gets."""

    def script(peer: RawPeer) -> int:
        peer.accept(frames)
        close, _ = peer.read_close()
        peer.sock.shutdown(socket.SHUT_WR)
        return close.close_code

    return script


def echo_then_wait(websocket: ServerConnection) -> None:
    # The echo goes out, then the next recv() fails the connection.
    for message in websocket:
        websocket.send(message)


@pytest.mark.parametrize("name", list(ERRORS))
def test_server_answers_the_message_before_the_error(name: str) -> None:
    error, code = ERRORS[name]
    if error[0] & 0x70:
        # A reserved bit: keep it set, since masked() rebuilds the first byte.
        error_frame = bytes([error[0], 0x80 | len(error) - 2]) + b"\0\0\0\0" + error[2:]
    else:
        error_frame = masked(error)
    with (
        run_server(echo_then_wait, compression=None) as running,
        RawPeer.connect(running.port) as peer,
    ):
        peer.send(upgrade_request() + frame_bytes(0x1, b"Hello", mask=True) + error_frame)
        assert peer.read_response().status == 101
        close, before = peer.read_close()
        assert [(frame.opcode, frame.payload) for frame in before] == [(0x1, b"Hello")]
        assert close.close_code == code


@pytest.mark.parametrize("name", list(ERRORS))
@pytest.mark.parametrize("with_101", [True, False], ids=["with the 101", "after it"])
def test_client_answers_the_message_before_the_error(name: str, with_101: bool) -> None:
    error, code = ERRORS[name]
    frames = frame_bytes(0x1, b"Hello") + error

    def script(peer: RawPeer) -> tuple[list[tuple[int, bytes]], int]:
        if with_101:
            peer.accept(frames)
        else:
            peer.accept()
            peer.send(frames)
        close, before = peer.read_close()
        peer.sock.shutdown(socket.SHUT_WR)
        return [(frame.opcode, frame.payload) for frame in before], close.close_code

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        assert connection.recv(TIMEOUT) == "Hello"
        connection.send("Hello back")
        with pytest.raises(ConnectionClosedError) as exc_info:
            connection.recv(TIMEOUT)
        assert exc_info.value.sent is not None
        assert exc_info.value.sent.code == code
        assert server.join() == ([(0x1, b"Hello back")], code)


def test_the_close_goes_out_after_a_grace_if_nobody_receives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(syncws.connection, "FAILURE_GRACE", 0.2)
    script = close_code_after(frame_bytes(0x1, b"Hello") + ERRORS["opcode"][0])
    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        # Nobody receives: the peer cannot keep the connection open by sending garbage.
        assert server.join() == 1002
        assert connection.recv(TIMEOUT) == "Hello"
        with pytest.raises(ConnectionClosedError):
            connection.recv(TIMEOUT)


def test_close_after_the_message_sends_the_error_code() -> None:
    script = close_code_after(frame_bytes(0x1, b"Hello") + ERRORS["rsv"][0])
    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        assert connection.recv(TIMEOUT) == "Hello"
        connection.close()
        assert server.join() == 1002


def test_send_on_a_failed_connection_raises_at_once() -> None:
    """The peer never answers the Close: send() must not wait for the close timeout."""

    def script(peer: RawPeer) -> None:
        peer.accept(ERRORS["opcode"][0])
        peer.read_close()
        peer.idle()

    with (
        RawServer(script) as server,
        aborting(client(server.uri, close_timeout=3 * TIMEOUT)) as connection,
    ):
        # The next recv() fails the connection and says so at once.
        with pytest.raises(ConnectionClosedError):
            connection.recv(TIMEOUT)
        sending = Background(lambda: connection.send("too late"))
        with pytest.raises(ConnectionClosed):
            sending.join(TIMEOUT)


def test_close_code_is_1006_at_once_after_an_abort() -> None:
    def script(peer: RawPeer) -> None:
        peer.accept()
        peer.idle()

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        assert connection.close_code is None
        connection.abort()
        # Not only once the teardown has run: at once.
        assert connection.close_code == 1006
        assert connection.close_reason == ""
        with pytest.raises(ConnectionClosedError) as exc_info:
            connection.send("after the abort")
        assert exc_info.value.code == 1006


def test_close_code_is_1006_after_a_write_timeout() -> None:
    def script(peer: RawPeer) -> None:
        peer.accept()
        peer.idle()  # never reads: the client's writes stop making progress

    with (
        RawServer(script, rcvbuf=4096) as server,
        aborting(client(server.uri, write_timeout=0.2, ping_interval=None)) as connection,
    ):
        connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

        def send_until_stuck() -> None:
            for _ in range(10_000):
                connection.send(b"x" * 65536)

        with pytest.raises(TimeoutError):
            send_until_stuck()
        assert connection.close_code == 1006


# An error inside a fragmented message: the fragments before it never make a message, so the
# Close goes out at once, not after the grace (Autobahn 5.18, 6.3.2, 6.4.x).
INSIDE_A_MESSAGE = {
    # 5.18: a text frame where a continuation was expected.
    "5.18": (bytes.fromhex("01 04") + b"frag", bytes.fromhex("81 04") + b"more", 1002),
    # 6.4.x: invalid UTF-8 in a continuation.
    "6.4": (bytes.fromhex("01 02") + b"ok", bytes.fromhex("00 02") + b"\xf4\x90", 1007),
}


@pytest.mark.parametrize("name", list(INSIDE_A_MESSAGE))
def test_server_fails_at_once_inside_a_message(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syncws.connection, "FAILURE_GRACE", 3 * TIMEOUT)
    first, second, code = INSIDE_A_MESSAGE[name]
    with (
        run_server(echo_then_wait, compression=None) as running,
        RawPeer.connect(running.port) as peer,
    ):
        peer.handshake()
        peer.send(masked(first))
        peer.send(masked(second))
        close, before = peer.read_close(TIMEOUT)
        assert before == []
        assert close.close_code == code


@pytest.mark.parametrize("name", list(INSIDE_A_MESSAGE))
def test_client_fails_at_once_inside_a_message(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syncws.connection, "FAILURE_GRACE", 3 * TIMEOUT)
    first, second, code = INSIDE_A_MESSAGE[name]

    def script(peer: RawPeer) -> int:
        peer.accept(first)
        peer.send(second)
        close, _ = peer.read_close(TIMEOUT)
        peer.sock.shutdown(socket.SHUT_WR)
        return close.close_code

    with RawServer(script) as server, aborting(client(server.uri)) as connection:
        with pytest.raises(ConnectionClosedError) as exc_info:
            connection.recv(TIMEOUT)
        assert exc_info.value.sent is not None
        assert exc_info.value.sent.code == code
        assert server.join() == code
