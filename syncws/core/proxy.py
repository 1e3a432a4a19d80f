"""Proxy settings: parse a proxy's URL, and choose the proxy for a URI from the environment.

This is the pure part of proxy support: the tunnels through a proxy, which do I/O, are in
:mod:`syncws.proxy`. The environment comes as a mapping, so that nothing here reads
:data:`os.environ` itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..exceptions import InvalidProxy
from .uri import WebSocketURI

__all__ = ["Proxy", "get_proxy", "parse_proxy", "proxy_bypass"]


@dataclass(frozen=True)
class Proxy:
    """A parsed proxy URL.

    Attributes:
        secure: ``True`` for an ``https://`` proxy, reached over TLS.
        host: the proxy's host, an IPv6 address without brackets.
        port: the proxy's port; 80, 443 or 1080 when the URL has none.
        username: the user name for the proxy, percent-decoded, or ``None``.
        password: the password, percent-decoded, or ``None``; left out of ``repr()``.
        scheme: ``http``, ``https``, ``socks5`` or ``socks5h``.
    """

    secure: bool
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    scheme: str = "http"

    @property
    def socks(self) -> bool:
        """Whether this is a SOCKS5 proxy."""
        return self.scheme in ("socks5", "socks5h")


def parse_proxy(proxy: str) -> Proxy:
    """Parse a proxy URL: ``http://[user:password@]host[:port]``, ``https://...``,
    ``socks5://...`` or ``socks5h://...``.

    A URL without a scheme, as environment variables often hold (``proxy.example:3128``), is
    an ``http://`` one.

    Raises:
        InvalidProxy: the URL cannot be parsed, or names another kind of proxy (SOCKS4).
    """
    url = proxy if "://" in proxy else f"http://{proxy}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidProxy(proxy, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidProxy(
            proxy, f"unsupported scheme {scheme}: only http, https, socks5 and socks5h"
        )
    if not parts.hostname:
        raise InvalidProxy(proxy, "missing host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidProxy(proxy, "a proxy URL has no path, query or fragment")
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    if scheme.startswith("socks") and username is not None:
        # RFC 1929 §2: each is 1 to 255 bytes.
        for name, value in (("user name", username), ("password", password or "")):
            if not 1 <= len(value.encode()) <= 255:
                raise InvalidProxy(proxy, f"a SOCKS5 {name} is 1 to 255 bytes")
    return Proxy(
        scheme == "https",
        parts.hostname,
        port or _DEFAULT_PORTS[scheme],
        username,
        password,
        scheme,
    )


_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}


def get_proxy(uri: WebSocketURI, environ: Mapping[str, str]) -> str | None:
    """The proxy URL that the environment gives for ``uri``, or ``None`` for a direct route.

    ``wss://`` URIs use ``wss_proxy``, then ``https_proxy``; ``ws://`` URIs ``ws_proxy``, then
    ``http_proxy``; both fall back to ``all_proxy``. ``no_proxy`` lists the hosts to reach
    directly (see :func:`proxy_bypass`).
    Each variable is read in lower case first, then in upper case, as curl does. In a CGI
    program (``REQUEST_METHOD`` set), ``HTTP_PROXY`` may come from a request header
    ("httpoxy"), so only ``http_proxy`` counts.

    Args:
        uri: where the client connects.
        environ: the environment variables, such as :data:`os.environ`.
    """

    def variable(name: str) -> str:
        value = environ.get(name)
        if value is None and not (name == "http_proxy" and "REQUEST_METHOD" in environ):
            value = environ.get(name.upper())
        return (value or "").strip()

    if uri.secure:
        specific = variable("wss_proxy") or variable("https_proxy")
    else:
        specific = variable("ws_proxy") or variable("http_proxy")
    proxy = specific or variable("all_proxy")
    # Without a proxy, no_proxy has nothing to say: most connections stop here.
    if not proxy or proxy_bypass(uri.host, uri.port, variable("no_proxy")):
        return None
    return proxy


def proxy_bypass(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``host:port`` is to be reached directly, by the ``no_proxy`` list.

    ``no_proxy`` is a list of entries separated by commas or spaces:

    * ``*`` matches every host;
    * ``example.com`` and ``.example.com`` match ``example.com`` and its subdomains;
    * an IP address matches itself, and a CIDR range such as ``10.0.0.0/8`` or
      ``fd00::/8`` the IP addresses in it (names are not resolved to match them);
    * any of these may end with ``:port`` (``[...]:port`` for IPv6) to match one port only.

    Args:
        host: a lower-cased hostname, or an IP address (IPv6 without brackets).
        port: the port.
        no_proxy: the list, as in the ``no_proxy`` environment variable.
    """
    host = host.rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.replace(",", " ").split():
        pattern, entry_port = _split_port(entry.lower())
        if entry_port is not None and entry_port != port:
            continue
        if pattern == "*":
            return True
        if "/" in pattern:
            try:
                network = ipaddress.ip_network(pattern, strict=False)
            except ValueError:
                continue
            if address is not None and address in network:
                return True
            continue
        try:
            entry_address = ipaddress.ip_address(pattern)
        except ValueError:
            pass
        else:
            if address == entry_address:
                return True
            continue
        if address is not None:
            continue  # names match names: an IP address has no domain to be part of
        # A leading "." or "*." only says "subdomains too", which a bare name means anyway.
        suffix = pattern.removeprefix("*").lstrip(".").rstrip(".")
        if suffix and (host == suffix or host.endswith(f".{suffix}")):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """Split ``host:port``, ``[ipv6]:port`` or ``[ipv6]``; a bare IPv6 address has no port."""
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return address, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None
