"""Connection options: each declared once, with its default and its check.

Every public entry point (:func:`~syncws.client.connect`, :func:`~syncws.server.serve`,
:func:`~syncws.wsgi.accept`, the :mod:`syncws.testing` helpers...) names these options as
explicit keyword parameters, so that users, their editors and type checkers see them, and
builds one :class:`ConnectionOptions` from them. That object is what travels from there to
the connection: nothing is passed on as a dictionary of strings. A test compares the defaults
of every entry point with the fields here, so that they cannot drift apart.

Checking happens when the object is built, before any I/O: a misspelt option is a
:exc:`TypeError` at the call (Python's own, since no entry point takes ``**kwargs: Any``), and
a value of the wrong type or out of range is a :exc:`TypeError` or :exc:`ValueError` that
names the option.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
from collections.abc import Callable, Container, Mapping
from typing import Any, Literal, TypeAlias, TypedDict, Union, cast

__all__ = [
    "Compression",
    "ConnectionKeywords",
    "ConnectionOptions",
    "LoggerLike",
    "MaxQueue",
    "MaxSize",
    "check_bool",
    "check_compression",
    "check_count",
    "check_handler",
    "check_keywords",
    "check_max_queue",
    "check_max_size",
    "check_seconds",
    "check_timeout",
    "size_limits",
    "water_marks",
]

# LoggerAdapter takes no type argument at run time before Python 3.11: a forward reference.
LoggerLike: TypeAlias = Union[logging.Logger, "logging.LoggerAdapter[logging.Logger]"]
"""The type of the ``logger`` option."""

Compression = Literal["deflate"] | None
"""``"deflate"`` for permessage-deflate (RFC 7692), ``None`` for no compression."""

MaxSize: TypeAlias = int | tuple[int | None, int | None] | None
"""The type of the ``max_size`` option: a message limit, or a ``(message, frame)`` pair."""

MaxQueue: TypeAlias = int | tuple[int | None, int | None] | None
"""The type of the ``max_queue`` option: a high-water mark, or a ``(high, low)`` pair."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionOptions:
    """The options of a connection, on either side, checked.

    Attributes:
        open_timeout: seconds for the opening handshake (with TLS, a proxy and redirects on
            the client side); ``None`` for no limit.
        ping_interval: seconds between keepalive pings; ``None`` turns keepalive off.
        ping_timeout: seconds to wait for the pong of a keepalive ping before failing the
            connection with 1011; ``None`` waits as long as it takes.
        close_timeout: seconds to wait for the closing handshake and the end of the TCP
            connection before aborting it; ``None`` waits as long as it takes.
        write_timeout: seconds a write may go without progress (the peer does not read)
            before the connection is aborted; ``None`` waits as long as it takes.
        max_size: the largest message accepted, in bytes; each fragment after the first
            counts 128 bytes more (:data:`~syncws.core.protocol.FRAME_OVERHEAD`).
            ``None`` for no limit, on the size or on the number of fragments. A
            ``(message, frame)`` pair also limits the payload of each frame, which fails
            before it is read (see :ref:`limits`).
        max_queue: the high-water mark: how many received messages may wait for ``recv()``
            before reading pauses; reading resumes when no more than the low-water mark,
            ``max_queue // 4``, wait. A ``(high, low)`` pair sets both (see
            :ref:`limits`); ``None`` for no limit.
        read_limit: bytes read from the socket at a time.
        write_limit: unsent bytes over which :func:`~syncws.connection.broadcast` skips the
            connection, and the reader stops reading until they are written.
    """

    open_timeout: float | None = 10
    ping_interval: float | None = 20
    ping_timeout: float | None = 20
    close_timeout: float | None = 10
    write_timeout: float | None = 10
    max_size: int | tuple[int | None, int | None] | None = 2**20
    max_queue: int | tuple[int | None, int | None] | None = 16
    read_limit: int = 2**16
    write_limit: int = 2**16

    @classmethod
    def shared(
        cls,
        *,
        open_timeout: float | None,
        ping_interval: float | None,
        ping_timeout: float | None,
        close_timeout: float | None,
        write_timeout: float | None,
        max_size: int | tuple[int | None, int | None] | None,
        max_queue: int | tuple[int | None, int | None] | None,
        read_limit: int,
        write_limit: int,
    ) -> ConnectionOptions:
        """The options with these values: those of the previous call when every value is the
        same, of the same type, else new ones, checked.

        A client that opens connection after connection with the same arguments checks
        them once. Pairs (``max_size``, ``max_queue``) are checked every time.

        Raises:
            TypeError: a value has the wrong type.
            ValueError: a value is out of range.
        """
        global _last_shared  # noqa: PLW0603
        values = (
            open_timeout,
            ping_interval,
            ping_timeout,
            close_timeout,
            write_timeout,
            max_size,
            max_queue,
            read_limit,
            write_limit,
        )
        key = (values, tuple(map(type, values)))
        last = _last_shared
        if last is not None and last[0] == key:
            return last[1]
        options = cls(
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            write_timeout=write_timeout,
            max_size=max_size,
            max_queue=max_queue,
            read_limit=read_limit,
            write_limit=write_limit,
        )
        # Not for a pair: the types of its items are not part of the key.
        if not isinstance(max_size, tuple) and not isinstance(max_queue, tuple):
            _last_shared = (key, options)
        return options

    def keywords(self) -> ConnectionKeywords:
        """These options as keyword arguments, to pass them on to an entry point."""
        fields = dataclasses.fields(self)
        return cast(ConnectionKeywords, {field.name: getattr(self, field.name) for field in fields})

    def __post_init__(self) -> None:
        check_seconds("open_timeout", self.open_timeout)
        check_seconds("ping_interval", self.ping_interval, none="to turn keepalive off")
        check_seconds("ping_timeout", self.ping_timeout)
        check_seconds("close_timeout", self.close_timeout)
        check_seconds("write_timeout", self.write_timeout)
        check_max_size(self.max_size)
        check_max_queue(self.max_queue)
        check_count("read_limit", self.read_limit, minimum=1)
        check_count("write_limit", self.write_limit, minimum=0)


