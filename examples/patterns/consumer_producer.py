"""Consumer and producer together: receive and send on one connection, in two threads.

The consumer thread processes what the client sends; the producer thread sends what
``producer()`` makes. When either one ends (the client disconnected, or the producer has
nothing more to send), the handler stops the other one and closes the connection, so that
no thread is left running. Run::

    python examples/patterns/consumer_producer.py [port]

The producer makes a message every ``PRODUCER_INTERVAL`` seconds (1 by default), and ends
after ``PRODUCER_MESSAGES`` messages when that environment variable is set.
"""

import itertools
import os
import sys
import threading
from collections.abc import Callable

import syncws

HOST = "127.0.0.1"
PORT = 8765
PRODUCER_INTERVAL = float(os.environ.get("PRODUCER_INTERVAL", "1"))
# How many messages the producer makes before it ends; 0 for no end.
PRODUCER_MESSAGES = int(os.environ.get("PRODUCER_MESSAGES", "0"))


def consumer(message: str | bytes) -> None:
    print(f"consumer: {message!r}")


def producer(number: int, stop: threading.Event) -> str | None:
    """Make the next message; ``None`` when there is nothing more to send."""
    if PRODUCER_MESSAGES and number > PRODUCER_MESSAGES:
        return None
    # Waiting on the event rather than sleeping lets the handler stop the producer at once.
    if stop.wait(PRODUCER_INTERVAL):
        return None
    return f"message {number}"


def consumer_handler(websocket: syncws.ServerConnection, stop: threading.Event) -> None:
    # Closing the connection ends this loop.
    for message in websocket:
        consumer(message)


def producer_handler(websocket: syncws.ServerConnection, stop: threading.Event) -> None:
    for number in itertools.count(1):
        message = producer(number, stop)
        if message is None:
            return
        websocket.send(message)


def handler(websocket: syncws.ServerConnection) -> None:
    stop = threading.Event()

    def run(target: Callable[[syncws.ServerConnection, threading.Event], None]) -> None:
        try:
            target(websocket, stop)
        except syncws.ConnectionClosed:
            pass  # the client went away: routine
        finally:
            stop.set()  # whichever ends first stops the other

    threads = [
        threading.Thread(target=run, args=(consumer_handler,), name="consumer"),
        threading.Thread(target=run, args=(producer_handler,), name="producer"),
    ]
    for thread in threads:
        thread.start()
    stop.wait()
    # The event already ends the producer's wait; closing ends the consumer's loop and
    # makes a send() in progress raise ConnectionClosed.
    websocket.close()
    for thread in threads:
        thread.join()


def main(port: int = PORT) -> None:
    with syncws.serve(handler, HOST, port) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
