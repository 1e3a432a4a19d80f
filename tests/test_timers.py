"""Tests of the shared timer thread.

Most tests run their own timer thread (a private ``_TimerThread``), so that timers left by
connections of other tests cannot delay it; they cancel timers through it, since
``Timer.cancel()`` goes to the shared one. The last tests go through the shared one.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from io_helpers import TIMEOUT, wait_for

from syncws import timers
from syncws.timers import _TimerThread, call_later

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture
def timer_thread() -> Iterator[_TimerThread]:
    timer_thread = _TimerThread()
    yield timer_thread
    thread = timer_thread._thread
    if thread is not None:
        # Don't leave a timer of a failed test behind.
        with timer_thread._cond:
            for _, _, timer in timer_thread._heap:
                timer.cancelled = True
            timer_thread._pending = 0
            timer_thread._heap.clear()
            timer_thread._cond.notify()
        thread.join(TIMEOUT)


def stopped(timer_thread: _TimerThread) -> bool:
    """Whether the timer thread ended, after the last timer."""
    with timer_thread._cond:
        return timer_thread._thread is None


def test_callback_runs_in_timer_thread(timer_thread: _TimerThread) -> None:
    ran = threading.Event()
    names: list[str] = []

    def callback() -> None:
        names.append(threading.current_thread().name)
        ran.set()

    start = time.monotonic()
    timer_thread.call_later(0.05, callback)
    assert ran.wait(TIMEOUT)
    assert time.monotonic() - start >= 0.04
    assert names == ["syncws-timer"]


def test_callbacks_run_in_deadline_order(timer_thread: _TimerThread) -> None:
    order: list[int] = []
    done = threading.Event()
    for delay in (0.15, 0.05, 0.1, 0.0):
        timer_thread.call_later(delay, functools.partial(order.append, int(delay * 100)))
    timer_thread.call_later(0.2, done.set)
    assert done.wait(TIMEOUT)
    assert order == [0, 5, 10, 15]


def test_same_deadline_runs_in_scheduling_order(timer_thread: _TimerThread) -> None:
    order: list[int] = []
    done = threading.Event()
    # A later timer wakes the thread when it is due first; equal delays keep their order.
    for i in range(5):
        timer_thread.call_later(0.05, functools.partial(order.append, i))
    timer_thread.call_later(0.05, done.set)
    assert done.wait(TIMEOUT)
    assert order == [0, 1, 2, 3, 4]


def test_earlier_timer_scheduled_later_wakes_thread(timer_thread: _TimerThread) -> None:
    ran = threading.Event()
    late = timer_thread.call_later(TIMEOUT * 2, lambda: None)
    start = time.monotonic()
    timer_thread.call_later(0.05, ran.set)
    assert ran.wait(TIMEOUT)
    assert time.monotonic() - start < TIMEOUT
    timer_thread.cancel(late)
    assert wait_for(lambda: stopped(timer_thread))


def test_cancel_prevents_running(timer_thread: _TimerThread) -> None:
    ran: list[str] = []
    done = threading.Event()
    cancelled = timer_thread.call_later(0.05, lambda: ran.append("cancelled"))
    timer_thread.call_later(0.1, lambda: ran.append("kept"))
    timer_thread.call_later(0.15, done.set)
    timer_thread.cancel(cancelled)
    timer_thread.cancel(cancelled)  # twice is fine
    assert done.wait(TIMEOUT)
    assert ran == ["kept"]


def test_cancel_after_running_is_harmless(timer_thread: _TimerThread) -> None:
    done = threading.Event()
    timer = timer_thread.call_later(0, done.set)
    assert done.wait(TIMEOUT)
    timer_thread.cancel(timer)
    assert wait_for(lambda: stopped(timer_thread))
    # The count of pending timers was not thrown off: a new timer still runs.
    again = threading.Event()
    timer_thread.call_later(0, again.set)
    assert again.wait(TIMEOUT)


def test_thread_exits_when_idle(timer_thread: _TimerThread) -> None:
    done = threading.Event()
    timer_thread.call_later(0.01, done.set)
    thread = timer_thread._thread
    assert thread is not None
    assert thread.name == "syncws-timer"
    assert thread.daemon
    assert done.wait(TIMEOUT)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert stopped(timer_thread)


def test_thread_exits_when_only_cancelled_timers_remain(timer_thread: _TimerThread) -> None:
    timers_ = [timer_thread.call_later(TIMEOUT * 10, lambda: None) for _ in range(3)]
    thread = timer_thread._thread
    assert thread is not None
    for timer in timers_:
        timer_thread.cancel(timer)
    # It does not wait until the cancelled timers are due.
    thread.join(TIMEOUT / 2)
    assert not thread.is_alive()
    assert stopped(timer_thread)


def test_cancelled_timer_lets_go_of_its_callback(timer_thread: _TimerThread) -> None:
    """A closed connection is not kept alive until its keepalive timer would have been due."""

    class Owner:
        def callback(self) -> None:
            pass

    owner = Owner()
    keep = timer_thread.call_later(TIMEOUT * 10, lambda: None)
    timer = timer_thread.call_later(TIMEOUT * 10, owner.callback)
    ref = weakref.ref(owner)
    del owner
    assert ref() is not None
    timer_thread.cancel(timer)
    gc.collect()
    assert ref() is None
    timer_thread.cancel(keep)


def test_cancelled_timers_do_not_pile_up(timer_thread: _TimerThread) -> None:
    """Connections that come and go next to a long-lived one leave a heap of bounded size."""
    keep = timer_thread.call_later(TIMEOUT * 10, lambda: None)
    for _ in range(1000):
        timer_thread.cancel(timer_thread.call_later(TIMEOUT * 5, lambda: None))
    with timer_thread._cond:
        assert len(timer_thread._heap) <= 2 * timer_thread._pending + 64 + 1
    ran = threading.Event()
    timer_thread.call_later(0.01, ran.set)
    assert ran.wait(TIMEOUT)
    timer_thread.cancel(keep)
    assert wait_for(lambda: stopped(timer_thread))


def test_thread_restarts_after_exit(timer_thread: _TimerThread) -> None:
    for _ in range(3):
        done = threading.Event()
        timer_thread.call_later(0, done.set)
        assert done.wait(TIMEOUT)
        assert wait_for(lambda: stopped(timer_thread))


def test_exception_is_handed_to_the_owner_once_logged(
    timer_thread: _TimerThread, caplog: pytest.LogCaptureFixture
) -> None:
    # A connection's timer fails that connection (on_error); the thread goes on.
    errors: list[Exception] = []
    done = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    def on_error(exc: Exception) -> None:
        errors.append(exc)
        raise ValueError("the owner fails too")

    with caplog.at_level(logging.ERROR, logger="syncws.timers"):
        timer_thread.call_later(0.01, fail, on_error)
        timer_thread.call_later(0.05, done.set)
        assert done.wait(TIMEOUT)
    assert [str(exc) for exc in errors] == ["boom"]
    logged = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert [type(exc) for exc in logged] == [RuntimeError, ValueError]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_callback_that_ends_the_thread_does_not_stop_later_timers(
    timer_thread: _TimerThread,
) -> None:
    # SystemExit ends a thread silently: another thread takes over the timers left.
    done = threading.Event()

    def end_thread() -> None:
        raise SystemExit

    timer_thread.call_later(0.01, end_thread)
    timer_thread.call_later(0.05, done.set)
    assert done.wait(TIMEOUT)
    ran = threading.Event()
    timer_thread.call_later(0.01, ran.set)
    assert ran.wait(TIMEOUT)


def test_exception_is_logged_and_later_timers_run(
    timer_thread: _TimerThread, caplog: pytest.LogCaptureFixture
) -> None:
    done = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="syncws.timers"):
        timer_thread.call_later(0.01, fail)
        timer_thread.call_later(0.05, done.set)
        assert done.wait(TIMEOUT)
    errors = [record for record in caplog.records if record.name == "syncws.timers"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    assert wait_for(lambda: stopped(timer_thread))


def test_callback_may_schedule_timers(timer_thread: _TimerThread) -> None:
    done = threading.Event()
    count: list[int] = []

    def tick() -> None:
        count.append(1)
        if len(count) < 3:
            timer_thread.call_later(0.01, tick)
        else:
            done.set()

    timer_thread.call_later(0.01, tick)
    assert done.wait(TIMEOUT)
    assert len(count) == 3
    assert wait_for(lambda: stopped(timer_thread))


def test_shared_call_later() -> None:
    ran = threading.Event()
    names: list[str] = []

    def callback() -> None:
        names.append(threading.current_thread().name)
        ran.set()

    timer = call_later(0.01, callback)
    assert isinstance(timer, timers.Timer)
    assert ran.wait(TIMEOUT)
    assert names == ["syncws-timer"]
    cancelled = call_later(TIMEOUT * 10, callback)
    cancelled.cancel()
    assert cancelled.cancelled


SHARED_THREAD_EXITS = """
import threading, time
from syncws import timers

