"""The counter demo app, run in this process with :func:`syncws.demo.serve_demo`."""

from __future__ import annotations

import http.client
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from io_helpers import TIMEOUT, running
from prometheus_client.parser import text_string_to_metric_families

from syncws.client import ClientConnection, connect
from syncws.demo import PAGE, serve_demo
from syncws.exceptions import ConnectionClosedError, InvalidStatus
from syncws.server import Server

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture
def demo() -> Iterator[Server]:
    with serve_demo("127.0.0.1", 0) as server, running(server):
        yield server


def uri(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def receive(websocket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(websocket.recv(timeout=TIMEOUT))
    return message


def join(server: Server, users: int) -> ClientConnection:
    """Connect a client and read what the app greets it with."""
    websocket = connect(uri(server), open_timeout=TIMEOUT)
    assert receive(websocket)["type"] == "value"
    assert receive(websocket) == {"type": "users", "count": users}
    return websocket


def get(server: Server, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    """Send ``GET path``; return the response and its body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port or 0, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


# The page.


def test_the_page_is_served_at_the_root(demo: Server) -> None:
    response, body = get(demo, "/")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.getheader("Content-Length") == str(len(body))
    assert body.decode() == PAGE
    assert "default-src 'none'" in (response.getheader("Content-Security-Policy") or "")


def test_a_query_string_still_gets_the_page(demo: Server) -> None:
    assert get(demo, "/?from=bookmark")[0].status == 200


def test_other_paths_get_404(demo: Server) -> None:
    assert get(demo, "/favicon.ico")[0].status == 404
    assert get(demo, "/index.html")[0].status == 404
    with pytest.raises(InvalidStatus) as raised:
        connect(f"{uri(demo)}elsewhere", open_timeout=TIMEOUT)
    assert raised.value.response.status_code == 404


def test_the_page_loads_nothing_from_elsewhere() -> None:
    # Every resource is inline: the only URL the page names is the empty data: icon.
    assert re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", PAGE) == ["data:,"]
    assert "@import" not in PAGE
    assert "url(" not in PAGE


def test_the_page_has_what_the_app_updates() -> None:
    for element in ('id="value"', 'id="users"', 'id="plus"', 'id="minus"'):
        assert element in PAGE
    # The page opens its WebSocket on the URL it was loaded from, and opens it again when it
    # closes, so that a restarted server is found again.
    assert 'location.host + "/"' in PAGE
    assert "setTimeout(connect" in PAGE


# The app.


def test_a_new_client_gets_the_value_and_everyone_the_count(demo: Server) -> None:
    with join(demo, users=1) as first, join(demo, users=2) as second:
        assert receive(first) == {"type": "users", "count": 2}
        second.close()
        assert receive(first) == {"type": "users", "count": 1}


def test_changes_reach_every_client_in_the_same_order(demo: Server) -> None:
    with join(demo, 1) as alice, join(demo, 2) as bob, join(demo, 3) as carol:
        assert receive(alice) == {"type": "users", "count": 2}
        assert receive(alice) == {"type": "users", "count": 3}
        assert receive(bob) == {"type": "users", "count": 3}
        actions = ["plus", "plus", "minus", "plus"]
        senders = [alice, bob, carol, alice]
        for sender, action in zip(senders, actions, strict=True):
            sender.send(json.dumps({"action": action}))
        # Each change is one broadcast under one lock: every client sees every value, in
        # the same order, whatever the order in which the server took the actions.
        seen = [[receive(websocket)["value"] for _ in actions] for websocket in (alice, bob, carol)]
        assert seen[0] == seen[1] == seen[2]
        assert seen[0][-1] == 2
        assert all(abs(b - a) == 1 for a, b in zip([0, *seen[0]], seen[0], strict=False))


def test_a_late_client_starts_from_the_current_value(demo: Server) -> None:
    with join(demo, 1) as first:
        for _ in range(3):
            first.send('{"action": "minus"}')
        assert [receive(first)["value"] for _ in range(3)] == [-1, -2, -3]
        with connect(uri(demo), open_timeout=TIMEOUT) as late:
            assert receive(late) == {"type": "value", "value": -3}


@pytest.mark.parametrize(
    "message",
    [
        "plus",
        "{not json",
        "[]",
        '"plus"',
        "{}",
        '{"action": "reset"}',
        '{"action": 1}',
        '{"action": "plus", "times": 100}',
        '{"action": ["plus"]}',
        b'{"action": "plus"}',
    ],
)
def test_anything_else_gets_an_error_and_changes_nothing(
    demo: Server, message: str | bytes
) -> None:
    with join(demo, 1) as websocket:
        websocket.send(message)
        reply = receive(websocket)
        assert reply["type"] == "error"
        assert "plus" in reply["message"]
        # The connection still works and the value did not move.
        websocket.send('{"action": "plus"}')
        assert receive(websocket) == {"type": "value", "value": 1}


def test_an_oversized_message_closes_that_connection_only(demo: Server) -> None:
    with join(demo, 1) as good, join(demo, 2) as bad:
        assert receive(good) == {"type": "users", "count": 2}
        bad.send(json.dumps({"action": "plus", "padding": "x" * 2000}))
        with pytest.raises(ConnectionClosedError) as raised:
            bad.recv(timeout=TIMEOUT)
        assert raised.value.code == 1009
        assert receive(good) == {"type": "users", "count": 1}
        good.send('{"action": "plus"}')
        assert receive(good) == {"type": "value", "value": 1}


def test_each_server_has_its_own_counter() -> None:
    with (
        serve_demo("127.0.0.1", 0) as one,
        serve_demo("127.0.0.1", 0) as two,
        running(one),
        running(two),
        join(one, 1) as a,
        join(two, 1) as b,
    ):
        a.send('{"action": "plus"}')
        assert receive(a) == {"type": "value", "value": 1}
        b.send('{"action": "minus"}')
        assert receive(b) == {"type": "value", "value": -1}


def test_serve_demo_passes_options_to_serve() -> None:
    with (
        serve_demo("127.0.0.1", 0, max_size=2**16, server_header="counter") as server,
        running(server),
    ):
        assert get(server, "/")[0].getheader("Server") == "counter"
        with join(server, 1) as websocket:
            # 2 KiB is over the default limit of the demo, under this one.
            websocket.send(json.dumps({"action": "plus", "padding": "x" * 2000}))
            assert receive(websocket)["type"] == "error"


# What the server is doing.


def test_stats_show_the_connections_and_their_traffic(demo: Server) -> None:
    with join(demo, 1) as websocket:
        websocket.send(json.dumps({"action": "plus"}))
        assert receive(websocket) == {"type": "value", "value": 1}
        response, body = get(demo, "/stats")
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    stats = json.loads(body)
    assert stats["connections_open"] == 1
    assert stats["handshakes_accepted"] == 1
    assert stats["traffic"]["messages_received"] == 1
    assert stats["traffic"]["messages_sent"] == 3  # value, users, new value


def test_metrics_are_in_prometheus_format(demo: Server) -> None:
    with join(demo, 1):
        response, body = get(demo, "/metrics")
    assert response.status == 200
    assert (response.getheader("Content-Type") or "").startswith("text/plain")
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert samples["syncws_connections_open"] == 1
    assert samples["syncws_messages_sent_total"] == 2


def test_metrics_without_prometheus_client_say_what_to_install(
    demo: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "syncws.prometheus", raising=False)
    response, body = get(demo, "/metrics")
    assert response.status == 404
    assert b"syncws[prometheus]" in body
