"""An echo server and a client that talks to it, in one program."""

import threading

import syncws


def echo(websocket: syncws.ServerConnection) -> None:
    # Each connection runs in its own worker thread; iteration ends when the client closes.
    for message in websocket:
        websocket.send(message)


with syncws.serve(echo, "127.0.0.1", 0) as server:
    threading.Thread(target=server.serve_forever).start()
    with syncws.connect(f"ws://127.0.0.1:{server.port}/") as websocket:
        websocket.send("Hello world!")
        print(websocket.recv(timeout=10))
# Leaving the server's block shut it down: serve_forever() returned, every thread ended.
