"""Tests for syncws.exceptions: messages, attributes and the class tree."""

from __future__ import annotations

import pytest

from syncws.core.frames import Close
from syncws.core.http11 import Response
from syncws.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    DuplicateParameter,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidParameterName,
    InvalidParameterValue,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    SecurityError,
    SocksProxyError,
    WebSocketException,
)

# The tree drawn in the module docstring.
TREE: list[tuple[type[Exception], type[Exception]]] = [
    (ConnectionClosed, WebSocketException),
    (ConnectionClosedOK, ConnectionClosed),
    (ConnectionClosedError, ConnectionClosed),
    (InvalidHandshake, WebSocketException),
    (InvalidURI, InvalidHandshake),
    (InvalidMessage, InvalidHandshake),
    (SecurityError, InvalidMessage),
    (InvalidStatus, InvalidHandshake),
    (InvalidHeader, InvalidHandshake),
    (InvalidHeaderFormat, InvalidHeader),
    (InvalidHeaderValue, InvalidHeader),
    (InvalidOrigin, InvalidHeader),
    (InvalidUpgrade, InvalidHeader),
    (NegotiationError, InvalidHandshake),
    (DuplicateParameter, NegotiationError),
    (InvalidParameterName, NegotiationError),
    (InvalidParameterValue, NegotiationError),
    (InvalidProxy, InvalidHandshake),
    (ProxyError, InvalidHandshake),
    (InvalidProxyMessage, ProxyError),
    (InvalidProxyStatus, ProxyError),
    (SocksProxyError, ProxyError),
    (ProtocolError, WebSocketException),
    (PayloadTooBig, ProtocolError),
    (InvalidState, WebSocketException),
    (ConcurrencyError, WebSocketException),
    (ConcurrencyError, RuntimeError),
    (WebSocketException, Exception),
]


@pytest.mark.parametrize(
    ("cls", "base"), TREE, ids=[f"{cls.__name__}-{base.__name__}" for cls, base in TREE]
)
def test_class_tree(cls: type[Exception], base: type[Exception]) -> None:
    assert issubclass(cls, base)


def test_connection_closed_ok_and_error_are_distinct() -> None:
    assert not issubclass(ConnectionClosedOK, ConnectionClosedError)
    assert not issubclass(ConnectionClosedError, ConnectionClosedOK)


def test_concurrency_error_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError):
        raise ConcurrencyError("recv() called from two threads")


# ConnectionClosed


OK = Close(1000, "bye")
AWAY = Close(1001, "")


@pytest.mark.parametrize(
    ("rcvd", "sent", "rcvd_then_sent", "message"),
    [
        pytest.param(None, None, None, "no close frame received or sent", id="none"),
        pytest.param(None, OK, None, "sent 1000 (OK) bye; no close frame received", id="sent"),
        pytest.param(
            AWAY, None, None, "received 1001 (going away); no close frame sent", id="rcvd"
        ),
        pytest.param(
            AWAY, OK, True, "received 1001 (going away); then sent 1000 (OK) bye",
            id="rcvd-then-sent",
        ),
        pytest.param(
            AWAY, OK, False, "sent 1000 (OK) bye; then received 1001 (going away)",
            id="sent-then-rcvd",
        ),
        pytest.param(
            Close(1005, ""), Close(1005, ""), True,
            "received 1005 (no status received [internal]); "
            "then sent 1005 (no status received [internal])",
            id="no-status",
        ),
        pytest.param(
            Close(4321, "app"), Close(3001, ""), True,
            "received 4321 (private use) app; then sent 3001 (registered)",
            id="application-codes",
        ),
    ],
)  # fmt: skip
def test_connection_closed_str(
    rcvd: Close | None, sent: Close | None, rcvd_then_sent: bool | None, message: str
) -> None:
    for cls in (ConnectionClosed, ConnectionClosedOK, ConnectionClosedError):
        exc = cls(rcvd, sent, rcvd_then_sent)
        assert str(exc) == message
        assert exc.args == (message,)
        assert exc.rcvd is rcvd
        assert exc.sent is sent
        assert exc.rcvd_then_sent is rcvd_then_sent


