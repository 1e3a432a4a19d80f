"""Serve several WebSocket endpoints on one port, a handler for each path.

``route()`` is ``serve()`` with a Werkzeug URL map in place of the handler: each rule names
the handler for its paths, and what the rule's converters capture in the path is passed to
the handler as keyword arguments. Here:

* ``/echo`` sends back every message;
* ``/rooms/<name>`` relays each message to the others in the same room;
* ``/countdown/<int:start>`` counts down from ``start`` to 0, then closes.

Any other path is answered ``404 Not Found``. ``process_request`` still works: it runs before
the routing, and answers ``/healthz`` for a load balancer. Werkzeug comes with the
``router`` extra. Run::

    pip install -e '.[router]'
    python examples/routing/server.py [port]

then, in other terminals::

    syncws connect ws://127.0.0.1:8765/rooms/lobby
    syncws connect ws://127.0.0.1:8765/countdown/5
"""

import sys
import threading

from werkzeug.routing import Map, Rule

import syncws
from syncws.router import route

HOST = "127.0.0.1"
PORT = 8765

# The connections in each room, by name.
rooms: dict[str, set[syncws.ServerConnection]] = {}
rooms_lock = threading.Lock()


def echo(websocket: syncws.ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def room(websocket: syncws.ServerConnection, name: str) -> None:
    with rooms_lock:
        rooms.setdefault(name, set()).add(websocket)
    try:
        for message in websocket:
            with rooms_lock:
                others = rooms[name] - {websocket}
            syncws.broadcast(others, message)
    finally:
        with rooms_lock:
            rooms[name].discard(websocket)
            if not rooms[name]:
                del rooms[name]


def countdown(websocket: syncws.ServerConnection, start: int) -> None:
    for number in range(start, -1, -1):
        websocket.send(str(number))


url_map = Map(
    [
        Rule("/echo", endpoint=echo),
        Rule("/rooms/<name>", endpoint=room),
        Rule("/countdown/<int:start>", endpoint=countdown),
    ]
)


def health_check(
    connection: syncws.ServerConnection, request: syncws.Request
) -> syncws.Response | None:
    if request.path == "/healthz":
        return connection.respond(200, "OK\n")
    return None


def main(port: int = PORT) -> None:
    with route(url_map, HOST, port, process_request=health_check) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
