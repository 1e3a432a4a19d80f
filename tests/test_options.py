"""Options are declared once: checked when an entry point is called, with the same defaults
everywhere, before any I/O."""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ForwardRef

import flask
import pytest

import syncws
import syncws.flask
import syncws.wsgi
from syncws.client import ConnectKeywords, UnixConnectKeywords
from syncws.options import ConnectionOptions, check_keywords, check_seconds
from syncws.router import RouteKeywords, UnixRouteKeywords
from syncws.server import ServeKeywords, ServerConnection, UnixServeKeywords
from syncws.testing import connected_pair, run_server, run_unix_server
from syncws.wsgi import AcceptKeywords

DEFAULTS = ConnectionOptions()
FIELDS = [field.name for field in dataclasses.fields(ConnectionOptions)]
BACKOFF = ("initial", "factor", "max", "reset")
TIMEOUTS = ["open_timeout", "ping_interval", "ping_timeout", "close_timeout", "write_timeout"]


def echo(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


# ConnectionOptions checks every value.


@pytest.mark.parametrize("name", TIMEOUTS)
@pytest.mark.parametrize("value", [0, -1, -0.5, math.nan, math.inf])
def test_timeout_out_of_range_is_a_value_error(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be a positive, finite number"):
        ConnectionOptions(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", TIMEOUTS)
@pytest.mark.parametrize("value", ["1", b"1", True, [1]])
def test_timeout_of_another_type_is_a_type_error(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"^{name} must be a number of seconds"):
        ConnectionOptions(**{name: value})  # type: ignore[arg-type]


def test_ping_interval_0_says_none_turns_keepalive_off() -> None:
    # websocket-client users write 0 to mean "off": the message tells them what to write.
    with pytest.raises(ValueError, match="or None to turn keepalive off; got 0"):
        ConnectionOptions(ping_interval=0)


@pytest.mark.parametrize(
    ("name", "value", "error", "message"),
    [
        ("max_size", 0, ValueError, "max_size must be at least 1, or None for no limit; got 0"),
        ("max_size", 1.5, TypeError, "max_size must be an integer, None for no limit, or a"),
        ("max_size", "1MB", TypeError, "max_size must be an integer"),
        ("max_size", [1, 2], TypeError, r"max_size must be an integer, None .* got list"),
        ("max_size", (1, 2, 3), TypeError, r"max_size must be a \(message, frame\) pair"),
        ("max_size", (0, 5), ValueError, "max_size's message limit must be at least 1"),
        ("max_size", (5, -1), ValueError, "max_size's frame limit must be at least 1"),
        ("max_size", (5, 1.5), TypeError, "max_size's frame limit must be an integer"),
        ("max_queue", 0, ValueError, "max_queue must be at least 1"),
        ("max_queue", True, TypeError, "max_queue must be an integer"),
        ("max_queue", (4,), TypeError, r"max_queue must be a \(high, low\) pair"),
        ("max_queue", (4, 8), ValueError, "max_queue's low-water mark must not be above"),
        ("max_queue", (4, -1), ValueError, "max_queue's low-water mark must be at least 0"),
        ("max_queue", ("4", 1), TypeError, "max_queue's high-water mark must be an integer"),
        ("read_limit", 0, ValueError, "read_limit must be at least 1; got 0"),
        ("read_limit", None, TypeError, "read_limit must be an integer; got NoneType"),
        ("write_limit", -1, ValueError, "write_limit must be at least 0"),
    ],
)
def test_sizes_are_checked(name: str, value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=rf"^{message}"):
        ConnectionOptions(**{name: value})  # type: ignore[arg-type]


def test_every_value_in_range_is_kept() -> None:
    options = ConnectionOptions(
        open_timeout=None,
        ping_interval=0.5,
        ping_timeout=None,
        close_timeout=1,
        write_timeout=None,
        max_size=None,
        max_queue=None,
        read_limit=1,
        write_limit=0,
    )
    assert (options.ping_interval, options.close_timeout, options.write_limit) == (0.5, 1, 0)
    options = ConnectionOptions(max_size=(None, 1), max_queue=(1, 0))
    assert (options.max_size, options.max_queue) == ((None, 1), (1, 0))
    options = ConnectionOptions(max_size=(None, None), max_queue=(None, None))
    assert (options.max_size, options.max_queue) == ((None, None), (None, None))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.ping_interval = 1  # type: ignore[misc]


def test_check_seconds_accepts_none_and_positive_numbers() -> None:
    for value in (None, 1e-9, 1, 3600.0):
        check_seconds("timeout", value)


# Every entry point refuses a misspelt option at the call, before any I/O.


@pytest.mark.parametrize(
    "name", ["extra_headers", "ping_intervall", "timeout", "max_message_size"]
)
def test_connect_refuses_unknown_keyword_before_any_io(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "socket", _no_socket)
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
        syncws.connect("ws://127.0.0.1:9/", **{name: 5})  # type: ignore[call-overload]


def test_connect_refuses_bad_value_before_any_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "socket", _no_socket)
    with pytest.raises(ValueError, match=r"^ping_interval must be"):
        syncws.connect("ws://127.0.0.1:9/", ping_interval=0)
    with pytest.raises(TypeError, match=r"^open_timeout must be"):
        syncws.connect("ws://127.0.0.1:9/", open_timeout="5")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"^compression must be"):
        syncws.connect("ws://127.0.0.1:9/", compression="gzip")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"^max_queue's low-water mark must not be above"):
        syncws.connect("ws://127.0.0.1:9/", max_queue=(2, 3))
    with pytest.raises(TypeError, match=r"^max_size must be a \(message, frame\) pair"):
        syncws.connect("ws://127.0.0.1:9/", max_size=(1, 2, 3))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["ping_intervall", "sock"])