@pytest.mark.parametrize(
    ("rcvd", "code", "reason"),
    [
        pytest.param(None, 1006, "", id="nothing-received"),
        pytest.param(Close(1005, ""), 1005, "", id="close-without-code"),
        pytest.param(Close(1000, "bye"), 1000, "bye", id="normal"),
        pytest.param(Close(4000, "ünïcode"), 4000, "ünïcode", id="private"),
    ],
)
def test_connection_closed_code_and_reason(rcvd: Close | None, code: int, reason: str) -> None:
    # code and reason are the peer's, whatever was sent.
    exc = ConnectionClosedError(rcvd, Close(1011, "ours"), False)
    assert exc.code == code
    assert exc.reason == reason


def test_connection_closed_default_order_is_unknown() -> None:
    exc = ConnectionClosed(None, None)
    assert exc.rcvd_then_sent is None


# InvalidMessage / SecurityError


@pytest.mark.parametrize(
    ("cls", "status", "expected"),
    [
        pytest.param(InvalidMessage, None, 400, id="invalid-message-default"),
        pytest.param(InvalidMessage, 505, 505, id="invalid-message-override"),
        pytest.param(SecurityError, None, 431, id="security-error-default"),
        pytest.param(SecurityError, 413, 413, id="security-error-override"),
    ],
)
def test_invalid_message_status(
    cls: type[InvalidMessage], status: int | None, expected: int
) -> None:
    exc = cls("bad request line", status=status)
    assert exc.status == expected
    assert str(exc) == "bad request line"


def test_invalid_message_default_status_attributes() -> None:
    assert InvalidMessage.default_status == 400
    assert SecurityError.default_status == 431


# InvalidHeader and subclasses


LONG = "a" * 50 + "MIDDLE" + "z" * 50


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(None, "missing Upgrade header", id="missing"),
        pytest.param("", "empty Upgrade header", id="empty"),
        pytest.param("h2c", "invalid Upgrade header: h2c", id="value"),
        pytest.param("x" * 80, "invalid Upgrade header: " + "x" * 80, id="80-chars-kept"),
        pytest.param(
            LONG, "invalid Upgrade header: " + "a" * 40 + "..." + "z" * 20, id="long-shortened"
        ),
    ],
)
def test_invalid_header(value: str | None, message: str) -> None:
    exc = InvalidHeader("Upgrade", value)
    assert str(exc) == message
    assert exc.name == "Upgrade"
    assert exc.value == value


def test_invalid_header_long_value_is_kept_in_attribute() -> None:
    exc = InvalidHeaderValue("Sec-WebSocket-Key", LONG)
    assert exc.value == LONG
    assert "MIDDLE" not in str(exc)
    assert len(str(exc)) < 100


def test_invalid_header_format() -> None:
    exc = InvalidHeaderFormat("Sec-WebSocket-Protocol", "expected token", "chat, =", 6)
    assert str(exc) == "invalid Sec-WebSocket-Protocol header: expected token at 6 in chat, ="
    assert exc.name == "Sec-WebSocket-Protocol"
    assert exc.error == "expected token"
    assert exc.pos == 6
    assert exc.value == "expected token at 6 in chat, ="


def test_invalid_header_format_long_header_shortened() -> None:
    exc = InvalidHeaderFormat("Sec-WebSocket-Extensions", "expected token", LONG, 3)
    assert "MIDDLE" not in str(exc)
    assert str(exc).startswith("invalid Sec-WebSocket-Extensions header: expected token at 3 in")


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        pytest.param(None, "missing Origin header", id="missing"),
        pytest.param("https://evil.test", "invalid Origin header: https://evil.test", id="bad"),
    ],
)
def test_invalid_origin(origin: str | None, message: str) -> None:
    exc = InvalidOrigin(origin)
    assert str(exc) == message
    assert exc.name == "Origin"
    assert exc.value == origin


