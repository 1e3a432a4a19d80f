"""The consumer pattern: process every message a client sends, until it disconnects.

Iterating over a connection receives messages one by one; the loop ends when the client
closes the connection normally. ``consumer()`` stands for your business logic. The same
loop works in a client, on a connection from :func:`syncws.connect`. Run::

    python examples/patterns/consumer.py [port]
"""

import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765


def consumer(message: str | bytes) -> None:
    print(f"consumer: {message!r}")


def consumer_handler(websocket: syncws.ServerConnection) -> None:
    for message in websocket:
        consumer(message)


def main(port: int = PORT) -> None:
    with syncws.serve(consumer_handler, HOST, port) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
