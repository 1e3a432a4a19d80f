"""Hello world, the client: send the name it reads from the keyboard, print the greeting.

Start ``server.py`` first, then::

    python examples/hello/client.py [port]
"""

import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765


def hello(port: int = PORT) -> None:
    uri = f"ws://{HOST}:{port}/"
    with syncws.connect(uri) as websocket:
        name = input("What's your name? ")

        websocket.send(name)
        print(f">>> {name}")

        greeting = websocket.recv(timeout=10, decode=True)
        print(f"<<< {greeting}")


if __name__ == "__main__":
    hello(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
