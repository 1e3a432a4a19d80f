"""Send one message to an echo server and print the answer."""

import syncws


def hello(uri: str) -> str:
    with syncws.connect(uri) as websocket:
        websocket.send("Hello world!")
        # Wait at most 10 seconds for the answer: recv() raises TimeoutError past that.
        return websocket.recv(timeout=10, decode=True)


if __name__ == "__main__":
    print(hello("ws://localhost:8765/"))
