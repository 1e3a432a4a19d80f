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
from syncws.http11 import Request, Response
from syncws.pubsub import PubSub

COUNTER_CHANNEL = "counter"
CHAT_CHANNEL = "chat"
VALUE_KEY = "counter:value"
USERS_KEY = "counter:users"


class App:
    """The handlers, with the :class:`PubSub` of this process."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self.redis = pubsub.redis

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
            self.publish_users(self.redis.incr(USERS_KEY))
            websocket.send(self.value_event(int(self.redis.get(VALUE_KEY) or 0)))
            for message in websocket:
                action = json.loads(message).get("action")
                if action == "plus":
                    value = self.redis.incr(VALUE_KEY)
                elif action == "minus":
                    value = self.redis.decr(VALUE_KEY)
                else:
                    continue
                self.pubsub.publish(COUNTER_CHANNEL, self.value_event(value))
        finally:
            self.pubsub.unsubscribe(websocket)
            self.publish_users(self.redis.decr(USERS_KEY))

    def chat(self, websocket: syncws.ServerConnection) -> None:
        self.pubsub.subscribe(websocket, CHAT_CHANNEL)
        try:
            for message in websocket:
                self.pubsub.publish(CHAT_CHANNEL, message)
        finally:
            self.pubsub.unsubscribe(websocket)

    def publish_users(self, count: int) -> None:
        self.pubsub.publish(COUNTER_CHANNEL, json.dumps({"type": "users", "count": count}))

    @staticmethod
    def value_event(value: int) -> str:
        return json.dumps({"type": "value", "value": value})


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
