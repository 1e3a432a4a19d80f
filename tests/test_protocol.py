"""Tests for syncws.core.protocol: the sans-I/O framing state machine.

The first part follows the robustness table row by row (tests named after the row ids, on the
server side and, where it applies, on the client side). Then come the closing handshake, the
sending API, logging and extensions, and last a differential test against the sans-I/O layer of
the ``websockets`` package.

Frames a server receives are masked with ``MASK_KEY``; frames a client receives are not.

Every test runs twice: with the frame parser that the protocol uses (the C accelerator's when
it is built) and with the pure-Python one, so that both fail in the same way on every row.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import sys
import tracemalloc
import types
from collections.abc import Callable, Generator
from itertools import pairwise
from typing import NamedTuple

import pytest
from helpers import MASK_KEY, parse_sent, sent_close, wire
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets import frames as ws_frames
from websockets import protocol as ws_protocol

from syncws.core import frames
from syncws.core import protocol as protocol_module
from syncws.core.extensions.base import Extension
from syncws.core.frames import Close, Frame, Opcode, apply_mask
from syncws.core.protocol import FRAME_OVERHEAD, Protocol, Side, State
from syncws.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)

SIDES = [pytest.param(Side.SERVER, id="server"), pytest.param(Side.CLIENT, id="client")]

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG

PARSERS = [
    pytest.param(
        "selected",
        id="selected",
        marks=pytest.mark.skipif(
            frames.parse_frame is frames._parse_frame_python, reason="built without a C compiler"
        ),
    ),
    pytest.param("python", id="python"),
]


@pytest.fixture(autouse=True, params=PARSERS)
def frame_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the selected frame parsers and payload blocks, then with the
    pure-Python ones."""
    if request.param == "python":
        monkeypatch.setattr(protocol_module, "parse_frame", frames._parse_frame_python)
        monkeypatch.setattr(protocol_module, "parse_messages", frames._parse_messages_python)
        monkeypatch.setattr(frames, "Block", frames._BlockPython)
    assert isinstance(request.param, str)
    return request.param


# Helpers.


def frame_in(side: Side, header: str, payload: bytes = b"") -> bytes:
    """A frame sent to a protocol on ``side``: masked with MASK_KEY when it goes to a server.

    ``header`` is hex, without mask key; its mask bit is set or cleared to match.
    """
    return wire(header, payload, masked=side is Side.SERVER)


def encode_in(side: Side, frame: Frame) -> bytes:
    """Serialize a frame sent to a protocol on ``side``."""
    return frame.serialize(mask=side is Side.SERVER, mask_key=MASK_KEY)


def state(protocol: Protocol) -> State:
    """The state, read through a call so that type checkers do not narrow it between steps."""
    return protocol.state


def received(protocol: Protocol) -> list[Frame]:
    """The events received since the last call, which must all be frames."""
    frames: list[Frame] = []
    for event in protocol.events_received():
        assert isinstance(event, Frame)
        frames.append(event)
    return frames


def sent(protocol: Protocol) -> list[Frame]:
    """The frames written since the last call, parsed back."""
    return parse_sent(protocol.data_to_send(), protocol.side)


def assert_ignores_input(protocol: Protocol) -> None:
    """Further frames, even a ping, are dropped: nothing is delivered or sent."""
    protocol.receive_data(
        frame_in(protocol.side, "81 01", b"x") + frame_in(protocol.side, "89 01", b"p")
    )
    assert protocol.events_received() == []
    assert protocol.data_to_send() == []
    assert not protocol.reader.buffer


def assert_failed(protocol: Protocol, code: int) -> list[Frame]:
    """Check that the protocol failed the connection with ``code``.

    It sent a Close with that code and a reason, ended its output, discards further input, and
    closes on EOF. Returns the frames sent before the Close.
    """
    frames = sent(protocol)
    close = sent_close(frames)
    assert close.code == code
    assert close.reason  # says what went wrong
    assert protocol.close_sent == close
    assert protocol.close_rcvd is None
    assert isinstance(protocol.parser_exc, ProtocolError)
    assert protocol.parser_exc.code == code
    assert state(protocol) is State.CLOSING
    assert protocol.eof_sent
    assert protocol.close_expected()
    assert not protocol.reader.buffer
    assert_ignores_input(protocol)
    protocol.receive_eof()
    assert state(protocol) is State.CLOSED
    assert protocol.close_code == 1006
    assert protocol.data_to_send() == []
    exc = protocol.close_exc
    assert isinstance(exc, ConnectionClosedError)
    assert exc.sent == close
    assert exc.rcvd is None
    return frames[:-1]


def assert_open(protocol: Protocol) -> None:
    assert state(protocol) is State.OPEN
    assert protocol.parser_exc is None
    assert not protocol.eof_sent
    assert not protocol.close_expected()


def text_frames(data: bytes, cuts: list[int]) -> list[Frame]:
    """A text message split into fragments at the given byte offsets."""
    points = [0, *sorted(set(cuts)), len(data)]
    frames = [Frame(CONT, data[start:end], fin=False) for start, end in pairwise(points)]
    frames[0].opcode = TEXT
    frames[-1].fin = True
    return frames


# F1-F8: framing.


@pytest.mark.parametrize("side", SIDES)
def test_F1_huge_declared_length(side: Side) -> None:
    protocol = Protocol(side)
    header = frame_in(side, "82 FF 7F FF FF FF FF FF FF FF")  # length 2**63 - 1 (+ mask key)
    tracemalloc.start()
    try:
        for size in range(1, 10):
            protocol.receive_data(header[size - 1 : size])
            assert protocol.reader.buffer == header[:size]  # only header bytes are held
            assert protocol.data_to_send() == []
        protocol.receive_data(header[9:10])  # the length is complete: fail at once
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert protocol.events_received() == []
    assert isinstance(protocol.parser_exc, PayloadTooBig)
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
def test_F1_huge_declared_length_without_max_size(side: Side) -> None:
    # Without a limit, the protocol waits for the payload and holds only what arrived.
    protocol = Protocol(side, max_size=None)
    data = frame_in(side, "82 FF 7F FF FF FF FF FF FF FF") + b"x" * 1000
    protocol.receive_data(data)
    assert protocol.reader.buffer == data
    assert protocol.events_received() == []
    assert protocol.data_to_send() == []
    assert_open(protocol)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    "header",
    [
        pytest.param("82 FF 80 00 00 00 00 00 00 05", id="2**63+5"),
        pytest.param("82 FF FF FF FF FF FF FF FF FF", id="2**64-1"),
    ],
)
@pytest.mark.parametrize("max_size", [2**20, None, 2**64], ids=["default", "none", "2**64"])
def test_F2_length_msb_set(side: Side, header: str, max_size: int | None) -> None:
    protocol = Protocol(side, max_size=max_size)
    protocol.receive_data(frame_in(side, header, b"hello"))
    assert protocol.events_received() == []
    assert type(protocol.parser_exc) is ProtocolError
    assert_failed(protocol, 1002)


F3_REJECTED = [
    pytest.param("82 FE 00 05", 5, id="5-in-16-bit"),
    pytest.param("82 FF 00 00 00 00 00 00 00 05", 5, id="5-in-64-bit"),
    pytest.param("82 FF 00 00 00 00 00 00 00 C8", 200, id="200-in-64-bit"),
    pytest.param("82 FE 00 00", 0, id="0-in-16-bit"),
    pytest.param("82 FE 00 7D", 125, id="125-in-16-bit"),
    pytest.param("82 FF 00 00 00 00 00 00 FF FF", 65535, id="65535-in-64-bit"),
]
F3_ACCEPTED = [
    pytest.param("82 FE 00 7E", 126, id="126-in-16-bit"),
    pytest.param("82 FE FF FF", 65535, id="65535-in-16-bit"),
    pytest.param("82 FF 00 00 00 00 00 01 00 00", 65536, id="65536-in-64-bit"),
]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("header", "size"), F3_REJECTED)
def test_F3_non_minimal_length(side: Side, header: str, size: int) -> None:
    # RFC 6455 §5.2: "the minimal number of bytes MUST be used"; syncws is strict.
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, header, b"x" * size))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("header", "size"), F3_ACCEPTED)
def test_F3_minimal_length_accepted(side: Side, header: str, size: int) -> None:
    protocol = Protocol(side)
    payload = random.Random(size).randbytes(size)
    protocol.receive_data(frame_in(side, header, payload))
    assert received(protocol) == [Frame(BINARY, payload)]
    assert protocol.data_to_send() == []
    assert_open(protocol)


def test_F4_unmasked_frame_to_server() -> None:
    protocol = Protocol(Side.SERVER)
    protocol.receive_data(bytes.fromhex("81 02 68 69"))
    assert protocol.events_received() == []  # the payload is never delivered
    assert_failed(protocol, 1002)


def test_F5_masked_frame_to_client() -> None:
    protocol = Protocol(Side.CLIENT)
    protocol.receive_data(wire("81 02", b"hi", masked=True))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("first_byte", ["C1", "A1", "91", "F2", "C9"])
def test_F6_rsv_bits_without_extension(side: Side, first_byte: str) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, f"{first_byte} 01", b"x"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("opcode", [*range(0x3, 0x8), *range(0xB, 0x10)], ids=lambda op: f"{op:X}")
def test_F7_reserved_opcode(side: Side, opcode: int) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, f"{0x80 | opcode:02X} 80"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


def _f8_frames() -> list[Frame]:
    fragmented = "fragmented κόσμε 😀 end".encode()
    # Cut inside a 2-byte and a 4-byte character.
    cuts = [fragmented.index(b"\xcf\x83") + 1, fragmented.index("😀".encode()) + 2]
    first, middle, last = text_frames(fragmented, cuts)
    return [
        Frame(TEXT, "héllo wörld € 𝄞".encode()),  # 7-bit length
        Frame(BINARY, bytes(range(256)) * 2),  # 16-bit length
        Frame(BINARY, random.Random(8).randbytes(70_000)),  # 64-bit length
        first,  # a fragmented text message, split inside characters
        Frame(PING, b"ping between fragments"),
        middle,
        Frame(PONG, b"unsolicited"),
        last,
        Frame(TEXT, ("ü" * 200).encode()),  # 16-bit text, validated as it arrives
        Frame(BINARY, b""),
        Frame(PING, b""),
        Frame(CLOSE, Close(1000, "done").serialize()),
    ]


F8_FRAMES = _f8_frames()


class Delivery(NamedTuple):
    events: list[Frame]
    sent: list[Frame]
    raw: bytes | None  # what a server wrote; a client's output has random mask keys
    state: tuple[State, bool, Close | None, Close | None]


def deliver(side: Side, chunks: list[bytes]) -> Delivery:
    protocol = Protocol(side)
    events: list[Frame] = []
    output: list[bytes] = []
    for chunk in chunks:
        protocol.receive_data(chunk)
        events += received(protocol)
        output += protocol.data_to_send()
    protocol.receive_eof()
    events += received(protocol)
    output += protocol.data_to_send()
    return Delivery(
        events,
        parse_sent(output, side),
        b"".join(output) if side is Side.SERVER else None,
        (protocol.state, protocol.eof_sent, protocol.close_rcvd, protocol.close_sent),
    )


def f8_stream(side: Side) -> bytes:
    return b"".join(encode_in(side, frame) for frame in F8_FRAMES)


F8_EXPECTED_SENT = [
    Frame(PONG, b"ping between fragments"),
    Frame(PONG, b""),
    Frame(CLOSE, b"\x03\xe8done"),
]


@pytest.mark.parametrize("side", SIDES)
def test_F8_stream_whole(side: Side) -> None:
    delivery = deliver(side, [f8_stream(side)])
    assert delivery.events == F8_FRAMES
    assert delivery.sent == F8_EXPECTED_SENT
    assert delivery.state == (State.CLOSED, True, Close(1000, "done"), Close(1000, "done"))


