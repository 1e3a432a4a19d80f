"""WebSocket routes in a Flask application: the ``flask`` extra, ``pip install -e '.[flask]'``.

::

    from flask import Flask
    from syncws.flask import Sock

    app = Flask(__name__)
    sock = Sock(app)

    @sock.route("/echo")
    def echo(websocket):
        for message in websocket:
            websocket.send(message)

The view runs in the request's thread, inside the request context (``flask.request``,
``flask.g``, ``flask.session`` and ``current_app`` work), with a :class:`SockConnection` as
its first argument and the URL's variables as keyword arguments. When it returns, the
connection closes with 1000; when it raises, with 1011. The application must run under a
server that can hand its sockets over: see :mod:`syncws.wsgi`. With ``Sock(app,
hand_off=True)``, under gunicorn's ``gthread`` worker, the view runs in a thread of syncws's
own instead, in a copy of the request context, and the request's thread goes back to the
server at once: see :func:`syncws.wsgi.hand_off`.

This module is also a compatibility layer for flask-sock: an application written for it runs
once ``from flask_sock import Sock, ConnectionClosed`` becomes
``from syncws.flask import Sock, ConnectionClosed``. :class:`SockConnection` is a
:class:`~syncws.server.ServerConnection`, so that both APIs work on it (and
:func:`~syncws.connection.broadcast` too), with flask-sock's ``receive()``, ``connected``
and ``close(reason, message)`` added; ``app.config["SOCK_SERVER_OPTIONS"]`` is mapped onto
:func:`syncws.wsgi.accept`'s options.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from flask import Blueprint, Flask, Response, copy_current_request_context, current_app, request
from typing_extensions import Unpack

from . import exceptions
from .core.frames import CloseCode
from .core.protocol import State
from .messages import Data
from .options import check_bool, check_keywords
from .server import ServerConnection, run_handler
from .wsgi import AcceptKeywords, UnsupportedServer, UpgradeRejected, accept, hand_off

__all__ = ["SERVER_OPTIONS", "ConnectionClosed", "Sock", "SockConnection", "server_options"]

logger = logging.getLogger("syncws.flask")

View = Callable[..., Any]
"""A WebSocket view: called with the connection and the URL's variables."""

SERVER_OPTIONS: Mapping[str, str] = {
    "ping_interval": "ping_interval",
    "max_message_size": "max_size",
    "subprotocols": "subprotocols",
    "receive_bytes": "read_limit",
}
"""The keys of flask-sock's ``SOCK_SERVER_OPTIONS`` that syncws takes, and the options of
:func:`syncws.wsgi.accept` they become."""


class ConnectionClosed(exceptions.ConnectionClosed):
    """flask-sock's ``ConnectionClosed``: the connection is closed.

    :class:`SockConnection`'s :meth:`~SockConnection.receive`, :meth:`~SockConnection.send`
    raise it, so that ``except ConnectionClosed`` in a view written for flask-sock works. It
    is a :exc:`syncws.exceptions.ConnectionClosed`, and a
    :exc:`~syncws.exceptions.ConnectionClosedOK` or
    :exc:`~syncws.exceptions.ConnectionClosedError` as the closing went. Its attributes are
    flask-sock's:

    Attributes:
        reason: the close code the peer sent (1005 if its Close had none, 1006 if none came):
            flask-sock's name for :attr:`code`.
        message: the close reason the peer sent, ``None`` if no Close came.
    """

    # flask-sock (simple-websocket) calls the close code "reason" and the reason "message".
    @property
    def reason(self) -> int:  # type: ignore[override]
        """The close code the peer sent: flask-sock's name for :attr:`code`."""
        return self.code

    @property
    def message(self) -> str | None:
        """The close reason the peer sent; ``None`` if no Close came."""
        return None if self.rcvd is None else self.rcvd.reason


class _ConnectionClosedOK(ConnectionClosed, exceptions.ConnectionClosedOK):
    pass


