"""The ways to send messages."""

from collections.abc import Iterator
from pathlib import Path

import syncws


def send_examples(websocket: syncws.ClientConnection, path: Path) -> None:
    websocket.send("a text message")  # str: a text message
    websocket.send(b"\x00\x01\x02")  # bytes, bytearray or memoryview: a binary message
    # Any other iterable: one message in several frames, sent as the iterable yields them.
    # Here a file goes out 64 KiB at a time, never held in memory whole.
    websocket.send(read_chunks(path))
    # Fragments of text are str; a message can't mix str and bytes.
    websocket.send(["one ", "message, ", "three frames"])


def read_chunks(path: Path, size: int = 65536) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(size):
            yield chunk
