"""send_many(): several whole messages in as few system calls as the socket allows."""

from __future__ import annotations

import threading
from typing import Literal

import pytest
from io_helpers import TIMEOUT
from websockets.sync.client import connect as ws_connect

from syncws.connection import Connection
from syncws.exceptions import ConnectionClosed
from syncws.server import ServerConnection
from syncws.testing import connected_pair, run_server
from syncws.transport import SocketTransport

pytestmark = pytest.mark.usefixtures("no_leaks")

COMPRESSIONS = [pytest.param("deflate", id="deflate"), pytest.param(None, id="plain")]


def receive(connection: Connection, count: int) -> list[str | bytes]:
    return [connection.recv(TIMEOUT) for _ in range(count)]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_messages_arrive_whole_and_in_order(compression: Literal["deflate"] | None) -> None:
    messages: list[str | bytes] = [
        f"text {i}" if i % 2 else bytes([i % 256]) * i for i in range(300)
    ]
    messages.append(b"x" * 100_000)
    with connected_pair(compression=compression, max_queue=None) as (client, server):
        client.send_many(messages)
        assert receive(server, len(messages)) == messages
        server.send_many(messages)
        assert receive(client, len(messages)) == messages


def test_bytes_like_messages_and_text_override() -> None:
    with connected_pair() as (client, server):
        client.send_many([bytearray(b"ab"), memoryview(b"cd"), "é"])
        assert receive(server, 3) == [b"ab", b"cd", "é"]
        client.send_many([b"\xc3\xa9", "plain"], text=True)
        assert receive(server, 2) == ["é", "plain"]
        client.send_many(["é"], text=False)
        assert receive(server, 1) == ["é".encode()]


def test_uncompressed_on_request() -> None:
    with connected_pair(compression="deflate") as (client, server):
        before = client.stats.bytes_sent
        client.send_many([b"a" * 1000] * 3, compress=False)
        assert receive(server, 3) == [b"a" * 1000] * 3
        # Three 1000-byte payloads sent as they are: more than their framing alone.
        assert client.stats.bytes_sent - before > 3000


def test_fewer_system_calls_than_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    with connected_pair(compression=None, max_queue=None) as (client, server):
        transport = client.transport
        assert isinstance(transport, SocketTransport)
        sock = transport.sock
        calls: list[int] = []

        class Counting:
            """The socket, counting the system calls that write."""

            def send(self, data: bytes, flags: int = 0) -> int:
                calls.append(1)
                return sock.send(data, flags)

            def sendmsg(self, buffers: list[bytes], ancdata: object, flags: int = 0) -> int:
                calls.append(len(buffers))
                return sock.sendmsg(buffers, [], flags)

        monkeypatch.setattr(transport, "sock", Counting())
        client.send_many([b"m"] * 200)
        monkeypatch.undo()
        assert receive(server, 200) == [b"m"] * 200
        # Up to 64 frames per system call; the socket's buffer takes 200 tiny ones at once.
        assert sum(calls) == 200
        assert len(calls) == 4


def test_no_message_of_another_thread_in_between() -> None:
    with connected_pair(compression=None, max_queue=None) as (client, server):
        batch = [f"batch {i}" for i in range(500)]
        started = threading.Barrier(2, timeout=TIMEOUT)

        def other() -> None:
            started.wait()
            for i in range(200):
                client.send(f"other {i}")

        thread = threading.Thread(target=other)
        thread.start()
        started.wait()
        client.send_many(batch)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        received = receive(server, 700)
        # The batch is one run: the other thread's messages come before or after it.
        first = received.index("batch 0")
        assert received[first : first + 500] == batch
        assert sorted(m for m in received if isinstance(m, str) and m.startswith("other")) == (
            sorted(f"other {i}" for i in range(200))
        )


def test_a_message_of_the_wrong_type_sends_nothing() -> None:
    with connected_pair() as (client, server):
        with pytest.raises(TypeError, match="each message must be str or bytes-like"):
            client.send_many([b"fine", 42])  # type: ignore[list-item]
        client.send("after")
        assert server.recv(TIMEOUT) == "after"


def test_empty_iterable_sends_nothing() -> None:
    with connected_pair() as (client, server):
        client.send_many([])
        client.send_many(iter(()))
        client.send("only")
        assert server.recv(TIMEOUT) == "only"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"timeout": "1"}, TypeError), ({"timeout": -1}, ValueError), ({"text": 1}, TypeError)],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with connected_pair() as (client, server):
        with pytest.raises(error):
            client.send_many(["x"], **kwargs)  # type: ignore[arg-type]
        client.send("after")
        assert server.recv(TIMEOUT) == "after"


def test_closed_connection() -> None:
    with connected_pair() as (client, _):
        client.close()
        with pytest.raises(ConnectionClosed):
            client.send_many(["late"])


def test_websockets_client_receives_a_batch() -> None:
    messages: list[str | bytes] = [f"m{i}" for i in range(100)] + [b"\x00" * 70_000]

    def handler(connection: ServerConnection) -> None:
        connection.recv(TIMEOUT)
        connection.send_many(messages)
        connection.recv(TIMEOUT)

    with run_server(handler) as server, ws_connect(server.uri, open_timeout=TIMEOUT) as peer:
        peer.send("go")
        assert [peer.recv(TIMEOUT) for _ in messages] == messages
        peer.send("done")
