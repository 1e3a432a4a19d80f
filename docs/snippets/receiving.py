"""The ways to receive messages."""

import json
from typing import Any

import syncws


def print_all(websocket: syncws.ClientConnection) -> None:
    # Iteration returns when the connection closes normally (1000 or 1001), and raises
    # ConnectionClosedError when it ends any other way.
    for message in websocket:
        print(message)


def next_or_none(websocket: syncws.ClientConnection, timeout: float) -> str | bytes | None:
    # recv(timeout=...) raises TimeoutError when nothing came in time. Nothing is lost then:
    # a message that arrives later is returned by the next call.
    try:
        return websocket.recv(timeout=timeout)
    except TimeoutError:
        return None


def drain(websocket: syncws.ClientConnection) -> list[str | bytes]:
    # timeout=0 never waits: it takes what is already here.
    messages: list[str | bytes] = []
    while True:
        try:
            messages.append(websocket.recv(timeout=0))
        except TimeoutError:
            return messages


def recv_json(websocket: syncws.ClientConnection, timeout: float = 10) -> Any:
    # decode=False returns bytes whether the message is text or binary, without decoding
    # UTF-8: json.loads() takes bytes. decode=True returns str for both.
    return json.loads(websocket.recv(timeout, decode=False))
