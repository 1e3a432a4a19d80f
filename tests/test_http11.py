"""Tests for syncws.core.http11: parsing and serializing handshake requests and responses.

Parsers are fed from a StreamReader. Most inputs are parsed twice, fed all at once and fed one
byte at a time, and both runs must give the same result or the same error.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TypeVar

import pytest
import websockets.http11
import websockets.streams

from syncws.core.headers import Headers
from syncws.core.http11 import MAX_BODY, MAX_HEADERS, MAX_LINE, Request, Response
from syncws.core.streams import StreamReader
from syncws.exceptions import InvalidMessage, SecurityError

__all__: list[str] = []

T = TypeVar("T")
Parser = Callable[[StreamReader], Generator[None, None, T]]


class Incomplete(Exception):
    """The parser is still waiting for data after everything was fed."""


def run(
    parser: Parser[T],
    chunks: Iterable[bytes],
    *,
    eof: bool = True,
    reader: StreamReader | None = None,
) -> T:
    """Feed ``chunks`` one by one, resuming the parser after each, then maybe end the stream."""
    if reader is None:
        reader = StreamReader()
    gen = parser(reader)
    try:
        next(gen)
        for chunk in chunks:
            reader.feed_data(chunk)
            next(gen)
        if eof:
            reader.feed_eof()
            next(gen)
    except StopIteration as exc:
        return exc.value  # type: ignore[no-any-return]
    raise Incomplete


def one_byte_at_a_time(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def outcome(parser: Parser[T], chunks: Iterable[bytes], *, eof: bool) -> T | Exception:
    """Return what the parser returns, or the exception it raises."""
    try:
        return run(parser, chunks, eof=eof)
    except Exception as exc:
        return exc


def parse(parser: Parser[T], data: bytes, *, eof: bool = True, bytewise: bool = True) -> T:
    """Parse ``data`` fed at once and, if ``bytewise``, one byte at a time.

    Both runs must agree; return the result or raise the error.
    """
    whole = outcome(parser, [data], eof=eof)
    if bytewise:
        split = outcome(parser, one_byte_at_a_time(data), eof=eof)
        if isinstance(whole, Exception):
            assert type(split) is type(whole)
            assert str(split) == str(whole)
            assert getattr(split, "status", None) == getattr(whole, "status", None)
        else:
            assert split == whole
    if isinstance(whole, Exception):
        raise whole
    return whole


def feed_until_error(
    parser: Parser[object], chunks: Iterable[bytes], reader: StreamReader | None = None
) -> tuple[Exception, int]:
    """Feed chunks until the parser raises; return the error and how many chunks were fed."""
    if reader is None:
        reader = StreamReader()
    gen = parser(reader)
    next(gen)
    for count, chunk in enumerate(chunks, 1):
        reader.feed_data(chunk)
        try:
            next(gen)
        except Exception as exc:
            return exc, count
    raise AssertionError("the parser did not fail")


def request_parser(reader: StreamReader) -> Generator[None, None, Request]:
    return Request.parse(reader.read_line)


def response_parser(
    max_body: int = MAX_BODY,
) -> Callable[[StreamReader], Generator[None, None, Response]]:
    def parser(reader: StreamReader) -> Generator[None, None, Response]:
        return Response.parse(
            reader.read_line, reader.read_exact, reader.read_to_eof, max_body=max_body
        )

    return parser


def parse_request(data: bytes, **kwargs: bool) -> Request:
    return parse(request_parser, data, **kwargs)


def parse_response(data: bytes, *, max_body: int = MAX_BODY, **kwargs: bool) -> Response:
    return parse(response_parser(max_body), data, **kwargs)


HANDSHAKE = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)


def request(line: bytes = b"GET / HTTP/1.1", *headers: bytes) -> bytes:
    """A request with the given request line and header lines, Host first."""
    return b"".join(line + b"\r\n" for line in (line, b"Host: x", *headers)) + b"\r\n"


def response(line: bytes = b"HTTP/1.1 101 Switching Protocols", *headers: bytes) -> bytes:
    return b"".join(line + b"\r\n" for line in (line, *headers)) + b"\r\n"


# Requests: valid input.


def test_parse_handshake_request() -> None:
    parsed = parse_request(HANDSHAKE)
    assert parsed.path == "/chat?room=1"
    assert parsed.headers["host"] == "server.example.com"
    assert parsed.headers["Sec-WebSocket-Key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert parsed.headers.get_all("sec-websocket-protocol") == ["chat, superchat"]
    assert len(list(parsed.headers.raw_items())) == 7


def test_parse_request_needs_no_eof_and_leaves_what_follows() -> None:
    # The header section ends the request; what follows is WebSocket frames, and stays unread.
    reader = StreamReader()
    parsed = run(request_parser, [HANDSHAKE + b"\x81\x05hello"], eof=False, reader=reader)
    assert parsed.path == "/chat?room=1"
    assert reader.buffer == b"\x81\x05hello"


def test_parse_request_waits_for_the_end_of_the_headers() -> None:
    with pytest.raises(Incomplete):
        run(request_parser, [HANDSHAKE[:-2]], eof=False)


@pytest.mark.parametrize(
    ("header_line", "name", "value"),
    [
        (b"X-A: b", "X-A", "b"),
        (b"X-A:b", "X-A", "b"),
        (b"X-A: \t b \t ", "X-A", "b"),
        (b"X-A:", "X-A", ""),
        (b"X-A:  \t ", "X-A", ""),
        (b"X-A: a \t b", "X-A", "a \t b"),
        (b"x-a: :;,\"'", "x-a", ":;,\"'"),
        # H11: obs-text is accepted and decoded as latin-1, one character per byte.
        (b"X-A: caf\xe9 \x80\xff", "X-A", "caf\u00e9 \x80\xff"),
        (b"!#$%&'*+-.^_`|~09az: x", "!#$%&'*+-.^_`|~09az", "x"),
        (b"Content-Length: 0", "Content-Length", "0"),
    ],
)
def test_parse_request_header_line(header_line: bytes, name: str, value: str) -> None:
    parsed = parse_request(request(b"GET / HTTP/1.1", header_line))
    assert list(parsed.headers.raw_items()) == [("Host", "x"), (name, value)]


@pytest.mark.parametrize(
    "path",
    [b"/", b"/chat", b"/a/b?c=d&e=%20f", b"/?", b"//", b"/~!$&'()*+,;=:@[]"],
)
def test_parse_request_target(path: bytes) -> None:
    assert parse_request(request(b"GET " + path + b" HTTP/1.1")).path == path.decode()


def test_parse_request_repeated_headers_keep_order() -> None:
    parsed = parse_request(request(b"GET / HTTP/1.1", b"Connection: a", b"connection: b"))
    assert parsed.headers.get_all("CONNECTION") == ["a", "b"]


# Requests: invalid input. Each row is the input, the exception and its HTTP status.


@pytest.mark.parametrize(
    ("data", "exception", "status"),
    [
        # H9: only GET.
        (request(b"POST / HTTP/1.1"), InvalidMessage, 405),
        (request(b"get / HTTP/1.1"), InvalidMessage, 405),
        (request(b"CONNECT / HTTP/1.1"), InvalidMessage, 405),
        # H10: only HTTP/1.1; other versions are 505 when well-formed, else 400.
        (request(b"GET / HTTP/1.0"), InvalidMessage, 505),
        (request(b"GET / HTTP/2.0"), InvalidMessage, 505),
        (request(b"GET / HTTP/0.9"), InvalidMessage, 505),
        (request(b"POST / HTTP/1.0"), InvalidMessage, 505),
        (request(b"GET / HTTP/1.10"), InvalidMessage, 400),
        (request(b"GET / http/1.1"), InvalidMessage, 400),
        (request(b"GET / HTTP/1"), InvalidMessage, 400),
        (request(b"GET / FOO"), InvalidMessage, 400),
        # H11: request line shape.
        (request(b"GET  / HTTP/1.1"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1 "), InvalidMessage, 400),
        (request(b" GET / HTTP/1.1"), InvalidMessage, 400),
        (request(b"GET\t/\tHTTP/1.1"), InvalidMessage, 400),
        (request(b"GET /"), InvalidMessage, 400),
        (b"GET /\r\n\r\n", InvalidMessage, 400),
        (request(b"GET"), InvalidMessage, 400),
        (request(b""), InvalidMessage, 400),
        (b"\r\n" + request(), InvalidMessage, 400),
        (request(b"G(T / HTTP/1.1"), InvalidMessage, 400),
        (request(b"G\xc9T / HTTP/1.1"), InvalidMessage, 400),
        # H11: request target: origin-form, visible ASCII.
        (request(b"GET /\xe9 HTTP/1.1"), InvalidMessage, 400),
        (request(b"GET /a\x00b HTTP/1.1"), InvalidMessage, 400),
        (request(b"GET /a\x7fb HTTP/1.1"), InvalidMessage, 400),
        (request(b"GET /a\rb HTTP/1.1"), InvalidMessage, 400),
        (request(b"GET * HTTP/1.1"), InvalidMessage, 400),
        (request(b"GET chat HTTP/1.1"), InvalidMessage, 400),
        (request(b"GET http://x/ HTTP/1.1"), InvalidMessage, 400),
        # H11: line endings.
        (b"GET / HTTP/1.1\nHost: x\r\n\r\n", InvalidMessage, 400),
        (b"GET / HTTP/1.1\r\nHost: x\n\r\n", InvalidMessage, 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\n", InvalidMessage, 400),
        (b"GET / HTTP/1.1\nHost: x\n\n", InvalidMessage, 400),
        # H11: header lines.
        (request(b"GET / HTTP/1.1", b"X-A: a", b" folded"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X-A: a", b"\tfolded"), InvalidMessage, 400),
        (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", InvalidMessage, 400),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", InvalidMessage, 400),
        (b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b": x"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X-A"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X A: b"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X\xe9: b"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X-A: a\x00b"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X-A: a\rb"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X-A: a\r"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X-A: a\x01b"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X-A: a\x7fb"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"X-A: \x1b[31m"), InvalidMessage, 400),
        # Request smuggling guard: no body, whatever the framing headers say.
        (request(b"GET / HTTP/1.1", b"Transfer-Encoding: chunked"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"transfer-encoding: identity"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"Transfer-Encoding:"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"Content-Length: 5"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"Content-Length: 00"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"Content-Length: 0, 0"), InvalidMessage, 400),
        (request(b"GET / HTTP/1.1", b"Content-Length:"), InvalidMessage, 400),
        (
            request(b"GET / HTTP/1.1", b"Content-Length: 0", b"Content-Length: 0"),
            InvalidMessage,
            400,
        ),
        (
            request(b"GET / HTTP/1.1", b"Content-Length: 0", b"Transfer-Encoding: chunked"),
            InvalidMessage,
            400,
        ),
    ],
)
def test_parse_request_errors(data: bytes, exception: type[Exception], status: int) -> None:
    with pytest.raises(InvalidMessage) as excinfo:
        parse_request(data)
    assert type(excinfo.value) is exception
    assert excinfo.value.status == status


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GET / HTTP/1.1",
        b"GET / HTTP/1.1\r\n",
        b"GET / HTTP/1.1\r\nHost: x",
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r",
    ],
)
def test_parse_request_truncated(data: bytes) -> None:
    # The caller turns this into "connection closed during the handshake".
    with pytest.raises(EOFError):
        parse_request(data)


# Limits: H1, H2, H3, H5.


def test_h1_header_line_too_long() -> None:
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 8200 + b"\r\n\r\n"
    with pytest.raises(SecurityError) as excinfo:
        parse_request(data)
    assert excinfo.value.status == 431


def test_h1_header_line_too_long_is_refused_as_soon_as_the_limit_is_reached() -> None:
    # Fed in 1 KiB chunks, the parser fails as soon as the buffer holds MAX_LINE bytes of the
    # line, before more than one more chunk is accepted: the reader never buffers much more than
    # the limit, however long the line.
    chunk_size = 1024
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 100_000 + b"\r\n\r\n"
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    reader = StreamReader()
    exc, count = feed_until_error(request_parser, chunks, reader)
    assert isinstance(exc, SecurityError)
    assert exc.status == 431
    # A chunk arrives whole, so the buffer can exceed the limit by less than one chunk.
    assert MAX_LINE <= len(reader.buffer) < MAX_LINE + chunk_size
    assert count * chunk_size < len(b"GET / HTTP/1.1\r\nHost: x\r\n") + MAX_LINE + chunk_size


@pytest.mark.parametrize("length", [MAX_LINE, MAX_LINE + 1])
def test_header_line_length_limit(length: int) -> None:
    # A line of exactly MAX_LINE bytes, CRLF included, is accepted; one more byte is not.
    line = b"X-A: " + b"a" * (length - len(b"X-A: \r\n"))
    data = request(b"GET / HTTP/1.1", line)
    if length <= MAX_LINE:
        assert len(parse_request(data).headers["X-A"]) == length - 7
    else:
        with pytest.raises(SecurityError) as excinfo:
            parse_request(data)
        assert excinfo.value.status == 431


@pytest.mark.parametrize("count", [MAX_HEADERS - 1, MAX_HEADERS])
def test_max_headers_accepted(count: int) -> None:
    # request() adds Host, so count - 1 more headers.
    headers = [b"X-%d: v" % i for i in range(count - 1)]
    parsed = parse_request(request(b"GET / HTTP/1.1", *headers))
    assert len(list(parsed.headers.raw_items())) == count


@pytest.mark.parametrize("count", [MAX_HEADERS + 1, 2000])
def test_h2_too_many_headers(count: int) -> None:
    headers = [b"X-%d: v" % i for i in range(count - 1)]
    with pytest.raises(SecurityError) as excinfo:
        parse_request(request(b"GET / HTTP/1.1", *headers), bytewise=count < 1000)
    assert excinfo.value.status == 431


def test_h2_too_many_headers_fails_at_the_limit() -> None:
    # Endless header lines: the parser fails at header MAX_HEADERS + 1 and reads no further.
    def endless() -> Iterator[bytes]:
        yield b"GET / HTTP/1.1\r\n"
        while True:
            yield b"X-A: v\r\n"

    exc, lines = feed_until_error(request_parser, endless())
    assert isinstance(exc, SecurityError)
    assert exc.status == 431
    assert lines == 1 + MAX_HEADERS + 1


def test_h3_request_line_too_long() -> None:
    data = request(b"GET /" + b"a" * 9000 + b" HTTP/1.1")
    with pytest.raises(SecurityError) as excinfo:
        parse_request(data)
    assert excinfo.value.status == 414


@pytest.mark.parametrize("length", [MAX_LINE, MAX_LINE + 1])
def test_request_line_length_limit(length: int) -> None:
    path = b"/" + b"a" * (length - len(b"GET / HTTP/1.1\r\n"))
    data = request(b"GET " + path + b" HTTP/1.1")
    if length <= MAX_LINE:
        assert parse_request(data).path == path.decode()
    else:
        with pytest.raises(SecurityError) as excinfo:
            parse_request(data)
        assert excinfo.value.status == 414


class CountingReader(StreamReader):
    """Records how much work read_line() does.

    ``scanned`` adds up, over every resumption, the bytes that read_line() has yet to search
    for a newline: ``len(buffer) - _scanned``. ``delivered`` adds up the bytes of the lines it
    returns, and ``calls`` counts them.
    """

    __slots__ = ("calls", "delivered", "resumptions", "scanned")

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.delivered = 0
        self.resumptions = 0
        self.scanned = 0

    def read_line(self, limit: int) -> Generator[None, None, bytes]:
        self.calls += 1
        inner = super().read_line(limit)
        try:
            while True:
                self.resumptions += 1
                self.scanned += len(self.buffer) - self._scanned
                inner.send(None)
                yield
        except StopIteration as exc:
            line: bytes = exc.value
            self.delivered += len(line)
            return line


def work_for_header_line(length: int) -> tuple[int, int, int, int]:
    """Parse a request whose header line is ``length`` bytes long, fed one byte at a time."""
    data = request(b"GET / HTTP/1.1", b"X-A: " + b"a" * (length - 7))
    reader = CountingReader()
    parsed = run(request_parser, one_byte_at_a_time(data), eof=False, reader=reader)
    assert len(parsed.headers["X-A"]) == length - 7
    # Every line is read once and every byte delivered once: the parser never reads back.
    assert reader.calls == 4
    assert reader.delivered == len(data)
    return len(data), reader.resumptions, reader.scanned, reader.calls


@pytest.mark.parametrize("length", [4000, 8000])
def test_h5_long_header_line_fed_one_byte_at_a_time_is_linear(length: int) -> None:
    # Structural, not timed: fed one byte at a time, each byte is searched for a newline once,
    # so the total search is the input length; a parser that rescanned the buffer on every
    # byte would search about length**2 / 2 bytes.
    size, resumptions, scanned, _ = work_for_header_line(length)
    assert scanned == size
    # One resumption per byte fed, plus one for each line's first call.
    assert resumptions == size + 4


def test_h5_work_is_proportional_to_length() -> None:
    short_size, short_resumptions, short_scanned, _ = work_for_header_line(4000)
    long_size, long_resumptions, long_scanned, _ = work_for_header_line(8000)
    # 4000 more bytes cost exactly 4000 more resumptions and 4000 more bytes searched.
    assert long_size - short_size == 4000
    assert long_resumptions - short_resumptions == 4000
    assert long_scanned - short_scanned == 4000


# Requests: serialization.


@pytest.mark.parametrize(
    "req",
    [
        Request("/", Headers()),
        Request("/chat?room=1", Headers([("Host", "x"), ("Connection", "Upgrade")])),
        Request("/", Headers([("X-A", "1"), ("x-a", "2"), ("X-B", "caf\u00e9")])),
        Request("/~!$&'()*+,;=:@%20?a=b"),
    ],
)
def test_request_round_trip(req: Request) -> None:
    data = req.serialize()
    assert data.startswith(f"GET {req.path} HTTP/1.1\r\n".encode())
    assert parse_request(data) == req


def test_request_serialize() -> None:
    req = Request("/chat", Headers([("Host", "example.com"), ("Upgrade", "websocket")]))
    assert req.serialize() == (
        b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\n"
    )


def test_request_parse_then_serialize() -> None:
    assert parse_request(HANDSHAKE).serialize() == HANDSHAKE


@pytest.mark.parametrize(
    "req",
    [
        # A4: header injection through the path.
        Request("/\r\nX-Evil: 1"),
        Request("/a\nb"),
        Request("/a\rb"),
        Request("/a b"),
        Request("/a\x00b"),
        Request("/a\tb"),
        Request("/caf\u00e9"),
        Request(""),
        Request("chat"),
        # A4: header injection through headers.
        Request("/", Headers([("X-A", "a\r\nX-Evil: 1")])),
        Request("/", Headers([("X-A\r\nX-Evil", "1")])),
    ],
)
def test_request_serialize_errors(req: Request) -> None:
    with pytest.raises(ValueError, match="invalid"):
        req.serialize()


# Responses: valid input.


@pytest.mark.parametrize(
    ("data", "status_code", "reason_phrase"),
    [
        (response(b"HTTP/1.1 101 Switching Protocols"), 101, "Switching Protocols"),
        (response(b"HTTP/1.1 101"), 101, ""),
        (response(b"HTTP/1.1 101 "), 101, ""),
        (response(b"HTTP/1.1 101  "), 101, " "),
        (response(b"HTTP/1.1 101 a\tb \xe9\x80"), 101, "a\tb \u00e9\x80"),
        (response(b"HTTP/1.1 100 Continue"), 100, "Continue"),
        (response(b"HTTP/1.1 204 No Content"), 204, "No Content"),
        (response(b"HTTP/1.1 304 Not Modified"), 304, "Not Modified"),
        (response(b"HTTP/1.1 199 x"), 199, "x"),
    ],
)
def test_parse_response_without_body(data: bytes, status_code: int, reason_phrase: str) -> None:
    # No body for 1xx, 204, 304: the response ends with its header section, without EOF.
    parsed = parse_response(data, eof=False)
    assert parsed == Response(status_code, reason_phrase, Headers(), b"")


def test_parse_handshake_response_leaves_frames() -> None:
    data = response(
        b"HTTP/1.1 101 Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        # Ignored after 101: framing headers do not apply (RFC 9112 §6.3).
        b"Content-Length: 5",
        b"Transfer-Encoding: chunked",
    )
    reader = StreamReader()
    parsed = run(response_parser(), [data + b"\x81\x02hi"], eof=False, reader=reader)
    assert parsed.status_code == 101
    assert parsed.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert parsed.body == b""
    assert reader.buffer == b"\x81\x02hi"


@pytest.mark.parametrize(
    ("headers", "body", "eof", "expected"),
    [
        ((b"Content-Length: 5",), b"hello", False, b"hello"),
        ((b"Content-Length: 0",), b"", False, b""),
        ((b"Content-Length: 005",), b"hello", False, b"hello"),
        ((b"Content-Length: " + b"0" * 5000 + b"5",), b"hello", False, b"hello"),
        ((b"Content-Length: 000",), b"", False, b""),
        ((), b"hello", True, b"hello"),
        ((), b"", True, b""),
        ((b"Content-Type: text/plain",), b"a\r\n\r\nb", True, b"a\r\n\r\nb"),
    ],
)
def test_parse_response_body(
    headers: tuple[bytes, ...], body: bytes, eof: bool, expected: bytes
) -> None:
    data = response(b"HTTP/1.1 403 Forbidden", *headers) + body
    parsed = parse_response(data, eof=eof)
    assert parsed.status_code == 403
    assert parsed.body == expected


def test_parse_response_body_stops_at_content_length() -> None:
    reader = StreamReader()
    data = response(b"HTTP/1.1 400 Bad Request", b"Content-Length: 2") + b"okextra"
    parsed = run(response_parser(), [data], eof=False, reader=reader)
    assert parsed.body == b"ok"
    assert reader.buffer == b"extra"


def test_parse_response_body_without_length_waits_for_eof() -> None:
    with pytest.raises(Incomplete):
        run(response_parser(), [response(b"HTTP/1.1 200 OK") + b"partial"], eof=False)


# A proxy's answer to CONNECT.


def connect_parser(reader: StreamReader) -> Generator[None, None, Response]:
    return Response.parse(reader.read_line, reader.read_exact, reader.read_to_eof, connect=True)


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/1.1 200 Connection established",
        b"HTTP/1.0 200 Connection established",
        b"HTTP/1.1 407 Proxy Authentication Required",
    ],
)
def test_parse_connect_response_leaves_what_follows_the_head(line: bytes) -> None:
    # After a 2xx, the tunnel's bytes; after a refusal, the caller takes what came.
    reader = StreamReader()
    data = response(line, b"Content-Length: 5") + b"bytes"
    parsed = run(connect_parser, [data], eof=False, reader=reader)
    assert parsed.status_code == int(line[9:12])
    assert parsed.body == b""
    assert reader.buffer == b"bytes"


def test_parse_http_1_0_response_only_from_a_proxy() -> None:
    with pytest.raises(InvalidMessage, match="unsupported HTTP version"):
        parse_response(response(b"HTTP/1.0 200 OK"))
    with pytest.raises(InvalidMessage, match="unsupported HTTP version"):
        parse(connect_parser, response(b"HTTP/2.0 200 OK"))


@pytest.mark.parametrize("max_body", [0, 5, 100])
def test_parse_response_max_body(max_body: int) -> None:
    data = response(b"HTTP/1.1 200 OK", b"Content-Length: 5") + b"hello"
    if max_body >= 5:
        assert parse_response(data, max_body=max_body).body == b"hello"
    else:
        with pytest.raises(SecurityError):
            parse_response(data, max_body=max_body)
    data = response(b"HTTP/1.1 200 OK") + b"hello"
    if max_body >= 5:
        assert parse_response(data, max_body=max_body).body == b"hello"
    else:
        with pytest.raises(SecurityError):
            parse_response(data, max_body=max_body)


# Responses: invalid input.


@pytest.mark.parametrize(
    "data",
    [
        response(b"HTTP/1.0 101 Switching Protocols"),
        response(b"HTTP/2.0 101 Switching Protocols"),
        response(b"http/1.1 101 Switching Protocols"),
        response(b"HTTP/1.1"),
        response(b"HTTP/1.1 "),
        response(b""),
        response(b"SSH-2.0-OpenSSH"),
        response(b"HTTP/1.1  101 Switching Protocols"),
        response(b"HTTP/1.1\t101 Switching Protocols"),
        response(b"HTTP/1.1 1O1 Switching Protocols"),
        response(b"HTTP/1.1 10 Switching Protocols"),
        response(b"HTTP/1.1 10"),
        response(b"HTTP/1.1 1010"),
        response(b"HTTP/1.1 101\tSwitching Protocols"),
        response(b"HTTP/1.1 -01 Switching Protocols"),
        response(b"HTTP/1.1 \xd9\xa1\xd9\xa0 x"),
        response(b"HTTP/1.1 000 Zero"),
        response(b"HTTP/1.1 099 Low"),
        response(b"HTTP/1.1 600 High"),
        response(b"HTTP/1.1 999 High"),
        response(b"HTTP/1.1 101 a\x00b"),
        response(b"HTTP/1.1 101 a\rb"),
        response(b"HTTP/1.1 101 a\x7fb"),
        b"HTTP/1.1 101 Switching Protocols\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\n\r\n",
        response(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b" folded"),
        response(b"HTTP/1.1 101 Switching Protocols", b"Upgrade : websocket"),
        response(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: web\x00socket"),
        # Transfer codings are not supported.
        response(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n",
        response(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", b"Content-Length: 5")
        + b"hello",
        # Content-Length must be a single non-negative integer.
        response(b"HTTP/1.1 200 OK", b"Content-Length: -1"),
        response(b"HTTP/1.1 200 OK", b"Content-Length: +5") + b"hello",
        response(b"HTTP/1.1 200 OK", b"Content-Length: 5, 5") + b"hello",
        response(b"HTTP/1.1 200 OK", b"Content-Length: 5", b"Content-Length: 5") + b"hello",
        response(b"HTTP/1.1 200 OK", b"Content-Length: five"),
        response(b"HTTP/1.1 200 OK", b"Content-Length:"),
        response(b"HTTP/1.1 200 OK", b"Content-Length: 0x5") + b"hello",
        response(b"HTTP/1.1 200 OK", b"Content-Length: \xb2") + b"hi",
    ],
)
def test_parse_response_errors(data: bytes) -> None:
    with pytest.raises(InvalidMessage) as excinfo:
        parse_response(data)
    assert type(excinfo.value) is InvalidMessage


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 101 Switching Protocols\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
        # A body shorter than its Content-Length.
        response(b"HTTP/1.1 200 OK", b"Content-Length: 5") + b"hell",
    ],
)
def test_parse_response_truncated(data: bytes) -> None:
    with pytest.raises(EOFError):
        parse_response(data)


# Limits on responses: K3.


def test_k3_status_line_too_long() -> None:
    with pytest.raises(SecurityError):
        parse_response(response(b"HTTP/1.1 200 " + b"x" * MAX_LINE))


def test_k3_header_line_too_long() -> None:
    with pytest.raises(SecurityError):
        parse_response(response(b"HTTP/1.1 101 OK", b"X-A: " + b"a" * MAX_LINE))


@pytest.mark.parametrize("count", [MAX_HEADERS + 1, 2000])
def test_k3_too_many_headers(count: int) -> None:
    headers = [b"X-%d: v" % i for i in range(count)]
    with pytest.raises(SecurityError):
        parse_response(response(b"HTTP/1.1 101 OK", *headers), bytewise=False)


def test_k3_max_headers_accepted() -> None:
    headers = [b"X-%d: v" % i for i in range(MAX_HEADERS)]
    parsed = parse_response(response(b"HTTP/1.1 101 OK", *headers), eof=False)
    assert len(parsed.headers) == MAX_HEADERS


def test_k3_endless_header_lines() -> None:
    def endless() -> Iterator[bytes]:
        yield b"HTTP/1.1 101 OK\r\n"
        while True:
            yield b"X-A: v\r\n"

    exc, lines = feed_until_error(response_parser(), endless())
    assert isinstance(exc, SecurityError)
    assert lines == 1 + MAX_HEADERS + 1


@pytest.mark.parametrize(
    "length", [b"2000000", str(MAX_BODY + 1).encode(), b"9" * 5000, b"1" + b"0" * 30]
)
def test_k3_content_length_too_large_fails_before_reading(length: bytes) -> None:
    # Nothing is read: the length alone is refused, with no body sent and no EOF.
    data = response(b"HTTP/1.1 200 OK", b"Content-Length: " + length)
    with pytest.raises(SecurityError):
        parse_response(data, eof=False)


def test_k3_content_length_at_the_limit() -> None:
    data = response(b"HTTP/1.1 200 OK", b"Content-Length: %d" % MAX_BODY) + b"a" * MAX_BODY
    assert len(parse_response(data, bytewise=False).body) == MAX_BODY


def test_k3_body_without_length_too_large() -> None:
    body = b"a" * (MAX_BODY + MAX_BODY // 10)
    data = response(b"HTTP/1.1 200 OK") + body
    with pytest.raises(SecurityError):
        parse_response(data, bytewise=False)


def test_k3_body_without_length_fails_at_the_limit() -> None:
    # Fed in chunks without EOF, the parser fails as soon as the body passes max_body.
    chunk = b"a" * 65536

    def chunks() -> Iterator[bytes]:
        yield response(b"HTTP/1.1 200 OK")
        while True:
            yield chunk

    exc, count = feed_until_error(response_parser(), chunks())
    assert isinstance(exc, SecurityError)
    fed = (count - 1) * len(chunk)
    assert MAX_BODY < fed <= MAX_BODY + len(chunk)


def test_k3_body_without_length_at_the_limit() -> None:
    data = response(b"HTTP/1.1 200 OK") + b"a" * MAX_BODY
    assert len(parse_response(data, bytewise=False).body) == MAX_BODY


# Responses: serialization.


@pytest.mark.parametrize(
    "resp",
    [
        Response(101, "Switching Protocols", Headers([("Upgrade", "websocket")])),
        Response(101, ""),
        Response(101, " spaced\tout "),
        Response(426, "Upgrade Required", Headers([("Content-Length", "3")]), b"abc"),
        Response(500, "caf\u00e9 \x80", Headers([("X-A", "1"), ("x-a", "2")])),
        Response(200, "OK", Headers(), b"to the end"),
    ],
)
def test_response_round_trip(resp: Response) -> None:
    data = resp.serialize()
    status_line = f"HTTP/1.1 {resp.status_code} {resp.reason_phrase}\r\n"
    assert data.startswith(status_line.encode("latin-1"))
    assert parse_response(data) == resp


def test_response_serialize() -> None:
    resp = Response(403, "Forbidden", Headers([("Content-Length", "2")]), b"no")
    assert resp.serialize() == b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"


@pytest.mark.parametrize(
    "resp",
    [
        # A4: header injection through the reason phrase.
        Response(101, "OK\r\nSet-Cookie: x=1"),
        Response(101, "OK\n"),
        Response(101, "OK\r"),
        Response(101, "O\x00K"),
        Response(101, "O\x7fK"),
        Response(101, "\u20ac"),
        # Status codes.
        Response(99, "Low"),
        Response(600, "High"),
        Response(True, "Bool"),
        Response("101", "Str"),  # type: ignore[arg-type]
        # A4: header injection through headers.
        Response(101, "OK", Headers([("X-A", "a\r\n\r\nHTTP/1.1 200 OK")])),
        Response(101, "OK", Headers([("X-A\r\n", "1")])),
    ],
)
def test_response_serialize_errors(resp: Response) -> None:
    with pytest.raises(ValueError, match="invalid"):
        resp.serialize()


# Differential test against websockets: both parsers must agree on valid vs. invalid.


def websockets_accepts(data: bytes) -> bool:
    reader = websockets.streams.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    gen = websockets.http11.Request.parse(reader.read_line)
    try:
        while True:
            next(gen)
    except StopIteration:
        return True
    except Exception:
        return False


def syncws_accepts(data: bytes) -> bool:
    try:
        run(request_parser, [data])
    except (InvalidMessage, EOFError):
        return False
    return True


AGREED = [
    # Valid.
    HANDSHAKE,
    request(),
    request(b"GET /a?b=c HTTP/1.1"),
    request(b"GET / HTTP/1.1", b"X-A:"),
    request(b"GET / HTTP/1.1", b"X-A: \x80\xff"),
    request(b"GET / HTTP/1.1", b"X-A: a\tb"),
    request(b"GET / HTTP/1.1", b"Content-Length: 0"),
    request(b"GET / HTTP/1.1", *[b"X-%d: v" % i for i in range(MAX_HEADERS - 1)]),
    request(b"GET /" + b"a" * (MAX_LINE - 16) + b" HTTP/1.1"),
    # Invalid.
    b"",
    b"GET / HTTP/1.1\r\n",
    request(b"GET / HTTP/2.0"),
    request(b"GET  / HTTP/1.1"),
    request(b"GET / HTTP/1.1 "),
    request(b"GET /"),
    request(b""),
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"GET / HTTP/1.1\r\nHost: x\n\r\n",
    request(b"GET / HTTP/1.1", b"X-A: a", b" folded"),
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    request(b"GET / HTTP/1.1", b": x"),
    request(b"GET / HTTP/1.1", b"X-A"),
    request(b"GET / HTTP/1.1", b"X-A: a\x00b"),
    request(b"GET / HTTP/1.1", b"X-A: a\rb"),
    request(b"GET / HTTP/1.1", b"X-A: a\x7fb"),
    request(b"GET / HTTP/1.1", b"Transfer-Encoding: chunked"),
    request(b"GET / HTTP/1.1", b"Content-Length: 5"),
    request(b"GET / HTTP/1.1", *[b"X-%d: v" % i for i in range(MAX_HEADERS)]),
    request(b"GET /" + b"a" * (MAX_LINE - 15) + b" HTTP/1.1"),
    request(b"GET / HTTP/1.1", b"X-A: " + b"a" * MAX_LINE),
]

# Inputs that some versions of websockets accept and we refuse on purpose (websockets 16, the
# newest for Python 3.10, and 17 differ on several of them). websockets leaves the method to its
# handshake layer; we check it while parsing. The rest is stricter framing: only HTTP/1.1
# (RFC 6455 §4.1), a token method, an origin-form target in visible ASCII (RFC 9112 §3.2.1),
# and no Content-Length other than a single "0", so that no two parsers can disagree on where
# the request ends (RFC 9112 §6.3).
STRICTER = [
    request(b"POST / HTTP/1.1"),
    request(b"get / HTTP/1.1"),
    request(b"GET / HTTP/1.0"),
    request(b"G(T / HTTP/1.1"),
    request(b"GET * HTTP/1.1"),
    request(b"GET http://x/ HTTP/1.1"),
    request(b"GET /a\x01b HTTP/1.1"),
    request(b"GET / HTTP/1.1", b"Content-Length: 0", b"Content-Length: 0"),
    request(b"GET / HTTP/1.1", b"Content-Length: 00"),
    request(b"GET /\xe9 HTTP/1.1"),
]


@pytest.mark.parametrize("data", AGREED)
def test_differential_agreement(data: bytes) -> None:
    assert syncws_accepts(data) == websockets_accepts(data)


@pytest.mark.parametrize("data", STRICTER)
def test_differential_stricter(data: bytes) -> None:
    # Which of these websockets accepts depends on its version; syncws refuses them all.
    assert not syncws_accepts(data)


# Headers kept compactly by an open connection.


def test_compacted_headers_are_rebuilt_equal() -> None:
    headers = Headers([("Host", "example.com"), ("X-Many", "1"), ("x-many", "2")])
    request = Request("/chat", headers.copy())
    response = Response(101, "Switching Protocols", headers.copy())
    for message in (request, response):
        message._compact_headers()
        assert "headers" not in vars(message)
        assert repr(message).count("X-Many") == 1
        assert message.headers == headers
        assert list(message.headers.raw_items()) == list(headers.raw_items())
        assert message.headers is message.headers
        message._compact_headers()
        assert pickle.loads(pickle.dumps(message)) == message
        assert copy.copy(message) == message
        assert dataclasses.replace(message).headers == headers
        with pytest.raises(AttributeError, match="no attribute 'other'"):
            message.other  # type: ignore[union-attr]  # noqa: B018
    assert request == Request("/chat", headers)


def test_compacting_keeps_headers_set_afterwards() -> None:
    request = Request("/")
    request._compact_headers()
    request.headers = Headers(Host="example.com")
    assert request.headers["host"] == "example.com"
    request.headers["X-More"] = "1"
    request._compact_headers()
    assert request.headers.get_all("x-more") == ["1"]
