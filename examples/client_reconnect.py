"""A client that stays connected: it opens a new connection whenever the last one ends.

This program plays both sides. The server sends three ticks on each connection and closes it;
the client prints what it receives, reconnects after a short random delay each time, and stops
after three connections. The retries are logged at INFO on the ``syncws.client`` logger.
"""

from __future__ import annotations

import itertools
import logging
import threading

import syncws

_tokens = itertools.count(1)


def ticks(websocket: syncws.ServerConnection) -> None:
    token = websocket.request.headers["Authorization"] if websocket.request else "?"
    for number in range(3):
        websocket.send(f"tick {number} for {token}")


def fresh_token() -> dict[str, str]:
    # Called before every attempt: a token that expired is never sent again.
    return {"Authorization": f"Bearer token-{next(_tokens)}"}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with syncws.serve(ticks, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever).start()
        uri = f"ws://127.0.0.1:{server.port}/"
        connections = syncws.connect(
            uri, reconnect=True, backoff_initial=0.2, additional_headers=fresh_token
        )
        for count, websocket in enumerate(connections):
            try:
                for message in websocket:
                    print(message)
            except syncws.ConnectionClosed:
                continue  # closed abnormally: reconnect
            if count == 2:
                break  # leaving the loop closes the current connection


if __name__ == "__main__":
    main()