def test_unix_connect_refuses_unknown_keyword_before_opening_the_socket(
    name: str, tmp_path: Path
) -> None:
    # The path does not exist: opening it first would raise FileNotFoundError instead.
    with pytest.raises(TypeError, match=unexpected("unix_connect", name)):
        syncws.unix_connect(str(tmp_path / "missing.sock"), **{name: 1})  # type: ignore[call-overload]


def test_unix_connect_reconnects_with_the_parameters_of_connect() -> None:
    names = ["reconnect", *(f"backoff_{name}" for name in BACKOFF)]
    ours = inspect.signature(syncws.unix_connect).parameters
    theirs = inspect.signature(syncws.connect).parameters
    for name in names:
        assert ours[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert (ours[name].default, ours[name].annotation) == (
            theirs[name].default,
            theirs[name].annotation,
        )


def test_unix_connect_refuses_bad_value_before_opening_the_socket(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^close_timeout must be"):
        syncws.unix_connect(str(tmp_path / "missing.sock"), close_timeout=-1)


def test_serve_refuses_unknown_keyword_before_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "create_server", _no_socket)
    with pytest.raises(TypeError, match="unexpected keyword argument 'ping_intervall'"):
        syncws.serve(echo, "127.0.0.1", 0, ping_intervall=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_conections'"):
        syncws.serve(echo, "127.0.0.1", 0, max_conections=5)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"close_timeout": 0}, ValueError, "^close_timeout must be"),
        ({"max_queue": "16"}, TypeError, "^max_queue must be an integer"),
        ({"compression": "br"}, ValueError, "^compression must be"),
        ({"max_connections": 0}, ValueError, "^max_connections must be at least 1"),
        ({"max_connections": 1.5}, TypeError, "^max_connections must be an integer"),
        ({"worker_idle_timeout": 0}, ValueError, "^worker_idle_timeout must be a positive"),
        ({"worker_idle_timeout": "60"}, TypeError, "^worker_idle_timeout must be a number"),
    ],
)
def test_serve_refuses_bad_values_before_listening(
    options: dict[str, Any],
    error: type[Exception],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "create_server", _no_socket)
    with pytest.raises(error, match=message):
        syncws.serve(echo, "127.0.0.1", 0, **options)


@pytest.mark.parametrize("handler", [None, "echo", 42])
def test_serve_refuses_a_handler_that_is_not_callable(
    handler: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "create_server", _no_socket)
    with pytest.raises(TypeError, match=r"^handler must be callable"):
        syncws.serve(handler, "127.0.0.1", 0)  # type: ignore[arg-type]


