"""The ``syncws`` command: an interactive client, an echo server and the demo app.

::

    syncws connect ws://localhost:8765/    # type lines to send them; Ctrl-D or Ctrl-C to close
    syncws serve --port 8765               # an echo server; Ctrl-C or SIGTERM to stop
    syncws demo                            # the counter app, at http://127.0.0.1:8765/

Exit status: 0 on success, 1 when the connection or the server fails, 2 for invalid
arguments (a bad URI included), 130 when Ctrl-C interrupts the opening of a connection.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ._signals import wake_on_signals
from .client import ClientConnection, connect
from .core.frames import Close, CloseCode
from .core.headers import Headers
from .core.uri import WebSocketURI, parse_uri
from .demo import serve_demo
from .exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from .server import Server, ServerConnection, serve, unix_serve
from .version import __version__

__all__ = ["main"]

logger = logging.getLogger("syncws.cli")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SHUTDOWN_TIMEOUT = 10.0
"""Seconds a stopping server gives its connections to close before it aborts them."""


def main(argv: list[str] | None = None) -> int:
    """Run the ``syncws`` command; return its exit status.

    Args:
        argv: the arguments, without the program name; by default ``sys.argv[1:]``.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    command: Callable[[argparse.Namespace], int] = args.run
    return command(args)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncws",
        description="A WebSocket client, an echo server and a demo app, from syncws.",
    )
    parser.add_argument("--version", action="version", version=f"syncws {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    client = commands.add_parser(
        "connect",
        help="open an interactive WebSocket session",
        description=(
            "Connect to a WebSocket server. Each line typed is sent as a text message; "
            "messages received are printed as '< message'. Ctrl-D or Ctrl-C closes the "
            "connection."
        ),
    )
    client.add_argument("uri", metavar="URI", help="a ws:// or wss:// URI")
    client.add_argument(
        "--header",
        metavar="NAME:VALUE",
        action="append",
        default=[],
        help="add a header to the handshake request (repeatable)",
    )
    client.add_argument(
        "--subprotocol",
        metavar="NAME",
        action="append",
        default=[],
        help="offer a subprotocol (repeatable, in order of preference)",
    )
    client.add_argument("--origin", help="the Origin header to send")
    client.add_argument(
        "--no-compression", action="store_true", help="do not offer permessage-deflate"
    )
    client.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server's TLS certificate (wss:// only)",
    )
    client.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=10.0,
        help="time allowed to open the connection (default: %(default)s)",
    )
    client.add_argument(
        "--wait",
        metavar="SECONDS",
        type=_non_negative_float,
        default=1.0,
        help=(
            "when the input is not a terminal: at its end, wait until the server has sent "
            "nothing for SECONDS before closing (default: %(default)s)"
        ),
    )
    client.set_defaults(run=_run_connect)

    server = commands.add_parser(
        "serve",
        help="run an echo server",
        description="Run a WebSocket server that sends every message back. Ctrl-C stops it.",
    )
    server.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    server.add_argument("--port", type=_port, default=8765, help="default: %(default)s")
    server.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead")
    server.set_defaults(run=_run_serve)

    demo = commands.add_parser(
        "demo",
        help="run the counter demo app",
        description=(
            "Serve a counter page and its WebSocket on one port. Every browser tab that opens "
            "the page sees the same value. Ctrl-C stops it."
        ),
    )
    demo.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    demo.add_argument("--port", type=_port, default=8765, help="default: %(default)s")
    demo.set_defaults(run=_run_demo)
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return value


def _error(message: str) -> None:
    print(f"syncws: {message}", file=sys.stderr, flush=True)


# syncws connect


