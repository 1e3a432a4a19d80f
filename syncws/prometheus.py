"""Export a server's stats to Prometheus, with the official ``prometheus_client``.

It is an optional dependency: install the ``syncws[prometheus]`` extra (from a checkout,
``pip install -e '.[prometheus]'``). Then register a collector for the
server; every scrape takes a fresh :attr:`Server.stats <syncws.server.Server.stats>`::

    from prometheus_client import start_http_server
    from syncws.prometheus import ServerCollector

    with syncws.serve(handler, "", 8765) as server:
        ServerCollector(server)
        start_http_server(9100)
        server.serve_forever()

Traffic counters (``syncws_messages_received_total``, ``syncws_bytes_sent_total``, ...) are
summed over the server's open connections and every connection that closed.
"""

from __future__ import annotations

from collections.abc import Iterator

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover (the test extra installs it)
    raise ImportError(
        "syncws.prometheus needs prometheus_client: install syncws[prometheus]"
        " (or prometheus_client itself)"
    ) from exc

from .server import Server

__all__ = ["ServerCollector"]

# The traffic counters of ConnectionStats, as (attribute, metric name, help).
_TRAFFIC = (
    ("bytes_received", "syncws_bytes_received", "Bytes of WebSocket frames received."),
    ("bytes_sent", "syncws_bytes_sent", "Bytes of WebSocket frames the sockets took."),
    ("messages_received", "syncws_messages_received", "Messages received."),
    ("messages_sent", "syncws_messages_sent", "Messages sent, broadcasts included."),
    ("frames_received", "syncws_frames_received", "Frames received, control frames included."),
    ("frames_sent", "syncws_frames_sent", "Frames sent, control frames included."),
    ("pings_sent", "syncws_pings_sent", "Pings sent, keepalive pings included."),
    ("pongs_received", "syncws_pongs_received", "Pongs received."),
    (
        "broadcast_skipped",
        "syncws_broadcast_skipped",
        "Messages broadcast() skipped: connection not open, busy, or over write_limit.",
    ),
    (
        "paused_seconds",
        "syncws_queue_paused_seconds",
        "Seconds connections stopped reading because max_queue messages waited.",
    ),
)


class ServerCollector(Collector):
    """A Prometheus collector of a :class:`~syncws.server.Server`'s stats.

    Metrics (counters end in ``_total`` once exposed):

    - ``syncws_connections_open``: connections whose handler runs;
    - ``syncws_handshakes_total{status}``: opening handshakes by HTTP status, ``101`` for
      those accepted;
    - ``syncws_refused_busy_total``: connections answered 503 before their handshake (every
      worker busy, or the server closing);
    - ``syncws_accept_errors_total``: ``accept()`` failures and connections that could not be
      handed to a worker;
    - ``syncws_workers{state}``: worker threads, ``busy`` or ``idle``;
    - ``syncws_closes_total{code}``: connections closed, by the close code the peer sent;
    - the traffic of every connection, open or closed: ``syncws_bytes_received_total``,
      ``syncws_bytes_sent_total``, ``syncws_messages_received_total``,
      ``syncws_messages_sent_total``, ``syncws_frames_received_total``,
      ``syncws_frames_sent_total``, ``syncws_pings_sent_total``,
      ``syncws_pongs_received_total``, ``syncws_broadcast_skipped_total``,
      ``syncws_queue_paused_seconds_total``;
    - gauges of the open connections: ``syncws_queued_messages`` (received, waiting for
      ``recv()``), ``syncws_write_backlog_bytes`` (queued, not taken by the sockets yet).

    Args:
        server: the server to report on.
        registry: where to register; the default registry of ``prometheus_client``, or
            ``None`` to register it yourself.
        labels: constant labels for every metric, e.g. ``{"server": "chat"}`` when one
            process runs several servers.

    Raises:
        ValueError: a collector with the same metric names is registered in ``registry``
            already: another server's, say. Give each server a registry of its own and
            ``labels`` of its own.
    """

    def __init__(
        self,
        server: Server,
        *,
        registry: CollectorRegistry | None = REGISTRY,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.server = server
        self.labels = dict(labels or {})
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[Metric]:
        """The metrics, for the registry to check their names when registering."""
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        """The metrics, from a fresh snapshot of the server's stats."""
        stats = self.server.stats
        names = list(self.labels)
        values = list(self.labels.values())

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            metric = GaugeMetricFamily(name, documentation, labels=names)
            metric.add_metric(values, value)
            return metric

        def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
            metric = CounterMetricFamily(name, documentation, labels=names)
            metric.add_metric(values, value)
            return metric

        yield gauge(
            "syncws_connections_open", "Connections whose handler runs.", stats.connections_open
        )
        handshakes = CounterMetricFamily(
            "syncws_handshakes",
            "Opening handshakes answered, by HTTP status (101: accepted).",
            labels=[*names, "status"],
        )
        handshakes.add_metric([*values, "101"], stats.handshakes_accepted)
        for status, count in sorted(stats.handshakes_rejected.items()):
            handshakes.add_metric([*values, str(status)], count)
        yield handshakes
        yield counter(
            "syncws_refused_busy",
            "Connections answered 503 before their handshake: every worker busy, or closing.",
            stats.refused_busy,
        )
        yield counter(
            "syncws_accept_errors",
            "accept() failures, and connections that could not be handed to a worker.",
            stats.accept_errors,
        )
        workers = GaugeMetricFamily(
            "syncws_workers", "Worker threads, busy or idle.", labels=[*names, "state"]
        )
        workers.add_metric([*values, "busy"], stats.workers_busy)
        workers.add_metric([*values, "idle"], stats.workers_idle)
        yield workers
        closes = CounterMetricFamily(
            "syncws_closes",
            "Connections closed, by the close code the peer sent (1006: no Close).",
            labels=[*names, "code"],
        )
        for code, count in sorted(stats.closes.items()):
            closes.add_metric([*values, str(code)], count)
        yield closes
        traffic = stats.traffic
        for attribute, name, documentation in _TRAFFIC:
            yield counter(name, documentation, getattr(traffic, attribute))
        yield gauge(
            "syncws_queued_messages",
            "Messages received and waiting for recv(), on the open connections.",
            traffic.queue_depth,
        )
        yield gauge(
            "syncws_write_backlog_bytes",
            "Bytes queued for the sockets and not taken yet, on the open connections.",
            traffic.write_backlog,
        )
