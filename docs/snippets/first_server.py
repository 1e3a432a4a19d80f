"""An echo server: every message a client sends comes back to it."""

import contextlib
import os

import syncws


def echo(websocket: syncws.ServerConnection) -> None:
    # This runs in a worker thread of its own, one per connection. Iteration ends when the
    # client closes the connection; returning closes it from this side with code 1000.
    for message in websocket:
        websocket.send(message)


def main() -> None:
    port = int(os.environ.get("PORT", "8765"))
    with syncws.serve(echo, "localhost", port) as server:
        print(f"listening on port {server.port}", flush=True)
        # Ctrl-C interrupts serve_forever() with KeyboardInterrupt.
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    # Leaving the block shut the server down: every connection was closed with 1001.


if __name__ == "__main__":
    main()