def _run_connect(args: argparse.Namespace) -> int:
    try:
        wsuri = parse_uri(args.uri)
    except InvalidURI as exc:
        _error(f"invalid URI {exc.uri!r}: {exc.msg}")
        return EXIT_USAGE
    headers = Headers()
    for header in args.header:
        name, colon, value = header.partition(":")
        try:
            if not colon:
                raise ValueError(f"expected NAME:VALUE, got {header!r}")
            headers[name.strip()] = value.strip()
            headers.serialize()  # checks every name and value
        except ValueError as exc:
            _error(f"invalid --header: {exc}")
            return EXIT_USAGE

    context: ssl.SSLContext | None = None
    if wsuri.secure:
        context = ssl.create_default_context()
        if args.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE

    address = f"[{wsuri.host}]:{wsuri.port}" if ":" in wsuri.host else f"{wsuri.host}:{wsuri.port}"
    try:
        websocket = connect(
            args.uri,
            ssl=context,
            origin=args.origin,
            subprotocols=args.subprotocol or None,
            additional_headers=headers or None,
            compression=None if args.no_compression else "deflate",
            open_timeout=args.timeout,
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except InvalidStatus as exc:
        response = exc.response
        status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        # The first line of the body often says why.
        lines = response.body.decode(errors="replace").strip().splitlines()
        why = f": {lines[0].strip()[:200]}" if lines else ""
        _error(f"server rejected the connection: {status}{why}")
        return EXIT_FAILURE
    except InvalidHandshake as exc:
        _error(f"handshake failed: {exc}")
        return EXIT_FAILURE
    except ssl.SSLCertVerificationError as exc:
        _error(
            f"TLS certificate verification failed for {address}: {exc.verify_message}; "
            "--insecure skips the check"
        )
        return EXIT_FAILURE
    except ssl.SSLError as exc:
        # What OpenSSL says when the answer to its hello is not TLS (an HTTP error, say).
        plain = exc.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL")
        hint = "; the server does not speak TLS on this port? ws:// connects without it"
        _error(f"TLS handshake with {address} failed: {exc.reason or exc}{hint if plain else ''}")
        return EXIT_FAILURE
    except TimeoutError:
        _error(f"timed out connecting to {address} (--timeout {args.timeout:g})")
        return EXIT_FAILURE
    except OSError as exc:
        if isinstance(exc.__cause__, OSError):
            # connect() said which step failed: reaching the proxy, say.
            _error(exc.strerror or str(exc))
        elif isinstance(exc, ConnectionRefusedError):
            _error(f"connection refused by {address}")
        elif isinstance(exc, socket.gaierror):
            _error(f"cannot resolve {wsuri.host}: {exc.strerror or exc}")
        else:
            _error(f"cannot connect to {address}: {exc.strerror or exc}")
        return EXIT_FAILURE
    return _session(websocket, args.uri, args.wait)


class _Console:
    """Writes to the terminal from two threads: the prompt and lines typed, messages received.

    On a terminal, a message is inserted as a new line above the prompt, so that what the user
    is typing stays in place. Elsewhere (output to a file or a pipe), messages are plain lines
    on standard output and the lines about the connection go to standard error.
    """

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.lock = threading.Lock()

    def prompt(self, newline: bool = False) -> None:
        """Show the prompt; on a new line if the cursor is still after what was typed."""
        if self.interactive:
            with self.lock:
                sys.stdout.write("\n> " if newline else "> ")
                sys.stdout.flush()

    def message(self, text: str) -> None:
        """Print a message received, while the user may be typing."""
        with self.lock:
            if self.interactive:
                width = max(shutil.get_terminal_size().columns - 1, 10)
                for line in text.splitlines() or [""]:
                    for start in range(0, max(len(line), 1), width):
                        # Save the cursor, make room below if at the bottom of the screen,
                        # insert a line above the prompt, write there, then go back to the
                        # prompt, which moved down one line.
                        sys.stdout.write(
                            f"\x1b7\n\x1b[A\r\x1b[L{line[start : start + width]}\x1b8\x1b[B"
                        )
            else:
                sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def status(self, text: str) -> None:
        """Print a line about the connection, before the first prompt."""
        with self.lock:
            stream = sys.stdout if self.interactive else sys.stderr
            stream.write(text + "\n")
            stream.flush()

    def end(self, text: str) -> None:
        """Clear the prompt line, then print ``text``: the session is over."""
        with self.lock:
            if self.interactive:
                sys.stdout.write("\r\x1b[K")
            stream = sys.stdout if self.interactive else sys.stderr
            stream.write(text + "\n")
            stream.flush()


def _session(websocket: ClientConnection, uri: str, wait: float) -> int:
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    console = _Console(interactive)
    subprotocol = websocket.subprotocol
    details = f" (subprotocol {subprotocol})" if subprotocol else ""
    final = _uri(websocket.protocol.uri)
    if websocket.protocol.uri != parse_uri(uri):
        details = f", redirected from {uri}{details}"
    console.status(f"Connected to {final}{details}.")
    wake_read, wake_write = os.pipe()
    signals = _SignalPipe()
    received, finished = threading.Event(), threading.Event()
    reader = threading.Thread(
        target=_print_messages,
        args=(websocket, console, wake_write, received, finished),
        name="syncws-cli-reader",
        daemon=True,
    )
    reader.start()
    aborted = False
    try:
        try:
            for line in _read_lines(sys.stdin, wake_read, console, signals.fd):
                try:
                    websocket.send(line)
                except ConnectionClosed:
                    break
            else:
                if not interactive:
                    # The answers to the last lines may still be on their way, and a server
                    # that gets a Close answers it at once, before it answers them (RFC 6455
                    # §5.5.1): let the server go quiet before closing.
                    while not finished.is_set():
                        received.clear()
                        if not received.wait(wait):
                            break
        except KeyboardInterrupt:
            pass
        try:
            websocket.close()
        except KeyboardInterrupt:
            # A second Ctrl-C while the closing handshake runs: give up on it.
            aborted = True
            websocket.abort()
        reader.join(websocket.close_timeout)
        if reader.is_alive():
            websocket.abort()
            reader.join()
    finally:
        # The reader has ended: nothing writes to the pipe any more.
        os.close(wake_read)
        os.close(wake_write)
        signals.close()
    if aborted:
        console.end("Connection aborted.")
        return EXIT_INTERRUPTED
    code = websocket.close_code
    if code is None:
        code = CloseCode.ABNORMAL_CLOSURE
    console.end(f"Connection closed: {Close(code, websocket.close_reason or '')}.")
    return EXIT_OK if code in (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY) else EXIT_FAILURE


def _uri(wsuri: WebSocketURI) -> str:
    """``wsuri`` as a URI to show, without its user info."""
    host = f"[{wsuri.host}]" if ":" in wsuri.host else wsuri.host
    default = 443 if wsuri.secure else 80
    port = "" if wsuri.port == default else f":{wsuri.port}"
    return f"{'wss' if wsuri.secure else 'ws'}://{host}{port}{wsuri.resource_name}"


class _SignalPipe:
    """A pipe that Python's signal handling writes to, so that a signal wakes select().

    Without it, a Ctrl-C that lands just before select() blocks would wait for a key (see
    ``wake_on_signals()``). ``fd``, the end to watch, is ``None`` where
    signals can't use the pipe: outside the main thread, or with another wakeup fd set.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self.fd = self._read if wake_on_signals(self._write) else None

    def close(self) -> None:
        if self.fd is not None:
            signal.set_wakeup_fd(-1)
        os.close(self._read)
        os.close(self._write)


def _read_lines(
    stream: TextIO, wake_fd: int, console: _Console, signal_fd: int | None = None
) -> Iterator[str]:
    """Yield the lines read from ``stream`` until it ends or ``wake_fd`` becomes readable.

    The file descriptor is read directly, so that the wait can be cut short when the server
    closes the connection. On a terminal in its default mode, each read returns one line;
    Ctrl-D returns what was typed so far, yielded as a line, or nothing at the start of a
    line: the end. Bytes
    on ``signal_fd`` only wake the wait, so that a signal's handler runs.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    # On a terminal, a read that returns no line end was cut short by Ctrl-D.
    terminal = os.isatty(fd)
    buffer = b""
    console.prompt()
    watched = [fd, wake_fd] if signal_fd is None else [fd, wake_fd, signal_fd]
    while True:
        ready, _, _ = select.select(watched, [], [])
        if wake_fd in ready:
            return
        if signal_fd in ready:
            # Python's handler runs now; if it doesn't raise, keep waiting.
            with contextlib.suppress(BlockingIOError):
                while os.read(signal_fd, 512):
                    pass
            if fd not in ready:
                continue
        chunk = os.read(fd, 65536)
        if not chunk:
            if buffer:
                yield buffer.decode(errors="replace")
            return
        *lines, buffer = (buffer + chunk).split(b"\n")
        for line in lines:
            yield line.removesuffix(b"\r").decode(errors="replace")
            console.prompt()
        if terminal and buffer:
            # Ctrl-D in the middle of a line hands it over: send it, as cat would print it.
            yield buffer.decode(errors="replace")
            buffer = b""
            console.prompt(newline=True)


def _print_messages(
    websocket: ClientConnection,
    console: _Console,
    wake_fd: int,
    received: threading.Event,
    finished: threading.Event,
) -> None:
    """Print messages until the connection closes; set ``received`` after each one, and
    ``finished`` (then ``received``) at the end."""
    try:
        for message in websocket:
            if isinstance(message, str):
                # Continuation lines are indented under the first one.
                console.message("< " + "\n  ".join(message.splitlines()))
            else:
                console.message(f"< (binary, {len(message)} bytes) {message.hex(' ')}")
            received.set()
    except (ConnectionClosed, OSError):
        # The connection closed, or standard output did (a pipe to a program that ended).
        pass
    finally:
        finished.set()
        received.set()
        with contextlib.suppress(OSError):
            os.write(wake_fd, b"\0")


# syncws serve and syncws demo


def _run_serve(args: argparse.Namespace) -> int:
    _configure_logging()
    try:
        if args.unix is not None:
            server = unix_serve(_echo, args.unix)
        else:
            server = serve(_echo, args.host, args.port)
    except OSError as exc:
        where = args.unix if args.unix is not None else _address(args.host, args.port)
        _error(f"cannot listen on {where}: {exc.strerror or exc}")
        return EXIT_FAILURE
    if args.unix is not None:
        where = f"the Unix socket {args.unix}"
    else:
        where = f"ws://{_address(args.host, server.port)}/"
    try:
        _serve_until_signal(server, f"Echo server listening on {where}. Press Ctrl-C to stop.")
    finally:
        if args.unix is not None:
            # The socket file is ours: unix_serve() created it.
            with contextlib.suppress(OSError):
                os.unlink(args.unix)
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    _configure_logging()
    try:
        server = serve_demo(args.host, args.port)
    except OSError as exc:
        _error(f"cannot listen on {_address(args.host, args.port)}: {exc.strerror or exc}")
        return EXIT_FAILURE
    url = f"http://{_address(args.host, server.port)}/"
    _serve_until_signal(server, f"Open {url} in a browser, in several tabs. Press Ctrl-C to stop.")
    return EXIT_OK


def _echo(websocket: ServerConnection) -> None:
    logger.info("%s connected, path %s", _peer(websocket.remote_address), websocket.path)
    for message in websocket:
        websocket.send(message)


def _configure_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.INFO)


