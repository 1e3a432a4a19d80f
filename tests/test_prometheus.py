"""syncws.prometheus, scraped over HTTP from a running server after real traffic."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request
from typing import Any

import pytest
from io_helpers import TIMEOUT, client, running, wait_for
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from syncws.connection import broadcast
from syncws.core.http11 import Request, Response
from syncws.exceptions import InvalidStatus
from syncws.prometheus import ServerCollector
from syncws.server import ServerConnection, serve

pytestmark = pytest.mark.usefixtures("no_leaks")


def echo(connection: ServerConnection) -> None:
    for message in connection:
        connection.send(message)


def reject_private(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/private":
        return connection.respond(403, "Forbidden\n")
    return None


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape the registry over HTTP, as Prometheus does: {(sample, labels): value}."""
    httpd, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = httpd.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as reply:
            text = reply.read().decode()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_scraping_a_running_server_reports_its_connections_and_traffic() -> None:
    registry = CollectorRegistry()
    proceed = threading.Event()
    opened: list[ServerConnection] = []

    def handler(connection: ServerConnection) -> None:
        if connection.request is not None and connection.request.path == "/wait":
            opened.append(connection)
            proceed.wait(TIMEOUT)
            return
        echo(connection)

    config: dict[str, Any] = {"compression": None, "process_request": reject_private}
    with running(serve(handler, "127.0.0.1", 0, **config)) as server:
        ServerCollector(server, registry=registry, labels={"server": "test"})
        uri = f"ws://127.0.0.1:{server.port}/"
        with client(uri) as connection:
            for _ in range(3):
                connection.send("hello")  # 11 bytes each, masked
                assert connection.recv(TIMEOUT) == "hello"
        closing = client(uri)
        closing.close(4000, "bye")
        with pytest.raises(InvalidStatus):
            client(uri + "private")
        waiting = client(uri + "wait")
        assert wait_for(lambda: bool(opened) and dict(server.stats.closes) == {1000: 1, 4000: 1})
        assert wait_for(lambda: server.stats.workers_busy == 1)
        assert broadcast(opened, b"x" * 100) == []  # to the open connection
        assert waiting.recv(TIMEOUT) == b"x" * 100
        metrics = scrape(registry)
        proceed.set()
        waiting.close()

    def value(name: str, **labels: str) -> float:
        return metrics[(name, tuple(sorted({"server": "test", **labels}.items())))]

    assert value("syncws_connections_open") == 1
    assert value("syncws_handshakes_total", status="101") == 3
    assert value("syncws_handshakes_total", status="403") == 1
    assert value("syncws_closes_total", code="1000") == 1
    assert value("syncws_closes_total", code="4000") == 1
    assert value("syncws_workers", state="busy") == 1
    assert value("syncws_refused_busy_total") == value("syncws_accept_errors_total") == 0
    # The closed connections' traffic, and the open one's broadcast.
    assert value("syncws_messages_received_total") == 3
    assert value("syncws_messages_sent_total") == 3 + 1
    assert value("syncws_bytes_received_total") == 3 * 11 + 8 + 11  # hellos and two Closes
    assert value("syncws_bytes_sent_total") == 3 * 7 + 4 + 7 + (100 + 2)
    assert value("syncws_broadcast_skipped_total") == 0
    assert value("syncws_queued_messages") == value("syncws_write_backlog_bytes") == 0


def test_a_collector_registers_once_per_registry() -> None:
    registry = CollectorRegistry()
    with running(serve(echo, "127.0.0.1", 0)) as server:
        collector = ServerCollector(server, registry=registry)
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            ServerCollector(server, registry=registry)
        unregistered = ServerCollector(server, registry=None)
        assert unregistered.server is collector.server is server
        assert registry.get_sample_value("syncws_connections_open") == 0


def test_importing_without_prometheus_client_says_which_extra_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "try:\n"
        "    import syncws.prometheus\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "install syncws[prometheus]" in result.stdout
