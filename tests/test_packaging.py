"""syncws installs as the README says, type checkers see it, and the built wheel runs.

These tests install syncws into fresh virtual environments, without the site-packages of the
Python that runs them, so they see what a user gets. pip fetches what the environments need
(``mypy``, ``typing-extensions``, the build backend) from the package index.

* The editable install of the README (``pip install -e .``) is one that ``mypy --strict`` can
  follow, and the public API has the types the docs give.
* The wheel that ``python -m build`` made (``tox -e package`` builds it and passes its
  directory in ``SYNCWS_DIST``) installs on its own and runs ``examples/quickstart.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Creating an environment, installing into it and compiling the C accelerator take a while on
# a busy machine: each subprocess gets this long, and a test a few times as much.
INSTALL_TIMEOUT = 600
RUN_TIMEOUT = 120

# What a copy of the checkout leaves out: version control, caches and build products, among
# them a C accelerator built in place for another Python.
_NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".tox",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".benchmarks",
    ".coverage",
    "__pycache__",
    "_build",
    "build",
    "dist",
    "*.egg-info",
    "*.so",
)


def _environ() -> dict[str, str]:
    """The environment of the subprocesses: nothing that would point them at this checkout."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "MYPYPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_USER"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(
    args: list[str], cwd: Path, timeout: float = INSTALL_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _check(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"


def _venv(path: Path, *requirements: str) -> Path:
    """Create a virtual environment at ``path`` with ``requirements``; return its ``bin``."""
    _check(_run([sys.executable, "-m", "venv", str(path)], cwd=path.parent))
    bin_dir = path / "bin"
    if requirements:
        _check(_run([str(bin_dir / "python"), "-m", "pip", "install", *requirements], path))
    return bin_dir


@pytest.fixture(scope="session")
def editable_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with mypy, where syncws is installed as the README says.

    The install builds the C accelerator in place, in the source tree: it happens in a copy of
    the checkout, so that the accelerator of the tree the tests run from is left alone.
    """
    base = tmp_path_factory.mktemp("editable")
    checkout = base / "syncws"
    shutil.copytree(ROOT, checkout, ignore=_NOT_COPIED)
    bin_dir = _venv(base / "venv", "mypy", "typing-extensions")
    # README.md, "Install": from a clone of the repository.
    _check(_run([str(bin_dir / "python"), "-m", "pip", "install", "-e", "."], cwd=checkout))
    return bin_dir


def _mypy_strict(bin_dir: Path, tmp_path: Path, program: str) -> subprocess.CompletedProcess[str]:
    """Run ``mypy --strict`` on ``program``, outside the checkout, with no configuration."""
    source = tmp_path / "program.py"
    source.write_text(textwrap.dedent(program), encoding="utf-8")
    return _run(
        [str(bin_dir / "mypy"), "--strict", "--no-incremental", str(source)],
        cwd=tmp_path,
        timeout=RUN_TIMEOUT,
    )


@pytest.mark.timeout(3 * INSTALL_TIMEOUT)
def test_mypy_strict_follows_the_editable_install(editable_venv: Path, tmp_path: Path) -> None:
    result = _mypy_strict(
        editable_venv,
        tmp_path,
        """
        import syncws

        def hello(uri: str) -> str:
            with syncws.connect(uri) as websocket:
                websocket.send("Hello world!")
                return websocket.recv(timeout=10, decode=True)
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.timeout(3 * INSTALL_TIMEOUT)
def test_mypy_strict_sees_the_types_the_docs_give(editable_venv: Path, tmp_path: Path) -> None:
    # broadcast() returns what it was given; the fixtures have types to annotate tests with.
    result = _mypy_strict(
        editable_venv,
        tmp_path,
        """
        from typing_extensions import assert_type

        import syncws

        class Player(syncws.ServerConnection):
            score = 0

        def publish(server: syncws.Server, players: set[Player]) -> None:
            assert_type(syncws.broadcast(server.connections, "news"), list[syncws.ServerConnection])
            for player in syncws.broadcast(players, "score"):
                player.score -= 1
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    snippet = ROOT / "docs" / "snippets" / "typed_fixtures.py"
    result = _mypy_strict(editable_venv, tmp_path, snippet.read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stdout + result.stderr


def _documentation() -> dict[str, str]:
    """The text of every page, README and docstring a user reads, by path."""
    paths = [
        ROOT / "README.md",
        *(ROOT / "docs").rglob("*.rst"),
        *(ROOT / "examples").rglob("*.md"),
        *(ROOT / "syncws").rglob("*.py"),
    ]
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in paths}


def test_the_docs_install_syncws_as_tested() -> None:
    # syncws is not on PyPI: the docs install it from a clone, as the tests above do.
    for page in ("README.md", "docs/getting-started.rst"):
        text = (ROOT / page).read_text(encoding="utf-8")
        assert "pip install -e .\n" in text, page
        assert "python -m build" in text, page
        assert "pip install dist/syncws-0.1.0-*.whl" in text, page
    unreleased = re.compile(r"pip install ['\"]?syncws\b")
    # Brackets unquoted are a glob pattern to the shell: zsh refuses `pip install x[flask]`.
    unquoted = re.compile(r"pip install (?:-e )?[^\s'\"`]*\[")
    for path, text in _documentation().items():
        assert not unreleased.search(text), path
        assert not unquoted.search(text), path


def _built(pattern: str) -> Path:
    """The one file of ``SYNCWS_DIST`` that matches ``pattern``."""
    dist = os.environ.get("SYNCWS_DIST")
    if not dist:
        pytest.skip("no built distribution: `tox -e package` builds one")
    (path,) = Path(dist).glob(pattern)
    return path


@pytest.mark.timeout(3 * INSTALL_TIMEOUT)
def test_the_built_wheel_runs_the_quickstart(tmp_path: Path) -> None:
    wheel = _built("syncws-*.whl")
    bin_dir = _venv(tmp_path / "venv")
    _check(_run([str(bin_dir / "python"), "-m", "pip", "install", str(wheel)], cwd=tmp_path))
    # Run from a directory of its own, so that the program imports the installed syncws.
    program = tmp_path / "quickstart.py"
    shutil.copyfile(ROOT / "examples" / "quickstart.py", program)
    result = _run([str(bin_dir / "python"), str(program)], cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Hello world!"]
    where = _run(
        [str(bin_dir / "python"), "-c", "import syncws; print(syncws.__file__)"],
        cwd=tmp_path,
        timeout=RUN_TIMEOUT,
    )
    _check(where)
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv")


def test_the_built_distributions_hold_the_typing_markers_and_the_sources() -> None:
    with zipfile.ZipFile(_built("syncws-*.whl")) as wheel:
        names = set(wheel.namelist())
    assert {"syncws/py.typed", "syncws/core/speedups.pyi", "syncws/testing/pytest_plugin.py"} <= (
        names
    )
    with tarfile.open(_built("syncws-*.tar.gz")) as sdist:
        members = {name.partition("/")[2] for name in sdist.getnames()}
    assert {
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "syncws/py.typed",
        "syncws/core/speedups.c",
        # The tests with what they need, so that the sdist can be checked as it is.
        "tests/conftest.py",
        "tests/io_helpers.py",
        "tests/localhost.pem",
        "docs/conf.py",
        "docs/snippets/typed_fixtures.py",
        "examples/quickstart.py",
    } <= members
    assert not any("__pycache__" in name or name.endswith(".so") for name in members)