# The last options ConnectionOptions.shared() built, with their key. One tuple, replaced whole:
# threads that read it while another one replaces it see the old pair or the new one.
_last_shared: tuple[tuple[tuple[object, ...], tuple[type, ...]], ConnectionOptions] | None = None


class ConnectionKeywords(TypedDict, total=False):
    """The fields of :class:`ConnectionOptions` as keyword arguments, for type checkers.

    The keyword arguments of the entry points that take them all build on this.
    """

    open_timeout: float | None
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float | None
    write_timeout: float | None
    max_size: int | tuple[int | None, int | None] | None
    max_queue: int | tuple[int | None, int | None] | None
    read_limit: int
    write_limit: int


def check_seconds(name: str, value: object, *, none: str = "for no limit") -> None:
    """Check a duration option: a positive, finite number of seconds, or ``None``.

    Args:
        name: the option's name, for the message.
        value: its value.
        none: what ``None`` means for this option, for the message.

    Raises:
        TypeError: ``value`` is not a number (``bool`` is not one here).
        ValueError: ``value`` is zero, negative, infinite or NaN.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be a number of seconds, or None {none}; got {type(value).__name__}"
            f" {value!r}"
        )
    if not (0 < value < math.inf):
        raise ValueError(
            f"{name} must be a positive, finite number of seconds, or None {none}; got {value!r}"
        )


def check_timeout(name: str, value: object) -> None:
    """Check the timeout of one call: seconds to wait, ``0`` to poll, ``None`` for no limit.

    The timeouts that calls take (``recv(timeout)``, ``send(timeout=...)``,
    ``wait_closed(timeout)``...) follow one convention: ``0`` only takes what is ready
    without waiting, ``None`` waits as long as it takes, and anything else is an error at
    the call, before the call does anything.

    Args:
        name: the argument's name, for the message.
        value: its value.

    Raises:
        TypeError: ``value`` is not a number (``bool`` is not one here).
        ValueError: ``value`` is negative, infinite or NaN.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be a number of seconds, or None to wait as long as it takes;"
            f" got {type(value).__name__} {value!r}"
        )
    if not (0 <= value < math.inf):
        raise ValueError(
            f"{name} must be a finite number of seconds, at least 0 (0 polls), or None to"
            f" wait as long as it takes; got {value!r}"
        )


def check_count(name: str, value: object, *, minimum: int, optional: bool = False) -> None:
    """Check a size or count option: an integer of at least ``minimum``, or ``None`` when
    ``optional``.

    Raises:
        TypeError: ``value`` is not an integer (``bool`` is not one here).
        ValueError: ``value`` is less than ``minimum``.
    """
    if value is None and optional:
        return
    none = ", or None for no limit" if optional else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer{none}; got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}{none}; got {value!r}")


def check_max_size(value: object) -> None:
    """Check the ``max_size`` option: an integer of at least 1, ``None``, or a
    ``(message, frame)`` pair of them.

    Raises:
        TypeError: ``value`` is neither an integer, ``None`` nor a tuple, or the tuple is not
            a pair, or one of its values is neither an integer nor ``None``.
        ValueError: a limit is less than 1.
    """
    if not isinstance(value, tuple):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(
                "max_size must be an integer, None for no limit, or a (message, frame) pair"
                f" of them; got {type(value).__name__} {value!r}"
            )
        check_count("max_size", value, minimum=1, optional=True)
        return
    if len(value) != 2:
        raise TypeError(f"max_size must be a (message, frame) pair when a tuple; got {value!r}")
    message, frame = value
    check_count("max_size's message limit", message, minimum=1, optional=True)
    check_count("max_size's frame limit", frame, minimum=1, optional=True)


