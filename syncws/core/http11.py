"""The subset of HTTP/1.1 (RFC 9112) that the WebSocket opening handshake needs.

Parsers are generators over the reading methods of :class:`~syncws.core.streams.StreamReader`: they
suspend until enough bytes have arrived, so they work on any split of the input. Each line is
bounded by :data:`MAX_LINE`, the header section by :data:`MAX_HEADERS` and a response body by
:data:`MAX_BODY`; each line is scanned once when it arrives and checked once when it is complete,
so hostile input costs linear time.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exceptions import InvalidMessage, SecurityError
from .headers import Headers

__all__ = [
    "MAX_BODY",
    "MAX_HEADERS",
    "MAX_LINE",
    "Request",
    "Response",
]

MAX_LINE = 8192
"""The longest line accepted, CRLF included, in bytes."""

MAX_HEADERS = 128
"""The most header lines accepted in a request or a response."""

MAX_BODY = 2**20
"""The largest response body accepted by default, in bytes."""

ReadLine = Callable[[int], Generator[None, None, bytes]]
ReadExact = Callable[[int], Generator[None, None, bytes]]
ReadToEOF = Callable[[int], Generator[None, None, bytes]]

# RFC 9110 §5.6.2: token = 1*tchar; RFC 9110 §9.1: method = token.
_token_re = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT.
_version_re = re.compile(rb"HTTP/[0-9]\.[0-9]")
# RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ]. Its characters are a subset of
# visible ASCII; we check that much, which rules out anything that could break the message.
# RFC 9112 §3.2.2 asks servers to accept the absolute-form too, but RFC 6455 §4.1 has clients
# send the resource name, so a handshake in any other form is refused.
_target_re = re.compile(rb"/[\x21-\x7e]*")
_target_str_re = re.compile(r"/[\x21-\x7e]*")
# RFC 9110 §5.5: field-value characters are HTAB, SP, VCHAR and obs-text; RFC 9112 §4 allows
# the same in a reason phrase.
_field_value_re = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_reason_str_re = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def _read_line(read_line: ReadLine, error: str, status: int) -> Generator[None, None, bytes]:
    """Read one line and return it without its CRLF.

    Raises:
        SecurityError: with ``status`` if the line is longer than :data:`MAX_LINE`.
        InvalidMessage: if the line ends with a bare LF.
        EOFError: if the stream ends first.
    """
    try:
        line = yield from read_line(MAX_LINE)
    except RuntimeError:
        raise SecurityError(f"{error} longer than {MAX_LINE} bytes", status=status) from None
    # RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator, but a bare LF is
    # also a known way to make two parsers disagree on where a message ends; refuse it.
    if line[-2:-1] != b"\r":
        raise InvalidMessage(f"{error} ends with a bare LF")
    return line[:-2]


def _parse_headers(read_line: ReadLine) -> Generator[None, None, Headers]:
    """Read header lines up to the empty line that ends the header section (RFC 9112 §5).

    Raises:
        SecurityError: with status 431 if a line is too long or there are too many lines.
        InvalidMessage: with status 400 if a line is malformed.
        EOFError: if the stream ends first.
    """
    pairs: list[tuple[str, str]] = []
    while True:
        # _read_line(), inlined: this loop runs for every header of every handshake.
        try:
            line = yield from read_line(MAX_LINE)
        except RuntimeError:
            raise SecurityError(f"header line longer than {MAX_LINE} bytes", status=431) from None
        if line[-2:-1] != b"\r":
            raise InvalidMessage("header line ends with a bare LF")
        line = line[:-2]
        if not line:
            return Headers(pairs)
        if len(pairs) == MAX_HEADERS:
            raise SecurityError(f"more than {MAX_HEADERS} headers", status=431)
        # RFC 9112 §5.2: obs-fold is deprecated and a server may reject it with 400. RFC 9112
        # §2.2: whitespace before the first header line must be rejected or skipped. Both start
        # with whitespace; we reject them in requests and responses alike, since no WebSocket
        # peer has a reason to send them.
        if line[:1] in (b" ", b"\t"):
            raise InvalidMessage("obsolete line folding in headers")
        colon = line.find(b":")
        # RFC 9112 §5.1: no whitespace between name and colon; the token check rejects it.
        if colon < 0 or _token_re.fullmatch(line, 0, colon) is None:
            raise InvalidMessage(f"invalid header line: {line[:80]!r}")
        # RFC 9112 §5.1: field-line = field-name ":" OWS field-value OWS.
        raw_value = line[colon + 1 :].strip(b" \t")
        if _field_value_re.fullmatch(raw_value) is None:
            raise InvalidMessage(f"invalid header value: {line[:80]!r}")
        # The name is ASCII, as a token. RFC 9110 §5.5: obs-text in a value is opaque data;
        # latin-1 maps each byte to one character and back, and never fails.
        pairs.append((line[:colon].decode("ascii"), raw_value.decode("latin-1")))


class _CompactHeaders:
    """Lets an open connection keep its handshake's headers as one flat tuple of strings.

    A :class:`Headers` with its index takes about 1.5 KiB for the few headers of a handshake,
    kept for the connection's whole life; the strings alone take a fraction of that.
    :meth:`_compact_headers` swaps the headers for ``(name, value, name, value, ...)``, and
    the first read of ``headers`` builds an equal :class:`Headers` again and keeps it.
    """

    def _compact_headers(self) -> None:
        attributes = self.__dict__
        headers = attributes.get("headers")
        if type(headers) is Headers:
            attributes["_flat_headers"] = tuple(itertools.chain.from_iterable(headers.raw_items()))
            del attributes["headers"]

    if not TYPE_CHECKING:  # mypy would take every attribute for a Headers

        def __getattr__(self, name: str) -> Headers:
            # Called only when the attribute is missing: the headers were compacted.
            attributes = self.__dict__
            flat = attributes.get("_flat_headers") if name == "headers" else None
            if flat is None:
                # Another thread may have built them since this lookup missed them.
                if name == "headers" and "headers" in attributes:
                    return attributes["headers"]  # type: ignore[no-any-return]
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            pairs = zip(flat[::2], flat[1::2], strict=True)
            # Two threads may read at once: both build, and both return the one kept.
            headers = attributes.setdefault("headers", Headers(pairs))
            attributes.pop("_flat_headers", None)
            return headers


@dataclass
class Request(_CompactHeaders):
    """An HTTP request of the opening handshake: ``GET`` with no body (RFC 6455 §4.1).

    Attributes:
        path: the request target, in origin-form: ``/path?query``.
        headers: the header fields.
    """

    path: str
    headers: Headers = field(default_factory=Headers)

    @classmethod
    def parse(cls, read_line: ReadLine) -> Generator[None, None, Request]:
        """Parse a handshake request; a generator that returns the :class:`Request`.

        The body is never read: a handshake request has none, and the bytes that follow the
        header section are WebSocket frames.

        Args:
            read_line: reads a line of at most the given length, ``b"\\n"`` included, such as
                :meth:`StreamReader.read_line <syncws.core.streams.StreamReader.read_line>`.

        Raises:
            SecurityError: status 414 if the request line is longer than :data:`MAX_LINE`,
                status 431 if a header line is, or if there are more than :data:`MAX_HEADERS`.
            InvalidMessage: status 405 if the method is not ``GET``, status 505 if the
                version is not ``HTTP/1.1``, status 400 if the request is malformed or
                announces a body.
            EOFError: if the stream ends before the end of the header section.
        """
        # RFC 9112 §2.2 says a server SHOULD skip empty lines before the request line, for
        # clients that send a stray CRLF after a previous request's body. The handshake is the
        # first request on its connection, so there is no previous request; we do not skip.
        line = yield from _read_line(read_line, "request line", 414)
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version, single spaces.
        parts = line.split(b" ")
        if len(parts) != 3:
            raise InvalidMessage(f"invalid request line: {line[:80]!r}")
        method, target, version = parts
        if _token_re.fullmatch(method) is None:
            raise InvalidMessage(f"invalid method: {method[:80]!r}")
        if _target_re.fullmatch(target) is None:
            raise InvalidMessage(f"invalid request target: {target[:80]!r}")
        if version != b"HTTP/1.1":
            if _version_re.fullmatch(version) is None:
                raise InvalidMessage(f"invalid HTTP version: {version[:80]!r}")
            # RFC 6455 §4.1: the handshake is an HTTP/1.1 request.
            raise InvalidMessage(f"unsupported HTTP version: {version.decode()}", status=505)
        # RFC 6455 §4.1: the method of the handshake is GET; RFC 9110 §9.1 makes it
        # case-sensitive.
        if method != b"GET":
            raise InvalidMessage(f"unsupported method: {method.decode()}", status=405)
        headers = yield from _parse_headers(read_line)
        # A request that announces a body would leave that body on the connection, where it
        # would be read as WebSocket frames; and when two parsers frame the same request
        # differently, requests can be smuggled (RFC 9112 §6.3, §11.2). Refuse any
        # Transfer-Encoding, and any Content-Length other than a single "0", which some
        # clients send.
        if "Transfer-Encoding" in headers:
            raise InvalidMessage("request has a Transfer-Encoding header")
        if headers.get_all("Content-Length") not in ([], ["0"]):
            raise InvalidMessage("request has a body")
        return cls(target.decode("ascii"), headers)

    def serialize(self) -> bytes:
        """Return the request as bytes.

        Raises:
            ValueError: if the path is not in origin-form with visible ASCII characters only,
                or a header cannot be sent (see :meth:`~syncws.core.headers.Headers.serialize`).
                Nothing is produced then.
        """
        if _target_str_re.fullmatch(self.path) is None:
            raise ValueError(f"invalid request path: {self.path!r}")
        headers = self.headers.serialize()
        return f"GET {self.path} HTTP/1.1\r\n".encode("ascii") + headers


@dataclass
class Response(_CompactHeaders):
    """An HTTP response of the opening handshake.

    Attributes:
        status_code: the status code, 100 to 599.
        reason_phrase: the reason phrase, possibly empty.
        headers: the header fields.
        body: the body; empty for a ``101 Switching Protocols``.
    """

    status_code: int
    reason_phrase: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @classmethod
    def parse(
        cls,
        read_line: ReadLine,
        read_exact: ReadExact,
        read_to_eof: ReadToEOF,
        *,
        max_body: int = MAX_BODY,
        connect: bool = False,
    ) -> Generator[None, None, Response]:
        """Parse a handshake response; a generator that returns the :class:`Response`.

        Transfer codings are not supported: a server has no reason to send a chunked
        response to a handshake.

        Args:
            read_line: reads a line of at most the given length, ``b"\\n"`` included.
            read_exact: reads exactly the given number of bytes.
            read_to_eof: reads up to the end of the stream, at most the given number of bytes.
            max_body: the largest body accepted, in bytes.
            connect: the response is a proxy's answer to ``CONNECT``. ``HTTP/1.0`` is
                accepted too, as many proxies answer in it, and the body is not read: after
                a 2xx, the bytes that follow belong to the tunnel (RFC 9110 §9.3.6); after a
                refusal, the client gives up on the connection, and whatever came with the
                header section is left in the reader.

        Raises:
            SecurityError: if a line is longer than :data:`MAX_LINE`, there are more than
                :data:`MAX_HEADERS` headers, or the body is larger than ``max_body``.
            InvalidMessage: if the response is malformed or uses a transfer coding.
            EOFError: if the stream ends before the end of the header section or of a body
                whose length is given.
        """
        line = yield from _read_line(read_line, "status line", 431)
        # RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. Some
        # servers also leave out the second SP when there is no reason phrase.
        version, code, sep, reason = line[:8], line[9:12], line[12:13], line[13:]
        if version != b"HTTP/1.1" and not (connect and version == b"HTTP/1.0"):
            raise InvalidMessage(f"unsupported HTTP version: {version[:80]!r}")
        if (
            line[8:9] != b" "
            or not (len(code) == 3 and code.isdigit())
            or sep not in (b"", b" ")
            or _field_value_re.fullmatch(reason) is None
        ):
            raise InvalidMessage(f"invalid status line: {line[:80]!r}")
        status_code = int(code)
        # RFC 9110 §15: status codes range from 100 to 599.
        if not 100 <= status_code <= 599:
            raise InvalidMessage(f"invalid status code: {status_code}")
        headers = yield from _parse_headers(read_line)
        if connect:
            return cls(status_code, reason.decode("latin-1"), headers)
        body = yield from _read_body(status_code, headers, read_exact, read_to_eof, max_body)
        return cls(status_code, reason.decode("latin-1"), headers, body)

    def serialize(self) -> bytes:
        """Return the response as bytes.

        The body is sent as is; setting Content-Length is up to the caller.

        Raises:
            ValueError: if the status code is not 100 to 599, the reason phrase holds CR, LF,
                NUL or another control character other than HTAB, or a header cannot be sent
                (see :meth:`~syncws.core.headers.Headers.serialize`). Nothing is produced then.
        """
        code = self.status_code
        if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
            raise ValueError(f"invalid status code: {code!r}")
        if _reason_str_re.fullmatch(self.reason_phrase) is None:
            raise ValueError(f"invalid reason phrase: {self.reason_phrase!r}")
        headers = self.headers.serialize()
        status_line = f"HTTP/1.1 {code} {self.reason_phrase}\r\n".encode("latin-1")
        return status_line + headers + self.body


def _read_body(
    status_code: int,
    headers: Headers,
    read_exact: ReadExact,
    read_to_eof: ReadToEOF,
    max_body: int,
) -> Generator[None, None, bytes]:
    """Read a response body as RFC 9112 §6.3 frames it.

    Raises:
        SecurityError: if the body is larger than ``max_body``.
        InvalidMessage: if a transfer coding is used or Content-Length is invalid.
        EOFError: if the stream ends before Content-Length bytes.
    """
    # RFC 9112 §6.3 rule 1: a 1xx, 204 or 304 response ends with its header section, whatever
    # its headers say. After 101, the bytes that follow are WebSocket frames.
    if status_code < 200 or status_code in (204, 304):
        return b""
    # RFC 9112 §6.3 rule 3: Transfer-Encoding overrides Content-Length.
    if "Transfer-Encoding" in headers:
        raise InvalidMessage("unsupported transfer encoding")
    lengths = headers.get_all("Content-Length")
    if lengths:
        # RFC 9112 §6.3 rule 5: an invalid Content-Length is an unrecoverable error. Several
        # lines, even with the same value, are refused rather than reconciled.
        if len(lengths) > 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            raise InvalidMessage(f"invalid Content-Length: {', '.join(lengths)[:80]!r}")
        # Compare lengths as strings first: int() refuses strings of thousands of digits, and
        # a number with more digits than max_body is larger anyway.
        digits = lengths[0].lstrip("0")
        if len(digits) > len(str(max_body)) or int(digits or "0") > max_body:
            raise SecurityError(f"body larger than {max_body} bytes")
        return (yield from read_exact(int(digits or "0")))
    # RFC 9112 §6.3 rule 8: without a length, the body runs to the end of the connection.
    try:
        return (yield from read_to_eof(max_body))
    except RuntimeError:
        raise SecurityError(f"body larger than {max_body} bytes") from None
