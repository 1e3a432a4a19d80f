"""Tunnels through proxies for the client: HTTP ``CONNECT`` and SOCKS5.

A client reaches a WebSocket server through an HTTP proxy by asking it to open a TCP tunnel
with ``CONNECT host:port`` (RFC 9110 §9.3.6); everything after the proxy's ``2xx`` answer is
the WebSocket connection itself (TLS first for ``wss://``). With an ``https://`` proxy the
client speaks TLS to the proxy too, so a ``wss://`` connection runs TLS inside TLS: a
:class:`~syncws.transport.TLSTransport` over the one to the proxy.

A SOCKS5 proxy (RFC 1928) opens the same kind of tunnel after a binary exchange, with a user
name and password (RFC 1929) when the proxy's URL has them. With ``socks5h://`` the proxy
resolves the server's name; with ``socks5://`` the client does and sends the address.

Which proxy to use, and its settings, come from :mod:`syncws.core.proxy`; what goes wrong is
a :exc:`~syncws.exceptions.ProxyError`.
"""

from __future__ import annotations

import ipaddress
import struct

from .core.headers import Headers, build_authorization_basic, build_host
from .core.http11 import Response
from .core.proxy import Proxy
from .core.streams import StreamReader
from .deadline import remaining
from .exceptions import InvalidMessage, InvalidProxyMessage, InvalidProxyStatus, SocksProxyError
from .transport import Transport

__all__ = ["open_socks5_tunnel", "open_tunnel"]

# What a read of the proxy's answer to CONNECT asks for.
_READ_SIZE = 2**16

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
    # the connection; any that come with the answer are a broken proxy.
    reader = StreamReader()
    parser = Response.parse(reader.read_line, reader.read_exact, reader.read_to_eof, connect=True)
    try:
        next(parser)
        while True:
            data = transport.recv(_READ_SIZE, remaining(deadline, during="proxy handshake"))
            if data:
                reader.feed_data(data)
            else:
                reader.feed_eof()
            next(parser)
    except StopIteration as done:
        response: Response = done.value
    except EOFError:
        raise InvalidProxyMessage("proxy closed the connection before answering CONNECT") from None
    except InvalidMessage as exc:
        raise InvalidProxyMessage(f"invalid answer to CONNECT from proxy: {exc}") from exc
    rest = bytes(reader.buffer)
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
