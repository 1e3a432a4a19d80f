"""Connection.stats and Server.stats, counted with real peers on loopback."""

from __future__ import annotations

import dataclasses
import errno
import socket
import threading
from typing import Any

import pytest
from io_helpers import TIMEOUT, RawPeer, client, running, wait_for

from syncws.connection import broadcast
from syncws.core.http11 import Request, Response
from syncws.exceptions import InvalidStatus
from syncws.server import ServerConnection, serve
from syncws.stats import ClosedTraffic, ConnectionStats, ServerStats, total

pytestmark = pytest.mark.usefixtures("no_leaks")


def echo(connection: ServerConnection) -> None:
    for message in connection:
        connection.send(message)


def uri(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}/"


# Connection.stats


def test_stats_count_bytes_frames_messages_and_pings_on_both_sides() -> None:
    """Frames only: the opening handshake is not counted. A client frame of a 5-byte text is
    11 bytes (2 header, 4 mask key), its echo 7; a ping of 4 bytes is 10 bytes, its pong 6."""
    done = threading.Event()
    server_stats: list[ConnectionStats] = []

    def handler(connection: ServerConnection) -> None:
        echo(connection)
        server_stats.append(connection.stats)
        done.set()

    with (
        running(serve(handler, "127.0.0.1", 0, compression=None)) as server,
        client(uri(server)) as connection,
    ):
        assert connection.stats == ConnectionStats()
        for _ in range(3):
            connection.send("hello")
            assert connection.recv(TIMEOUT) == "hello"
        connection.send(["ab", "cd", "e"])  # one message in three frames
        assert connection.recv(TIMEOUT) == "abcde"
        latency = connection.ping(b"ping").wait(TIMEOUT)
        stats = connection.stats
    assert done.wait(TIMEOUT)
    assert stats.messages_sent == 4
    assert stats.frames_sent == 3 + 4 + 1  # texts, fragments with the empty last one, ping
    assert stats.bytes_sent == 3 * 11 + (8 + 8 + 7 + 6) + 10
    assert stats.messages_received == 4
    assert stats.frames_received == 4 + 1  # echoes, pong
    assert stats.bytes_received == 4 * 7 + 6
    assert (stats.pings_sent, stats.pongs_received) == (1, 1)
    assert stats.latency == latency > 0
    assert (stats.queue_depth, stats.queue_high_water, stats.write_backlog) == (0, 1, 0)
    assert (stats.paused_seconds, stats.broadcast_skipped) == (0.0, 0)
    # The server saw the same traffic from the other side, and the client's Close (8 bytes).
    (final,) = server_stats
    assert final.bytes_received == stats.bytes_sent + 8
    assert final.frames_received == stats.frames_sent + 1
    assert final.messages_received == stats.messages_sent
    assert final.bytes_sent == stats.bytes_received + 4  # its echo of the Close
    assert (final.pings_sent, final.pongs_received) == (0, 0)


def test_stats_are_a_frozen_snapshot() -> None:
    with (
        running(serve(echo, "127.0.0.1", 0, compression=None)) as server,
        client(uri(server)) as connection,
    ):
        before = connection.stats
        connection.send("x")
        assert connection.recv(TIMEOUT) == "x"
        assert before.messages_sent == 0
        assert connection.stats.messages_sent == 1
        with pytest.raises(dataclasses.FrozenInstanceError):
            before.messages_sent = 1  # type: ignore[misc]


def test_stats_show_the_queue_high_water_mark_and_the_time_paused_on_a_full_queue() -> None:
    """With max_queue=2 and nobody receiving, the reader pauses after 2 messages."""
    proceed = threading.Event()
    connections: list[ServerConnection] = []

    def handler(connection: ServerConnection) -> None:
        connections.append(connection)
        proceed.wait(TIMEOUT)
        for _ in range(5):
            connection.recv(TIMEOUT)

    with (
        running(serve(handler, "127.0.0.1", 0, compression=None, max_queue=2)) as server,
        client(uri(server)) as connection,
    ):
        for index in range(5):
            connection.send(str(index))
        assert wait_for(lambda: bool(connections) and connections[0]._queue.paused)
        paused = connections[0].stats
        assert (paused.queue_depth, paused.queue_high_water) == (2, 2)
        assert paused.paused_seconds > 0  # the pause in progress counts
        proceed.set()
        assert wait_for(lambda: connections[0].stats.messages_received == 5)
        after = connections[0].stats
        assert after.queue_high_water == 2
        assert after.paused_seconds >= paused.paused_seconds


def test_stats_count_the_messages_broadcast_skipped() -> None:
    connections: list[ServerConnection] = []
    done = threading.Event()

    def handler(connection: ServerConnection) -> None:
        connections.append(connection)
        done.wait(TIMEOUT)

    with (
        running(serve(handler, "127.0.0.1", 0, compression=None)) as server,
        client(uri(server)) as connection,
    ):
        assert wait_for(lambda: bool(connections))
        (server_side,) = connections
        assert broadcast([server_side], "one") == []
        assert connection.recv(TIMEOUT) == "one"
        # A fragmented message is being sent: broadcast skips the connection.
        with server_side._protocol_lock:
            server_side.protocol.send_text(b"a", fin=False)
        assert broadcast([server_side], "two") == [server_side]
        stats = server_side.stats
        assert (stats.broadcast_skipped, stats.messages_sent) == (1, 1)
        assert stats.frames_sent == 2
        done.set()


