"""Tests for permessage-deflate (RFC 7692): bytes in, bytes out, no I/O."""

from __future__ import annotations

import base64
import os
import random
import tracemalloc
import zlib
from collections.abc import Generator, Sequence
from typing import Any, TypeVar

import pytest
import websockets.extensions.permessage_deflate as ws_deflate
import websockets.frames as ws_frames
from hypothesis import given
from hypothesis import strategies as st

from syncws.core.client_protocol import ClientProtocol
from syncws.core.extensions.base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
)
from syncws.core.extensions.permessage_deflate import (
    DEFAULT_COMPRESS_SETTINGS,
    DEFAULT_MIN_SIZE,
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from syncws.core.frames import Close, Frame, Opcode
from syncws.core.headers import Headers, accept_key, parse_extension
from syncws.core.http11 import Request
from syncws.core.protocol import Protocol, Side, State
from syncws.core.server_protocol import ServerProtocol
from syncws.core.streams import StreamReader
from syncws.core.uri import parse_uri
from syncws.exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)

T = TypeVar("T")

MASK_KEY = bytes.fromhex("37fa213d")
TAIL = b"\x00\x00\xff\xff"
MiB = 1 << 20

NO = None  # a parameter without a value, for readability

Config = dict[str, Any]
"""Keyword arguments for a factory."""
Params = list[ExtensionParameter]
Settings = tuple[bool, bool, int, int]
"""remote_no_context_takeover, local_no_context_takeover, remote_max_window_bits,
local_max_window_bits."""


# Helpers.


def run(parser: Generator[None, None, T]) -> T:
    """Run a parser whose input is already buffered."""
    try:
        next(parser)
    except StopIteration as exc:
        value: T = exc.value
        return value
    raise AssertionError("the parser waits for more data")


def parse_frames(data: bytes, *, masked: bool) -> list[Frame]:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        frames.append(run(Frame.parse(reader, mask=masked, allow_rsv=True)))
    return frames


def sent(protocol: Protocol) -> list[Frame]:
    """The frames a protocol wrote since the last call."""
    return parse_frames(b"".join(protocol.data_to_send()), masked=protocol.side is Side.CLIENT)


def close_code_sent(protocol: Protocol) -> int:
    frames = sent(protocol)
    assert frames, "nothing was sent"
    assert frames[-1].opcode is Opcode.CLOSE
    return Close.parse(frames[-1].data).code


def from_client(*frames: Frame) -> bytes:
    """What a client puts on the wire for these frames: masked."""
    return b"".join(frame.serialize(mask=True, mask_key=MASK_KEY) for frame in frames)


def masked(header: str, payload: bytes = b"") -> bytes:
    """A client frame from a hex header (mask bit included) and a payload to mask."""
    return (
        bytes.fromhex(header) + MASK_KEY + bytes(b ^ MASK_KEY[i % 4] for i, b in enumerate(payload))
    )


def server_with(
    extension: Extension | None, max_size: int | tuple[int | None, int | None] | None = MiB
) -> Protocol:
    protocol = Protocol(Side.SERVER, max_size=max_size)
    if extension is not None:
        protocol.extensions = [extension]
    return protocol


def deflate(data: bytes, wbits: int = 15) -> bytes:
    """Raw DEFLATE of one message as RFC 7692 §7.2.1 sends it: no trailing 00 00 ff ff."""
    compressor = zlib.compressobj(wbits=-wbits)
    output = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert output.endswith(TAIL)
    return output[:-4]


