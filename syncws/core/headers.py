"""HTTP header fields: a case-insensitive multi-value container, and parsers and builders for the
header values that the WebSocket opening handshake uses.

Every parser is a hand-written scanner that moves forward through the value and never goes back,
so a hostile value costs time linear in its length. The regular expressions below only match
runs of one character class; they cannot backtrack.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, TypeVar, Union

from ..exceptions import InvalidHeaderFormat, InvalidHeaderValue

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = [
    "GUID",
    "ExtensionHeader",
    "ExtensionParameter",
    "Headers",
    "HeadersLike",
    "MultipleValuesError",
    "accept_key",
    "build_authorization_basic",
    "build_extension",
    "build_host",
    "build_subprotocol",
    "build_www_authenticate_basic",
    "generate_key",
    "parse_all",
    "parse_authorization_basic",
    "parse_connection",
    "parse_extension",
    "parse_subprotocol",
    "parse_upgrade",
    "validate_subprotocols",
]

# An extension parameter: its name and its value, None when it has no value.
ExtensionParameter = tuple[str, str | None]
# An extension offer or response: its name and its parameters, in order.
ExtensionHeader = tuple[str, list[ExtensionParameter]]

HeadersLike = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]]]
"""Headers given as a :class:`Headers`, a mapping, or an iterable of ``(name, value)`` pairs."""


class MultipleValuesError(KeyError):
    """``headers[name]`` was used for a header that has several values.

    Use :meth:`Headers.get_all` to read every value.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        # KeyError's own __str__ shows only repr(name), which hides what went wrong.
        return f"multiple values for header {self.name!r}"


# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_token_re = re.compile(_TOKEN)
# RFC 9110 §5.5: a field value is made of HTAB, SP, VCHAR and obs-text (0x80-0xFF). Values are
# kept as latin-1 text so that obs-text survives a round trip as opaque data.
_field_value_re = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# RFC 9110 §5.6.3: OWS = *( SP / HTAB ).
_ows_re = re.compile(r"[ \t]*")
# RFC 9110 §5.6.4: qdtext = HTAB / SP / "!" / %x23-5B / %x5D-7E / obs-text.
_qdtext_re = re.compile(r"[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]*")
# RFC 9110 §5.6.4: quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
_quoted_pair_char_re = re.compile(r"[\t \x21-\x7e\x80-\xff]")
# RFC 9110 §11.2: token68. The character classes of the two parts are disjoint, so the match
# cannot backtrack.
_token68_re = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Control characters, which RFC 7617 §2 forbids in user-ids and passwords.
_ctl_re = re.compile(r"[\x00-\x1f\x7f]")


def _is_token(value: str) -> bool:
    return _token_re.fullmatch(value) is not None


