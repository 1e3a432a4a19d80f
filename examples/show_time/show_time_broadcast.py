"""Show the time in every browser at once: one producer thread broadcasts to every client.

Rather than one loop per connection, one thread makes each message and sends it to every
open connection with :func:`syncws.broadcast`, which never waits for a slow client: it
skips a client that is too far behind. ``server.connections`` is the registry of open
connections, kept by the server. Run::

    python examples/show_time/show_time_broadcast.py [port]

then open ``index.html`` next to it in several tabs. ``SHOW_TIME_INTERVAL`` changes the
interval as for ``show_time.py``.
"""

import datetime
import os
import random
import sys
import threading

import syncws

HOST = "127.0.0.1"
PORT = 8765
MIN_INTERVAL, MAX_INTERVAL = map(float, os.environ.get("SHOW_TIME_INTERVAL", "1 3").split())


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wait_until_closed(websocket: syncws.ServerConnection) -> None:
    # The connection stays in server.connections as long as its handler runs.
    websocket.wait_closed()


def show_time(server: syncws.Server, stop: threading.Event) -> None:
    # Event.wait() is the delay: it returns True at once when the server stops.
    while not stop.wait(random.uniform(MIN_INTERVAL, MAX_INTERVAL)):
        syncws.broadcast(server.connections, utc_now())


def main(port: int = PORT) -> None:
    stop = threading.Event()
    with syncws.serve(wait_until_closed, HOST, port) as server:
        producer = threading.Thread(target=show_time, args=(server, stop), name="show-time")
        producer.start()
        print(f"Listening on ws://{HOST}:{server.port}/")
        try:
            server.serve_forever()
        finally:
            stop.set()
            producer.join()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
