"""The demo app: a counter shared by every browser tab that has it open.

One port serves both the page (``GET /``, answered by a ``process_request`` hook) and the
WebSocket the page opens to the same URL. The protocol is JSON text messages:

* the server sends ``{"type": "value", "value": N}`` when the counter changes (and when a
  client connects), and ``{"type": "users", "count": N}`` when someone comes or goes;
* a client sends ``{"action": "plus"}`` or ``{"action": "minus"}``; anything else is answered
  with ``{"type": "error", "message": "..."}`` and changes nothing.

Two more paths show what the server is doing: ``GET /stats`` answers its
:attr:`~syncws.server.Server.stats` in JSON, and ``GET /metrics`` the same in Prometheus's text
format, when ``prometheus_client`` is installed (the ``syncws[prometheus]`` extra).

Run it with ``syncws demo``, or from Python::

    with serve_demo("127.0.0.1", 8765) as server:
        server.serve_forever()
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from .connection import broadcast
from .core.headers import Headers
from .core.http11 import Request, Response
from .server import Server, ServerConnection, serve

__all__ = ["PAGE", "serve_demo"]

logger = logging.getLogger("syncws.demo")

PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>syncws counter</title>
<link rel="icon" href="data:,">
<style>
  :root {
    color-scheme: light dark;
    --bg: #f4f5f7; --card: #ffffff; --text: #1d2330; --muted: #6b7280;
    --accent: #2563eb; --accent-text: #ffffff; --online: #16a34a; --offline: #dc2626;
  }
  @media (prefers-color-scheme: dark) {
    :root { --bg: #111318; --card: #1c1f26; --text: #e8eaf0; --muted: #9aa1ad; }
  }
  * { box-sizing: border-box; }
  body {
    margin: 0; min-height: 100vh; display: grid; place-items: center;
    background: var(--bg); color: var(--text);
    font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  }
  main {
    background: var(--card); border-radius: 16px; padding: 2rem 2.5rem; text-align: center;
    box-shadow: 0 4px 24px rgb(0 0 0 / 0.08); min-width: 18rem;
  }
  h1 { font-size: 1rem; font-weight: 600; margin: 0 0 1rem; color: var(--muted); }
  .counter { display: flex; align-items: center; justify-content: center; gap: 1.5rem; }
  #value {
    font-size: 4rem; font-weight: 700; min-width: 3ch;
    font-variant-numeric: tabular-nums;
  }
  button {
    width: 3.5rem; height: 3.5rem; border: 0; border-radius: 50%; cursor: pointer;
    font-size: 2rem; line-height: 1; background: var(--accent); color: var(--accent-text);
  }
  button:hover { filter: brightness(1.1); }
  button:disabled { opacity: 0.4; cursor: default; filter: none; }
  .status { margin-top: 1rem; color: var(--muted); font-size: 0.95rem; }
  .dot {
    display: inline-block; width: 0.6rem; height: 0.6rem; border-radius: 50%;
    margin-right: 0.4rem; background: var(--offline);
  }
  body[data-state="online"] .dot { background: var(--online); }
</style>
</head>
<body data-state="offline">
<main>
  <h1>syncws counter</h1>
  <div class="counter">
    <button id="minus" type="button" aria-label="minus" disabled>&minus;</button>
    <span id="value" aria-live="polite">?</span>
    <button id="plus" type="button" aria-label="plus" disabled>+</button>
  </div>
  <p class="status"><span class="dot"></span><span id="users">Connecting&hellip;</span></p>
</main>
<script>
"use strict";
const valueElement = document.getElementById("value");
const usersElement = document.getElementById("users");
const buttons = [document.getElementById("minus"), document.getElementById("plus")];
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
let socket = null;
let delay = 500;

function setOnline(online) {
  document.body.dataset.state = online ? "online" : "offline";
  for (const button of buttons) button.disabled = !online;
  if (!online) usersElement.textContent = "Offline, reconnecting\\u2026";
}

function connect() {
  socket = new WebSocket(url);
  socket.addEventListener("open", () => {
    delay = 500;
    setOnline(true);
  });
  socket.addEventListener("message", (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    if (data.type === "value") {
      valueElement.textContent = String(data.value);
    } else if (data.type === "users") {
      usersElement.textContent = data.count === 1 ? "1 user online" : data.count + " users online";
    }
  });
  socket.addEventListener("close", () => {
    setOnline(false);
    // Try again with a growing delay, so that a server that restarts is found again.
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 8000);
  });
}

function send(action) {
  if (socket !== null && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({action: action}));
  }
}

document.getElementById("minus").addEventListener("click", () => send("minus"));
document.getElementById("plus").addEventListener("click", () => send("plus"));
connect();
</script>
</body>
</html>
"""
"""The HTML page: inline CSS and JavaScript, no external resources."""

# The page loads nothing from elsewhere, and the policy says so.
_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self' ws: wss:; img-src data:"
)