def pair(
    bits: int = 15, no_context_takeover: bool = False, min_size: int = 0
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """A sender and a receiver with matching settings."""
    sender = PerMessageDeflate(
        no_context_takeover, no_context_takeover, bits, bits, min_size=min_size
    )
    receiver = PerMessageDeflate(
        no_context_takeover, no_context_takeover, bits, bits, min_size=min_size
    )
    return sender, receiver


def transfer(sender: PerMessageDeflate, receiver: PerMessageDeflate, frame: Frame) -> Frame:
    encoded = sender.encode(frame)
    return receiver.decode(encoded)


def jsonish(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    parts = []
    total = 0
    while total < size:
        part = (
            f'{{"id": {rng.randrange(10**6)}, "name": "{rng.choice(words)}", '
            f'"tags": ["{rng.choice(words)}", "{rng.choice(words)}"], "ok": true}}'
        )
        parts.append(part)
        total += len(part) + 1
    return ("[" + ",".join(parts) + "]").encode()[:size]


def strict_inflate(wbits: int, messages: Sequence[bytes]) -> bytes:
    """Inflate messages one output byte per call, so every back-reference must come from the
    window: zlib only checks distances against the window for output of earlier calls."""
    decompressor = zlib.decompressobj(wbits=-wbits)
    output = bytearray()
    for message in messages:
        data = message + TAIL
        while data:
            output += decompressor.decompress(data, 1)
            data = decompressor.unconsumed_tail
        while chunk := decompressor.decompress(b"", 1):
            output += chunk
    return bytes(output)


# Round trips.


MESSAGES = [
    jsonish(200, 1),
    jsonish(200, 1),  # the same again: with context takeover, nearly free
    jsonish(3000, 1),
    b"",
    os.urandom(2000),
    b"x" * 10_000,
    jsonish(200, 2),
]


@pytest.mark.parametrize("bits", range(8, 16))
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_round_trip_every_window(bits: int, no_context_takeover: bool) -> None:
    sender, receiver = pair(bits, no_context_takeover)
    sizes = []
    for opcode in (Opcode.TEXT, Opcode.BINARY):
        for message in MESSAGES:
            encoded = sender.encode(Frame(opcode, message))
            assert encoded.rsv1
            assert encoded.opcode is opcode
            sizes.append(len(encoded.data))
            decoded = receiver.decode(encoded)
            assert decoded == Frame(opcode, message)
    if no_context_takeover or bits == 8:
        # An 8-bit window compresses with matches one byte back only.
        assert sizes[1] == sizes[0]
    else:
        assert sizes[1] < sizes[0] // 5


@pytest.mark.parametrize("local_bits", range(8, 16))
@pytest.mark.parametrize("remote_bits", range(8, 16))
def test_round_trip_different_windows_each_way(local_bits: int, remote_bits: int) -> None:
    client = PerMessageDeflate(False, False, remote_bits, local_bits)
    server = PerMessageDeflate(False, False, local_bits, remote_bits)
    for message in MESSAGES:
        assert transfer(client, server, Frame(Opcode.BINARY, message)).data == message
        assert transfer(server, client, Frame(Opcode.BINARY, message)).data == message


def test_compressed_message_format() -> None:
    # RFC 7692 §7.2.3.1: "Hello" compressed in one block.
    sender = PerMessageDeflate(False, True, 15, 15, min_size=0)
    frame = sender.encode(Frame(Opcode.TEXT, b"Hello"))
    assert frame == Frame(Opcode.TEXT, bytes.fromhex("f248cdc9c90700"), rsv1=True)
    # RFC 7692 §7.2.3.2: with context takeover, the second "Hello" is a back-reference.
    sender = PerMessageDeflate(False, False, 15, 15, min_size=0)
    sender.encode(Frame(Opcode.TEXT, b"Hello"))
    assert sender.encode(Frame(Opcode.TEXT, b"Hello")).data == bytes.fromhex("f200110000")


def test_decode_rfc_examples() -> None:
    receiver = PerMessageDeflate(False, False, 15, 15)
    # RFC 7692 §7.2.3.1 and §7.2.3.2.
    assert receiver.decode(Frame(Opcode.TEXT, bytes.fromhex("f248cdc9c90700"), rsv1=True)).data == (
        b"Hello"
    )
    assert receiver.decode(Frame(Opcode.TEXT, bytes.fromhex("f200110000"), rsv1=True)).data == (
        b"Hello"
    )
    # RFC 7692 §7.2.3.3: a stored block.
    receiver = PerMessageDeflate(False, False, 15, 15)
    stored = bytes.fromhex("0005 00fa ff48 656c 6c6f 00")
    assert receiver.decode(Frame(Opcode.TEXT, stored, rsv1=True)).data == b"Hello"
    # RFC 7692 §7.2.3.4: a block with BFINAL set, then the header of an empty stored block.
    receiver = PerMessageDeflate(False, False, 15, 15)
    final = bytes.fromhex("f3 48 cd c9 c9 07 00 00")
    assert receiver.decode(Frame(Opcode.TEXT, final, rsv1=True)).data == b"Hello"
    assert receiver.decode(Frame(Opcode.TEXT, final, rsv1=True)).data == b"Hello"
    # RFC 7692 §7.2.3.5: two blocks in one message.
    two_blocks = bytes.fromhex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")
    assert receiver.decode(Frame(Opcode.TEXT, two_blocks, rsv1=True)).data == b"Hello"


def test_empty_message_is_one_byte() -> None:
    # RFC 7692 §7.2.1: an empty message compresses to 0x00, the header of an empty stored block.
    sender, receiver = pair()
    for _ in range(3):
        frame = sender.encode(Frame(Opcode.BINARY, b""))
        assert frame == Frame(Opcode.BINARY, b"\x00", rsv1=True)
        assert receiver.decode(frame) == Frame(Opcode.BINARY, b"")


def test_rsv2_rsv3_are_left_alone() -> None:
    sender, receiver = pair()
    frame = sender.encode(Frame(Opcode.TEXT, b"hello", rsv2=True, rsv3=True))
    assert frame.rsv1
    assert frame.rsv2
    assert frame.rsv3
    assert receiver.decode(frame) == Frame(Opcode.TEXT, b"hello", rsv2=True, rsv3=True)


# Fragmentation.


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_fragmented_messages(no_context_takeover: bool) -> None:
    sender, receiver = pair(12, no_context_takeover)
    message = jsonish(5000, 3)
    for _ in range(3):
        pieces = [message[:1000], b"", message[1000:4000], message[4000:], b""]
        frames = [Frame(Opcode.TEXT, pieces[0], fin=False)]
        frames += [Frame(Opcode.CONT, piece, fin=False) for piece in pieces[1:-1]]
        frames.append(Frame(Opcode.CONT, pieces[-1]))
        encoded = [sender.encode(frame) for frame in frames]
        # RFC 7692 §6: RSV1 on the first frame only.
        assert [frame.rsv1 for frame in encoded] == [True, False, False, False, False]
        assert [frame.opcode for frame in encoded] == [frame.opcode for frame in frames]
        assert [frame.fin for frame in encoded] == [False, False, False, False, True]
        decoded = [receiver.decode(frame) for frame in encoded]
        assert b"".join(frame.data for frame in decoded) == message
        assert not any(frame.rsv1 for frame in decoded)


def test_fragmented_message_each_frame_decodes_on_arrival() -> None:
    # Each frame ends with a sync flush, so its data comes out before the next frame arrives.
    sender, receiver = pair()
    first = receiver.decode(sender.encode(Frame(Opcode.BINARY, b"first part", fin=False)))
    assert first.data == b"first part"
    last = receiver.decode(sender.encode(Frame(Opcode.CONT, b" and the rest")))
    assert last.data == b" and the rest"


def test_control_frames_inside_a_compressed_message() -> None:
    sender, receiver = pair()
    frames = [
        Frame(Opcode.TEXT, b"one ", fin=False),
        Frame(Opcode.PING, b"ping"),
        Frame(Opcode.CONT, b"two ", fin=False),
        Frame(Opcode.PONG, b"pong"),
        Frame(Opcode.CONT, b"three"),
    ]
    encoded = [sender.encode(frame) for frame in frames]
    assert encoded[1] is frames[1]
    assert encoded[3] is frames[3]
    decoded = [receiver.decode(frame) for frame in encoded]
    assert decoded == [
        Frame(Opcode.TEXT, b"one ", fin=False),
        Frame(Opcode.PING, b"ping"),
        Frame(Opcode.CONT, b"two ", fin=False),
        Frame(Opcode.PONG, b"pong"),
        Frame(Opcode.CONT, b"three"),
    ]


def test_control_frames_pass_through() -> None:
    extension = PerMessageDeflate(False, False, 15, 15, min_size=0)
    for opcode in (Opcode.PING, Opcode.PONG, Opcode.CLOSE):
        frame = Frame(opcode, b"\x03\xe8" if opcode is Opcode.CLOSE else b"payload")
        assert extension.encode(frame) is frame
        assert extension.decode(frame) is frame


# Uncompressed messages.


def test_short_messages_are_sent_uncompressed() -> None:
    sender, receiver = pair(min_size=DEFAULT_MIN_SIZE)
    short = b"x" * (DEFAULT_MIN_SIZE - 1)
    frame = sender.encode(Frame(Opcode.TEXT, short))
    assert frame == Frame(Opcode.TEXT, short)
    assert receiver.decode(frame) == Frame(Opcode.TEXT, short)
    long = b"x" * DEFAULT_MIN_SIZE
    frame = sender.encode(Frame(Opcode.TEXT, long))
    assert frame.rsv1
    assert receiver.decode(frame) == Frame(Opcode.TEXT, long)


def test_min_size_zero_compresses_everything() -> None:
    sender = PerMessageDeflate(False, False, 15, 15, min_size=0)
    assert sender.encode(Frame(Opcode.TEXT, b"")).rsv1
    assert sender.encode(Frame(Opcode.TEXT, b"a")).rsv1


def test_min_size_only_applies_to_complete_messages() -> None:
    # The size of a fragmented message is unknown when its first frame is sent.
    sender, receiver = pair(min_size=100)
    first = sender.encode(Frame(Opcode.TEXT, b"ab" * 20, fin=False))
    assert first.rsv1
    last = sender.encode(Frame(Opcode.CONT, b"cd"))
    assert not last.rsv1
    assert receiver.decode(first).data + receiver.decode(last).data == b"ab" * 20 + b"cd"


@pytest.mark.parametrize("bits", [9, 15])
def test_uncompressed_messages_between_compressed_ones_with_context_takeover(bits: int) -> None:
    # RFC 7692 §6: an uncompressed message does not touch the compression context.
    sender, receiver = pair(bits, min_size=16)
    messages = [jsonish(500, 4), b"short", jsonish(500, 4), b"tiny", b"x" * 15, jsonish(600, 5)]
    for message in messages:
        encoded = sender.encode(Frame(Opcode.BINARY, message))
        assert encoded.rsv1 is (len(message) >= 16)
        assert receiver.decode(encoded).data == message


def test_skip_next_message() -> None:
    sender, receiver = pair()
    message = jsonish(1000, 6)
    sender.skip_next_message()
    frame = sender.encode(Frame(Opcode.TEXT, message))
    assert frame == Frame(Opcode.TEXT, message)
    assert receiver.decode(frame).data == message
    # Only the next message.
    frame = sender.encode(Frame(Opcode.TEXT, message))
    assert frame.rsv1
    assert receiver.decode(frame).data == message


def test_skip_next_message_covers_every_frame_of_a_fragmented_message() -> None:
    sender, receiver = pair()
    sender.skip_next_message()
    frames = [
        sender.encode(Frame(Opcode.BINARY, b"a" * 100, fin=False)),
        sender.encode(Frame(Opcode.CONT, b"b" * 100, fin=False)),
        sender.encode(Frame(Opcode.CONT, b"c" * 100)),
    ]
    assert [frame.data for frame in frames] == [b"a" * 100, b"b" * 100, b"c" * 100]
    assert not any(frame.rsv1 for frame in frames)
    assert [receiver.decode(frame).data for frame in frames] == [b"a" * 100, b"b" * 100, b"c" * 100]


def test_skip_next_message_during_a_fragmented_message_applies_to_the_next() -> None:
    sender, receiver = pair()
    first = sender.encode(Frame(Opcode.BINARY, b"a" * 100, fin=False))
    sender.skip_next_message()
    last = sender.encode(Frame(Opcode.CONT, b"b" * 100))
    assert first.rsv1
    assert not last.rsv1
    assert last.data != b"b" * 100  # still compressed
    assert receiver.decode(first).data + receiver.decode(last).data == b"a" * 100 + b"b" * 100
    frame = sender.encode(Frame(Opcode.BINARY, b"c" * 100))
    assert frame == Frame(Opcode.BINARY, b"c" * 100)


def test_p8_uncompressed_message_on_compressed_connection_through_protocols() -> None:
    # Robustness P8: a message sent uncompressed on a connection that negotiated deflate.
    server = Protocol(Side.SERVER)
    client = Protocol(Side.CLIENT)
    server_extension = PerMessageDeflate(False, False, 12, 12)
    server.extensions = [server_extension]
    client.extensions = [PerMessageDeflate(False, False, 12, 12)]
    text = ("é" * 500).encode()

    server_extension.skip_next_message()
    server.send_text(text)
    server.send_text(text)
    wire = b"".join(server.data_to_send())
    frames = parse_frames(wire, masked=False)
    assert [frame.rsv1 for frame in frames] == [False, True]
    assert frames[0].data == text
    client.receive_data(wire)
    assert client.events_received() == [Frame(Opcode.TEXT, text), Frame(Opcode.TEXT, text)]
    assert client.state is State.OPEN

    client.send_binary(b"\x00" * 1000)
    server.receive_data(b"".join(client.data_to_send()))
    assert server.events_received() == [Frame(Opcode.BINARY, b"\x00" * 1000)]


def test_uncompressed_text_is_still_checked_for_utf8() -> None:
    server = server_with(PerMessageDeflate(False, False, 15, 15))
    server.receive_data(masked("8182", b"\xc3\x28"))
    assert close_code_sent(server) == 1007


def test_compressed_text_is_checked_for_utf8() -> None:
    server = server_with(PerMessageDeflate(False, False, 15, 15))
    server.receive_data(from_client(Frame(Opcode.TEXT, deflate(b"ok \xff"), rsv1=True)))
    assert close_code_sent(server) == 1007


# Window sizes and zlib.


def test_zlib_cannot_compress_with_an_8_bit_window() -> None:
    # The reason for the rules in the module documentation.
    with pytest.raises(ValueError, match="Invalid initialization option"):
        zlib.compressobj(wbits=-8)


def test_strict_inflate_catches_distances_beyond_the_window() -> None:
    # Makes sure the helper below can see a window violation at all.
    block = os.urandom(300)
    message = deflate(block + os.urandom(10) + block)
    assert strict_inflate(9, [message]) == strict_inflate(15, [message])
    with pytest.raises(zlib.error, match="too far back"):
        strict_inflate(8, [message])


def test_local_8_bit_window_uses_matches_of_distance_one() -> None:
    # A server may impose client_max_window_bits=8; zlib's Z_RLE keeps every match one byte
    # back, which any window allows.
    sender = PerMessageDeflate(False, False, 15, 8, min_size=0)
    block = os.urandom(200)
    messages = [block + b"a" * 500 + block, block, jsonish(2000, 7), b"b" * 1000]
    payloads = [sender.encode(Frame(Opcode.BINARY, message)).data for message in messages]
    assert strict_inflate(8, payloads) == b"".join(messages)
    assert len(payloads[3]) < 20  # runs still compress


def test_local_8_bit_window_keeps_huffman_only() -> None:
    sender = PerMessageDeflate(False, False, 15, 8, {"strategy": zlib.Z_HUFFMAN_ONLY})
    receiver = PerMessageDeflate(False, False, 8, 15)
    message = jsonish(2000, 8)
    payload = sender.encode(Frame(Opcode.BINARY, message)).data
    assert strict_inflate(8, [payload]) == message
    assert receiver.decode(Frame(Opcode.BINARY, payload, rsv1=True)).data == message


def test_local_8_bit_window_overrides_other_strategies() -> None:
    sender = PerMessageDeflate(
        False, False, 15, 8, {"strategy": zlib.Z_FILTERED, "level": 9}, min_size=0
    )
    block = os.urandom(200)
    message = block + os.urandom(100) + block
    payload = sender.encode(Frame(Opcode.BINARY, message)).data
    assert strict_inflate(8, [payload]) == message


def test_remote_8_bit_window_is_decompressed_with_9_bits() -> None:
    # A peer that uses a 9-bit window when 8 bits were agreed is still understood. (zlib's own
    # 9-bit compressor never reaches further back than 250 bytes; another one might.)
    first = os.urandom(300)
    second = os.urandom(100) + first  # refers 400 bytes back, into the previous message
    compressor = zlib.compressobj(wbits=-15)
    payloads = []
    for message in (first, second):
        output = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        payloads.append(output[:-4])
    assert strict_inflate(9, payloads) == first + second
    with pytest.raises(zlib.error, match="too far back"):
        strict_inflate(8, payloads)
    receiver = PerMessageDeflate(False, False, 8, 15)
    decoded = [
        receiver.decode(Frame(Opcode.BINARY, payload, rsv1=True)).data for payload in payloads
    ]
    assert decoded == [first, second]


# Decoding errors: robustness P3 and P4.


def test_rsv1_on_continuation_frame() -> None:
    extension = PerMessageDeflate(False, False, 15, 15)
    extension.decode(Frame(Opcode.TEXT, deflate(b"abc"), fin=False, rsv1=True))
    with pytest.raises(ProtocolError, match="continuation") as exc_info:
        extension.decode(Frame(Opcode.CONT, b"", rsv1=True))
    assert exc_info.value.code == 1002


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_rsv1_on_control_frame(opcode: Opcode) -> None:
    extension = PerMessageDeflate(False, False, 15, 15)
    with pytest.raises(ProtocolError, match=opcode.name) as exc_info:
        extension.decode(Frame(opcode, b"", rsv1=True))
    assert exc_info.value.code == 1002


def test_uncompressed_fragmented_message_passes_through() -> None:
    extension = PerMessageDeflate(False, False, 15, 15)
    frames = [Frame(Opcode.TEXT, b"not ", fin=False), Frame(Opcode.CONT, b"compressed")]
    assert [extension.decode(frame) for frame in frames] == frames


def test_p3_rsv1_on_continuation_fails_the_connection() -> None:
    server = server_with(PerMessageDeflate(False, False, 15, 15))
    # An uncompressed first frame, then a continuation with RSV1.
    server.receive_data(masked("0183", b"abc") + masked("4083", b"def"))
    assert close_code_sent(server) == 1002
    assert isinstance(server.parser_exc, ProtocolError)
    # A compressed first frame, then a final continuation with RSV1.
    server = server_with(PerMessageDeflate(False, False, 15, 15))
    server.receive_data(
        from_client(
            Frame(Opcode.TEXT, deflate(b"abc") + TAIL, fin=False, rsv1=True),
            Frame(Opcode.CONT, b"", rsv1=True),
        )
    )
    assert close_code_sent(server) == 1002


def test_p3_rsv1_on_control_frame_fails_the_connection() -> None:
    server = server_with(PerMessageDeflate(False, False, 15, 15))
    server.receive_data(masked("c980"))
    assert close_code_sent(server) == 1002
    assert server.events_received() == []


def test_p3_rsv1_without_negotiated_extension_fails_the_connection() -> None:
    server = server_with(None)
    server.receive_data(from_client(Frame(Opcode.TEXT, deflate(b"Hello"), rsv1=True)))
    assert close_code_sent(server) == 1002
    assert server.events_received() == []


def test_corrupt_data() -> None:
    extension = PerMessageDeflate(False, False, 15, 15)
    with pytest.raises(ProtocolError, match="invalid compressed data") as exc_info:
        extension.decode(Frame(Opcode.BINARY, b"\xff" * 5, rsv1=True))
    assert exc_info.value.code == 1002
    # The broken decompressor was dropped: a new stream decodes.
    assert extension.decode(Frame(Opcode.BINARY, deflate(b"again"), rsv1=True)).data == b"again"


def test_p4_corrupt_data_fails_the_connection() -> None:
    server = server_with(PerMessageDeflate(False, False, 15, 15))
    server.receive_data(masked("c285", b"\xff" * 5))  # receive_data does not raise
    assert close_code_sent(server) == 1002
    assert type(server.parser_exc) is ProtocolError
    assert server.events_received() == []
    assert server.state is State.CLOSING


def test_p4_distance_beyond_negotiated_window_fails_the_connection() -> None:
    # The peer agreed to a 9-bit window but compresses with 15 bits, and its second message
    # refers 900 bytes back into the first.
    first = os.urandom(1000)
    second = first[100:400] + os.urandom(50)
    compressor = zlib.compressobj(wbits=-15)
    payloads = []
    for message in (first, second):
        output = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        payloads.append(output[:-4])
    frames = [Frame(Opcode.BINARY, payload, rsv1=True) for payload in payloads]

    # With the window it claims, the stream decodes.
    receiver = PerMessageDeflate(False, False, 15, 15)
    assert [receiver.decode(frame).data for frame in frames] == [first, second]

    server = server_with(PerMessageDeflate(False, False, 9, 15))
    server.receive_data(from_client(*frames))
    assert server.events_received() == [Frame(Opcode.BINARY, first)]
    assert close_code_sent(server) == 1002
    assert isinstance(server.parser_exc, ProtocolError)
    assert "too far back" in str(server.parser_exc)


@pytest.mark.parametrize("padding", [b"\x00", b""])
def test_bfinal_block_ends_the_stream(padding: bytes) -> None:
    # RFC 7692 §7.2.3.4: a message may end its DEFLATE stream with BFINAL set; the next
    # message starts a new stream. The byte 0x00 that should follow, the header of the empty
    # stored block that ends every message, is sometimes left out.
    receiver = PerMessageDeflate(False, False, 15, 15)
    for message in (b"Hello", b"Hello again", b""):
        compressor = zlib.compressobj(wbits=-15)
        payload = compressor.compress(message) + compressor.flush(zlib.Z_FINISH) + padding
        assert receiver.decode(Frame(Opcode.TEXT, payload, rsv1=True)).data == message


@pytest.mark.parametrize(
    "pieces",
    [
        [b"\x00", b""],
        [b"", b"\x00"],
        [b"", b"", b""],
        [b"", b"\x00", b""],
    ],
)
def test_bfinal_block_then_fragments(pieces: list[bytes]) -> None:
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(b"Hello") + compressor.flush(zlib.Z_FINISH)
    frames = [Frame(Opcode.TEXT, payload + pieces[0], fin=False, rsv1=True)]
    frames += [Frame(Opcode.CONT, piece, fin=False) for piece in pieces[1:-1]]
    frames.append(Frame(Opcode.CONT, pieces[-1]))
    receiver = PerMessageDeflate(False, False, 15, 15)
    assert b"".join(receiver.decode(frame).data for frame in frames) == b"Hello"
    assert receiver.decode(Frame(Opcode.TEXT, deflate(b"next"), rsv1=True)).data == b"next"


def test_bfinal_stored_block_completed_by_the_tail() -> None:
    # The last frame holds only the header of a final stored block, whose LEN and NLEN are
    # the four bytes the receiver appends: the stream ends exactly there.
    receiver = PerMessageDeflate(False, False, 15, 15)
    first = receiver.decode(Frame(Opcode.TEXT, deflate(b"Hello") + TAIL, fin=False, rsv1=True))
    last = receiver.decode(Frame(Opcode.CONT, b"\x01"))
    assert first.data + last.data == b"Hello"
    assert receiver.decode(Frame(Opcode.TEXT, deflate(b"next"), rsv1=True)).data == b"next"


def test_data_after_bfinal_block() -> None:
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(b"Hello") + compressor.flush(zlib.Z_FINISH)
    receiver = PerMessageDeflate(False, False, 15, 15)
    with pytest.raises(ProtocolError, match="after the end"):
        receiver.decode(Frame(Opcode.TEXT, payload + b"junk", rsv1=True))
    receiver = PerMessageDeflate(False, False, 15, 15)
    with pytest.raises(ProtocolError, match="after the end"):
        receiver.decode(Frame(Opcode.TEXT, payload + b"\x00\x00", rsv1=True))
    receiver = PerMessageDeflate(False, False, 15, 15)
    receiver.decode(Frame(Opcode.TEXT, payload, fin=False, rsv1=True))
    with pytest.raises(ProtocolError, match="after the end"):
        receiver.decode(Frame(Opcode.CONT, b"more", fin=False))
    receiver = PerMessageDeflate(False, False, 15, 15)
    receiver.decode(Frame(Opcode.TEXT, payload + b"\x00", fin=False, rsv1=True))
    with pytest.raises(ProtocolError, match="after the end"):
        receiver.decode(Frame(Opcode.CONT, b"\x00"))


# Size limits: robustness P1 and P2.


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """Raw DEFLATE of 200 MiB of zeros, about 200 KB, as one message."""
    compressor = zlib.compressobj(wbits=-15)
    chunk = b"\x00" * MiB
    parts = [compressor.compress(chunk) for _ in range(200)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    data = b"".join(parts)
    assert data.endswith(TAIL)
    assert len(data) < 250_000
    return data[:-4]


def test_p1_decompression_bomb_is_bounded(bomb: bytes) -> None:
    extension = PerMessageDeflate(False, False, 15, 15)
    frame = Frame(Opcode.BINARY, bomb, rsv1=True)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig) as exc_info:
            extension.decode(frame, max_size=MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc_info.value.code == 1009
    # Inflating the whole frame would allocate 200 MiB.
    assert peak < 3 * MiB


def test_p1_decompression_bomb_fails_the_connection(bomb: bytes) -> None:
    server = server_with(PerMessageDeflate(False, False, 15, 15), max_size=MiB)
    server.receive_data(from_client(Frame(Opcode.BINARY, bomb, rsv1=True)))
    assert close_code_sent(server) == 1009
    assert isinstance(server.parser_exc, PayloadTooBig)
    assert server.events_received() == []


def test_unlimited_size() -> None:
    # max_size=None means no limit.
    extension = PerMessageDeflate(False, False, 15, 15)
    data = deflate(b"\x00" * (8 * MiB))
    assert len(extension.decode(Frame(Opcode.BINARY, data, rsv1=True)).data) == 8 * MiB


@pytest.mark.parametrize("size", [0, 1, 1000])
def test_message_exactly_at_the_limit(size: int) -> None:
    extension = PerMessageDeflate(False, False, 15, 15)
    message = b"z" * size
    frame = Frame(Opcode.BINARY, deflate(message), rsv1=True)
    assert extension.decode(frame, max_size=size).data == message
    extension = PerMessageDeflate(False, False, 15, 15)
    if size:
        with pytest.raises(PayloadTooBig):
            extension.decode(frame, max_size=size - 1)


def test_negative_budget_is_over_the_limit() -> None:
    extension = PerMessageDeflate(False, False, 15, 15)
    with pytest.raises(PayloadTooBig):
        extension.decode(Frame(Opcode.BINARY, deflate(b""), rsv1=True), max_size=-1)


def test_p2_bomb_spread_over_fragments() -> None:
    max_size = MiB
    compressor = zlib.compressobj(wbits=-15)
    chunk = b"\x00" * (max_size // 50)
    frames = []
    for index in range(100):
        data = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
        last = index == 99
        frames.append(
            Frame(
                Opcode.BINARY if index == 0 else Opcode.CONT,
                data[:-4] if last else data,
                fin=last,
                rsv1=index == 0,
            )
        )
    assert sum(len(frame.data) for frame in frames) < max_size // 50
    server = server_with(PerMessageDeflate(False, False, 15, 15), max_size=max_size)
    server.receive_data(from_client(*frames))
    events = server.events_received()
    # Forty-nine fragments fit in the limit (each after the first costs FRAME_OVERHEAD
    # bytes too); the fiftieth does not.
    assert len(events) == 49
    assert sum(len(frame.data) for frame in events if isinstance(frame, Frame)) <= max_size
    assert close_code_sent(server) == 1009


def test_frame_limit_applies_once_decompressed() -> None:
    # max_size=(message, frame), as in websockets: a compressed frame far under the frame
    # limit on the wire fails once it decompresses to more.
    compressed = deflate(b"\x00" * 2000)
    assert len(compressed) < 100
    server = server_with(PerMessageDeflate(False, False, 15, 15), max_size=(MiB, 1000))
    server.receive_data(from_client(Frame(Opcode.BINARY, deflate(b"\x00" * 1000), rsv1=True)))
    assert server.events_received() == [Frame(Opcode.BINARY, b"\x00" * 1000)]
    server.receive_data(from_client(Frame(Opcode.BINARY, compressed, rsv1=True)))
    assert server.events_received() == []
    assert str(server.parser_exc) == "decompressed frame exceeds limit of 1000 bytes"
    assert close_code_sent(server) == 1009


@pytest.mark.parametrize("mem_level", [1, 5, 8])
def test_a_message_that_fits_comes_through_though_compressing_grew_it(mem_level: int) -> None:
    # Random bytes come out of zlib a little larger (stored blocks, 5 bytes each, of at
    # most 127 bytes with memLevel 1): the frame is over max_size on the wire, the message
    # isn't, and it is accepted.
    message = os.urandom(MiB)
    compressor = zlib.compressobj(wbits=-15, memLevel=mem_level)
    payload = (compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert len(payload) > MiB
    server = server_with(PerMessageDeflate(False, False, 15, 15), max_size=MiB)
    server.receive_data(from_client(Frame(Opcode.BINARY, payload, rsv1=True)))
    assert server.events_received() == [Frame(Opcode.BINARY, message)]
    assert server.parser_exc is None


def test_a_frame_no_extension_transforms_is_held_to_max_size() -> None:
    # The allowance is for compressed frames only: an uncompressed frame over max_size
    # fails as soon as its header is read, with the limit that applies to it.
    server = server_with(PerMessageDeflate(False, False, 15, 15), max_size=MiB)
    server.receive_data(from_client(Frame(Opcode.BINARY, b"x" * (MiB + 1)))[:20])
    assert str(server.parser_exc) == f"frame of {MiB + 1} bytes exceeds limit of {MiB} bytes"
    assert close_code_sent(server) == 1009


def test_a_compressed_frame_far_over_max_size_fails_before_its_payload() -> None:
    server = server_with(PerMessageDeflate(False, False, 15, 15), max_size=MiB)
    size = MiB + MiB // 16 + 65
    server.receive_data(from_client(Frame(Opcode.BINARY, b"x" * size, rsv1=True))[:20])
    assert str(server.parser_exc) == (
        f"frame of {size} bytes exceeds limit of {size - 1} bytes for a frame that an "
        f"extension transforms, {MiB} bytes for another"
    )
    assert close_code_sent(server) == 1009


def test_message_limit_applies_once_decompressed_with_a_frame_limit() -> None:
    compressor = zlib.compressobj(wbits=-15)
    frames = []
    for index in range(4):
        data = compressor.compress(b"\x00" * 900) + compressor.flush(zlib.Z_SYNC_FLUSH)
        last = index == 3
        opcode = Opcode.BINARY if index == 0 else Opcode.CONT
        frames.append(Frame(opcode, data[:-4] if last else data, fin=last, rsv1=index == 0))
    server = server_with(PerMessageDeflate(False, False, 15, 15), max_size=(2500, 1000))
    server.receive_data(from_client(*frames))
    # Each frame holds 900 bytes, under the frame limit; the third takes the message over.
    assert len(server.events_received()) == 2
    assert "left for its message" in str(server.parser_exc)
    assert close_code_sent(server) == 1009


def test_p2_back_references_to_earlier_messages() -> None:
    # With context takeover, a small message can repeat earlier messages many times over.
    max_size = 64 * 1024
    first = os.urandom(30_000)
    compressor = zlib.compressobj(wbits=-15)
    payloads = []
    for message in (first, first * 100):
        output = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        payloads.append(output[:-4])
    assert len(payloads[1]) < max_size // 2
    server = server_with(PerMessageDeflate(False, False, 15, 15), max_size=max_size)
    server.receive_data(from_client(*(Frame(Opcode.BINARY, p, rsv1=True) for p in payloads)))
    assert server.events_received() == [Frame(Opcode.BINARY, first)]
    assert close_code_sent(server) == 1009


# Server negotiation.


def offer_request(offer: str) -> Request:
    headers = Headers()
    headers["Host"] = "example.com"
    headers["Upgrade"] = "websocket"
    headers["Connection"] = "Upgrade"
    headers["Sec-WebSocket-Key"] = base64.b64encode(b"0123456789abcdef").decode()
    headers["Sec-WebSocket-Version"] = "13"
    headers["Sec-WebSocket-Extensions"] = offer
    return Request("/", headers)


def attributes(extension: PerMessageDeflate) -> Settings:
    return (
        extension.remote_no_context_takeover,
        extension.local_no_context_takeover,
        extension.remote_max_window_bits,
        extension.local_max_window_bits,
    )


SERVER_CASES: list[tuple[Config, Params, Params, Settings]] = [
    # Defaults: both windows limited to 12 bits.
    ({}, [], [("server_max_window_bits", "12")], (False, False, 15, 12)),
    (
        {},
        [("client_max_window_bits", NO)],
        [("server_max_window_bits", "12"), ("client_max_window_bits", "12")],
        (False, False, 12, 12),
    ),
    (
        {},
        [("client_max_window_bits", "10")],
        [("server_max_window_bits", "12"), ("client_max_window_bits", "10")],
        (False, False, 10, 12),
    ),
    (
        {},
        [("client_max_window_bits", "14")],
        [("server_max_window_bits", "12"), ("client_max_window_bits", "12")],
        (False, False, 12, 12),
    ),
    (
        {},
        [("server_max_window_bits", "10")],
        [("server_max_window_bits", "10")],
        (False, False, 15, 10),
    ),
    (
        {},
        [("server_max_window_bits", "15")],
        [("server_max_window_bits", "12")],
        (False, False, 15, 12),
    ),
    (
        {},
        [("server_no_context_takeover", NO)],
        [("server_no_context_takeover", NO), ("server_max_window_bits", "12")],
        (False, True, 15, 12),
    ),
    (
        {},
        [("client_no_context_takeover", NO)],
        [("client_no_context_takeover", NO), ("server_max_window_bits", "12")],
        (True, False, 15, 12),
    ),
    # No limits configured.
    (
        {"server_max_window_bits": None, "client_max_window_bits": None},
        [],
        [],
        (False, False, 15, 15),
    ),
    (
        {"server_max_window_bits": None, "client_max_window_bits": None},
        [("client_max_window_bits", NO)],
        [],
        (False, False, 15, 15),
    ),
    (
        {"server_max_window_bits": None, "client_max_window_bits": None},
        [("client_max_window_bits", "9")],
        [],
        (False, False, 9, 15),
    ),
    (
        {"server_max_window_bits": None, "client_max_window_bits": None},
        [("server_max_window_bits", "9")],
        [("server_max_window_bits", "9")],
        (False, False, 15, 9),
    ),
    # Everything requested by the server.
    (
        {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 10,
            "client_max_window_bits": 8,
            "require_client_max_window_bits": True,
        },
        [("client_max_window_bits", NO)],
        [
            ("server_no_context_takeover", NO),
            ("client_no_context_takeover", NO),
            ("server_max_window_bits", "10"),
            ("client_max_window_bits", "8"),
        ],
        (True, True, 8, 10),
    ),
    # Everything requested by the client.
    (
        {},
        [
            ("server_no_context_takeover", NO),
            ("client_no_context_takeover", NO),
            ("server_max_window_bits", "9"),
            ("client_max_window_bits", "11"),
        ],
        [
            ("server_no_context_takeover", NO),
            ("client_no_context_takeover", NO),
            ("server_max_window_bits", "9"),
            ("client_max_window_bits", "11"),
        ],
        (True, True, 11, 9),
    ),
]


@pytest.mark.parametrize(("config", "offer", "answer", "expected"), SERVER_CASES)
def test_server_negotiation(
    config: Config,
    offer: list[ExtensionParameter],
    answer: list[ExtensionParameter],
    expected: Settings,
) -> None:
    factory = ServerPerMessageDeflateFactory(**config)
    params, extension = factory.process_request_params(offer, [])
    assert params == answer
    assert attributes(extension) == expected
    # The answer satisfies the client that made the offer.
    client_factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=("server_no_context_takeover", NO) in offer,
        client_no_context_takeover=("client_no_context_takeover", NO) in offer,
        server_max_window_bits=next(
            (int(v) for n, v in offer if n == "server_max_window_bits" and v), None
        ),
        client_max_window_bits=next(
            (int(v) if v else True for n, v in offer if n == "client_max_window_bits"), None
        ),
    )
    client_extension = client_factory.process_response_params(params, [])
    assert attributes(client_extension) == (expected[1], expected[0], expected[3], expected[2])
    message = jsonish(2000, 9)
    for _ in range(3):
        assert transfer(extension, client_extension, Frame(Opcode.TEXT, message)).data == message
        assert transfer(client_extension, extension, Frame(Opcode.TEXT, message)).data == message


DECLINED_OFFERS: list[tuple[str, type[NegotiationError], Config]] = [
    ("permessage-deflate; client_max_window_bits=7", InvalidParameterValue, {}),
    ("permessage-deflate; client_max_window_bits=16", InvalidParameterValue, {}),
    ("permessage-deflate; client_max_window_bits=010", InvalidParameterValue, {}),
    ("permessage-deflate; client_max_window_bits=abc", InvalidParameterValue, {}),
    ("permessage-deflate; server_max_window_bits=8", NegotiationError, {}),
    (
        "permessage-deflate; server_max_window_bits=8",
        NegotiationError,
        {"server_max_window_bits": None},
    ),
    ("permessage-deflate; server_max_window_bits", InvalidParameterValue, {}),
    ("permessage-deflate; server_max_window_bits=16", InvalidParameterValue, {}),
    ('permessage-deflate; server_max_window_bits="09"', InvalidParameterValue, {}),
    ("permessage-deflate; server_no_context_takeover=1", InvalidParameterValue, {}),
    ("permessage-deflate; client_no_context_takeover=yes", InvalidParameterValue, {}),
    (
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        DuplicateParameter,
        {},
    ),
    (
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        DuplicateParameter,
        {},
    ),
    ("permessage-deflate; foo", InvalidParameterName, {}),
    ("permessage-deflate; foo=1", InvalidParameterName, {}),
    ("permessage-deflate", NegotiationError, {"require_client_max_window_bits": True}),
]


@pytest.mark.parametrize(("offer", "error", "config"), DECLINED_OFFERS)
def test_p5_server_declines_offer(
    offer: str, error: type[NegotiationError], config: Config
) -> None:
    factory = ServerPerMessageDeflateFactory(**config)
    request = offer_request(offer)
    [(_, params)] = parse_extension(offer)
    with pytest.raises(error):
        factory.process_request_params(params, [])
    # Through the handshake: the connection opens without the extension.
    server = ServerProtocol(extensions=[factory])
    response = server.accept(request)
    assert response.status_code == 101
    assert "Sec-WebSocket-Extensions" not in response.headers
    assert server.extensions == []


def test_server_accepts_quoted_value() -> None:
    # The header parser unquotes values, so "15" arrives as 15 (RFC 7692 §7.1).
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
    response = server.accept(offer_request('permessage-deflate; client_max_window_bits="15"'))
    assert response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    )


def test_server_falls_back_to_next_offer() -> None:
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
    response = server.accept(
        offer_request(
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits, "
            "permessage-deflate; foo, "
            "permessage-deflate; client_max_window_bits"
        )
    )
    assert response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    )
    assert len(server.extensions) == 1
    assert isinstance(server.extensions[0], PerMessageDeflate)


def test_server_declines_second_acceptance() -> None:
    factory = ServerPerMessageDeflateFactory()
    _, extension = factory.process_request_params([], [])
    with pytest.raises(NegotiationError, match="already"):
        factory.process_request_params([], [extension])


# Client negotiation.


@pytest.mark.parametrize(
    ("config", "params"),
    [
        ({}, [("client_max_window_bits", NO)]),
        ({"client_max_window_bits": None}, []),
        ({"client_max_window_bits": False}, []),
        ({"client_max_window_bits": 10}, [("client_max_window_bits", "10")]),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 8,
                "client_max_window_bits": 9,
            },
            [
                ("server_no_context_takeover", NO),
                ("client_no_context_takeover", NO),
                ("server_max_window_bits", "8"),
                ("client_max_window_bits", "9"),
            ],
        ),
    ],
)
def test_client_offer(config: Config, params: list[ExtensionParameter]) -> None:
    assert ClientPerMessageDeflateFactory(**config).get_request_params() == params