class Headers(MutableMapping[str, str]):
    """HTTP header fields: case-insensitive names, several values per name, order kept.

    The container holds an ordered list of ``(name, value)`` pairs, with names in the case they
    were given. As a mapping it is a view of the distinct names:

    * ``headers[name] = value`` *adds* a value; it never replaces one.
    * ``headers[name]`` returns the value of a header that has exactly one; it raises
      :exc:`KeyError` if there is none and :exc:`MultipleValuesError` (a :exc:`KeyError`) if there
      are several.
    * ``del headers[name]`` removes every value of that header.
    * iteration yields each distinct name once, lower-cased, in order of first appearance, and
      ``len(headers)`` is the number of distinct names, so ``len(headers) == len(list(headers))``.
    * :meth:`get_all` returns every value of one header; :meth:`raw_items` every pair.

    Because ``headers[name]`` refuses to pick one of several values, ``items()`` and
    ``values()`` raise :exc:`MultipleValuesError` when a header is repeated; use
    :meth:`raw_items` to walk every pair.

    Two :class:`Headers` are equal when every name has the same values in the same order: RFC
    9110 §5.3 makes the order of lines with the same name significant, and the order of lines
    with different names not.

    Args:
        headers: a :class:`Headers`, a mapping of names to values or an iterable of
            ``(name, value)`` pairs.
        **kwargs: more headers, added after ``headers``.
    """

    __slots__ = ("_index", "_pairs")

    def __init__(self, headers: HeadersLike | None = None, /, **kwargs: str) -> None:
        self._pairs: list[tuple[str, str]] = []
        # Lower-cased name -> values, in order. A plain dict keeps names in order of first
        # appearance, which is the iteration order.
        self._index: dict[str, list[str]] = {}
        if headers is not None:
            self.update(headers)
        if kwargs:
            self.update(kwargs)

    # Mapping interface.

    def __getitem__(self, name: str) -> str:
        values = self._index.get(name.lower()) if isinstance(name, str) else None
        if values is None:
            raise KeyError(name)
        if len(values) > 1:
            raise MultipleValuesError(name)
        return values[0]

    def __setitem__(self, name: str, value: str) -> None:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
        self._pairs.append((name, value))
        key = name.lower()
        values = self._index.get(key)
        if values is None:
            self._index[key] = [value]
        else:
            values.append(value)

    def __delitem__(self, name: str) -> None:
        key = name.lower() if isinstance(name, str) else None
        if key is None or key not in self._index:
            raise KeyError(name)
        del self._index[key]
        self._pairs = [pair for pair in self._pairs if pair[0].lower() != key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._index == other._index
        if isinstance(other, Mapping):
            try:
                return self._index == Headers(other)._index
            except TypeError:
                return False
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs!r})"

    # Multi-value interface.

    def get_all(self, name: str) -> list[str]:
        """Return every value of a header, in order; an empty list if it is absent."""
        return list(self._index.get(name.lower(), ()))

    def raw_items(self) -> Iterator[tuple[str, str]]:
        """Iterate over every ``(name, value)`` pair, in order, with names in their case."""
        return iter(self._pairs)

    def copy(self) -> Headers:
        """Return a shallow copy."""
        new = type(self)()
        new._pairs = list(self._pairs)
        new._index = {key: list(values) for key, values in self._index.items()}
        return new

    def clear(self) -> None:
        """Remove every header."""
        self._pairs = []
        self._index = {}

    def update(
        self,
        other: SupportsKeysAndGetItem[str, str] | Iterable[tuple[str, str]] = (),
        /,
        **kwargs: str,
    ) -> None:
        """Add headers, keeping those already present.

        Accepts what the constructor accepts. Every value of a :class:`Headers` is added, even
        for repeated names.
        """
        pairs: Iterable[tuple[str, str]]
        if isinstance(other, Headers):
            # Copy first: updating a Headers with itself must not loop forever.
            pairs = list(other._pairs)
        elif hasattr(other, "keys"):
            # Like dict.update(): anything with keys() is a mapping.
            mapping: SupportsKeysAndGetItem[str, str] = other  # type: ignore[assignment]
            # Not "in mapping": such an object need not be iterable, only have keys().
            pairs = [(name, mapping[name]) for name in mapping.keys()]  # noqa: SIM118
        else:
            pairs = other
        self._extend(pairs)
        if kwargs:
            self._extend(kwargs.items())

    def _extend(self, pairs: Iterable[tuple[str, str]]) -> None:
        # What __setitem__ does for each pair, without a call per header: every handshake
        # builds and parses a few of them.
        own = self._pairs
        index = self._index
        for name, value in pairs:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
            own.append((name, value))
            key = name.lower()
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.append(value)

    # Serialization.

    def serialize(self) -> bytes:
        """Return the header section: each ``Name: value`` line, then an empty line.

        Every name and value is checked before any byte is produced, so a value that would
        inject a header or end the header section is never sent.

        Raises:
            ValueError: if a name is not a token (RFC 9110 §5.1) or a value is not a valid
                field value (RFC 9110 §5.5): CR, LF, NUL or another control character other
                than HTAB, leading or trailing whitespace, or a character above U+00FF.
        """
        # _check_header(), inlined: it runs for every header of every handshake.
        for name, value in self._pairs:
            if (
                _token_re.fullmatch(name) is None
                or _field_value_re.fullmatch(value) is None
                or value[:1] in (" ", "\t")
                or value[-1:] in (" ", "\t")
            ):
                _check_header(name, value)
        # latin-1 cannot fail: the checks allow only characters up to U+00FF.
        lines = [f"{name}: {value}\r\n" for name, value in self._pairs]
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")


def _check_header(name: str, value: str) -> None:
    """Raise ValueError if a header line cannot be sent as is."""
    if not _is_token(name):
        raise ValueError(f"invalid header name: {name!r}")
    if _field_value_re.fullmatch(value) is None:
        raise ValueError(f"invalid value for header {name}: {value!r}")
    # A parser strips leading and trailing whitespace (RFC 9112 §5.1), so the value would not
    # survive a round trip.
    if value[:1] in (" ", "\t") or value[-1:] in (" ", "\t"):
        raise ValueError(f"value for header {name} has surrounding whitespace: {value!r}")


# Scanning primitives. Each takes the text and a position and returns the position after what it
# consumed; they only move forward.


def _skip_ows(header: str, pos: int) -> int:
    match = _ows_re.match(header, pos)
    assert match is not None  # a * pattern always matches
    return match.end()


