"""Run a long mixed load against one syncws server, and say whether its memory stays flat.

Usage::

    python benchmarks/soak.py                          # 1,000 clients, 10 minutes
    nice -n 10 python benchmarks/soak.py --clients 200 --minutes 5 --seed 1

The server runs in a child process, so that its memory is its own. It serves four paths:
``/echo`` sends every message back, ``/chat`` broadcasts every message to everyone in the
room, ``/raise`` raises in the handler at the first message (the client sees 1011), and
``/going-away`` closes with 1001 at once. This process runs ``--clients`` threads that, until
the time is up, each pick one operation after another at random (seeded by ``--seed``):

- open a connection and close it;
- echo a message of 0 B to 256 KiB (log-uniform), text or binary, over a connection with or
  without permessage-deflate, sometimes with ``compress=False``;
- echo a fragmented message (``send()`` of an iterable);
- ping and wait for the pong;
- ``recv()`` with a short timeout that expires;
- a slow reader: several echoes sent before any is read;
- a burst of small messages;
- an abrupt disconnect, after a Close frame or without one;
- an invalid frame, written as raw bytes on the socket (the server fails it with 1002);
- a chat message, received back through the broadcast;
- the handler that raises, and the one that closes with 1001.

Every echoed message is checked byte for byte. Printed every minute: the server's connections
open, threads and C heap (glibc's ``mallinfo2()``: in use, free but kept, mmapped). Printed
at the end: operations and messages checked, unexpected errors (by type, with the first
tracebacks), the RSS of the server and of this process (sampled from ``/proc`` every
``--interval`` seconds): its mean over each tenth of the run, over the first fifth of what
follows a warm-up (of a tenth, and of a third) and over the last fifth, the growth between
these two in % and in MiB per minute; the server's RSS when every client left, then after
``--settle`` seconds (idle workers end after 60 s), next to its RSS before the load; the C
heap of both; the server's Python memory blocks in use (``sys.getallocatedblocks()``) before
and after the load; and the server's :attr:`~syncws.server.Server.stats`. tracemalloc stays
off: it would add its own memory per allocation. Linux only (``/proc``).

This is a measurement, not a test: run it on a quiet machine, for long enough (30 minutes
tells more than 5).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import logging
import random
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable

from _proc import raise_fd_limit, rss_kib

import syncws
from syncws.exceptions import ConnectionClosed, ConnectionClosedError

__all__: list[str] = []

MiB = 1024 * 1024
MAX_SIZE = 256 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def c_heap() -> dict[str, float]:
    """glibc's view of the C heap in MiB (``mallinfo2()``): in use, free but kept, mmapped;
    empty elsewhere."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {
        "in_use": info.uordblks / MiB,
        "free_kept": info.fordblks / MiB,
        "mmapped": info.hblkhd / MiB,
    }


class LogCounter(logging.Handler):
    """Count log records by level and keep the first few messages, instead of printing them."""

    def __init__(self, expected: tuple[str, ...] = ()) -> None:
        super().__init__(logging.DEBUG)
        self.counts: collections.Counter[str] = collections.Counter()
        self.first: list[str] = []
        self.expected = expected

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        message = record.getMessage()
        if (
            len(self.first) < 5
            and record.levelno >= logging.ERROR
            and not any(text in message for text in self.expected)
        ):
            if not self.first and record.exc_info and record.exc_info[1] is not None:
                message += ": " + "".join(traceback.format_exception(record.exc_info[1]))
            self.first.append(message)


# The server.


class HandlerRaised(Exception):
    """What the /raise handler raises."""


