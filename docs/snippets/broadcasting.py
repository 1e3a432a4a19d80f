"""A server that pushes the same updates to every client, and drops clients that lag."""

import threading

import syncws


def subscriber(websocket: syncws.ServerConnection) -> None:
    # Each client is in server.connections while its handler runs. The handler keeps
    # reading, so that the connection sees pings and the client's Close; it ignores messages.
    for _ in websocket:
        pass


class Publisher:
    """Broadcasts to a server's clients; closes those that stay behind for too long."""

    def __init__(self, server: syncws.Server, max_skips: int = 10) -> None:
        self.server = server
        self.max_skips = max_skips
        self.skips: dict[syncws.Connection, int] = {}

    def publish(self, message: str | bytes) -> int:
        """Send ``message`` to every client; return how many clients got it."""
        connections = list(self.server.connections)
        skipped = syncws.broadcast(connections, message)
        # Count consecutive skips: a client that got this message starts again from zero,
        # and a connection that is closing drops out of the count.
        self.skips = {
            connection: self.skips.get(connection, 0) + 1
            for connection in skipped
            if connection.state is syncws.State.OPEN
        }
        for connection, count in self.skips.items():
            if count == self.max_skips:
                # close() waits for the client, which is not reading: do it in another
                # thread, so that the other clients keep getting their updates.
                threading.Thread(
                    target=connection.close, args=(1008, "too slow"), daemon=True
                ).start()
        return len(connections) - len(skipped)


class Registry:
    """Your own set of connections, e.g. the clients that subscribed to one topic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: set[syncws.ServerConnection] = set()

    def handler(self, websocket: syncws.ServerConnection) -> None:
        with self._lock:
            self._connections.add(websocket)
        try:
            for _ in websocket:
                pass
        finally:
            with self._lock:
                self._connections.discard(websocket)

    def publish(self, message: str | bytes) -> list[syncws.Connection]:
        with self._lock:
            connections = list(self._connections)
        return syncws.broadcast(connections, message)
