"""The producer pattern: send messages to a client as they are produced.

``producer()`` stands for your business logic: here it makes a numbered message every
``PRODUCER_INTERVAL`` seconds (1 by default; the environment variable overrides it). When
the client disconnects, ``send()`` raises :exc:`~syncws.ConnectionClosed`, which ends the
loop and the handler. Run::

    python examples/patterns/producer.py [port]
"""

import itertools
import os
import sys
import time

import syncws

HOST = "127.0.0.1"
PORT = 8765
PRODUCER_INTERVAL = float(os.environ.get("PRODUCER_INTERVAL", "1"))

counter = itertools.count(1)


def producer() -> str:
    time.sleep(PRODUCER_INTERVAL)
    return f"message {next(counter)}"


def producer_handler(websocket: syncws.ServerConnection) -> None:
    while True:
        message = producer()
        websocket.send(message)


def main(port: int = PORT) -> None:
    with syncws.serve(producer_handler, HOST, port) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