def _parse_token(header: str, pos: int, name: str) -> tuple[str, int]:
    match = _token_re.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(name, "expected token", header, pos)
    return match.group(), match.end()


def _parse_quoted_string(header: str, pos: int, name: str) -> tuple[str, int]:
    """Parse a quoted-string (RFC 9110 §5.6.4) starting at ``header[pos] == '"'``.

    Runs of plain characters are matched with a single character class; each escape is handled
    once, so the scan is linear even for a long unterminated string of escapes.
    """
    parts: list[str] = []
    pos += 1
    end = len(header)
    while True:
        match = _qdtext_re.match(header, pos)
        assert match is not None  # a * pattern always matches
        parts.append(match.group())
        pos = match.end()
        if pos == end:
            raise InvalidHeaderFormat(name, "unterminated quoted string", header, pos)
        char = header[pos]
        if char == '"':
            return "".join(parts), pos + 1
        if char != "\\":
            raise InvalidHeaderFormat(name, "invalid character in quoted string", header, pos)
        if _quoted_pair_char_re.match(header, pos + 1) is None:
            raise InvalidHeaderFormat(name, "invalid escape in quoted string", header, pos + 1)
        parts.append(header[pos + 1])
        pos += 2


_T = TypeVar("_T")


def _parse_list(
    parse_item: Callable[[str, int, str], tuple[_T, int]],
    header: str,
    name: str,
) -> list[_T]:
    """Parse a comma-separated list (RFC 9110 §5.6.1).

    RFC 9110 §5.6.1.2 requires recipients to accept and ignore empty elements, such as in
    ``"a, , b"``, ``", a"`` or ``"a,"``. Each turn of the loop consumes at least one character.
    """
    items: list[_T] = []
    pos = 0
    end = len(header)
    while True:
        pos = _skip_ows(header, pos)
        if pos == end:
            return items
        if header[pos] == ",":
            pos += 1
            continue
        item, pos = parse_item(header, pos, name)
        items.append(item)
        pos = _skip_ows(header, pos)
        if pos == end:
            return items
        if header[pos] != ",":
            raise InvalidHeaderFormat(name, "expected comma", header, pos)
        pos += 1


def parse_connection(header: str) -> list[str]:
    """Parse a Connection header value: a list of tokens (RFC 9110 §7.6.1).

    Args:
        header: the value; combine repeated headers with ``", ".join(...)`` first.

    Returns:
        The connection options, in their case; compare them case-insensitively.

    Raises:
        InvalidHeaderFormat: if the value is not a list of tokens.
    """
    return _parse_list(_parse_token, header, "Connection")


def _parse_upgrade_protocol(header: str, pos: int, name: str) -> tuple[str, int]:
    # RFC 9110 §7.8: protocol = protocol-name ["/" protocol-version], both tokens.
    protocol, pos = _parse_token(header, pos, name)
    if header[pos : pos + 1] == "/":
        version, pos = _parse_token(header, pos + 1, name)
        protocol = f"{protocol}/{version}"
    return protocol, pos


def parse_upgrade(header: str) -> list[str]:
    """Parse an Upgrade header value: a list of protocols (RFC 9110 §7.8).

    Args:
        header: the value; combine repeated headers with ``", ".join(...)`` first.

    Returns:
        The protocols, such as ``"websocket"`` or ``"HTTP/2.0"``, in their case.

    Raises:
        InvalidHeaderFormat: if the value is not a list of ``token ["/" token]``.
    """
    return _parse_list(_parse_upgrade_protocol, header, "Upgrade")


def _parse_extension_param(header: str, pos: int, name: str) -> tuple[ExtensionParameter, int]:
    # RFC 6455 §9.1: extension-param = token [ "=" (token | quoted-string) ]. That grammar uses
    # the implied whitespace of RFC 2616, so whitespace is allowed around "=".
    param, pos = _parse_token(header, pos, name)
    after = _skip_ows(header, pos)
    if header[after : after + 1] != "=":
        return (param, None), pos
    pos = _skip_ows(header, after + 1)
    if header[pos : pos + 1] == '"':
        value_pos = pos
        value, pos = _parse_quoted_string(header, pos, name)
        # RFC 6455 §9.1: once unescaped, a quoted value must still be a token.
        if not _is_token(value):
            raise InvalidHeaderFormat(name, "quoted value is not a token", header, value_pos)
    else:
        value, pos = _parse_token(header, pos, name)
    return (param, value), pos