def test_invalid_upgrade() -> None:
    exc = InvalidUpgrade("Connection", "keep-alive")
    assert str(exc) == "invalid Connection header: keep-alive"


# Other handshake errors


def test_invalid_uri() -> None:
    exc = InvalidURI("http://example.com/", "scheme isn't ws or wss")
    assert exc.uri == "http://example.com/"
    assert exc.msg == "scheme isn't ws or wss"
    assert str(exc) == "'http://example.com/' is not a valid WebSocket URI: scheme isn't ws or wss"


def test_invalid_status() -> None:
    response = Response(403, "Forbidden", body=b"go away")
    exc = InvalidStatus(response)
    assert exc.response is response
    assert str(exc) == "server rejected WebSocket connection: HTTP 403"


# Proxies


@pytest.mark.parametrize(
    ("proxy", "shown"),
    [
        pytest.param("socks4://proxy:1080", "socks4://proxy:1080", id="no-credentials"),
        pytest.param("http://user:secret@proxy", "http://user:***@proxy", id="password"),
        pytest.param("user:secret@proxy:3128", "user:***@proxy:3128", id="no-scheme"),
    ],
)
def test_invalid_proxy_hides_the_password(proxy: str, shown: str) -> None:
    exc = InvalidProxy(proxy, "unsupported scheme")
    assert exc.proxy == proxy
    assert exc.msg == "unsupported scheme"
    assert str(exc) == f"{shown!r} is not a valid proxy: unsupported scheme"


def test_invalid_proxy_status() -> None:
    response = Response(407, "Proxy Authentication Required", body=b"log in")
    exc = InvalidProxyStatus(response)
    assert exc.response is response
    assert exc.status_code == 407
    assert str(exc) == "proxy rejected connection: HTTP 407"


@pytest.mark.parametrize("code", [None, 5])
def test_socks_proxy_error(code: int | None) -> None:
    exc = SocksProxyError("SOCKS5 proxy did not connect", code)
    assert exc.code == code
    assert str(exc) == "SOCKS5 proxy did not connect"


def test_duplicate_parameter() -> None:
    exc = DuplicateParameter("server_max_window_bits")
    assert exc.name == "server_max_window_bits"
    assert str(exc) == "duplicate parameter: server_max_window_bits"


def test_invalid_parameter_name() -> None:
    exc = InvalidParameterName("foo")
    assert exc.name == "foo"
    assert str(exc) == "invalid parameter name: foo"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(None, "missing value for parameter client_max_window_bits", id="missing"),
        pytest.param(
            "16", "invalid value for parameter client_max_window_bits: '16'", id="invalid"
        ),
    ],
)
def test_invalid_parameter_value(value: str | None, message: str) -> None:
    exc = InvalidParameterValue("client_max_window_bits", value)
    assert exc.name == "client_max_window_bits"
    assert exc.value == value
    assert str(exc) == message


# ProtocolError / PayloadTooBig


@pytest.mark.parametrize(
    ("cls", "code", "expected"),
    [
        pytest.param(ProtocolError, None, 1002, id="protocol-error-default"),
        pytest.param(ProtocolError, 1007, 1007, id="protocol-error-invalid-data"),
        pytest.param(PayloadTooBig, None, 1009, id="payload-too-big-default"),
        pytest.param(PayloadTooBig, 1008, 1008, id="payload-too-big-override"),
    ],
)
def test_protocol_error_code(cls: type[ProtocolError], code: int | None, expected: int) -> None:
    exc = cls("bad frame", code=code)
    assert exc.code == expected
    assert str(exc) == "bad frame"


def test_protocol_error_default_codes() -> None:
    assert ProtocolError.default_code == 1002
    assert PayloadTooBig.default_code == 1009
