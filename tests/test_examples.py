"""The examples run as shown, and the README shows them as they are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
