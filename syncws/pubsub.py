"""Fan-out across processes through Redis pub/sub: :class:`PubSub`.

One server process only reaches its own clients. To reach the clients of every process (several
server processes behind a load balancer, or a web application that wants to notify WebSocket
clients), each process creates one :class:`PubSub`::

    pubsub = PubSub("redis://localhost:6379/0")

    def handler(websocket):
        pubsub.subscribe(websocket, "chat")
        for message in websocket:
            pubsub.publish("chat", message)     # reaches every subscriber, in every process

A process with subscribers runs one listener thread (``syncws-pubsub``) with one Redis
connection, subscribed to the channels its connections subscribed to. Each message from Redis
goes to the local subscribers of its channel with :func:`~syncws.connection.broadcast`, which never
waits for a slow client. A process that only publishes (a web view, a worker) starts no thread.

Redis pub/sub delivers at most once: a message published while a process is disconnected from
Redis is lost for that process's clients. The listener reconnects with exponential backoff and
subscribes again; it logs the lost connection at WARNING and the recovery at INFO.

This module needs the ``redis`` package: the ``redis`` extra, ``pip install -e '.[redis]'``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .connection import Connection, broadcast
from .core.protocol import State
from .messages import Data

__all__ = ["PubSub"]

# Reconnection delays, in seconds: doubled after each failure, with jitter, so that many
# processes that lost the same Redis don't all reconnect at the same instant.
_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 5.0

# How long the listener waits for a message before it checks whether it should stop. Changes
# of subscriptions and close() wake it at once through its wake channel; this only bounds
# close() when Redis stops answering without closing the connection.
_IDLE_TIMEOUT = 1.0


class PubSub:
    """Subscribe local connections to Redis channels, and publish to every process.

    Use it as a context manager, or call :meth:`close`, to stop the listener thread.

    Args:
        url: the Redis URL, e.g. ``redis://localhost:6379/0``.
        binary: send messages to clients as binary messages; by default they are sent as
            text, and a payload that is not valid UTF-8 is logged and dropped.
        logger: the logger; by default ``logging.getLogger("syncws.pubsub")``.
        **redis_options: passed to ``redis.Redis.from_url()``, e.g. ``password`` or
            ``socket_timeout``.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        binary: bool = False,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        **redis_options: Any,
    ) -> None:
        self.binary = binary
        self.logger = logger if logger is not None else logging.getLogger("syncws.pubsub")
        self.redis = redis.Redis.from_url(url, **redis_options)
        """The Redis client used to publish, for other commands too (it is thread-safe)."""
        # The listener reconnects by itself, with backoff and logs: redis-py must not retry
        # and resubscribe behind its back.
        self._listener_redis = redis.Redis.from_url(
            url, **{**redis_options, "retry": Retry(NoBackoff(), 0)}
        )
        self._lock = threading.Lock()
        self._channels: dict[str, set[Connection]] = {}
        self._subscriptions: dict[Connection, set[str]] = {}
        # Publishing to this channel wakes the listener: to change subscriptions, or to stop.
        self._wake_channel = f"syncws-pubsub-wake-{uuid.uuid4().hex}"
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # Publishing.

    def publish(self, channel: str, message: Data) -> int:
        """Publish a message to the subscribers of ``channel`` in every process.

        Args:
            channel: the channel.
            message: :class:`str` or bytes.

        Returns:
            How many processes received it (Redis subscribers of the channel).

        When Redis cannot be reached, this raises the ``redis`` package's ``RedisError``.
        """
        payload = message.encode() if isinstance(message, str) else bytes(message)
        receivers: int = self.redis.publish(channel, payload)
        return receivers

    # Subscriptions.

    def subscribe(self, connection: Connection, *channels: str) -> None:
        """Send the messages of ``channels`` to ``connection`` until it unsubscribes or closes.

        Returns without waiting for Redis to confirm: a message published right after it may
        not reach the connection yet. The first subscription starts the listener thread.
        """
        if self._closing.is_set():
            raise RuntimeError("PubSub is closed")
        with self._lock:
            new = [channel for channel in channels if channel not in self._channels]
            for channel in channels:
                self._channels.setdefault(channel, set()).add(connection)
            self._subscriptions.setdefault(connection, set()).update(channels)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="syncws-pubsub", daemon=True)
                self._thread.start()
                new = []  # the listener subscribes to everything when it connects
        if new:
            self._wake()

    def unsubscribe(self, connection: Connection, *channels: str) -> None:
        """Stop sending the messages of ``channels`` to ``connection``; of every channel when
        none is given.

        Connections that close are unsubscribed by themselves, when the next message for them
        arrives; calling this when a handler returns frees them sooner.
        """
        with self._lock:
            emptied = self._remove(connection, channels or None)
        if emptied:
            self._wake()

    def subscribers(self, channel: str) -> set[Connection]:
        """The local connections subscribed to ``channel``."""
        with self._lock:
            return set(self._channels.get(channel, ()))

    def _remove(self, connection: Connection, channels: Iterable[str] | None) -> bool:
        """Unsubscribe under the lock; return whether a channel lost its last subscriber."""
        subscribed = self._subscriptions.get(connection, set())
        removed = set(subscribed if channels is None else channels) & subscribed
        subscribed -= removed
        if not subscribed:
            self._subscriptions.pop(connection, None)
        emptied = False
        for channel in removed:
            connections = self._channels[channel]
            connections.discard(connection)
            if not connections:
                del self._channels[channel]
                emptied = True
        return emptied

    # Stopping.

    def close(self, timeout: float | None = 10) -> None:
        """Stop the listener thread and close the Redis connections.

        Args:
            timeout: seconds to wait for the thread.

        Raises:
            TimeoutError: the thread was still running after ``timeout``.
        """
        self._closing.set()
        self._wake()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError("the pub/sub listener did not stop")
        self.redis.close()
        self._listener_redis.close()

    def __enter__(self) -> PubSub:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _wake(self) -> None:
        # When Redis is down, the listener is reconnecting and subscribes to everything
        # when it's back; close() sets the event it waits on between attempts.
        with contextlib.suppress(redis.RedisError, OSError):
            self.redis.publish(self._wake_channel, b"")

    # The listener thread.

    def _run(self) -> None:
        delay = _BACKOFF_MIN
        lost = False
        while not self._closing.is_set():
            # redis-py annotates pubsub() from 8.2 on; before, the call is untyped.
            pubsub = self._listener_redis.pubsub(  # type: ignore[no-untyped-call,unused-ignore]
                ignore_subscribe_messages=True
            )
            try:
                subscribed = self._wanted()
                pubsub.subscribe(self._wake_channel, *subscribed)
                if lost:
                    self.logger.info(
                        "reconnected to Redis: subscribed to %d channels again", len(subscribed)
                    )
                    lost = False
                delay = _BACKOFF_MIN
                self._listen(pubsub, subscribed)
            except (redis.RedisError, OSError) as exc:
                if self._closing.is_set():
                    break
                wait = delay * random.uniform(0.5, 1.0)
                self.logger.warning(
                    "%s Redis: %s; reconnecting in %.1f s",
                    "cannot reach" if lost else "lost the connection to",
                    exc,
                    wait,
                )
                lost = True
                self._closing.wait(wait)
                delay = min(delay * 2, _BACKOFF_MAX)
            except Exception:
                # A bug, not an outage: log it, and keep fanning out after a pause.
                self.logger.error("pub/sub listener failed", exc_info=True)
                self._closing.wait(_BACKOFF_MAX)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()

    def _wanted(self) -> set[str]:
        with self._lock:
            return set(self._channels)

    def _listen(self, pubsub: redis.client.PubSub, subscribed: set[str]) -> None:
        """Deliver messages until closing; keep the subscriptions in line with the registry."""
        while not self._closing.is_set():
            wanted = self._wanted()
            if wanted != subscribed:
                if added := wanted - subscribed:
                    pubsub.subscribe(*added)
                if removed := subscribed - wanted:
                    pubsub.unsubscribe(*removed)  # type: ignore[no-untyped-call]
                subscribed.clear()
                subscribed.update(wanted)
            message = pubsub.get_message(timeout=_IDLE_TIMEOUT)
            if message is None or message["type"] != "message":
                continue
            channel = message["channel"].decode()
            if channel != self._wake_channel:
                self._deliver(channel, message["data"])

    def _deliver(self, channel: str, payload: bytes) -> None:
        with self._lock:
            connections = list(self._channels.get(channel, ()))
            closed = [c for c in connections if c.state is State.CLOSED]
            for connection in closed:
                self._remove(connection, None)
        if closed:
            connections = [c for c in connections if c.state is not State.CLOSED]
        if not connections:
            return
        message: Data
        if self.binary:
            message = payload
        else:
            try:
                message = payload.decode()
            except UnicodeDecodeError:
                self.logger.warning("dropped a message on %r: not valid UTF-8", channel)
                return
        broadcast(connections, message)
