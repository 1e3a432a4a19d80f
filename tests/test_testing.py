"""Tests of the helpers for users' tests: servers in a thread, connected pairs, assertions on
received messages, and the pytest plugin (run in a pytest of its own with ``pytester``)."""

from __future__ import annotations

import pytest
from io_helpers import echo, require_ipv6_loopback, wait_for, ws_server

import syncws
from syncws.core.protocol import State
from syncws.exceptions import ConnectionClosedError
from syncws.server import ServerConnection
from syncws.testing import (
    assert_closes,
    assert_receives,
    connected_pair,
    receive_all,
    run_server,
    run_unix_server,
)

pytest_plugins = ["pytester"]


pytestmark = pytest.mark.usefixtures("no_leaks")


def echo_handler(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


# run_server


def test_run_server_serves_and_stops() -> None:
    with run_server(echo_handler) as running:
        assert running.uri == f"ws://127.0.0.1:{running.port}/"
        assert running.path is None
        with syncws.connect(running.uri) as websocket:
            websocket.send("hello")
            assert_receives(websocket, "hello")
            assert len(running.server.connections) == 1
    # Shut down: nothing listens any more.
    with pytest.raises(ConnectionRefusedError):
        syncws.connect(running.uri, open_timeout=5)


def test_run_server_closes_open_connections() -> None:
    with run_server(echo_handler) as running:
        websocket = syncws.connect(running.uri)
        assert wait_for(lambda: len(running.server.connections) == 1)
    assert_closes(websocket)
    assert not running.server.connections


def test_run_server_passes_serve_options() -> None:
    with (
        run_server(echo_handler, subprotocols=["chat"]) as running,
        syncws.connect(running.uri, subprotocols=["chat"]) as websocket,
    ):
        assert websocket.subprotocol == "chat"


def test_run_server_on_ipv6_loopback() -> None:
    require_ipv6_loopback()
    with run_server(echo_handler, "::1") as running:
        assert running.uri == f"ws://[::1]:{running.port}/"
        with syncws.connect(running.uri) as websocket:
            websocket.send(b"\x00\x01")
            assert_receives(websocket, b"\x00\x01")


def test_run_unix_server() -> None:
    with run_unix_server(echo_handler) as running:
        assert running.port is None
        assert running.path is not None
        with syncws.unix_connect(running.path) as websocket:
            websocket.send("over a Unix socket")
            assert_receives(websocket, "over a Unix socket")


# connected_pair


def test_connected_pair_exchanges_messages() -> None:
    with connected_pair() as (client, server):
        assert client.protocol.side is not server.protocol.side
        client.send("to the server")
        assert_receives(server, "to the server")
        server.send(b"to the client")
        assert_receives(client, b"to the client")
        assert server.request is not None
        assert server.request.path == "/"
    assert client.state is State.CLOSED
    assert server.state is State.CLOSED
    assert client.close_code == 1000
    assert server.close_code == 1000


def test_connected_pair_options() -> None:
    with connected_pair(
        path="/room?id=1", compression=None, subprotocols=["v2", "v1"], max_size=100
    ) as (client, server):
        assert server.request is not None
        assert server.request.path == "/room?id=1"
        assert client.subprotocol == server.subprotocol == "v2"
        assert client.protocol.extensions == server.protocol.extensions == []
        client.send("x" * 101)
        assert_closes(client, code=1009)


def test_connected_pair_negotiates_compression() -> None:
    with connected_pair() as (client, server):
        assert [extension.name for extension in client.protocol.extensions] == [
            "permessage-deflate"
        ]
        client.send("a" * 10_000)
        assert_receives(server, "a" * 10_000)


# Assertions


def test_assert_receives_returns_the_message() -> None:
    with connected_pair() as (client, server):
        client.send("hi")
        assert assert_receives(server, "hi") == "hi"
        client.send(b"hi")
        assert assert_receives(server, b"hi") == b"hi"


def test_assert_receives_shows_another_message() -> None:
    with connected_pair() as (client, server):
        client.send("goodbye")
        with pytest.raises(AssertionError, match=r"expected text 'hello', received text 'goodbye'"):
            assert_receives(server, "hello")


def test_assert_receives_tells_text_from_binary() -> None:
    with connected_pair() as (client, server):
        client.send(b"hello")
        with pytest.raises(AssertionError, match=r"text 'hello', received binary b'hello'"):
            assert_receives(server, "hello")


def test_assert_receives_shortens_long_messages() -> None:
    with connected_pair() as (client, server):
        client.send("x" * 10_000)
        with pytest.raises(AssertionError, match=r"\.\.\. \(10000 characters\)") as info:
            assert_receives(server, "y")
        assert len(str(info.value)) < 400


def test_assert_receives_nothing_came() -> None:
    with (
        connected_pair() as (_, server),
        pytest.raises(AssertionError, match=r"expected text 'hi', received nothing within 0.05 s"),
    ):
        assert_receives(server, "hi", timeout=0.05)


def test_assert_receives_connection_closed() -> None:
    with connected_pair() as (client, server):
        client.close(1001, "bye")
        with pytest.raises(
            AssertionError,
            match=r"expected text 'hi', but the connection closed with code 1001, reason 'bye'",
        ):
            assert_receives(server, "hi")


def test_receive_all() -> None:
    with connected_pair() as (client, server):
        for number in range(5):
            client.send(str(number))
        assert receive_all(server, 5) == ["0", "1", "2", "3", "4"]


def test_receive_all_lists_what_came() -> None:
    with connected_pair() as (client, server):
        client.send("one")
        client.send(b"two")
        with pytest.raises(
            AssertionError,
            match=r"expected 3 messages within 0.1 s, received 2: \[text 'one', binary b'two'\]",
        ):
            receive_all(server, 3, timeout=0.1)


def test_receive_all_connection_closed() -> None:
    with connected_pair() as (client, server):
        client.send("one")
        client.close()
        with pytest.raises(
            AssertionError, match=r"closed with code 1000, reason '' after 1: \[text 'one'\]"
        ):
            receive_all(server, 2)


def test_assert_closes() -> None:
    with connected_pair() as (client, server):
        server.close(4000, "done")
        closed = assert_closes(client, code=4000, reason="done")
        assert isinstance(closed, ConnectionClosedError)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 4000


def test_assert_closes_without_code_accepts_any() -> None:
    with connected_pair() as (client, server):
        client.abort()
        assert assert_closes(server).code == 1006


def test_assert_closes_wrong_code_or_reason() -> None:
    with connected_pair() as (client, server):
        server.close(1001, "restart")
        with pytest.raises(
            AssertionError,
            match=r"with code 1000, reason 'done'; it closed with code 1001, reason 'restart'",
        ):
            assert_closes(client, code=1000, reason="done")


def test_assert_closes_message_first() -> None:
    with connected_pair() as (client, server):
        server.send("not yet")
        with pytest.raises(
            AssertionError, match=r"expected the connection to close, received text 'not yet'"
        ):
            assert_closes(client)


def test_assert_closes_stays_open() -> None:
    with (
        connected_pair() as (client, _),
        pytest.raises(AssertionError, match=r"did not close within 0.05 s"),
    ):
        assert_closes(client, timeout=0.05)


def test_helpers_with_a_websockets_server() -> None:
    # The assertions work on any syncws connection, whatever the peer.
    with ws_server(echo) as server, syncws.connect(server.uri) as websocket:
        websocket.send("one")
        websocket.send("two")
        assert receive_all(websocket, 2) == ["one", "two"]


# The pytest plugin, in a pytest session of its own.

PLUGIN_TESTS = """
import threading

import syncws
from syncws.testing import assert_receives


def echo(websocket):
    for message in websocket:
        websocket.send(message)


def test_server_factory(syncws_server):
    first = syncws_server(echo)
    second = syncws_server(echo, compression=None)
    assert first.port != second.port
    for running in (first, second):
        with syncws.connect(running.uri) as websocket:
            websocket.send("hi")
            assert_receives(websocket, "hi")


def test_pair(syncws_pair):
    client, server = syncws_pair
    server.send("hello")
    assert_receives(client, "hello")


def test_nothing_left_running():
    names = [thread.name for thread in threading.enumerate()]
    assert not [name for name in names if name.startswith("syncws-") and name != "syncws-timer"]
"""


def test_plugin_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=60)
    result.assert_outcomes(passed=3)


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:syncws", timeout=60)
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*fixture 'syncws_server' not found*"])


def test_plugin_leaves_other_sessions_alone(pytester: pytest.Pytester) -> None:
    # A session that uses no fixture of the plugin starts no thread and has no new hook.
    pytester.makepyfile(
        """
        import threading

        def test_plain():
            assert [t.name for t in threading.enumerate()] == ["MainThread"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1)
    listed = pytester.runpytest_subprocess("--fixtures", timeout=60)
    listed.stdout.fnmatch_lines(["*syncws_server*", "*syncws_pair*"])