@pytest.mark.parametrize("side", SIDES)
def test_F8_stream_one_byte_at_a_time(side: Side) -> None:
    data = f8_stream(side)
    whole = deliver(side, [data])
    assert deliver(side, [data[index : index + 1] for index in range(len(data))]) == whole


@pytest.mark.parametrize("side", SIDES)
@settings(max_examples=40)
@given(cuts=st.lists(st.integers(min_value=1, max_value=75_000), max_size=40))
def test_F8_stream_random_splits(side: Side, cuts: list[int]) -> None:
    data = f8_stream(side)
    points = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    chunks = [data[start:end] for start, end in pairwise(points)]
    assert deliver(side, chunks) == deliver(side, [data])


# G1-G5: fragmentation.


@pytest.mark.parametrize("side", SIDES)
def test_G1_continuation_without_start(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "80 01", b"x"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
def test_G2_new_message_before_end_of_previous(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "01 01", b"a") + frame_in(side, "81 01", b"b"))
    assert received(protocol) == [Frame(TEXT, b"a", fin=False)]
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
def test_G3_ping_between_fragments(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "01 05", b"frag1") + frame_in(side, "89 01", b"p"))
    # The pong is queued at once, before the message ends.
    assert sent(protocol) == [Frame(PONG, b"p")]
    assert received(protocol) == [Frame(TEXT, b"frag1", fin=False), Frame(PING, b"p")]
    protocol.receive_data(frame_in(side, "80 05", b"frag2"))
    assert received(protocol) == [Frame(CONT, b"frag2")]
    assert protocol.data_to_send() == []
    assert_open(protocol)


def test_G3_pong_bytes_from_server() -> None:
    protocol = Protocol(Side.SERVER)
    protocol.receive_data(
        frame_in(Side.SERVER, "01 05", b"frag1") + frame_in(Side.SERVER, "89 01", b"p")
    )
    assert protocol.data_to_send() == [b"\x8a\x01p"]


def fragments_that_fit(max_size: int, size: int) -> int:
    """How many frames of ``size`` bytes a message may have: each after the first costs more."""
    return (max_size + FRAME_OVERHEAD) // (size + FRAME_OVERHEAD)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("payload", [b"a", b""], ids=["1-byte", "empty"])
def test_G4_endless_fragments(side: Side, payload: bytes) -> None:
    protocol = Protocol(side)
    assert protocol.max_size == 2**20
    length = f"{len(payload):02X}"
    cont = frame_in(side, f"00 {length}", payload)
    data = frame_in(side, f"02 {length}", payload) + cont * 100_000  # FIN never set
    events: list[Frame] = []  # held as the I/O layer holds a message until its end
    tracemalloc.start()
    try:
        for start in range(0, len(data), 1 << 16):
            protocol.receive_data(data[start : start + (1 << 16)])
            events += received(protocol)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Each fragment after the first costs FRAME_OVERHEAD bytes more than its payload: the
    # flood fails at once, after 8193 empty or 8129 one-byte frames, not after 100 001.
    assert len(events) == fragments_that_fit(2**20, len(payload))
    assert len(events) == (8193 if payload == b"" else 8129)
    assert events[0] == Frame(BINARY, payload, fin=False)
    assert all(frame == Frame(CONT, payload, fin=False) for frame in events[1:])
    # What the fragments take in memory stays under max_size; input buffers come on top.
    assert held < 2**20
    assert peak < 2 * 2**20
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("max_size", [0, 127, 128, 1000])
def test_G4_fails_exactly_at_max_size(side: Side, max_size: int) -> None:
    protocol = Protocol(side, max_size=max_size)
    protocol.receive_data(frame_in(side, "02 00"))
    for _ in range(max_size // FRAME_OVERHEAD):
        protocol.receive_data(frame_in(side, "00 00"))
    assert len(received(protocol)) == 1 + max_size // FRAME_OVERHEAD
    assert_open(protocol)
    protocol.receive_data(frame_in(side, "00 00"))
    assert protocol.events_received() == []
    assert f"({FRAME_OVERHEAD} bytes per frame after the first)" in str(protocol.parser_exc)
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
def test_G4_cost_restarts_with_each_message(side: Side) -> None:
    # Three one-byte frames cost exactly max_size; the next message starts from zero.
    protocol = Protocol(side, max_size=3 + 2 * FRAME_OVERHEAD)
    for _ in range(2):
        protocol.receive_data(
            frame_in(side, "01 01", b"a") + frame_in(side, "00 01", b"b")
            + frame_in(side, "80 01", b"c")
        )  # fmt: skip
        assert len(received(protocol)) == 3
    assert_open(protocol)


@pytest.mark.parametrize("side", SIDES)
def test_G4_no_limit_without_max_size(side: Side) -> None:
    # max_size=None is no limit at all: neither on the size nor on the number of frames.
    protocol = Protocol(side, max_size=None)
    protocol.receive_data(
        frame_in(side, "02 01", b"a") + frame_in(side, "00 00") * 100_000
        + frame_in(side, "80 01", b"z")
    )  # fmt: skip
    assert len(received(protocol)) == 100_002
    assert_open(protocol)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("fragment_size", [64, 256, 1024, 4096, 65536])
def test_G4_large_message_in_small_fragments(
    side: Side, opcode: Opcode, fragment_size: int
) -> None:
    # Autobahn 9.3.x (text) / 9.4.x (binary): a 4 MiB message in fragments of 64 bytes to
    # 4 MiB, received with max_size=32 MiB. In 64-byte fragments it costs 4 MiB of payload
    # plus 65 535 * FRAME_OVERHEAD bytes, about 12 MiB: well within the limit.
    message = (b"*" if opcode is TEXT else b"\xfe") * 2**22
    protocol = Protocol(side, max_size=2**25)
    chunks = [message[start : start + fragment_size] for start in range(0, 2**22, fragment_size)]
    frames = [Frame(CONT, chunk, fin=False) for chunk in chunks]
    frames[0].opcode = opcode
    frames[-1].fin = True
    data = b"".join(encode_in(side, frame) for frame in frames)
    protocol.receive_data(data)
    events = received(protocol)
    assert len(events) == 2**22 // fragment_size
    assert b"".join(frame.data for frame in events) == message
    assert events[-1].fin
    assert_open(protocol)


@pytest.mark.parametrize("side", SIDES)
def test_G4_largest_message_in_small_fragments(side: Side) -> None:
    # 64-byte fragments, then a last one that brings the cost to max_size exactly.
    count = fragments_that_fit(2**20, 64)  # 5462 frames of 64 bytes
    first = encode_in(side, Frame(BINARY, b"x" * 64, fin=False))
    middle = encode_in(side, Frame(CONT, b"x" * 64, fin=False)) * (count - 2)
    size = 2**20 - 64 * (count - 1) - FRAME_OVERHEAD * (count - 1)
    assert size == 64
    protocol = Protocol(side)
    protocol.receive_data(first + middle + encode_in(side, Frame(CONT, b"x" * size)))
    assert len(received(protocol)) == count
    assert_open(protocol)
    protocol.receive_data(first + middle + encode_in(side, Frame(CONT, b"x" * (size + 1))))
    assert len(received(protocol)) == count - 1
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
def test_G5_cumulative_size(side: Side) -> None:
    protocol = Protocol(side)
    assert protocol.max_size is not None
    size = protocol.max_size // 999  # 999 fragments of payload would fit, 1000 would not
    payload = b"s" * size
    frames = [Frame(BINARY, payload, fin=False)] + [Frame(CONT, payload, fin=False)] * 999
    protocol.receive_data(b"".join(encode_in(side, frame) for frame in frames))
    events = received(protocol)
    # With FRAME_OVERHEAD per fragment after the first, 890 fit: the 891st crosses max_size.
    assert len(events) == fragments_that_fit(protocol.max_size, size) == 890
    assert events == frames[:890]
    assert "exceeds limit of 1048576 bytes" in str(protocol.parser_exc)
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
def test_G5_message_of_exactly_max_size(side: Side) -> None:
    # Ten frames: 1000 bytes of payload and nine times FRAME_OVERHEAD make max_size.
    max_size = 1000 + 9 * FRAME_OVERHEAD
    protocol = Protocol(side, max_size=max_size)
    frames = text_frames(b"m" * 1000, list(range(100, 1000, 100)))
    protocol.receive_data(b"".join(encode_in(side, frame) for frame in frames))
    assert received(protocol) == frames
    assert_open(protocol)
    # One frame may hold all of max_size: only fragments after the first cost more.
    protocol.receive_data(encode_in(side, Frame(BINARY, b"m" * max_size)))
    assert received(protocol) == [Frame(BINARY, b"m" * max_size)]
    assert_open(protocol)
    # One byte more in the last of ten frames crosses the limit.
    frames = text_frames(b"m" * 1001, list(range(100, 1000, 100)))
    protocol.receive_data(b"".join(encode_in(side, frame) for frame in frames))
    assert len(received(protocol)) == 9
    assert_failed(protocol, 1009)


# A (message, frame) pair for max_size, as in websockets: the frame limit.


@pytest.mark.parametrize("side", SIDES)
def test_frame_over_the_frame_limit_fails_before_its_payload(side: Side) -> None:
    protocol = Protocol(side, max_size=(2**20, 300))
    assert (protocol.max_size, protocol.max_frame_size) == (2**20, 300)
    protocol.receive_data(encode_in(side, Frame(BINARY, b"f" * 300)))
    assert received(protocol) == [Frame(BINARY, b"f" * 300)]
    # The header of a 301-byte frame, and not one byte of its payload: that is enough.
    protocol.receive_data(frame_in(side, "82 7E 01 2D"))
    assert received(protocol) == []
    assert str(protocol.parser_exc) == "frame of 301 bytes exceeds limit of 300 bytes"
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
def test_frames_under_the_frame_limit_over_the_message_limit(side: Side) -> None:
    protocol = Protocol(side, max_size=(1000, 300))
    frames = text_frames(b"m" * 1500, [300, 600, 900, 1200])
    protocol.receive_data(b"".join(encode_in(side, frame) for frame in frames))
    # 300 + 300 + 128 = 728 bytes fit; a third frame makes 1156 of the 1000 allowed.
    assert received(protocol) == frames[:2]
    assert "exceeds limit of 1000 bytes" in str(protocol.parser_exc)
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
def test_frame_limit_without_a_message_limit(side: Side) -> None:
    protocol = Protocol(side, max_size=(None, 100))
    frames = text_frames(b"m" * 10_000, list(range(100, 10_000, 100)))
    protocol.receive_data(b"".join(encode_in(side, frame) for frame in frames))
    assert received(protocol) == frames
    assert_open(protocol)
    protocol.receive_data(encode_in(side, Frame(BINARY, b"m" * 101)))
    assert received(protocol) == []
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("max_size", [1000, None, (1000, None), (None, None)])
def test_an_integer_or_none_limits_the_message_only(
    side: Side, max_size: int | tuple[int | None, int | None] | None
) -> None:
    protocol = Protocol(side, max_size=max_size)
    assert protocol.max_frame_size is None
    protocol.receive_data(encode_in(side, Frame(BINARY, b"m" * 1000)))
    assert received(protocol) == [Frame(BINARY, b"m" * 1000)]
    assert_open(protocol)


# U1-U4: UTF-8.


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("ED A0 80", id="surrogate"),
        pytest.param("C0 AF", id="overlong"),
        pytest.param("F4 90 80 80", id="above-max"),
        pytest.param("FF", id="FF"),
        pytest.param("68 69 FF 68 69", id="FF-inside-ascii"),
    ],
)
def test_U1_invalid_utf8_text_frame(side: Side, payload: str) -> None:
    protocol = Protocol(side)
    data = bytes.fromhex(payload)
    protocol.receive_data(frame_in(side, f"81 {len(data):02X}", data))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES)
