"""Serve HTTP and WebSocket on the same port, with ``process_request``.

WebSocket connections start as HTTP requests. ``process_request`` sees each request before
the handshake: returning a response answers it, as plain HTTP, and returning ``None`` goes on
with the WebSocket handshake. Here ``GET /`` returns a page that talks to the echo
handler, and ``GET /healthz`` a health check for a load balancer. This is for a few simple
pages: for a web application, run a web framework next to the WebSocket server. Run::

    python examples/faq/http_same_port.py [port]

then open http://127.0.0.1:8765/ in a browser.
"""

import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765

PAGE = b"""<!DOCTYPE html>
<html>
  <head><meta charset="utf-8"><title>Echo</title></head>
  <body>
    <ul id="messages"></ul>
    <script>
      const websocket = new WebSocket(`ws://${location.host}/`);
      websocket.onopen = () => websocket.send("Hello from the browser");
      websocket.onmessage = ({ data }) => {
        const message = document.createElement("li");
        message.textContent = data;
        document.getElementById("messages").appendChild(message);
      };
    </script>
  </body>
</html>
"""


def process_request(
    connection: syncws.ServerConnection, request: syncws.Request
) -> syncws.Response | None:
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    if request.path == "/healthz":
        return connection.respond(200, "OK\n")
    if request.path == "/":
        headers = syncws.Headers(
            {
                "Content-Type": "text/html; charset=utf-8",
                "Content-Length": str(len(PAGE)),
                "Connection": "close",
            }
        )
        return syncws.Response(200, "OK", headers, PAGE)
    return connection.respond(404, "Not Found\n")


def echo(websocket: syncws.ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def main(port: int = PORT) -> None:
    with syncws.serve(echo, HOST, port, process_request=process_request) as server:
        print(f"Listening on http://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
