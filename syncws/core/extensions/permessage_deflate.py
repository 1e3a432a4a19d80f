"""Compression of messages with DEFLATE: the permessage-deflate extension (RFC 7692).

A client offers the extension with :class:`ClientPerMessageDeflateFactory`, a server answers
with :class:`ServerPerMessageDeflateFactory`, and both ends then run a :class:`PerMessageDeflate`
that compresses outgoing messages and decompresses incoming ones.
:func:`enable_client_permessage_deflate` and :func:`enable_server_permessage_deflate` add the
default factory to a list of factories.

Memory
    Each direction of a connection has its own zlib object. Measured with zlib 1.2.13, a
    compressor costs about ``(1 << (window_bits + 2)) + (1 << (memLevel + 9))`` bytes plus
    6 KiB, and a decompressor ``1 << window_bits`` bytes plus 7 KiB:

    ===========================================  ==========  ============  =======
    Settings                                     Compressor  Decompressor    Total
    ===========================================  ==========  ============  =======
    Server defaults: 12-bit windows, memLevel 5      38 KiB        11 KiB   49 KiB
    15-bit windows, memLevel 5                      150 KiB        39 KiB  189 KiB
    15-bit windows, memLevel 8 (zlib defaults)      262 KiB        39 KiB  301 KiB
    ===========================================  ==========  ============  =======

    The server defaults therefore limit both windows to 12 bits and compress with memLevel 5.
    A client that does not offer ``client_max_window_bits`` (RFC 7692 §7.1.2.2) cannot be held
    to a smaller window, so the server decompresses its messages with a 15-bit window: 77 KiB
    for the connection. The zlib objects are created when the first compressed message passes,
    and without context takeover they are released after every message, so an idle connection
    that does not keep a context costs nothing.

    At the defaults, compression runs at about 60 MB/s and decompression at about 370 MB/s on
    JSON text, which shrinks to about a fifth of its size.

Window sizes and zlib
    zlib cannot compress raw DEFLATE with an 8-bit (256-byte) window: ``compressobj(wbits=-8)``
    raises :exc:`ValueError`. It does decompress with any window of 8 to 15 bits, and a larger
    window accepts everything a smaller one does. Hence:

    * Incoming messages are decompressed with a window of ``max(9, bits)`` bits. This costs
      256 bytes more than an 8-bit window, and accepts peers that compress with 9 bits when
      8 were agreed. (zlib's own 9-bit compressor never refers more than 250 bytes back, but
      zlib does not document this, so syncws does not rely on it when it compresses.)
    * A server declines an offer asking for ``server_max_window_bits=8``: it could not answer
      with a window of 8 bits or less, as RFC 7692 §7.1.2.1 requires. The client may follow with
      another offer.
    * A client never offers ``client_max_window_bits=8``, but a server may still impose it in its
      answer when the client offered the parameter without a value, and the client cannot refuse
      an answer. Then the client compresses with zlib's ``Z_RLE`` strategy, whose matches always
      point one byte back (zlib documents this), so the stream is valid for any window; it
      compresses text poorly, but the connection works.
    * Factories reject a window of 8 bits for the side that compresses (:exc:`ValueError`).

Decompression bombs
    A few kilobytes of DEFLATE can expand to gigabytes. :meth:`PerMessageDeflate.decode` asks
    zlib for at most one byte more than the message may still hold, so a frame that inflates
    beyond the limit fails with :exc:`~syncws.exceptions.PayloadTooBig` (close code 1009) after
    producing at most ``max_size + 1`` bytes, whatever its size once inflated.

Uncompressed messages
    RFC 7692 §6 lets an endpoint send any message uncompressed: its first frame has RSV1
    clear, and it does not touch the compression context, so it may be sent even with context
    takeover. :class:`PerMessageDeflate` sends a message uncompressed when it is shorter than
    ``min_size`` (by default :data:`DEFAULT_MIN_SIZE` bytes, where compressing stops paying),
    or when :meth:`PerMessageDeflate.skip_next_message` was called before it. The latter
    matters for security: compressing a secret together with data an attacker controls, in one
    message or in one context, can reveal the secret through the size of the output (see the
    security considerations of RFC 7692).

    It also sends a message uncompressed when deflate does not make it smaller (random or
    already compressed data grows: a MiB of random bytes by about 0.25%), so that a message
    that fits in the peer's ``max_size`` is never refused because of compression; the first
    frame of a fragmented message decides for all its frames, and ``min_size=0`` turns this
    off with the rest. With context takeover, the compressor took that message in, and the
    peer's window did not: the compressor is replaced by one whose window is preset (zlib's
    ``zdict``) with the last bytes the peer's window holds, which the extension keeps for this
    (up to twice the window: 8 KiB at the server's defaults). On small compressible messages,
    keeping them costs about 0.2 µs per message, where copying the compressor state before
    each message would cost 1.5 µs at the server's defaults and 27 µs with 15-bit windows and
    memLevel 8.

Parameter values
    A parameter value may be written as a quoted string (RFC 6455 §9.1); the header parser
    unquotes it, so ``client_max_window_bits="15"`` is accepted as ``15``. Any value other than
    the integers 8 to 15 written without leading zeros (RFC 7692 §7.1.2) is rejected.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from ...exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from ..frames import Frame, Opcode
from .base import ClientExtensionFactory, Extension, ExtensionParameter, ServerExtensionFactory

__all__ = [
    "DEFAULT_COMPRESS_SETTINGS",
    "DEFAULT_MIN_SIZE",
    "ClientPerMessageDeflateFactory",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
    "enable_client_permessage_deflate",
    "enable_server_permessage_deflate",
]

_NAME = "permessage-deflate"

DEFAULT_COMPRESS_SETTINGS: Mapping[str, int] = MappingProxyType({"memLevel": 5})
"""zlib settings used when none are given: memLevel 5 and zlib's default level (6).

