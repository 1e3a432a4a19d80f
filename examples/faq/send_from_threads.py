"""Send on one connection from several threads at once.

``send()`` is thread-safe: any number of threads may send on the same connection, and
their messages never interleave. Here each connection gets ``WORKERS`` threads that send
``MESSAGES`` messages each; the handler waits for them, then returns, which closes the
connection. (Receiving is for one thread at a time.) Run::

    python examples/faq/send_from_threads.py [port]
"""

import sys
import threading

import syncws

HOST = "127.0.0.1"
PORT = 8765
WORKERS = 4
MESSAGES = 25


def work(websocket: syncws.ServerConnection, worker: int) -> None:
    for number in range(MESSAGES):
        websocket.send(f"worker {worker}: message {number}")


def handler(websocket: syncws.ServerConnection) -> None:
    threads = [
        threading.Thread(target=work, args=(websocket, worker), name=f"worker-{worker}")
        for worker in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(port: int = PORT) -> None:
    with syncws.serve(handler, HOST, port) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
