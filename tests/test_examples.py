"""The examples run as shown, and the README shows them as they are."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from io_helpers import TIMEOUT, client, terminate

import syncws

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Import the syncws of this source tree, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=30,
        check=False,
    )


def test_sansio_echo_prints_the_frame_to_send() -> None:
    result = run_example("sansio_echo.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "received TEXT b'hello'",
        # FIN + text opcode, unmasked, length 5, then the payload.
        "to send b'\\x81\\x05hello'",
    ]


def test_readme_shows_the_sansio_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (EXAMPLES / "sansio_echo.py").read_text(encoding="utf-8")
    assert f"```python\n{example}```\n" in readme


def test_quickstart_echoes_through_a_real_server() -> None:
    result = run_example("quickstart.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Hello world!"]


def test_readme_shows_the_quickstart_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (EXAMPLES / "quickstart.py").read_text(encoding="utf-8")
    assert f"```python\n{example}```\n" in readme


@contextlib.contextmanager
def example_server(name: str) -> Iterator[int]:
    """Run a server example on a free port; yield the port it prints, stop it on exit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        # The server prints this line once it listens, or the traceback it died with.
        first = process.stdout.readline()
        match = re.match(r"Listening on ws://127\.0\.0\.1:(\d+)/", first)
        assert match is not None, first + process.stdout.read()
        yield int(match.group(1))
    finally:
        terminate(process)
        assert process.stdout is not None
        process.stdout.close()


def test_routing_example_serves_each_endpoint_by_path() -> None:
    with example_server("routing/server.py") as port:
        base = f"ws://127.0.0.1:{port}"
        with client(f"{base}/echo") as websocket:
            websocket.send("hello")
            assert websocket.recv(TIMEOUT) == "hello"
        with client(f"{base}/countdown/3") as websocket:
            assert list(websocket) == ["3", "2", "1", "0"]
        assert websocket.close_code == 1000
        with contextlib.ExitStack() as stack:
            alice, bob, carol, dave = (
                stack.enter_context(client(f"{base}/rooms/{name}")) for name in "aabb"
            )
            # Once a message of one's reached the other, both are in the room.
            bob.send("bob here")
            assert alice.recv(TIMEOUT) == "bob here"
            dave.send("dave here")
            assert carol.recv(TIMEOUT) == "dave here"
            # What is said in room b stays there: alice's next message is bob's.
            carol.send("anyone?")
            assert dave.recv(TIMEOUT) == "anyone?"
            bob.send("after")
            assert alice.recv(TIMEOUT) == "after"
        with pytest.raises(syncws.InvalidStatus) as raised:
            client(f"{base}/countdown/three")
        assert raised.value.response.status_code == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT) as page:
            assert (page.status, page.read()) == (200, b"OK\n")
