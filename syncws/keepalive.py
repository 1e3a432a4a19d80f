"""Pings and pongs: the waiters of pings, the latency, keepalive pings and their timeouts.

Keepalive pings run in the shared timer thread (:mod:`syncws.timers`), which never waits on
the socket: a ping is queued and written without waiting, and a pong that does not come
within ``ping_timeout`` fails the connection with 1011, unless the reader paused meanwhile
because the local queue was full (the pong may be waiting unread: not the peer's fault).
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable

from ._noop import ignore
from .core.protocol import Protocol
from .exceptions import ConcurrencyError, ConnectionClosed
from .options import check_timeout
from .timers import Timer, call_later

__all__ = ["Keepalive", "PingWaiter"]


class PingWaiter:
    """Waits for the pong that answers one ping; :meth:`Connection.ping
    <syncws.connection.Connection.ping>` returns it.

    Args:
        closed: the exception to raise once the connection closed before the pong came.
    """

    __slots__ = ("_closed", "_event", "latency")

    def __init__(self, closed: Callable[[], ConnectionClosed]) -> None:
        self._closed = closed
        self._event = threading.Event()
        self.latency: float | None = None
        """Seconds between sending the ping and receiving its pong, once it came."""

    def wait(self, timeout: float | None = None) -> float:
        """Wait for the pong and return the latency in seconds.

        Args:
            timeout: seconds to wait; ``None`` waits as long as it takes, ``0`` only checks.

        Raises:
            TimeoutError: no pong came within ``timeout`` seconds.
            ConnectionClosed: the connection closed before the pong came.
            TypeError: ``timeout`` is not a number.
            ValueError: ``timeout`` is negative, infinite or NaN.
        """
        if timeout is not None:
            check_timeout("timeout", timeout)
        if not self._event.wait(timeout):
            raise TimeoutError("no pong received in time")
        if self.latency is None:
            raise self._closed()
        return self.latency

    def done(self) -> bool:
        """Whether the pong came or the connection closed."""
        return self._event.is_set()


class Keepalive:
    """The keepalive part of a connection.

    It owns the pings that wait for their pong, the latency, the keepalive timer and the pong
    timeouts, under a lock of its own. The connection records a ping with :meth:`add` while it
    holds its protocol lock, so that pings are recorded in the order they are sent; that is
    the only lock taken around this one.

    Args:
        ping_interval: seconds between keepalive pings; ``None`` for none.
        ping_timeout: seconds to wait for the pong of a keepalive ping; ``None`` for ever.
        send_ping: queues and writes a keepalive ping (recorded with :meth:`add`) and
            returns its payload; ``None`` when the connection is not open anymore.
        paused: whether the reader is paused now because the local queue is full, and how
            many times it paused so far.
        fail: fails the connection: a keepalive pong did not come in time.
        closed: the exception for a ping whose connection closed before its pong came.
        internal_error: fails the connection with 1011 when a keepalive timer raised an
            unexpected error (the timer thread logged it).
        logger: for the timeout.
    """

    __slots__ = (
        "_closed",
        "_closed_exception",
        "_fail",
        "_internal_error",
        "_lock",
        "_logger",
        "_paused",
        "_pings",
        "_pong_timers",
        "_send_ping",
        "_timer",
        "latency",
        "ping_interval",
        "ping_timeout",
    )

    def __init__(
        self,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
        send_ping: Callable[[], bytes | None],
        paused: Callable[[], tuple[bool, int]],
        fail: Callable[[], None],
        closed: Callable[[], ConnectionClosed],
        internal_error: Callable[[Exception], None],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._send_ping = send_ping
        self._paused = paused
        self._fail = fail
        self._closed_exception = closed
        self._internal_error = internal_error
        self._logger = logger
        self._lock = threading.Lock()
        self._pings: dict[bytes, tuple[PingWaiter, float]] = {}
        self._timer: Timer | None = None
        # Timeouts of keepalive pings waiting for their pong, by ping payload.
        self._pong_timers: dict[bytes, Timer] = {}
        self._closed = False
        self.latency = 0.0
        """Latency of the last ping answered, in seconds; 0 until one is."""

    def start(self) -> None:
        """Start sending keepalive pings, once the opening handshake is done."""
        if self.ping_interval is not None:
            self._schedule_ping(self.ping_interval)

    def add(self, data: bytes | None) -> tuple[bytes, PingWaiter]:
        """Record a ping about to be sent; the connection's protocol lock held.

        Args:
            data: the payload; ``None`` for 4 random bytes that no waiting ping uses.

        Raises:
            ConcurrencyError: a ping with the same payload waits for its pong.
        """
        waiter = PingWaiter(self._closed_exception)
        with self._lock:
            if data is None:
                data = secrets.token_bytes(4)
                while data in self._pings:  # pragma: no cover (1 chance in 4 billion)
                    data = secrets.token_bytes(4)
            elif data in self._pings:
                raise ConcurrencyError("a ping with the same data is waiting for its pong")
            if self._closed:
                waiter._event.set()
            else:
                self._pings[data] = (waiter, time.monotonic())
        return data, waiter

    def acknowledge(self, data: bytes) -> None:
        """A pong came: complete the ping it answers, and every ping sent before it."""
        now = time.monotonic()
        with self._lock:
            if data not in self._pings:
                return  # unsolicited pong (RFC 6455 §5.5.3)
            acknowledged = []
            for ping_data, (waiter, sent) in list(self._pings.items()):
                del self._pings[ping_data]
                acknowledged.append((waiter, sent))
                timer = self._pong_timers.pop(ping_data, None)
                if timer is not None:
                    timer.cancel()
                if ping_data == data:
                    break
        for waiter, sent in acknowledged:
            waiter.latency = now - sent
            waiter._event.set()
        self.latency = acknowledged[-1][0].latency or 0.0

    def close(self) -> None:
        """The connection is closed: cancel every timer and release every waiter."""
        with self._lock:
            self._closed = True
            timers = [self._timer, *self._pong_timers.values()]
            self._timer = None
            self._pong_timers.clear()
            pings = list(self._pings.values())
            self._pings.clear()
        for timer in timers:
            if timer is not None:
                timer.cancel()
        for waiter, _ in pings:
            waiter._event.set()

    def detach(self, protocol: Protocol) -> None:
        """The connection is over and torn down: stop calling it back (see
        ``syncws._noop.ignore()``); a ping that waits from now on fails with what
        ``protocol`` says about the close."""
        self._send_ping = self._fail = self._internal_error = ignore
        self._closed_exception = functools.partial(_close_exc, protocol)

    # In the timer thread.

    def _schedule_ping(self, delay: float) -> None:
        with self._lock:
            if not self._closed:
                self._timer = call_later(delay, self._ping, on_error=self._internal_error)

    def _ping(self) -> None:
        """Send a keepalive ping."""
        with self._lock:
            self._timer = None
            if self._closed:
                return
        paused, pauses = self._paused()
        # A paused reader does not read the pong: don't blame the peer for it.
        if not paused:
            data = self._send_ping()
            if data is None:
                return  # the connection is closing
            if self.ping_timeout is not None:
                self._schedule_check(data, pauses)
        assert self.ping_interval is not None
        self._schedule_ping(self.ping_interval)

    def _schedule_check(self, data: bytes, pauses: int) -> None:
        assert self.ping_timeout is not None
        with self._lock:
            if not self._closed and data in self._pings:
                self._pong_timers[data] = call_later(
                    self.ping_timeout,
                    lambda: self._check_pong(data, pauses),
                    on_error=self._internal_error,
                )

    def _check_pong(self, data: bytes, pauses: int) -> None:
        """Fail the connection when a keepalive ping went unanswered."""
        with self._lock:
            self._pong_timers.pop(data, None)
            if self._closed or data not in self._pings:
                return
        paused, now = self._paused()
        if paused or now != pauses:
            # The reader paused since the ping: the pong may be waiting unread. Check again.
            self._schedule_check(data, now)
            return
        self._logger.info("keepalive ping timeout; failing connection")
        self._fail()


def _close_exc(protocol: Protocol) -> ConnectionClosed:
    """The exception for using a connection whose protocol is closed."""
    return protocol.close_exc
