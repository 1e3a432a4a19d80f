"""Registration: keep the set of connected clients, to send messages to all of them.

Each handler adds its connection to a set when the client connects and removes it, in a
``finally`` block, when it disconnects. Here every newcomer is greeted by a ``Hello!``
broadcast to every client, and every message a client sends is relayed to all of them.
Run::

    python examples/patterns/registration.py [port]

The set lives in the memory of one process: it does not scale to several processes.
:attr:`syncws.Server.connections` is such a set, kept by the server itself.
"""

import sys
import threading

import syncws

HOST = "127.0.0.1"
PORT = 8765

# Handlers run in many threads: the lock guards the set.
connected: set[syncws.ServerConnection] = set()
lock = threading.Lock()


def handler(websocket: syncws.ServerConnection) -> None:
    # Register.
    with lock:
        connected.add(websocket)
        # broadcast() never blocks, so it may run under the lock.
        syncws.broadcast(connected, "Hello!")
    try:
        # Implement the logic here: this relays every message to every client.
        for message in websocket:
            with lock:
                syncws.broadcast(connected, message)
    finally:
        # Unregister.
        with lock:
            connected.remove(websocket)


def main(port: int = PORT) -> None:
    with syncws.serve(handler, HOST, port) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
