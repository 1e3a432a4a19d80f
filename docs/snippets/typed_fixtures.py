"""Tests that use the fixtures of the syncws pytest plugin, annotated for mypy --strict."""

from __future__ import annotations

import syncws
from syncws.testing import ConnectedPair, ServerFactory, assert_receives


def echo(websocket: syncws.ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def test_echo(syncws_server: ServerFactory) -> None:
    running = syncws_server(echo, compression=None)
    with syncws.connect(running.uri) as websocket:
        websocket.send("hello")
        assert_receives(websocket, "hello")


def test_pair(syncws_pair: ConnectedPair) -> None:
    client, server = syncws_pair
    server.send("hello")
    assert_receives(client, "hello")
