"""Close a client connection cleanly on SIGTERM.

The client prints every message until the server closes the connection or the process
gets SIGTERM. The signal handler runs in the main thread, which may be in the middle of
receiving: it starts the closing handshake from another thread, which wakes the loop, and
the loop ends once the connection is closed (code 1000). Run::

    python examples/faq/client_sigterm.py [port]

against a server that sends messages, e.g. ``show_time.py``, then ``kill -TERM <pid>``.
Unix only.
"""

import signal
import sys
import threading
from types import FrameType

import syncws

HOST = "127.0.0.1"
PORT = 8765


def main(port: int = PORT) -> None:
    with syncws.connect(f"ws://{HOST}:{port}/") as websocket:

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            # close() waits for the closing handshake, which this thread may be reading:
            # run it in a thread of its own.
            threading.Thread(target=websocket.close, name="close-on-sigterm").start()

        signal.signal(signal.SIGTERM, on_sigterm)
        print("Connected")
        for message in websocket:
            print(message)
    print(f"Connection closed with code {websocket.close_code}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
