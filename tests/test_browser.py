"""A real browser, headless Chromium, runs the examples' pages against the example servers.

The servers run as subprocesses on 127.0.0.1 with an ephemeral port, as in
``test_seed_examples.py``; Chromium is driven by ``browser.py``. Where Chromium is not
installed these tests are skipped, except in CI, where they fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import Browser, Page
from io_helpers import TIMEOUT, running
from test_seed_examples import EXAMPLES, example_server

from syncws.demo import serve_demo

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser() as browser:
        yield browser


def text(page: Page, selector: str) -> str:
    value = page.evaluate(f"document.querySelector({selector!r}).textContent")
    assert isinstance(value, str)
    return value


def test_show_time_page_shows_the_messages(browser: Browser, tmp_path: Path) -> None:
    env = {"SHOW_TIME_INTERVAL": "0.01 0.05"}
    with example_server("show_time/show_time.py", tmp_path, env=env) as server:
        url = (EXAMPLES / "show_time" / "index.html").as_uri() + f"?port={server.port}"
        page = browser.open(url)
        page.wait_for("document.querySelectorAll('li').length >= 3", timeout=TIMEOUT)
        times = page.evaluate("Array.from(document.querySelectorAll('li'), li => li.textContent)")
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", t) for t in times)
        assert times == sorted(times)


def test_show_time_broadcast_reaches_every_tab(browser: Browser, tmp_path: Path) -> None:
    env = {"SHOW_TIME_INTERVAL": "0.01 0.05"}
    with example_server("show_time/show_time_broadcast.py", tmp_path, env=env) as server:
        url = (EXAMPLES / "show_time" / "index.html").as_uri() + f"?port={server.port}"
        first = browser.open(url)
        second = browser.open(url)
        second.wait_for("document.querySelectorAll('li').length >= 3", timeout=TIMEOUT)
        # A message broadcast to the second tab also reached the first one.
        last = text(second, "li:last-child")
        first.wait_for(
            f"Array.from(document.querySelectorAll('li'), li => li.textContent)"
            f".includes({last!r})",
            timeout=TIMEOUT,
        )


def check_counter_tabs(browser: Browser, url: str, users: str, value: str) -> None:
    """Two tabs of a counter page stay in sync; ``users`` and ``value`` are selectors."""
    first = browser.open(url)
    first.wait_for(f"document.querySelector({users!r}).textContent.startsWith('1 user')")
    second = browser.open(url)
    for page in (first, second):
        page.wait_for(f"document.querySelector({users!r}).textContent.startsWith('2 users')")
    start = int(text(first, value))
    first.evaluate("document.querySelector('#plus, .plus').click()")
    first.evaluate("document.querySelector('#plus, .plus').click()")
    second.wait_for(f"document.querySelector({value!r}).textContent === '{start + 2}'")
    second.evaluate("document.querySelector('#minus, .minus').click()")
    first.wait_for(f"document.querySelector({value!r}).textContent === '{start + 1}'")
    second.wait_for(f"document.querySelector({value!r}).textContent === '{start + 1}'")
    # Closing a tab closes its WebSocket: the other tab sees one user left.
    first.close()
    second.wait_for(f"document.querySelector({users!r}).textContent.startsWith('1 user')")


def test_counter_tabs_stay_in_sync(browser: Browser, tmp_path: Path) -> None:
    with example_server("counter/counter.py", tmp_path) as server:
        url = f"http://127.0.0.1:{server.port}/"
        check_counter_tabs(browser, url, users=".users", value=".value")
        assert "Traceback" not in server.output()


def test_demo_tabs_stay_in_sync(browser: Browser) -> None:
    with serve_demo("127.0.0.1", 0) as server, running(server):
        url = f"http://127.0.0.1:{server.port}/"
        check_counter_tabs(browser, url, users="#users", value="#value")
