"""Three handlers: how a handler ends decides how its connection closes."""

import json

import syncws


def greet(websocket: syncws.ServerConnection) -> None:
    # One question, one answer. Returning closes the connection with 1000 (normal closure).
    name = websocket.recv(timeout=30, decode=True)
    websocket.send(f"Hello {name}!")


def add(websocket: syncws.ServerConnection) -> None:
    # An exception closes the connection with 1011 (internal error) and is logged with its
    # traceback by the "syncws.server" logger. Here, a message that is not a JSON list of
    # numbers raises.
    for message in websocket:
        numbers = json.loads(message)
        websocket.send(str(sum(numbers)))


def policy(websocket: syncws.ServerConnection) -> None:
    # To close with a code of your choice, call close() before returning.
    if websocket.request is None or websocket.request.path != "/v2":
        websocket.close(1008, "this server speaks /v2 only")
        return
    websocket.send("welcome to v2")
