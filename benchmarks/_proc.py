"""What the benchmarks read of a process from ``/proc``, and the limit on open files they raise.

The scripts import it by name: run as ``python benchmarks/<script>.py``, the script's folder
comes first on ``sys.path``. Linux only.
"""

from __future__ import annotations

import os
import resource

__all__ = ["cpu_seconds", "fd_count", "raise_fd_limit", "rss_kib", "thread_count"]


def raise_fd_limit() -> int:
    """Raise the soft limit on open files as far as the hard one allows (every connection is
    a descriptor); return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass
        else:
            soft = wanted
    return soft


def _status(pid: int | str, field: str) -> int:
    """A number of ``/proc/<pid>/status`` (the first word after ``field:``), or 0 without it."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int | str = "self") -> int:
    """The resident set size of a process, in KiB."""
    return _status(pid, "VmRSS")


def thread_count(pid: int | str = "self") -> int:
    """How many threads a process runs."""
    return _status(pid, "Threads")


def fd_count(pid: int | str = "self") -> int:
    """How many file descriptors a process has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int | str = "self") -> float:
    """The CPU time (user and system) a process used so far, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name, in parentheses, may hold spaces: count the fields after it.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
