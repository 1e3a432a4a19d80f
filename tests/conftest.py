"""Shared test configuration.

Hypothesis never enforces a per-example deadline: timing on a loaded CI machine is too noisy to
be a test. With the environment variable ``CI`` set, property tests run more examples. Set
``HYPOTHESIS_PROFILE`` to pick a profile explicitly.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True)
_default_profile = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or _default_profile)
