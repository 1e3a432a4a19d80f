"""HTTP and HTTPS proxies for the client: which proxy to use, and the tunnel through it.

A client reaches a WebSocket server through a proxy by asking the proxy to open a TCP tunnel
with ``CONNECT host:port`` (RFC 9110 §9.3.6); everything after the proxy's ``2xx`` answer is
the WebSocket connection itself (TLS first for ``wss://``). With an ``https://`` proxy the
client speaks TLS to the proxy too, so a ``wss://`` connection runs TLS inside TLS.

::

    ProxyError(InvalidHandshake)   the proxy did not open the tunnel
    ├── InvalidProxyMessage        ... its answer was not valid HTTP
    └── InvalidProxyStatus         ... it refused: 407, 403, 502, ... (has .response)
    InvalidProxy(InvalidHandshake) the proxy's URL is not usable
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .exceptions import InvalidHandshake
from .headers import Headers, build_authorization_basic, build_host
from .http11 import Response
from .transport import TLSTransport, Transport, remaining, run_tls_handshake
from .uri import WebSocketURI

__all__ = [
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "Proxy",
    "ProxyError",
    "TunnelTLSTransport",
    "get_proxy",
    "open_tunnel",
    "parse_proxy",
    "proxy_bypass",
    "tls_over_transport",
]


class InvalidProxy(InvalidHandshake):
    """A proxy URL is not a valid ``http://`` or ``https://`` URL."""

    def __init__(self, proxy: str, msg: str) -> None:
        self.proxy = proxy
        self.msg = msg
        super().__init__(f"{_redact(proxy)!r} is not a valid proxy: {msg}")


class ProxyError(InvalidHandshake):
    """The proxy did not open a tunnel to the server."""


class InvalidProxyMessage(ProxyError):
    """The proxy's answer to ``CONNECT`` is not a valid HTTP response."""


class InvalidProxyStatus(ProxyError):
    """The proxy refused to open the tunnel: it answered with a status other than 2xx.

    Attributes:
        response: the proxy's response; its body holds what came with the header section.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"proxy rejected connection: HTTP {response.status_code}")

    @property
    def status_code(self) -> int:
        """The proxy's status code, e.g. 407 (Proxy Authentication Required) or 403."""
        return self.response.status_code


@dataclass(frozen=True)
class Proxy:
    """A parsed proxy URL.

    Attributes:
        secure: ``True`` for an ``https://`` proxy, reached over TLS.
        host: the proxy's host, an IPv6 address without brackets.
        port: the proxy's port; 80 or 443 when the URL has none.
        username: the user name for Basic credentials, percent-decoded, or ``None``.
        password: the password, percent-decoded, or ``None``; left out of ``repr()``.
    """

    secure: bool
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def _redact(proxy: str) -> str:
    """``proxy`` without its password, for error messages and logs."""
    scheme, sep, rest = proxy.rpartition("://")
    userinfo, at, hostport = rest.rpartition("@")
    if not at:
        return proxy
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{hostport}"


