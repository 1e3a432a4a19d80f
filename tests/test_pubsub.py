"""Tests of the Redis fan-out, against a real redis-server on the loopback interface: local
delivery, subscriptions, Redis restarts, and messages that reach the clients of several server
processes (the example in examples/redis_scaleout, run as subprocesses)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis
from conftest import require_executable
from io_helpers import TIMEOUT, terminate, wait_for

import syncws
from syncws.pubsub import PubSub
from syncws.testing import assert_receives, connected_pair, receive_all, run_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "redis_scaleout" / "server.py"


pytestmark = pytest.mark.usefixtures("no_leaks")


# A real Redis server.


class RedisServer:
    """A redis-server on 127.0.0.1, that a test can stop and start again on the same port."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    *(self.executable, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            assert wait_for(self._answers(client), TIMEOUT, 0.05), "redis-server did not start"
        finally:
            client.close()

    def _answers(self, client: redis.Redis) -> Callable[[], bool]:
        def ping() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, "redis-server exited"
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        return ping

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        terminate(process)

    def subscribers(self, channel: str) -> int:
        """How many connections are subscribed to ``channel``, in every process."""
        with contextlib.closing(redis.Redis(port=self.port, socket_timeout=TIMEOUT)) as client:
            return int(client.pubsub_numsub(channel)[0][1])

    def wait_subscribers(self, channel: str, count: int) -> None:
        assert wait_for(lambda: self.subscribers(channel) == count, TIMEOUT, 0.02), (
            f"{self.subscribers(channel)} subscribers of {channel!r}, expected {count}"
        )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_executable("redis-server"), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pubsub(redis_server: RedisServer) -> Iterator[PubSub]:
    with PubSub(redis_server.url) as pubsub:
        yield pubsub


def pubsub_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "syncws-pubsub"]


# In one process.


def test_publish_reaches_local_subscribers(redis_server: RedisServer, pubsub: PubSub) -> None:
    def handler(websocket: syncws.ServerConnection) -> None:
        pubsub.subscribe(websocket, "news")
        websocket.recv(TIMEOUT)

    with (
        run_server(handler) as running,
        syncws.connect(running.uri) as first,
        syncws.connect(running.uri) as second,
    ):
        # One Redis subscription for the process, however many local subscribers.
        redis_server.wait_subscribers("news", 1)
        assert wait_for(lambda: len(pubsub.subscribers("news")) == 2)
        assert pubsub.publish("news", "hello") == 1
        assert pubsub.publish("news", b"bytes are sent as text") == 1
        for websocket in (first, second):
            assert receive_all(websocket, 2) == ["hello", "bytes are sent as text"]


def test_binary_mode(redis_server: RedisServer) -> None:
    with PubSub(redis_server.url, binary=True) as pubsub, connected_pair() as (client, server):
        pubsub.subscribe(server, "raw")
        redis_server.wait_subscribers("raw", 1)
        pubsub.publish("raw", b"\xff\x00")
        pubsub.publish("raw", "text")
        assert receive_all(client, 2) == [b"\xff\x00", b"text"]


def test_invalid_utf8_is_dropped(
    redis_server: RedisServer, pubsub: PubSub, caplog: pytest.LogCaptureFixture
) -> None:
    with connected_pair() as (client, server):
        pubsub.subscribe(server, "text")
        redis_server.wait_subscribers("text", 1)
        pubsub.publish("text", b"\xff")
        pubsub.publish("text", "valid")
        assert_receives(client, "valid")
    assert "dropped a message on 'text': not valid UTF-8" in caplog.text


def test_channels_are_separate(redis_server: RedisServer, pubsub: PubSub) -> None:
    with connected_pair() as (client_a, server_a), connected_pair() as (client_b, server_b):
        pubsub.subscribe(server_a, "a")
        pubsub.subscribe(server_b, "b", "both")
        pubsub.subscribe(server_a, "both")
        for channel in ("a", "b", "both"):
            redis_server.wait_subscribers(channel, 1)
        for channel in ("a", "b", "both"):
            pubsub.publish(channel, f"to {channel}")
        assert receive_all(client_a, 2) == ["to a", "to both"]
        assert receive_all(client_b, 2) == ["to b", "to both"]


def test_publishing_alone_starts_no_thread(redis_server: RedisServer) -> None:
    with PubSub(redis_server.url) as publisher:
        assert publisher.publish("nobody", "listens") == 0
        assert pubsub_threads() == []


def test_unsubscribe(redis_server: RedisServer, pubsub: PubSub) -> None:
    with connected_pair() as (client_1, server_1), connected_pair() as (client_2, server_2):
        pubsub.subscribe(server_1, "room")
        pubsub.subscribe(server_2, "room")
        redis_server.wait_subscribers("room", 1)
        pubsub.unsubscribe(server_1, "room")
        assert pubsub.subscribers("room") == {server_2}
        pubsub.publish("room", "first")
        pubsub.publish("room", "second")
        # Once the second message reached the connection still subscribed, the first one
        # went to every subscriber it was going to: the other one got nothing.
        assert receive_all(client_2, 2) == ["first", "second"]
        server_1.send("marker")
        assert_receives(client_1, "marker")
        # Without local subscribers, the process leaves the Redis channel.
        pubsub.unsubscribe(server_2)
        redis_server.wait_subscribers("room", 0)


