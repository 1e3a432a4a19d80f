"""An incremental byte buffer that parsers read from as if it were a blocking stream.

Parsers are generators: ``line = yield from reader.read_line(limit)`` suspends (yields ``None``)
until enough bytes have been fed, so a parser reads like blocking code and works on any split of
the input. Every read is bounded by a limit, and scanning never restarts from the beginning of
the buffer, so hostile input costs linear time.
"""

from __future__ import annotations

from collections.abc import Generator

__all__ = ["StreamReader"]

# A buffer that held more than this is let go of as soon as everything in it was read, rather
# than kept at its high-water size while the connection waits for its next message.
_KEEP_SIZE = 65536


class StreamReader:
    """A buffer fed with bytes and read by generator-based parsers.

    Reading never resizes the buffer: it moves :attr:`pos` forward, and the bytes read are
    dropped when more bytes are fed. So another thread that holds a view of the buffer (a
    memory profiler walking ``gc.get_objects()`` can catch a short-lived ``memoryview`` of
    it) never makes a read fail; a feed that finds the buffer viewed goes on with a copy of
    what is left unread, leaving the old buffer to its viewer.

    :attr:`data` and :attr:`pos` are public so that the frame parser, the hot path, can read
    from them directly without a generator round trip per frame.
    """

    __slots__ = ("_scanned", "data", "eof", "pos")

    def __init__(self) -> None:
        self.data = bytearray()
        """The bytes fed; those before :attr:`pos` were read already. :meth:`feed_data` may
        replace it with another buffer: read it again after each ``yield``."""
        self.pos = 0
        """Where the bytes not read yet start in :attr:`data`."""
        self.eof = False
        # How many bytes after pos read_line() already searched for b"\n".
        self._scanned = 0

    @property
    def buffer(self) -> bytes:
        """A copy of the bytes fed and not read yet."""
        return bytes(self.data[self.pos :])

    def __len__(self) -> int:
        """How many bytes were fed and not read yet."""
        return len(self.data) - self.pos

    def feed_data(self, data: bytes) -> None:
        """Append bytes to the buffer, dropping the bytes read before.

        Raises:
            EOFError: if :meth:`feed_eof` was called.
        """
        if self.eof:
            raise EOFError("stream ended")
        if self.pos:
            self._compact()
        try:
            self.data += data
        except BufferError:
            # Someone holds a view of it: leave it to them, go on with a copy.
            self.data = self.data + data

    def _compact(self) -> None:
        """Drop the bytes read."""
        pos, self.pos = self.pos, 0
        try:
            del self.data[:pos]
        except BufferError:
            self.data = self.data[pos:]

    def advance(self, pos: int) -> None:
        """Move :attr:`pos` to ``pos``, past bytes read; let go of the buffer when it was large
        and everything in it was read.

        A connection that received a large message then holds no buffer of its size while it
        waits: the memory goes back to the allocator at once, not when the next bytes come.
        """
        data = self.data
        if pos == len(data) and pos > _KEEP_SIZE:
            self.pos = 0
            try:
                del data[:]
            except BufferError:
                self.data = bytearray()
        else:
            self.pos = pos

    def feed_eof(self) -> None:
        """Mark the end of the stream.

        Raises:
            EOFError: if it was already called.
        """
        if self.eof:
            raise EOFError("stream ended")
        self.eof = True

    def skip(self) -> None:
        """Drop every byte fed and not read yet, and let go of the memory they took."""
        self.pos = 0
        try:
            del self.data[:]
        except BufferError:
            self.data = bytearray()

    def read_line(self, limit: int) -> Generator[None, None, bytes]:
        """Read up to and including the next ``b"\\n"``.

        Args:
            limit: the longest line allowed, ``b"\\n"`` included.

        Raises:
            EOFError: if the stream ends before a line ends.
            RuntimeError: if no line ends within ``limit`` bytes.
        """
        while True:
            pos = self.pos
            end = self.data.find(b"\n", pos + self._scanned, pos + limit)
            if end >= 0:
                self._scanned = 0
                self.pos = end + 1
                return bytes(self.data[pos : end + 1])
            available = len(self)
            self._scanned = min(available, limit)
            if available >= limit:
                self._scanned = 0
                raise RuntimeError(f"line longer than {limit} bytes")
            if self.eof:
                self._scanned = 0
                raise EOFError(f"stream ends after {available} bytes, before end of line")
            yield

    def read_exact(self, n: int) -> Generator[None, None, bytes]:
        """Read exactly ``n`` bytes.

        Raises:
            EOFError: if the stream ends before ``n`` bytes arrive.
        """
        while len(self) < n:
            if self.eof:
                raise EOFError(f"stream ends after {len(self)} bytes, expected {n} bytes")
            yield
        pos = self.pos
        self.pos = pos + n
        return bytes(self.data[pos : pos + n])

    def read_to_eof(self, limit: int) -> Generator[None, None, bytes]:
        """Read every byte until the end of the stream.

        Raises:
            RuntimeError: if more than ``limit`` bytes arrive.
        """
        while not self.eof:
            if len(self) > limit:
                raise RuntimeError(f"more than {limit} bytes before end of stream")
            yield
        if len(self) > limit:
            raise RuntimeError(f"more than {limit} bytes before end of stream")
        data = self.buffer
        self.skip()
        return data

    def at_eof(self) -> Generator[None, None, bool]:
        """Wait until a byte arrives or the stream ends; tell which."""
        while len(self.data) <= self.pos:
            if self.eof:
                return True
            yield
        return False
