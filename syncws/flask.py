"""WebSocket routes in a Flask application: ``pip install syncws[flask]``.

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
``flask.g``, ``flask.session`` and ``current_app`` work), with the
:class:`~syncws.server.ServerConnection` as its first argument and the URL's variables as
keyword arguments. When it returns, the connection closes with 1000; when it raises, with
1011. The application must run under a server that can hand its sockets over: see
:mod:`syncws.wsgi`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, request
from typing_extensions import Unpack

from .options import check_keywords
from .server import ServerConnection, run_handler
from .wsgi import AcceptKeywords, UnsupportedServer, UpgradeRejected, accept

__all__ = ["Sock"]

logger = logging.getLogger("syncws.flask")

View = Callable[..., Any]
"""A WebSocket view: called with the connection and the URL's variables."""


class Sock:
    """Adds WebSocket routes to a Flask application or blueprint.

    Args:
        app: the application; or call :meth:`init_app` later (application factories).
        **options: default keyword arguments of :func:`syncws.wsgi.accept` for every route
            (``origins``, ``subprotocols``, ``compression``, ``ping_interval``,
            ``max_size``...: see :class:`~syncws.wsgi.AcceptKeywords`).

    Raises:
        TypeError: an option is not one of :func:`~syncws.wsgi.accept`'s, or has the wrong
            type: here, when the application is set up, not at the first request.
        ValueError: an option is out of range.
    """

    def __init__(self, app: Flask | None = None, **options: Unpack[AcceptKeywords]) -> None:
        check_keywords(accept, options, caller="Sock")
        self.app: Flask | None = None
        self.options = options
        # Routes declared before init_app(), added to the application then.
        self._pending: list[tuple[str, str, View]] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Add the routes declared with :meth:`route` so far to ``app``, and the next ones."""
        self.app = app
        for rule, endpoint, flask_view in self._pending:
            _add_rules(app, rule, endpoint, flask_view)
        self._pending.clear()

    def route(
        self,
        rule: str,
        *,
        bp: Blueprint | None = None,
        endpoint: str | None = None,
        **options: Unpack[AcceptKeywords],
    ) -> Callable[[View], View]:
        """Declare a WebSocket route: a decorator for a view that takes the connection.

        Args:
            rule: the URL rule, as for ``flask.Flask.route()``.
            bp: a blueprint to register the route on instead of the application.
            endpoint: the endpoint's name; by default the view's.
            **options: keyword arguments of :func:`syncws.wsgi.accept` for this route, over
                the defaults given to :class:`Sock`.

        Raises:
            TypeError: an option is not one of :func:`~syncws.wsgi.accept`'s, or has the
                wrong type.
            ValueError: an option is out of range.

        Example::

            @sock.route("/rooms/<name>", subprotocols=["chat"])
            def room(websocket, name):
                ...
        """
        check_keywords(accept, options, caller="route")
        accept_options: AcceptKeywords = {**self.options, **options}

        def decorator(view: View) -> View:
            @functools.wraps(view)
            def flask_view(**kwargs: Any) -> Response:
                return _serve(view, kwargs, accept_options)

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


def _serve(view: View, kwargs: dict[str, Any], options: AcceptKeywords) -> Response:
    try:
        connection: ServerConnection = accept(request.environ, **options)
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
    run_handler(connection, functools.partial(view, **kwargs), logger)
    # The socket is shut down once the connection is closed: the server can't send this
    # response, only log its status. 101 is what the client got.
    return Response(status=101)
