"""An incremental byte buffer that parsers read from as if it were a blocking stream.

Parsers are generators: ``line = yield from reader.read_line(limit)`` suspends (yields ``None``)
until enough bytes have been fed, so a parser reads like blocking code and works on any split of
the input. Every read is bounded by a limit, and scanning never restarts from the beginning of
the buffer, so hostile input costs linear time.

Bytes come in two ways: :meth:`StreamReader.feed_data` copies bytes in, and
:meth:`StreamReader.get_buffer` lends free space at the end of the buffer for the socket to
write into directly (``recv_into()``), which :meth:`StreamReader.buffer_updated` then counts.
The second way costs no allocation per read: a connection reads into one buffer, sized to the
frame it is reading when the parser knows its length. A parser can also have the next bytes
go to a buffer of its own (:meth:`StreamReader.start_block`): a large payload is then read
straight into the object that will hold it, and never copied out of the stream's buffer.
"""

from __future__ import annotations

from collections.abc import Generator

__all__ = ["StreamReader"]

# An empty buffer larger than this, and more than twice what the next read asks for, is let
# go of rather than kept while the connection waits for its next message.
_IDLE_SIZE = 4096

# A buffer larger than this is let go of as soon as everything in it was read.
_KEEP_SIZE = 65536

# The most that one call to get_buffer() allocates at once for a frame whose length the
# parser announced (want): a frame of the default max_size and its header. A longer frame's
# buffer grows by doubling as its bytes arrive, so that a hostile length costs memory only as
# fast as bytes come.
_WANT_AT_ONCE = 2**20 + 14


