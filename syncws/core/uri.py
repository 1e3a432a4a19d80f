"""Parse ``ws://`` and ``wss://`` URIs (RFC 6455 §3, RFC 3986)."""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from ..exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]


@dataclass(frozen=True)
class WebSocketURI:
    """A parsed WebSocket URI.

    Attributes:
        secure: ``True`` for ``wss``, ``False`` for ``ws``.
        host: the host: a lower-cased ASCII hostname (IDNA-encoded if it was not ASCII), an
            IPv4 address, or an IPv6 address without brackets.
        port: the port, 80 or 443 when the URI has none.
        path: the path, percent-encoded; may be empty.
        query: the query without its ``?``, percent-encoded; may be empty.
        username: the user name, percent-decoded, or ``None``.
        password: the password, percent-decoded, or ``None``; left out of ``repr()``.
    """

    secure: bool
    host: str
    port: int
    path: str
    query: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def resource_name(self) -> str:
        """The request target: the path, ``/`` if it is empty, then ``?query`` if any.

        RFC 6455 §3 defines it this way.
        """
        resource_name = self.path or "/"
        if self.query:
            resource_name = f"{resource_name}?{self.query}"
        return resource_name

    @property
    def user_info(self) -> tuple[str, str] | None:
        """The user name and password for Basic authentication, or ``None``.

        The password is ``""`` when the URI gives a user name without one.
        """
        if self.username is None:
            return None
        return self.username, self.password or ""


# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ); we only need to know
# whether it is ws or wss, compared case-insensitively.
_SCHEMES = {"ws": False, "wss": True}
# Control characters: C0, DEL and C1. None has a place in a URI, and CR or LF in a host or path
# would inject header lines into the handshake request.
_control_re = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# RFC 3986 §3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ), which covers IPv4
# addresses too. Percent-encoded hostnames are not supported.
_reg_name_re = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]+")
# RFC 3986 §3.3, §3.4: characters that may appear in a path or query as they are. Everything
# else is percent-encoded from UTF-8, as RFC 3987 §3.1 maps an IRI to a URI. "%" stays, so that
# an already-encoded URI is not encoded twice.
_PATH_SAFE = "!$&'()*+,;=:@/%"
_QUERY_SAFE = _PATH_SAFE + "?"


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a WebSocket URI.

    Args:
        uri: a ``ws://`` or ``wss://`` URI. The scheme is case-insensitive. The host may be a
            hostname (IDNA-encoded if it is not ASCII), an IPv4 address or an IPv6 address in
            brackets. It may have a user name and a password before ``@``, which are
            percent-decoded. Characters other than those RFC 3986 allows in a path or query,
            such as non-ASCII characters or spaces, are percent-encoded from UTF-8.

    Raises:
        TypeError: if ``uri`` is not a str.
        InvalidURI: if ``uri`` is not a valid WebSocket URI.
    """
    if not isinstance(uri, str):
        raise TypeError(f"uri must be a str, got {uri!r}")
    return _parse_uri(uri)


# A client connects to the same few URIs again and again; a WebSocketURI is immutable.
@functools.lru_cache(maxsize=256)
def _parse_uri(uri: str) -> WebSocketURI:
    if _control_re.search(uri) is not None:
        raise InvalidURI(uri, "control character")
    scheme, colon, rest = uri.partition(":")
    secure = _SCHEMES.get(scheme.lower()) if colon else None
    if secure is None:
        raise InvalidURI(uri, "scheme is not ws or wss")
    # RFC 6455 §3: fragments are meaningless for WebSocket URIs and MUST NOT be used; a "#"
    # must be written %23.
    if "#" in rest:
        raise InvalidURI(uri, "fragment")
    # RFC 6455 §3: ws-URI = "ws:" "//" host [ ":" port ] path [ "?" query ].
    if not rest.startswith("//"):
        raise InvalidURI(uri, "missing //")
    rest = rest[2:]
    # RFC 3986 §3.2: the authority ends at the first "/" or "?".
    end = len(rest)
    for delimiter in "/?":
        index = rest.find(delimiter)
        if 0 <= index < end:
            end = index
    authority, path_and_query = rest[:end], rest[end:]
    path, _, query = path_and_query.partition("?")

    userinfo, at, hostport = authority.rpartition("@")
    username = password = None
    if at:
        username, password = _parse_userinfo(uri, userinfo)
    host, port = _parse_hostport(uri, hostport, secure)

    try:
        path = quote(path, safe=_PATH_SAFE)
        query = quote(query, safe=_QUERY_SAFE)
    except UnicodeError:  # lone surrogates cannot be encoded to UTF-8
        raise InvalidURI(uri, "path or query cannot be encoded") from None

    return WebSocketURI(secure, host, port, path, query, username, password)


def _parse_userinfo(uri: str, userinfo: str) -> tuple[str, str]:
    """Split and decode ``user:password``; the password is ``""`` if there is no colon."""
    # RFC 3986 §3.2.1: userinfo cannot contain "@" unencoded.
    if "@" in userinfo:
        raise InvalidURI(uri, "more than one @")
    raw_username, _, raw_password = userinfo.partition(":")
    try:
        username = unquote(raw_username, errors="strict")
        password = unquote(raw_password, errors="strict")
    except UnicodeError:
        raise InvalidURI(uri, "user info is not UTF-8") from None
    # RFC 7617 §2: Basic authentication cannot carry a user-id with a colon, nor control
    # characters; percent-encoding could smuggle both in.
    if ":" in username:
        raise InvalidURI(uri, "user name contains a colon")
    if _control_re.search(username) is not None or _control_re.search(password) is not None:
        raise InvalidURI(uri, "control character in user info")
    return username, password


def _parse_hostport(uri: str, hostport: str, secure: bool) -> tuple[str, int]:
    """Split ``host[:port]``, check the host, and apply the default port."""
    if hostport.startswith("["):
        # RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]". IPvFuture and zone identifiers
        # are not supported.
        close = hostport.find("]")
        if close < 0:
            raise InvalidURI(uri, "unterminated IPv6 address")
        host, raw_port = hostport[1:close].lower(), hostport[close + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidURI(uri, "invalid IPv6 address") from None
        if "%" in host:
            raise InvalidURI(uri, "IPv6 zone identifiers are not supported")
        if raw_port and not raw_port.startswith(":"):
            raise InvalidURI(uri, "unexpected characters after IPv6 address")
        raw_port = raw_port[1:]
    else:
        host, _, raw_port = hostport.partition(":")
        if not host:
            raise InvalidURI(uri, "missing host")
        if not host.isascii():
            # Hostnames are ASCII on the wire: IDNA maps the others (RFC 5890).
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise InvalidURI(uri, "hostname cannot be IDNA-encoded") from None
        if _reg_name_re.fullmatch(host) is None:
            raise InvalidURI(uri, "invalid character in host")
        # RFC 3986 §3.2.2: hosts are case-insensitive.
        host = host.lower()

    # RFC 3986 §3.2.3: port = *DIGIT; an empty port means the default one.
    if not raw_port:
        return host, 443 if secure else 80
    if not (raw_port.isascii() and raw_port.isdigit()) or len(raw_port) > 5:
        raise InvalidURI(uri, "invalid port")
    port = int(raw_port)
    # Port 0 cannot be connected to.
    if not 0 < port <= 65535:
        raise InvalidURI(uri, "port out of range")
    return host, port
