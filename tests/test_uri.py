"""Tests for syncws.core.uri: parsing ws:// and wss:// URIs."""

from __future__ import annotations

from typing import Any

import pytest

from syncws.core.uri import WebSocketURI, parse_uri
from syncws.exceptions import InvalidURI

__all__: list[str] = []


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        # Schemes, default ports, case-insensitive scheme, lower-cased host.
        ("ws://example.com", WebSocketURI(False, "example.com", 80, "", "")),
        ("ws://example.com/", WebSocketURI(False, "example.com", 80, "/", "")),
        ("wss://example.com/", WebSocketURI(True, "example.com", 443, "/", "")),
        ("WS://Example.COM/", WebSocketURI(False, "example.com", 80, "/", "")),
        ("wSs://example.com/", WebSocketURI(True, "example.com", 443, "/", "")),
        # Ports.
        ("ws://example.com:8080/", WebSocketURI(False, "example.com", 8080, "/", "")),
        ("wss://example.com:80/", WebSocketURI(True, "example.com", 80, "/", "")),
        ("ws://example.com:443", WebSocketURI(False, "example.com", 443, "", "")),
        ("ws://example.com:1/", WebSocketURI(False, "example.com", 1, "/", "")),
        ("ws://example.com:65535/", WebSocketURI(False, "example.com", 65535, "/", "")),
        ("ws://example.com:08080/", WebSocketURI(False, "example.com", 8080, "/", "")),
        # RFC 3986 §3.2.3: an empty port is the default one.
        ("ws://example.com:/", WebSocketURI(False, "example.com", 80, "/", "")),
        ("wss://example.com:", WebSocketURI(True, "example.com", 443, "", "")),
        # IP addresses.
        ("ws://127.0.0.1:8765/", WebSocketURI(False, "127.0.0.1", 8765, "/", "")),
        ("ws://[::1]/", WebSocketURI(False, "::1", 80, "/", "")),
        ("ws://[::1]:8080/", WebSocketURI(False, "::1", 8080, "/", "")),
        ("wss://[2001:DB8::1]", WebSocketURI(True, "2001:db8::1", 443, "", "")),
        ("ws://[::ffff:1.2.3.4]:/", WebSocketURI(False, "::ffff:1.2.3.4", 80, "/", "")),
        # Paths and queries.
        ("ws://h/chat?room=1", WebSocketURI(False, "h", 80, "/chat", "room=1")),
        ("ws://h?room=1", WebSocketURI(False, "h", 80, "", "room=1")),
        ("ws://h/?", WebSocketURI(False, "h", 80, "/", "")),
        ("ws://h/a?b?c/d", WebSocketURI(False, "h", 80, "/a", "b?c/d")),
        ("ws://h/a/b/../c;p=1", WebSocketURI(False, "h", 80, "/a/b/../c;p=1", "")),
        ("ws://h/~!$&'()*+,;=:@", WebSocketURI(False, "h", 80, "/~!$&'()*+,;=:@", "")),
        ("ws://h/a@b", WebSocketURI(False, "h", 80, "/a@b", "")),
        ("ws://h?a@b:c", WebSocketURI(False, "h", 80, "", "a@b:c")),
        # Percent-encoding of what RFC 3986 does not allow as is, from UTF-8; escapes stay.
        ("ws://h/a b", WebSocketURI(False, "h", 80, "/a%20b", "")),
        ("ws://h/?q=a b", WebSocketURI(False, "h", 80, "/", "q=a%20b")),
        ("ws://h/caf\u00e9", WebSocketURI(False, "h", 80, "/caf%C3%A9", "")),
        ("ws://h/?q=\u20ac", WebSocketURI(False, "h", 80, "/", "q=%E2%82%AC")),
        ("ws://h/%20%C3%A9", WebSocketURI(False, "h", 80, "/%20%C3%A9", "")),
        ("ws://h/%23", WebSocketURI(False, "h", 80, "/%23", "")),
        ('ws://h/<"{}|\\^`>', WebSocketURI(False, "h", 80, "/%3C%22%7B%7D%7C%5C%5E%60%3E", "")),
        ("ws://h/[x]", WebSocketURI(False, "h", 80, "/%5Bx%5D", "")),
        # IDNA.
        ("ws://b\u00fccher.example/", WebSocketURI(False, "xn--bcher-kva.example", 80, "/", "")),
        ("ws://B\u00dcCHER.example:81", WebSocketURI(False, "xn--bcher-kva.example", 81, "", "")),
        ("ws://xn--bcher-kva.example/", WebSocketURI(False, "xn--bcher-kva.example", 80, "/", "")),
        # User info, percent-decoded.
        (
            "ws://user:pass@example.com/",
            WebSocketURI(False, "example.com", 80, "/", "", "user", "pass"),
        ),
        (
            "wss://us%40er:p%3Ass%20w@[::1]:9000/x",
            WebSocketURI(True, "::1", 9000, "/x", "", "us@er", "p:ss w"),
        ),
        ("ws://user@h", WebSocketURI(False, "h", 80, "", "", "user", "")),
        ("ws://user:@h", WebSocketURI(False, "h", 80, "", "", "user", "")),
        ("ws://:pass@h", WebSocketURI(False, "h", 80, "", "", "", "pass")),
        ("ws://@h", WebSocketURI(False, "h", 80, "", "", "", "")),
        ("ws://u:p:q@h", WebSocketURI(False, "h", 80, "", "", "u", "p:q")),
        ("ws://%C3%BC:%E2%82%AC@h", WebSocketURI(False, "h", 80, "", "", "\u00fc", "\u20ac")),
        ("ws://\u00fc:\u20ac@h", WebSocketURI(False, "h", 80, "", "", "\u00fc", "\u20ac")),
    ],
)
def test_parse_uri(uri: str, parsed: WebSocketURI) -> None:
    assert parse_uri(uri) == parsed