CLIENT_CASES: list[tuple[Config, Params, Settings]] = [
    ({}, [], (False, False, 15, 15)),
    ({}, [("server_max_window_bits", "12")], (False, False, 12, 15)),
    ({}, [("server_max_window_bits", "8")], (False, False, 8, 15)),
    ({}, [("client_max_window_bits", "12")], (False, False, 15, 12)),
    ({}, [("client_max_window_bits", "8")], (False, False, 15, 8)),
    ({}, [("server_no_context_takeover", NO)], (True, False, 15, 15)),
    ({}, [("client_no_context_takeover", NO)], (False, True, 15, 15)),
    ({"client_no_context_takeover": True}, [], (False, True, 15, 15)),
    ({"client_max_window_bits": 10}, [], (False, False, 15, 10)),
    ({"client_max_window_bits": 10}, [("client_max_window_bits", "9")], (False, False, 15, 9)),
    ({"client_max_window_bits": 10}, [("client_max_window_bits", "10")], (False, False, 15, 10)),
    ({"server_max_window_bits": 10}, [("server_max_window_bits", "10")], (False, False, 10, 15)),
    ({"server_max_window_bits": 10}, [("server_max_window_bits", "9")], (False, False, 9, 15)),
    (
        {"server_no_context_takeover": True},
        [("server_no_context_takeover", NO)],
        (True, False, 15, 15),
    ),
    (
        {},
        [
            ("client_max_window_bits", "9"),
            ("server_max_window_bits", "11"),
            ("client_no_context_takeover", NO),
            ("server_no_context_takeover", NO),
        ],
        (True, True, 11, 9),
    ),
]


