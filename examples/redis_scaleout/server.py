"""A counter and a chat served by any number of processes that share their state through Redis.

Run two of them on different ports, next to a Redis server::

    python server.py --port 8001
    python server.py --port 8002

Clients of either process see the same counter and the same chat:

* ``/counter``: send ``{"action": "plus"}`` or ``{"action": "minus"}``; every client receives
  ``{"type": "value", "value": N}`` when the value changes (it is the Redis key
  ``counter:value``, changed with ``INCR`` / ``DECR``) and ``{"type": "users", "count": N}``
  when a client comes or goes, in any process;
* ``/chat``: every message a client sends reaches every client, in every process.
"""

from __future__ import annotations

import argparse
import json
import signal
from types import FrameType

import syncws
from syncws.core.http11 import Request, Response
from syncws.pubsub import PubSub

COUNTER_CHANNEL = "counter"
CHAT_CHANNEL = "chat"
VALUE_KEY = "counter:value"
USERS_KEY = "counter:users"

# Change a number and publish its new value in one step. Redis runs a script as a whole, so the
# values are published in the order they were made, whichever process made them: publishing
# after a separate INCR could let an older value overtake a newer one.
CHANGE_AND_PUBLISH = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], string.format(ARGV[3], value))
return value
"""
VALUE_EVENT = '{"type": "value", "value": %d}'
USERS_EVENT = '{"type": "users", "count": %d}'


class App:
    """The handlers, with the :class:`PubSub` of this process."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self.redis = pubsub.redis
        self._change_and_publish = self.redis.register_script(CHANGE_AND_PUBLISH)

    def check_path(self, connection: syncws.ServerConnection, request: Request) -> Response | None:
        if request.path not in ("/counter", "/chat"):
            return connection.respond(404, "Try /counter or /chat.\n")
        return None

    def handler(self, websocket: syncws.ServerConnection) -> None:
        assert websocket.request is not None
        if websocket.request.path == "/counter":
            self.counter(websocket)
        else:
            self.chat(websocket)

    def counter(self, websocket: syncws.ServerConnection) -> None:
        self.pubsub.subscribe(websocket, COUNTER_CHANNEL)
        try:
            self.change(USERS_KEY, +1, USERS_EVENT)
            websocket.send(VALUE_EVENT % int(self.redis.get(VALUE_KEY) or 0))
            for message in websocket:
                action = json.loads(message).get("action")
                if action == "plus":
                    self.change(VALUE_KEY, +1, VALUE_EVENT)
                elif action == "minus":
                    self.change(VALUE_KEY, -1, VALUE_EVENT)
        finally:
            self.pubsub.unsubscribe(websocket)
            self.change(USERS_KEY, -1, USERS_EVENT)

    def chat(self, websocket: syncws.ServerConnection) -> None:
        self.pubsub.subscribe(websocket, CHAT_CHANNEL)
        try:
            for message in websocket:
                self.pubsub.publish(CHAT_CHANNEL, message)
        finally:
            self.pubsub.unsubscribe(websocket)

    def change(self, key: str, by: int, event: str) -> None:
        """Add ``by`` to ``key`` and publish the new value as ``event`` to every process."""
        self._change_and_publish(keys=[key], args=[by, COUNTER_CHANNEL, event])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the Redis URL")
    args = parser.parse_args()

    with PubSub(args.redis) as pubsub:
        app = App(pubsub)
        with syncws.serve(
            app.handler, args.host, args.port, process_request=app.check_path
        ) as server:

            def stop(signum: int, frame: FrameType | None) -> None:
                # Stop accepting; leaving the block below waits for the handlers.
                server.close()

            signal.signal(signal.SIGTERM, stop)
            print(f"listening on ws://{args.host}:{server.port}/", flush=True)
            server.serve_forever()


if __name__ == "__main__":
    main()
