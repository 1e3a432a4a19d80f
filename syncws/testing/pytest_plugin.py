"""The syncws pytest plugin: fixtures for tests of programs that use syncws.

Installing syncws registers it (entry point ``pytest11``), so the fixtures are available in
every test session; ``-p no:syncws`` turns it off. It defines fixtures and nothing else: no
hook, no option, no autouse fixture, so sessions that don't use them are not affected.

* ``syncws_server``: a factory; ``syncws_server(handler, **serve_options)`` starts a server
  with :func:`~syncws.testing.run_server` and returns its
  :class:`~syncws.testing.RunningServer`. Every server started this way is shut down after
  the test. Its type is :class:`~syncws.testing.ServerFactory`.
* ``syncws_pair``: a ``(client, server)`` pair of connected connections, from
  :func:`~syncws.testing.connected_pair` with its defaults, closed after the test. Its type
  is :data:`~syncws.testing.ConnectedPair`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from typing_extensions import Unpack

from ..server import Handler, ServeKeywords
from . import ConnectedPair, RunningServer, ServerFactory, connected_pair, run_server

__all__ = ["syncws_pair", "syncws_server"]


@pytest.fixture
def syncws_server() -> Iterator[ServerFactory]:
    """Start servers in background threads; they are shut down after the test.

    Example::

        def test_echo(syncws_server):
            running = syncws_server(echo)
            with syncws.connect(running.uri) as websocket:
                ...
    """
    with contextlib.ExitStack() as stack:

        def start(
            handler: Handler,
            host: str = "127.0.0.1",
            *,
            shutdown_timeout: float = 10,
            **serve_options: Unpack[ServeKeywords],
        ) -> RunningServer:
            return stack.enter_context(
                run_server(handler, host, shutdown_timeout=shutdown_timeout, **serve_options)
            )

        yield start


@pytest.fixture
def syncws_pair() -> Iterator[ConnectedPair]:
    """A connected ``(client, server)`` pair over a socket pair, closed after the test."""
    with connected_pair() as pair:
        yield pair