@pytest.mark.parametrize(("config", "answer", "expected"), CLIENT_CASES)
def test_client_negotiation(
    config: Config, answer: list[ExtensionParameter], expected: Settings
) -> None:
    extension = ClientPerMessageDeflateFactory(**config).process_response_params(answer, [])
    assert attributes(extension) == expected


REJECTED_ANSWERS: list[tuple[Config, Params, type[NegotiationError]]] = [
    ({}, [("server_max_window_bits", "16")], InvalidParameterValue),
    ({}, [("server_max_window_bits", "7")], InvalidParameterValue),
    ({}, [("server_max_window_bits", "010")], InvalidParameterValue),
    ({}, [("server_max_window_bits", NO)], InvalidParameterValue),
    ({}, [("client_max_window_bits", NO)], InvalidParameterValue),
    ({}, [("client_max_window_bits", "1O")], InvalidParameterValue),
    ({}, [("server_no_context_takeover", "x")], InvalidParameterValue),
    ({}, [("foo", NO)], InvalidParameterName),
    (
        {},
        [("client_no_context_takeover", NO), ("client_no_context_takeover", NO)],
        DuplicateParameter,
    ),
    ({"client_max_window_bits": None}, [("client_max_window_bits", "10")], NegotiationError),
    ({"client_max_window_bits": 10}, [("client_max_window_bits", "11")], NegotiationError),
    ({"server_max_window_bits": 10}, [("server_max_window_bits", "11")], NegotiationError),
    ({"server_max_window_bits": 10}, [], NegotiationError),
    ({"server_no_context_takeover": True}, [], NegotiationError),
]


