"""Several threads on one connection."""

import queue
import threading
from collections.abc import Callable

import syncws

TICK = 1.0  # seconds between ticks


def ticker(websocket: syncws.ServerConnection) -> None:
    # The handler's thread receives and answers; a second thread sends a tick every second.
    # send() is thread-safe: the two threads' messages never mix on the wire.
    stop = threading.Event()

    def send_ticks() -> None:
        count = 0
        while not stop.wait(TICK):
            count += 1
            try:
                websocket.send(f"tick {count}")
            except syncws.ConnectionClosed:
                return

    thread = threading.Thread(target=send_ticks, name="ticker")
    thread.start()
    try:
        for message in websocket:
            websocket.send(message)
    finally:
        # However the handler ends, stop the other thread before the connection closes.
        stop.set()
        thread.join()


def consume(uri: str, process: Callable[[str | bytes], None]) -> None:
    # One thread receives, this one processes. The queue between them is bounded: when
    # processing falls behind, the receiving thread waits in put() and stops calling recv(),
    # the connection's own queue fills up (max_queue messages), and TCP makes the server wait.
    messages: queue.Queue[str | bytes | None] = queue.Queue(maxsize=100)
    with syncws.connect(uri) as websocket:

        def receive() -> None:
            try:
                for message in websocket:
                    messages.put(message)
            except syncws.ConnectionClosedError:
                pass  # the connection broke: end the same way as a normal close
            finally:
                messages.put(None)  # the end

        thread = threading.Thread(target=receive, name="receiver")
        thread.start()
        message: str | bytes | None = ""
        try:
            while (message := messages.get()) is not None:
                process(message)
        finally:
            if message is not None:
                # process() raised: close, and let the receiving thread finish its puts.
                websocket.close()
                while messages.get() is not None:
                    pass
            thread.join()
