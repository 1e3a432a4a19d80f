"""A chat room in a Flask application: one page, one WebSocket route, every tab in sync.

Each message a tab sends goes to every open tab with :func:`syncws.broadcast`, which never
waits for a slow tab. Run it with Werkzeug's development server, which runs each request in
its own thread::

    flask --app app run

or with gunicorn's threaded worker (one thread per open WebSocket, plus the page's requests)::

    gunicorn --worker-class gthread --threads 100 --bind 127.0.0.1:5000 app:app

then open http://127.0.0.1:5000/ in two tabs.
"""

from __future__ import annotations

import threading
from pathlib import Path

from flask import Flask, Response, send_from_directory

import syncws
from syncws.flask import Sock

HERE = Path(__file__).resolve().parent

app = Flask(__name__)
# In production, add origins=["https://your.site"]: browsers send Origin, and checking it
# keeps other sites from opening connections with the user's cookies.
sock = Sock(app, max_size=4096)

clients: set[syncws.ServerConnection] = set()
clients_lock = threading.Lock()


@app.get("/")
def index() -> Response:
    return send_from_directory(HERE, "index.html")


@sock.route("/chat")
def chat(websocket: syncws.ServerConnection) -> None:
    with clients_lock:
        clients.add(websocket)
        count = len(clients)
    syncws.broadcast(list(clients), f"* someone joined ({count} here)")
    try:
        for message in websocket:
            if isinstance(message, str) and message.strip():
                with clients_lock:
                    others = list(clients)
                syncws.broadcast(others, message.strip())
    finally:
        with clients_lock:
            clients.discard(websocket)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000, threaded=True)
