"""Stop a server cleanly on SIGTERM, as process managers, Docker and systemd send it.

The signal handler only asks the server to close: it stops accepting and sends every
client a Close frame with code 1001 (going away), without waiting. ``serve_forever()``
returns, and leaving the ``with`` block waits for every handler to finish. Run::

    python examples/faq/server_sigterm.py [port]

then ``kill -TERM <pid>``. Unix only.
"""

import signal
import sys
from types import FrameType

import syncws

HOST = "127.0.0.1"
PORT = 8765


def echo(websocket: syncws.ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def main(port: int = PORT) -> None:
    with syncws.serve(echo, HOST, port) as server:

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            server.close()

        signal.signal(signal.SIGTERM, on_sigterm)
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()
    print("Server stopped")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
