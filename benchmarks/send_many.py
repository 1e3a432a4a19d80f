"""What streaming small messages costs the sender: a loop of send() against send_many().

Usage::

    python benchmarks/send_many.py                    # 200,000 messages of 1 KiB
    python benchmarks/send_many.py -n 50000 --size 64 --batch 16 64 256

The server runs in a child process and counts what it receives. This process sends the same
messages three ways (one ``send()`` per message, then ``send_many()`` in batches of each size
given) and prints, for each, the messages per second and the CPU time this process spent per
message (all its threads), with the server's CPU per message beside it.

This is a measurement, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _proc import cpu_seconds

import syncws

__all__: list[str] = []

SERVER = """
import sys
import syncws

def handler(connection):
    count = 0
    for message in connection:
        if isinstance(message, str):
            connection.send(str(count))
            count = 0
        else:
            count += 1

with syncws.serve(handler, "127.0.0.1", 0, compression=None) as server:
    print(server.port, flush=True)
    server.serve_forever()
"""


def run(client: syncws.ClientConnection, server_pid: int, payload: bytes, count: int,
        batch: int) -> tuple[float, float, float]:
    """Send ``count`` messages, one by one (``batch`` 1) or in batches; return the rate and
    the CPU µs per message of this process and of the server."""
    client_cpu, server_cpu = time.process_time(), cpu_seconds(server_pid)
    start = time.perf_counter()
    if batch == 1:
        for _ in range(count):
            client.send(payload)
    else:
        messages = [payload] * batch
        for _ in range(count // batch):
            client.send_many(messages)
    client.send("sync")
    received = int(client.recv(timeout=120))
    elapsed = time.perf_counter() - start
    sent = count if batch == 1 else count // batch * batch
    if received != sent:
        raise AssertionError(f"the server counted {received} messages, not {sent}")
    return (
        sent / elapsed,
        (time.process_time() - client_cpu) / sent * 1e6,
        (cpu_seconds(server_pid) - server_cpu) / sent * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=200_000, help="messages per way")
    parser.add_argument("--size", type=int, default=1024, help="bytes per message")
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 64, 256],
                        help="batch sizes for send_many()")
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        payload = os.urandom(args.size)
        with syncws.connect(f"ws://127.0.0.1:{port}/", compression=None, proxy=None) as client:
            run(client, server.pid, payload, 5_000, 1)  # warm-up
            print(f"{args.count:,} messages of {args.size} bytes, no compression")
            for batch in [1, *args.batch]:
                rate, client_us, server_us = run(client, server.pid, payload, args.count, batch)
                way = "send() loop      " if batch == 1 else f"send_many({batch:>4})  "
                print(f"  {way} {rate:>10,.0f} msg/s   CPU per message: "
                      f"client {client_us:5.2f} us, server {server_us:5.2f} us")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
