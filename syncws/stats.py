"""Snapshots of what connections and servers did: :attr:`Connection.stats
<syncws.connection.Connection.stats>` and :attr:`Server.stats <syncws.server.Server.stats>`.

Counting is always on and costs next to nothing: the counters are plain integers that the
code increments where it does the work anyway (the protocol as it parses and builds frames,
the writer as the socket takes bytes, the server as it accepts and answers). A snapshot copies
them into a frozen object, to log, compare or export (:mod:`syncws.prometheus`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ConnectionStats", "ServerStats", "total"]


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionStats:
    """What a connection did so far, as :attr:`Connection.stats
    <syncws.connection.Connection.stats>` returns it.

    Counters only grow; the gauges (``queue_depth``, ``write_backlog``, ``latency``) say how
    things are at the time of the snapshot.
    """

    bytes_received: int = 0
    """Bytes of WebSocket frames read from the network (the opening handshake excluded)."""
    bytes_sent: int = 0
    """Bytes of WebSocket frames that the socket took (the opening handshake excluded)."""
    messages_received: int = 0
    """Text and binary messages received, whole (their last frame came)."""
    messages_sent: int = 0
    """Text and binary messages sent, whole (their last frame was queued for the socket),
    broadcasts included."""
    frames_received: int = 0
    """Frames received: the frames of data messages, pings, pongs and the Close."""
    frames_sent: int = 0
    """Frames sent: the frames of data messages, pings, pongs and the Close."""
    pings_sent: int = 0
    """Pings sent: keepalive pings and those of :meth:`Connection.ping
    <syncws.connection.Connection.ping>`."""
    pongs_received: int = 0
    """Pongs received, unsolicited ones included."""
    latency: float = 0.0
    """Seconds between the last ping answered and its pong; 0 until one is
    (:attr:`Connection.latency <syncws.connection.Connection.latency>`)."""
    queue_depth: int = 0
    """Messages received and waiting for ``recv()`` now."""
    queue_high_water: int = 0
    """The most messages that ever waited for ``recv()`` at once."""
    paused_seconds: float = 0.0
    """Seconds the connection stopped reading because ``max_queue`` messages waited (TCP
    pushes back on the peer meanwhile), the pause in progress included."""
    broadcast_skipped: int = 0
    """Messages that :func:`~syncws.connection.broadcast` did not send on this connection:
    it was not open, was sending a fragmented message, or was over its ``write_limit``."""
    write_backlog: int = 0
    """Bytes queued for the socket and not taken by it yet: the peer reads slower than the
    connection sends."""

    def __add__(self, other: ConnectionStats) -> ConnectionStats:
        """The two summed: counters and gauges add up; ``latency`` and
        ``queue_high_water`` are the larger of the two."""
        if not isinstance(other, ConnectionStats):
            return NotImplemented
        values = {
            field.name: getattr(self, field.name) + getattr(other, field.name)
            for field in dataclasses.fields(self)
        }
        values["latency"] = max(self.latency, other.latency)
        values["queue_high_water"] = max(self.queue_high_water, other.queue_high_water)
        return ConnectionStats(**values)

    def as_dict(self) -> dict[str, Any]:
        """The fields in a :class:`dict`, e.g. to log them as JSON."""
        return dataclasses.asdict(self)


def total(stats: Iterable[ConnectionStats]) -> ConnectionStats:
    """Sum snapshots, e.g. those of a server's connections, as ``+`` does: counters and
    gauges add up; ``latency`` and ``queue_high_water`` are the largest."""
    result = ConnectionStats()
    for item in stats:
        result = result + item
    return result


class ClosedTraffic:
    """The :class:`ConnectionStats` of connections that ended, summed as they end.

    A server adds each connection's last snapshot here: plain integer additions, with no
    object made per connection. What was still queued went with the connection, so the gauges
    ``queue_depth``, ``write_backlog`` and ``latency`` stay 0; ``queue_high_water`` is the
    largest seen.
    """

    __slots__ = (
        "broadcast_skipped",
        "bytes_received",
        "bytes_sent",
        "frames_received",
        "frames_sent",
        "messages_received",
        "messages_sent",
        "paused_seconds",
        "pings_sent",
        "pongs_received",
        "queue_high_water",
    )

    def __init__(self) -> None:
        self.bytes_received = 0
        self.bytes_sent = 0
        self.messages_received = 0
        self.messages_sent = 0
        self.frames_received = 0
        self.frames_sent = 0
        self.pings_sent = 0
        self.pongs_received = 0
        self.queue_high_water = 0
        self.paused_seconds = 0.0
        self.broadcast_skipped = 0

    def add(self, stats: ConnectionStats) -> None:
        """Count the last snapshot of a connection that ended."""
        self.bytes_received += stats.bytes_received
        self.bytes_sent += stats.bytes_sent
        self.messages_received += stats.messages_received
        self.messages_sent += stats.messages_sent
        self.frames_received += stats.frames_received
        self.frames_sent += stats.frames_sent
        self.pings_sent += stats.pings_sent
        self.pongs_received += stats.pongs_received
        self.queue_high_water = max(self.queue_high_water, stats.queue_high_water)
        self.paused_seconds += stats.paused_seconds
        self.broadcast_skipped += stats.broadcast_skipped

    def snapshot(self) -> ConnectionStats:
        """The sums so far, as a :class:`ConnectionStats`."""
        return ConnectionStats(
            bytes_received=self.bytes_received,
            bytes_sent=self.bytes_sent,
            messages_received=self.messages_received,
            messages_sent=self.messages_sent,
            frames_received=self.frames_received,
            frames_sent=self.frames_sent,
            pings_sent=self.pings_sent,
            pongs_received=self.pongs_received,
            queue_high_water=self.queue_high_water,
            paused_seconds=self.paused_seconds,
            broadcast_skipped=self.broadcast_skipped,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ServerStats:
    """What a server did so far, as :attr:`Server.stats <syncws.server.Server.stats>`
    returns it."""

    connections_open: int = 0
    """Connections whose handler runs now (some may be closing)."""
    handshakes_accepted: int = 0
    """Opening handshakes answered with 101 Switching Protocols."""
    handshakes_rejected: Mapping[int, int] = dataclasses.field(default_factory=dict)
    """Opening handshakes answered with another HTTP status, by status: 400 for an invalid
    request, the status of a ``process_request`` hook's response, 503 while shutting down."""
    refused_busy: int = 0
    """Connections answered 503 Service Unavailable before their handshake was read: every
    worker was busy (``max_connections``), the server was closing, or no worker thread could
    start. Over TLS they are closed without an answer."""
    workers_busy: int = 0
    """Worker threads running a connection now."""
    workers_idle: int = 0
    """Worker threads waiting for their next connection now."""
    accept_errors: int = 0
    """Times ``accept()`` failed for lack of resources (file descriptors, buffers, memory),
    or an accepted connection could not be handed to a worker (its socket failed, an
    internal error)."""
    closes: Mapping[int, int] = dataclasses.field(default_factory=dict)
    """Connections closed once open, by the close code the peer sent (1005 for a Close
    without a code, 1006 without a Close)."""
    traffic: ConnectionStats = dataclasses.field(default_factory=ConnectionStats)
    """The :class:`ConnectionStats` of every connection the server opened, open and closed,
    summed: the gauges (``queue_depth``, ``write_backlog``) are those of the open ones,
    ``latency`` the largest of them."""

    def as_dict(self) -> dict[str, Any]:
        """The fields in a :class:`dict` of plain values, e.g. to log them as JSON (which
        turns the status and close code keys into strings)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values["handshakes_rejected"] = dict(self.handshakes_rejected)
        values["closes"] = dict(self.closes)
        values["traffic"] = self.traffic.as_dict()
        return values