memLevel 5 needs 16 KiB for the hash table and the pending output instead of 128 KiB at
zlib's default of 8; on JSON text it compresses 1% worse and about as fast.
"""

DEFAULT_MIN_SIZE = 32
"""Messages shorter than this many bytes are sent uncompressed, when complete in one frame.

On short JSON messages, deflate without context takeover makes messages below about 32 bytes
larger, and with context takeover it saves at most a couple dozen bytes: less than the TCP/IP
headers of the segment that carries them, for a few microseconds of CPU on each side.
"""

# RFC 7692 §7.2.1: the sender removes these four bytes, the end of an empty stored block, from
# the end of each compressed message; §7.2.2: the receiver appends them again.
_EMPTY_BLOCK_TAIL = b"\x00\x00\xff\xff"
_AFTER_FINAL_BLOCK = (b"\x00" + _EMPTY_BLOCK_TAIL, _EMPTY_BLOCK_TAIL, b"")
_AFTER_FINAL_BLOCK_UNTIL_LAST_FRAME = (b"", b"\x00")

# RFC 7692 §7.1.2: window sizes are integers from 8 to 15, in decimal without leading zeros.
# Matching the exact strings rejects "010", "+9", " 9" and the like.
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}

# zlib.compressobj() arguments that may be configured. wbits is derived from the negotiation;
# method has a single valid value; zdict would need the same preset dictionary on both sides,
# which RFC 7692 has no way to agree on.
_COMPRESS_SETTINGS = frozenset({"level", "memLevel", "strategy"})


def _check_compress_settings(compress_settings: Mapping[str, int] | None) -> dict[str, int]:
    """Return a copy of the settings, or the defaults, after checking that zlib takes them."""
    if compress_settings is None:
        return dict(DEFAULT_COMPRESS_SETTINGS)
    settings = dict(compress_settings)
    unknown = sorted(settings.keys() - _COMPRESS_SETTINGS)
    if unknown:
        raise ValueError(
            f"compress_settings may only set level, memLevel and strategy, not {', '.join(unknown)}"
        )
    # Fail now rather than with the first message: zlib checks the values.
    _check_with_zlib(tuple(sorted(settings.items())))
    return settings


@functools.lru_cache(maxsize=16)
def _check_with_zlib(settings: tuple[tuple[str, int], ...]) -> None:
    # A compressor allocates about 256 KiB that it zeroes in part: each factory and each
    # connection checks its settings, and a server has few distinct ones, so zlib sees each
    # once rather than once per handshake.
    _compressobj(-9, dict(settings))


def _compressobj(wbits: int, settings: Mapping[str, int], zdict: bytes = b"") -> zlib._Compress:
    level = settings.get("level", zlib.Z_DEFAULT_COMPRESSION)
    memory = settings.get("memLevel", zlib.DEF_MEM_LEVEL)
    strategy = settings.get("strategy", zlib.Z_DEFAULT_STRATEGY)
    if zdict:
        return zlib.compressobj(level, zlib.DEFLATED, wbits, memory, strategy, zdict)
    return zlib.compressobj(level, zlib.DEFLATED, wbits, memory, strategy)


def _check_window_bits(name: str, bits: int | None, smallest: int) -> None:
    if bits is None:
        return
    if isinstance(bits, bool) or not isinstance(bits, int) or not smallest <= bits <= 15:
        hint = " (zlib cannot compress with an 8-bit window)" if bits == 8 else ""
        raise ValueError(f"{name} must be an integer from {smallest} to 15{hint}")


def _check_min_size(min_size: int) -> None:
    if min_size < 0:
        raise ValueError("min_size must be 0 or more")


class PerMessageDeflate(Extension):
    """The permessage-deflate extension on one connection, once negotiated.

    "Local" is this endpoint, which compresses the messages it sends; "remote" is the peer,
    whose messages this endpoint decompresses.

    Args:
        remote_no_context_takeover: the peer starts each message with an empty window, so the
            decompressor is reset between messages.
        local_no_context_takeover: this endpoint must start each message with an empty window.
        remote_max_window_bits: the largest window the peer compresses with, 8 to 15.
        local_max_window_bits: the largest window this endpoint may compress with, 8 to 15.
        compress_settings: ``level``, ``memLevel`` and ``strategy`` for
            :func:`zlib.compressobj`; ``None`` for :data:`DEFAULT_COMPRESS_SETTINGS`.
        min_size: send complete messages shorter than this many bytes uncompressed; 0 to
            compress every message, even those that deflate makes larger.

    Raises:
        ValueError: a window size or a setting is invalid.
    """

    name = _NAME

    # Slots keep an idle connection small: every compressed connection holds one. __dict__
    # stays, made only when an attribute outside these is set.
    __slots__ = (
        "__dict__",
        "_decoder",
        "_decoder_wbits",
        "_decoding",
        "_encoder",
        "_encoder_settings",
        "_encoder_wbits",
        "_encoding",
        "_history",
        "_history_size",
        "_skip_next",
        "_window",
        "compress_settings",
        "local_max_window_bits",
        "local_no_context_takeover",
        "min_size",
        "remote_max_window_bits",
        "remote_no_context_takeover",
    )

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_settings: Mapping[str, int] | None = None,
        *,
        min_size: int = DEFAULT_MIN_SIZE,
    ) -> None:
        _check_window_bits("remote_max_window_bits", remote_max_window_bits, 8)
        _check_window_bits("local_max_window_bits", local_max_window_bits, 8)
        _check_min_size(min_size)
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.compress_settings = _check_compress_settings(compress_settings)
        self.min_size = min_size

        # A larger window decompresses whatever a smaller one does. For 256 bytes more, a
        # 9-bit window also understands peers that compress with 9 bits when 8 were agreed
        # (see the module documentation).
        self._decoder_wbits = -max(9, remote_max_window_bits)
        # The settings as given, unless the window calls for a change: then a copy.
        self._encoder_settings = self.compress_settings
        if local_max_window_bits == 8:
            # zlib cannot compress with an 8-bit window. With Z_RLE every match is one byte
            # back and Z_HUFFMAN_ONLY makes no matches, so either is valid for any window.
            if self._encoder_settings.get("strategy") not in (zlib.Z_RLE, zlib.Z_HUFFMAN_ONLY):
                self._encoder_settings = {**self.compress_settings, "strategy": zlib.Z_RLE}
            self._encoder_wbits = -9
        else:
            self._encoder_wbits = -local_max_window_bits

        # zlib objects are created on first use and dropped when a message ends without
        # context takeover: a connection holds no zlib memory while it has no context to keep.
        self._decoder: zlib._Decompress | None = None
        self._encoder: zlib._Compress | None = None
        # With context takeover, the last bytes of the messages sent compressed: the peer's
        # window. A message that deflate does not make smaller is sent as it is, and the
        # encoder, which took it in, is replaced by one that starts from this window.
        self._window = 1 << -self._encoder_wbits
        self._history: list[bytes] = []
        self._history_size = 0
        # Whether the message being received, or sent, is compressed.
        self._decoding = False
        self._encoding = False
        self._skip_next = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}("
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits})"
        )

    def skip_next_message(self) -> None:
        """Send the next message uncompressed (RFC 7692 §6).

        It applies to the next message that starts after the call, with all its frames; a
        fragmented message already being sent is not affected.
        """
        self._skip_next = True

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Decompress a frame of a compressed message; pass other frames through.

        Args:
            frame: the frame as received.
            max_size: how many bytes the current message may still hold once decompressed;
                ``None`` for no limit.

        Raises:
            PayloadTooBig: the frame decompresses to more than ``max_size`` bytes.
            ProtocolError: RSV1 is set on a control or continuation frame, or the compressed
                data is invalid.
        """
        opcode = frame.opcode
        if opcode is Opcode.CONT:
            # RFC 7692 §6: RSV1 is only meaningful on the first frame of a message.
            if frame.rsv1:
                raise ProtocolError("RSV1 set on a continuation frame")
            if not self._decoding:
                return frame
        elif opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.rsv1:
                return frame
            self._decoding = True
        else:
            # RFC 7692 §6: control frames are never compressed.
            if frame.rsv1:
                raise ProtocolError(f"RSV1 set on a {opcode.name} frame")
            return frame

        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = zlib.decompressobj(wbits=self._decoder_wbits)
        data = frame.data
        if frame.fin:
            data += _EMPTY_BLOCK_TAIL
        # One byte more than allowed tells "exactly at the limit" from "over the limit", and
        # caps the work and memory a decompression bomb can cost.
        max_length = 0 if max_size is None else max(max_size, 0) + 1
        try:
            data = decoder.decompress(data, max_length)
        except zlib.error as exc:
            self._decoder = None
            raise ProtocolError(f"invalid compressed data: {exc}") from None
        if max_size is not None and (len(data) > max_size or decoder.unconsumed_tail):
            self._decoder = None
            raise PayloadTooBig(
                f"decompressed frame exceeds the {max_size} bytes left for its message"
            )
        # The peer may end its DEFLATE stream with a BFINAL block (RFC 7692 §7.2.3.4); what
        # follows is not decompressed, so it may only be the empty stored block that ends every
        # message: the byte with its header, then the four bytes appended above. Some senders
        # leave out the header byte; when the final block is that empty block, nothing follows.
        if decoder.eof and decoder.unused_data not in (
            _AFTER_FINAL_BLOCK if frame.fin else _AFTER_FINAL_BLOCK_UNTIL_LAST_FRAME
        ):
            self._decoder = None
            raise ProtocolError("data after the end of a compressed stream")

        if frame.fin:
            self._decoding = False
            # An ended stream cannot go on: the next message starts a new one.
            if self.remote_no_context_takeover or decoder.eof:
                self._decoder = None
        return Frame(opcode, data, frame.fin, False, frame.rsv2, frame.rsv3)

    def encode(self, frame: Frame) -> Frame:
        """Compress a data frame, unless its message is sent uncompressed.

        The first frame of a compressed message gets RSV1 set; its continuation frames are
        compressed with RSV1 clear; control frames pass through.
        """
        opcode = frame.opcode
        if opcode is Opcode.CONT:
            if not self._encoding:
                return frame
        elif opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            skip = self._skip_next or (frame.fin and len(frame.data) < self.min_size)
            self._skip_next = False
            if skip:
                return frame
        else:
            return frame

        encoder = self._encoder
        if encoder is None:
            encoder = self._encoder = _compressobj(self._encoder_wbits, self._encoder_settings)
        # A sync flush ends the output with an empty stored block at a byte boundary, so each
        # frame can be decompressed as soon as it arrives. zlib emits that block even after a
        # frame without data, since compress() comes first.
        data = encoder.compress(frame.data) + encoder.flush(zlib.Z_SYNC_FLUSH)
        if frame.fin:
            # RFC 7692 §7.2.1: remove the last four bytes of that block; the receiver puts them
            # back. An empty message leaves b"\x00", the start of the block.
            data = data[:-4]
        if (
            opcode is not Opcode.CONT
            and self.min_size
            and len(data) >= len(frame.data)
            and (frame.fin or frame.data)
        ):
            # Deflate does not make this message smaller (random or compressed data grows a
            # little): RFC 7692 §6 lets it go uncompressed, so that a message that fits in the
            # peer's max_size is never refused because of compression. The first frame, which
            # carries RSV1, decides for the whole message (an empty one tells nothing). The
            # peer's window does not get this message: the encoder, which took it in, starts
            # again from that window.
            self._rewind_encoder()
            return frame
        self._encoding = not frame.fin
        if self.local_no_context_takeover:
            if frame.fin:
                self._encoder = None
        else:
            # Remember what the peer's window gets; trimmed once it holds twice the window,
            # so that the common case costs an append.
            self._history.append(bytes(frame.data))
            self._history_size += len(frame.data)
            if self._history_size > 2 * self._window:
                self._history = [b"".join(self._history)[-self._window :]]
                self._history_size = len(self._history[0])
        return Frame(opcode, data, frame.fin, opcode is not Opcode.CONT, frame.rsv2, frame.rsv3)

    def _rewind_encoder(self) -> None:
        """Replace the encoder by one whose window is the peer's, before the last message."""
        if self.local_no_context_takeover or not self._history_size:
            self._encoder = None
        else:
            # A raw DEFLATE stream is a sequence of blocks, and the sync flush ended the last
            # one: a new compressor goes on where the old one stopped, its window preset with
            # what the peer's window holds.
            window = b"".join(self._history)[-self._window :]
            self._history = [window]
            self._history_size = len(window)
            self._encoder = _compressobj(self._encoder_wbits, self._encoder_settings, window)


