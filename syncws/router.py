"""Routing: one server, a handler per URL, chosen with Werkzeug's URL rules.

:func:`route` and :func:`unix_route` are :func:`~syncws.server.serve` and
:func:`~syncws.server.unix_serve` with a :class:`werkzeug.routing.Map` in place of the
handler, as in ``websockets.sync.router``. Each rule's endpoint is a handler; the values that
the rule's converters capture in the path are passed to it as keyword arguments::

    from werkzeug.routing import Map, Rule

    def room(websocket, name):
        ...

    url_map = Map([Rule("/rooms/<name>", endpoint=room)])

    with route(url_map, "localhost", 8765) as server:
        server.serve_forever()

The routing is a ``process_request`` hook run before the handshake: a path that matches no
rule is answered ``404 Not Found``, and one that Werkzeug redirects (a missing trailing
slash, or a rule's ``redirect_to``) is answered with the status of Werkzeug's redirect and a
``Location`` header, without upgrading.

Werkzeug is an optional dependency: install the ``syncws[router]`` extra. Without it,
importing this module raises :exc:`ImportError`; the rest of syncws does not need it.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from ssl import SSLContext
from typing import Any, Literal

from typing_extensions import Unpack

try:
    from werkzeug.exceptions import HTTPException, NotFound
    from werkzeug.routing import Map, RequestRedirect
except ImportError as exc:
    raise ImportError(
        "syncws.router needs werkzeug: install the syncws[router] extra (or werkzeug itself)",
        name="werkzeug",
    ) from exc

from .core.http11 import Request, Response
from .options import check_keywords
from .server import (
    CommonServeKeywords,
    ProcessRequest,
    Server,
    ServerConnection,
    TCPServeKeywords,
    serve,
    unix_serve,
)

__all__ = ["RouteKeywords", "Router", "UnixRouteKeywords", "route", "unix_route"]


class Router:
    """Dispatches each connection to the handler that its path selects in a URL map.

    :func:`route` makes one and installs :meth:`route_request` as the server's
    ``process_request`` and :meth:`handler` as its handler. Subclass it, and pass the
    subclass as ``create_router``, to change how requests are answered: the methods below
    are the places to do so.

    Every rule of ``url_map`` is made a WebSocket rule (Werkzeug's ``websocket=True``), so
    that rules need not say so.

    Args:
        url_map: the rules; each endpoint is a handler, called with the connection and the
            values captured in the path as keyword arguments.
        server_name: the host name that rules and redirects see; ``None`` for the ``Host``
            header of each request.
        url_scheme: ``"ws"`` or ``"wss"``, for the URLs of redirects.

    Attributes:
        url_map: the rules.
        server_name: the name given, or ``None``.
        url_scheme: the scheme of redirect URLs.
    """

    def __init__(
        self, url_map: Map, server_name: str | None = None, url_scheme: str = "ws"
    ) -> None:
        self.url_map = url_map
        self.server_name = server_name
        self.url_scheme = url_scheme
        for rule in url_map.iter_rules():
            rule.websocket = True
        # The handler and the values that route_request() found for each connection, until
        # handler() takes them. Weak keys: a connection whose handshake fails after routing
        # (a bad upgrade, a process_response that refuses it) never reaches handler().
        self._routes: weakref.WeakKeyDictionary[
            ServerConnection, tuple[Callable[..., Any], Mapping[str, Any]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get_server_name(self, connection: ServerConnection, request: Request) -> str | None:
        """The host name to match rules against: ``server_name``, or the ``Host`` header.

        Returns ``None`` when the request has no ``Host`` header or several: the handshake
        refuses it then, with ``400 Bad Request``.
        """
        if self.server_name is not None:
            return self.server_name
        hosts = request.headers.get_all("Host")
        return hosts[0] if len(hosts) == 1 else None

    def route_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Find the handler for ``request``; a ``process_request`` hook.

        Returns ``None`` to go on with the handshake, once the handler is found; otherwise
        the response to send instead: a redirect (:meth:`redirect`), ``404``
        (:meth:`not_found`), or the status of another Werkzeug routing error (``405`` for a
        rule whose ``methods`` leave out ``GET``).
        """
        server_name = self.get_server_name(connection, request)
        if server_name is None:
            return None
        adapter = self.url_map.bind(server_name, url_scheme=self.url_scheme)
        # The request target is in origin-form (RFC 9112 §3.2.1): split it by hand, since
        # urllib would read a path starting with "//" as a host. Werkzeug matches decoded
        # paths, as a WSGI server passes them in PATH_INFO, and quotes them again in
        # redirects.
        path, _, query = request.path.partition("?")
        try:
            endpoint, values = adapter.match(urllib.parse.unquote(path), query_args=query)
        except RequestRedirect as redirect:
            return self.redirect(connection, redirect.new_url, redirect.code)
        except NotFound:
            return self.not_found(connection)
        except HTTPException as exc:
            status = exc.code or 400
            return connection.respond(status, f"{exc.name}\n")
        with self._lock:
            self._routes[connection] = (endpoint, values)
        return None

    def redirect(self, connection: ServerConnection, url: str, status: int = 308) -> Response:
        """The response that redirects the client to ``url``, with Werkzeug's ``status``."""
        response = connection.respond(status, f"Moved to {url}\n")
        response.headers["Location"] = url
        return response

    def not_found(self, connection: ServerConnection) -> Response:
        """The response to a path that matches no rule: ``404 Not Found``."""
        return connection.respond(404, "Not Found\n")

    def handler(self, connection: ServerConnection) -> None:
        """Call the handler that :meth:`route_request` found, with the values it captured.

        Raises:
            LookupError: :meth:`route_request` did not route this connection (the server
                closes it with 1011 and logs the error).
        """
        with self._lock:
            found = self._routes.pop(connection, None)
        if found is None:
            raise LookupError(f"no route was found for {connection.request!r}")
        endpoint, values = found
        endpoint(connection, **values)


class UnixRouteKeywords(CommonServeKeywords, total=False):
    """The keyword arguments of :func:`unix_route` after ``sock``, for type checkers: those
    of :func:`~syncws.server.unix_serve` but ``ssl`` and ``process_request``, which
    :func:`route` and :func:`unix_route` take themselves."""


class RouteKeywords(UnixRouteKeywords, TCPServeKeywords, total=False):
    """The keyword arguments of :func:`route`, for type checkers: those of
    :func:`~syncws.server.serve` but ``ssl`` and ``process_request``."""


def route(
    url_map: Map,
    host: str | None = None,
    port: int | None = None,
    *,
    server_name: str | None = None,
    ssl: SSLContext | Literal[True] | None = None,
    create_router: type[Router] | None = None,
    process_request: ProcessRequest | None = None,
    **kwargs: Unpack[RouteKeywords],
) -> Server:
    """Listen on ``host`` and ``port`` and return a :class:`~syncws.server.Server` that
    hands each connection to the handler its path selects in ``url_map``.

    Example::

        from werkzeug.routing import Map, Rule

        def echo(websocket):
            for message in websocket:
                websocket.send(message)

        def room(websocket, number):
            ...

        url_map = Map([
            Rule("/echo", endpoint=echo),
            Rule("/rooms/<int:number>", endpoint=room),
        ])

        with route(url_map, "localhost", 8765) as server:
            server.serve_forever()

    A path that matches no rule is answered ``404``; a redirect of Werkzeug's (a missing
    trailing slash, a rule's ``redirect_to``) is answered with its status (``308`` with
    Werkzeug 2.2 and later) and a ``Location`` header. Behind a reverse proxy that changes
    the ``Host`` header or ends TLS, give ``server_name`` and ``ssl=True`` so that redirects
    point where clients connect.

    A ``process_request`` of your own runs first: when it returns a response, that response
    is sent and nothing is routed.

    Args:
        url_map: the rules; each endpoint is a handler, called with the connection and the
            values that the rule captured in the path as keyword arguments. Every rule is
            made a WebSocket rule (``websocket=True``).
        host: as for :func:`~syncws.server.serve`.
        port: as for :func:`~syncws.server.serve`.
        server_name: the host name rules and redirects see (the name clients use); ``None``
            for the ``Host`` header of each request.
        ssl: a server-side TLS context, as for :func:`~syncws.server.serve`; or ``True``
            when a proxy in front ends TLS: redirects then use ``wss://``, and the server
            itself speaks plain WebSocket.
        create_router: the :class:`Router` class, to use a subclass.
        process_request: as for :func:`~syncws.server.serve`, called before routing: a
            response it returns is sent, and ``None`` goes on to the routing.
        **kwargs: the other keyword arguments of :func:`~syncws.server.serve` (see
            :class:`RouteKeywords`).

    Raises:
        TypeError: ``url_map`` is not a :class:`werkzeug.routing.Map`, an argument has the
            wrong type, or is not a parameter of ``route`` (a misspelt name fails here,
            before any I/O).
        ValueError: an argument is out of range, as for :func:`~syncws.server.serve`.
        OSError: the socket could not be made, bound or listened on.
    """
    check_keywords(serve, kwargs, caller="route", allowed=RouteKeywords.__annotations__)
    router, tls, hook = _router(url_map, server_name, ssl, create_router, process_request)
    return serve(router.handler, host, port, ssl=tls, process_request=hook, **kwargs)


def unix_route(
    url_map: Map,
    path: str | None = None,
    *,
    sock: socket.socket | None = None,
    server_name: str | None = None,
    ssl: SSLContext | Literal[True] | None = None,
    create_router: type[Router] | None = None,
    process_request: ProcessRequest | None = None,
    **kwargs: Unpack[UnixRouteKeywords],
) -> Server:
    """Listen on the Unix socket at ``path``, and route as :func:`route` does.

    :func:`route` and :func:`~syncws.server.unix_serve` put together: the socket file is
    removed when the server closes.

    Args:
        url_map: the rules, as for :func:`route`.
        path: the socket's path.
        sock: a listening Unix socket to use instead of ``path``.
        server_name: as for :func:`route`. Over a Unix socket, the ``Host`` header is
            whatever the client put in its URI.
        ssl: as for :func:`route`.
        create_router: as for :func:`route`.
        process_request: as for :func:`route`.
        **kwargs: the other keyword arguments of :func:`~syncws.server.unix_serve` (see
            :class:`UnixRouteKeywords`).

    Raises:
        TypeError: as for :func:`route`, before the socket is made.
        ValueError: as for :func:`route`, before the socket is made.
        OSError: the socket could not be made, bound or listened on.
    """
    check_keywords(serve, kwargs, caller="unix_route", allowed=UnixRouteKeywords.__annotations__)
    router, tls, hook = _router(url_map, server_name, ssl, create_router, process_request)
    return unix_serve(router.handler, path, sock=sock, ssl=tls, process_request=hook, **kwargs)


def _router(
    url_map: Map,
    server_name: str | None,
    ssl: SSLContext | Literal[True] | None,
    create_router: type[Router] | None,
    process_request: ProcessRequest | None,
) -> tuple[Router, SSLContext | None, ProcessRequest]:
    """Check the routing arguments and make the router; return it, the TLS context for the
    server, and the ``process_request`` hook that routes after the application's own.

    Raises:
        TypeError: ``url_map`` is not a Werkzeug ``Map``, ``server_name`` not a string,
            ``ssl`` neither a context, ``True`` nor ``None``, or ``process_request`` not
            callable.
    """
    if not isinstance(url_map, Map):
        raise TypeError(
            f"url_map must be a werkzeug.routing.Map; got {type(url_map).__name__} {url_map!r}"
        )
    if server_name is not None and not isinstance(server_name, str):
        raise TypeError(
            f"server_name must be a str or None; got {type(server_name).__name__}"
            f" {server_name!r}"
        )
    if ssl is not None and ssl is not True and not isinstance(ssl, SSLContext):
        raise TypeError(
            "ssl must be an ssl.SSLContext, True (a proxy in front ends TLS) or None;"
            f" got {type(ssl).__name__} {ssl!r}"
        )
    if process_request is not None and not callable(process_request):
        raise TypeError(f"process_request must be callable or None; got {process_request!r}")
    router = (create_router or Router)(url_map, server_name, "ws" if ssl is None else "wss")
    if process_request is None:
        return router, _context(ssl), router.route_request
    first = process_request

    def process_request_then_route(
        connection: ServerConnection, request: Request
    ) -> Response | None:
        response = first(connection, request)
        if response is not None:
            # Sent as it is: the server checks that it is a Response.
            return response
        return router.route_request(connection, request)

    return router, _context(ssl), process_request_then_route


def _context(ssl: SSLContext | Literal[True] | None) -> SSLContext | None:
    """The TLS context the server itself uses: none when a proxy in front ends TLS."""
    return None if ssl is True else ssl
