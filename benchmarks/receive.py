"""CPU time and Python calls per message received by a server-side protocol, without I/O.

Usage::

    python benchmarks/receive.py [--messages 200000] [--runs 5] [--size 1024]

It feeds a server-side :class:`~syncws.core.protocol.Protocol` the way a connection does
(``get_buffer()``, a copy into the view, ``buffer_updated()``, then ``events_received()``),
with these workloads:

- ``stream binary`` and ``stream text``: masked 1 KiB frames (ASCII text for ``text``), in
  64 KiB chunks, as a client streaming messages sends them;
- ``one by one``: one masked 16-byte text frame per chunk, as an echo client sends them.

For each, it prints the Python calls per message (``sys.setprofile`` counting ``call``
events, over a fraction of the messages) and the CPU time per message (``time.process_time``
over ``--messages`` messages, median of ``--runs`` runs, with the spread). Run it before and
after a change in the same conditions: on a shared machine, compare medians of several runs.
With ``--python``, the pure-Python path is measured, as if the C accelerator were not built.
It measures the ``syncws`` that Python imports: from a checkout, with ``PYTHONPATH=.`` (and
the accelerator built in place) to measure the checkout's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

if "--python" in sys.argv:
    sys.modules["syncws.core.speedups"] = None  # type: ignore[assignment]  # importing it fails

from syncws.core.frames import Frame, Opcode
from syncws.core.protocol import Protocol, Side

CHUNK = 65536


def chunks(opcode: Opcode, payload: bytes, count: int, chunk: int) -> list[bytes]:
    """``count`` masked frames carrying ``payload``, cut in pieces of ``chunk`` bytes."""
    frame = Frame(opcode, payload).serialize(mask=True, mask_key=b"\x12\x34\x56\x78")
    stream = frame * count
    return [stream[i : i + chunk] for i in range(0, len(stream), chunk)]


def feed(pieces: list[bytes]) -> int:
    """Feed ``pieces`` to a new server-side protocol as a connection does; count the frames."""
    protocol = Protocol(Side.SERVER)
    received = 0
    for piece in pieces:
        # As recv_into() does: the view lent may hold less than the piece.
        view = protocol.get_buffer(len(piece))
        size = min(len(view), len(piece))
        view[:size] = piece[:size]
        protocol.buffer_updated(size)
        while size < len(piece):
            view = protocol.get_buffer(len(piece) - size)
            more = min(len(view), len(piece) - size)
            view[:more] = piece[size : size + more]
            protocol.buffer_updated(more)
            size += more
        received += len(protocol.events_received())
    return received


def count_calls(pieces: list[bytes], messages: int) -> float:
    """Python calls per message while feeding ``pieces``."""
    calls = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(profile)
    try:
        received = feed(pieces)
    finally:
        sys.setprofile(None)
    assert received == messages, (received, messages)
    # The call to feed() itself is not the protocol's.
    return (calls - 1) / messages


def cpu_per_message(pieces: list[bytes], messages: int, runs: int) -> list[float]:
    """CPU seconds per message, one figure per run."""
    results = []
    for _ in range(runs):
        start = time.process_time()
        received = feed(pieces)
        results.append((time.process_time() - start) / messages)
        assert received == messages, (received, messages)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024, help="payload of streamed messages")
    parser.add_argument("--python", action="store_true", help="without the C accelerator")
    args = parser.parse_args()

    payload = os.urandom(args.size)
    text = b"x" * args.size
    workloads: list[tuple[str, Callable[[int], list[bytes]]]] = [
        ("stream binary", lambda n: chunks(Opcode.BINARY, payload, n, CHUNK)),
        ("stream text", lambda n: chunks(Opcode.TEXT, text, n, CHUNK)),
        ("one by one", lambda n: chunks(Opcode.TEXT, b"x" * 16, n, 16 + 6)),
    ]
    print(f"{'workload':<14} {'calls/msg':>10} {'CPU/msg (median, min-max)':>30}")
    for name, make in workloads:
        calls = count_calls(make(2000), 2000)
        times = cpu_per_message(make(args.messages), args.messages, args.runs)
        median = statistics.median(times) * 1e6
        spread = f"{min(times) * 1e6:.2f}-{max(times) * 1e6:.2f}"
        print(f"{name:<14} {calls:>10.2f} {median:>12.2f} us ({spread} us)")


if __name__ == "__main__":
    main()
