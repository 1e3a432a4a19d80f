"""HTTP Basic authentication (RFC 7617) for the opening handshake: :func:`basic_auth`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Any

from .core.headers import build_www_authenticate_basic, parse_authorization_basic
from .core.http11 import Request, Response
from .exceptions import InvalidHeader, InvalidHeaderFormat, InvalidHeaderValue
from .server import ProcessRequest, ServerConnection

__all__ = ["basic_auth"]


def basic_auth(
    realm: str = "",
    credentials: tuple[str, str] | Iterable[tuple[str, str]] | None = None,
    check_credentials: Callable[[str, str], bool] | None = None,
) -> ProcessRequest:
    """Build a ``process_request`` hook that requires HTTP Basic authentication.

    Requests without valid credentials get ``401 Unauthorized`` with ``WWW-Authenticate``.
    Once they are accepted, ``connection.username`` holds the user name.

    Args:
        realm: the realm shown by browsers.
        credentials: a ``(username, password)`` pair, or several. They are checked in
            constant time: both the user name and the password are hashed and compared with
            :func:`hmac.compare_digest` against every pair, so timing tells neither whether
            a user exists nor how much of a password matched.
        check_credentials: a function ``(username, password) -> bool``, instead of
            ``credentials``; it is responsible for comparing in constant time.
    """
    if (credentials is None) == (check_credentials is None):
        raise TypeError("provide either credentials or check_credentials")
    if credentials is not None:
        items: list[Any] = list(credentials)
        if len(items) == 2 and all(isinstance(item, str) for item in items):
            items = [tuple(items)]  # a single (username, password) pair
        pairs: list[tuple[str, str]] = []
        for pair in items:
            if not (
                isinstance(pair, tuple)
                and len(pair) == 2
                and all(isinstance(item, str) for item in pair)
            ):
                raise TypeError(f"invalid credentials: {pair!r}")
            pairs.append((pair[0], pair[1]))
        digests = [(_digest(username), _digest(password)) for username, password in pairs]

        def check(username: str, password: str) -> bool:
            user_digest, password_digest = _digest(username), _digest(password)
            valid = False
            for known_user, known_password in digests:
                # Both comparisons run for every pair: no early exit leaks which one failed.
                same_user = hmac.compare_digest(user_digest, known_user)
                same_password = hmac.compare_digest(password_digest, known_password)
                valid |= same_user & same_password
            return valid

        check_credentials = check

    assert check_credentials is not None
    checker = check_credentials
    challenge = build_www_authenticate_basic(realm)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        try:
            authorization = request.headers["Authorization"]
        except KeyError:
            return _unauthorized(connection, challenge, "Missing credentials\n")
        try:
            username, password = parse_authorization_basic(authorization)
        except (InvalidHeader, InvalidHeaderFormat, InvalidHeaderValue):
            return _unauthorized(connection, challenge, "Unsupported credentials\n")
        if not checker(username, password):
            return _unauthorized(connection, challenge, "Invalid credentials\n")
        connection.username = username
        return None

    return process_request


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _unauthorized(connection: ServerConnection, challenge: str, text: str) -> Response:
    response = connection.respond(401, text)
    response.headers["WWW-Authenticate"] = challenge
    return response
