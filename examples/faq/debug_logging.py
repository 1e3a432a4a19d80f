"""Turn on debug logging, to see what syncws does: handshakes, frames, closing.

syncws logs to the ``syncws`` logger and its children (``syncws.server``,
``syncws.client``). This program logs at DEBUG level to standard error while an echo
server and a client exchange one message. Run::

    python examples/faq/debug_logging.py

Debug logs show the frames, contents included: keep them off in production.
"""

import logging
import threading

import syncws

logger = logging.getLogger("syncws")
logger.setLevel(logging.DEBUG)
handler = logging.StreamHandler()
# The thread's name tells the server's worker and reader threads from the client's.
handler.setFormatter(logging.Formatter("%(threadName)s %(name)s: %(message)s"))
logger.addHandler(handler)

HOST = "127.0.0.1"
PORT = 0  # any free port: the server and the client are in this program


def echo(websocket: syncws.ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def main() -> None:
    with syncws.serve(echo, HOST, PORT) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        with syncws.connect(f"ws://{HOST}:{server.port}/") as websocket:
            websocket.send("Hello world!")
            print(websocket.recv(timeout=10))
    thread.join()


if __name__ == "__main__":
    main()