def timer_thread_alive():
    return any(t.name == "syncws-timer" for t in threading.enumerate())

def wait_stopped():
    deadline = time.monotonic() + 5
    while timer_thread_alive():
        assert time.monotonic() < deadline, "the timer thread did not exit"
        time.sleep(0.01)

assert not timer_thread_alive()
done = threading.Event()
timers.call_later(0.01, done.set)
assert timer_thread_alive()
assert done.wait(5)
wait_stopped()

# Only cancelled timers: the thread exits without waiting for them to be due.
pending = [timers.call_later(60, lambda: None) for _ in range(3)]
assert timer_thread_alive()
start = time.monotonic()
for timer in pending:
    timer.cancel()
wait_stopped()
assert time.monotonic() - start < 5

# A timer cancelled among others: the rest still runs, then the thread exits.
ran = []
first = timers.call_later(0.05, lambda: ran.append("first"))
timers.call_later(0.1, lambda: ran.append("second"))
first.cancel()
wait_stopped()
assert ran == ["second"], ran
print("ok")
"""


def test_shared_thread_exits_when_idle() -> None:
    # A fresh interpreter: timers of connections in other tests can't keep the thread alive.
    result = subprocess.run(
        [sys.executable, "-c", SHARED_THREAD_EXITS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(timers.__file__).parents[1])},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