def test_unix_serve_refuses_unknown_keyword_before_binding(tmp_path: Path) -> None:
    path = tmp_path / "ws.sock"
    with pytest.raises(TypeError, match=unexpected("unix_serve", "port")):
        syncws.unix_serve(echo, str(path), port=8765)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=unexpected("unix_serve", "reuse_port")):
        syncws.unix_serve(echo, str(path), reuse_port=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=unexpected("unix_serve", "max_conections")):
        syncws.unix_serve(echo, str(path), max_conections=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^handler must be callable"):
        syncws.unix_serve(None, str(path))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^write_timeout must be"):
        syncws.unix_serve(echo, str(path), write_timeout=math.nan)
    assert not os.path.exists(path)


def test_wsgi_accept_refuses_bad_values_before_touching_the_request() -> None:
    # An empty environ has no socket: checking it first would raise UnsupportedServer.
    with pytest.raises(ValueError, match=r"^ping_timeout must be"):
        syncws.wsgi.accept({}, ping_timeout=-5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'process_request'"):
        syncws.wsgi.accept({}, process_request=None)  # type: ignore[call-arg]


def test_wsgi_app_refuses_unknown_keyword_when_made() -> None:
    with pytest.raises(TypeError, match=unexpected("WebSocketApp", "ping_intervall")):
        syncws.wsgi.WebSocketApp(echo, ping_intervall=25)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"^max_size must be at least 1"):
        syncws.wsgi.WebSocketApp(echo, max_size=0)
    with pytest.raises(TypeError, match=r"^handler must be callable"):
        syncws.wsgi.WebSocketApp(None)  # type: ignore[arg-type]


def test_flask_sock_refuses_unknown_keyword_when_the_app_is_made() -> None:
    app = flask.Flask(__name__)
    with pytest.raises(TypeError, match=unexpected("Sock", "ping_intervall")):
        syncws.flask.Sock(app, ping_intervall=25)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"^ping_interval must be"):
        syncws.flask.Sock(app, ping_interval=0)
    sock = syncws.flask.Sock(app)
    with pytest.raises(TypeError, match=unexpected("route", "max_sise")):
        sock.route("/echo", max_sise=1024)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^max_size must be an integer"):
        sock.route("/echo", max_size="1 MiB")  # type: ignore[arg-type]


def test_testing_helpers_refuse_unknown_keywords() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'ping_intervall'"):  # noqa: SIM117
        with run_server(echo, ping_intervall=5):  # type: ignore[call-arg]
            pass
    with pytest.raises(TypeError, match="unexpected keyword argument 'ping_intervall'"):  # noqa: SIM117
        with run_unix_server(echo, ping_intervall=5):  # type: ignore[call-arg]
            pass
    with pytest.raises(TypeError, match="unexpected keyword argument 'extra_headers'"):  # noqa: SIM117
        with connected_pair(extra_headers={}):  # type: ignore[call-arg]
            pass
    with pytest.raises(ValueError, match=r"^max_queue must be at least 1"):  # noqa: SIM117
        with connected_pair(max_queue=0):
            pass


def test_check_keywords_names_the_caller() -> None:
    with pytest.raises(TypeError, match=unexpected("helper", "x")):
        check_keywords(syncws.serve, {"x": 1}, caller="helper")
    # Positional parameters are not options.
    with pytest.raises(TypeError, match="unexpected keyword argument 'host'"):
        check_keywords(syncws.serve, {"host": "::1"}, caller="helper")
    check_keywords(syncws.serve, {"ping_interval": None, "compression": None}, caller="helper")


# The defaults are the same everywhere: they cannot drift apart.


def entry_points() -> Iterator[Callable[..., Any]]:
    yield syncws.connect
    yield syncws.serve
    yield syncws.wsgi.accept
    yield connected_pair.__wrapped__  # type: ignore[attr-defined]


@pytest.mark.parametrize("function", list(entry_points()), ids=lambda function: function.__name__)
def test_entry_point_defaults_are_the_options_defaults(function: Callable[..., Any]) -> None:
    parameters = inspect.signature(function).parameters
    compared = [name for name in FIELDS if name in parameters]
    assert compared == FIELDS
    for name in compared:
        assert parameters[name].default == getattr(DEFAULTS, name), name
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name