@pytest.mark.parametrize(
    ("uri", "resource_name"),
    [
        ("ws://h", "/"),
        ("ws://h/", "/"),
        ("ws://h/chat", "/chat"),
        ("ws://h?q", "/?q"),
        ("ws://h/?", "/"),
        ("ws://h/a/b?c=d&e", "/a/b?c=d&e"),
        ("ws://h/a b?c d", "/a%20b?c%20d"),
    ],
)
def test_resource_name(uri: str, resource_name: str) -> None:
    assert parse_uri(uri).resource_name == resource_name


@pytest.mark.parametrize(
    ("uri", "user_info"),
    [
        ("ws://h/", None),
        ("ws://user:pass@h/", ("user", "pass")),
        ("ws://user@h/", ("user", "")),
    ],
)
def test_user_info(uri: str, user_info: tuple[str, str] | None) -> None:
    assert parse_uri(uri).user_info == user_info


def test_user_info_without_password() -> None:
    assert WebSocketURI(False, "h", 80, "/", "", "user").user_info == ("user", "")


def test_repr_hides_password() -> None:
    text = repr(parse_uri("ws://user:s3cret@h/"))
    assert "user" in text
    assert "s3cret" not in text


def test_frozen() -> None:
    uri = parse_uri("ws://h/")
    with pytest.raises(AttributeError):
        uri.host = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("uri", "msg"),
    [
        # Schemes.
        ("http://example.com/", "scheme"),
        ("https://example.com/", "scheme"),
        ("wsx://example.com/", "scheme"),
        ("example.com", "scheme"),
        ("", "scheme"),
        (" ws://example.com/", "scheme"),
        ("//example.com/", "scheme"),
        ("ws:example.com", "//"),
        ("ws:/example.com", "//"),
        ("ws:", "//"),
        # RFC 6455 §3: no fragment, not even an empty one.
        ("ws://h/#frag", "fragment"),
        ("ws://h/#", "fragment"),
        ("ws://h/?q#f", "fragment"),
        ("ws://h#f", "fragment"),
        # Host.
        ("ws://", "missing host"),
        ("ws:///path", "missing host"),
        ("ws://:80/", "missing host"),
        ("ws://user:pass@/", "missing host"),
        ("ws://exa mple.com/", "invalid character"),
        ("ws://example.com /", "invalid character"),
        ("ws://ex%61mple.com/", "invalid character"),
        ("ws://exam<ple.com/", "invalid character"),
        ("ws://exam\\ple.com/", "invalid character"),
        ('ws://exam"ple.com/', "invalid character"),
        ("ws://a\u3000b/", "invalid character"),
        ("ws://" + "a" * 64 + "\u00e9.example/", "IDNA"),
        ("ws://\u00e9..example/", "IDNA"),
        ("ws://\udcff.example/", "IDNA"),
        # IPv6 literals.
        ("ws://[::1/", "unterminated"),
        ("ws://[::1", "unterminated"),
        ("ws://[]/", "invalid IPv6"),
        ("ws://[::g]/", "invalid IPv6"),
        ("ws://[1.2.3.4]/", "invalid IPv6"),
        ("ws://[v1.fe]/", "invalid IPv6"),
        ("ws://[fe80::1%25eth0]/", "zone"),
        ("ws://[fe80::1%eth0]/", "zone"),
        ("ws://[::1]x/", "after IPv6"),
        ("ws://[::1]]/", "after IPv6"),
        ("ws://[::1]8080/", "after IPv6"),
        ("ws://::1/", "missing host"),
        # Ports.
        ("ws://h:http/", "invalid port"),
        ("ws://h:-1/", "invalid port"),
        ("ws://h:+80/", "invalid port"),
        ("ws://h:8 0/", "invalid port"),
        ("ws://h:80:80/", "invalid port"),
        ("ws://h:\u0668\u0660/", "invalid port"),
        ("ws://h:123456/", "invalid port"),
        ("ws://h:" + "9" * 5000 + "/", "invalid port"),
        ("ws://h:65536/", "out of range"),
        ("ws://h:99999/", "out of range"),
        ("ws://h:0/", "out of range"),
        ("ws://h:00000/", "out of range"),
        ("ws://[::1]:65536/", "out of range"),
        # User info.
        ("ws://a@b@h/", "more than one @"),
        ("ws://u%3Ax:p@h/", "colon"),
        ("ws://user:%0D%0AX-Evil:%201@h/", "control character"),
        ("ws://us%00er:p@h/", "control character"),
        ("ws://user:%7F@h/", "control character"),
        ("ws://user:%FF@h/", "not UTF-8"),
        ("ws://%C3:p@h/", "not UTF-8"),
        # Control characters anywhere: header injection guard.
        ("ws://h/\r\nX-Evil: 1", "control character"),
        ("ws://h/a\nb", "control character"),
        ("ws://h/a\rb", "control character"),
        ("ws://h/a\x00b", "control character"),
        ("ws://h/a\tb", "control character"),
        ("ws://h/?a\x1bb", "control character"),
        ("ws://h/a\x7fb", "control character"),
        ("ws://h/a\x85b", "control character"),
        ("ws://h\r\n/", "control character"),
        ("ws://h:80\n/", "control character"),
        ("ws\r://h/", "control character"),
        ("ws://u\x00:p@h/", "control character"),
        ("ws://h/\x00#frag", "control character"),
        # Path and query that cannot be encoded to UTF-8.
        ("ws://h/\udcff", "encoded"),
        ("ws://h/?\ud800", "encoded"),
    ],
)
def test_parse_uri_errors(uri: str, msg: str) -> None:
    with pytest.raises(InvalidURI) as excinfo:
        parse_uri(uri)
    assert excinfo.value.uri == uri
    assert msg in excinfo.value.msg


@pytest.mark.parametrize("uri", [b"ws://h/", None, 1])
def test_parse_uri_type_error(uri: Any) -> None:
    with pytest.raises(TypeError):
        parse_uri(uri)


def test_parse_uri_long_input() -> None:
    # A long path is percent-encoded in one pass; long hostile input only raises InvalidURI.
    assert parse_uri("ws://h/" + "\u00e9" * 10_000).path == "/" + "%C3%A9" * 10_000
    with pytest.raises(InvalidURI):
        parse_uri("ws://" + "[" * 10_000)
    with pytest.raises(InvalidURI):
        parse_uri("ws://" + "@" * 10_000)