def _parse_extension_item(header: str, pos: int, name: str) -> tuple[ExtensionHeader, int]:
    # RFC 6455 §9.1: extension = extension-token *( ";" extension-param ).
    ext_name, pos = _parse_token(header, pos, name)
    params: list[ExtensionParameter] = []
    while True:
        after = _skip_ows(header, pos)
        if header[after : after + 1] != ";":
            return (ext_name, params), pos
        pos = _skip_ows(header, after + 1)
        param, pos = _parse_extension_param(header, pos, name)
        params.append(param)


def parse_extension(header: str) -> list[ExtensionHeader]:
    """Parse a Sec-WebSocket-Extensions header value (RFC 6455 §9.1).

    Args:
        header: the value; combine repeated headers with ``", ".join(...)`` first.

    Returns:
        One ``(name, [(param, value or None), ...])`` per extension, in order. Quoted values are
        returned unquoted.

    Raises:
        InvalidHeaderFormat: if the value does not follow the grammar, or a quoted value is not
            a token once unquoted.
    """
    return _parse_list(_parse_extension_item, header, "Sec-WebSocket-Extensions")


def build_extension(extensions: Sequence[ExtensionHeader]) -> str:
    """Build a Sec-WebSocket-Extensions header value; the inverse of :func:`parse_extension`.

    Raises:
        ValueError: if a name or value is not a token.
    """
    items = []
    for name, params in extensions:
        if not _is_token(name):
            raise ValueError(f"invalid extension name: {name!r}")
        parts = [name]
        for param, value in params:
            if not _is_token(param):
                raise ValueError(f"invalid parameter name for {name}: {param!r}")
            if value is None:
                parts.append(param)
            elif _is_token(value):
                parts.append(f"{param}={value}")
            else:
                raise ValueError(f"invalid value for {name} parameter {param}: {value!r}")
        items.append("; ".join(parts))
    return ", ".join(items)


def parse_subprotocol(header: str) -> list[str]:
    """Parse a Sec-WebSocket-Protocol header value: a list of tokens (RFC 6455 §4.1, §11.3.4).

    Args:
        header: the value; combine repeated headers with ``", ".join(...)`` first.

    Raises:
        InvalidHeaderFormat: if the value is not a list of tokens.
    """
    return _parse_list(_parse_token, header, "Sec-WebSocket-Protocol")


def validate_subprotocols(subprotocols: Sequence[str]) -> None:
    """Check a list of subprotocols before it is offered or accepted.

    Raises:
        TypeError: if ``subprotocols`` is a str, is not a sequence, or holds a non-str.
        ValueError: if a subprotocol is not a token (RFC 6455 §4.1).
    """
    # A str is a sequence of one-character str, so "chat" would silently offer "c", "h", ...
    if isinstance(subprotocols, (str, bytes, bytearray)) or not isinstance(subprotocols, Sequence):
        raise TypeError(f"subprotocols must be a list of str, got {subprotocols!r}")
    for subprotocol in subprotocols:
        if not isinstance(subprotocol, str):
            raise TypeError(f"subprotocols must be str, got {subprotocol!r}")
        if not _is_token(subprotocol):
            raise ValueError(f"invalid subprotocol: {subprotocol!r}")


def build_subprotocol(subprotocols: Sequence[str]) -> str:
    """Build a Sec-WebSocket-Protocol header value; the inverse of :func:`parse_subprotocol`.

    Raises:
        TypeError: see :func:`validate_subprotocols`.
        ValueError: see :func:`validate_subprotocols`.
    """
    validate_subprotocols(subprotocols)
    return ", ".join(subprotocols)