@pytest.mark.parametrize(("config", "answer", "error"), REJECTED_ANSWERS)
def test_client_rejects_answer(
    config: Config, answer: list[ExtensionParameter], error: type[NegotiationError]
) -> None:
    factory = ClientPerMessageDeflateFactory(**config)
    with pytest.raises(error) as exc_info:
        factory.process_response_params(answer, [])
    if error is NegotiationError:
        assert type(exc_info.value) is NegotiationError


def test_client_rejects_second_acceptance() -> None:
    factory = ClientPerMessageDeflateFactory()
    extension = factory.process_response_params([], [])
    with pytest.raises(NegotiationError, match="twice"):
        factory.process_response_params([], [extension])


def make_client(factory: ClientPerMessageDeflateFactory | None = None) -> ClientProtocol:
    client = ClientProtocol(
        parse_uri("ws://example.com/"),
        extensions=[factory or ClientPerMessageDeflateFactory()],
    )
    client.send_request(client.connect())
    client.data_to_send()
    return client


def answer_bytes(client: ClientProtocol, extensions: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(client.key)}\r\n"
        f"Sec-WebSocket-Extensions: {extensions}\r\n"
        "\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("answer", "factory"),
    [
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits=7", None),
        (
            "permessage-deflate; client_max_window_bits=10",
            ClientPerMessageDeflateFactory(client_max_window_bits=None),
        ),
        ("permessage-deflate; client_max_window_bits", None),
        ("permessage-deflate; foo", None),
        ("permessage-deflate, permessage-deflate", None),
        ("x-never-offered", None),
        ("permessage-deflate", ClientPerMessageDeflateFactory(server_max_window_bits=10)),
    ],
)
def test_p6_client_handshake_fails_cleanly(
    answer: str, factory: ClientPerMessageDeflateFactory | None
) -> None:
    client = make_client(factory)
    client.receive_data(answer_bytes(client, answer))
    assert isinstance(client.handshake_exc, NegotiationError)
    assert client.state is not State.OPEN
    assert client.extensions == []
    assert client.eof_sent


