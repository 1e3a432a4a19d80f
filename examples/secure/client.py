"""Secure hello world, the client: the hello client over TLS (``wss://``).

The server's certificate is self-signed, so the client trusts it explicitly: it loads
``localhost.pem`` as the only certificate authority. With a certificate from a real
authority, leave ``ssl`` out: by default syncws verifies against the system's authorities.
Start ``server.py`` first, then::

    python examples/secure/client.py [port]
"""

import pathlib
import ssl
import sys

import syncws

HOST = "127.0.0.1"
PORT = 8765

ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
# The test certificate: trusted here for the examples only.
localhost_pem = pathlib.Path(__file__).with_name("localhost.pem")
ssl_context.load_verify_locations(localhost_pem)


def hello(port: int = PORT) -> None:
    uri = f"wss://{HOST}:{port}/"
    with syncws.connect(uri, ssl=ssl_context) as websocket:
        name = input("What's your name? ")

        websocket.send(name)
        print(f">>> {name}")

        greeting = websocket.recv(timeout=10, decode=True)
        print(f"<<< {greeting}")


if __name__ == "__main__":
    hello(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
