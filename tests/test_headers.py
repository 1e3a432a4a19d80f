"""Tests for syncws.core.headers: the Headers container, header value parsers and builders."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from syncws.core.headers import (
    GUID,
    ExtensionHeader,
    Headers,
    MultipleValuesError,
    accept_key,
    build_authorization_basic,
    build_extension,
    build_host,
    build_subprotocol,
    build_www_authenticate_basic,
    generate_key,
    parse_authorization_basic,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
    validate_subprotocols,
)
from syncws.exceptions import InvalidHeader, InvalidHeaderFormat, InvalidHeaderValue

__all__: list[str] = []


def sample() -> Headers:
    """Three names, one of them twice with different cases."""
    headers = Headers()
    headers["Host"] = "example.com"
    headers["Connection"] = "Upgrade"
    headers["Upgrade"] = "websocket"
    headers["connection"] = "keep-alive"
    return headers


# Headers: construction.


class KeysOnly:
    """Has keys() and __getitem__, as dict.update() accepts, but is not a Mapping."""

    def keys(self) -> list[str]:
        return ["A", "B"]

    def __getitem__(self, key: str) -> str:
        return key.lower()


@pytest.mark.parametrize(
    ("source", "kwargs", "pairs"),
    [
        (None, {}, []),
        ({"Host": "x", "Upgrade": "websocket"}, {}, [("Host", "x"), ("Upgrade", "websocket")]),
        ([("A", "1"), ("a", "2")], {}, [("A", "1"), ("a", "2")]),
        (iter([("A", "1")]), {"B": "2"}, [("A", "1"), ("B", "2")]),
        (None, {"Host": "x"}, [("Host", "x")]),
        (Headers([("A", "1"), ("a", "2")]), {}, [("A", "1"), ("a", "2")]),
        (KeysOnly(), {}, [("A", "a"), ("B", "b")]),
    ],
)
def test_constructor(source: Any, kwargs: dict[str, str], pairs: list[tuple[str, str]]) -> None:
    headers = Headers(source, **kwargs)
    assert list(headers.raw_items()) == pairs


@pytest.mark.parametrize(
    ("name", "value"), [(b"Host", "x"), ("Host", b"x"), (1, "x"), ("Host", None)]
)
def test_setitem_rejects_non_str(name: Any, value: Any) -> None:
    headers = Headers()
    with pytest.raises(TypeError):
        headers[name] = value
    assert list(headers.raw_items()) == []


# Headers: mapping semantics, one row per operation on sample().


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        # Lookups are case-insensitive.
        (lambda h: h["host"], "example.com"),
        (lambda h: h["HOST"], "example.com"),
        (lambda h: h.get("upgrade"), "websocket"),
        (lambda h: h.get("missing"), None),
        (lambda h: h.get("missing", "default"), "default"),
        # Membership is case-insensitive and false for non-str.
        (lambda h: "CONNECTION" in h, True),
        (lambda h: "missing" in h, False),
        (lambda h: 1 in h, False),
        # get_all returns every value in order, and a copy.
        (lambda h: h.get_all("Connection"), ["Upgrade", "keep-alive"]),
        (lambda h: h.get_all("missing"), []),
        # Iteration: distinct names, lower-cased, in order of first appearance.
        (list, ["host", "connection", "upgrade"]),
        (len, 3),
        (lambda h: list(h.keys()), ["host", "connection", "upgrade"]),
        # raw_items: every pair, in order, names in their case.
        (
            lambda h: list(h.raw_items()),
            [
                ("Host", "example.com"),
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("connection", "keep-alive"),
            ],
        ),
        (
            repr,
            "Headers([('Host', 'example.com'), ('Connection', 'Upgrade'), "
            "('Upgrade', 'websocket'), ('connection', 'keep-alive')])",
        ),
        (
            lambda h: h.serialize(),
            b"Host: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"connection: keep-alive\r\n\r\n",
        ),
    ],
)
def test_mapping_semantics(operation: Callable[[Headers], object], expected: object) -> None:
    assert operation(sample()) == expected


@pytest.mark.parametrize(
    ("operation", "exception"),
    [
        (lambda h: h["missing"], KeyError),
        (lambda h: h[1], KeyError),
        (lambda h: h["Connection"], MultipleValuesError),
        (lambda h: list(h.items()), MultipleValuesError),
        (lambda h: list(h.values()), MultipleValuesError),
    ],
)
def test_mapping_errors(operation: Callable[[Headers], object], exception: type[Exception]) -> None:
    with pytest.raises(exception):
        operation(sample())


def test_multiple_values_error() -> None:
    with pytest.raises(KeyError) as excinfo:
        sample()["CONNECTION"]
    assert isinstance(excinfo.value, MultipleValuesError)
    assert excinfo.value.name == "CONNECTION"
    assert str(excinfo.value) == "multiple values for header 'CONNECTION'"


def test_setitem_adds() -> None:
    headers = Headers()
    headers["X-A"] = "1"
    headers["x-a"] = "2"
    assert headers.get_all("X-A") == ["1", "2"]
    assert len(headers) == 1


def test_get_all_returns_a_copy() -> None:
    headers = sample()
    headers.get_all("connection").append("changed")
    assert headers.get_all("connection") == ["Upgrade", "keep-alive"]


def test_delitem_removes_every_value() -> None:
    headers = sample()
    del headers["CONNECTION"]
    assert "connection" not in headers
    assert list(headers) == ["host", "upgrade"]
    assert list(headers.raw_items()) == [("Host", "example.com"), ("Upgrade", "websocket")]
    # A name added again goes to the end of the iteration order.
    headers["Connection"] = "Upgrade"
    assert list(headers) == ["host", "upgrade", "connection"]


@pytest.mark.parametrize("name", ["missing", 1])
def test_delitem_missing(name: Any) -> None:
    headers = sample()
    with pytest.raises(KeyError):
        del headers[name]
    assert headers == sample()


def test_copy_is_independent() -> None:
    headers = sample()
    copy = headers.copy()
    assert copy == headers
    assert type(copy) is Headers
    copy["Connection"] = "close"
    del copy["Host"]
    assert headers == sample()
    assert list(headers.raw_items()) == list(sample().raw_items())


def test_clear() -> None:
    headers = sample()
    headers.clear()
    assert len(headers) == 0
    assert list(headers.raw_items()) == []
    assert headers.serialize() == b"\r\n"


def test_update_adds_every_value() -> None:
    headers = Headers(Host="x")
    headers.update(sample(), Extra="1")
    assert headers.get_all("host") == ["x", "example.com"]
    assert headers.get_all("connection") == ["Upgrade", "keep-alive"]
    assert headers["extra"] == "1"
    headers.update([("Host", "y")])
    headers.update({"Host": "z"})
    headers.update()
    assert headers.get_all("host") == ["x", "example.com", "y", "z"]


def test_update_with_itself() -> None:
    headers = Headers([("A", "1"), ("a", "2")])
    headers.update(headers)
    assert headers.get_all("a") == ["1", "2", "1", "2"]


def test_pop_and_setdefault_from_mutable_mapping() -> None:
    headers = sample()
    assert headers.pop("HOST") == "example.com"
    assert "host" not in headers
    assert headers.setdefault("Origin", "https://example.com") == "https://example.com"
    assert headers.setdefault("origin", "other") == "https://example.com"


# Headers: equality. Same values per name in the same order; order across names is ignored.


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (Headers(A="1", B="2"), Headers(B="2", A="1"), True),
        (Headers(A="1"), Headers(a="1"), True),
        (Headers([("A", "1"), ("A", "2")]), Headers([("a", "1"), ("A", "2")]), True),
        (Headers([("A", "1"), ("A", "2")]), Headers([("A", "2"), ("A", "1")]), False),
        (Headers(A="1"), Headers(A="1", B="2"), False),
        (Headers(A="1"), Headers(A="2"), False),
        (Headers(), Headers(), True),
        (Headers(A="1"), {"a": "1"}, True),
        (Headers(A="1"), {"A": "2"}, False),
        (Headers(A="1"), {"A": 1}, False),
        (Headers(A="1"), [("A", "1")], False),
        (Headers(A="1"), "A: 1", False),
    ],
)
def test_equality(left: Headers, right: object, equal: bool) -> None:
    assert (left == right) is equal
    assert (right == left) is equal
    assert (left != right) is not equal


def test_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(Headers())


def test_is_a_mapping() -> None:
    assert isinstance(Headers(), Mapping)


# Headers.serialize(): the header-injection guard.


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Evil", "a\r\nSet-Cookie: x=1"),
        ("X-Evil", "a\rb"),
        ("X-Evil", "a\nb"),
        ("X-Evil", "a\x00b"),
        ("X-Evil", "a\x01b"),
        ("X-Evil", "a\x7fb"),
        ("X-Evil", "a\u0100b"),
        ("X-Evil", "\u20ac"),
        ("X-Evil", " leading"),
        ("X-Evil", "trailing\t"),
        ("X-Evil\r\nSet-Cookie", "x"),
        ("X Evil", "x"),
        ("X-Evil:", "x"),
        ("", "x"),
        ("X-\u00e9", "x"),
    ],
)
def test_serialize_rejects_bad_header(name: str, value: str) -> None:
    headers = Headers([("Host", "example.com"), (name, value), ("Upgrade", "websocket")])
    with pytest.raises(ValueError, match="header") as excinfo:
        headers.serialize()
    # The message names the header at fault.
    assert repr(name) in str(excinfo.value) or name in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("X-Empty", "", b"X-Empty: \r\n"),
        ("X-Tab", "a\tb", b"X-Tab: a\tb\r\n"),
        ("X-Latin1", "caf\u00e9 \x80\xff", b"X-Latin1: caf\xe9 \x80\xff\r\n"),
        ("!#$%&'*+-.^_`|~09az", "x", b"!#$%&'*+-.^_`|~09az: x\r\n"),
    ],
)
def test_serialize_accepts(name: str, value: str, line: bytes) -> None:
    assert Headers([(name, value)]).serialize() == line + b"\r\n"


# Value parsers: Connection, Upgrade, Sec-WebSocket-Protocol.


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("Upgrade", ["Upgrade"]),
        ("keep-alive, Upgrade", ["keep-alive", "Upgrade"]),
        ("keep-alive,Upgrade", ["keep-alive", "Upgrade"]),
        (" \tkeep-alive \t, \tUpgrade\t ", ["keep-alive", "Upgrade"]),
        # RFC 9110 §5.6.1.2: empty elements are accepted and skipped.
        (",Upgrade", ["Upgrade"]),
        ("Upgrade,", ["Upgrade"]),
        ("a, , ,b,,", ["a", "b"]),
        ("", []),
        (" , ,", []),
    ],
)
def test_parse_connection(header: str, parsed: list[str]) -> None:
    assert parse_connection(header) == parsed


@pytest.mark.parametrize(
    ("header", "pos"),
    [
        ("Upgrade keep-alive", 8),
        ("Upgrade;", 7),
        ("Up/grade", 2),
        ('"Upgrade"', 0),
        ("Upgrade, @", 9),
        ("Upgr\u00e9de", 4),
    ],
)
def test_parse_connection_errors(header: str, pos: int) -> None:
    with pytest.raises(InvalidHeaderFormat) as excinfo:
        parse_connection(header)
    assert excinfo.value.name == "Connection"
    assert excinfo.value.pos == pos


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("websocket", ["websocket"]),
        ("WebSocket", ["WebSocket"]),
        ("HTTP/2.0, SHTTP/1.3, IRC/6.9, RTA/x11", ["HTTP/2.0", "SHTTP/1.3", "IRC/6.9", "RTA/x11"]),
        ("h2c , websocket", ["h2c", "websocket"]),
        (",websocket,", ["websocket"]),
    ],
)
def test_parse_upgrade(header: str, parsed: list[str]) -> None:
    assert parse_upgrade(header) == parsed


@pytest.mark.parametrize(
    ("header", "pos"),
    [("HTTP/", 5), ("HTTP/ 2", 5), ("/2.0", 0), ("HTTP/2/0", 6), ("web socket", 4)],
)
def test_parse_upgrade_errors(header: str, pos: int) -> None:
    with pytest.raises(InvalidHeaderFormat) as excinfo:
        parse_upgrade(header)
    assert excinfo.value.name == "Upgrade"
    assert excinfo.value.pos == pos


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("chat", ["chat"]),
        ("chat, superchat", ["chat", "superchat"]),
        ("v1.chat.example.com,v2", ["v1.chat.example.com", "v2"]),
        ("", []),
    ],
)
def test_parse_subprotocol(header: str, parsed: list[str]) -> None:
    assert parse_subprotocol(header) == parsed


@pytest.mark.parametrize(("header", "pos"), [("chat superchat", 5), ("chat/1", 4), ("a,=", 2)])
def test_parse_subprotocol_errors(header: str, pos: int) -> None:
    with pytest.raises(InvalidHeaderFormat) as excinfo:
        parse_subprotocol(header)
    assert excinfo.value.name == "Sec-WebSocket-Protocol"
    assert excinfo.value.pos == pos


# Sec-WebSocket-Extensions.


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("permessage-deflate", [("permessage-deflate", [])]),
        (
            "permessage-deflate; client_max_window_bits",
            [("permessage-deflate", [("client_max_window_bits", None)])],
        ),
        (
            "permessage-deflate;client_max_window_bits=10;server_no_context_takeover",
            [
                (
                    "permessage-deflate",
                    [("client_max_window_bits", "10"), ("server_no_context_takeover", None)],
                )
            ],
        ),
        # RFC 6455 §9.1 allows whitespace around ";" and "=" and quoted values.
        (
            'permessage-deflate ; server_max_window_bits = "10" , x-webkit',
            [("permessage-deflate", [("server_max_window_bits", "10")]), ("x-webkit", [])],
        ),
        # Escapes are undone; the result must be a token.
        ('a; b="\\1\\0"', [("a", [("b", "10")])]),
        ('a; b=""x', None),
        (
            "a, a; x=1; x=2",
            [("a", []), ("a", [("x", "1"), ("x", "2")])],
        ),
        (", a ,, b ,", [("a", []), ("b", [])]),
        ("", []),
    ],
)
def test_parse_extension(header: str, parsed: list[ExtensionHeader] | None) -> None:
    if parsed is None:
        with pytest.raises(InvalidHeaderFormat):
            parse_extension(header)
    else:
        assert parse_extension(header) == parsed


@pytest.mark.parametrize(
    ("header", "error", "pos"),
    [
        ("a;", "expected token", 2),
        ("a; ", "expected token", 3),
        ("a;;b", "expected token", 2),
        ("a; b=", "expected token", 5),
        ("a; b=;", "expected token", 5),
        ("a; b c", "expected comma", 5),
        ("a b", "expected comma", 2),
        ("a; b=c d", "expected comma", 7),
        ('a; b="', "unterminated quoted string", 6),
        ('a; b="10', "unterminated quoted string", 8),
        ('a; b="10\\', "invalid escape in quoted string", 9),
        ('a; b="1\\\n0"', "invalid escape in quoted string", 8),
        ('a; b="1\x000"', "invalid character in quoted string", 7),
        ('a; b="1 0"', "quoted value is not a token", 5),
        ('a; b=""', "quoted value is not a token", 5),
        ('a; b="\\""', "quoted value is not a token", 5),
        ("a; b=@", "expected token", 5),
    ],
)
def test_parse_extension_errors(header: str, error: str, pos: int) -> None:
    with pytest.raises(InvalidHeaderFormat) as excinfo:
        parse_extension(header)
    assert excinfo.value.name == "Sec-WebSocket-Extensions"
    assert excinfo.value.error == error
    assert excinfo.value.pos == pos


@pytest.mark.parametrize(
    ("extensions", "header"),
    [
        ([], ""),
        ([("permessage-deflate", [])], "permessage-deflate"),
        (
            [
                ("permessage-deflate", [("client_max_window_bits", None), ("x", "10")]),
                ("x-other", []),
            ],
            "permessage-deflate; client_max_window_bits; x=10, x-other",
        ),
    ],
)
def test_build_extension(extensions: list[ExtensionHeader], header: str) -> None:
    assert build_extension(extensions) == header
    assert parse_extension(header) == extensions


@pytest.mark.parametrize(
    "extensions",
    [
        [("bad name", [])],
        [("a", [("bad\r\nname", None)])],
        [("a", [("b", "1 0")])],
        [("a", [("b", '"10"')])],
        [("a", [("b", "")])],
    ],
)
def test_build_extension_errors(extensions: list[ExtensionHeader]) -> None:
    with pytest.raises(ValueError, match="invalid"):
        build_extension(extensions)


# Subprotocol builders.


@pytest.mark.parametrize(
    ("subprotocols", "header"),
    [([], ""), (["chat"], "chat"), (("chat", "v2.chat"), "chat, v2.chat")],
)
def test_build_subprotocol(subprotocols: list[str], header: str) -> None:
    validate_subprotocols(subprotocols)
    assert build_subprotocol(subprotocols) == header
    assert parse_subprotocol(header) == list(subprotocols)


@pytest.mark.parametrize(
    ("subprotocols", "exception"),
    [
        ("chat", TypeError),
        (b"chat", TypeError),
        (None, TypeError),
        ({"chat"}, TypeError),
        ([b"chat"], TypeError),
        (["chat", 1], TypeError),
        ([""], ValueError),
        (["chat room"], ValueError),
        (["chat\r\nX-Evil: 1"], ValueError),
        (["chat,other"], ValueError),
    ],
)
def test_validate_subprotocols_errors(subprotocols: Any, exception: type[Exception]) -> None:
    with pytest.raises(exception):
        validate_subprotocols(subprotocols)
    with pytest.raises(exception):
        build_subprotocol(subprotocols)


# H6: hostile values cost linear time. The assertions are structural: the scan runs to the
# expected position and stops there; no timing.


def test_h6_long_whitespace_in_subprotocol() -> None:
    header = "b" + " " * 8000 + "x"
    with pytest.raises(InvalidHeaderFormat) as excinfo:
        parse_subprotocol(header)
    # The whitespace run was skipped in one pass and the error is at the "x".
    assert excinfo.value.pos == 8001
    assert excinfo.value.error == "expected comma"


def test_h6_unterminated_quoted_string_of_escapes() -> None:
    header = 'a; b="' + "\\c" * 4000
    with pytest.raises(InvalidHeaderFormat) as excinfo:
        parse_extension(header)
    assert excinfo.value.error == "unterminated quoted string"
    assert excinfo.value.pos == len(header)


def test_h6_terminated_quoted_string_of_escapes() -> None:
    header = 'a; b="' + "\\c" * 4000 + '"'
    assert parse_extension(header) == [("a", [("b", "c" * 4000)])]


def test_h6_long_connection_list() -> None:
    tokens = [f"t{i}" for i in range(4000)]
    assert parse_connection(", ".join(tokens)) == tokens
    with pytest.raises(InvalidHeaderFormat) as excinfo:
        parse_connection(", ".join(tokens) + " @")
    assert excinfo.value.pos == len(", ".join(tokens)) + 1


def test_h6_many_empty_elements() -> None:
    assert parse_connection(", " * 4000 + "a" + " ," * 4000) == ["a"]


def test_h6_long_upgrade_and_extension_lists() -> None:
    assert parse_upgrade(", ".join(["websocket"] * 4000)) == ["websocket"] * 4000
    header = ", ".join(["e; a=1; b"] * 2000)
    assert parse_extension(header) == [("e", [("a", "1"), ("b", None)])] * 2000


# WWW-Authenticate and Authorization (RFC 7617).


@pytest.mark.parametrize(
    ("realm", "header"),
    [
        ("", 'Basic realm="", charset="UTF-8"'),
        ("my realm", 'Basic realm="my realm", charset="UTF-8"'),
        ('say "hi"', 'Basic realm="say \\"hi\\"", charset="UTF-8"'),
        ("back\\slash", 'Basic realm="back\\\\slash", charset="UTF-8"'),
        ("caf\u00e9\t", 'Basic realm="caf\u00e9\t", charset="UTF-8"'),
    ],
)
def test_build_www_authenticate_basic(realm: str, header: str) -> None:
    assert build_www_authenticate_basic(realm) == header
    Headers([("WWW-Authenticate", header)]).serialize()


@pytest.mark.parametrize("realm", ["a\r\nSet-Cookie: x", "a\x00", "a\x7f", "\u20ac"])
def test_build_www_authenticate_basic_errors(realm: str) -> None:
    with pytest.raises(ValueError, match="cannot quote"):
        build_www_authenticate_basic(realm)


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (basic(b"user:pass"), ("user", "pass")),
        (basic(b"user:"), ("user", "")),
        (basic(b":"), ("", "")),
        (basic(b"user:pa:ss"), ("user", "pa:ss")),
        (basic("\u00fcser:p\u00e4ss".encode()), ("\u00fcser", "p\u00e4ss")),
        # RFC 9110 §11.1: the scheme is case-insensitive.
        ("basic " + basic(b"u:p")[6:], ("u", "p")),
        ("BASIC " + basic(b"u:p")[6:], ("u", "p")),
        ("Basic   " + basic(b"u:p")[6:] + " ", ("u", "p")),
    ],
)
def test_parse_authorization_basic(header: str, parsed: tuple[str, str]) -> None:
    assert parse_authorization_basic(header) == parsed


@pytest.mark.parametrize(
    ("header", "exception"),
    [
        # A3: each of these raises only InvalidHeaderFormat or InvalidHeaderValue.
        ("Basic !!!", InvalidHeaderFormat),
        (basic(b"nocolon"), InvalidHeaderValue),
        (basic(b"\xff\xfe:\x80"), InvalidHeaderValue),
        ("Basic " + "a" * 8192, InvalidHeaderValue),
        ("Bearer x", InvalidHeaderValue),
        ("Bearer", InvalidHeaderValue),
        ("Basic", InvalidHeaderFormat),
        ("Basic ", InvalidHeaderFormat),
        ("Basic\tdTpw", InvalidHeaderFormat),
        ("", InvalidHeaderFormat),
        (" Basic dTpw", InvalidHeaderFormat),
        ("Basic dTpw dTpw", InvalidHeaderFormat),
        ("Basic dTpw,", InvalidHeaderFormat),
        # Valid token68 but not base64: bad padding, or characters outside base64.
        ("Basic dTp", InvalidHeaderFormat),
        ("Basic dTpw=", InvalidHeaderFormat),
        ("Basic dTpw====", InvalidHeaderFormat),
        ("Basic dTp===", InvalidHeaderFormat),
        ("Basic d===", InvalidHeaderFormat),
        ("Basic dT-w", InvalidHeaderFormat),
        ("Basic dTp~", InvalidHeaderFormat),
        # RFC 7617 §2: no control characters in credentials.
        (basic(b"us\x00er:pass"), InvalidHeaderValue),
        (basic(b"user:pa\r\nss"), InvalidHeaderValue),
        (basic(b"user:pa\x7fss"), InvalidHeaderValue),
    ],
)
def test_parse_authorization_basic_errors(header: str, exception: type[Exception]) -> None:
    with pytest.raises(InvalidHeader) as excinfo:
        parse_authorization_basic(header)
    assert type(excinfo.value) is exception
    assert excinfo.value.name == "Authorization"


def test_parse_authorization_basic_length_limit() -> None:
    # 4096 characters are accepted; one more is not. Trailing whitespace pads the value to the
    # exact length, since base64 lengths are multiples of 4.
    password = "p" * (3066 - len("user:"))
    header = basic(f"user:{password}".encode()) + "  "
    assert len(header) == 4096
    assert parse_authorization_basic(header) == ("user", password)
    with pytest.raises(InvalidHeaderValue):
        parse_authorization_basic(header + " ")


@pytest.mark.parametrize(
    ("username", "password"),
    [("user", "pass"), ("", ""), ("\u00fcser", "p:\u00e4ss"), ("u", "a b c")],
)
def test_authorization_basic_round_trip(username: str, password: str) -> None:
    header = build_authorization_basic(username, password)
    assert header.startswith("Basic ")
    assert parse_authorization_basic(header) == (username, password)


def test_build_authorization_basic_value() -> None:
    # RFC 7617 §2 example.
    assert build_authorization_basic("Aladdin", "open sesame") == (
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    )


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("us:er", "pass"),
        ("user\r\n", "pass"),
        ("user", "pa\x00ss"),
        ("user", "\x7f"),
        ("user", "a\tb"),
    ],
)
def test_build_authorization_basic_errors(username: str, password: str) -> None:
    with pytest.raises(ValueError, match=r"colon|control"):
        build_authorization_basic(username, password)


# Host.


@pytest.mark.parametrize(
    ("host", "port", "secure", "always", "header"),
    [
        ("example.com", 80, False, False, "example.com"),
        ("example.com", 443, True, False, "example.com"),
        ("example.com", 443, False, False, "example.com:443"),
        ("example.com", 80, True, False, "example.com:80"),
        ("example.com", 8080, False, False, "example.com:8080"),
        ("example.com", 80, False, True, "example.com:80"),
        ("example.com", 443, True, True, "example.com:443"),
        ("127.0.0.1", 80, False, False, "127.0.0.1"),
        ("::1", 80, False, False, "[::1]"),
        ("::1", 8443, True, False, "[::1]:8443"),
        ("2001:db8::1", 443, True, True, "[2001:db8::1]:443"),
    ],
)
def test_build_host(host: str, port: int, secure: bool, always: bool, header: str) -> None:
    assert build_host(host, port, secure, always_include_port=always) == header
    if not always:
        assert build_host(host, port, secure) == header


def _iter_pairs() -> Iterator[tuple[str, str]]:
    yield "A", "1"
    yield "B", "2"


def test_constructor_from_generator() -> None:
    assert Headers(_iter_pairs()) == Headers(A="1", B="2")


# Sec-WebSocket-Key and Sec-WebSocket-Accept (RFC 6455 §1.3, §4.1, §4.2.2).


def test_accept_key_rfc_example() -> None:
    # RFC 6455 §1.3 worked example.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("key", ["", "AAAAAAAAAAAAAAAAAAAAAA==", "caf\u00e9"])
def test_accept_key_formula(key: str) -> None:
    digest = hashlib.sha1(key.encode("latin-1") + GUID.encode()).digest()
    assert accept_key(key) == base64.b64encode(digest).decode()


def test_accept_key_rejects_what_no_header_can_carry() -> None:
    with pytest.raises(ValueError, match="latin-1"):
        accept_key("\u20ac")


def test_generate_key() -> None:
    keys = {generate_key() for _ in range(100)}
    # Fresh for each connection.
    assert len(keys) == 100
    for key in keys:
        # RFC 6455 §4.1: 16 bytes, base64-encoded: 24 characters.
        assert len(key) == 24
        assert len(base64.b64decode(key, validate=True)) == 16
