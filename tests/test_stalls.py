"""No read waits on a timer while bytes are buffered or the socket is readable.

A message in thousands of small fragments, written in every arrangement next to the opening
handshake, arrives whole within the helpers' timeout on both sides; a consumer with a small
queue never waits for the reader thread's hand-back delay. Before the reading part was rebuilt,
the client read such a message once every hand-back delay (250 ms): the Autobahn|Testsuite's
cases 9.3.3 and 9.4.3 (4 MiB in 1 KiB fragments) took 32.6 s there.
"""

from __future__ import annotations

import socket
import time

import pytest
from io_helpers import (
    TIMEOUT,
    RawPeer,
    RawServer,
    aborting,
    client,
    frame_bytes,
    upgrade_request,
)

from syncws.server import ServerConnection
from syncws.testing import run_server

pytestmark = pytest.mark.usefixtures("no_leaks")

FRAGMENTS = 4097
FRAGMENT = b"x" * 1024
MESSAGE_SIZE = FRAGMENTS * len(FRAGMENT)
MAX_SIZE = 2**23


def fragments(*, mask: bool) -> list[bytes]:
    """The frames of one binary message of :data:`FRAGMENTS` fragments of 1 KiB."""
    frames = [frame_bytes(0x2, FRAGMENT, fin=False, mask=mask)]
    middle = frame_bytes(0x0, FRAGMENT, fin=False, mask=mask)
    frames.extend(middle for _ in range(FRAGMENTS - 2))
    frames.append(frame_bytes(0x0, FRAGMENT, fin=True, mask=mask))
    return frames


# Autobahn 9.3.x / 9.4.x: fragmented messages, on the client side.
ARRANGEMENTS = ["in the 101's write", "one write per frame", "one write after the 101"]


@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_client_reads_a_message_of_many_fragments_at_once(arrangement: str) -> None:
    frames = fragments(mask=False)

    def script(peer: RawPeer) -> int:
        if arrangement == ARRANGEMENTS[0]:
            peer.accept(b"".join(frames))
        elif arrangement == ARRANGEMENTS[1]:
            peer.accept(frames[0])
            for frame in frames[1:]:
                peer.send(frame)
        else:
            peer.accept()
            peer.send(b"".join(frames))
        close, _ = peer.read_close()
        peer.sock.shutdown(socket.SHUT_WR)
        return close.close_code

    with RawServer(script) as server:
        connection = client(server.uri, ping_interval=None, max_size=MAX_SIZE)
        with aborting(connection):
            # The timeout is the test: a read every 250 ms would take 16 s and more.
            message = connection.recv(timeout=TIMEOUT)
            assert message == FRAGMENT * FRAGMENTS
            connection.close()
            assert server.join() == 1000


@pytest.mark.parametrize("together", [True, False], ids=["with the request", "after it"])
def test_server_reads_a_message_of_many_fragments_at_once(together: bool) -> None:
    frames = fragments(mask=True)

    def handler(websocket: ServerConnection) -> None:
        websocket.send(str(len(websocket.recv(timeout=TIMEOUT))))

    with (
        run_server(handler, max_size=MAX_SIZE, ping_interval=None) as running,
        RawPeer.connect(running.port) as peer,
    ):
        if together:
            peer.send(upgrade_request() + b"".join(frames))
            assert peer.read_response().status == 101
        else:
            peer.handshake()
            peer.send(b"".join(frames))
        frame = peer.read_frame(TIMEOUT)
        assert frame is not None
        assert frame.payload == str(MESSAGE_SIZE).encode()


def test_small_queue_never_waits_for_the_hand_back_delay() -> None:
    """The reader thread fills a small queue and hands messages over while the consumer
    waits for the next one, whose frames span reads: each wait took 250 ms more."""
    count = 150
    frames = [
        frame
        for i in range(count)
        for frame in (
            frame_bytes(0x2, i.to_bytes(2, "big") + FRAGMENT, fin=False),
            frame_bytes(0x0, FRAGMENT * 20, fin=True),
        )
    ]

    def script(peer: RawPeer) -> int:
        peer.accept()
        for frame in frames:
            peer.send(frame)
        close, _ = peer.read_close()
        peer.sock.shutdown(socket.SHUT_WR)
        return close.close_code

    with RawServer(script) as server:
        connection = client(server.uri, ping_interval=None, max_queue=1)
        with aborting(connection):
            # Nobody receives at first: the reader thread takes over and fills the queue.
            time.sleep(0.1)
            deadline = time.monotonic() + TIMEOUT
            for i in range(count):
                # The deadline is the test: waiting 250 ms for some of them took 17 s.
                message = connection.recv(timeout=max(0.0, deadline - time.monotonic()))
                assert isinstance(message, bytes)
                assert message[:2] == i.to_bytes(2, "big")
            connection.close()
            assert server.join() == 1000
