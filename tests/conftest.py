"""Shared test configuration.

Hypothesis never enforces a per-example deadline: timing on a loaded CI machine is too noisy to
be a test. With the environment variable ``CI`` set, property tests run more examples. Set
``HYPOTHESIS_PROFILE`` to pick a profile explicitly.

The tests that do real I/O check that they leave no thread and no file descriptor behind: their
module says ``pytestmark = pytest.mark.usefixtures("no_leaks")``. Fixtures named by
``usefixtures`` are set up before those a test asks for by argument, so the check sees the
state before the test's own fixtures started anything, and runs after they are torn down.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from hypothesis import settings
from io_helpers import check_leaks

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True)
_default_profile = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or _default_profile)


def require_executable(name: str) -> str:
    """Return the path of the program ``name``, for tests that run a real peer.

    Where the program is missing, the test is skipped on a developer's machine and fails in CI
    (``CI`` set), where ``.ci/run`` installs every program the tests need.
    """
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves threads or file descriptors behind, once they settled."""
    with check_leaks():
        yield