def _quote_string(value: str) -> str:
    """Return ``value`` as a quoted-string (RFC 9110 §5.6.4)."""
    # Control characters other than HTAB cannot appear in a quoted-string, escaped or not.
    if _qdtext_re.fullmatch(value.replace('"', "").replace("\\", "")) is None:
        raise ValueError(f"cannot quote {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_www_authenticate_basic(realm: str) -> str:
    """Build a WWW-Authenticate header value for Basic authentication (RFC 7617 §2).

    The challenge says that credentials are UTF-8 (RFC 7617 §2.1).

    Raises:
        ValueError: if ``realm`` holds a control character other than HTAB, or a character
            above U+00FF.
    """
    return f'Basic realm={_quote_string(realm)}, charset="UTF-8"'


# RFC 7617 leaves the length open; real credentials are far shorter, and this caps the work
# spent on a hostile value.
_MAX_AUTHORIZATION = 4096


def parse_authorization_basic(header: str) -> tuple[str, str]:
    """Parse an Authorization header value for Basic authentication (RFC 7617 §2).

    Args:
        header: the value.

    Returns:
        The user-id and the password.

    Raises:
        InvalidHeaderFormat: if the value is not ``Basic <token68>``, or the token68 is not
            base64.
        InvalidHeaderValue: if the value is too long, names another scheme, or the credentials
            are not UTF-8, have no colon, or hold control characters (RFC 7617 §2).
    """
    name = "Authorization"
    if len(header) > _MAX_AUTHORIZATION:
        raise InvalidHeaderValue(name, header)
    # RFC 9110 §11.6.2: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ].
    scheme, pos = _parse_token(header, 0, name)
    # RFC 9110 §11.1: the scheme is case-insensitive.
    if scheme.lower() != "basic":
        raise InvalidHeaderValue(name, header)
    if header[pos : pos + 1] != " ":
        raise InvalidHeaderFormat(name, "expected space after scheme", header, pos)
    while header[pos : pos + 1] == " ":
        pos += 1
    match = _token68_re.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(name, "expected token68", header, pos)
    pos = _skip_ows(header, match.end())
    if pos != len(header):
        raise InvalidHeaderFormat(name, "unexpected data after token68", header, pos)
    # RFC 4648 §4: base64 comes in groups of 4 characters, the last one padded with at most
    # two "=". b64decode() tolerates excess padding, so check the shape here; validate=True
    # then rejects the token68 characters that are not base64 ("-", ".", "_", "~").
    credentials = match.group()
    if len(credentials) % 4 != 0 or credentials.endswith("==="):
        raise InvalidHeaderFormat(name, "invalid base64", header, match.start())
    try:
        raw = base64.b64decode(credentials, validate=True)
    except binascii.Error:
        raise InvalidHeaderFormat(name, "invalid base64", header, match.start()) from None
    try:
        user_pass = raw.decode()
    except UnicodeDecodeError:
        raise InvalidHeaderValue(name, header) from None
    username, colon, password = user_pass.partition(":")
    if not colon or _ctl_re.search(user_pass) is not None:
        raise InvalidHeaderValue(name, header)
    return username, password


def build_authorization_basic(username: str, password: str) -> str:
    """Build an Authorization header value for Basic authentication (RFC 7617 §2).

    Credentials are encoded in UTF-8 (RFC 7617 §2.1).

    Raises:
        ValueError: if ``username`` contains a colon, or either contains a control character
            (RFC 7617 §2).
    """
    if ":" in username:
        raise ValueError("username must not contain a colon")
    if _ctl_re.search(username) is not None or _ctl_re.search(password) is not None:
        raise ValueError("credentials must not contain control characters")
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {credentials}"


def build_host(host: str, port: int, secure: bool, *, always_include_port: bool = False) -> str:
    """Build a Host header value (RFC 9110 §7.2).

    Args:
        host: a hostname, an IPv4 address or an IPv6 address without brackets.
        port: the TCP port.
        secure: whether the connection uses TLS, which makes 443 the default port, else 80.
        always_include_port: include the port even when it is the default one.
    """
    # RFC 3986 §3.2.2: an IPv6 address is written in brackets, else its colons would be read
    # as the port separator. No hostname or IPv4 address contains a colon.
    if ":" in host:
        host = f"[{host}]"
    if always_include_port or port != (443 if secure else 80):
        host = f"{host}:{port}"
    return host


GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""The GUID that RFC 6455 §1.3 appends to Sec-WebSocket-Key to compute Sec-WebSocket-Accept."""


def generate_key() -> str:
    """Return a new Sec-WebSocket-Key value.

    RFC 6455 §4.1: a nonce of 16 random bytes, base64-encoded, picked anew for each connection.
    """
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def accept_key(key: str) -> str:
    """Return the Sec-WebSocket-Accept value that answers a Sec-WebSocket-Key value.

    RFC 6455 §1.3, §4.2.2: base64 of the SHA-1 of the key followed by :data:`GUID`. The key is
    hashed as sent on the wire: header values hold one character per byte (latin-1).

    Raises:
        ValueError: if ``key`` holds a character above U+00FF, which no header can carry.
    """
    # SHA-1 is what RFC 6455 prescribes; it proves the server read the handshake and is not
    # used for security here.
    digest = hashlib.sha1((key + GUID).encode("latin-1"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def parse_all(headers: Headers, name: str, parse: Callable[[str], list[_T]]) -> list[_T]:
    """Parse every value of a list header that may appear several times (RFC 9110 §5.3).

    Args:
        headers: the headers of a request or response.
        name: the header to read.
        parse: the parser of one value, e.g. :func:`parse_connection`.
    """
    values: list[_T] = []
    for value in headers.get_all(name):
        values.extend(parse(value))
    return values
