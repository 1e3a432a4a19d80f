"""Proxies for the client: which proxy to use, and the tunnel through it.

A client reaches a WebSocket server through an HTTP proxy by asking it to open a TCP tunnel
with ``CONNECT host:port`` (RFC 9110 §9.3.6); everything after the proxy's ``2xx`` answer is
the WebSocket connection itself (TLS first for ``wss://``). With an ``https://`` proxy the
client speaks TLS to the proxy too, so a ``wss://`` connection runs TLS inside TLS.

A SOCKS5 proxy (RFC 1928) opens the same kind of tunnel after a binary exchange, with a user
name and password (RFC 1929) when the proxy's URL has them. With ``socks5h://`` the proxy
resolves the server's name; with ``socks5://`` the client does and sends the address.

::

    ProxyError(InvalidHandshake)   the proxy did not open the tunnel
    ├── InvalidProxyMessage        ... its answer was not valid HTTP or SOCKS5
    ├── InvalidProxyStatus         ... an HTTP proxy refused: 407, 403, 502, ... (has .response)
    └── SocksProxyError            ... a SOCKS5 proxy refused (has .code)
    InvalidProxy(InvalidHandshake) the proxy's URL is not usable
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .core.headers import Headers, build_authorization_basic, build_host
from .core.http11 import Response
from .core.uri import WebSocketURI
from .deadline import remaining
from .exceptions import InvalidHandshake
from .transport import TLSTransport, Transport, run_tls_handshake

__all__ = [
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "Proxy",
    "ProxyError",
    "SocksProxyError",
    "TunnelTLSTransport",
    "get_proxy",
    "open_socks5_tunnel",
    "open_tunnel",
    "parse_proxy",
    "proxy_bypass",
    "tls_over_transport",
]


class InvalidProxy(InvalidHandshake):
    """A proxy URL is not a valid ``http://``, ``https://``, ``socks5://`` or ``socks5h://``
    URL."""

    def __init__(self, proxy: str, msg: str) -> None:
        self.proxy = proxy
        self.msg = msg
        super().__init__(f"{_redact(proxy)!r} is not a valid proxy: {msg}")


class ProxyError(InvalidHandshake):
    """The proxy did not open a tunnel to the server."""


class InvalidProxyMessage(ProxyError):
    """The proxy's answer is not valid: not an HTTP response to ``CONNECT`` from an HTTP
    proxy, not a SOCKS5 reply from a SOCKS proxy."""


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


# RFC 1928 §6: what a SOCKS5 proxy's reply codes mean.
_SOCKS5_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


class SocksProxyError(ProxyError):
    """A SOCKS5 proxy refused to open the tunnel.

    Attributes:
        code: the proxy's reply code (RFC 1928 §6), e.g. 5 when the server refused the
            connection or 2 when the proxy's rules forbid it; ``None`` when the proxy
            refused the credentials, or asked for a kind of authentication syncws lacks.
    """

    def __init__(self, msg: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(msg)


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


def _redact(proxy: str) -> str:
    """``proxy`` without its password, for error messages and logs."""
    scheme, sep, rest = proxy.rpartition("://")
    userinfo, at, hostport = rest.rpartition("@")
    if not at:
        return proxy
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{hostport}"


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


def get_proxy(uri: WebSocketURI, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL that the environment gives for ``uri``, or ``None`` for a direct route.

    ``wss://`` URIs use ``wss_proxy``, then ``https_proxy``; ``ws://`` URIs ``ws_proxy``, then
    ``http_proxy``; both fall back to ``all_proxy``. ``no_proxy`` lists the hosts to reach
    directly (see :func:`proxy_bypass`).
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
    if uri.secure:
        specific = variable("wss_proxy") or variable("https_proxy")
    else:
        specific = variable("ws_proxy") or variable("http_proxy")
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
    transport.send([request], remaining(deadline, during="proxy handshake"))

    # The proxy must not send tunnel bytes before the client speaks: a TLS client hello or a
    # WebSocket request goes first. So reading by chunks never takes bytes that belong to
    # the connection; any that come with the head are a broken proxy.
    buffer = b""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > _MAX_HEAD:
            raise InvalidProxyMessage(f"proxy response head longer than {_MAX_HEAD} bytes")
        data = transport.recv(_MAX_HEAD, remaining(deadline, during="proxy handshake"))
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


def open_socks5_tunnel(
    transport: Transport,
    proxy: Proxy,
    host: str,
    port: int,
    *,
    deadline: float | None,
) -> None:
    """Ask the SOCKS5 proxy at the other end of ``transport`` to connect to ``host:port``.

    ``host`` goes to the proxy as it is: an IP address as an address, a name for the proxy to
    resolve (for ``socks5://``, the caller resolves it first). Returns once the proxy
    connected: from then on, ``transport`` carries bytes to and from the server.

    Raises:
        SocksProxyError: the proxy refused the credentials or the connection.
        InvalidProxyMessage: the proxy's answer is not SOCKS5.
        TimeoutError: the deadline passed.
        OSError: the connection to the proxy broke.
    """

    def send(data: bytes) -> None:
        transport.send([data], remaining(deadline, during="proxy handshake"))

    def read(size: int) -> bytes:
        # Exactly ``size`` bytes: what follows the proxy's reply belongs to the connection.
        data = b""
        while len(data) < size:
            chunk = transport.recv(size - len(data), remaining(deadline, during="proxy handshake"))
            if not chunk:
                raise InvalidProxyMessage("proxy closed the connection during the SOCKS5 handshake")
            data += chunk
        return data

    # RFC 1928 §3: the authentication methods offered: none (0), user name and password (2).
    credentials = proxy.username is not None
    send(b"\x05\x02\x00\x02" if credentials else b"\x05\x01\x00")
    version, method = read(2)
    if version != 5:
        raise InvalidProxyMessage(f"not a SOCKS5 proxy: it answered with version {version}")
    if method == 2 and proxy.username is not None:
        # RFC 1929 §2: version 1, then the user name and the password, each after its length.
        username = proxy.username.encode()
        password = (proxy.password or "").encode()
        send(bytes([1, len(username)]) + username + bytes([len(password)]) + password)
        version, status = read(2)
        if version != 1:
            raise InvalidProxyMessage(f"invalid SOCKS5 authentication reply: version {version}")
        if status != 0:
            raise SocksProxyError("SOCKS5 proxy rejected the user name or password")
    elif method == 0xFF:
        raise SocksProxyError(
            "SOCKS5 proxy requires credentials"
            if not credentials
            else "SOCKS5 proxy accepts none of the authentication methods offered"
        )
    elif method != 0:
        raise InvalidProxyMessage(f"SOCKS5 proxy chose a method that was not offered: {method}")

    # RFC 1928 §4-5: CONNECT (1) to an IPv4 address (1), a domain name (3) or IPv6 (4).
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")
        if not 1 <= len(name) <= 255:
            raise InvalidProxyMessage(f"host name too long for SOCKS5: {host[:80]}") from None
        target = bytes([3, len(name)]) + name
    else:
        target = bytes([1 if address.version == 4 else 4]) + address.packed
    send(b"\x05\x01\x00" + target + struct.pack("!H", port))
    version, reply, _, kind = read(4)
    if version != 5:
        raise InvalidProxyMessage(f"invalid SOCKS5 reply: version {version}")
    if reply != 0:
        reason = _SOCKS5_REPLIES.get(reply, "unknown error")
        raise SocksProxyError(
            f"SOCKS5 proxy did not connect to {host}:{port}: {reason} ({reply})", reply
        )
    # The address the proxy connected from, then its port: read past them.
    if kind == 1:
        read(4 + 2)
    elif kind == 4:
        read(16 + 2)
    elif kind == 3:
        read(read(1)[0] + 2)
    else:
        raise InvalidProxyMessage(f"invalid SOCKS5 reply: address type {kind}")


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

    def backlog(self) -> int:
        """Encrypted bytes waiting, in this transport and in the one to the proxy."""
        return super().backlog() + self.inner.backlog()


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