def test_client_handshake_accepts_answer() -> None:
    client = make_client()
    client.receive_data(
        answer_bytes(
            client, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
    )
    assert client.state is State.OPEN
    (extension,) = client.extensions
    assert isinstance(extension, PerMessageDeflate)
    assert attributes(extension) == (False, False, 12, 12)


def test_full_handshake_then_messages() -> None:
    client = ClientProtocol(
        parse_uri("ws://example.com/"), extensions=enable_client_permessage_deflate(None)
    )
    server = ServerProtocol(extensions=enable_server_permessage_deflate(None))
    request = client.connect()
    client.send_request(request)
    server.receive_data(b"".join(client.data_to_send()))
    (received,) = server.events_received()
    assert isinstance(received, Request)
    server.send_response(server.accept(received))
    client.receive_data(b"".join(server.data_to_send()))
    assert client.state is State.OPEN
    assert server.state is State.OPEN
    (client_extension,) = client.extensions
    (server_extension,) = server.extensions
    assert isinstance(client_extension, PerMessageDeflate)
    assert isinstance(server_extension, PerMessageDeflate)
    assert attributes(client_extension) == (False, False, 12, 12)
    assert attributes(server_extension) == (False, False, 12, 12)
    client.events_received()

    for index in range(5):
        message = jsonish(3000, index)
        client.send_text(message)
        wire = b"".join(client.data_to_send())
        assert len(wire) < len(message) // 2
        server.receive_data(wire)
        assert server.events_received() == [Frame(Opcode.TEXT, message)]
        server.send_binary(message, fin=False)
        server.send_continuation(message, fin=True)
        client.receive_data(b"".join(server.data_to_send()))
        assert client.events_received() == [
            Frame(Opcode.BINARY, message, fin=False),
            Frame(Opcode.CONT, message),
        ]


# Interoperability with the websockets package.


def to_theirs(frame: Frame) -> ws_frames.Frame:
    return ws_frames.Frame(
        ws_frames.Opcode(frame.opcode.value),
        frame.data,
        frame.fin,
        frame.rsv1,
        frame.rsv2,
        frame.rsv3,
    )


def to_ours(frame: ws_frames.Frame) -> Frame:
    return Frame(
        Opcode(frame.opcode.value), bytes(frame.data), frame.fin, frame.rsv1, frame.rsv2, frame.rsv3
    )


INTEROP_SETTINGS = [
    (False, False, 15, 15),
    (False, False, 9, 9),
    (True, True, 12, 12),
    (True, False, 10, 13),
    (False, True, 14, 11),
    (False, False, 8, 12),
]


@pytest.mark.parametrize("settings", INTEROP_SETTINGS)
def test_websockets_encodes_we_decode(settings: Settings) -> None:
    remote_nct, local_nct, remote_bits, local_bits = settings
    ours = PerMessageDeflate(remote_nct, local_nct, remote_bits, local_bits)
    # Their local side is our remote side.
    theirs = ws_deflate.PerMessageDeflate(local_nct, remote_nct, local_bits, max(9, remote_bits))
    for index, message in enumerate(MESSAGES * 2):
        if index % 3 == 2:
            frames = [
                Frame(Opcode.TEXT, message[:100], fin=False),
                Frame(Opcode.CONT, message[100:]),
            ]
        else:
            frames = [Frame(Opcode.BINARY, message)]
        encoded = [to_ours(theirs.encode(to_theirs(frame))) for frame in frames]
        decoded = [ours.decode(frame, max_size=MiB) for frame in encoded]
        assert b"".join(frame.data for frame in decoded) == message


@pytest.mark.parametrize("settings", INTEROP_SETTINGS)
def test_we_encode_websockets_decodes(settings: Settings) -> None:
    remote_nct, local_nct, remote_bits, local_bits = settings
    ours = PerMessageDeflate(remote_nct, local_nct, remote_bits, local_bits, min_size=16)
    theirs = ws_deflate.PerMessageDeflate(local_nct, remote_nct, local_bits, max(9, remote_bits))
    for index, message in enumerate([*MESSAGES, b"short", *MESSAGES]):
        if index % 3 == 2:
            frames = [
                Frame(Opcode.TEXT, message[:100], fin=False),
                Frame(Opcode.CONT, b"", fin=False),
                Frame(Opcode.CONT, message[100:]),
            ]
        else:
            frames = [Frame(Opcode.BINARY, message)]
        encoded = [ours.encode(frame) for frame in frames]
        decoded = [to_ours(theirs.decode(to_theirs(frame), max_size=MiB)) for frame in encoded]
        assert b"".join(frame.data for frame in decoded) == message


@given(
    messages=st.lists(
        st.binary(max_size=3000) | st.text(max_size=1000).map(str.encode), max_size=8
    ),
    split=st.integers(min_value=0, max_value=3000),
    bits=st.integers(min_value=9, max_value=15),
    no_context_takeover=st.booleans(),
)
def test_differential_with_websockets(
    messages: list[bytes], split: int, bits: int, no_context_takeover: bool
) -> None:
    ours = PerMessageDeflate(no_context_takeover, no_context_takeover, bits, bits, min_size=0)
    theirs = ws_deflate.PerMessageDeflate(no_context_takeover, no_context_takeover, bits, bits)
    for message in messages:
        frames = [
            Frame(Opcode.BINARY, message[:split], fin=False),
            Frame(Opcode.CONT, message[split:]),
        ]
        # Ours, then theirs.
        mine = [ours.encode(frame) for frame in frames]
        assert [to_ours(theirs.decode(to_theirs(frame))) for frame in mine] == frames
        # Theirs, then ours.
        their = [to_ours(theirs.encode(to_theirs(frame))) for frame in frames]
        assert [ours.decode(frame) for frame in their] == frames
        # Same bytes as websockets: both compress with the same zlib settings.
        assert [frame.data for frame in mine] == [frame.data for frame in their]


WS_CLIENT_CONFIGS: list[Config] = [
    {},
    {"client_max_window_bits": None},
    {"client_max_window_bits": 10},
    {"server_max_window_bits": 11},
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 9, "client_max_window_bits": 9, "client_no_context_takeover": True},
]