def run_server() -> None:
    """The child process: serve; answer ``heap`` and ``stop`` on stdin with JSON lines."""
    raise_fd_limit()
    counter = LogCounter(expected=("soak: raised on purpose", "handler failed"))
    logging.getLogger("syncws").addHandler(counter)
    logging.getLogger("syncws").propagate = False
    room: set[syncws.ServerConnection] = set()
    room_lock = threading.Lock()

    def handler(connection: syncws.ServerConnection) -> None:
        path = connection.path
        if path == "/echo":
            for message in connection:
                connection.send(message)
        elif path == "/chat":
            with room_lock:
                room.add(connection)
            try:
                for message in connection:
                    with room_lock:
                        members = list(room)
                    syncws.broadcast(members, message)
            finally:
                with room_lock:
                    room.discard(connection)
        elif path == "/raise":
            connection.recv()
            raise HandlerRaised("soak: raised on purpose")
        elif path == "/going-away":
            connection.close(1001, "going away")

    server = syncws.serve(handler, "127.0.0.1", 0, max_connections=100_000, backlog=4096)
    thread = threading.Thread(target=server.serve_forever, name="serve-forever")
    thread.start()
    print(server.port, flush=True)
    blocks_before = sys.getallocatedblocks()
    for line in sys.stdin:
        command = line.strip()
        if command == "heap":
            load = {
                "threads": threading.active_count(),
                "connections": server.stats.connections_open,
            }
            print(json.dumps({**c_heap(), **load}), flush=True)
        elif command == "stop":
            break
    heap = c_heap()
    blocks_after = sys.getallocatedblocks()
    start = time.monotonic()
    server.shutdown(30)
    thread.join(30)
    result = {
        "shutdown": time.monotonic() - start,
        "heap": heap,
        "blocks": [blocks_before, blocks_after],
        "stats": server.stats.as_dict(),
        "log": dict(counter.counts),
        "log_first": counter.first,
    }
    print(json.dumps(result), flush=True)


# The clients.


