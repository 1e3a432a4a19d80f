"""Keep idle connections alive, and find dead ones, with keepalive pings.

Every ``ping_interval`` seconds, syncws sends a Ping on each connection; when no Pong comes
back within ``ping_timeout`` seconds, the peer is considered gone and the connection is
closed with code 1011. Pings keep proxies and NATs from dropping an idle connection. The
defaults are 20 and 20 seconds; ``None`` turns keepalive off. :func:`syncws.connect` takes the
same two arguments. Pings run on one shared timer thread, not a thread per connection. Run::

    python examples/faq/keepalive.py [port] [ping interval] [ping timeout]
"""

import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0


def echo(websocket: syncws.ServerConnection) -> None:
    try:
        for message in websocket:
            websocket.send(message)
    finally:
        # latency: the round trip of the last keepalive ping, in seconds.
        print(f"Connection closed with code {websocket.close_code}; latency {websocket.latency}")


def main(
    port: int = PORT, ping_interval: float = PING_INTERVAL, ping_timeout: float = PING_TIMEOUT
) -> None:
    with syncws.serve(
        echo, HOST, port, ping_interval=ping_interval, ping_timeout=ping_timeout
    ) as server:
        print(f"Listening on ws://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(int(arguments[0]) if arguments else PORT, *map(float, arguments[1:3]))
