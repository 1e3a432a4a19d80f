"""Tests of subprotocol negotiation through the I/O layer: serve() and syncws.wsgi.accept().

``select_subprotocol`` is called with the connection, as in websockets.sync, and the default
rule picks the server's preferred subprotocol, as websockets does. Clients: syncws's and the
``websockets`` sync client; everything listens on 127.0.0.1 with ephemeral ports.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from io_helpers import TIMEOUT, client, running, syncws_echo, ws_server
from io_helpers import echo as ws_echo
from test_wsgi import werkzeug_server
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

import syncws.wsgi
from syncws.exceptions import InvalidStatus, NegotiationError
from syncws.server import ServerConnection, serve

pytestmark = pytest.mark.usefixtures("no_leaks")


@contextlib.contextmanager
def syncws_server(**kwargs: Any) -> Iterator[str]:
    """serve() with the echo handler on a free port of 127.0.0.1; yield its URI."""
    with running(serve(syncws_echo, "127.0.0.1", 0, close_timeout=2, **kwargs)) as server:
        yield f"ws://127.0.0.1:{server.port}/"


@contextlib.contextmanager
def wsgi_server(**kwargs: Any) -> Iterator[str]:
    """syncws.wsgi.WebSocketApp with the echo handler in Werkzeug's server; yield its URI."""
    app = syncws.wsgi.WebSocketApp(syncws_echo, close_timeout=2, **kwargs)
    with werkzeug_server(app) as port:
        yield f"ws://127.0.0.1:{port}/"


def syncws_subprotocol(uri: str, offered: Sequence[str]) -> str | None:
    """Connect with syncws's client offering ``offered``; the subprotocol agreed."""
    with client(uri, subprotocols=offered) as connection:
        connection.send("ping")
        assert connection.recv(TIMEOUT) == "ping"
        return connection.subprotocol


def websockets_subprotocol(uri: str, offered: Sequence[str]) -> str | None:
    """The same with the websockets client."""
    subprotocols = [Subprotocol(name) for name in offered]
    with ws_connect(uri, subprotocols=subprotocols, open_timeout=TIMEOUT, proxy=None) as connection:
        connection.send("ping")
        assert connection.recv(TIMEOUT) == "ping"
        return connection.subprotocol


SERVERS = [pytest.param(syncws_server, id="serve"), pytest.param(wsgi_server, id="wsgi")]
CLIENTS = [
    pytest.param(syncws_subprotocol, id="syncws"),
    pytest.param(websockets_subprotocol, id="websockets"),
]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("open_client", CLIENTS)
def test_select_subprotocol_is_called_with_the_connection(
    server: Callable[..., contextlib.AbstractContextManager[str]],
    open_client: Callable[[str, Sequence[str]], str | None],
) -> None:
    calls: queue.Queue[tuple[object, Any, list[str]]] = queue.Queue()

    def select(connection: ServerConnection, offered: Sequence[str]) -> str | None:
        calls.put((connection, connection.remote_address, list(offered)))
        return offered[-1]

    with server(select_subprotocol=select) as uri:
        assert open_client(uri, ["a", "b", "c"]) == "c"
    connection, remote_address, offered = calls.get(timeout=TIMEOUT)
    assert isinstance(connection, ServerConnection)
    assert remote_address[0] == "127.0.0.1"
    assert offered == ["a", "b", "c"]
    assert calls.empty()


@pytest.mark.parametrize("server", SERVERS)
def test_select_subprotocol_may_refuse(
    server: Callable[..., contextlib.AbstractContextManager[str]],
) -> None:
    def select(connection: ServerConnection, offered: Sequence[str]) -> str | None:
        raise NegotiationError(f"{connection.remote_address[0]} offered nothing we speak")

    with server(select_subprotocol=select) as uri, pytest.raises(InvalidStatus) as exc_info:
        client(uri, subprotocols=["a"])
    response = exc_info.value.response
    assert response.status_code == 400
    assert b"127.0.0.1 offered nothing we speak" in response.body


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("open_client", CLIENTS)
def test_default_picks_the_servers_preference(
    server: Callable[..., contextlib.AbstractContextManager[str]],
    open_client: Callable[[str, Sequence[str]], str | None],
) -> None:
    with server(subprotocols=["chat", "superchat"]) as uri:
        assert open_client(uri, ["superchat", "chat"]) == "chat"
        assert open_client(uri, ["superchat", "other"]) == "superchat"


def test_default_matches_websockets() -> None:
    supported = ["v1", "v2", "v3"]
    offers = [["v3", "v1"], ["v2", "v3"], ["v3", "v2", "v1"], ["v3"]]
    with (
        ws_server(ws_echo, subprotocols=supported) as reference,
        syncws_server(subprotocols=supported) as uri,
    ):
        for offered in offers:
            expected = websockets_subprotocol(reference.uri, offered)
            assert syncws_subprotocol(uri, offered) == expected, offered
