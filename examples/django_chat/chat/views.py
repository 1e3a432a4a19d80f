"""The chat's views: a page, and a WebSocket route that runs in the request's thread.

The handler uses the Django ORM directly: it runs in an ordinary request thread, with its own
database connection, as any view does. No async bridging is involved.
"""

from __future__ import annotations

import logging
import threading

from django.http import HttpRequest, HttpResponse

import syncws
import syncws.server
import syncws.wsgi

from .models import Message

logger = logging.getLogger(__name__)

HISTORY = 50
"""How many past messages a new client gets."""

clients: set[syncws.ServerConnection] = set()
clients_lock = threading.Lock()


def chat_handler(websocket: syncws.ServerConnection) -> None:
    # Send the history first, then join: a message saved meanwhile may come twice, but none
    # is missed.
    history = list(Message.objects.order_by("-id")[:HISTORY])
    for message in reversed(history):
        websocket.send(message.text)
    with clients_lock:
        clients.add(websocket)
    try:
        for text in websocket:
            if not isinstance(text, str) or not text.strip():
                continue
            message = Message.objects.create(text=text.strip()[:1000])
            with clients_lock:
                everyone = list(clients)
            syncws.broadcast(everyone, message.text)
    finally:
        with clients_lock:
            clients.discard(websocket)


def chat(request: HttpRequest) -> HttpResponse:
    try:
        websocket = syncws.wsgi.accept(request.environ, max_size=4096)
    except syncws.wsgi.UpgradeRejected as exc:
        return HttpResponse(exc.body, status=exc.response.status_code, headers=exc.headers)
    except syncws.wsgi.UnsupportedServer:
        logger.exception("cannot open a WebSocket connection")
        return HttpResponse("WebSocket is not available on this server.\n", status=500)
    syncws.server.run_handler(websocket, chat_handler)
    # The connection is closed and its socket shut down: the server can't send this response.
    return HttpResponse(status=101)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Django chat</title></head>
<body>
<h1>Django chat</h1>
<ul id="messages"></ul>
<form id="form"><input id="text" autocomplete="off"><button>Send</button></form>
<script>
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const websocket = new WebSocket(`${scheme}//${location.host}/ws/`);
  websocket.addEventListener("message", (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;
    document.getElementById("messages").appendChild(item);
  });
  document.getElementById("form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("text");
    websocket.send(input.value);
    input.value = "";
  });
</script>
</body>
</html>
"""


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)
