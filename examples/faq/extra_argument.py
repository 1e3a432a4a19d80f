"""Pass extra arguments to a handler, with :func:`functools.partial`.

The server calls a handler with the connection only. To give it more, bind them first:
here every reply starts with a prefix chosen when the server starts. Defining the handler
inside a function that holds the value works too. Run::

    python examples/faq/extra_argument.py [port]
"""

import functools
import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765


def handler(websocket: syncws.ServerConnection, prefix: str) -> None:
    for message in websocket:
        websocket.send(f"{prefix}{message!s}")


def main(port: int = PORT) -> None:
    bound_handler = functools.partial(handler, prefix="spam: ")
    with syncws.serve(bound_handler, HOST, port) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