_CHANGES = {"plus": 1, "minus": -1}

_ERROR = json.dumps(
    {"type": "error", "message": 'expected {"action": "plus"} or {"action": "minus"}'}
)


class _Counter:
    """The shared state: the value and the connected clients.

    Every message goes out through :func:`broadcast` under one lock. Two broadcasts never race
    for the same connection (broadcast skips a connection another thread is sending on), and
    every client sees the changes in the same order.
    """

    def __init__(self) -> None:
        self.value = 0
        self.clients: set[ServerConnection] = set()
        self.lock = threading.Lock()

    def _value_message(self) -> str:
        return json.dumps({"type": "value", "value": self.value})

    def _users_message(self) -> str:
        return json.dumps({"type": "users", "count": len(self.clients)})

    def handle(self, connection: ServerConnection) -> None:
        with self.lock:
            self.clients.add(connection)
            broadcast([connection], self._value_message())
            broadcast(self.clients, self._users_message())
            logger.info("%s joined: %d online", _peer(connection), len(self.clients))
        try:
            for message in connection:
                change = _parse_action(message)
                with self.lock:
                    if change is None:
                        broadcast([connection], _ERROR)
                        continue
                    self.value += change
                    broadcast(self.clients, self._value_message())
        finally:
            with self.lock:
                self.clients.discard(connection)
                broadcast(self.clients, self._users_message())
                logger.info("%s left: %d online", _peer(connection), len(self.clients))


def _parse_action(message: str | bytes) -> int | None:
    """Return the change a client asks for, or ``None`` if the message is not a valid one."""
    if not isinstance(message, str):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != {"action"}:
        return None
    action = data["action"]
    return _CHANGES.get(action) if isinstance(action, str) else None


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address) or "unix socket"


def _is_upgrade(request: Request) -> bool:
    return any(
        "websocket" in (token.strip().lower() for token in value.split(","))
        for value in request.headers.get_all("Upgrade")
    )


def _page_response() -> Response:
    body = PAGE.encode()
    headers = Headers()
    headers["Content-Type"] = "text/html; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-cache"
    headers["Content-Security-Policy"] = _CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Connection"] = "close"
    return Response(200, "OK", headers, body)


def _data_response(body: bytes, content_type: str) -> Response:
    headers = Headers()
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    headers["Connection"] = "close"
    return Response(200, "OK", headers, body)


def _stats_response(server: Server) -> Response:
    body = json.dumps(server.stats.as_dict(), indent=2).encode()
    return _data_response(body, "application/json")


def _metrics_response(connection: ServerConnection, server: Server) -> Response:
    # Imported when asked for: the demo (and the command line) run without the extra.
    try:
        from prometheus_client import (  # noqa: PLC0415
            CONTENT_TYPE_LATEST,
            CollectorRegistry,
            generate_latest,
        )

        from .prometheus import ServerCollector  # noqa: PLC0415
    except ImportError:
        return connection.respond(404, "Install syncws[prometheus] for /metrics.\n")
    registry = CollectorRegistry()
    ServerCollector(server, registry=registry)
    return _data_response(generate_latest(registry), CONTENT_TYPE_LATEST)


def _process_request(connection: ServerConnection, request: Request) -> Response | None:
    path = request.path.partition("?")[0]
    if path != "/":
        return connection.respond(404, "Not Found\n")
    if _is_upgrade(request):
        return None
    return _page_response()


def serve_demo(host: str = "127.0.0.1", port: int = 8765, **kwargs: Any) -> Server:
    """Start the counter app on ``host`` and ``port``; return the server, not running yet.

    ``GET /`` returns the page; the page opens a WebSocket to the same URL. ``GET /stats``
    returns the server's stats in JSON and ``GET /metrics`` in Prometheus's format (with
    ``prometheus_client``; 404 without). Other paths get 404. Call
    :meth:`~syncws.server.Server.serve_forever` to run the server, and
    :meth:`~syncws.server.Server.shutdown` (or leave its ``with`` block) to stop it.

    Example::

        with serve_demo("127.0.0.1", 0) as server:
            threading.Thread(target=server.serve_forever).start()
            print(f"http://127.0.0.1:{server.port}/")

    Args:
        host: the address to listen on.
        port: the TCP port; 0 picks a free one (see :attr:`~syncws.server.Server.port`).
        **kwargs: passed to :func:`~syncws.server.serve`, except ``process_request``, which
            the demo sets. ``max_size`` defaults to 1 KiB: the app's messages are tiny.

    Returns:
        The server, listening but not accepting yet. Each call has its own counter.
    """
    kwargs.setdefault("max_size", 1024)
    counter = _Counter()

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path == "/stats" and not _is_upgrade(request):
            return _stats_response(server)
        if path == "/metrics" and not _is_upgrade(request):
            return _metrics_response(connection, server)
        return _process_request(connection, request)

    server = serve(counter.handle, host, port, process_request=process_request, **kwargs)
    return server
