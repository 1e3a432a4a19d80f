"""The client side of the opening handshake: bytes in, bytes out."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pytest

from syncws.core.client_protocol import ClientProtocol
from syncws.core.extensions.base import ClientExtensionFactory, Extension, ExtensionParameter
from syncws.core.frames import Close, Frame, Opcode
from syncws.core.headers import accept_key
from syncws.core.http11 import Request, Response
from syncws.core.protocol import State
from syncws.core.uri import parse_uri
from syncws.exceptions import (
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
)

URI = parse_uri("ws://example.com/chat?room=1")


def make_client(uri: str = "ws://example.com/chat?room=1", **kwargs: object) -> ClientProtocol:
    client = ClientProtocol(parse_uri(uri), **kwargs)  # type: ignore[arg-type]
    client.send_request(client.connect())
    return client


def response_bytes(client: ClientProtocol, *extra: str, drop: Sequence[str] = ()) -> bytes:
    lines = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": accept_key(client.key),
    }
    text = "HTTP/1.1 101 Switching Protocols\r\n"
    text += "".join(f"{name}: {value}\r\n" for name, value in lines.items() if name not in drop)
    text += "".join(f"{line}\r\n" for line in extra)
    return (text + "\r\n").encode()


def test_request_shape() -> None:
    client = ClientProtocol(URI, origin="https://app.example")
    request = client.connect()
    assert request.path == "/chat?room=1"
    headers = request.headers
    assert headers["Host"] == "example.com"
    assert headers["Origin"] == "https://app.example"
    assert headers["Upgrade"] == "websocket"
    assert headers["Connection"] == "Upgrade"
    assert headers["Sec-WebSocket-Version"] == "13"
    assert len(base64.b64decode(headers["Sec-WebSocket-Key"], validate=True)) == 16
    assert "Authorization" not in headers
    assert "Sec-WebSocket-Protocol" not in headers
    client.send_request(request)
    assert client.data_to_send() == [request.serialize()]
    assert client.request is request


def test_request_host_keeps_port_and_brackets() -> None:
    assert ClientProtocol(parse_uri("ws://[::1]:8765/")).connect().headers["Host"] == "[::1]:8765"
    assert ClientProtocol(parse_uri("wss://h.example:443/")).connect().headers["Host"] == (
        "h.example"
    )


def test_request_sends_user_info_as_basic_auth() -> None:
    request = ClientProtocol(parse_uri("ws://alice:s%3Acret@example.com/")).connect()
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        b"alice:s:cret"
    ).decode()


def test_keys_are_random() -> None:
    keys = {ClientProtocol(URI).key for _ in range(200)}
    assert len(keys) == 200


def test_successful_handshake() -> None:
    client = make_client()
    client.receive_data(response_bytes(client))
    [response] = client.events_received()
    assert isinstance(response, Response)
    assert response.status_code == 101
    assert client.state is State.OPEN
    assert client.response is response
    assert client.handshake_exc is None


def test_K2_frame_in_same_segment_as_101() -> None:
    client = make_client()
    frame = Frame(Opcode.TEXT, b"first").serialize(mask=False)
    client.receive_data(response_bytes(client) + frame)
    events = client.events_received()
    assert isinstance(events[0], Response)
    assert events[1:] == [Frame(Opcode.TEXT, b"first")]


def test_response_split_in_single_bytes() -> None:
    client = make_client()
    data = response_bytes(client) + Frame(Opcode.BINARY, b"\x00" * 300).serialize(mask=False)
    for i in range(len(data)):
        client.receive_data(data[i : i + 1])
    events = client.events_received()
    assert client.state is State.OPEN
    assert events[1:] == [Frame(Opcode.BINARY, b"\x00" * 300)]


@pytest.mark.parametrize(
    ("extra", "drop", "exc_type"),
    [
        # K1: a bad, missing or duplicate Sec-WebSocket-Accept.
        (["Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="], ["Sec-WebSocket-Accept"],
         InvalidHeaderValue),
        ([], ["Sec-WebSocket-Accept"], InvalidHeader),
        (["Sec-WebSocket-Accept: x"], [], InvalidHeader),
        # Not an upgrade to websocket.
        ([], ["Upgrade"], InvalidUpgrade),
        (["Upgrade: h2c"], ["Upgrade"], InvalidUpgrade),
        ([], ["Connection"], InvalidUpgrade),
        (["Connection: keep-alive"], ["Connection"], InvalidUpgrade),
        # Subprotocols and extensions that were not offered.
        (["Sec-WebSocket-Protocol: chat"], [], NegotiationError),
        (["Sec-WebSocket-Extensions: permessage-deflate"], [], NegotiationError),
    ],
)  # fmt: skip
def test_invalid_101(extra: list[str], drop: list[str], exc_type: type[Exception]) -> None:
    client = make_client()
    client.receive_data(response_bytes(client, *extra, drop=drop))
    assert isinstance(client.handshake_exc, exc_type)
    state = client.state
    assert state is State.CONNECTING
    assert client.eof_sent
    assert client.close_expected()
    # Frames after a failed handshake are never delivered.
    client.receive_data(Frame(Opcode.TEXT, b"x").serialize(mask=False))
    [response] = client.events_received()
    assert isinstance(response, Response)
    client.receive_eof()
    assert client.state is State.CLOSED


def test_rejected_handshake_keeps_response_body() -> None:
    client = make_client()
    client.receive_data(
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\nContent-Type: text/plain\r\n\r\nGo away"
    )
    exc = client.handshake_exc
    assert isinstance(exc, InvalidStatus)
    assert exc.response.status_code == 403
    assert exc.response.body == b"Go away"
    assert "403" in str(exc)


def test_rejected_handshake_body_until_eof() -> None:
    client = make_client()
    client.receive_data(b"HTTP/1.1 500 Oops\r\n\r\npartial ")
    assert client.handshake_exc is None
    client.receive_data(b"body")
    client.receive_eof()
    exc = client.handshake_exc
    assert isinstance(exc, InvalidStatus)
    assert exc.response.body == b"partial body"


def test_K3_oversized_body_fails() -> None:
    client = make_client()
    client.receive_data(b"HTTP/1.1 500 Oops\r\nContent-Length: 2000000\r\n\r\n")
    assert isinstance(client.handshake_exc, SecurityError)
    assert client.eof_sent


def test_K3_too_many_headers_fails() -> None:
    client = make_client()
    client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-A: b\r\n" * 200)
    assert isinstance(client.handshake_exc, SecurityError)
    # Nothing more is buffered once the handshake failed.
    client.receive_data(b"X-A: b\r\n" * 1000)
    assert len(client.reader.buffer) == 0


def test_connection_closed_during_handshake() -> None:
    client = make_client()
    client.receive_data(b"HTTP/1.1 101 Switching")
    client.receive_eof()
    assert isinstance(client.handshake_exc, InvalidMessage)
    assert client.state is State.CLOSED


def test_malformed_status_line() -> None:
    client = make_client()
    client.receive_data(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert isinstance(client.handshake_exc, InvalidMessage)


def test_subprotocol_agreed() -> None:
    client = make_client(subprotocols=["superchat", "chat"])
    assert client.request is not None
    assert client.request.headers["Sec-WebSocket-Protocol"] == "superchat, chat"
    client.receive_data(response_bytes(client, "Sec-WebSocket-Protocol: chat"))
    assert client.state is State.OPEN
    assert client.subprotocol == "chat"


@pytest.mark.parametrize(
    "extra",
    [
        ["Sec-WebSocket-Protocol: other"],
        ["Sec-WebSocket-Protocol: chat, superchat"],
        ["Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: chat"],
    ],
)
def test_subprotocol_answer_invalid(extra: list[str]) -> None:
    client = make_client(subprotocols=["superchat", "chat"])
    client.receive_data(response_bytes(client, *extra))
    assert client.handshake_exc is not None
    assert client.state is State.CONNECTING


def test_subprotocols_validated() -> None:
    with pytest.raises(TypeError):
        ClientProtocol(URI, subprotocols="chat")
    with pytest.raises(ValueError, match="invalid subprotocol"):
        ClientProtocol(URI, subprotocols=["a b"])


def test_A4_additional_header_with_crlf_is_refused() -> None:
    client = ClientProtocol(URI)
    request = client.connect()
    request.headers["X-Token"] = "a\r\nX-Injected: 1"
    with pytest.raises(ValueError, match="X-Token"):
        client.send_request(request)
    assert client.data_to_send() == []


def test_A4_origin_with_crlf_is_refused() -> None:
    client = ClientProtocol(URI, origin="https://a.example\r\nX-Injected: 1")
    with pytest.raises(ValueError, match="Origin"):
        client.send_request(client.connect())


class Tag(Extension):
    def __init__(self, name: str) -> None:
        self.name = name

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return frame

    def encode(self, frame: Frame) -> Frame:
        return frame


class TagFactory(ClientExtensionFactory):
    def __init__(self, name: str) -> None:
        self.name = name

    def get_request_params(self) -> list[ExtensionParameter]:
        return [("level", "1")]

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> Extension:
        if params != [("level", "1")] or accepted_extensions:
            raise NegotiationError("unexpected parameters")
        return Tag(self.name)


def test_extension_offer_and_answer() -> None:
    client = make_client(extensions=[TagFactory("x-tag")])
    assert client.request is not None
    assert client.request.headers["Sec-WebSocket-Extensions"] == "x-tag; level=1"
    client.receive_data(response_bytes(client, "Sec-WebSocket-Extensions: x-tag; level=1"))
    assert client.state is State.OPEN
    [extension] = client.extensions
    assert extension.name == "x-tag"


@pytest.mark.parametrize(
    "answer",
    ["x-tag; level=2", "x-tag; level=1, x-tag; level=1", "x-other"],
)
def test_extension_answer_refused(answer: str) -> None:
    client = make_client(extensions=[TagFactory("x-tag")])
    client.receive_data(response_bytes(client, f"Sec-WebSocket-Extensions: {answer}"))
    assert isinstance(client.handshake_exc, NegotiationError)


def test_K4_client_limits_match_server() -> None:
    # A malicious server's huge declared length fails with 1009 before any payload.
    client = make_client()
    client.receive_data(response_bytes(client) + bytes.fromhex("827F7FFFFFFFFFFFFFFF"))
    assert client.parser_exc is not None
    [close_frame] = [data for data in client.data_to_send() if data[:1] == b"\x88"]
    # The client masks its Close; unmask the code.
    code = bytes(a ^ b for a, b in zip(close_frame[6:8], close_frame[2:4], strict=True))
    assert Close.parse(code).code == 1009


def test_state_open_skips_handshake() -> None:
    client = ClientProtocol(URI, state=State.OPEN)
    client.receive_data(Frame(Opcode.TEXT, b"hi").serialize(mask=False))
    assert client.events_received() == [Frame(Opcode.TEXT, b"hi")]


def test_request_is_a_request() -> None:
    assert isinstance(ClientProtocol(URI).connect(), Request)
