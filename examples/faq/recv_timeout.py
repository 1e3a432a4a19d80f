"""Wait for a message at most a few seconds, with ``recv(timeout=...)``.

``recv()`` raises the builtin :exc:`TimeoutError` when no message came in time. A timeout
loses nothing: a message that arrives later is returned by the next call. Run::

    python examples/faq/recv_timeout.py [port] [timeout]

against any server, e.g. ``show_time.py``; it prints the first message, or that none came.
"""

import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765
TIMEOUT = 10.0


def main(port: int = PORT, timeout: float = TIMEOUT) -> None:
    with syncws.connect(f"ws://{HOST}:{port}/") as websocket:
        try:
            message = websocket.recv(timeout=timeout)
        except TimeoutError:
            print(f"No message within {timeout} seconds")
        else:
            print(f"Received: {message!s}")


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else PORT,
        float(sys.argv[2]) if len(sys.argv) > 2 else TIMEOUT,
    )