def test_stats_show_the_write_backlog_of_a_peer_that_does_not_read() -> None:
    connections: list[ServerConnection] = []
    done = threading.Event()

    def handler(connection: ServerConnection) -> None:
        connections.append(connection)
        done.wait(TIMEOUT)
        connection.abort()

    config: dict[str, Any] = {"compression": None, "write_limit": 2**30}
    with (
        running(serve(handler, "127.0.0.1", 0, **config)) as server,
        RawPeer.connect(server.port, rcvbuf=4096) as peer,
    ):
        peer.handshake()  # then it reads nothing
        assert wait_for(lambda: bool(connections))
        (server_side,) = connections
        chunk = b"x" * 2**20
        # The kernel's buffers take a few MiB; broadcast queues the rest without waiting.
        for _ in range(64):
            broadcast([server_side], chunk)
            if server_side.stats.write_backlog:
                break
        stats = server_side.stats
        assert stats.write_backlog > 0
        assert stats.messages_sent == stats.frames_sent
        assert stats.bytes_sent + stats.write_backlog == stats.messages_sent * (2**20 + 10)
        done.set()
        peer.close()


def test_total_sums_counters_and_keeps_the_largest_latency_and_high_water_mark() -> None:
    one = ConnectionStats(bytes_sent=3, messages_sent=1, latency=0.5, queue_high_water=4)
    two = ConnectionStats(bytes_sent=4, messages_sent=2, latency=0.25, queue_high_water=7)
    assert total([one, two]) == ConnectionStats(
        bytes_sent=7, messages_sent=3, latency=0.5, queue_high_water=7
    )
    assert total([]) == ConnectionStats()


# Server.stats


def test_closed_traffic_sums_every_counter_and_drops_the_gauges() -> None:
    """What a server keeps of the connections that ended: every counter summed, the
    largest high-water mark, and no queue, backlog or latency (they went with them)."""
    counters = [
        field.name
        for field in dataclasses.fields(ConnectionStats)
        if field.name not in ("latency", "queue_depth", "write_backlog", "queue_high_water")
    ]
    one = ConnectionStats(
        **{name: number for number, name in enumerate(counters, 1)},
        latency=0.5,
        queue_depth=3,
        write_backlog=100,
        queue_high_water=9,
    )
    two = ConnectionStats(
        **{name: 10 * number for number, name in enumerate(counters, 1)},
        queue_high_water=4,
    )
    closed = ClosedTraffic()
    assert closed.snapshot() == ConnectionStats()
    closed.add(one)
    closed.add(two)
    assert closed.snapshot() == ConnectionStats(
        **{name: 11 * number for number, name in enumerate(counters, 1)}, queue_high_water=9
    )


def test_server_stats_count_handshakes_closes_workers_and_traffic() -> None:
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/private":
            return connection.respond(403, "Forbidden\n")
        return None

    server_config: dict[str, Any] = {"compression": None, "process_request": process_request}
    with running(serve(echo, "127.0.0.1", 0, **server_config)) as server:
        assert server.stats == ServerStats()
        with client(uri(server)) as first:
            first.send("hello")
            assert first.recv(TIMEOUT) == "hello"
            stats = server.stats
            assert (stats.connections_open, stats.handshakes_accepted) == (1, 1)
            assert (stats.workers_busy, stats.workers_idle) == (1, 0)
            assert stats.traffic.messages_received == stats.traffic.messages_sent == 1
            with pytest.raises(InvalidStatus):
                client(uri(server) + "private")
            with pytest.raises(InvalidStatus):
                client(uri(server) + "private")
        second = client(uri(server))
        second.close(4000, "bye")
        assert wait_for(lambda: server.stats.workers_busy == 0)
        stats = server.stats
    assert stats.connections_open == 0
    assert stats.handshakes_accepted == 2
    assert dict(stats.handshakes_rejected) == {403: 2}
    assert dict(stats.closes) == {1000: 1, 4000: 1}
    assert stats.workers_idle >= 1
    assert stats.refused_busy == stats.accept_errors == 0
    # Once the server is shut down, its workers are gone: none busy, none idle.
    after = server.stats
    assert (after.workers_busy, after.workers_idle) == (0, 0)
    # Each closed connection added its traffic: one message each way, and the Closes.
    assert stats.traffic.messages_received == stats.traffic.messages_sent == 1
    assert stats.traffic.frames_received == 1 + 2
    assert stats.traffic.bytes_received == 11 + 8 + (6 + 5)  # "hello", 1000, 4000 "bye"


def test_server_stats_count_503_when_every_worker_is_busy() -> None:
    with (
        running(serve(echo, "127.0.0.1", 0, compression=None, max_connections=1)) as server,
        client(uri(server)) as first,
    ):
        first.send("x")
        assert first.recv(TIMEOUT) == "x"
        with pytest.raises(InvalidStatus) as raised:
            client(uri(server))
        assert raised.value.response.status_code == 503
        assert server.stats.refused_busy == 1


def test_server_stats_count_accept_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with running(serve(echo, "127.0.0.1", 0, compression=None)) as server:
        accept = socket.socket.accept
        errors = [OSError(errno.EMFILE, "Too many open files")]

        def failing_accept(sock: socket.socket) -> tuple[socket.socket, Any]:
            if sock is server.socket and errors:
                raise errors.pop()
            return accept(sock)

        monkeypatch.setattr(socket.socket, "accept", failing_accept)
        with client(uri(server)) as connection:  # served once accepting resumes
            connection.send("x")
            assert connection.recv(TIMEOUT) == "x"
        assert server.stats.accept_errors == 1
