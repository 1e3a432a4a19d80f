"""A counter shared by every browser tab: + and - buttons, and how many users are online.

The page and the WebSocket share one port: ``process_request`` answers a plain HTTP
``GET /`` with ``counter.html`` and lets WebSocket handshakes through. Run::

    python examples/counter/counter.py [port]

then open http://127.0.0.1:8765/ in several tabs and click.
"""

import json
import logging
import pathlib
import sys
import threading

import syncws

HOST = "127.0.0.1"
PORT = 8765
PAGE = pathlib.Path(__file__).with_name("counter.html").read_bytes()

logging.basicConfig()



class State:
    """The application's state.

    Handlers run in many threads at once: the lock keeps the value, the set of users and
    the order of the updates sent consistent.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: set[syncws.ServerConnection] = set()
        self.value = 0

    def users_event(self) -> str:
        return json.dumps({"type": "users", "count": len(self.users)})

    def value_event(self) -> str:
        return json.dumps({"type": "value", "value": self.value})


STATE = State()


def process_request(
    connection: syncws.ServerConnection, request: syncws.Request
) -> syncws.Response | None:
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None  # a WebSocket handshake: go on with it
    if request.path != "/":
        return connection.respond(404, "Not Found\n")
    headers = syncws.Headers(
        {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Length": str(len(PAGE)),
            "Connection": "close",
        }
    )
    return syncws.Response(200, "OK", headers, PAGE)


def counter(websocket: syncws.ServerConnection) -> None:
    state = STATE
    # Every message goes out with broadcast(), under the lock: it never blocks, and the lock
    # keeps every client's updates in the same order. broadcast() skips a connection while
    # another thread sends on it, so a plain send() of the first value, outside the lock,
    # could make an update from another tab skip this one.
    with state.lock:
        state.users.add(websocket)
        syncws.broadcast(state.users, state.users_event())
        syncws.broadcast([websocket], state.value_event())
    try:
        for message in websocket:
            event = json.loads(message)
            with state.lock:
                if event["action"] == "minus":
                    state.value -= 1
                elif event["action"] == "plus":
                    state.value += 1
                else:
                    logging.error("unsupported event: %s", event)
                    continue
                syncws.broadcast(state.users, state.value_event())
    finally:
        with state.lock:
            state.users.remove(websocket)
            syncws.broadcast(state.users, state.users_event())


def main(port: int = PORT) -> None:
    with syncws.serve(counter, HOST, port, process_request=process_request) as server:
        print(f"Listening on http://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
