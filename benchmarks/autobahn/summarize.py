"""Summarise the reports of the Autobahn|Testsuite: the ``index.json`` of each output directory.

    python benchmarks/autobahn/summarize.py REPORT_DIR/server REPORT_DIR/client

For each directory and agent: the number of cases per behavior, every case whose behavior or
closing behavior is NON-STRICT or FAILED, and every case that took longer than ``--slow``
seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
NOTABLE = ("NON-STRICT", "FAILED")


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def summarize(outdir: Path, slow: float) -> bool:
    """Print the summary of one output directory; return whether any case FAILED."""
    index_path = outdir / "index.json"
    if not index_path.is_file():
        print(f"{outdir}: no index.json")
        return True
    index: dict[str, dict[str, dict[str, Any]]] = json.loads(index_path.read_text())
    failed = False
    for agent, cases in sorted(index.items()):
        ids = sorted(cases, key=case_key)
        counts = Counter(cases[case_id]["behavior"] for case_id in ids)
        print(f"{outdir} ({agent}): {len(ids)} cases")
        for behavior in BEHAVIORS:
            print(f"  {behavior:<14}{counts.get(behavior, 0):>5}")
        for behavior in sorted(set(counts) - set(BEHAVIORS)):
            print(f"  {behavior:<14}{counts[behavior]:>5}")
        notable = [
            case_id
            for case_id in ids
            if cases[case_id]["behavior"] in NOTABLE or cases[case_id]["behaviorClose"] in NOTABLE
        ]
        print(f"  NON-STRICT or FAILED: {len(notable)}")
        for case_id in notable:
            result = cases[case_id]
            print(
                f"    {case_id:<10} behavior={result['behavior']:<11} "
                f"close={result['behaviorClose']:<11} {result['reportfile']}"
            )
        slow_cases = [case_id for case_id in ids if cases[case_id]["duration"] > slow * 1000]
        print(f"  slower than {slow:g} s: {len(slow_cases)}")
        for case_id in slow_cases:
            result = cases[case_id]
            print(f"    {case_id:<10} {result['duration'] / 1000:7.2f} s  {result['behavior']}")
        failed = failed or "FAILED" in counts
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdirs", nargs="+", type=Path, help="directories with index.json")
    parser.add_argument("--slow", type=float, default=2.0, help="seconds; default: 2")
    args = parser.parse_args()
    failed = False
    for outdir in args.outdirs:
        failed = summarize(outdir, args.slow) or failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