class _ConnectionClosedError(ConnectionClosed, exceptions.ConnectionClosedError):
    pass


def _flask_sock_error(exc: exceptions.ConnectionClosed) -> ConnectionClosed:
    """The :exc:`ConnectionClosed` of the same kind and frames as ``exc``."""
    if isinstance(exc, ConnectionClosed):
        return exc
    kind = (
        _ConnectionClosedOK
        if isinstance(exc, exceptions.ConnectionClosedOK)
        else _ConnectionClosedError
    )
    return kind(exc.rcvd, exc.sent, exc.rcvd_then_sent)


class SockConnection(ServerConnection):
    """The connection a :class:`Sock` view receives: syncws's, with flask-sock's API too.

    Every method of :class:`~syncws.server.ServerConnection` works as usual; these are
    added or widened for views written for flask-sock (simple-websocket's ``Server``):

    - :meth:`receive` returns ``None`` on a timeout instead of raising;
    - :meth:`send` raises this module's ``ConnectionClosed``, with flask-sock's attributes;
    - :meth:`close` also takes ``close(reason=code, message=text)``;
    - :attr:`connected` says whether the connection is open.

    Differences with flask-sock: ``close()`` on a closed connection does nothing (it raises
    ``ConnectionClosed`` with simple-websocket), and
    :meth:`~syncws.connection.Connection.recv` and iteration raise
    syncws's own :exc:`~syncws.exceptions.ConnectionClosed`.
    """

    @property
    def connected(self) -> bool:
        """Whether the connection is open: flask-sock's name for ``state is State.OPEN``."""
        return self.protocol.state is State.OPEN

    def receive(self, timeout: float | None = None) -> Data | None:
        """Receive the next message, as flask-sock's ``receive()``.

        Args:
            timeout: seconds to wait; ``None`` waits as long as it takes and ``0`` only
                returns a message that is already here.

        Returns:
            The message, :class:`str` for text and :class:`bytes` for binary; ``None`` when
            none came within ``timeout``.

        Raises:
            syncws.exceptions.ConnectionClosed: the connection is closed and every message
                was received: this module's ``ConnectionClosed``, with flask-sock's
                attributes.
            ConcurrencyError: another thread is receiving on this connection.
        """
        try:
            return self.recv(timeout)
        except TimeoutError:
            return None
        except exceptions.ConnectionClosed as exc:
            raise _flask_sock_error(exc) from exc.__cause__

    def send(
        self,
        message: Data | bytearray | memoryview | Iterable[Data | bytearray | memoryview],
        timeout: float | None = None,
        *,
        text: bool | None = None,
        compress: bool = True,
    ) -> None:
        """Send a message, as :meth:`Connection.send() <syncws.connection.Connection.send>`.

        Raises:
            TypeError: the message is not of a type that can be sent, or ``text`` is not a
                :class:`bool` or ``None``.
            ValueError: as for :meth:`Connection.send()
                <syncws.connection.Connection.send>`.
            syncws.exceptions.ConnectionClosed: the connection is closed or closing: this
                module's ``ConnectionClosed``, with flask-sock's attributes.
            TimeoutError: as for :meth:`Connection.send()
                <syncws.connection.Connection.send>`.
        """
        try:
            super().send(message, timeout, text=text, compress=compress)
        except exceptions.ConnectionClosed as exc:
            raise _flask_sock_error(exc) from exc.__cause__

    def close(
        self,
        code: int | None = None,
        reason: int | str | None = None,
        message: str | None = None,
    ) -> None:
        """Run the closing handshake, as :meth:`Connection.close()
        <syncws.connection.Connection.close>`, with flask-sock's keywords too.

        ``close(4000, "bye")``, ``close(code=4000, reason="bye")`` (syncws) and
        ``close(reason=4000, message="bye")`` (flask-sock) do the same.

        Args:
            code: the close code; 1000 by default.
            reason: the close reason; or, as an :class:`int`, the close code
                (flask-sock's name for it).
            message: the close reason (flask-sock's name for it).

        Raises:
            TypeError: the code or the reason is given twice.
            ValueError: as for :meth:`Connection.close()
                <syncws.connection.Connection.close>`.
        """
        if isinstance(reason, int):
            if code is not None:
                raise TypeError(f"close() got two close codes: {code!r} and {reason!r}")
            code, reason = reason, None
        if message is not None:
            if reason is not None:
                raise TypeError(f"close() got two reasons: {reason!r} and {message!r}")
            reason = message
        super().close(
            CloseCode.NORMAL_CLOSURE if code is None else code,
            "" if reason is None else reason,
        )