def test_parameters_shared_by_entry_points_have_one_default() -> None:
    defaults: dict[str, dict[str, object]] = {}
    for function in entry_points():
        for name, parameter in inspect.signature(function).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults.setdefault(name, {})[function.__name__] = parameter.default
    shared = {name: values for name, values in defaults.items() if len(values) > 1}
    assert {"compression", "subprotocols", "max_size", "ping_interval"} <= shared.keys()
    for name, values in shared.items():
        assert len(set(map(repr, values.values()))) == 1, (name, values)


def _keyword_only(function: Callable[..., Any]) -> dict[str, str]:
    return {
        name: str(parameter.annotation)
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _fields(typed_dict: type) -> dict[str, str]:
    # Declared under "from __future__ import annotations": the types are kept as text.
    return {
        name: annotation.__forward_arg__ if isinstance(annotation, ForwardRef) else str(annotation)
        for name, annotation in typed_dict.__annotations__.items()
    }


@pytest.mark.parametrize(
    ("typed_dict", "function", "left_out"),
    [
        (ConnectKeywords, syncws.connect, {"reconnect"}),
        (
            UnixConnectKeywords,
            syncws.connect,
            {"reconnect", "sock", *(f"backoff_{name}" for name in BACKOFF)},
        ),
        (ServeKeywords, syncws.serve, set()),
        (UnixServeKeywords, syncws.serve, {"sock", "reuse_port", "family"}),
        (AcceptKeywords, syncws.wsgi.accept, set()),
        (RouteKeywords, syncws.serve, {"ssl", "process_request"}),
        (
            UnixRouteKeywords,
            syncws.serve,
            {"ssl", "process_request", "sock", "reuse_port", "family"},
        ),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_keyword_types_match_the_entry_point(
    typed_dict: type, function: Callable[..., Any], left_out: set[str]
) -> None:
    expected = {
        name: annotation
        for name, annotation in _keyword_only(function).items()
        if name not in left_out
    }
    assert _fields(typed_dict) == expected


def unexpected(caller: str, name: str) -> str:
    """The start of Python's message for a keyword that ``caller`` does not take."""
    return "^" + re.escape(f"{caller}() got an unexpected keyword argument '{name}'")


def _no_socket(*args: object, **kwargs: object) -> socket.socket:
    raise AssertionError("a socket was made before the arguments were checked")


def test_connection_reports_its_options_read_only() -> None:
    # The parts that use these options keep their own: assigning one on the connection would
    # change nothing, so it is refused rather than ignored.
    with connected_pair(ping_interval=5, read_limit=4096, write_timeout=3) as (client, _):
        assert (client.ping_interval, client.read_limit, client.write_timeout) == (5, 4096, 3)
        assert client.options.ping_timeout == client.ping_timeout == DEFAULTS.ping_timeout
        with pytest.raises(AttributeError):
            client.ping_interval = 1  # type: ignore[misc]


def _shared(**changes: Any) -> ConnectionOptions:
    return ConnectionOptions.shared(**{**DEFAULTS.keywords(), **changes})


def test_shared_options_are_checked_once_for_the_same_values() -> None:
    first = _shared(read_limit=4096)
    assert first == ConnectionOptions(read_limit=4096)
    assert _shared(read_limit=4096) is first
    other = _shared(read_limit=8192)
    assert other is not first
    assert other.read_limit == 8192


def test_shared_options_check_a_value_equal_to_the_last_but_of_another_type() -> None:
    # True == 1 and 1.0 == 1: equal values are not enough to skip the checks.
    _shared(read_limit=1)
    with pytest.raises(TypeError, match="read_limit must be an integer"):
        _shared(read_limit=True)
    _shared(max_size=(1, 2))
    with pytest.raises(TypeError, match="max_size's message limit must be an integer"):
        _shared(max_size=(1.0, 2))


def test_shared_options_refuse_what_the_options_refuse() -> None:
    with pytest.raises(ValueError, match="open_timeout"):
        _shared(open_timeout=-1)
    with pytest.raises(ValueError, match="open_timeout"):
        _shared(open_timeout=-1)