def test_closed_connections_are_removed(redis_server: RedisServer, pubsub: PubSub) -> None:
    with connected_pair() as (_, server):
        pubsub.subscribe(server, "room")
        redis_server.wait_subscribers("room", 1)
    assert pubsub.subscribers("room") == {server}
    pubsub.publish("room", "anybody?")
    assert wait_for(lambda: not pubsub.subscribers("room"))
    redis_server.wait_subscribers("room", 0)


def test_subscribe_after_close_fails(redis_server: RedisServer) -> None:
    pubsub = PubSub(redis_server.url)
    pubsub.close()
    with connected_pair() as (_, server), pytest.raises(RuntimeError, match="closed"):
        pubsub.subscribe(server, "room")


# Redis restarts.


def test_redis_restart(
    redis_server: RedisServer, pubsub: PubSub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncws.pubsub")
    with connected_pair() as (client, server):
        pubsub.subscribe(server, "room")
        redis_server.wait_subscribers("room", 1)
        pubsub.publish("room", "before")
        assert_receives(client, "before")

        redis_server.stop()
        assert wait_for(lambda: "lost the connection to Redis" in caplog.text, TIMEOUT)
        redis_server.start()
        redis_server.wait_subscribers("room", 1)
        pubsub.publish("room", "after")
        assert_receives(client, "after")

    levels = {record.getMessage().split(":")[0]: record.levelno for record in caplog.records}
    assert levels["lost the connection to Redis"] == logging.WARNING
    assert levels["reconnected to Redis"] == logging.INFO
    assert len(pubsub_threads()) == 1
    pubsub.close()
    assert pubsub_threads() == []


def test_close_while_redis_is_down(redis_server: RedisServer) -> None:
    pubsub = PubSub(redis_server.url)
    try:
        with connected_pair() as (_, server):
            pubsub.subscribe(server, "room")
            redis_server.wait_subscribers("room", 1)
            redis_server.stop()
            # The listener is between attempts to reconnect: close() wakes it.
            pubsub.close(timeout=TIMEOUT)
            assert pubsub_threads() == []
    finally:
        pubsub.close()


# Several processes.


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("redis_scaleout_server", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def example_process(redis_url: str, log: Path) -> Iterator[str]:
    """Run the example server in a subprocess; yield its URI."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", "0", "--redis", redis_url],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        assert ready, f"the example server did not start: {log.read_text()}"
        line = process.stdout.readline().decode()
        assert line.startswith("listening on "), f"{line!r} {log.read_text()}"
        yield line.removeprefix("listening on ").strip()
    finally:
        process.terminate()
        try:
            assert process.wait(TIMEOUT) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(TIMEOUT)
            if process.stdout is not None:
                process.stdout.close()


@contextlib.contextmanager
def three_servers(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[str]]:
    """Two example processes and the same app in this process; yield their URIs."""
    example = load_example()
    with (
        example_process(redis_server.url, tmp_path / "first.log") as first,
        example_process(redis_server.url, tmp_path / "second.log") as second,
        PubSub(redis_server.url) as pubsub,
    ):
        app = example.App(pubsub)
        with run_server(app.handler, process_request=app.check_path) as local:
            yield [first, second, local.uri]


def test_chat_reaches_clients_of_every_process(redis_server: RedisServer, tmp_path: Path) -> None:
    with three_servers(redis_server, tmp_path) as uris, contextlib.ExitStack() as stack:
        clients = [stack.enter_context(syncws.connect(f"{uri}chat")) for uri in uris]
        redis_server.wait_subscribers("chat", 3)
        clients[0].send("from the first process")
        clients[2].send("from this process")
        # Each one is delivered once to every client; they may come in either order.
        for client in clients:
            assert sorted(receive_all(client, 2, timeout=TIMEOUT)) == [
                "from the first process",
                "from this process",
            ]
        # A process without a WebSocket server publishes too.
        with PubSub(redis_server.url) as publisher:
            assert publisher.publish("chat", "from a worker") == 3
        for client in clients:
            assert_receives(client, "from a worker", timeout=TIMEOUT)


def counter_values(websocket: syncws.ClientConnection, count: int) -> list[int]:
    """Receive ``count`` value events from the counter, skipping user counts."""
    values: list[int] = []
    for _ in range(100):
        if len(values) == count:
            break
        event = json.loads(websocket.recv(TIMEOUT))
        if event["type"] == "value":
            values.append(event["value"])
    return values


def test_counter_is_shared_by_every_process(redis_server: RedisServer, tmp_path: Path) -> None:
    with three_servers(redis_server, tmp_path) as uris, contextlib.ExitStack() as stack:
        clients = [stack.enter_context(syncws.connect(f"{uri}counter")) for uri in uris]
        # Each client gets the value when it connects.
        for client in clients:
            assert counter_values(client, 1) == [0]
        redis_server.wait_subscribers("counter", 3)
        clients[0].send(json.dumps({"action": "plus"}))
        clients[1].send(json.dumps({"action": "plus"}))
        assert counter_values(clients[2], 2) == [1, 2]
        clients[2].send(json.dumps({"action": "minus"}))
        for client in clients[:2]:
            assert counter_values(client, 3) == [1, 2, 1]
        assert counter_values(clients[2], 1) == [1]
        with contextlib.closing(redis.Redis(port=redis_server.port)) as store:
            assert store.get("counter:value") == b"1"
            assert store.get("counter:users") == b"3"


def test_unknown_path_is_rejected(redis_server: RedisServer, tmp_path: Path) -> None:
    with (
        example_process(redis_server.url, tmp_path / "server.log") as uri,
        pytest.raises(syncws.InvalidStatus) as info,
    ):
        syncws.connect(f"{uri}elsewhere")
    assert info.value.response.status_code == 404
