"""Small helpers shared by the frame and protocol tests."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import TypeVar

from syncws.core.frames import Close, Frame, Opcode, apply_mask
from syncws.core.protocol import Side
from syncws.core.streams import StreamReader

__all__ = ["MASK_KEY", "parse_sent", "run", "sent_close", "wire"]

T = TypeVar("T")

# The mask key of the examples in RFC 6455 §5.7: a non-zero key, so unmasking is exercised.
MASK_KEY = bytes.fromhex("37fa213d")


def run(parser: Generator[None, None, T]) -> T:
    """Run a parser whose input is already buffered; fail if it waits for more."""
    try:
        next(parser)
    except StopIteration as exc:
        value: T = exc.value
        return value
    raise AssertionError("the parser waits for more data")


def wire(header: str, payload: bytes = b"", *, masked: bool, key: bytes = MASK_KEY) -> bytes:
    """Build a frame from a hex header (without mask key) and a payload.

    The mask bit of the second byte is set or cleared to match ``masked``; when set, ``key``
    follows the header and the payload is masked with it. The length in the header is kept as
    written, so malformed headers can be built too.
    """
    head = bytearray.fromhex(header)
    if masked:
        head[1] |= 0x80
        return bytes(head) + key + apply_mask(payload, key)
    head[1] &= 0x7F
    return bytes(head) + payload


def parse_sent(chunks: Iterable[bytes], sender: Side) -> list[Frame]:
    """Parse what a protocol on side ``sender`` wrote (masked when a client wrote it)."""
    reader = StreamReader()
    reader.feed_data(b"".join(chunks))
    reader.feed_eof()
    frames: list[Frame] = []
    while reader.buffer:
        frames.append(run(Frame.parse(reader, mask=sender is Side.CLIENT, allow_rsv=True)))
    return frames


def sent_close(frames: list[Frame]) -> Close:
    """The payload of the last frame, which must be a Close frame."""
    assert frames, "no frame was sent"
    assert frames[-1].opcode is Opcode.CLOSE, f"last frame sent is {frames[-1]}"
    return Close.parse(frames[-1].data)
