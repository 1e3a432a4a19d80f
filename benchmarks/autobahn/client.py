"""Client driver for the Autobahn|Testsuite fuzzing server.

Like the standard Autobahn client drivers: asks the fuzzing server for the number of cases,
runs each case by connecting to ``/runCase?case=N&agent=AGENT`` and echoing every message
until the server closes the connection, then asks the server to write its reports with
``/updateReports?agent=AGENT``.

    python benchmarks/autobahn/client.py --server ws://127.0.0.1:9001

Each case is aborted after ``--case-timeout`` seconds if the server hasn't closed it by then.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
import time
import urllib.parse

import syncws

MAX_SIZE = 2**25
OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0


def open_connection(uri: str) -> syncws.ClientConnection:
    """Connect with the settings the testsuite expects, straight to the server (no proxy)."""
    connection = syncws.connect(
        uri,
        proxy=None,
        max_size=MAX_SIZE,
        compression="deflate",
        ping_interval=None,
        open_timeout=OPEN_TIMEOUT,
        close_timeout=CLOSE_TIMEOUT,
    )
    assert isinstance(connection, syncws.ClientConnection)
    return connection


def get_case_count(server: str) -> int:
    with open_connection(f"{server}/getCaseCount") as connection:
        return int(connection.recv(timeout=OPEN_TIMEOUT))


def run_case(server: str, case: int, agent: str, timeout: float) -> str:
    """Echo every message of one case; return how it ended."""
    query = urllib.parse.urlencode({"case": case, "agent": agent})
    try:
        connection = open_connection(f"{server}/runCase?{query}")
    except (OSError, syncws.WebSocketException) as exc:
        return f"failed to connect: {exc!r}"
    # No receive timeout: the fuzzing server closes the connection. The timer bounds the case.
    watchdog = threading.Timer(timeout, connection.abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        for message in connection:
            connection.send(message)
    except syncws.ConnectionClosed as exc:
        outcome = f"closed: {exc}"
    else:
        outcome = "closed normally"
    finally:
        watchdog.cancel()
        connection.close()
    return outcome


def update_reports(server: str, agent: str) -> None:
    query = urllib.parse.urlencode({"agent": agent})
    # The server writes the reports, then closes.
    with (
        open_connection(f"{server}/updateReports?{query}") as connection,
        contextlib.suppress(syncws.ConnectionClosed, TimeoutError),
    ):
        connection.recv(timeout=600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="ws://127.0.0.1:9001")
    parser.add_argument("--agent", default="syncws")
    parser.add_argument(
        "--case-timeout", type=float, default=60.0, help="abort a case after this many seconds"
    )
    parser.add_argument("--verbose", action="store_true", help="print how each case ended")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")

    count = get_case_count(args.server)
    print(f"{count} cases", flush=True)
    started = time.monotonic()
    for case in range(1, count + 1):
        begin = time.monotonic()
        outcome = run_case(args.server, case, args.agent, args.case_timeout)
        elapsed = time.monotonic() - begin
        if args.verbose or elapsed > 2:
            print(f"case {case}/{count}: {elapsed:.2f} s, {outcome}", flush=True)
    print(f"ran {count} cases in {time.monotonic() - started:.0f} s", flush=True)
    update_reports(args.server, args.agent)
    print("reports written", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
