"""An incremental byte buffer that parsers read from as if it were a blocking stream.

Parsers are generators: ``line = yield from reader.read_line(limit)`` suspends (yields ``None``)
until enough bytes have been fed, so a parser reads like blocking code and works on any split of
the input. Every read is bounded by a limit, and scanning never restarts from the beginning of
the buffer, so hostile input costs linear time.
"""

from __future__ import annotations

from collections.abc import Generator

__all__ = ["StreamReader"]


class StreamReader:
    """A buffer fed with bytes and read by generator-based parsers.

    The buffer is public (``buffer``) so that the frame parser, the hot path, can read from it
    directly without a generator round trip per frame.
    """

    __slots__ = ("_scanned", "buffer", "eof")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        # How many bytes of the buffer read_line() already searched for b"\n".
        self._scanned = 0

    def feed_data(self, data: bytes) -> None:
        """Append bytes to the buffer.

        Raises:
            EOFError: if :meth:`feed_eof` was called.
        """
        if self.eof:
            raise EOFError("stream ended")
        self.buffer += data

    def feed_eof(self) -> None:
        """Mark the end of the stream.

        Raises:
            EOFError: if it was already called.
        """
        if self.eof:
            raise EOFError("stream ended")
        self.eof = True

    def read_line(self, limit: int) -> Generator[None, None, bytes]:
        """Read up to and including the next ``b"\\n"``.

        Args:
            limit: the longest line allowed, ``b"\\n"`` included.

        Raises:
            EOFError: if the stream ends before a line ends.
            RuntimeError: if no line ends within ``limit`` bytes.
        """
        while True:
            end = self.buffer.find(b"\n", self._scanned, limit)
            if end >= 0:
                self._scanned = 0
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return line
            self._scanned = min(len(self.buffer), limit)
            if len(self.buffer) >= limit:
                self._scanned = 0
                raise RuntimeError(f"line longer than {limit} bytes")
            if self.eof:
                self._scanned = 0
                raise EOFError(f"stream ends after {len(self.buffer)} bytes, before end of line")
            yield

    def read_exact(self, n: int) -> Generator[None, None, bytes]:
        """Read exactly ``n`` bytes.

        Raises:
            EOFError: if the stream ends before ``n`` bytes arrive.
        """
        while len(self.buffer) < n:
            if self.eof:
                raise EOFError(f"stream ends after {len(self.buffer)} bytes, expected {n} bytes")
            yield
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read_to_eof(self, limit: int) -> Generator[None, None, bytes]:
        """Read every byte until the end of the stream.

        Raises:
            RuntimeError: if more than ``limit`` bytes arrive.
        """
        while not self.eof:
            if len(self.buffer) > limit:
                raise RuntimeError(f"more than {limit} bytes before end of stream")
            yield
        if len(self.buffer) > limit:
            raise RuntimeError(f"more than {limit} bytes before end of stream")
        data = bytes(self.buffer)
        del self.buffer[:]
        return data

    def at_eof(self) -> Generator[None, None, bool]:
        """Wait until a byte arrives or the stream ends; tell which."""
        while not self.buffer:
            if self.eof:
                return True
            yield
        return False