def _address(host: str, port: int | None) -> str:
    host = host or "0.0.0.0"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _peer(address: Any) -> str:
    if isinstance(address, tuple):
        return _address(address[0], address[1])
    return str(address) or "unix socket client"


def _serve_until_signal(server: Server, banner: str) -> None:
    """Print ``banner``, run ``server`` until SIGINT or SIGTERM, then shut it down.

    ``serve_forever()`` runs in a thread of its own: the signal handler runs in the main thread,
    which then holds none of the server's locks, so it may call ``server.close()`` safely.
    """
    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        if not stopping:  # a second signal while shutting down changes nothing
            stopping.append(signum)
            server.close()

    def run() -> None:
        try:
            server.serve_forever()
        except ValueError:
            # A signal that comes before serve_forever() starts polling closes the listening
            # socket under it: there is nothing left to serve.
            if not stopping:
                raise

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        # Printed once Ctrl-C is handled: whoever reads it may stop the server at once.
        print(banner, flush=True)
        thread = threading.Thread(target=run, name="syncws-serve")
        thread.start()
        thread.join()
        # From here on, a signal must not call close() again: this thread may hold the
        # server's lock inside shutdown().
        stopping.append(0)
        logger.info("shutting down")
        server.shutdown(SHUTDOWN_TIMEOUT)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
