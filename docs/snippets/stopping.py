"""A server that stops cleanly on SIGTERM or SIGINT (Ctrl-C)."""

import os
import signal
import threading
from types import FrameType

import syncws


def echo(websocket: syncws.ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def main() -> None:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # A signal handler only sets a flag: the main thread does the work.
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    port = int(os.environ.get("PORT", "8765"))
    server = syncws.serve(echo, "localhost", port)
    thread = threading.Thread(target=server.serve_forever, name="accept")
    thread.start()
    print(f"listening on port {server.port}", flush=True)
    stop.wait()
    # Clients get a Close with 1001 (going away). Handlers still running after 10 seconds
    # have their connections aborted; then shutdown() returns.
    server.shutdown(timeout=10)
    thread.join()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
