"""Every timeout of a client, set explicitly (the values shown are the defaults)."""

import syncws


def open_connection(uri: str) -> syncws.ClientConnection:
    return syncws.connect(
        uri,
        open_timeout=10,  # name resolution, TCP, TLS and the HTTP handshake, in all
        ping_interval=20,  # a keepalive ping every 20 seconds...
        ping_timeout=20,  # ...and close with 1011 if its pong doesn't come within 20 s
        close_timeout=10,  # the closing handshake; then the TCP connection is aborted
        write_timeout=10,  # a send() with no progress for 10 s aborts the connection
    )


def measure_latency(websocket: syncws.ClientConnection) -> float:
    # ping() returns at once; wait() blocks until the pong comes, for at most 5 seconds,
    # and returns the round trip in seconds.
    return websocket.ping().wait(timeout=5)


def send_within(websocket: syncws.ClientConnection, message: str, timeout: float) -> bool:
    # A send() that can't start in time (another thread is sending a long message) raises
    # TimeoutError without sending anything. One that started and can't finish in time
    # aborts the connection: half a message can't be taken back.
    try:
        websocket.send(message, timeout=timeout)
    except TimeoutError:
        return False
    return True
