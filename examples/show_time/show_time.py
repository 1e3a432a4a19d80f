"""Show the time in a browser: send the UTC time to each client at random intervals.

Each connection gets its own loop in its handler thread. Run::

    python examples/show_time/show_time.py [port]

then open ``index.html`` next to it in a browser (``index.html?port=N`` for another port
than 8765). The interval is random between 1 and 3 seconds; the environment variable
``SHOW_TIME_INTERVAL`` changes the range, e.g. ``SHOW_TIME_INTERVAL="0.1 0.2"``.
"""

import datetime
import os
import random
import sys
import time

import syncws

HOST = "127.0.0.1"
PORT = 8765
MIN_INTERVAL, MAX_INTERVAL = map(float, os.environ.get("SHOW_TIME_INTERVAL", "1 3").split())


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def show_time(websocket: syncws.ServerConnection) -> None:
    # send() raises ConnectionClosed once the browser tab is gone, which ends the loop and
    # the handler; the server expects that and logs it at debug level only.
    while True:
        websocket.send(utc_now())
        time.sleep(random.uniform(MIN_INTERVAL, MAX_INTERVAL))


def main(port: int = PORT) -> None:
    with syncws.serve(show_time, HOST, port) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
