"""Secure hello world, the server: the hello server over TLS (``wss://``).

It uses ``localhost.pem`` next to it, a self-signed test certificate and its key in one
file. It is a test certificate whose key is public: never use it for real; get a
certificate for your domain instead (Let's Encrypt gives them for free). Run::

    python examples/secure/server.py [port]

then ``client.py`` next to it. Stop it with Ctrl-C.
"""

import pathlib
import ssl
import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765

ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
# The test certificate and its key, in one file: for examples and tests only.
localhost_pem = pathlib.Path(__file__).with_name("localhost.pem")
ssl_context.load_cert_chain(localhost_pem)


def hello(websocket: syncws.ServerConnection) -> None:
    name = websocket.recv(timeout=10, decode=True)
    print(f"<<< {name}")

    greeting = f"Hello {name}!"

    websocket.send(greeting)
    print(f">>> {greeting}")


def main(port: int = PORT) -> None:
    with syncws.serve(hello, HOST, port, ssl=ssl_context) as server:
        print(f"Listening on wss://{HOST}:{server.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