class Tally:
    """What the client threads did; shared, under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.operations: collections.Counter[str] = collections.Counter()
        self.messages = 0
        self.chat_missed = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.tracebacks: list[str] = []

    def done(self, operation: str, messages: int) -> None:
        with self.lock:
            self.operations[operation] += 1
            self.messages += messages

    def error(self, operation: str, exc: BaseException) -> None:
        with self.lock:
            self.errors[f"{operation}: {type(exc).__name__}"] += 1
            if len(self.tracebacks) < 5:
                self.tracebacks.append(f"{operation}:\n" + "".join(traceback.format_exception(exc)))


class Mismatch(Exception):
    """A message came back different."""


# Payloads: slices of two pools made once, one that compresses and one that does not.
_WORDS = ["syncws", "sends", "frames", "to", "readers", "für", "Nachrichten", "é", "∑", "🙂"]


def make_pools(rng: random.Random) -> tuple[bytes, bytes, str]:
    noise = rng.randbytes(2 * MAX_SIZE)
    text = " ".join(rng.choice(_WORDS) for _ in range(2 * MAX_SIZE // 6))
    return noise, text.encode(), text


class Client:
    """One client thread: operations at random until the deadline."""

    def __init__(
        self,
        base: str,
        *,
        seed: int,
        deadline: float,
        tally: Tally,
        pools: tuple[bytes, bytes, str],
        stop: threading.Event,
    ) -> None:
        self.base = base
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.tally = tally
        self.noise, self.text_bytes, self.text = pools
        self.stop = stop
        self.connection: syncws.ClientConnection | None = None
        self.name = f"c{seed}"
        self.sequence = 0

    # Helpers.

    def size(self) -> int:
        return min(MAX_SIZE, int(2 ** self.rng.uniform(0, 18.0)) - 1)

    def payload(self, size: int, text: bool) -> str | bytes:
        if text:
            start = self.rng.randrange(len(self.text) - size)
            return self.text[start : start + size]
        pool = self.noise if self.rng.random() < 0.5 else self.text_bytes
        start = self.rng.randrange(len(pool) - size)
        return pool[start : start + size]

    def open(self, path: str = "/echo", compression: bool | None = None) -> syncws.ClientConnection:
        if compression is None:
            compression = self.rng.random() < 0.5
        return syncws.connect(
            self.base + path,
            compression="deflate" if compression else None,
            open_timeout=60,
            close_timeout=10,
            ping_interval=None,
            max_size=2 * MAX_SIZE,
        )

    def echo_connection(self) -> syncws.ClientConnection:
        if self.connection is None:
            self.connection = self.open()
        return self.connection

    def drop(self) -> None:
        if self.connection is not None:
            self.connection.abort()
            self.connection = None

    @staticmethod
    def check(sent: str | bytes, received: str | bytes) -> None:
        if type(sent) is not type(received) or sent != received:
            raise Mismatch(f"sent {len(sent)} {type(sent).__name__}, got {len(received)}")

    # Operations: each returns how many messages it checked.

    def op_connect_close(self) -> int:
        self.open().close()
        return 0

    def op_echo(self) -> int:
        connection = self.echo_connection()
        text = self.rng.random() < 0.5
        message = self.payload(self.size(), text)
        connection.send(message, compress=self.rng.random() < 0.8)
        self.check(message, connection.recv(30))
        return 1

    def op_fragments(self) -> int:
        connection = self.echo_connection()
        text = self.rng.random() < 0.5
        pieces = [self.payload(self.size() // 4, text) for _ in range(self.rng.randint(1, 8))]
        connection.send(pieces)
        whole = "".join(pieces) if text else b"".join(pieces)  # type: ignore[arg-type]
        self.check(whole, connection.recv(30))
        return 1

    def op_ping(self) -> int:
        self.echo_connection().ping().wait(30)
        return 0

    def op_short_timeout(self) -> int:
        try:
            self.echo_connection().recv(0.01)
        except TimeoutError:
            return 0
        raise Mismatch("recv() got a message nobody sent")

    def op_slow_reader(self) -> int:
        connection = self.echo_connection()
        messages = [self.payload(self.size() // 8, False) for _ in range(self.rng.randint(2, 6))]
        for message in messages:
            connection.send(message)
        time.sleep(self.rng.uniform(0.05, 0.5))
        for message in messages:
            self.check(message, connection.recv(30))
        return len(messages)

    def op_burst(self) -> int:
        connection = self.echo_connection()
        messages = [self.payload(self.rng.randint(0, 512), True) for _ in range(32)]
        for message in messages:
            connection.send(message)
        for message in messages:
            self.check(message, connection.recv(30))
        return len(messages)

    def op_abrupt(self) -> int:
        connection = self.echo_connection()
        self.connection = None
        if self.rng.random() < 0.5:
            # A Close frame (masked, code 1000), then the connection is cut at once.
            connection.socket.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
        connection.abort()
        return 0

    def op_invalid_frame(self) -> int:
        connection = self.open(compression=False)
        # A masked frame with the reserved opcode 0xB: the server fails the connection (1002).
        connection.socket.sendall(b"\x8b\x80\x00\x00\x00\x00")
        try:
            connection.recv(30)
        except ConnectionClosedError as exc:
            if exc.rcvd is None or exc.rcvd.code != 1002:
                raise
            return 0
        finally:
            connection.abort()
        raise Mismatch("the server took an invalid frame")

    def op_chat(self) -> int:
        with self.open("/chat") as connection:
            self.sequence += 1
            mine = f"{self.name}:{self.sequence}:" + self.text[: self.rng.randint(0, 512)]
            connection.send(mine)
            end = time.monotonic() + 30
            while True:
                try:
                    message = connection.recv(max(0.0, end - time.monotonic()))
                except TimeoutError:
                    with self.tally.lock:
                        self.tally.chat_missed += 1  # skipped by broadcast: a slow reader
                    return 0
                if message == mine:
                    return 1

    def op_raise(self) -> int:
        with self.open("/raise") as connection:
            connection.send("boom")
            try:
                connection.recv(30)
            except ConnectionClosedError as exc:
                if exc.rcvd is None or exc.rcvd.code != 1011:
                    raise
                return 0
        raise Mismatch("the handler that raises answered")

    def op_going_away(self) -> int:
        with self.open("/going-away") as connection:
            try:
                connection.recv(30)
            except ConnectionClosed as exc:
                if exc.rcvd is None or exc.rcvd.code != 1001:
                    raise
                return 0
        raise Mismatch("the handler that closes with 1001 sent a message")

    def run(self) -> None:
        operations: list[tuple[Callable[[], int], int]] = [
            (self.op_connect_close, 6),
            (self.op_echo, 40),
            (self.op_fragments, 10),
            (self.op_ping, 6),
            (self.op_short_timeout, 4),
            (self.op_slow_reader, 5),
            (self.op_burst, 5),
            (self.op_abrupt, 4),
            (self.op_invalid_frame, 3),
            (self.op_chat, 5),
            (self.op_raise, 2),
            (self.op_going_away, 2),
        ]
        functions = [function for function, _ in operations]
        weights = [weight for _, weight in operations]
        while time.monotonic() < self.deadline and not self.stop.is_set():
            (function,) = self.rng.choices(functions, weights)
            name = function.__name__[3:]
            try:
                messages = function()
            except Exception as exc:
                self.drop()
                self.tally.error(name, exc)
            else:
                self.tally.done(name, messages)
            # Think time, so that the load is steady rather than a saturated loop.
            time.sleep(self.rng.uniform(0, 0.05))
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception as exc:
                self.tally.error("final close", exc)


# Measuring.


def mean_between(samples: list[tuple[float, int]], start: float, stop: float) -> float:
    values = [rss for t, rss in samples if start <= t <= stop]
    return sum(values) / len(values) / 1024 if values else float("nan")


def report_growth(name: str, samples: list[tuple[float, int]], duration: float) -> None:
    """Print the mean RSS of each tenth of the run, then the growth from the first fifth of
    what follows the warm-up to the last fifth, for a warm-up of a tenth and of a third: the
    heap of a process with a thousand threads takes minutes to reach its level."""
    tenths = [mean_between(samples, duration * i / 10, duration * (i + 1) / 10) for i in range(10)]
    print(f"{name} RSS by tenth of the run (MiB): " + " ".join(f"{m:.0f}" for m in tenths))
    for label, warm_up in (("a tenth", duration / 10), ("a third", duration / 3)):
        fifth = (duration - warm_up) / 5
        first = mean_between(samples, warm_up, warm_up + fifth)
        last = mean_between(samples, duration - fifth, duration)
        minutes = (duration - fifth / 2 - (warm_up + fifth / 2)) / 60
        growth = (last - first) / first * 100
        print(
            f"{name} RSS after a warm-up of {label}: first fifth {first:.1f} MiB,"
            f" last fifth {last:.1f} MiB, growth {growth:+.1f} %,"
            f" {(last - first) / minutes:+.2f} MiB/min"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000, help="client threads")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random mix")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--settle", type=float, default=70.0, help="seconds idle after the load")
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        run_server()
        return

    raise_fd_limit()
    threading.stack_size(512 * 1024)
    counter = LogCounter()
    logging.getLogger("syncws").addHandler(counter)
    logging.getLogger("syncws").propagate = False
    server = subprocess.Popen(
        [sys.executable, __file__, "--server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        base = f"ws://127.0.0.1:{server.stdout.readline().strip()}"
        time.sleep(1)
        server_rss0, client_rss0 = rss_kib(server.pid), rss_kib()
        print(f"clients: {args.clients}, minutes: {args.minutes}, seed: {args.seed}")
        print(f"python {sys.version.split()[0]}, tracemalloc off")
        print(f"server RSS before the load: {server_rss0 / 1024:.1f} MiB")

        tally = Tally()
        pools = make_pools(random.Random(args.seed))
        stop = threading.Event()
        start = time.monotonic()
        duration = args.minutes * 60
        deadline = start + duration
        threads = []
        for index in range(args.clients):
            client = Client(
                base,
                seed=args.seed * 100_003 + index,
                deadline=deadline,
                tally=tally,
                pools=pools,
                stop=stop,
            )
            thread = threading.Thread(target=client.run, name=client.name, daemon=True)
            thread.start()
            threads.append(thread)

        server_samples: list[tuple[float, int]] = []
        client_samples: list[tuple[float, int]] = []
        next_report = start + 60
        while (now := time.monotonic()) < deadline:
            server_samples.append((now - start, rss_kib(server.pid)))
            client_samples.append((now - start, rss_kib()))
            if now >= next_report:
                next_report += 60
                server.stdin.write("heap\n")
                server.stdin.flush()
                heap = json.loads(server.stdout.readline())
                line = (
                    f"  server: {heap['connections']:,} connections open,"
                    f" {heap['threads']:,} threads"
                )
                if "in_use" in heap:
                    line += (
                        f"; C heap in use {heap['in_use']:.1f} MiB,"
                        f" free but kept {heap['free_kept']:.1f} MiB,"
                        f" mmapped {heap['mmapped']:.1f} MiB"
                    )
                print(line)
                print(
                    f"  {(now - start) / 60:5.1f} min: server {server_samples[-1][1] / 1024:.1f}"
                    f" MiB, client {client_samples[-1][1] / 1024:.1f} MiB,"
                    f" {sum(tally.operations.values()):,} operations",
                    flush=True,
                )
            time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
        for thread in threads:
            thread.join(120)
        left = time.monotonic() - start

        operations = sum(tally.operations.values())
        print(f"operations: {operations:,} ({operations / left:,.0f}/s), by kind:")
        print("  " + ", ".join(f"{k} {v:,}" for k, v in sorted(tally.operations.items())))
        print(f"messages checked byte for byte: {tally.messages:,}")
        print(f"chat messages skipped by broadcast (slow reader): {tally.chat_missed}")
        print(f"unexpected errors: {sum(tally.errors.values())}")
        for kind, count in tally.errors.most_common():
            print(f"  {kind}: {count}")
        for text in tally.tracebacks[:3]:
            print(text)
        print(f"client log records: {dict(counter.counts)}")
        for message in counter.first:
            print(f"  {message}")
        alive = sum(thread.is_alive() for thread in threads)
        if alive:
            print(f"client threads still running: {alive}")

        report_growth("server", server_samples, duration)
        report_growth("client", client_samples, duration)
        server_rss1 = rss_kib(server.pid)
        print(f"server RSS when the clients left: {server_rss1 / 1024:.1f} MiB")
        time.sleep(args.settle)
        server_rss2 = rss_kib(server.pid)
        print(
            f"server RSS {args.settle:.0f} s later: {server_rss2 / 1024:.1f} MiB"
            f" (before the load: {server_rss0 / 1024:.1f} MiB)"
        )
        print(f"client RSS: {rss_kib() / 1024:.1f} MiB (before the load: {client_rss0 / 1024:.1f})")

        server.stdin.write("stop\n")
        server.stdin.flush()
        result = json.loads(server.stdout.readline())
        print(f"server shutdown: {result['shutdown']:.2f} s")
        for side, heap in (("server", result["heap"]), ("client", c_heap())):
            figures = ", ".join(f"{key} {value:.1f} MiB" for key, value in heap.items())
            print(f"{side} C heap after the load: {figures}")
        before, after = result["blocks"]
        print(f"server Python memory blocks in use: {before:,} before the load, {after:,} after")
        print(f"server log records: {result['log']}")
        for message in result["log_first"]:
            print(f"  {message}")
        print("server stats:")
        for key, value in result["stats"].items():
            print(f"  {key}: {value}")
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