def size_limits(max_size: MaxSize) -> tuple[int | None, int | None]:
    """The message and frame limits that the ``max_size`` option sets, as in websockets.

    An integer or ``None`` limits the message, not the frame: a frame is then limited by
    its message's limit alone. A ``(message, frame)`` pair limits both; either may be
    ``None``. A frame whose length is over the frame limit fails with 1009 before its payload
    is read, and so does, once decompressed, a compressed frame over it.
    """
    if isinstance(max_size, tuple):
        return max_size
    return max_size, None


def check_max_queue(value: object) -> None:
    """Check the ``max_queue`` option: an integer of at least 1, ``None``, or a
    ``(high, low)`` pair of water marks.

    Raises:
        TypeError: ``value`` is neither an integer, ``None`` nor a tuple, or the tuple is not
            a pair, or one of its values is neither an integer nor ``None``.
        ValueError: the high-water mark is less than 1, the low-water mark is negative or
            above the high-water mark.
    """
    if not isinstance(value, tuple):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(
                "max_queue must be an integer, None for no limit, or a (high, low) pair of"
                f" water marks; got {type(value).__name__} {value!r}"
            )
        check_count("max_queue", value, minimum=1, optional=True)
        return
    if len(value) != 2:
        raise TypeError(f"max_queue must be a (high, low) pair when a tuple; got {value!r}")
    high, low = value
    check_count("max_queue's high-water mark", high, minimum=1, optional=True)
    check_count("max_queue's low-water mark", low, minimum=0, optional=True)
    high, low = water_marks(value)
    if high is not None and high < 1:
        raise ValueError(
            f"max_queue's high-water mark must be at least 1; {value!r} makes it {high}"
        )
    if high is not None and low is not None and low > high:
        raise ValueError(
            f"max_queue's low-water mark must not be above its high-water mark; got {value!r}"
        )


def water_marks(max_queue: MaxQueue) -> tuple[int | None, int | None]:
    """The high and low water marks that the ``max_queue`` option sets, as in websockets.

    Reading pauses when ``high`` complete messages wait for ``recv()``, and resumes when no
    more than ``low`` wait (``low == high`` resumes as soon as one is taken). An integer is
    the high-water mark, and the low-water mark is a quarter of it, ``high // 4``. In a
    ``(high, low)`` pair, a ``None`` high is ``4 * low`` and a ``None`` low is ``high // 4``;
    ``None`` or ``(None, None)`` is no limit.
    """
    if isinstance(max_queue, tuple):
        high, low = max_queue
    else:
        high, low = max_queue, None
    if high is not None and low is None:
        low = high // 4
    elif high is None and low is not None:
        high = low * 4
    return high, low


def check_bool(name: str, value: object, *, none: str | None = None) -> None:
    """Check a flag: ``True`` or ``False``, or also ``None`` when ``none`` says what it means.

    Raises:
        TypeError: ``value`` is not a :class:`bool` (nor ``None`` when allowed).
    """
    if value is True or value is False or (value is None and none is not None):
        return
    allowed = "True or False" if none is None else f"True, False, or None {none}"
    raise TypeError(f"{name} must be {allowed}; got {type(value).__name__} {value!r}")


def check_handler(handler: object) -> None:
    """Check a connection handler, when the server or the application is made.

    Raises:
        TypeError: ``handler`` is not callable.
    """
    if not callable(handler):
        raise TypeError(f"handler must be callable; got {type(handler).__name__} {handler!r}")


def check_compression(value: object) -> None:
    """Check the ``compression`` option.

    Raises:
        ValueError: it is neither ``"deflate"`` nor ``None``.
    """
    if value is not None and value != "deflate":
        raise ValueError(f'compression must be "deflate" or None; got {value!r}')


def check_keywords(
    target: Callable[..., Any],
    options: Mapping[str, object],
    *,
    caller: str,
    allowed: Container[str] | None = None,
) -> None:
    """Check keyword arguments for a later call of ``target`` as if it were called now.

    For helpers that take the keyword arguments of an entry point and call it after some
    I/O, or at the first request: a misspelt name or a bad value fails at once.

    Args:
        target: the entry point the arguments are for.
        options: the keyword arguments.
        caller: the helper's name, for the message.
        allowed: the names the helper takes, when it takes only some of ``target``'s.

    Raises:
        TypeError: ``target`` takes no keyword of one of these names, or a value has the
            wrong type.
        ValueError: a value of a connection option is out of range.
    """
    parameters = inspect.signature(target).parameters
    for name in options:
        parameter = parameters.get(name)
        if (
            parameter is None
            or parameter.kind is not inspect.Parameter.KEYWORD_ONLY
            or (allowed is not None and name not in allowed)
        ):
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    fields = {field.name for field in dataclasses.fields(ConnectionOptions)}
    ConnectionOptions(**{name: value for name, value in options.items() if name in fields})  # type: ignore[arg-type]
    if "compression" in options:
        check_compression(options["compression"])
