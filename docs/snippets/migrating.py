"""What code written for websocket-client becomes."""

import threading
from collections.abc import Callable

import syncws


def run_forever(uri: str, on_message: Callable[[str | bytes], None]) -> None:
    # WebSocketApp(uri, on_message=...).run_forever() becomes a loop. It ends when the
    # server closes normally and raises ConnectionClosedError when the connection breaks.
    with syncws.connect(uri) as websocket:
        for message in websocket:
            on_message(message)


class Listener:
    """WebSocketApp's callbacks in a background thread: open, message, close."""

    def __init__(self, uri: str) -> None:
        self.messages: list[str | bytes] = []
        self.websocket = syncws.connect(uri)  # on_open: the handshake is done on return
        self.thread = threading.Thread(target=self._run, name="listener")
        self.thread.start()

    def _run(self) -> None:
        try:
            for message in self.websocket:
                self.on_message(message)
        except syncws.ConnectionClosedError as exc:
            self.on_error(exc)
        self.on_close(self.websocket.close_code, self.websocket.close_reason)

    def on_message(self, message: str | bytes) -> None:
        self.messages.append(message)

    def on_error(self, exc: Exception) -> None:
        print(f"connection lost: {exc}")

    def on_close(self, code: int | None, reason: str | None) -> None:
        print(f"closed: {code} {reason!r}")

    def send(self, message: str) -> None:
        # Any thread may send, while the listener's thread receives.
        self.websocket.send(message)

    def stop(self) -> None:
        self.websocket.close()
        self.thread.join(timeout=10)