class _Params(NamedTuple):
    """The parameters of an offer or an answer, checked (RFC 7692 §7.1)."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int | None
    client_max_window_bits: int | None
    has_client_max_window_bits: bool
    """Whether ``client_max_window_bits`` is present, with or without a value."""


def _window_bits(name: str, value: str | None) -> int:
    if value is None or value not in _WINDOW_BITS:
        raise InvalidParameterValue(name, value)
    return _WINDOW_BITS[value]


def _parse_params(params: Sequence[ExtensionParameter], *, answer: bool) -> _Params:
    """Check parameters and extract their values.

    Args:
        params: the parameters of one offer or answer.
        answer: ``True`` for a server's answer, where ``client_max_window_bits`` needs a value.

    Raises:
        InvalidParameterName: a parameter is unknown.
        DuplicateParameter: a parameter appears twice (RFC 7692 §7.1).
        InvalidParameterValue: a parameter has a value where none is allowed, none where one is
            needed, or a value that is not a window size.
    """
    seen: set[str] = set()
    server_no_context_takeover = client_no_context_takeover = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    has_client_max_window_bits = False
    for name, value in params:
        if name not in (
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ):
            raise InvalidParameterName(name)
        if name in seen:
            raise DuplicateParameter(name)
        seen.add(name)
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            # RFC 7692 §7.1.1: these parameters have no value.
            if value is not None:
                raise InvalidParameterValue(name, value)
            if name == "server_no_context_takeover":
                server_no_context_takeover = True
            else:
                client_no_context_takeover = True
        elif name == "server_max_window_bits":
            # RFC 7692 §7.1.2.1: always with a value.
            server_max_window_bits = _window_bits(name, value)
        else:
            # RFC 7692 §7.1.2.2: a client may offer it without a value; an answer has one.
            has_client_max_window_bits = True
            if value is not None or answer:
                client_max_window_bits = _window_bits(name, value)
    return _Params(
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
        has_client_max_window_bits,
    )


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """Offers permessage-deflate in a client's handshake.

    Args:
        server_no_context_takeover: ask the server to compress each message on its own
            (RFC 7692 §7.1.1.1); fail the handshake if it does not agree.
        client_no_context_takeover: compress each message on its own, and tell the server
            (RFC 7692 §7.1.1.2).
        server_max_window_bits: ask the server to compress with a window of at most this many
            bits, 8 to 15 (RFC 7692 §7.1.2.1); ``None`` not to ask.
        client_max_window_bits: tell the server it may limit the client's window
            (RFC 7692 §7.1.2.2): ``True`` to offer the parameter without a value, 9 to 15 to
            also promise a window of at most that many bits, ``None`` or ``False`` not to offer
            it.
        compress_settings: ``level``, ``memLevel`` and ``strategy`` for
            :func:`zlib.compressobj`; ``None`` for :data:`DEFAULT_COMPRESS_SETTINGS`.
        min_size: send complete messages shorter than this many bytes uncompressed; 0 to
            compress every message, even those that deflate makes larger.

    Raises:
        ValueError: a window size or a setting is invalid.
    """

    name = _NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | bool | None = True,
        compress_settings: Mapping[str, int] | None = None,
        *,
        min_size: int = DEFAULT_MIN_SIZE,
    ) -> None:
        _check_window_bits("server_max_window_bits", server_max_window_bits, 8)
        if client_max_window_bits is False:
            client_max_window_bits = None
        if client_max_window_bits is not True:
            _check_window_bits("client_max_window_bits", client_max_window_bits, 9)
        _check_min_size(min_size)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = _check_compress_settings(compress_settings)
        self.min_size = min_size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}("
            f"server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits})"
        )

    def get_request_params(self) -> list[ExtensionParameter]:
        """The parameters of the offer."""
        params: list[ExtensionParameter] = []
        if self.server_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            params.append(("server_max_window_bits", str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            params.append(("client_max_window_bits", None))
        elif self.client_max_window_bits is not None:
            params.append(("client_max_window_bits", str(self.client_max_window_bits)))
        return params

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> PerMessageDeflate:
        """Check the server's answer against the offer (RFC 7692 §7.1) and build the extension.

        Raises:
            DuplicateParameter: a parameter appears twice.
            InvalidParameterName: a parameter is unknown.
            InvalidParameterValue: a parameter has an invalid value.
            NegotiationError: the answer does not fit the offer, or the server accepted
                permessage-deflate twice.
        """
        if any(extension.name == _NAME for extension in accepted_extensions):
            raise NegotiationError("server accepted permessage-deflate twice")
        answer = _parse_params(params, answer=True)

        # RFC 7692 §7.1.1.1: a server that accepts this offer must agree to it.
        if self.server_no_context_takeover and not answer.server_no_context_takeover:
            raise NegotiationError("server ignored server_no_context_takeover")

        # RFC 7692 §7.1.2.1: a server that accepts this offer answers with the same window
        # or a smaller one.
        if self.server_max_window_bits is not None:
            if answer.server_max_window_bits is None:
                raise NegotiationError("server ignored server_max_window_bits")
            if answer.server_max_window_bits > self.server_max_window_bits:
                raise NegotiationError(
                    f"server_max_window_bits={answer.server_max_window_bits} is larger than "
                    f"offered ({self.server_max_window_bits})"
                )

        # RFC 7692 §7.1.2.2: the server may limit the client's window only if the client
        # offered the parameter, and not beyond a value it gave.
        offered = self.client_max_window_bits
        local_max_window_bits = 15 if offered is None or offered is True else offered
        if answer.client_max_window_bits is not None:
            if offered is None:
                raise NegotiationError("client_max_window_bits was not offered")
            if answer.client_max_window_bits > local_max_window_bits:
                raise NegotiationError(
                    f"client_max_window_bits={answer.client_max_window_bits} is larger than "
                    f"offered ({local_max_window_bits})"
                )
            local_max_window_bits = answer.client_max_window_bits

        return PerMessageDeflate(
            remote_no_context_takeover=answer.server_no_context_takeover,
            local_no_context_takeover=(
                answer.client_no_context_takeover or self.client_no_context_takeover
            ),
            remote_max_window_bits=answer.server_max_window_bits or 15,
            local_max_window_bits=local_max_window_bits,
            compress_settings=self.compress_settings,
            min_size=self.min_size,
        )


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """Answers offers of permessage-deflate in a server's handshake.

    The defaults limit both windows to 12 bits, so that a connection needs about 49 KiB of
    zlib memory instead of about 300 KiB (see the module documentation).

    Args:
        server_no_context_takeover: compress each message on its own, and tell the client
            (RFC 7692 §7.1.1.1).
        client_no_context_takeover: require the client to compress each message on its own
            (RFC 7692 §7.1.1.2).
        server_max_window_bits: compress with a window of at most this many bits, 9 to 15,
            and tell the client; ``None`` for 15 bits, unless the client asks for less.
        client_max_window_bits: limit the client's window to this many bits, 8 to 15, when it
            offers ``client_max_window_bits``; ``None`` not to limit it.
        require_client_max_window_bits: decline offers without ``client_max_window_bits``,
            whose client might use a 15-bit window; needs ``client_max_window_bits``.
        compress_settings: ``level``, ``memLevel`` and ``strategy`` for
            :func:`zlib.compressobj`; ``None`` for :data:`DEFAULT_COMPRESS_SETTINGS`.
        min_size: send complete messages shorter than this many bytes uncompressed; 0 to
            compress every message, even those that deflate makes larger.

    Raises:
        ValueError: a window size or a setting is invalid.
    """

    name = _NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = 12,
        client_max_window_bits: int | None = 12,
        *,
        require_client_max_window_bits: bool = False,
        compress_settings: Mapping[str, int] | None = None,
        min_size: int = DEFAULT_MIN_SIZE,
    ) -> None:
        _check_window_bits("server_max_window_bits", server_max_window_bits, 9)
        _check_window_bits("client_max_window_bits", client_max_window_bits, 8)
        if require_client_max_window_bits and client_max_window_bits is None:
            raise ValueError("require_client_max_window_bits needs client_max_window_bits")
        _check_min_size(min_size)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.require_client_max_window_bits = require_client_max_window_bits
        self.compress_settings = _check_compress_settings(compress_settings)
        self.min_size = min_size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}("
            f"server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits}, "
            f"require_client_max_window_bits={self.require_client_max_window_bits})"
        )

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        """Check one offer and answer it (RFC 7692 §7.1).

        Raises:
            DuplicateParameter: a parameter appears twice.
            InvalidParameterName: a parameter is unknown.
            InvalidParameterValue: a parameter has an invalid value.
            NegotiationError: the offer cannot be accepted: it asks for an 8-bit server window,
                it lacks a required ``client_max_window_bits``, or permessage-deflate was
                accepted already.
        """
        if any(extension.name == _NAME for extension in accepted_extensions):
            raise NegotiationError("permessage-deflate was accepted already")
        offer = _parse_params(params, answer=False)
        answer: list[ExtensionParameter] = []

        # RFC 7692 §7.1.1.1: accepting a request for server_no_context_takeover means
        # answering with it; the server may also answer with it unasked.
        server_no_context_takeover = (
            offer.server_no_context_takeover or self.server_no_context_takeover
        )
        if server_no_context_takeover:
            answer.append(("server_no_context_takeover", None))

        # RFC 7692 §7.1.1.2: the server may require it; a client that offers it keeps to it.
        client_no_context_takeover = (
            offer.client_no_context_takeover or self.client_no_context_takeover
        )
        if client_no_context_takeover:
            answer.append(("client_no_context_takeover", None))

        # RFC 7692 §7.1.2.1: answer a requested window with the same or a smaller one; the
        # server may also announce its window unasked.
        server_max_window_bits = self.server_max_window_bits
        if offer.server_max_window_bits is not None:
            server_max_window_bits = min(offer.server_max_window_bits, server_max_window_bits or 15)
            if server_max_window_bits == 8:
                raise NegotiationError("cannot compress with an 8-bit window")
        if server_max_window_bits is not None:
            answer.append(("server_max_window_bits", str(server_max_window_bits)))

        # RFC 7692 §7.1.2.2: the server may limit the client's window only if the client offered
        # client_max_window_bits; a value in the offer is already a promise by the client.
        client_max_window_bits = offer.client_max_window_bits or 15
        if not offer.has_client_max_window_bits:
            if self.require_client_max_window_bits:
                raise NegotiationError("client_max_window_bits is required")
        elif self.client_max_window_bits is not None:
            client_max_window_bits = min(client_max_window_bits, self.client_max_window_bits)
            answer.append(("client_max_window_bits", str(client_max_window_bits)))

        extension = PerMessageDeflate(
            remote_no_context_takeover=client_no_context_takeover,
            local_no_context_takeover=server_no_context_takeover,
            remote_max_window_bits=client_max_window_bits,
            local_max_window_bits=server_max_window_bits or 15,
            compress_settings=self.compress_settings,
            min_size=self.min_size,
        )
        return answer, extension


def enable_client_permessage_deflate(
    extensions: Sequence[ClientExtensionFactory] | None,
) -> list[ClientExtensionFactory]:
    """Add permessage-deflate with the default settings, unless it is there already.

    Returns:
        A new list: ``extensions`` followed, when none of them is named permessage-deflate,
        by a :class:`ClientPerMessageDeflateFactory` with its defaults.
    """
    factories = list(extensions or ())
    if not any(factory.name == _NAME for factory in factories):
        factories.append(ClientPerMessageDeflateFactory())
    return factories


def enable_server_permessage_deflate(
    extensions: Sequence[ServerExtensionFactory] | None,
) -> list[ServerExtensionFactory]:
    """Add permessage-deflate with the default settings, unless it is there already.

    Returns:
        A new list: ``extensions`` followed, when none of them is named permessage-deflate,
        by a :class:`ServerPerMessageDeflateFactory` with its defaults.
    """
    factories = list(extensions or ())
    if not any(factory.name == _NAME for factory in factories):
        factories.append(ServerPerMessageDeflateFactory())
    return factories