def test_U2_valid_sequence_split_over_frames(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "01 03", b"\xf0\x9f\x98"))
    protocol.receive_data(frame_in(side, "80 01", b"\x80"))
    frames = received(protocol)
    assert frames == [Frame(TEXT, b"\xf0\x9f\x98", fin=False), Frame(CONT, b"\x80")]
    assert b"".join(frame.data for frame in frames).decode() == "😀"
    assert_open(protocol)


@pytest.mark.parametrize("side", SIDES)
def test_U2_invalid_fragment_fails_before_fin(side: Side) -> None:
    protocol = Protocol(side)
    fragment = bytes.fromhex("CE BA E1 BD B9 CF 83 CE BC CE B5 F4 90 80 80")
    protocol.receive_data(frame_in(side, "01 0F", fragment))  # FIN=0, then silence
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES)
def test_U2_fail_fast_inside_one_frame(side: Side) -> None:
    payload = bytes.fromhex("CEBAE1BDB9CF83CEBCCEB5F4908080656469746564")
    data = frame_in(side, f"81 {len(payload):02X}", payload)
    header = len(data) - len(payload)
    protocol = Protocol(side)
    protocol.receive_data(data[: header + 11])  # κόσμε: valid so far
    assert protocol.data_to_send() == []
    protocol.receive_data(data[header + 11 : header + 15])  # F4 90 80 80
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)  # feeds more data: the rest of the frame is never awaited


@pytest.mark.parametrize("side", SIDES)
def test_U2_fail_fast_inside_one_large_frame(side: Side) -> None:
    # A frame of 100 KB is read into a block of its own: its text is still checked as it
    # arrives, and the rest of the frame is never awaited.
    payload = "é".encode() * 25_000 + b"\xf4\x90\x80\x80" + b"a" * 50_000
    data = frame_in(side, f"81 7f {len(payload):016x}", payload)
    header = len(data) - len(payload)
    protocol = Protocol(side)
    protocol.receive_data(data[: header + 50_000])
    assert protocol.data_to_send() == []
    protocol.receive_data(data[header + 50_000 : header + 50_004])
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
@pytest.mark.parametrize("piece", [1, 7000, 65536])
def test_large_frame_in_pieces(side: Side, opcode: Opcode, piece: int) -> None:
    # 220 KB of text in one frame, then a ping: the frame is read into a block of its own,
    # and what comes after it is read as usual.
    payload = ("κόσμε" * 20_000).encode()
    data = frame_in(side, f"{0x80 | opcode:02x} 7f {len(payload):016x}", payload)
    data += frame_in(side, "89 04", b"ping")
    protocol = Protocol(side)
    if piece == 1:
        # One byte at a time, through the buffer the protocol lends, for the header and
        # the first bytes; then the rest at once.
        for byte in data[:20]:
            view = protocol.get_buffer(1)
            view[0] = byte
            protocol.buffer_updated(1)
        protocol.receive_data(data[20:])
    else:
        for start in range(0, len(data), piece):
            protocol.receive_data(data[start : start + piece])
    assert protocol.events_received() == [Frame(opcode, payload), Frame(PING, b"ping")]
    assert sent(protocol) == [Frame(PONG, b"ping")]


@pytest.mark.parametrize("side", SIDES)
def test_U2_surrogate_prefix_at_end_of_fragment(side: Side) -> None:
    # CPython's decoder alone would wait for a third byte after ED A0.
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "01 02", b"\xed\xa0"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES)
def test_U2_surrogate_prefix_inside_one_frame(side: Side) -> None:
    protocol = Protocol(side)
    data = frame_in(side, "81 04", b"a\xed\xa0\x80")
    protocol.receive_data(data[:-2])  # ends with ED
    assert protocol.data_to_send() == []
    protocol.receive_data(data[-2:-1])  # ED A0: invalid whatever comes next
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES)
def test_U2_ed_9f_prefix_is_valid(side: Side) -> None:
    # ED 9F BF is U+D7FF, the last character before the surrogates.
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "01 02", b"\xed\x9f"))
    protocol.receive_data(frame_in(side, "80 01", b"\xbf"))
    assert b"".join(frame.data for frame in received(protocol)).decode() == "\ud7ff"
    assert_open(protocol)


def utf8_texts() -> st.SearchStrategy[str]:
    astral = st.characters(min_codepoint=0x10000, codec="utf-8")
    return st.text(st.one_of(st.characters(codec="utf-8"), astral), min_size=1, max_size=16)


@settings(max_examples=40)
@given(text=utf8_texts())
def test_utf8_fragmented_at_every_offset(text: str) -> None:
    data = text.encode()
    splits = [[offset] for offset in range(len(data) + 1)] + [list(range(1, len(data)))]
    for cuts in splits:
        protocol = Protocol(Side.CLIENT)
        protocol.receive_data(b"".join(encode_in(Side.CLIENT, f) for f in text_frames(data, cuts)))
        assert b"".join(frame.data for frame in received(protocol)).decode() == text
        assert protocol.data_to_send() == []
        assert_open(protocol)


@settings(max_examples=40)
@given(
    text=utf8_texts(),
    position=st.integers(min_value=0),
    byte=st.sampled_from([0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xFF]),
)
def test_utf8_one_invalid_byte_inserted(text: str, position: int, byte: int) -> None:
    valid = text.encode()
    position %= len(valid) + 1
    data = valid[:position] + bytes([byte]) + valid[position:]
    with pytest.raises(UnicodeDecodeError):
        data.decode()
    for cuts in [[], list(range(1, len(data)))]:  # one frame, then one byte per frame
        protocol = Protocol(Side.CLIENT)
        frames = text_frames(data, cuts)
        protocol.receive_data(b"".join(encode_in(Side.CLIENT, f) for f in frames))
        assert len(received(protocol)) < len(frames)
        assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES)
def test_U3_text_ends_mid_sequence(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "81 02", b"\xe2\x82"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES)
def test_U3_fragmented_text_ends_mid_sequence(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "01 03", b"ok\xe2") + frame_in(side, "80 01", b"\x82"))
    assert received(protocol) == [Frame(TEXT, b"ok\xe2", fin=False)]
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES)
def test_U4_close_reason_not_utf8(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "88 04", b"\x03\xe8\xff\xfe"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


# C1-C4: control frames.


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("opcode", ["89", "88", "8A"], ids=["ping", "close", "pong"])
def test_C1_control_frame_too_long(side: Side, opcode: str) -> None:
    protocol = Protocol(side)
    data = frame_in(side, f"{opcode} FE 00 7E", b"\x03\xe8" + b"c" * 124)
    protocol.receive_data(data[:2])  # the 7-bit length alone is enough
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("opcode", ["09", "08", "0A"], ids=["ping", "close", "pong"])
def test_C2_fragmented_control_frame(side: Side, opcode: str) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, f"{opcode} 02", b"\x03\xe8"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
def test_C3_ping_flood(side: Side) -> None:
    # 100 000 pings of 125 bytes, with a data frame after every 10. A server receives them
    # masked with a zero key, so they are built fast.
    protocol = Protocol(side)
    ping_header = b"\x89\xfd\x00\x00\x00\x00" if side is Side.SERVER else b"\x89\x7d"
    data_header = b"\x82\x84\x00\x00\x00\x00" if side is Side.SERVER else b"\x82\x04"
    filler = bytes(range(121))
    buffer_sizes: set[int] = set()
    for batch in range(100):
        ids = [(batch * 1000 + index).to_bytes(4, "big") for index in range(1000)]
        data = b"".join(
            ping_header + id_ + filler + (data_header + id_ if index % 10 == 9 else b"")
            for index, id_ in enumerate(ids)
        )
        protocol.receive_data(data)
        events = protocol.events_received()
        assert len(events) == 1100
        frames = [event for event in events if isinstance(event, Frame)]
        assert [frame.data for frame in frames if frame.opcode is PING] == [
            id_ + filler for id_ in ids
        ]
        assert [frame.data for frame in frames if frame.opcode is BINARY] == ids[9::10]
        output = protocol.data_to_send()
        assert len(output) == 1000  # one pong per ping, each echoing its ping
        if side is Side.SERVER:
            assert b"".join(output) == b"".join(b"\x8a\x7d" + id_ + filler for id_ in ids)
        else:
            for write, id_ in zip(output, ids, strict=True):
                assert write[:2] == b"\x8a\xfd"
                assert apply_mask(write[6:], write[2:6]) == id_ + filler
        # Nothing accumulates between batches.
        assert protocol.events == []
        assert protocol.writes == []
        assert not protocol.reader.buffer
        buffer_sizes.add(sys.getsizeof(protocol.reader.buffer))
    assert max(buffer_sizes) < 4096
    assert_open(protocol)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("payload", [b"", b"unknown", b"\xff" * 125], ids=["empty", "text", "125"])
def test_C4_unsolicited_pong(side: Side, payload: bytes) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, f"8A {len(payload):02X}", payload))
    assert received(protocol) == [Frame(PONG, payload)]
    assert protocol.data_to_send() == []
    assert_open(protocol)


# L1-L4: closing.


INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                     3000, 3999, 4000, 4999]  # fmt: skip


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("code", INVALID_CLOSE_CODES)
def test_L1_invalid_close_code(side: Side, code: int) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "88 02", code.to_bytes(2, "big")))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("code", VALID_CLOSE_CODES)
def test_L1_valid_close_code_echoed(side: Side, code: int) -> None:
    protocol = Protocol(side)
    payload = code.to_bytes(2, "big") + b"reason"
    protocol.receive_data(frame_in(side, "88 08", payload))
    assert received(protocol) == [Frame(CLOSE, payload)]
    assert sent(protocol) == [Frame(CLOSE, payload)]  # the same code and reason
    assert protocol.close_rcvd == protocol.close_sent == Close(code, "reason")
    assert state(protocol) is State.CLOSING
    assert protocol.parser_exc is None


@pytest.mark.parametrize("side", SIDES)
def test_L2_one_byte_close_payload(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "88 01", b"\x03"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
def test_L2_empty_close_answered_with_empty_close(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "88 00"))
    assert received(protocol) == [Frame(CLOSE, b"")]
    output = protocol.data_to_send()
    assert parse_sent(output, side) == [Frame(CLOSE, b"")]  # 1005 never goes on the wire
    if side is Side.SERVER:
        assert output == [b"\x88\x00"]
    assert protocol.close_rcvd == protocol.close_sent == Close(1005, "")
    protocol.receive_eof()
    assert protocol.close_code == 1005
    assert isinstance(protocol.close_exc, ConnectionClosedOK)


@pytest.mark.parametrize("side", SIDES)
def test_L2_125_byte_close(side: Side) -> None:
    protocol = Protocol(side)
    reason = "é" * 61 + "!"  # 123 bytes
    payload = b"\x03\xe8" + reason.encode()
    assert len(payload) == 125
    protocol.receive_data(frame_in(side, "88 7D", payload))
    assert received(protocol) == [Frame(CLOSE, payload)]
    assert sent(protocol) == [Frame(CLOSE, payload)]  # the longest reason fits in the echo
    assert protocol.close_rcvd == protocol.close_sent == Close(1000, reason)


@pytest.mark.parametrize("side", SIDES)
def test_L3_close_in_the_middle_of_a_message(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "01 01", b"a") + frame_in(side, "88 02", b"\x03\xe8"))
    # The fragment was delivered already; the I/O layer drops the incomplete message when the
    # Close arrives. No more data is delivered.
    assert received(protocol) == [Frame(TEXT, b"a", fin=False), Frame(CLOSE, b"\x03\xe8")]
    assert sent(protocol) == [Frame(CLOSE, b"\x03\xe8")]
    assert protocol.parser_exc is None
    assert_ignores_input(protocol)
    protocol.receive_eof()
    assert state(protocol) is State.CLOSED
    assert protocol.close_code == 1000
    assert isinstance(protocol.close_exc, ConnectionClosedOK)