@pytest.mark.parametrize("config", WS_CLIENT_CONFIGS)
@pytest.mark.parametrize(
    "server_config",
    [
        {},
        {"server_max_window_bits": None, "client_max_window_bits": None},
        {"client_no_context_takeover": True},
    ],
)
def test_websockets_client_with_our_server(config: Config, server_config: Config) -> None:
    their_factory = ws_deflate.ClientPerMessageDeflateFactory(**config)
    our_factory = ServerPerMessageDeflateFactory(**server_config)
    answer, ours = our_factory.process_request_params(their_factory.get_request_params(), [])
    theirs = their_factory.process_response_params(answer, [])
    exchange_with_websockets(ours, theirs)


SERVER_CONFIGS: list[Config] = [
    {},
    {
        "server_max_window_bits": 12,
        "client_max_window_bits": 12,
        "compress_settings": {"memLevel": 5},
    },
    {"server_no_context_takeover": True},
    {"client_no_context_takeover": True, "server_max_window_bits": 9},
    {"client_max_window_bits": 10, "require_client_max_window_bits": True},
]


@pytest.mark.parametrize(
    "config", [{}, {"client_max_window_bits": 11}, {"server_max_window_bits": 12}]
)
@pytest.mark.parametrize("server_config", SERVER_CONFIGS)
def test_our_client_with_websockets_server(config: Config, server_config: Config) -> None:
    our_factory = ClientPerMessageDeflateFactory(**config)
    their_factory = ws_deflate.ServerPerMessageDeflateFactory(**server_config)
    answer, theirs = their_factory.process_request_params(our_factory.get_request_params(), [])
    ours = our_factory.process_response_params(answer, [])
    exchange_with_websockets(ours, theirs)


def exchange_with_websockets(ours: PerMessageDeflate, theirs: ws_deflate.PerMessageDeflate) -> None:
    """Check that both ends agreed on the same parameters, then exchange messages."""
    assert (
        theirs.remote_no_context_takeover,
        theirs.local_no_context_takeover,
        theirs.remote_max_window_bits,
        theirs.local_max_window_bits,
    ) == (
        ours.local_no_context_takeover,
        ours.remote_no_context_takeover,
        ours.local_max_window_bits,
        ours.remote_max_window_bits,
    )
    for index in range(4):
        message = jsonish(4000, index)
        sent_frame = ours.encode(Frame(Opcode.TEXT, message))
        assert to_ours(theirs.decode(to_theirs(sent_frame))).data == message
        received = to_ours(theirs.encode(ws_frames.Frame(ws_frames.Opcode.TEXT, message)))
        assert ours.decode(received).data == message


# Configuration.


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"server_max_window_bits": True},
        {"server_max_window_bits": "12"},
        {"client_max_window_bits": 8},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": 12.0},
        {"compress_settings": {"wbits": 9}},
        {"compress_settings": {"zdict": b"abc"}},
        {"compress_settings": {"level": 10}},
        {"compress_settings": {"memLevel": 0}},
        {"min_size": -1},
    ],
)
def test_client_factory_rejects_arguments(kwargs: Config) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        ClientPerMessageDeflateFactory(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 8},
        {"server_max_window_bits": 16},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": None, "require_client_max_window_bits": True},
        {"compress_settings": {"method": zlib.DEFLATED}},
        {"compress_settings": {"strategy": 42}},
        {"min_size": -5},
    ],
)
def test_server_factory_rejects_arguments(kwargs: Config) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        ServerPerMessageDeflateFactory(**kwargs)


def test_8_bit_compressor_window_error_explains() -> None:
    with pytest.raises(ValueError, match="8-bit window"):
        ServerPerMessageDeflateFactory(server_max_window_bits=8)


@pytest.mark.parametrize(
    "args",
    [(False, False, 7, 15), (False, False, 15, 16), (False, False, 15, 7), (False, False, 16, 15)],
)
def test_extension_rejects_window_sizes(args: Settings) -> None:
    with pytest.raises(ValueError, match="window_bits"):
        PerMessageDeflate(*args)


def test_extension_rejects_settings() -> None:
    with pytest.raises(ValueError, match="wbits"):
        PerMessageDeflate(False, False, 15, 15, {"wbits": 15})
    with pytest.raises(ValueError, match="min_size"):
        PerMessageDeflate(False, False, 15, 15, min_size=-1)


