"""Fan-out through Redis: messages per second delivered, and latency from publish to delivery.

Starts a redis-server on 127.0.0.1 (a free port, nothing saved), ``--servers`` server
processes that subscribe every client to one channel with :class:`syncws.pubsub.PubSub`, and
``--client-processes`` processes that share ``--clients`` clients per server (one thread
each). Then it publishes
``--messages`` messages through Redis, each carrying the time it was published, and reports:

* deliveries per second: messages received by all clients, divided by the time from the first
  publish to the last delivery;
* the latency of each delivery, from publish to ``recv()`` returning in the client: p50, p99
  and the maximum.

Example (the short run in the docs)::

    python benchmarks/redis_fanout.py --servers 2 --clients 500 --client-processes 4 \\
        --messages 100 --rate 20

Needs redis-server on the PATH (or in /usr/sbin, /usr/bin) and the redis package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from _proc import raise_fd_limit

CHANNEL = "bench"
TIMEOUT = 120.0


# Roles run in subprocesses.


def run_server(redis_url: str) -> None:
    """Serve clients that all subscribe to the channel; print the port."""
    import syncws  # noqa: PLC0415
    from syncws.pubsub import PubSub  # noqa: PLC0415

    threading.stack_size(256 * 1024)
    with PubSub(redis_url) as pubsub:

        def handler(websocket: syncws.ServerConnection) -> None:
            pubsub.subscribe(websocket, CHANNEL)
            for _ in websocket:
                pass

        with syncws.serve(
            handler, "127.0.0.1", 0, compression=None, backlog=1024, ping_interval=None
        ) as server:
            print(f"port {server.port}", flush=True)

            def stop_at_eof() -> None:
                # The parent closes our stdin to stop us.
                sys.stdin.read()
                server.close()

            threading.Thread(target=stop_at_eof, daemon=True).start()
            server.serve_forever()


def run_clients(uris: list[str], per_server: int, messages: int) -> None:
    """Connect the clients, print "ready", receive, then print the results as JSON."""
    import syncws  # noqa: PLC0415

    threading.stack_size(256 * 1024)
    total = len(uris) * per_server
    connected = threading.Barrier(total + 1, timeout=TIMEOUT)
    opening = threading.Semaphore(50)  # handshakes in flight, to stay under the backlog
    latencies: list[list[float]] = []
    last: list[float] = []
    lock = threading.Lock()

    def client(uri: str) -> None:
        with opening:
            websocket = syncws.connect(uri, compression=None, ping_interval=None, open_timeout=60)
        mine: list[float] = []
        with websocket:
            connected.wait()
            with contextlib.suppress(TimeoutError, syncws.ConnectionClosed):
                for _ in range(messages):
                    message = websocket.recv(timeout=30)
                    now = time.monotonic()
                    mine.append(now - json.loads(message)["t"])
            with lock:
                latencies.append(mine)
                last.append(time.monotonic())

    threads = [
        threading.Thread(target=client, args=(uri,), name=f"client-{i}")
        for i, uri in enumerate(uri for uri in uris for _ in range(per_server))
    ]
    for thread in threads:
        thread.start()
    connected.wait()
    print("ready", flush=True)
    for thread in threads:
        thread.join(TIMEOUT)
    flat = sorted(value for values in latencies for value in values)
    print(json.dumps({"latencies": flat, "last": max(last) if last else 0.0}), flush=True)


# The orchestrator.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_line(process: subprocess.Popen[str], timeout: float = TIMEOUT) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError("a benchmark process did not answer in time")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError("a benchmark process exited")
    return line.strip()


@contextlib.contextmanager
def spawn(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def redis_server(directory: str) -> Iterator[str]:
    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    process = subprocess.Popen(
        [
            *(executable, "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", directory),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis  # noqa: PLC0415

        client = redis.Redis(port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def orchestrate(
    *, servers: int, clients: int, client_procs: int, messages: int, rate: float, size: int
) -> None:
    import redis  # noqa: PLC0415

    with (
        tempfile.TemporaryDirectory() as directory,
        redis_server(directory) as url,
        contextlib.ExitStack() as stack,
    ):
        uris = []
        for _ in range(servers):
            process = stack.enter_context(spawn("--role", "server", "--redis", url))
            uris.append(f"ws://127.0.0.1:{read_line(process).split()[1]}/")
        started = time.monotonic()
        # Clients split over processes: one process of a thousand threads spends its time
        # handing the GIL around rather than receiving.
        client_processes = [
            stack.enter_context(
                spawn(
                    "--role",
                    "clients",
                    "--clients",
                    str(clients // client_procs),
                    "--messages",
                    str(messages),
                    *uris,
                )
            )
            for _ in range(client_procs)
        ]
        for process in client_processes:
            if read_line(process) != "ready":
                raise RuntimeError("the clients did not connect")
        connect_time = time.monotonic() - started
        publisher = redis.Redis.from_url(url)
        deadline = time.monotonic() + 30
        while publisher.pubsub_numsub(CHANNEL)[0][1] < servers:
            if time.monotonic() > deadline:
                raise TimeoutError("the servers did not subscribe")
            time.sleep(0.01)
        padding = "x" * max(0, size - 40)
        first = time.monotonic()
        for seq in range(messages):
            if rate:
                delay = first + seq / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            publisher.publish(
                CHANNEL, json.dumps({"seq": seq, "t": time.monotonic(), "pad": padding})
            )
        results = [json.loads(read_line(process)) for process in client_processes]
        publisher.close()

    latencies = sorted(value for result in results for value in result["latencies"])
    delivered = len(latencies)
    expected = servers * (clients // client_procs) * client_procs * messages
    elapsed = max(result["last"] for result in results) - first
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"python {platform.python_version()}, {servers} servers x {clients} clients, "
        f"clients in {client_procs} processes"
    )
    print(f"connected {servers * clients} clients in {connect_time:.1f} s")
    print(f"published {messages} messages of {size} bytes at {rate or 'max'} msg/s")
    print(f"delivered {delivered} of {expected} in {elapsed:.2f} s")
    print(f"deliveries per second: {delivered / elapsed:,.0f}")
    if latencies:
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"latency: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {latencies[-1] * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["orchestrator", "server", "clients"])
    parser.add_argument("--redis", help="the Redis URL (server role)")
    parser.add_argument("--servers", type=int, default=2, help="server processes")
    parser.add_argument("--clients", type=int, default=500, help="clients per server")
    parser.add_argument("--client-processes", type=int, default=4, help="processes of clients")
    parser.add_argument("--messages", type=int, default=200, help="messages to publish")
    parser.add_argument("--rate", type=float, default=100, help="messages per second; 0: max")
    parser.add_argument("--size", type=int, default=100, help="message size in bytes")
    parser.add_argument("uris", nargs="*", help="server URIs (clients role)")
    args = parser.parse_args()
    raise_fd_limit()
    if args.role == "server":
        run_server(args.redis)
    elif args.role == "clients":
        run_clients(args.uris, args.clients, args.messages)
    else:
        orchestrate(
            servers=args.servers,
            clients=args.clients,
            client_procs=args.client_processes,
            messages=args.messages,
            rate=args.rate,
            size=args.size,
        )


if __name__ == "__main__":
    # Run from a checkout without installing: import syncws from the tree.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
