"""Echo server for the Autobahn|Testsuite fuzzing client.

Echoes every message back with the same type (text or binary), with the settings the
testsuite expects: messages up to 32 MiB (cases 9.x), compression on (cases 12.x and 13.x),
no keepalive pings. Listens on 127.0.0.1 only.

    python benchmarks/autobahn/echo_server.py --port 9002 --lifetime 3600

Stops on SIGTERM or SIGINT, or by itself after ``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

import syncws

HOST = "127.0.0.1"
MAX_SIZE = 2**25


def echo(websocket: syncws.ServerConnection) -> None:
    """Send every message back until the peer closes; errors end the connection quietly."""
    try:
        for message in websocket:
            websocket.send(message)
    except syncws.ConnectionClosed:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9002, help="TCP port on 127.0.0.1")
    parser.add_argument(
        "--lifetime", type=float, default=3600.0, help="stop after this many seconds"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")

    server = syncws.serve(
        echo,
        HOST,
        args.port,
        max_size=MAX_SIZE,
        compression="deflate",
        ping_interval=None,
        close_timeout=5,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        server.shutdown(timeout=5)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(args.lifetime, server.shutdown, kwargs={"timeout": 5})
    timer.daemon = True
    timer.start()
    print(f"listening on ws://{HOST}:{server.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        timer.cancel()


if __name__ == "__main__":
    main()
