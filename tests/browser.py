"""Drive a headless Chromium from tests, over the Chrome DevTools Protocol, with syncws.

syncws's own client is the DevTools WebSocket client, so these tests also prove that syncws
talks to Chromium's WebSocket server.

Usage::

    with Browser() as browser:
        page = browser.open("http://127.0.0.1:8765/")
        page.wait_for("document.querySelectorAll('li').length >= 2", timeout=10)
        page.evaluate("document.querySelector('.plus').click()")
        assert page.evaluate("document.title") == "WebSocket demo"
        page.close()

The API:

* :class:`Browser` ``(executable=None)``: starts Chromium (found with
  :func:`conftest.require_executable`, which skips the test where it is missing and fails in
  CI) with a fresh profile in a temporary directory. Use it as a context manager: on exit
  every page is closed, Chromium and its child processes are killed and the profile is
  removed, even when the test failed.
* :meth:`Browser.open` ``(url, timeout=10)`` -> :class:`Page`: opens a new tab, loads ``url``
  and returns once the document is loaded.
* :meth:`Page.evaluate` ``(expression, timeout=10)``: runs a JavaScript expression in the
  page and returns its value (JSON-compatible values only; a promise is awaited). A
  JavaScript exception raises :exc:`JavaScriptError`.
* :meth:`Page.wait_for` ``(expression, timeout=10)``: evaluates ``expression`` until it is
  truthy and returns its value; raises :exc:`TimeoutError` with the last value otherwise.
* :meth:`Page.close`: closes the tab (its WebSockets close as when a user closes a tab).

Every call has a timeout. One page is meant to be used from one thread at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from conftest import require_executable

import syncws

__all__ = ["Browser", "BrowserError", "JavaScriptError", "Page"]

TIMEOUT = 10.0
"""The default timeout of every blocking call, in seconds."""

START_TIMEOUT = 30.0
"""How long Chromium may take to start listening: its first start on a cold machine is slow."""

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
]

_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class BrowserError(Exception):
    """Chromium failed to start, or a DevTools command returned an error."""


class JavaScriptError(BrowserError):
    """An expression evaluated in a page threw an exception."""


class _DevTools:
    """One DevTools WebSocket connection: numbered commands, and their results."""

    def __init__(self, url: str) -> None:
        # DevTools messages (a DOM snapshot, a large result) can be far over 1 MiB.
        self.connection = syncws.connect(url, max_size=None, open_timeout=TIMEOUT)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """Send a command and return its result, skipping the events that come before it."""
        with self._lock:
            command_id = next(self._ids)
            command = {"id": command_id, "method": method, "params": params or {}}
            self.connection.send(json.dumps(command))
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"DevTools did not answer {method} in {timeout} s")
                message = json.loads(self.connection.recv(timeout=remaining))
                if message.get("id") != command_id:
                    continue  # an event, or the answer to a command that timed out
                if "error" in message:
                    raise BrowserError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def close(self) -> None:
        """Close the connection; abort it if Chromium already went away."""
        try:
            self.connection.close()
        except Exception:
            self.connection.abort()
        with contextlib.suppress(TimeoutError):
            self.connection.wait_closed(TIMEOUT)


class Page:
    """A browser tab, as :meth:`Browser.open` returns it."""

    def __init__(self, browser: Browser, target_id: str, devtools: _DevTools) -> None:
        self._browser = browser
        self.target_id = target_id
        self._devtools = devtools
        self.closed = False

    def evaluate(self, expression: str, timeout: float = TIMEOUT) -> Any:
        """Evaluate a JavaScript expression in the page and return its value.

        Args:
            expression: the expression; a promise it returns is awaited.
            timeout: seconds to wait for the result.

        Returns:
            The value, converted from JSON: ``None`` for ``undefined`` and ``null``.

        Raises:
            JavaScriptError: the expression threw.
            TimeoutError: no result came in time.
        """
        result = self._devtools.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            description = details.get("exception", {}).get("description") or details.get("text")
            raise JavaScriptError(f"{expression!r} threw: {description}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = TIMEOUT, interval: float = 0.05) -> Any:
        """Evaluate ``expression`` until its value is truthy, and return that value.

        Args:
            expression: a JavaScript expression, e.g. ``"document.title === 'Ready'"``.
            timeout: seconds before giving up.
            interval: seconds between two evaluations.

        Raises:
            TimeoutError: the value was still falsy after ``timeout`` seconds; the message
                shows the last value.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression, max(deadline - time.monotonic(), 1.0))
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{expression!r} was still {value!r} after {timeout} s")
            time.sleep(interval)

    def close(self) -> None:
        """Close the tab. Closing it twice does nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            self._browser._call("Target.closeTarget", {"targetId": self.target_id})
        finally:
            self._devtools.close()


class Browser:
    """A headless Chromium with a fresh profile, driven over the DevTools Protocol.

    Args:
        executable: the Chromium program; by default ``chromium`` found on this machine.
    """

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or require_executable("chromium")
        self.pages: list[Page] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._devtools: _DevTools | None = None
        self._profile = Path(tempfile.mkdtemp(prefix="syncws-chromium-"))
        self._log_path = self._profile / "chromium.log"
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        # Chromium's log goes to a file rather than a pipe: nothing has to drain it, and a
        # pipe would stay open as long as any child process of Chromium lives.
        with self._log_path.open("wb") as log:
            profile = f"--user-data-dir={self._profile / 'profile'}"
            self._process = subprocess.Popen(
                [self.executable, *FLAGS, profile, "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own process group: close() kills the renderers and helpers with it.
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while (match := _LISTENING.search(self.log())) is None:
            if self._process.poll() is not None:
                status = self._process.returncode
                raise BrowserError(f"chromium exited with {status}:\n{self.log()}")
            if time.monotonic() >= deadline:
                raise BrowserError(f"chromium did not listen in {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.05)
        self._devtools = _DevTools(match.group(1))

    def log(self) -> str:
        """What Chromium wrote to its standard output and error so far, for error messages."""
        try:
            return self._log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def port(self) -> int:
        """The port of the DevTools endpoint, on 127.0.0.1."""
        assert self._devtools is not None
        address = self._devtools.connection.remote_address
        assert isinstance(address, tuple)
        return int(address[1])

    def _call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        if self._devtools is None:
            raise BrowserError("the browser is closed")
        return self._devtools.call(method, params, timeout)

    def open(self, url: str, timeout: float = TIMEOUT) -> Page:
        """Open ``url`` in a new tab and return it once its document is loaded.

        Raises:
            BrowserError: the page could not be loaded.
            TimeoutError: it did not load within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        target_id = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        page_url = f"ws://127.0.0.1:{self.port}/devtools/page/{target_id}"
        page = Page(self, target_id, _DevTools(page_url))
        self.pages.append(page)
        result = page._devtools.call("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise BrowserError(f"cannot load {url}: {result['errorText']}")
        if url != "about:blank":
            page.wait_for(
                "location.href !== 'about:blank' && document.readyState === 'complete'",
                max(deadline - time.monotonic(), 1.0),
            )
        return page

    def close(self) -> None:
        """Close every page, kill Chromium and remove its profile. Closing twice is safe."""
        try:
            for page in self.pages:
                with contextlib.suppress(Exception):
                    page.close()
            self.pages.clear()
            if self._devtools is not None:
                self._devtools.close()
                self._devtools = None
        finally:
            process = self._process
            if process is not None:
                # The whole process group, renderers and helpers included. The profile is
                # thrown away, so there is nothing to shut down gracefully. Chromium is not
                # reaped yet, so its group id cannot belong to anything else.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(TIMEOUT)
                self._process = None
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