@pytest.mark.parametrize("side", SIDES)
def test_L3_utf8_state_dropped_with_the_message(side: Side) -> None:
    # A close in the middle of a text message ending inside a character is not an error.
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "01 01", b"\xe2") + frame_in(side, "88 02", b"\x03\xe8"))
    assert len(received(protocol)) == 2
    assert protocol.parser_exc is None
    assert sent(protocol) == [Frame(CLOSE, b"\x03\xe8")]


@pytest.mark.parametrize("side", SIDES)
def test_L4_frames_after_close(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(
        frame_in(side, "88 02", b"\x03\xe8") + frame_in(side, "81 01", b"x")
        + frame_in(side, "89 01", b"p")
    )  # fmt: skip
    assert received(protocol) == [Frame(CLOSE, b"\x03\xe8")]
    assert sent(protocol) == [Frame(CLOSE, b"\x03\xe8")]  # no pong
    assert_ignores_input(protocol)


# K5: masking of outgoing frames.


def test_K5_mask_keys_are_unpredictable() -> None:
    protocol = Protocol(Side.CLIENT)
    for _ in range(1000):
        protocol.send_binary(b"same payload")
    keys = [data[2:6] for data in protocol.data_to_send()]
    assert len(keys) == 1000
    assert len(set(keys)) >= 998  # 32 random bits: collisions are very unlikely
    assert keys.count(b"\x00\x00\x00\x00") <= 1


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda p: p.send_text(b"text"), id="text"),
        pytest.param(lambda p: p.send_binary(b"binary", fin=False), id="binary"),
        pytest.param(lambda p: (p.send_text(b"a", fin=False), p.send_continuation(b"b", True)),
                     id="continuation"),
        pytest.param(lambda p: p.send_ping(b"ping"), id="ping"),
        pytest.param(lambda p: p.send_pong(b"pong"), id="pong"),
        pytest.param(lambda p: p.send_close(1000, "bye"), id="close"),
        pytest.param(lambda p: p.send_close(), id="empty-close"),
        pytest.param(lambda p: p.fail(1011, "error"), id="fail"),
        pytest.param(lambda p: p.receive_data(b"\x89\x01p"), id="auto-pong"),
        pytest.param(lambda p: p.receive_data(b"\x88\x02\x03\xe8"), id="close-echo"),
    ],
)  # fmt: skip
def test_K5_client_masks_every_frame(send: Callable[[Protocol], object]) -> None:
    client = Protocol(Side.CLIENT)
    send(client)
    writes = client.data_to_send()
    assert writes
    for data in writes:
        assert data[1] & 0x80
        assert len(parse_sent([data], Side.CLIENT)) == 1


def test_K5_server_never_masks() -> None:
    server = Protocol(Side.SERVER)
    server.send_text(b"text")
    server.send_ping(b"ping")
    server.send_close(1000)
    assert server.data_to_send() == [b"\x81\x04text", b"\x89\x04ping", b"\x88\x02\x03\xe8"]


# The closing handshake.


def transfer(source: Protocol, destination: Protocol) -> None:
    for data in source.data_to_send():
        destination.receive_data(data)


def test_closing_handshake_client_first() -> None:
    server, client = Protocol(Side.SERVER), Protocol(Side.CLIENT)
    client.send_close(1000, "bye")
    assert state(client) is State.CLOSING
    assert client.close_expected()
    assert not client.eof_sent
    assert client.close_sent == Close(1000, "bye")
    assert client.close_code is None  # not closed yet

    transfer(client, server)
    assert received(server) == [Frame(CLOSE, b"\x03\xe8bye")]
    assert state(server) is State.CLOSING
    assert server.eof_sent  # the server closes the TCP connection first
    assert server.close_expected()
    assert server.close_rcvd == Close(1000, "bye")
    assert server.close_sent == Close(1000, "bye")  # the echo repeats the reason
    assert server.close_rcvd_then_sent is True

    transfer(server, client)
    assert received(client) == [Frame(CLOSE, b"\x03\xe8bye")]
    assert state(client) is State.CLOSING
    assert not client.eof_sent  # the client waits for the server to close TCP
    assert client.close_expected()
    assert client.close_rcvd_then_sent is False

    client.receive_eof()  # the server closed TCP
    assert state(client) is State.CLOSED
    assert client.eof_sent  # now the client closes its side too
    assert not client.close_expected()
    assert (client.close_code, client.close_reason) == (1000, "bye")
    exc = client.close_exc
    assert isinstance(exc, ConnectionClosedOK)
    assert str(exc) == "sent 1000 (OK) bye; then received 1000 (OK) bye"

    server.receive_eof()
    assert state(server) is State.CLOSED
    assert (server.close_code, server.close_reason) == (1000, "bye")
    assert str(server.close_exc) == "received 1000 (OK) bye; then sent 1000 (OK) bye"
    assert server.data_to_send() == client.data_to_send() == []


def test_closing_handshake_server_first() -> None:
    server, client = Protocol(Side.SERVER), Protocol(Side.CLIENT)
    server.send_close(1001, "restart")
    assert state(server) is State.CLOSING
    assert server.close_expected()
    assert not server.eof_sent  # waits for the client's Close

    transfer(server, client)
    assert state(client) is State.CLOSING
    assert client.close_rcvd_then_sent is True
    assert client.close_sent == Close(1001, "restart")
    assert not client.eof_sent
    assert client.close_expected()

    transfer(client, server)
    assert server.eof_sent
    assert server.close_rcvd_then_sent is False
    assert server.close_rcvd == Close(1001, "restart")

    client.receive_eof()
    server.receive_eof()
    for protocol in (server, client):
        assert state(protocol) is State.CLOSED
        assert protocol.eof_sent
        assert not protocol.close_expected()
        assert isinstance(protocol.close_exc, ConnectionClosedOK)
    assert client.close_reason == server.close_reason == "restart"


def test_close_echo_bytes_from_server() -> None:
    # RFC 6455 §5.5.1: the echo repeats the code and the reason, byte for byte.
    server = Protocol(Side.SERVER)
    server.receive_data(wire("88 0C", b"\x0f\xa1client-bye", masked=True))  # 4001 client-bye
    assert server.data_to_send() == [b"\x88\x0c\x0f\xa1client-bye"]
    assert server.close_sent == Close(4001, "client-bye")


def test_close_echo_bytes_from_client() -> None:
    client = Protocol(Side.CLIENT)
    client.receive_data(b"\x88\x0c\x0f\xa1server-bye")  # 4001 server-bye
    [data] = client.data_to_send()
    mask_key = data[2:6]
    assert data[:2] == b"\x88\x8c"  # masked, 12 bytes
    assert apply_mask(data[6:], mask_key) == b"\x0f\xa1server-bye"
    assert client.close_sent == Close(4001, "server-bye")


def test_closing_handshake_simultaneous() -> None:
    server, client = Protocol(Side.SERVER), Protocol(Side.CLIENT)
    server.send_close(1000)
    client.send_close(1000)
    transfer(server, client)
    transfer(client, server)
    assert client.data_to_send() == server.data_to_send() == []  # no second Close
    assert server.close_rcvd_then_sent is client.close_rcvd_then_sent is False
    assert server.eof_sent
    assert not client.eof_sent
    client.receive_eof()
    server.receive_eof()
    assert isinstance(server.close_exc, ConnectionClosedOK)
    assert isinstance(client.close_exc, ConnectionClosedOK)


@pytest.mark.parametrize(
    ("code", "ok"),
    [(None, True), (1000, True), (1001, True), (1002, False), (1011, False), (3000, False),
     (4000, False)],
)  # fmt: skip
def test_close_exc_type(code: int | None, ok: bool) -> None:
    server, client = Protocol(Side.SERVER), Protocol(Side.CLIENT)
    client.send_close(code)
    transfer(client, server)
    transfer(server, client)
    client.receive_eof()
    server.receive_eof()
    expected = ConnectionClosedOK if ok else ConnectionClosedError
    for protocol in (server, client):
        assert type(protocol.close_exc) is expected
        assert protocol.close_code == (1005 if code is None else code)


@pytest.mark.parametrize("side", SIDES)
def test_close_exc_error_when_our_code_is_not_ok(side: Side) -> None:
    protocol = Protocol(side)
    protocol.send_close(4000)
    protocol.receive_data(frame_in(side, "88 02", b"\x03\xe8"))
    protocol.receive_eof()
    exc = protocol.close_exc
    assert type(exc) is ConnectionClosedError
    assert (exc.code, exc.sent) == (1000, Close(4000, ""))


@pytest.mark.parametrize("side", SIDES)
def test_close_exc_while_open(side: Side) -> None:
    exc = Protocol(side).close_exc
    assert type(exc) is ConnectionClosedError
    assert (exc.rcvd, exc.sent, exc.code) == (None, None, 1006)


@pytest.mark.parametrize("side", SIDES)
def test_ping_while_closing_is_not_answered(side: Side) -> None:
    protocol = Protocol(side)
    protocol.send_close(1000)
    protocol.data_to_send()
    protocol.receive_data(frame_in(side, "89 01", b"p") + frame_in(side, "82 01", b"d"))
    assert received(protocol) == [Frame(PING, b"p"), Frame(BINARY, b"d")]  # data still flows
    assert protocol.data_to_send() == []
    protocol.send_ping(b"still allowed")
    assert sent(protocol) == [Frame(PING, b"still allowed")]


@pytest.mark.parametrize("side", SIDES)
def test_failure_while_closing_sends_no_second_close(side: Side) -> None:
    protocol = Protocol(side)
    protocol.send_close(1000)
    protocol.data_to_send()
    protocol.receive_data(frame_in(side, "83 00"))
    assert protocol.data_to_send() == []
    assert protocol.eof_sent
    assert isinstance(protocol.parser_exc, ProtocolError)
    assert protocol.close_sent == Close(1000, "")
    protocol.receive_eof()
    assert state(protocol) is State.CLOSED


def test_second_close_through_recv_frame_keeps_order() -> None:
    # recv_frame() is public for subclasses; the order of Close frames is recorded once.
    protocol = Protocol(Side.CLIENT)
    protocol.recv_frame(Frame(CLOSE, b"\x03\xe8"))
    protocol.recv_frame(Frame(CLOSE, b"\x03\xe9"))
    assert protocol.close_rcvd_then_sent is True
    assert protocol.close_rcvd == Close(1001, "")
    assert sent(protocol) == [Frame(CLOSE, b"\x03\xe8")]


# End of stream.


@pytest.mark.parametrize("side", SIDES)
def test_eof_while_open(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_eof()
    assert state(protocol) is State.CLOSED
    assert protocol.eof_sent  # the I/O layer closes the transport
    assert not protocol.close_expected()
    assert protocol.data_to_send() == []
    assert protocol.events_received() == []
    assert (protocol.close_code, protocol.close_reason) == (1006, "")
    assert protocol.parser_exc is None
    exc = protocol.close_exc
    assert type(exc) is ConnectionClosedError
    assert exc.code == 1006


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("header", "size", "cuts"),
    [
        ("82 7E 01 00", 256, [1, 2, 3, 4, 5, 7, -1]),
        # Read into a block of its own.
        (f"82 7f {300_000:016x}", 300_000, [10, 20, 100_000, -1]),
    ],
    ids=["small", "large"],
)
def test_eof_inside_a_frame(side: Side, header: str, size: int, cuts: list[int]) -> None:
    data = frame_in(side, header, b"x" * size)
    for cut in cuts:
        protocol = Protocol(side)
        protocol.receive_data(data[:cut])
        protocol.receive_eof()
        assert protocol.events_received() == []
        assert protocol.data_to_send() == []  # no Close: the connection is gone
        assert state(protocol) is State.CLOSED
        assert protocol.close_code == 1006
        assert protocol.eof_sent


