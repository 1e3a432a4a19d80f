"""Hello world, the server: receive a name, answer ``Hello <name>!``.

Run it, then run ``client.py`` next to it in another terminal::

    python examples/hello/server.py [port]

Stop it with Ctrl-C.
"""

import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765


def hello(websocket: syncws.ServerConnection) -> None:
    name = websocket.recv(timeout=10, decode=True)
    print(f"<<< {name}")

    greeting = f"Hello {name}!"

    websocket.send(greeting)
    print(f">>> {greeting}")
    # When the handler returns, the server closes the connection.


def main(port: int = PORT) -> None:
    with syncws.serve(hello, HOST, port) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()
    # Leaving the block shuts the server down, e.g. on Ctrl-C.


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