def parse_proxy(proxy: str) -> Proxy:
    """Parse a proxy URL: ``http://[user:password@]host[:port]`` or ``https://...``.

    A URL without a scheme, as environment variables often hold (``proxy.example:3128``), is
    an ``http://`` one.

    Raises:
        InvalidProxy: the URL cannot be parsed, or names another kind of proxy (SOCKS).
    """
    url = proxy if "://" in proxy else f"http://{proxy}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidProxy(proxy, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidProxy(proxy, f"unsupported scheme {scheme}: only http and https")
    if not parts.hostname:
        raise InvalidProxy(proxy, "missing host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidProxy(proxy, "a proxy URL has no path, query or fragment")
    secure = scheme == "https"
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return Proxy(secure, parts.hostname, port or (443 if secure else 80), username, password)


def get_proxy(uri: WebSocketURI, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL that the environment gives for ``uri``, or ``None`` for a direct route.

    ``wss://`` URIs use ``https_proxy``, ``ws://`` URIs ``http_proxy``, both fall back to
    ``all_proxy``; ``no_proxy`` lists the hosts to reach directly (see :func:`proxy_bypass`).
    Each variable is read in lower case first, then in upper case, as curl does. In a CGI
    program (``REQUEST_METHOD`` set), ``HTTP_PROXY`` may come from a request header
    ("httpoxy"), so only ``http_proxy`` counts.

    Args:
        uri: where the client connects.
        environ: the environment; :data:`os.environ` by default.
    """
    if environ is None:
        environ = os.environ

    def variable(name: str) -> str:
        value = environ.get(name)
        if value is None and not (name == "http_proxy" and "REQUEST_METHOD" in environ):
            value = environ.get(name.upper())
        return (value or "").strip()

    if proxy_bypass(uri.host, uri.port, variable("no_proxy")):
        return None
    specific = variable("https_proxy" if uri.secure else "http_proxy")
    return specific or variable("all_proxy") or None


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


# A CONNECT response is a status line and a few headers; more than this is not a proxy.
_MAX_HEAD = 2**16


def open_tunnel(
    transport: Transport,
    proxy: Proxy,
    host: str,
    port: int,
    *,
    user_agent: str | None,
    deadline: float | None,
) -> None:
    """Ask the proxy at the other end of ``transport`` to connect to ``host:port``.

    Returns once the proxy answered 2xx: from then on, ``transport`` carries bytes to and from
    the server.

    Raises:
        InvalidProxyStatus: the proxy refused.
        InvalidProxyMessage: the proxy's answer is not HTTP.
        TimeoutError: the deadline passed.
        OSError: the connection to the proxy broke.
    """
    # RFC 9110 §9.3.6: the target of CONNECT is host:port, in the same form as Host.
    target = build_host(host, port, secure=False, always_include_port=True)
    headers = Headers()
    headers["Host"] = target
    if user_agent is not None:
        headers["User-Agent"] = user_agent
    if proxy.username is not None:
        # RFC 9110 §11.7.2: credentials for the proxy go in Proxy-Authorization.
        headers["Proxy-Authorization"] = build_authorization_basic(
            proxy.username, proxy.password or ""
        )
    request = f"CONNECT {target} HTTP/1.1\r\n".encode("ascii") + headers.serialize()
    transport.send([request], remaining(deadline, "proxy handshake"))

    # The proxy must not send tunnel bytes before the client speaks: a TLS client hello or a
    # WebSocket request goes first. So reading by chunks never takes bytes that belong to
    # the connection; any that come with the head are a broken proxy.
    buffer = b""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > _MAX_HEAD:
            raise InvalidProxyMessage(f"proxy response head longer than {_MAX_HEAD} bytes")
        data = transport.recv(_MAX_HEAD, remaining(deadline, "proxy handshake"))
        if not data:
            raise InvalidProxyMessage("proxy closed the connection before answering CONNECT")
        buffer += data
    response = _parse_head(buffer[:end])
    rest = buffer[end + 4 :]
    if not 200 <= response.status_code < 300:
        response.body = rest
        raise InvalidProxyStatus(response)
    if rest:
        raise InvalidProxyMessage("proxy sent data after its answer to CONNECT")


def _parse_head(head: bytes) -> Response:
    """Parse a status line and header lines, leniently: proxies answer in HTTP/1.0 too."""
    status_line, *lines = head.split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.0", b"HTTP/1.1") or not (len(code) == 3 and code.isdigit()):
        raise InvalidProxyMessage(f"invalid status line from proxy: {status_line[:80]!r}")
    headers = Headers()
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon:
            raise InvalidProxyMessage(f"invalid header line from proxy: {line[:80]!r}")
        try:
            headers[name.decode("ascii").strip()] = value.strip().decode("latin-1")
        except (UnicodeError, ValueError):
            raise InvalidProxyMessage(f"invalid header line from proxy: {line[:80]!r}") from None
    return Response(int(code), reason.decode("latin-1"), headers)


class _Tunnel(Transport):
    """Bytes carried by another transport instead of a socket.

    Only the base for :class:`TunnelTLSTransport`: :class:`~syncws.transport.TLSTransport`
    reads and writes ciphertext through ``super().recv()`` and ``_send_raw()``, and these
    methods send it through the inner transport.
    """

    inner: Transport

    def recv(self, bufsize: int, timeout: float | None = None) -> bytes:
        return self.inner.recv(bufsize, timeout)

    def _send_raw(
        self, chunks: list[bytes], timeout: float | None, *, last: bool = False
    ) -> list[bytes]:
        return self.inner.send(chunks, timeout, last=last)

    def shutdown_write(self) -> None:
        self.inner.shutdown_write()

    def abort(self) -> None:
        self.inner.abort()

    def close(self) -> None:
        self.inner.close()


class TunnelTLSTransport(TLSTransport, _Tunnel):
    """TLS over another transport: to a ``wss://`` server through an ``https://`` proxy.

    Build it with :func:`tls_over_transport`. Closing or aborting it closes or aborts the
    inner transport, and so the socket.
    """

    def __init__(
        self,
        inner: Transport,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self.inner = inner
        super().__init__(inner.sock, ssl_object, incoming, outgoing)


def tls_over_transport(
    inner: Transport,
    context: ssl.SSLContext,
    *,
    server_hostname: str,
    deadline: float | None,
) -> TunnelTLSTransport:
    """Run a client TLS handshake through ``inner`` before ``deadline``.

    Raises:
        TimeoutError: the deadline passed.
        ssl.SSLError: the handshake failed, e.g. the certificate did not verify.
        OSError: the connection broke.
    """
    incoming = ssl.MemoryBIO()
    outgoing = ssl.MemoryBIO()
    ssl_object = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    transport = TunnelTLSTransport(inner, ssl_object, incoming, outgoing)
    run_tls_handshake(transport, inner.send, inner.recv, deadline)
    return transport

