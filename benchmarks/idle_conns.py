"""Hold many idle connections to one syncws server, and say what they cost.

Usage::

    python benchmarks/idle_conns.py                  # 10,000 connections
    python benchmarks/idle_conns.py -n 2000 --hold 5
    python benchmarks/idle_conns.py -n 500 --compression   # permessage-deflate negotiated

The server runs in a child process, so that its memory and threads are its own; this process
opens the connections, from a few threads at once. Printed: the time to connect them all, the
server's memory (RSS) and threads per connection (read after the connections have settled for
``--settle`` seconds), the round trip of an echo on random
connections while every other one is held open (median and 99th percentile), the time to close
them all, and the time the server's shutdown took. Both processes raise their soft limit on
open files (``RLIMIT_NOFILE``) as far as the hard limit allows; with fewer descriptors than
connections, the script says so and stops.

This is a measurement, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import random
import statistics
import subprocess
import sys
import threading
import time

from _proc import fd_count, raise_fd_limit, rss_kib, thread_count

import syncws

__all__: list[str] = []


def echo(connection: syncws.ServerConnection) -> None:
    for message in connection:
        connection.send(message)


def run_server(max_connections: int, compression: str | None) -> None:
    """The child process: serve, answer ``stop`` on stdin with the shutdown's duration."""
    raise_fd_limit()
    server = syncws.serve(
        echo,
        "127.0.0.1",
        0,
        compression=compression,
        max_connections=max_connections,
        backlog=4096,
    )
    thread = threading.Thread(target=server.serve_forever, name="serve-forever")
    thread.start()
    print(server.port, flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    start = time.monotonic()
    server.shutdown(30)
    thread.join(30)
    print(f"{time.monotonic() - start:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--connections", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold them open")
    parser.add_argument("--samples", type=int, default=500, help="echo round trips measured")
    parser.add_argument("--threads", type=int, default=8, help="threads that connect")
    parser.add_argument(
        "--compression", action="store_true", help="negotiate permessage-deflate on both sides"
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds to wait before reading the RSS"
    )
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    compression = "deflate" if args.compression else None
    if args.server:
        run_server(args.connections + 100, compression)
        return

    count = args.connections
    limit = raise_fd_limit()
    print(f"open files limit: {limit}")
    if limit < count + 100:
        sys.exit(f"{count} connections need about {count + 100} descriptors; the limit is {limit}")
    server = subprocess.Popen(
        [sys.executable, __file__, "--server", "-n", str(count)]
        + (["--compression"] if args.compression else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        uri = f"ws://127.0.0.1:{server.stdout.readline().strip()}/"
        rss0, threads0 = rss_kib(server.pid), thread_count(server.pid)

        def connect(_: int) -> syncws.ClientConnection:
            return syncws.connect(uri, compression=compression, open_timeout=60, ping_interval=None)

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            connections = list(pool.map(connect, range(count)))
        connected = time.monotonic() - start
        time.sleep(args.settle)
        rss1, threads1, fds1 = rss_kib(server.pid), thread_count(server.pid), fd_count(server.pid)
        print(f"connections:          {count:,} (compression {compression or 'off'})")
        print(f"connect all:          {connected:.2f} s ({count / connected:,.0f}/s)")
        print(f"server RSS:           {rss0 / 1024:.1f} MiB idle, {rss1 / 1024:.1f} MiB held")
        print(
            f"server per conn:      {(rss1 - rss0) / count:.1f} KiB,"
            f" {(threads1 - threads0) / count:.2f} threads, {fds1 / count:.2f} fds"
        )

        rtts = []
        deadline = time.monotonic() + args.hold
        payload = b"x" * 32
        for sample in range(args.samples):
            connection = random.choice(connections)
            sent = time.perf_counter()
            connection.send(payload)
            assert connection.recv(10) == payload
            rtts.append(time.perf_counter() - sent)
            # Spread the samples over the hold.
            pause = (deadline - time.monotonic()) / (args.samples - sample)
            if pause > 0:
                time.sleep(pause)
        p50 = statistics.median(rtts) * 1000
        p99 = statistics.quantiles(rtts, n=100)[98] * 1000
        print(f"echo during the hold: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(rtts)} samples)")

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(lambda connection: connection.close(), connections))
        closed = time.monotonic() - start
        print(f"close all:            {closed:.2f} s")
        rss2, threads2 = rss_kib(server.pid), thread_count(server.pid)
        print(f"server after close:   {rss2 / 1024:.1f} MiB, {threads2} threads")

        server.stdin.write("stop\n")
        server.stdin.flush()
        print(f"server shutdown:      {float(server.stdout.readline()):.2f} s")
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
