"""The server's worker threads: each runs one connection at a time."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from .transport import release_freed_memory

__all__ = ["KEEP_IDLE", "MAX_AGE", "Workers"]

Job = TypeVar("Job")

KEEP_IDLE = 4
"""How many threads stay however long they are idle, so that a quiet server answers its next
connections without starting a thread."""


MAX_AGE = 60.0
"""How many seconds a thread runs connections before it ends, after the one it runs then.

glibc gives each thread a cache of small freed blocks (its tcache, up to about 230 KiB), filled
as the thread frees blocks of sizes it has not cached yet and emptied only when the thread
ends. Under a steady load of messages of every size, a pool of long-lived threads holds more
and more of it: with a thousand workers, hundreds of MiB after half an hour. A thread that ends
now and then gives its cache back, and the memory of the pool stays flat."""


class Workers(Generic[Job]):
    """The threads that run connections, one at a time each: ``syncws-worker-<n>``.

    A job is what ``run`` takes: the server's accepted sockets, or the connections that
    :mod:`syncws.wsgi` takes over from a WSGI server (its threads are ``syncws-wsgi-<n>``).

    A thread starts when a connection comes and none is idle (the server never submits more
    than ``max_connections`` at once); then it waits for its next connection. Each idle thread
    has its own inbox, and the one that became idle last takes the next connection, so every
    connection wakes exactly one thread. (A ThreadPoolExecutor's threads share one queue: a
    thread woken for a connection may find it taken by one that just finished, a wasted thread
    switch per connection.) The threads are daemons, as the reader threads are: an idle worker
    never keeps the process from exiting.

    A thread that waited ``idle_timeout`` seconds for a connection ends, unless only
    ``KEEP_IDLE`` threads are left: threads and their memory come back after a spike. Since
    the thread idle for the shortest time takes the next connection, steady churn keeps reusing
    the same few threads, and those idle for longest are the ones that end. A thread that has
    run for :data:`MAX_AGE` seconds ends once its connection is over, and the next connection
    starts a new one. With ``idle_timeout=None``, every thread stays.
    """

    def __init__(
        self,
        run: Callable[[Job], None],
        *,
        idle_timeout: float | None = None,
        name: str = "syncws-worker",
    ) -> None:
        self._run = run
        self._idle_timeout = idle_timeout
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Job | None]] = []
        self._threads: list[threading.Thread] = []
        self._numbers = itertools.count()
        self._closed = False

    def submit(self, job: Job) -> None:
        """Run ``job`` on an idle thread, or on a new one.

        Raises:
            RuntimeError: the workers are shut down, or no thread could be started ("can't
                start new thread"); ``job`` is left to the caller then.
            MemoryError: no memory for a new thread.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the server's workers are shut down")
            if self._idle:
                inbox = self._idle.pop()
            else:
                inbox = queue.SimpleQueue()
                thread = threading.Thread(
                    target=self._work,
                    args=(inbox,),
                    name=f"{self._name}-{next(self._numbers)}",
                    daemon=True,
                )
                self._threads.append(thread)
                try:
                    thread.start()
                except BaseException:
                    # Out of threads or memory: forget the thread, which never ran, so that
                    # shutdown() does not join it.
                    self._threads.remove(thread)
                    raise
        inbox.put(job)

    def _work(self, inbox: queue.SimpleQueue[Job | None]) -> None:
        end_after = None if self._idle_timeout is None else time.monotonic() + MAX_AGE
        try:
            while (job := self._next(inbox)) is not None:
                self._run(job)
                with self._lock:
                    if self._closed:
                        return
                    if end_after is not None and time.monotonic() >= end_after:
                        release_freed_memory()
                        return
                    self._idle.append(inbox)
        finally:
            # However it ends (_next() removes it already when it ends for lack of work, in
            # the same step as it decides to), a thread that ended is counted neither busy
            # nor idle.
            with self._lock:
                current = threading.current_thread()
                if current in self._threads:
                    self._threads.remove(current)

    def _next(self, inbox: queue.SimpleQueue[Job | None]) -> Job | None:
        """The next connection for this thread, or ``None`` when it is to end."""
        while True:
            try:
                return inbox.get(timeout=self._idle_timeout)
            except queue.Empty:
                pass
            with self._lock:
                # submit() takes an inbox out of _idle before it puts the connection in: one
                # that is no longer there has a connection on its way.
                if inbox in self._idle and len(self._threads) > KEEP_IDLE:
                    self._idle.remove(inbox)
                    self._threads.remove(threading.current_thread())
                    # What the thread allocated is freed as it ends: give it back.
                    release_freed_memory()
                    return None

    def counts(self) -> tuple[int, int]:
        """How many threads run a job now, and how many wait for one."""
        with self._lock:
            idle = len(self._idle)
            return len(self._threads) - idle, idle

    def shutdown(self) -> None:
        """End every thread; call it once no connection runs anymore."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            threads = list(self._threads)
        for inbox in idle:
            inbox.put(None)
        for thread in threads:
            thread.join()