def test_default_settings() -> None:
    extension = PerMessageDeflate(False, False, 15, 15)
    assert extension.compress_settings == DEFAULT_COMPRESS_SETTINGS == {"memLevel": 5}
    assert extension.min_size == DEFAULT_MIN_SIZE
    settings = {"level": 1}
    extension = PerMessageDeflate(False, False, 15, 15, settings)
    settings["level"] = 9  # the extension keeps its own copy
    assert extension.compress_settings == {"level": 1}


def test_settings_reach_the_extension() -> None:
    client = ClientPerMessageDeflateFactory(compress_settings={"level": 1}, min_size=7)
    extension = client.process_response_params([], [])
    assert (extension.compress_settings, extension.min_size) == ({"level": 1}, 7)
    server = ServerPerMessageDeflateFactory(compress_settings={"level": 9}, min_size=0)
    _, extension = server.process_request_params([], [])
    assert (extension.compress_settings, extension.min_size) == ({"level": 9}, 0)


def test_compression_level_is_used() -> None:
    message = jsonish(20_000, 10)
    fast = PerMessageDeflate(False, False, 15, 15, {"level": 0}, min_size=0)
    best = PerMessageDeflate(False, False, 15, 15, {"level": 9})
    assert len(fast.encode(Frame(Opcode.TEXT, message)).data) > len(message)
    assert len(best.encode(Frame(Opcode.TEXT, message)).data) < len(message) // 3


def test_reprs() -> None:
    assert repr(PerMessageDeflate(True, False, 10, 12)) == (
        "PerMessageDeflate(remote_no_context_takeover=True, local_no_context_takeover=False, "
        "remote_max_window_bits=10, local_max_window_bits=12)"
    )
    assert repr(ClientPerMessageDeflateFactory()) == (
        "ClientPerMessageDeflateFactory(server_no_context_takeover=False, "
        "client_no_context_takeover=False, server_max_window_bits=None, "
        "client_max_window_bits=True)"
    )
    assert repr(ServerPerMessageDeflateFactory()) == (
        "ServerPerMessageDeflateFactory(server_no_context_takeover=False, "
        "client_no_context_takeover=False, server_max_window_bits=12, "
        "client_max_window_bits=12, require_client_max_window_bits=False)"
    )


def test_names() -> None:
    assert PerMessageDeflate.name == "permessage-deflate"
    assert ClientPerMessageDeflateFactory.name == "permessage-deflate"
    assert ServerPerMessageDeflateFactory.name == "permessage-deflate"


class OtherClientFactory(ClientExtensionFactory):
    name = "x-other"


class OtherServerFactory(ServerExtensionFactory):
    name = "x-other"


def test_enable_client_permessage_deflate() -> None:
    assert [type(f) for f in enable_client_permessage_deflate(None)] == [
        ClientPerMessageDeflateFactory
    ]
    other = OtherClientFactory()
    factories: list[ClientExtensionFactory] = [other]
    enabled = enable_client_permessage_deflate(factories)
    assert enabled[0] is other
    assert isinstance(enabled[1], ClientPerMessageDeflateFactory)
    assert factories == [other]  # a new list
    custom = ClientPerMessageDeflateFactory(client_max_window_bits=10)
    assert enable_client_permessage_deflate([custom, other]) == [custom, other]


def test_enable_server_permessage_deflate() -> None:
    assert [type(f) for f in enable_server_permessage_deflate(())] == [
        ServerPerMessageDeflateFactory
    ]
    other = OtherServerFactory()
    factories: list[ServerExtensionFactory] = [other]
    enabled = enable_server_permessage_deflate(factories)
    assert enabled[0] is other
    assert isinstance(enabled[1], ServerPerMessageDeflateFactory)
    assert factories == [other]
    custom = ServerPerMessageDeflateFactory(server_no_context_takeover=True)
    assert enable_server_permessage_deflate([other, custom]) == [other, custom]


# Messages that deflate does not make smaller are sent as they are.


def test_incompressible_message_is_sent_uncompressed() -> None:
    # A MiB of random data grows by about 0.25% once deflated: over a max_size of 1 MiB.
    sender = PerMessageDeflate(False, False, 12, 12)
    message = os.urandom(2**20)
    assert sender.encode(Frame(Opcode.BINARY, message)) == Frame(Opcode.BINARY, message)


@pytest.mark.parametrize("bits", [8, 9, 12, 15])
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_uncompressed_fallback_keeps_the_peer_in_step(bits: int, no_context_takeover: bool) -> None:
    sender, receiver = pair(bits, no_context_takeover, min_size=16)
    text = jsonish(300, 11)
    messages = [text, os.urandom(300), text, os.urandom(5000), os.urandom(40), text]
    compressed = []
    for message in messages:
        encoded = sender.encode(Frame(Opcode.BINARY, message))
        assert encoded.rsv1 is (message == text)
        assert receiver.decode(encoded).data == message
        if encoded.rsv1:
            compressed.append(encoded.data)
    # The window the sender refers to is the receiver's: only the compressed messages fill it.
    assert strict_inflate(max(bits, 9), compressed) == text * 3
    if not no_context_takeover and bits >= 12:
        # The random messages in between were left out of the window: the text is still there.
        assert len(compressed[2]) < len(compressed[0]) // 5


def test_fragmented_message_is_sent_uncompressed_when_its_first_frame_does_not_shrink() -> None:
    sender, receiver = pair(min_size=16)
    first = sender.encode(Frame(Opcode.BINARY, os.urandom(1000), fin=False))
    last = sender.encode(Frame(Opcode.CONT, b"x" * 1000))
    assert not first.rsv1
    assert last == Frame(Opcode.CONT, b"x" * 1000)
    following = sender.encode(Frame(Opcode.TEXT, jsonish(500, 12)))
    assert following.rsv1
    assert receiver.decode(following).data == jsonish(500, 12)


def test_min_size_zero_compresses_even_what_grows() -> None:
    sender, receiver = pair(min_size=0)
    message = os.urandom(1000)
    encoded = sender.encode(Frame(Opcode.BINARY, message))
    assert encoded.rsv1
    assert len(encoded.data) > len(message)
    assert receiver.decode(encoded).data == message


def test_protocols_exchange_a_max_size_message_of_random_bytes() -> None:
    # Bytes in, bytes out: a client and a server protocol with the default settings and a
    # 1 MiB max_size, each way.
    client_factory = ClientPerMessageDeflateFactory()
    server_factory = ServerPerMessageDeflateFactory()
    answer, server_extension = server_factory.process_request_params(
        client_factory.get_request_params(), []
    )
    client_extension = client_factory.process_response_params(answer, [])
    client = Protocol(Side.CLIENT, state=State.OPEN, max_size=2**20)
    server = Protocol(Side.SERVER, state=State.OPEN, max_size=2**20)
    client.extensions = [client_extension]
    server.extensions = [server_extension]
    message = os.urandom(2**20)
    for sender, receiver in ((client, server), (server, client)):
        sender.send_binary(message)
        for data in sender.data_to_send():
            receiver.receive_data(data)
        assert receiver.events_received() == [Frame(Opcode.BINARY, message)]


# Memory of idle connections.


def test_negotiation_makes_no_zlib_object(monkeypatch: pytest.MonkeyPatch) -> None:
    server_factory = ServerPerMessageDeflateFactory(compress_settings={"level": 3})
    client_factory = ClientPerMessageDeflateFactory(compress_settings={"level": 3})
    made: list[str] = []
    compressobj, decompressobj = zlib.compressobj, zlib.decompressobj

    def counting_compressobj(*args: Any, **kwargs: Any) -> Any:
        made.append("compressobj")
        return compressobj(*args, **kwargs)

    def counting_decompressobj(*args: Any, **kwargs: Any) -> Any:
        made.append("decompressobj")
        return decompressobj(*args, **kwargs)

    monkeypatch.setattr(zlib, "compressobj", counting_compressobj)
    monkeypatch.setattr(zlib, "decompressobj", counting_decompressobj)
    for _ in range(3):
        answer, server_extension = server_factory.process_request_params(
            client_factory.get_request_params(), []
        )
        client_extension = client_factory.process_response_params(answer, [])
    # zlib's state is about 256 KiB per compressor: none before the first message.
    assert made == []
    assert isinstance(server_extension, PerMessageDeflate)
    assert isinstance(client_extension, PerMessageDeflate)
    message = client_extension.encode(Frame(Opcode.TEXT, b"hello " * 100))
    assert made == ["compressobj"]
    assert server_extension.decode(message).data == b"hello " * 100
    assert made == ["compressobj", "decompressobj"]


def test_extension_keeps_attributes_set_on_it() -> None:
    extension = PerMessageDeflate(False, False, 15, 15)
    extension.note = "kept"  # type: ignore[attr-defined]
    assert extension.note == "kept"  # type: ignore[attr-defined]