@pytest.mark.parametrize("side", SIDES)
def test_eof_inside_a_message(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "01 02", b"\xce\xba"))
    assert len(received(protocol)) == 1
    protocol.receive_eof()
    assert protocol.data_to_send() == []
    assert state(protocol) is State.CLOSED
    assert protocol.close_code == 1006


@pytest.mark.parametrize("side", SIDES)
def test_eof_inside_a_frame_while_closing(side: Side) -> None:
    protocol = Protocol(side)
    protocol.send_close(1000)
    protocol.data_to_send()
    protocol.receive_data(frame_in(side, "88 02", b"\x03\xe8")[:3])
    protocol.receive_eof()
    assert protocol.data_to_send() == []
    assert state(protocol) is State.CLOSED
    assert protocol.close_code == 1006
    assert isinstance(protocol.close_exc, ConnectionClosedError)


@pytest.mark.parametrize("side", SIDES)
def test_receive_after_eof(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_eof()
    with pytest.raises(EOFError):
        protocol.receive_data(b"x")
    with pytest.raises(EOFError):
        protocol.receive_eof()


# fail() from the I/O layer.


@pytest.mark.parametrize("side", SIDES)
def test_fail(side: Side) -> None:
    protocol = Protocol(side)
    protocol.receive_data(frame_in(side, "82 05", b"hel"))  # a frame in progress
    protocol.fail(1011, "keepalive ping timeout")
    assert sent(protocol) == [Frame(CLOSE, Close(1011, "keepalive ping timeout").serialize())]
    assert protocol.close_sent == Close(1011, "keepalive ping timeout")
    assert state(protocol) is State.CLOSING
    assert protocol.eof_sent
    assert protocol.close_expected()
    assert protocol.parser_exc is None
    assert not protocol.reader.buffer
    assert_ignores_input(protocol)
    protocol.receive_eof()
    assert state(protocol) is State.CLOSED
    assert type(protocol.close_exc) is ConnectionClosedError


@pytest.mark.parametrize("side", SIDES)
def test_fail_truncates_long_reason(side: Side) -> None:
    protocol = Protocol(side)
    protocol.fail(1008, "é" * 100)
    close = sent_close(sent(protocol))
    assert close == protocol.close_sent
    assert close.reason == "é" * 61  # 122 bytes: the 123rd would split a character


@pytest.mark.parametrize("side", SIDES)
def test_fail_abnormal_closure_sends_no_close(side: Side) -> None:
    protocol = Protocol(side)
    protocol.fail(1006)
    assert protocol.data_to_send() == []
    assert protocol.eof_sent
    assert protocol.close_expected()
    assert protocol.close_sent is None
    protocol.receive_eof()
    assert state(protocol) is State.CLOSED
    assert protocol.close_code == 1006


@pytest.mark.parametrize("side", SIDES)
def test_fail_after_abnormal_closure(side: Side) -> None:
    # E.g. a write error, then a keepalive timeout: the end of stream was sent already, so no
    # Close can follow it, and fail() must not raise.
    protocol = Protocol(side)
    protocol.fail(1006)
    protocol.fail(1011, "keepalive ping timeout")
    assert protocol.data_to_send() == []
    assert protocol.close_sent is None
    assert protocol.eof_sent


@pytest.mark.parametrize("side", SIDES)
def test_protocol_error_after_eof_sent(side: Side) -> None:
    protocol = Protocol(side)
    protocol.send_eof()
    protocol.receive_data(frame_in(side, "83 00"))
    assert isinstance(protocol.parser_exc, ProtocolError)
    assert protocol.data_to_send() == []
    protocol.receive_eof()
    assert state(protocol) is State.CLOSED


@pytest.mark.parametrize("side", SIDES)
def test_fail_twice_and_after_close(side: Side) -> None:
    protocol = Protocol(side)
    protocol.fail(1011)
    assert len(sent(protocol)) == 1
    protocol.fail(1002)  # already failing: nothing more to send
    assert protocol.data_to_send() == []
    assert protocol.close_sent == Close(1011, "")
    protocol.receive_eof()
    protocol.fail(1011)
    assert state(protocol) is State.CLOSED
    assert protocol.data_to_send() == []


@pytest.mark.parametrize("side", SIDES)
def test_fail_while_closing(side: Side) -> None:
    protocol = Protocol(side)
    protocol.send_close(1000)
    protocol.data_to_send()
    protocol.fail(1011)
    assert protocol.data_to_send() == []
    assert protocol.eof_sent
    assert protocol.close_sent == Close(1000, "")


# Sending.


@pytest.mark.parametrize("side", SIDES)
def test_send_fragmented_message(side: Side) -> None:
    protocol = Protocol(side)
    assert not protocol.sending_fragments
    protocol.send_text("κό".encode(), fin=False)
    assert protocol.sending_fragments
    protocol.send_ping(b"p")  # control frames may interleave
    protocol.send_continuation("σμε".encode(), fin=False)
    assert protocol.sending_fragments
    protocol.send_continuation(b"", fin=True)
    assert not protocol.sending_fragments
    protocol.send_binary(b"\x00", fin=False)
    protocol.send_continuation(b"\x01", fin=True)
    assert sent(protocol) == [
        Frame(TEXT, "κό".encode(), fin=False),
        Frame(PING, b"p"),
        Frame(CONT, "σμε".encode(), fin=False),
        Frame(CONT, b""),
        Frame(BINARY, b"\x00", fin=False),
        Frame(CONT, b"\x01"),
    ]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("size", [0, 125, 126, 16383, 16384, 65536, 2**20])
@pytest.mark.parametrize("fin", [True, False])
def test_send_message_any_size(side: Side, size: int, fin: bool) -> None:
    protocol = Protocol(side)
    data = random.Random(size).randbytes(size)
    protocol.send_message(BINARY, data, fin=fin)
    writes = protocol.data_to_send()
    if side is Side.SERVER and size >= 16384:
        # A large unmasked payload follows its header as it is: not copied.
        assert len(writes) == 2
        assert writes[1] is data
    else:
        assert len(writes) == 1
    assert parse_sent(writes, side) == [Frame(BINARY, data, fin=fin)]
    assert protocol.sending_fragments is not fin


@pytest.mark.parametrize("side", SIDES)
def test_send_continuation_without_message(side: Side) -> None:
    protocol = Protocol(side)
    with pytest.raises(InvalidState, match="no fragmented message"):
        protocol.send_continuation(b"x", fin=True)
    protocol.send_text(b"a")
    with pytest.raises(InvalidState, match="no fragmented message"):
        protocol.send_continuation(b"x", fin=True)
    assert len(protocol.data_to_send()) == 1


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("method", ["send_text", "send_binary"])
def test_send_new_message_while_fragmented_message_unfinished(side: Side, method: str) -> None:
    protocol = Protocol(side)
    protocol.send_binary(b"a", fin=False)
    with pytest.raises(InvalidState, match="unfinished"):
        getattr(protocol, method)(b"b")
    protocol.send_continuation(b"c", fin=True)
    getattr(protocol, method)(b"d")
    assert len(protocol.data_to_send()) == 3


@pytest.mark.parametrize("side", SIDES)
def test_send_continuation_after_close(side: Side) -> None:
    protocol = Protocol(side)
    protocol.send_text(b"a", fin=False)
    protocol.send_close(1000)  # allowed in the middle of a fragmented message
    with pytest.raises(InvalidState, match="closing"):
        protocol.send_continuation(b"b", fin=True)


SEND_DATA: list[tuple[str, Callable[[Protocol], None]]] = [
    ("send_text", lambda p: p.send_text(b"x")),
    ("send_binary", lambda p: p.send_binary(b"x")),
    ("send_close", lambda p: p.send_close(1000)),
]
SEND_CONTROL: list[tuple[str, Callable[[Protocol], None]]] = [
    ("send_ping", lambda p: p.send_ping(b"x")),
    ("send_pong", lambda p: p.send_pong(b"x")),
]


@pytest.mark.parametrize("initial", [State.CONNECTING, State.CLOSING, State.CLOSED])
@pytest.mark.parametrize(("name", "send"), SEND_DATA, ids=[name for name, _ in SEND_DATA])
def test_send_data_in_wrong_state(
    initial: State, name: str, send: Callable[[Protocol], None]
) -> None:
    protocol = Protocol(Side.SERVER, state=initial)
    with pytest.raises(InvalidState, match=initial.name.lower()):
        send(protocol)
    assert protocol.data_to_send() == []


@pytest.mark.parametrize("initial", [State.CONNECTING, State.CLOSED])
@pytest.mark.parametrize(("name", "send"), SEND_CONTROL, ids=[name for name, _ in SEND_CONTROL])
def test_send_control_in_wrong_state(
    initial: State, name: str, send: Callable[[Protocol], None]
) -> None:
    protocol = Protocol(Side.CLIENT, state=initial)
    with pytest.raises(InvalidState, match=initial.name.lower()):
        send(protocol)


@pytest.mark.parametrize(("name", "send"), SEND_CONTROL, ids=[name for name, _ in SEND_CONTROL])
def test_send_control_while_closing(name: str, send: Callable[[Protocol], None]) -> None:
    protocol = Protocol(Side.CLIENT, state=State.CLOSING)
    send(protocol)
    assert len(sent(protocol)) == 1


@pytest.mark.parametrize(("name", "send"), SEND_CONTROL, ids=[name for name, _ in SEND_CONTROL])
def test_send_control_after_eof_sent(name: str, send: Callable[[Protocol], None]) -> None:
    # A server that received a Close ended its output: even a ping cannot be sent.
    protocol = Protocol(Side.SERVER)
    protocol.receive_data(frame_in(Side.SERVER, "88 00"))
    protocol.data_to_send()
    with pytest.raises(InvalidState, match="end of stream"):
        send(protocol)


@pytest.mark.parametrize("method", ["send_ping", "send_pong"])
def test_control_payload_size(method: str) -> None:
    protocol = Protocol(Side.SERVER)
    getattr(protocol, method)(b"x" * 125)
    with pytest.raises(ValueError, match="125 bytes"):
        getattr(protocol, method)(b"x" * 126)
    assert len(protocol.data_to_send()) == 1


@pytest.mark.parametrize(
    ("code", "reason", "message"),
    [
        pytest.param(1000, "x" * 124, "123 bytes", id="reason-too-long"),
        pytest.param(1000, "€" * 42, "123 bytes", id="reason-too-long-encoded"),
        pytest.param(None, "why", "needs a close code", id="reason-without-code"),
        pytest.param(1005, "why", "needs a close code", id="1005-with-reason"),
        *(
            pytest.param(code, "", "may not be sent", id=str(code))
            for code in [0, 999, 1004, 1006, 1015, 1016, 2999, 5000]
        ),
    ],
)
def test_send_close_invalid(code: int | None, reason: str, message: str) -> None:
    protocol = Protocol(Side.SERVER)
    with pytest.raises(ValueError, match=message):
        protocol.send_close(code, reason)
    assert protocol.data_to_send() == []
    assert_open(protocol)
    assert protocol.close_sent is None


@pytest.mark.parametrize(
    ("code", "reason", "data"),
    [
        pytest.param(None, "", b"\x88\x00", id="no-code"),
        pytest.param(1005, "", b"\x88\x00", id="1005-means-no-code"),
        pytest.param(1000, "x" * 123, b"\x88\x7d\x03\xe8" + b"x" * 123, id="longest-reason"),
        pytest.param(4999, "", b"\x88\x02\x13\x87", id="private"),
    ],
)
def test_send_close(code: int | None, reason: str, data: bytes) -> None:
    protocol = Protocol(Side.SERVER)
    protocol.send_close(code, reason)
    assert protocol.data_to_send() == [data]
    assert protocol.close_sent == Close(1005 if code is None else code, reason)
    with pytest.raises(InvalidState):
        protocol.send_close(1000)


def test_send_data_and_eof() -> None:
    protocol = Protocol(Side.SERVER, state=State.CONNECTING)
    protocol.send_data(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    protocol.send_eof()
    assert protocol.data_to_send() == [b"HTTP/1.1 400 Bad Request\r\n\r\n"]
    assert protocol.eof_sent
    with pytest.raises(InvalidState):
        protocol.send_data(b"more")
    with pytest.raises(InvalidState):
        protocol.send_frame(Frame(TEXT, b"more"))
    with pytest.raises(InvalidState):
        protocol.send_eof()


# Input processing.


@pytest.mark.parametrize("side", SIDES)
def test_in_order_processing(side: Side) -> None:
    # A valid message, a ping, then a protocol error, in one piece of data: the message and the
    # ping are delivered and the pong sent, then the connection fails.
    protocol = Protocol(side)
    protocol.receive_data(
        frame_in(side, "81 05", b"hello") + frame_in(side, "89 01", b"p")
        + frame_in(side, "83 00") + frame_in(side, "81 05", b"after")
    )  # fmt: skip
    assert received(protocol) == [Frame(TEXT, b"hello"), Frame(PING, b"p")]
    assert assert_failed(protocol, 1002) == [Frame(PONG, b"p")]


@pytest.mark.parametrize("side", SIDES)
def test_reading_into_the_buffer_gives_the_same_events_as_receive_data(side: Side) -> None:
    # The I/O layer writes into the view that get_buffer() lends and says how much came with
    # buffer_updated(); for the protocol it is the same as receive_data() of those bytes.
    rng = random.Random(7)
    messages = [
        Frame(BINARY, rng.randbytes(size)) for size in (0, 1, 125, 126, 4000, 70_000, 300_000)
    ] + [Frame(TEXT, "é∑🙂 text".encode() * 500), Frame(PING, b"p")]
    data = b"".join(encode_in(side, frame) for frame in messages)
    fed = Protocol(side)
    fed.receive_data(data)
    read = Protocol(side)
    done = 0
    while done < len(data):
        view = read.get_buffer(rng.choice([1, 100, 4096, 65536]))
        count = min(len(view), rng.randint(1, 70_000), len(data) - done)
        view[:count] = data[done : done + count]
        read.buffer_updated(count)
        done += count
    assert received(read) == received(fed) == messages
    assert read.bytes_received == fed.bytes_received == len(data)
    # The pong, the same but for the mask key a client picks at random.
    written, expected = read.data_to_send(), fed.data_to_send()
    assert [(chunk[:2], len(chunk)) for chunk in written] == [
        (chunk[:2], len(chunk)) for chunk in expected
    ]
    assert len(expected) == 1
    assert expected[0][:1] == b"\x8a"


@pytest.mark.parametrize("side", SIDES)
def test_whole_messages_cost_few_python_calls(side: Side, frame_parser: str) -> None:
    # The common frame, a whole binary or ASCII text message in the buffer, is checked and
    # unmasked in one call and delivered without the generic path: with the C parser, the
    # only Python call left per message builds its Frame. Python calls are counted, not timed.
    messages = [Frame(BINARY, bytes(range(256)) * 4), Frame(TEXT, b"ascii " * 100)] * 50
    data = b"".join(encode_in(side, frame) for frame in messages)
    # A logger of its own: whatever logging level other tests left, no debug logging here.
    protocol = Protocol(side, logger=logging.Logger("calls", logging.WARNING))
    calls = 0
    package = os.path.dirname(os.path.dirname(frames.__file__))

    def count(frame: types.FrameType, event: str, arg: object) -> None:
        # syncws's own calls only: not those of a library's callbacks that may run meanwhile.
        nonlocal calls
        calls += event == "call" and frame.f_code.co_filename.startswith(package)

    # No collection meanwhile: the garbage collector's callbacks (hypothesis registers one)
    # would be counted too.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    sys.setprofile(count)
    try:
        protocol.receive_data(data)
    finally:
        sys.setprofile(None)
        if gc_was_enabled:
            gc.enable()
    assert received(protocol) == messages
    assert protocol.frames_received == protocol.messages_received == len(messages)
    # The pure-Python parser adds parse_header(), its header and the unmasking per frame.
    assert calls / len(messages) < (1.1 if frame_parser == "selected" else 5.1)


@pytest.mark.parametrize("side", SIDES)
def test_whole_messages_mixed_with_fragments_and_control_frames(side: Side) -> None:
    # Whole messages take the short path; what comes around them does not, and the message
    # in progress, the counters and the UTF-8 check are those of the generic path.
    protocol = Protocol(side, max_size=1000)
    protocol.receive_data(
        encode_in(side, Frame(BINARY, b"whole"))
        + encode_in(side, Frame(TEXT, b"frag", fin=False))
        + encode_in(side, Frame(PING, b"p"))
        + encode_in(side, Frame(CONT, b"ment"))
        + encode_in(side, Frame(TEXT, "κόσμε".encode()))
        + encode_in(side, Frame(TEXT, b"x" * 1000))
    )
    assert received(protocol) == [
        Frame(BINARY, b"whole"),
        Frame(TEXT, b"frag", fin=False),
        Frame(PING, b"p"),
        Frame(CONT, b"ment"),
        Frame(TEXT, "κόσμε".encode()),
        Frame(TEXT, b"x" * 1000),
    ]
    assert sent(protocol) == [Frame(PONG, b"p")]
    assert (protocol.frames_received, protocol.messages_received) == (6, 4)
    # A whole message over max_size, then one in a continuation where none is expected.
    protocol.receive_data(encode_in(side, Frame(BINARY, b"y" * 1001)))
    assert str(protocol.parser_exc) == "frame of 1001 bytes exceeds limit of 1000 bytes"
    assert assert_failed(protocol, 1009) == []
    protocol = Protocol(side)
    protocol.receive_data(
        encode_in(side, Frame(TEXT, b"start", fin=False)) + encode_in(side, Frame(TEXT, b"again"))
    )
    assert received(protocol) == [Frame(TEXT, b"start", fin=False)]
    assert str(protocol.parser_exc) == "expected a continuation frame"
    assert assert_failed(protocol, 1002) == []


@pytest.mark.parametrize("side", SIDES)
def test_many_whole_messages_in_one_read(side: Side, caplog: pytest.LogCaptureFixture) -> None:
    # Whole messages that follow one another in the buffer are taken together; each is
    # delivered, counted and logged as one, up to a frame that is not one, which fails.
    messages = [Frame(BINARY if i % 3 else TEXT, str(i).encode() * (i % 5)) for i in range(300)]
    data = b"".join(encode_in(side, frame) for frame in messages)
    logger = logging.getLogger("test.many")
    logger.setLevel(logging.DEBUG)
    protocol = Protocol(side, logger=logger)
    with caplog.at_level(logging.DEBUG, logger="test.many"):
        protocol.receive_data(data + frame_in(side, "83 00") + encode_in(side, Frame(TEXT, b"x")))
    assert received(protocol) == messages
    assert protocol.frames_received == protocol.messages_received == 300
    logged = [record.getMessage() for record in caplog.records if record.getMessage()[0] == "<"]
    assert logged == [f"< {frame}" for frame in messages]
    assert str(protocol.parser_exc) == "reserved opcode 0x3"
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
def test_a_whole_large_message_lets_go_of_its_buffer(side: Side) -> None:
    # Taken whole from the buffer, a large message leaves no buffer of its size behind.
    protocol = Protocol(side, max_size=None)
    protocol.receive_data(encode_in(side, Frame(BINARY, b"z" * 100_000)))
    assert received(protocol) == [Frame(BINARY, b"z" * 100_000)]
    assert len(protocol.reader.data) == 0
    assert protocol.reader.pos == protocol.reader.end == 0


@pytest.mark.parametrize("side", SIDES)
def test_views_of_the_receive_buffer_do_not_break_parsing(
    side: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another thread may hold a view of the receive buffer at any time: a memory profiler
    # walking gc.get_objects() catches the short-lived memoryview that unmasking makes. Here
    # every such view is kept, and views of the buffer are taken between feeds too: frames
    # complete in one feed, split over feeds, and spanning many feeds all arrive intact.
    messages = [b"a" * 10, b"b" * 300, b"c" * 70_000, b"", b"d" * 5]
    data = b"".join(encode_in(side, Frame(BINARY, message)) for message in messages)
    views: list[memoryview] = []
    unmask = frames.apply_mask

    def keep_view(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
        assert isinstance(data, memoryview)
        views.append(data)
        return unmask(data, mask)

    monkeypatch.setattr(frames, "apply_mask", keep_view)
    protocol = Protocol(side, max_size=None)
    chunks = [data[i : i + 4099] for i in range(0, len(data), 4099)]
    chunks[1:1] = [b""]
    for chunk in chunks:
        views.append(memoryview(protocol.reader.data))
        protocol.receive_data(chunk)
    assert [frame.data for frame in received(protocol)] == messages
    assert_open(protocol)
    assert views  # the views are still held
    if side is Side.SERVER:
        assert any(view.obj is not protocol.reader.data for view in views)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("end", ["raises", "returns"])
def test_a_broken_parser_fails_the_connection_with_1011(
    side: Side, end: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A bug that kills the parser itself (not the frame it parses, which parse() catches)
    # fails the connection rather than the caller, and input is dropped from then on.
    def broken() -> Generator[None, None, None]:
        if end == "raises":
            raise RuntimeError("bug")
        yield from ()

    protocol = Protocol(side)
    protocol.parser = broken()
    with caplog.at_level(logging.ERROR):
        protocol.receive_data(frame_in(side, "81 01", b"x"))
    assert received(protocol) == []
    assert [frame.opcode for frame in sent(protocol)] == [CLOSE]
    assert protocol.close_sent == Close(1011, "")
    assert protocol.eof_sent
    assert isinstance(protocol.parser_exc, RuntimeError if end == "raises" else StopIteration)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    protocol.receive_data(frame_in(side, "81 01", b"y"))
    protocol.receive_eof()
    assert received(protocol) == []
    assert state(protocol) is State.CLOSED


@pytest.mark.parametrize("initial", [State.CONNECTING, State.CLOSED])
def test_no_frames_parsed_outside_open_and_closing(initial: State) -> None:
    # The base protocol has no handshake: it discards input until EOF.
    protocol = Protocol(Side.SERVER, state=initial)
    protocol.receive_data(frame_in(Side.SERVER, "81 01", b"x"))
    assert protocol.events_received() == []
    assert not protocol.reader.buffer
    protocol.receive_eof()
    assert state(protocol) is State.CLOSED


@pytest.mark.parametrize("side", SIDES)
def test_close_code_and_reason_until_closed(side: Side) -> None:
    protocol = Protocol(side)
    assert (protocol.close_code, protocol.close_reason) == (None, None)
    protocol.receive_data(frame_in(side, "88 05", b"\x03\xe8bye"))
    assert (protocol.close_code, protocol.close_reason) == (None, None)
    protocol.receive_eof()
    assert (protocol.close_code, protocol.close_reason) == (1000, "bye")


@pytest.mark.parametrize("side", SIDES)
def test_text_messages_reuse_utf8_decoder(side: Side) -> None:
    protocol = Protocol(side)
    for text in ["ascii", "κόσμε", "ascii again", "𝄞 and more", "x" * 200]:
        data = text.encode()
        protocol.receive_data(b"".join(encode_in(side, f) for f in text_frames(data, [1])))
        assert b"".join(frame.data for frame in received(protocol)).decode() == text
    assert_open(protocol)


# Logging.


def test_debug_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="syncws.server")
    protocol = Protocol(Side.SERVER)
    assert protocol.debug
    protocol.receive_data(
        frame_in(Side.SERVER, "81 02", b"hi") + frame_in(Side.SERVER, "89 01", b"p")
    )
    protocol.send_binary(b"\x00\x01")
    protocol.receive_data(frame_in(Side.SERVER, "83 00"))
    protocol.receive_eof()
    records = [r for r in caplog.records if r.name == "syncws.server"]
    assert all(record.levelno == logging.DEBUG for record in records)
    assert [record.getMessage() for record in records] == [
        "< TEXT 'hi' [2 bytes]",
        "< PING 70 [1 bytes]",
        "> PONG 70 [1 bytes]",
        "> BINARY 00 01 [2 bytes]",
        "! failing connection with code 1002",
        "> CLOSE 1002 (protocol error) reserved opcode 0x3 [21 bytes]",
        "= connection is CLOSED",
    ]


def test_client_logger_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="syncws.client")
    protocol = Protocol(Side.CLIENT)
    assert isinstance(protocol.logger, logging.Logger)
    assert protocol.logger.name == "syncws.client"
    protocol.send_text(b"x")
    assert [r.name for r in caplog.records] == ["syncws.client"]


def test_no_debug_logging_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncws.server")
    protocol = Protocol(Side.SERVER)
    assert not protocol.debug
    protocol.receive_data(frame_in(Side.SERVER, "81 02", b"hi"))
    protocol.send_text(b"x")
    # The level is checked once, when the protocol is made.
    caplog.set_level(logging.DEBUG, logger="syncws.server")
    protocol.send_text(b"y")
    protocol.receive_eof()
    assert caplog.records == []


def test_custom_logger(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("custom.websocket")
    caplog.set_level(logging.DEBUG, logger="custom.websocket")
    protocol = Protocol(Side.SERVER, logger=logger)
    assert protocol.logger is logger
    protocol.send_text(b"x")
    assert [r.name for r in caplog.records] == ["custom.websocket"]


# Extensions.


class ReverseExtension(Extension):
    """Uses RSV1: encode reverses the payload and sets RSV1 on new messages; decode undoes it.

    With ``clear=False`` it leaves RSV1 set; ``expand`` repeats decoded payloads; ``error`` is
    raised by decode.
    """

    name = "x-reverse"

    def __init__(
        self, *, clear: bool = True, expand: int = 1, error: Exception | None = None
    ) -> None:
        self.clear = clear
        self.expand = expand
        self.error = error
        self.max_sizes: list[int | None] = []

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        self.max_sizes.append(max_size)
        if self.error is not None:
            raise self.error
        if not frame.rsv1 or not self.clear:
            return frame
        data = frame.data[::-1] * self.expand
        return Frame(frame.opcode, data, frame.fin, False, frame.rsv2, frame.rsv3)

    def encode(self, frame: Frame) -> Frame:
        if frame.opcode is not TEXT and frame.opcode is not BINARY:
            return frame
        return Frame(frame.opcode, frame.data[::-1], frame.fin, True, frame.rsv2, frame.rsv3)


@pytest.mark.parametrize("side", SIDES)
def test_extension_clears_rsv1(side: Side) -> None:
    protocol = Protocol(side)
    extension = ReverseExtension()
    protocol.extensions = [extension]
    protocol.receive_data(
        frame_in(side, "C1 02", b"ih") + frame_in(side, "82 02", b"ab")
        + frame_in(side, "89 01", b"p")
    )  # fmt: skip
    assert received(protocol) == [Frame(TEXT, b"hi"), Frame(BINARY, b"ab"), Frame(PING, b"p")]
    assert extension.max_sizes[:2] == [2**20, 2**20]  # the whole limit for each message
    assert_open(protocol)


@pytest.mark.parametrize("side", SIDES)
def test_extension_encodes_sent_frames(side: Side) -> None:
    protocol = Protocol(side)
    protocol.extensions = [ReverseExtension()]
    protocol.send_text(b"hello")
    protocol.send_ping(b"ping")
    assert sent(protocol) == [Frame(TEXT, b"olleh", rsv1=True), Frame(PING, b"ping")]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("first_byte", ["C1", "A1", "91"])
def test_extension_leaves_rsv_set(side: Side, first_byte: str) -> None:
    protocol = Protocol(side)
    protocol.extensions = [ReverseExtension(clear=first_byte != "C1")]
    protocol.receive_data(frame_in(side, f"{first_byte} 01", b"x"))
    assert protocol.events_received() == []
    assert "once extensions decoded" in str(protocol.parser_exc)
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES)
def test_extension_unexpected_error(side: Side, caplog: pytest.LogCaptureFixture) -> None:
    protocol = Protocol(side)
    error = RuntimeError("bug in extension")
    protocol.extensions = [ReverseExtension(error=error)]
    with caplog.at_level(logging.ERROR):
        protocol.receive_data(frame_in(side, "C1 01", b"x"))
    assert protocol.events_received() == []
    assert protocol.parser_exc is error
    assert [r.getMessage() for r in caplog.records] == ["unexpected error while parsing"]
    # The Close says 1011 without details of the error.
    assert sent(protocol) == [Frame(CLOSE, b"\x03\xf3")]
    assert protocol.eof_sent
    assert_ignores_input(protocol)


@pytest.mark.parametrize("side", SIDES)
def test_extension_protocol_error(side: Side) -> None:
    protocol = Protocol(side)
    protocol.extensions = [ReverseExtension(error=PayloadTooBig("decompressed too much"))]
    protocol.receive_data(frame_in(side, "C2 01", b"x"))
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
def test_extension_max_size_of_decoded_message(side: Side) -> None:
    # 100 bytes once decoded, in four frames: three of them cost FRAME_OVERHEAD each as well.
    overhead = FRAME_OVERHEAD
    protocol = Protocol(side, max_size=100 + 3 * overhead)
    extension = ReverseExtension(expand=10)
    protocol.extensions = [extension]
    protocol.receive_data(frame_in(side, "42 05", b"abcde"))  # 50 bytes once decoded
    assert received(protocol) == [Frame(BINARY, b"edcba" * 10, fin=False)]
    protocol.receive_data(frame_in(side, "00 28", b"f" * 40))  # no RSV1: kept as is, 90
    assert len(received(protocol)) == 1
    protocol.receive_data(frame_in(side, "40 01", b"g"))  # 100 decoded: the limit
    assert len(received(protocol)) == 1
    protocol.receive_data(frame_in(side, "80 01", b"p"))  # 101 decoded
    # What the message may still hold, once the frame's own overhead is charged.
    assert extension.max_sizes == [100 + 3 * overhead, 50 + 2 * overhead, 10 + overhead, 0]
    assert protocol.events_received() == []
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
def test_extension_empty_fragments_fail_before_decoding(side: Side) -> None:
    # G4 in a message an extension transforms: empty fragments decode to nothing, but each
    # costs FRAME_OVERHEAD; the one that crosses max_size fails before it reaches the extension.
    protocol = Protocol(side, max_size=2 * FRAME_OVERHEAD + 10)
    extension = ReverseExtension(expand=10)
    protocol.extensions = [extension]
    protocol.receive_data(frame_in(side, "42 01", b"a") + frame_in(side, "00 00") * 3)
    assert len(received(protocol)) == 3
    assert extension.max_sizes == [2 * FRAME_OVERHEAD + 10, FRAME_OVERHEAD, 0]
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("side", SIDES)
def test_extension_without_max_size(side: Side) -> None:
    protocol = Protocol(side, max_size=None)
    extension = ReverseExtension(expand=1000)
    protocol.extensions = [extension]
    protocol.receive_data(frame_in(side, "C2 04", b"abcd"))
    assert received(protocol) == [Frame(BINARY, b"dcba" * 1000)]
    assert extension.max_sizes == [None]


@pytest.mark.parametrize("side", SIDES)
def test_extension_decoded_text_is_validated(side: Side) -> None:
    protocol = Protocol(side)
    protocol.extensions = [ReverseExtension()]
    # Decoded: "ü" split over two frames, then text ending inside a character.
    protocol.receive_data(frame_in(side, "41 02", b"\xc3a") + frame_in(side, "80 01", b"\xbc"))
    frames = received(protocol)
    assert b"".join(frame.data for frame in frames) == "aü".encode()
    protocol.receive_data(frame_in(side, "C1 02", b"\x82\xe2"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES)
def test_extension_decoded_text_invalid_byte(side: Side) -> None:
    protocol = Protocol(side)
    protocol.extensions = [ReverseExtension()]
    protocol.receive_data(frame_in(side, "C1 02", b"\xffa"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


# Differential tests against the sans-I/O layer of websockets.


class Outcome(NamedTuple):
    received: tuple[tuple[int, bytes, bool], ...]  # frames delivered: opcode, data, fin
    sent: tuple[tuple[int, bytes], ...]  # frames sent, other than Close
    close_code: int | None  # code of the Close sent, if any
    close_reason: str | None  # its reason, unless the connection failed (each says why its way)


class Case(NamedTuple):
    build: Callable[[Side], list[bytes]]  # the chunks received by a protocol on that side
    sides: tuple[Side, ...] = (Side.SERVER, Side.CLIENT)
    max_size: int | tuple[int | None, int | None] | None = 2**20
    eof: bool = False
    close_first: bool = False  # send Close 1000 before receiving anything


def _frames(*frames: tuple[str, bytes]) -> Callable[[Side], list[bytes]]:
    return lambda side: [frame_in(side, header, payload) for header, payload in frames]


def _fragments(count: int) -> Callable[[Side], list[bytes]]:
    return lambda side: [frame_in(side, "02 01", b"a") + frame_in(side, "00 01", b"a") * count]


def _g5(side: Side) -> list[bytes]:
    payload = b"s" * (2**20 // 999)
    frames = [Frame(BINARY, payload, fin=False)] + [Frame(CONT, payload, fin=False)] * 999
    return [b"".join(encode_in(side, frame) for frame in frames)]


DIFF_CASES: dict[str, Case] = {
    "text": Case(_frames(("81 05", b"Hello"))),
    "binary-16-bit": Case(_frames(("82 FE 01 2C", bytes(300)))),
    "binary-64-bit": Case(_frames(("82 FF 00 00 00 00 00 01 11 70", bytes(70_000)))),
    "F8-stream": Case(lambda side: [f8_stream(side)]),
    "F8-stream-one-byte-at-a-time": Case(
        lambda side: [bytes([byte]) for byte in f8_stream(side)[:3000]]
    ),
    "F1": Case(_frames(("82 FF 7F FF FF FF FF FF FF FF", b""))),
    "F2": Case(_frames(("82 FF 80 00 00 00 00 00 00 05", b"hello"))),
    "frame-limit-header-only": Case(_frames(("82 7E 01 2D", b"")), max_size=(2**20, 300)),
    "frame-limit-exactly": Case(_frames(("82 7E 01 2C", bytes(300))), max_size=(2**20, 300)),
    "frame-limit-then-message-limit": Case(
        _frames(("02 7E 01 2C", bytes(300)), ("80 7E 01 2C", bytes(300))), max_size=(500, 300)
    ),
    "frame-limit-only": Case(
        _frames(("02 64", bytes(100)), *[("00 64", bytes(100))] * 8, ("80 64", bytes(100))),
        max_size=(None, 100),
    ),
    "F2-no-max-size": Case(_frames(("82 FF 80 00 00 00 00 00 00 05", b"hello")), max_size=None),
    "F3-16-bit": Case(_frames(("82 FE 00 05", b"hello"))),
    "F3-64-bit": Case(_frames(("82 FF 00 00 00 00 00 00 00 C8", bytes(200)))),
    "F4": Case(lambda side: [bytes.fromhex("81 02 68 69")], sides=(Side.SERVER,)),
    "F5": Case(lambda side: [wire("81 02", b"hi", masked=True)], sides=(Side.CLIENT,)),
    "F6-rsv1": Case(_frames(("C1 01", b"x"))),
    "F6-rsv2": Case(_frames(("A1 01", b"x"))),
    "F6-rsv3": Case(_frames(("91 01", b"x"))),
    **{
        f"F7-{opcode:X}": Case(_frames((f"{0x80 | opcode:02X} 00", b"")))
        for opcode in [*range(0x3, 0x8), *range(0xB, 0x10)]
    },
    "G1": Case(_frames(("80 01", b"x"))),
    "G2": Case(_frames(("01 01", b"a"), ("81 01", b"b"))),
    "G3": Case(_frames(("01 05", b"frag1"), ("89 01", b"p"), ("80 05", b"frag2"))),
    "G4": Case(_fragments(10_000)),
    "G4-within-max-size": Case(_fragments(5000)),
    "G5": Case(_g5),
    "U1-surrogate": Case(_frames(("81 03", b"\xed\xa0\x80"))),
    "U1-overlong": Case(_frames(("81 02", b"\xc0\xaf"))),
    "U2-valid-split": Case(_frames(("01 03", b"\xf0\x9f\x98"), ("80 01", b"\x80"))),
    "U2-invalid-fragment": Case(
        _frames(("01 0F", bytes.fromhex("CEBAE1BDB9CF83CEBCCEB5F4908080")))
    ),
    "U3": Case(_frames(("81 02", b"\xe2\x82"))),
    "U4": Case(_frames(("88 04", b"\x03\xe8\xff\xfe"))),
    "C1-ping": Case(_frames(("89 FE 00 7E", bytes(126)))),
    "C1-close": Case(_frames(("88 FE 00 7E", b"\x03\xe8" + bytes(124)))),
    "C2": Case(_frames(("09 01", b"x"))),
    "C4-pong": Case(_frames(("8A 07", b"unknown"))),
    **{
        f"L1-{code}": Case(_frames(("88 02", code.to_bytes(2, "big"))))
        for code in INVALID_CLOSE_CODES + VALID_CLOSE_CODES
    },
    "L1-with-reason": Case(_frames(("88 05", b"\x0f\xa0bye"))),
    "L2-1-byte": Case(_frames(("88 01", b"\x03"))),
    "L2-empty": Case(_frames(("88 00", b""))),
    "L2-125-bytes": Case(_frames(("88 7D", b"\x03\xe8" + "é".encode() * 61 + b"!"))),
    "L3": Case(_frames(("01 01", b"a"), ("88 02", b"\x03\xe8"))),
    "L4": Case(_frames(("88 02", b"\x03\xe8"), ("81 01", b"x"), ("89 01", b"p"))),
    "eof-between-frames": Case(_frames(("81 01", b"x")), eof=True),
    "eof-inside-frame": Case(lambda side: [frame_in(side, "82 05", b"hello")[:-1]], eof=True),
    "closing-handshake": Case(_frames(("88 02", b"\x03\xe8")), close_first=True, eof=True),
    "data-while-closing": Case(_frames(("82 01", b"x")), close_first=True),
    "ping-while-closing": Case(_frames(("89 01", b"p")), close_first=True),
}


class Difference(NamedTuple):
    why: str
    ours_close: int | None
    theirs_close: int | None
    ours_received: int  # number of frames delivered
    theirs_received: int


_UTF8 = "websockets checks UTF-8 in its I/O layer, not in the sans-I/O protocol"

# Cases where syncws behaves differently on purpose. Each is checked exactly, so a change of
# behaviour on either side fails the test.
DIFFERENCES: dict[str, Difference] = {
    # RFC 6455 §5.2: the length must use the minimal number of bytes; syncws enforces it.
    "F3-16-bit": Difference("syncws rejects non-minimal lengths", 1002, None, 0, 1),
    "F3-64-bit": Difference("syncws rejects non-minimal lengths", 1002, None, 0, 1),
    # RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0. websockets only
    # compares the length with max_size, so without a limit it waits for 2**63 bytes.
    "F2": Difference("syncws rejects a length with the MSB set as a protocol error",
                     1002, 1009, 0, 0),
    "F2-no-max-size": Difference("websockets waits for the payload", 1002, None, 0, 0),
    # syncws charges FRAME_OVERHEAD bytes per fragment after the first against max_size;
    # websockets counts the payload only, so a flood of tiny fragments never reaches its limit.
    "G4": Difference("syncws charges each fragment against max_size", 1009, None, 8129, 10_001),
    "G5": Difference("syncws charges each fragment against max_size", 1009, 1009, 890, 999),
    # RFC 6455 §8.1: invalid UTF-8 fails the connection (1007) as soon as it is known.
    "U1-surrogate": Difference(_UTF8, 1007, None, 0, 1),
    "U1-overlong": Difference(_UTF8, 1007, None, 0, 1),
    "U2-invalid-fragment": Difference(_UTF8, 1007, None, 0, 1),
    "U3": Difference(_UTF8, 1007, None, 0, 1),
    # RFC 6455 §5.4 allows control frames, Close included, in the middle of a fragmented
    # message; websockets fails with 1002, syncws closes normally.
    "L3": Difference("syncws accepts a Close in the middle of a message", 1000, 1002, 2, 1),
    # Once syncws sent a Close it owes no Pong (the closing handshake has started);
    # websockets still answers.
    "ping-while-closing": Difference("syncws sends no pong while closing", None, None, 1, 1),
}


def _outcome(
    frames: list[tuple[int, bytes, bool]], output: list[bytes], sender: Side, failed: bool
) -> Outcome:
    sent_frames = parse_sent(output, sender)
    closes = [frame for frame in sent_frames if frame.opcode is CLOSE]
    assert len(closes) <= 1
    close = Close.parse(closes[0].data) if closes else None
    return Outcome(
        tuple(frames),
        tuple((int(f.opcode), f.data) for f in sent_frames if f.opcode is not CLOSE),
        None if close is None else close.code,
        None if close is None or failed else close.reason,
    )


def run_syncws(side: Side, case: Case) -> Outcome:
    protocol = Protocol(side, max_size=case.max_size)
    if case.close_first:
        protocol.send_close(1000)
        protocol.data_to_send()
    frames: list[tuple[int, bytes, bool]] = []
    for chunk in case.build(side):
        protocol.receive_data(chunk)
        frames += [(int(f.opcode), f.data, f.fin) for f in received(protocol)]
    if case.eof:
        protocol.receive_eof()
        frames += [(int(f.opcode), f.data, f.fin) for f in received(protocol)]
    return _outcome(frames, protocol.data_to_send(), side, protocol.parser_exc is not None)


def run_websockets(side: Side, case: Case) -> Outcome:
    ws_side = ws_protocol.Side.SERVER if side is Side.SERVER else ws_protocol.Side.CLIENT
    protocol = ws_protocol.Protocol(ws_side, state=ws_protocol.State.OPEN, max_size=case.max_size)
    if case.close_first:
        protocol.send_close(1000)
        protocol.data_to_send()
    frames: list[tuple[int, bytes, bool]] = []

    def collect() -> None:
        for event in protocol.events_received():
            assert isinstance(event, ws_frames.Frame)
            frames.append((int(event.opcode), bytes(event.data), event.fin))

    for chunk in case.build(side):
        protocol.receive_data(chunk)
        collect()
    if case.eof:
        protocol.receive_eof()
        collect()
    # b"" in the output of websockets stands for the end of stream.
    return _outcome(frames, protocol.data_to_send(), side, protocol.parser_exc is not None)


DIFF_PARAMS = [
    pytest.param(name, side, id=f"{name}-{side.name.lower()}")
    for name, case in DIFF_CASES.items()
    for side in case.sides
]


def test_differences_are_known_cases() -> None:
    assert set(DIFFERENCES) <= set(DIFF_CASES)


@pytest.mark.parametrize(("name", "side"), DIFF_PARAMS)
def test_differential_websockets(name: str, side: Side) -> None:
    case = DIFF_CASES[name]
    ours = run_syncws(side, case)
    theirs = run_websockets(side, case)
    difference = DIFFERENCES.get(name)
    if difference is None:
        assert ours == theirs
    else:
        assert ours != theirs, f"no longer differs: {difference.why}"
        assert (ours.close_code, len(ours.received)) == (
            difference.ours_close, difference.ours_received
        )
        assert (theirs.close_code, len(theirs.received)) == (
            difference.theirs_close, difference.theirs_received
        )


# Deliver before failing: with defer_failures, the messages before a protocol error are
# delivered and may be answered before the Close goes out. Autobahn 3.2-3.4, 4.1.3-4.1.5,
# 4.2.3-4.2.5 and 5.15 send a valid message and an error together, and expect the echo of the
# message before the Close ("NON-STRICT" otherwise).


def deferring(side: Side) -> Protocol:
    protocol = Protocol(side)
    protocol.defer_failures = True
    return protocol


# A text message, then a frame with a reserved bit set (Autobahn 3.2), in one chunk.
MESSAGE_THEN_ERROR = ("81 05", b"Hello", "c1 05", b"world")


@pytest.mark.parametrize("side", list(Side))
def test_deferred_failure_delivers_the_message_and_keeps_the_connection_open(
    side: Side,
) -> None:
    protocol = deferring(side)
    first, payload, second, rest = MESSAGE_THEN_ERROR
    protocol.receive_data(frame_in(side, first, payload) + frame_in(side, second, rest))
    assert received(protocol) == [Frame(Opcode.TEXT, b"Hello")]
    # Nothing is sent yet, and the connection stays open for the reply.
    assert protocol.data_to_send() == []
    assert state(protocol) is State.OPEN
    pending = protocol.pending_failure
    assert isinstance(pending, ProtocolError)
    assert pending.code == 1002
    assert protocol.parser_exc is pending
    protocol.send_text(b"Hello")
    assert sent(protocol) == [Frame(Opcode.TEXT, b"Hello")]
    # Later input is dropped, even a ping.
    assert_ignores_input(protocol)
    # The I/O layer fails the connection when the application asks for the next message.
    protocol.fail(pending.code, str(pending))
    assert protocol.pending_failure is None
    assert assert_failed(protocol, 1002) == []


@pytest.mark.parametrize("side", list(Side))
def test_deferred_failure_then_eof_closes_abnormally(side: Side) -> None:
    protocol = deferring(side)
    protocol.receive_data(frame_in(side, "81 02", b"ok") + frame_in(side, "83 00"))
    assert received(protocol) == [Frame(Opcode.TEXT, b"ok")]
    assert protocol.pending_failure is not None
    # The peer is gone before the Close was sent: there is nobody to send it to.
    protocol.receive_eof()
    assert protocol.pending_failure is None
    assert protocol.data_to_send() == []
    assert protocol.eof_sent
    assert state(protocol) is State.CLOSED
    assert protocol.close_code == 1006
    assert protocol.close_sent is None


@pytest.mark.parametrize("side", list(Side))
def test_deferred_failure_of_invalid_utf8_keeps_the_messages_before(side: Side) -> None:
    # Autobahn 6.x: invalid UTF-8 (1007) after a valid message, in one chunk.
    protocol = deferring(side)
    protocol.receive_data(frame_in(side, "81 02", b"ok") + frame_in(side, "81 02", b"\xc0\xaf"))
    assert received(protocol) == [Frame(Opcode.TEXT, b"ok")]
    assert protocol.pending_failure is not None
    assert protocol.pending_failure.code == 1007
    protocol.fail(1007, "invalid UTF-8")
    assert sent_close(sent(protocol)).code == 1007


def test_failures_are_not_deferred_by_default() -> None:
    protocol = Protocol(Side.CLIENT)
    protocol.receive_data(frame_in(Side.CLIENT, "81 02", b"ok") + frame_in(Side.CLIENT, "83 00"))
    assert received(protocol) == [Frame(Opcode.TEXT, b"ok")]
    assert protocol.pending_failure is None
    assert assert_failed(protocol, 1002) == []


def test_failure_after_the_close_is_not_deferred() -> None:
    # Once closing, there is nothing to reply: the Close is sent already.
    protocol = deferring(Side.CLIENT)
    protocol.send_close(1000)
    protocol.data_to_send()
    protocol.receive_data(frame_in(Side.CLIENT, "83 00"))
    assert protocol.pending_failure is None
    assert protocol.eof_sent
