"""The ``syncws`` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``syncws`` command; return its exit status."""
    print("usage: syncws {connect,serve,demo} ...", file=sys.stderr)
    return 2