def server_options(app: Flask) -> AcceptKeywords:
    """The :func:`syncws.wsgi.accept` options that ``app.config["SOCK_SERVER_OPTIONS"]``
    asks for, flask-sock's setting (see :data:`SERVER_OPTIONS`).

    Raises:
        TypeError: the setting is not a mapping, or has a key that syncws does not take
            (``thread_class``, ``event_class`` and ``selector_class`` have no meaning here:
            syncws runs its own threads), or a value of the wrong type.
        ValueError: a value is out of range.
    """
    config = app.config.get("SOCK_SERVER_OPTIONS")
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TypeError(f"SOCK_SERVER_OPTIONS must be a dict, not {config!r}")
    options: dict[str, Any] = {}
    for key, value in config.items():
        name = SERVER_OPTIONS.get(key)
        if name is None:
            raise TypeError(
                f"SOCK_SERVER_OPTIONS: syncws does not take {key!r}; it takes "
                + ", ".join(SERVER_OPTIONS)
                + " (other options: keyword arguments of Sock() and route())"
            )
        options[name] = value
    check_keywords(accept, options, caller="SOCK_SERVER_OPTIONS")
    return cast(AcceptKeywords, options)


class Sock:
    """Adds WebSocket routes to a Flask application or blueprint.

    Args:
        app: the application; or call :meth:`init_app` later (application factories).
        hand_off: by default for every route, run the view in a thread of syncws's own where
            the server allows it (gunicorn's ``gthread`` worker) and give the request's
            thread back to the server at once: see :func:`syncws.wsgi.hand_off`. The view
            then runs in a copy of the request context, as with
            ``flask.copy_current_request_context``.
        **options: default keyword arguments of :func:`syncws.wsgi.accept` for every route
            (``origins``, ``subprotocols``, ``compression``, ``ping_interval``,
            ``max_size``...: see :class:`~syncws.wsgi.AcceptKeywords`), over those of the
            application's ``SOCK_SERVER_OPTIONS`` (see :func:`server_options`).
            ``create_connection`` must be a subclass of :class:`SockConnection`, the default.

    Raises:
        TypeError: ``hand_off`` is not a :class:`bool`, or an option is not one of
            :func:`~syncws.wsgi.accept`'s, or has the wrong type: here, when the application
            is set up, not at the first request.
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        hand_off: bool = False,
        **options: Unpack[AcceptKeywords],
    ) -> None:
        check_bool("hand_off", hand_off)
        _check_options(options, "Sock")
        self.app: Flask | None = None
        self.hand_off = hand_off
        self.options = options
        # Routes declared before init_app(), added to the application then.
        self._pending: list[tuple[str, str, View]] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Add the routes declared with :meth:`route` so far to ``app``, and the next ones.

        ``app.config["SOCK_SERVER_OPTIONS"]`` is checked now if it is set, and read again at
        each connection.

        Raises:
            TypeError: ``SOCK_SERVER_OPTIONS`` is wrong (see :func:`server_options`).
            ValueError: a value of ``SOCK_SERVER_OPTIONS`` is out of range.
        """
        server_options(app)
        self.app = app
        for rule, endpoint, flask_view in self._pending:
            _add_rules(app, rule, endpoint, flask_view)
        self._pending.clear()

    def route(
        self,
        rule: str,
        bp: Blueprint | None = None,
        *,
        endpoint: str | None = None,
        hand_off: bool | None = None,
        **options: Unpack[AcceptKeywords],
    ) -> Callable[[View], View]:
        """Declare a WebSocket route: a decorator for a view that takes the connection.

        Args:
            rule: the URL rule, as for ``flask.Flask.route()``.
            bp: a blueprint to register the route on instead of the application.
            endpoint: the endpoint's name; by default the view's.
            hand_off: whether this route hands its connections off to syncws's threads
                (see :class:`Sock`); ``None`` for the value given to :class:`Sock`.
            **options: keyword arguments of :func:`syncws.wsgi.accept` for this route, over
                the defaults given to :class:`Sock`.

        Raises:
            TypeError: ``hand_off`` is not a :class:`bool` or ``None``, or an option is not
                one of :func:`~syncws.wsgi.accept`'s, or has the wrong type.
            ValueError: an option is out of range.

        Example::

            @sock.route("/rooms/<name>", subprotocols=["chat"])
            def room(websocket, name):
                ...
        """
        check_bool("hand_off", hand_off, none="for the value given to Sock")
        _check_options(options, "route")
        accept_options: AcceptKeywords = {**self.options, **options}
        route_hand_off = self.hand_off if hand_off is None else hand_off

        def decorator(view: View) -> View:
            @functools.wraps(view)
            def flask_view(**kwargs: Any) -> Response:
                return _serve(view, kwargs, accept_options, route_hand_off)

            name = endpoint or view.__name__
            target = bp if bp is not None else self.app
            if target is None:
                self._pending.append((rule, name, flask_view))
            else:
                _add_rules(target, rule, name, flask_view)
            return view

        return decorator