class StreamReader:
    """A buffer fed with bytes and read by generator-based parsers.

    The bytes not read yet are ``data[pos:end]``. Reading moves :attr:`pos` forward; the
    buffer is never resized in place, only replaced by another (when it grows, or when it is
    let go of), so another thread that holds a view of it (a memory profiler walking
    ``gc.get_objects()`` can catch a short-lived ``memoryview`` of it) never makes a read or
    a feed fail.

    :attr:`data`, :attr:`pos` and :attr:`end` are public so that the frame parser, the hot
    path, can read from them directly without a generator round trip per frame.
    """

    __slots__ = (
        "_block",
        "_lent",
        "_lent_at",
        "_scanned",
        "_streaming",
        "block_filled",
        "data",
        "end",
        "eof",
        "pos",
        "want",
    )

    def __init__(self) -> None:
        self.data = bytearray()
        """The buffer; bytes ``pos:end`` were fed and not read yet, the rest is free space.
        Feeding may replace it with another buffer: read it again after each ``yield``."""
        self.pos = 0
        """Where the bytes not read yet start in :attr:`data`."""
        self.end = 0
        """Where the bytes not read yet end in :attr:`data`."""
        self.want = 0
        """How many bytes from :attr:`pos` the parser needs before it can go on, when it
        knows (the length of the frame it is reading); 0 otherwise. :meth:`get_buffer` makes
        room for them at once, rather than growing the buffer read after read."""
        self.eof = False
        # How many bytes after pos read_line() already searched for b"\n".
        self._scanned = 0
        # The view that get_buffer() lent, and where it starts in data.
        self._lent: memoryview | None = None
        self._lent_at = 0
        # The last view lent was filled: more is coming.
        self._streaming = False
        # A view of the block that start_block() began, where bytes go before data.
        self._block: memoryview | None = None
        self.block_filled = 0
        """How many bytes of the block that :meth:`start_block` began were written."""

    @property
    def buffer(self) -> bytes:
        """A copy of the bytes fed and not read yet."""
        return bytes(self.data[self.pos : self.end])

    def __len__(self) -> int:
        """How many bytes were fed and not read yet."""
        return self.end - self.pos

    def _room(self, size: int) -> None:
        """Make room for at least ``size`` bytes after :attr:`end`, and for :attr:`want`."""
        data = self.data
        pos = self.pos
        unread = self.end - pos
        needed = unread + size
        want = self.want
        if want > needed:
            needed = min(want, max(needed, _WANT_AT_ONCE, 2 * len(data)))
        if pos + needed <= len(data):
            return
        if needed <= len(data):
            # Enough room once the bytes read are dropped: move what is left to the front.
            if unread:
                view = memoryview(data)
                view[:unread] = view[pos : self.end]
                view.release()
        else:
            new = bytearray(needed)
            if unread:
                new[:unread] = memoryview(data)[pos : self.end]
            self.data = new
        self.pos = 0
        self.end = unread

    def feed_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes to the buffer.

        Raises:
            EOFError: if :meth:`feed_eof` was called.
        """
        if self.eof:
            raise EOFError("stream ended")
        size = len(data)
        if not size:
            return
        block = self._block
        if block is not None:
            filled = self.block_filled
            taken = min(len(block) - filled, size)
            if taken:
                block[filled : filled + taken] = memoryview(data)[:taken]
                self.block_filled = filled + taken
                if taken == size:
                    return
                data = memoryview(data)[taken:]
                size -= taken
        self._room(size)
        end = self.end
        self.data[end : end + size] = data
        self.end = end + size

    def get_buffer(self, size: int) -> memoryview:
        """Lend the free space at the end of the buffer, for bytes to be written into it
        directly; :meth:`buffer_updated` says how many were.

        The view holds at least ``size`` bytes if the last one lent was filled (more is
        coming), otherwise at least 4 KiB (the connection waits for its next message, and
        holds little while it waits). When the parser announced what it needs (:attr:`want`,
        the length of a frame), it is large enough for all of it, so that a large frame takes
        one buffer of its size, filled by the socket, instead of one allocation per read.
        While a block is read (:meth:`start_block`), the view is what is left of the block,
        whatever ``size`` is: a read never goes past it.

        Raises:
            EOFError: if :meth:`feed_eof` was called.
        """
        if self.eof:
            raise EOFError("stream ended")
        block = self._block
        if block is not None and self.block_filled < len(block):
            # A block is being read: lend what is left of it, however large.
            view = block[self.block_filled :]
            self._lent = view
            self._lent_at = self.block_filled
            return view
        if not self._streaming and size > _IDLE_SIZE:
            size = _IDLE_SIZE
        if self.end == self.pos:
            # Nothing is waiting to be read: an idle connection keeps a small buffer only.
            self.pos = self.end = 0
            if len(self.data) > _IDLE_SIZE and len(self.data) > 2 * max(size, self.want):
                self.data = bytearray()
        start = self.end
        if len(self.data) - start < size or self.want:
            self._room(size)
            start = self.end
        view = memoryview(self.data)[start:]
        self._lent = view
        self._lent_at = start
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """Count ``nbytes`` written at the start of the view that :meth:`get_buffer` lent.

        The view is released. If the buffer changed meanwhile (:meth:`skip` ran in another
        thread, say), the bytes are copied from the view instead.

        Raises:
            RuntimeError: no view was lent, or ``nbytes`` is more than it holds.
        """
        view = self._lent
        if view is None:
            raise RuntimeError("buffer_updated() without get_buffer()")
        self._lent = None
        try:
            if not 0 <= nbytes <= len(view):
                raise RuntimeError(f"{nbytes} bytes written in a buffer of {len(view)}")
            self._streaming = nbytes == len(view)
            block = self._block
            if view.obj is self.data and self.end == self._lent_at and not self.eof:
                self.end += nbytes
            elif (
                block is not None
                and view.obj is block.obj
                and self.block_filled == self._lent_at
                and not self.eof
            ):
                self.block_filled += nbytes
            elif nbytes:
                self.feed_data(view[:nbytes])
        finally:
            view.release()

    def let_go(self) -> None:
        """Let go of the buffer if nothing in it waits to be read: the connection waits long
        for its next bytes, and holds no buffer meanwhile. The next :meth:`get_buffer` makes
        a new one."""
        if self.end == self.pos and self._block is None and self._lent is None and self.data:
            self.pos = self.end = 0
            self._scanned = 0
            self.data = bytearray()

    def advance(self, pos: int) -> None:
        """Move :attr:`pos` to ``pos``, past bytes read."""
        self.pos = pos
        if pos == self.end and len(self.data) > _KEEP_SIZE and self._lent is None:
            # Everything was read: let go of a large buffer at once, not when the next
            # bytes come, so that a connection that received a large message holds no buffer
            # of its size while it waits.
            self.pos = self.end = 0
            self.data = bytearray()

    def start_block(self, block: memoryview, skip: int = 0) -> None:
        """Have the next ``len(block)`` bytes, after ``skip`` bytes from :attr:`pos`, written
        into ``block`` rather than into :attr:`data`, until :meth:`end_block`.

        The bytes already fed are moved there at once; :meth:`get_buffer` then lends what is
        left of the block, and :meth:`feed_data` fills it first. :attr:`block_filled` counts
        the bytes written into it; once it is full, bytes go to :attr:`data` again.

        Raises:
            RuntimeError: a block is being read already.
        """
        if self._block is not None:
            raise RuntimeError("a block is being read already")
        pos = self.pos + skip
        taken = max(0, min(self.end - pos, len(block)))
        if taken:
            block[:taken] = memoryview(self.data)[pos : pos + taken]
        self.pos = pos + taken
        if self.pos == self.end and self._lent is None:
            # The block takes the bytes that come next: hold no large buffer meanwhile.
            self.pos = self.end = 0
            if len(self.data) > _IDLE_SIZE:
                self.data = bytearray()
        self._block = block
        self.block_filled = taken

    def end_block(self) -> None:
        """Stop writing into the block that :meth:`start_block` began, whether it is full."""
        self._block = None
        self.block_filled = 0

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
        self.pos = self.end = 0
        self._scanned = 0
        self._block = None
        self.block_filled = 0
        if self.data:
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
            end = self.data.find(b"\n", pos + self._scanned, min(pos + limit, self.end))
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
        if len(self) < n:
            self.want = n
            try:
                while len(self) < n:
                    if self.eof:
                        raise EOFError(f"stream ends after {len(self)} bytes, expected {n} bytes")
                    yield
            finally:
                self.want = 0
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
        while self.end <= self.pos:
            if self.eof:
                return True
            yield
        return False
