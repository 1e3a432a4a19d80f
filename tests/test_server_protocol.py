"""The server side of the opening handshake: bytes in, bytes out."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

import pytest

from syncws.core.extensions.base import Extension, ExtensionParameter, ServerExtensionFactory
from syncws.core.frames import Frame, Opcode
from syncws.core.http11 import Request, Response
from syncws.core.protocol import State
from syncws.core.server_protocol import ServerProtocol
from syncws.exceptions import (
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidState,
    InvalidUpgrade,
    NegotiationError,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
# RFC 6455 §1.3: the accept value for the sample nonce.
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

UPGRADE_LINES = (
    b"Host: example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)
REQUEST = b"GET /chat HTTP/1.1\r\n" + UPGRADE_LINES + b"\r\n"


def make_request(
    *extra: str, drop: Sequence[str] = (), replace: dict[str, str] | None = None
) -> bytes:
    """A handshake request with headers dropped, replaced or added."""
    lines = []
    for line in UPGRADE_LINES.decode().splitlines():
        name = line.split(":", 1)[0]
        if name in drop:
            continue
        if replace and name in replace:
            lines.append(f"{name}: {replace[name]}")
        else:
            lines.append(line)
    lines.extend(extra)
    return ("GET /chat HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def receive_request(server: ServerProtocol, data: bytes) -> Request:
    server.receive_data(data)
    [request] = server.events_received()
    assert isinstance(request, Request)
    return request


def handshake(data: bytes, **kwargs: object) -> tuple[ServerProtocol, Response]:
    """Run the server handshake on ``data``; return the protocol and the response it sent."""
    server = ServerProtocol(**kwargs)  # type: ignore[arg-type]
    server.receive_data(data)
    events = server.events_received()
    if events:
        [request] = events
        assert isinstance(request, Request)
        response = server.accept(request)
    else:
        assert server.handshake_exc is not None
        response = server.reject_exception(server.handshake_exc)
    server.send_response(response)
    return server, response


def sent_status(server: ServerProtocol) -> bytes:
    return b"".join(server.data_to_send()).split(b"\r\n", 1)[0]


def test_accept_sample_handshake() -> None:
    server, response = handshake(REQUEST)
    assert response.status_code == 101
    assert response.headers["Sec-WebSocket-Accept"] == ACCEPT
    assert response.headers["Upgrade"] == "websocket"
    assert response.headers["Connection"] == "Upgrade"
    assert server.state is State.OPEN
    assert server.request is not None
    assert server.request.path == "/chat"
    assert server.response is response
    assert server.data_to_send() == [response.serialize()]
    assert not server.eof_sent


def test_frames_sent_with_the_request_wait_for_the_handshake() -> None:
    # A client must wait for the 101, but bytes that came early are not lost.
    server = ServerProtocol()
    frame = Frame(Opcode.TEXT, b"early").serialize(mask=True)
    request = receive_request(server, REQUEST + frame)
    assert server.events_received() == []
    server.send_response(server.accept(request))
    assert server.events_received() == [Frame(Opcode.TEXT, b"early")]


def test_frames_are_discarded_after_a_rejection() -> None:
    server = ServerProtocol()
    frame = Frame(Opcode.TEXT, b"early").serialize(mask=True)
    receive_request(server, REQUEST + frame)
    server.send_response(server.reject(403, "no\n"))
    assert server.events_received() == []
    assert server.eof_sent
    server.receive_eof()
    assert server.state is State.CLOSED


def test_reject_builds_plain_text_response() -> None:
    server = ServerProtocol()
    response = server.reject(404, "Not here.\n")
    assert response.status_code == 404
    assert response.reason_phrase == "Not Found"
    assert response.body == b"Not here.\n"
    assert response.headers["Content-Length"] == "10"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Connection"] == "close"
    assert server.reject(200, "x").reason_phrase == "OK"
    assert server.reject(599, "x").reason_phrase == "Unknown"


def test_response_sent_twice() -> None:
    server, response = handshake(REQUEST)
    with pytest.raises(InvalidState):
        server.send_response(response)


def test_response_with_injection_is_refused_before_any_byte() -> None:
    # A4: an application-supplied header or reason phrase with CR LF never reaches the wire.
    server = ServerProtocol()
    request = receive_request(server, REQUEST)
    response = server.accept(request)
    response.headers["X-Evil"] = "a\r\nSet-Cookie: x=y"
    with pytest.raises(ValueError, match="X-Evil"):
        server.send_response(response)
    assert server.data_to_send() == []
    bad_reason = Response(101, "Switching\r\nX: y", server.accept(request).headers)
    with pytest.raises(ValueError, match="reason phrase"):
        server.send_response(bad_reason)
    assert server.data_to_send() == []


def test_connection_closed_during_handshake() -> None:
    server = ServerProtocol()
    server.receive_data(REQUEST[:20])
    server.receive_eof()
    assert server.events_received() == []
    assert isinstance(server.handshake_exc, InvalidMessage)
    assert server.state is State.CLOSED


def test_eof_while_the_application_decides() -> None:
    server = ServerProtocol()
    request = receive_request(server, REQUEST)
    server.receive_eof()
    assert server.state is State.CLOSED
    with pytest.raises(InvalidState):
        server.send_response(server.accept(request))


# H7, H8, H9, H10: exact statuses; never a 101.


@pytest.mark.parametrize(
    ("data", "status"),
    [
        # H7: Sec-WebSocket-Key absent, not 16 bytes, not base64, or sent twice.
        (make_request(drop=["Sec-WebSocket-Key"]), 400),
        (make_request(replace={"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"}), 400),
        (make_request(replace={"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!=="}), 400),
        (make_request(f"Sec-WebSocket-Key: {KEY}"), 400),
        # H8: another version, or none.
        (make_request(replace={"Sec-WebSocket-Version": "8"}), 426),
        (make_request(drop=["Sec-WebSocket-Version"]), 426),
        (make_request("Sec-WebSocket-Version: 13"), 426),
        # H9: not an upgrade; another protocol; another method; HTTP/1.0; no Host.
        (make_request(drop=["Upgrade", "Connection"]), 426),
        (make_request(drop=["Upgrade"]), 426),
        (make_request(replace={"Upgrade": "h2c"}), 426),
        (make_request(replace={"Connection": "keep-alive"}), 426),
        (REQUEST.replace(b"GET", b"POST", 1), 405),
        (REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0", 1), 505),
        (REQUEST.replace(b"HTTP/1.1", b"HTTP/2.0", 1), 505),
        (make_request(drop=["Host"]), 400),
        (make_request("Host: other.example"), 400),
        # H10: request smuggling shapes.
        (REQUEST.replace(b"GET /chat", b"GET  /chat", 1), 400),
        (REQUEST.replace(b"\r\n", b"\n"), 400),
        (REQUEST.replace(b"Upgrade: websocket\r\n", b"Upgrade: websocket\r\n  x\r\n", 1), 400),
        (REQUEST.replace(b"Host:", b"Host :", 1), 400),
        (REQUEST.replace(b"example.com", b"exam\x00ple.com", 1), 400),
        (REQUEST.replace(b"example.com", b"exam\rple.com", 1), 400),
        (make_request("Transfer-Encoding: chunked"), 400),
        (make_request("Content-Length: 5"), 400),
        (make_request("Content-Length: 0", "Content-Length: 0"), 400),
        (b"GET /\r\n\r\n", 400),
        # H11: a non-ASCII path.
        (REQUEST.replace(b"/chat", b"/\xe9", 1), 400),
    ],
)
def test_invalid_request_status(data: bytes, status: int) -> None:
    server, response = handshake(data)
    assert response.status_code == status
    assert sent_status(server).startswith(f"HTTP/1.1 {status} ".encode())
    assert server.state is not State.OPEN
    assert server.eof_sent
    assert server.handshake_exc is not None
    assert response.body.startswith(b"Failed to open a WebSocket connection")


def test_426_for_version_names_the_version() -> None:
    # RFC 6455 §4.4: the server lists the versions it supports.
    _, response = handshake(make_request(replace={"Sec-WebSocket-Version": "8"}))
    assert response.headers["Sec-WebSocket-Version"] == "13"
    assert "Upgrade" not in response.headers
    assert isinstance(_.handshake_exc, InvalidHeaderValue)


def test_426_for_missing_upgrade_names_websocket() -> None:
    server, response = handshake(make_request(drop=["Upgrade"]))
    assert response.headers["Upgrade"] == "websocket"
    assert isinstance(server.handshake_exc, InvalidUpgrade)


def test_405_names_allowed_method() -> None:
    _, response = handshake(REQUEST.replace(b"GET", b"POST", 1))
    assert response.headers["Allow"] == "GET"


def test_500_for_unexpected_error_hides_details() -> None:
    server = ServerProtocol()
    response = server.reject_exception(RuntimeError("secret detail"))
    assert response.status_code == 500
    assert b"secret" not in response.body


def test_upgrade_tokens_are_case_insensitive_and_listed() -> None:
    data = make_request(replace={"Upgrade": "WebSocket", "Connection": "keep-alive, UPGRADE"})
    _, response = handshake(data)
    assert response.status_code == 101


def test_connection_header_may_repeat() -> None:
    data = make_request("Connection: keep-alive", drop=["Connection"])
    _, response = handshake(data + b"")
    assert response.status_code == 426
    data = make_request("Connection: keep-alive", "Connection: Upgrade", drop=["Connection"])
    _, response = handshake(data)
    assert response.status_code == 101


def test_malformed_list_header_is_400() -> None:
    _, response = handshake(make_request(replace={"Connection": "Upgrade, ,,\x7f"}))
    assert response.status_code == 400


# A1: origin checks (cross-site WebSocket hijacking).


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://good.example", True),
        ("https://evil.example", False),
        ("null", False),
        ("https://good.example.evil.example", False),
        ("https://evil.example/https://good.example", False),
        ("HTTPS://GOOD.EXAMPLE", False),
        (None, False),
    ],
)
def test_A1_origin_exact_match(origin: str | None, allowed: bool) -> None:
    extra = [] if origin is None else [f"Origin: {origin}", "Cookie: session=secret"]
    server, response = handshake(make_request(*extra), origins=["https://good.example"])
    assert response.status_code == (101 if allowed else 403)
    if not allowed:
        assert isinstance(server.handshake_exc, InvalidOrigin)


def test_A1_missing_origin_only_when_allowed_explicitly() -> None:
    _, response = handshake(make_request(), origins=["https://good.example", None])
    assert response.status_code == 101
    _, response = handshake(make_request("Origin: null"), origins=["https://good.example", None])
    assert response.status_code == 403


def test_A1_origin_patterns_match_whole_origin() -> None:
    origins = [re.compile(r"https://[a-z]+\.good\.example")]
    _, response = handshake(make_request("Origin: https://app.good.example"), origins=origins)
    assert response.status_code == 101
    _, response = handshake(
        make_request("Origin: https://app.good.example.evil.example"), origins=origins
    )
    assert response.status_code == 403


def test_A1_two_origins_is_400() -> None:
    server, response = handshake(
        make_request("Origin: https://good.example", "Origin: https://evil.example"),
        origins=["https://good.example"],
    )
    assert response.status_code == 400
    assert isinstance(server.handshake_exc, InvalidHeader)


def test_origins_must_be_a_list() -> None:
    with pytest.raises(TypeError):
        ServerProtocol(origins="https://good.example")


def test_no_origin_check_by_default() -> None:
    _, response = handshake(make_request("Origin: https://anything.example"))
    assert response.status_code == 101


# Subprotocols.


@pytest.mark.parametrize(
    ("offered", "supported", "chosen", "status"),
    [
        (None, None, None, 101),
        ("chat", None, None, 101),
        # The server's order of preference wins, as in websockets.
        ("chat, superchat", ["superchat", "chat"], "superchat", 101),
        ("superchat, chat", ["chat", "superchat"], "chat", 101),
        ("v2.json", ["v1.json", "v2.json"], "v2.json", 101),
        ("other", ["chat"], None, 400),
        (None, ["chat"], None, 400),
    ],
)
def test_subprotocol_negotiation(
    offered: str | None, supported: list[str] | None, chosen: str | None, status: int
) -> None:
    extra = [] if offered is None else [f"Sec-WebSocket-Protocol: {offered}"]
    server, response = handshake(make_request(*extra), subprotocols=supported)
    assert response.status_code == status
    assert server.subprotocol == chosen
    if status == 101:
        assert response.headers.get("Sec-WebSocket-Protocol") == chosen
    else:
        assert isinstance(server.handshake_exc, NegotiationError)


def test_subprotocol_offered_in_several_headers() -> None:
    data = make_request("Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: b")
    server, _ = handshake(data, subprotocols=["b"])
    assert server.subprotocol == "b"


def test_select_subprotocol_hook() -> None:
    seen: list[Sequence[str]] = []

    def select(protocol: ServerProtocol, subprotocols: Sequence[str]) -> str | None:
        seen.append(subprotocols)
        return subprotocols[-1] if subprotocols else None

    server, response = handshake(
        make_request("Sec-WebSocket-Protocol: a, b"), select_subprotocol=select
    )
    assert seen == [["a", "b"]]
    assert server.subprotocol == "b"
    assert response.headers["Sec-WebSocket-Protocol"] == "b"


def test_select_subprotocol_replaces_the_default_rule() -> None:
    server, response = handshake(
        make_request("Sec-WebSocket-Protocol: a, b"),
        subprotocols=["b", "a"],
        select_subprotocol=lambda protocol, offered: None,
    )
    assert response.status_code == 101
    assert server.subprotocol is None
    assert "Sec-WebSocket-Protocol" not in response.headers


def test_select_subprotocol_may_be_replaced_before_accept() -> None:
    # The I/O layer hands over a hook that calls the server's with the connection, once the
    # connection exists.
    server = ServerProtocol(subprotocols=["a"], select_subprotocol=lambda protocol, offered: "a")
    server.select_subprotocol = lambda protocol, offered: offered[-1]
    server.receive_data(make_request("Sec-WebSocket-Protocol: a, b"))
    [request] = server.events_received()
    assert isinstance(request, Request)
    response = server.accept(request)
    assert server.subprotocol == "b"
    assert response.headers["Sec-WebSocket-Protocol"] == "b"


def test_select_subprotocol_raising_negotiation_error_is_400() -> None:
    def refuse(protocol: ServerProtocol, offered: Sequence[str]) -> str | None:
        raise NegotiationError("no thanks")

    server, response = handshake(
        make_request("Sec-WebSocket-Protocol: a"), select_subprotocol=refuse
    )
    assert response.status_code == 400
    assert str(server.handshake_exc) == "no thanks"


def test_select_subprotocol_must_pick_an_offered_one() -> None:
    server, response = handshake(
        make_request("Sec-WebSocket-Protocol: a"), select_subprotocol=lambda p, s: "z"
    )
    assert response.status_code == 400
    assert isinstance(server.handshake_exc, NegotiationError)


# Extensions, through a fake factory (permessage-deflate has its own tests).


class Tag(Extension):
    def __init__(self, name: str, params: Sequence[ExtensionParameter]) -> None:
        self.name = name
        self.params = list(params)

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return frame

    def encode(self, frame: Frame) -> Frame:
        return frame


class TagFactory(ServerExtensionFactory):
    def __init__(self, name: str, refuse: str | None = None) -> None:
        self.name = name
        self.refuse = refuse

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], Extension]:
        if any(name == self.refuse for name, _ in params):
            raise NegotiationError(f"refused {self.refuse}")
        return list(params), Tag(self.name, params)


def test_extension_negotiation_takes_first_acceptable_offer() -> None:
    data = make_request("Sec-WebSocket-Extensions: x-tag; bad, x-tag; good=1, x-other")
    server, response = handshake(data, extensions=[TagFactory("x-tag", refuse="bad")])
    assert response.headers["Sec-WebSocket-Extensions"] == "x-tag; good=1"
    [extension] = server.extensions
    assert isinstance(extension, Tag)
    assert extension.params == [("good", "1")]


def test_extension_offered_twice_is_accepted_once() -> None:
    data = make_request("Sec-WebSocket-Extensions: x-tag, x-tag; a")
    server, response = handshake(data, extensions=[TagFactory("x-tag")])
    assert response.headers["Sec-WebSocket-Extensions"] == "x-tag"
    assert len(server.extensions) == 1


def test_extension_not_supported_is_ignored() -> None:
    server, response = handshake(make_request("Sec-WebSocket-Extensions: x-other"))
    assert "Sec-WebSocket-Extensions" not in response.headers
    assert server.extensions == []


def test_extension_header_malformed_is_400() -> None:
    data = make_request('Sec-WebSocket-Extensions: a; b="' + "\\c" * 4000)
    _, response = handshake(data, extensions=[TagFactory("a")])
    assert response.status_code == 400


def test_rsv_bits_allowed_once_an_extension_is_negotiated() -> None:
    data = make_request("Sec-WebSocket-Extensions: x-tag")
    server, _ = handshake(data, extensions=[TagFactory("x-tag")])
    server.data_to_send()
    # The fake extension does not clear RSV2, so the frame fails after decoding, with 1002,
    # instead of failing at the header: the extension had its say.
    server.receive_data(Frame(Opcode.TEXT, b"x", rsv2=True).serialize(mask=True))
    assert server.parser_exc is not None
    assert "once extensions decoded" in str(server.parser_exc)


def test_accept_key_matches_rfc_formula() -> None:
    key = base64.b64encode(bytes(range(16))).decode()
    _, response = handshake(make_request(replace={"Sec-WebSocket-Key": key}))
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    assert response.headers["Sec-WebSocket-Accept"] == base64.b64encode(digest).decode()


def test_state_open_skips_handshake() -> None:
    server = ServerProtocol(state=State.OPEN)
    server.receive_data(Frame(Opcode.TEXT, b"hi").serialize(mask=True))
    assert server.events_received() == [Frame(Opcode.TEXT, b"hi")]