def _add_rules(target: Flask | Blueprint, rule: str, endpoint: str, view: View) -> None:
    # Werkzeug's router tells WebSocket handshakes apart: a rule without websocket=True does
    # not match them, and one with it matches nothing else. Both go to the view, so that
    # other requests get the handshake's answer (426 Upgrade Required, 405 for a POST)
    # rather than the router's 400 or 405.
    target.add_url_rule(rule, endpoint, view, methods=["GET"], websocket=True)
    target.add_url_rule(rule, endpoint, view, methods=["GET", "POST"])


def _check_options(options: AcceptKeywords, caller: str) -> None:
    check_keywords(accept, options, caller=caller)
    create_connection = options.get("create_connection")
    if create_connection is not None and not (
        isinstance(create_connection, type) and issubclass(create_connection, SockConnection)
    ):
        raise TypeError(
            f"{caller}(): create_connection must be a subclass of "
            f"syncws.flask.SockConnection; got {create_connection!r}"
        )


def _serve(
    view: View, kwargs: dict[str, Any], options: AcceptKeywords, handed_off: bool
) -> Response:
    try:
        merged: AcceptKeywords = {**server_options(current_app), **options}
        if merged.get("create_connection") is None:
            merged["create_connection"] = SockConnection
        connection = accept(request.environ, **merged)
    except UpgradeRejected as exc:
        return Response(exc.body, status=exc.status, headers=exc.headers)
    except UnsupportedServer as exc:
        logger.error("cannot open a WebSocket connection: %s", exc)
        return Response(
            "This server can't open WebSocket connections; see its log.\n",
            status=500,
            mimetype="text/plain",
        )
    except OSError as exc:
        # The client left before the 101 was written; the socket is shut down already.
        logger.debug("opening handshake failed: %s", exc)
        return Response(status=101)
    job = functools.partial(run_handler, connection, functools.partial(view, **kwargs), logger)
    # Handed off, the view runs in a copy of the request context, pushed in its own thread:
    # this request's context is torn down as the request ends, right after the handshake.
    if not (
        handed_off and hand_off(request.environ, connection, copy_current_request_context(job))
    ):
        job()
    # The socket is shut down once the connection is closed, or cut off the connection when
    # it is handed off: the server can't send this response, only log its status. 101 is
    # what the client got.
    return Response(status=101)
