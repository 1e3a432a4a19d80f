"""The server's worker threads: each runs one connection at a time."""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable

__all__ = ["Workers"]


class Workers:
    """The threads that run connections, one at a time each: ``syncws-worker-<n>``.

    A thread starts when a connection comes and none is idle (the server never submits more
    than ``max_connections`` at once); then it waits for its next connection. Each idle thread
    has its own inbox, and the one that became idle last takes the next connection, so every
    connection wakes exactly one thread. (A ThreadPoolExecutor's threads share one queue: a
    thread woken for a connection may find it taken by one that just finished, a wasted thread
    switch per connection.) The threads are daemons, as the reader threads are: an idle worker
    never keeps the process from exiting.
    """

    def __init__(self, run: Callable[[socket.socket], None]) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[socket.socket | None]] = []
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, sock: socket.socket) -> None:
        """Run ``sock`` on an idle thread, or on a new one."""
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
                    name=f"syncws-worker-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
        inbox.put(sock)

    def _work(self, inbox: queue.SimpleQueue[socket.socket | None]) -> None:
        while (sock := inbox.get()) is not None:
            self._run(sock)
            with self._lock:
                if self._closed:
                    return
                self._idle.append(inbox)

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
