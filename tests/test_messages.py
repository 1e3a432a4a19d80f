"""Tests of the bounded message queue between the reader thread and recv()."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from io_helpers import TIMEOUT, Background, wait_for

from syncws.core.frames import Frame, Opcode
from syncws.exceptions import ConcurrencyError
from syncws.messages import Data, MessageQueue
from syncws.options import water_marks

pytestmark = pytest.mark.usefixtures("no_leaks")


def text(data: str, fin: bool = True) -> Frame:
    return Frame(Opcode.TEXT, data.encode(), fin)


def binary(data: bytes, fin: bool = True) -> Frame:
    return Frame(Opcode.BINARY, data, fin)


def cont(data: bytes, fin: bool = True) -> Frame:
    return Frame(Opcode.CONT, data, fin)


@pytest.fixture
def queue() -> Iterator[MessageQueue]:
    queue = MessageQueue(max_queue=None)
    yield queue
    # Wake anything a failed test left waiting.
    queue.close()


def test_max_queue_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_queue"):
        MessageQueue(0)


def test_get_in_order(queue: MessageQueue) -> None:
    queue.put(text("one"))
    queue.put(binary(b"two"))
    queue.put(text("three"))
    assert len(queue) == 3
    assert queue.get(0) == "one"
    assert queue.get(0) == b"two"
    assert queue.get(0) == "three"
    assert len(queue) == 0


def test_get_reassembles_fragments(queue: MessageQueue) -> None:
    queue.put(text("caf", fin=False))
    queue.put(cont("é".encode()[:1], fin=False))
    queue.put(cont("é".encode()[1:] + b"!"))
    queue.put(binary(b"a", fin=False))
    queue.put(cont(b"b"))
    assert len(queue) == 2
    assert queue.get(0) == "café!"
    assert queue.get(0) == b"ab"


def test_get_timeout_zero_polls(queue: MessageQueue) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        queue.get(0)
    assert time.monotonic() - start < 1
    queue.put(text("here"))
    assert queue.get(0) == "here"


def test_get_timeout_waits(queue: MessageQueue) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        queue.get(0.2)
    assert 0.15 <= time.monotonic() - start < 3


def test_get_waits_for_message(queue: MessageQueue) -> None:
    getter = Background(lambda: queue.get(TIMEOUT))
    time.sleep(0.05)
    queue.put(text("late"))
    assert getter.join() == "late"


def test_timeout_never_splits_message(queue: MessageQueue) -> None:
    queue.put(text("first half, ", fin=False))
    with pytest.raises(TimeoutError):
        queue.get(0.05)
    # The timeout consumed nothing: the rest of the message completes it.
    queue.put(cont(b"second half"))
    assert queue.get(0) == "first half, second half"


def test_timeout_while_fragments_arrive(queue: MessageQueue) -> None:
    """Fragments keep arriving across timeouts; no call loses or splits the message."""
    parts = [f"part {i};".encode() for i in range(10)]

    def produce() -> None:
        for i, part in enumerate(parts):
            fin = i == len(parts) - 1
            queue.put(Frame(Opcode.TEXT if i == 0 else Opcode.CONT, part, fin))
            time.sleep(0.01)

    producer = Background(produce)
    timeouts = 0
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, "the message never completed"
        try:
            message = queue.get(0.003)
        except TimeoutError:
            timeouts += 1
        else:
            break
    producer.join()
    assert message == b"".join(parts).decode()
    assert timeouts > 0
    with pytest.raises(TimeoutError):
        queue.get(0)


@pytest.mark.parametrize(
    ("frame", "decode", "expected"),
    [
        (Frame(Opcode.TEXT, "é".encode()), None, "é"),
        (Frame(Opcode.BINARY, b"\x00\xff"), None, b"\x00\xff"),
        (Frame(Opcode.TEXT, "é".encode()), False, "é".encode()),
        (Frame(Opcode.BINARY, b"\x00\xff"), False, b"\x00\xff"),
        (Frame(Opcode.TEXT, "é".encode()), True, "é"),
        (Frame(Opcode.BINARY, "é".encode()), True, "é"),
    ],
)
def test_get_decode(queue: MessageQueue, frame: Frame, decode: bool | None, expected: Data) -> None:
    queue.put(frame)
    message = queue.get(0, decode)
    assert type(message) is type(expected)
    assert message == expected


def test_get_iter_streams_fragments(queue: MessageQueue) -> None:
    queue.put(binary(b"a", fin=False))
    fragments = queue.get_iter()
    # The first fragment is available before the message is complete.
    assert next(fragments) == b"a"
    queue.put(cont(b"b", fin=False))
    assert next(fragments) == b"b"
    queue.put(cont(b"c"))
    assert next(fragments) == b"c"
    with pytest.raises(StopIteration):
        next(fragments)
    assert len(queue) == 0


def test_get_iter_waits_for_fragments(queue: MessageQueue) -> None:
    queue.put(text("x", fin=False))

    def produce() -> None:
        time.sleep(0.05)
        queue.put(cont(b"y", fin=False))
        time.sleep(0.05)
        queue.put(cont(b"z"))

    producer = Background(produce)
    assert list(queue.get_iter()) == ["x", "y", "z"]
    producer.join()


def test_get_iter_reassembles_split_utf8(queue: MessageQueue) -> None:
    encoded = "€uro".encode()  # the euro sign takes 3 bytes
    queue.put(Frame(Opcode.TEXT, encoded[:1], fin=False))
    queue.put(cont(encoded[1:2], fin=False))
    queue.put(cont(encoded[2:]))
    fragments = list(queue.get_iter())
    texts = [fragment for fragment in fragments if isinstance(fragment, str)]
    assert texts == fragments
    assert "".join(texts) == "€uro"
    # Incomplete characters are held back until the fragment that ends them.
    assert fragments == ["", "", "€uro"]


@pytest.mark.parametrize(
    ("opcode", "decode", "expected"),
    [
        (Opcode.TEXT, None, ["é", ""]),
        (Opcode.TEXT, False, [b"\xc3", b"\xa9"]),
        (Opcode.BINARY, None, [b"\xc3", b"\xa9"]),
        (Opcode.BINARY, True, ["", "é"]),
    ],
)
def test_get_iter_decode(
    queue: MessageQueue, opcode: Opcode, decode: bool | None, expected: list[Data]
) -> None:
    if opcode is Opcode.TEXT and decode is None:
        queue.put(Frame(opcode, "é".encode(), fin=False))
        queue.put(cont(b""))
    else:
        queue.put(Frame(opcode, b"\xc3", fin=False))
        queue.put(cont(b"\xa9"))
    assert list(queue.get_iter(decode)) == expected


def test_get_iter_then_get(queue: MessageQueue) -> None:
    queue.put(text("one"))
    queue.put(text("two"))
    assert list(queue.get_iter()) == ["one"]
    assert queue.get(0) == "two"


def test_abandoned_get_iter_drops_queued_fragments() -> None:
    queue = MessageQueue(max_queue=(3, 2))
    queue.put(text("a", fin=False))
    queue.put(cont(b"b", fin=False))
    queue.put(cont(b"c"))
    queue.put(text("next"))
    # The third complete message fills the queue: the reader blocks until one leaves.
    putter = Background(lambda: queue.put(text("last")))
    assert wait_for(lambda: queue.paused)
    stream = queue.get_iter()
    assert next(stream) == "a"
    stream.close()
    # The rest of the message left with it, making room.
    putter.join()
    assert len(queue) == 2
    assert queue.get(0) == "next"
    assert queue.get(0) == "last"


def test_abandoned_get_iter_drops_fragments_to_come(queue: MessageQueue) -> None:
    queue.put(binary(b"a", fin=False))
    stream = queue.get_iter()
    assert next(stream) == b"a"
    stream.close()
    # Nothing is queued of what comes up to the end of the message.
    assert queue.put(cont(b"b", fin=False)) is False
    assert queue.put(cont(b"c")) is False
    assert len(queue) == 0
    queue.put(binary(b"next"))
    assert queue.get(0) == b"next"


def test_finished_get_iter_drops_nothing(queue: MessageQueue) -> None:
    queue.put(text("a", fin=False))
    queue.put(cont(b"b"))
    queue.put(text("next"))
    stream = queue.get_iter()
    assert next(stream) == "a"
    assert next(stream) == "b"
    # The last fragment was given: closing now leaves the next message alone.
    stream.close()
    assert queue.get(0) == "next"


def test_second_getter_raises_concurrency_error(queue: MessageQueue) -> None:
    getter = Background(lambda: queue.get(TIMEOUT))
    assert wait_for(lambda: queue._getting)
    with pytest.raises(ConcurrencyError):
        queue.get(0)
    with pytest.raises(ConcurrencyError):
        next(queue.get_iter())
    queue.put(text("for the first"))
    assert getter.join() == "for the first"
    # Once the first getter is done, anyone may get.
    queue.put(text("next"))
    assert queue.get(0) == "next"


def test_get_during_get_iter_raises_concurrency_error(queue: MessageQueue) -> None:
    queue.put(text("a", fin=False))
    fragments = queue.get_iter()
    assert next(fragments) == "a"
    with pytest.raises(ConcurrencyError):
        queue.get(0)
    queue.put(cont(b"b"))
    assert list(fragments) == ["b"]
    queue.put(text("c"))
    assert queue.get(0) == "c"


def test_put_blocks_when_full() -> None:
    queue = MessageQueue(max_queue=(2, 1))
    queue.put(text("one"))
    assert not queue.paused
    putter = Background(lambda: queue.put(text("two")))
    # The second complete message fills the queue: put() blocks until one is taken.
    assert wait_for(lambda: queue.paused)
    assert queue.pauses == 1
    assert not putter.done.wait(0.1)
    assert len(queue) == 2
    assert queue.get(0) == "one"
    putter.join()
    assert not queue.paused
    assert queue.get(0) == "two"
    queue.close()


class RecordingCondition(threading.Condition):
    """A condition that tells each time a thread starts waiting on it."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(lock)
        self.waits = threading.Semaphore(0)

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.release()
        return super().wait(timeout)


def blocked_putter(queue: MessageQueue, high: int) -> tuple[Background, RecordingCondition]:
    """Fill ``queue`` up to its high-water mark ``high``; return the put() it blocks."""
    condition = RecordingCondition(queue._lock)
    queue._cond = condition
    for i in range(high - 1):
        queue.put(text(str(i)))
    putter = Background(lambda: queue.put(text(str(high - 1))))
    assert condition.waits.acquire(timeout=TIMEOUT)
    assert queue.paused
    return putter, condition


def still_blocked(queue: MessageQueue, putter: Background, condition: RecordingCondition) -> bool:
    """Wake the blocked put() and tell whether it waits again rather than returning."""
    with queue._lock:
        queue._notify(every=True)
    # Either it waits again or it returns: no guessing how long it takes.
    assert wait_for(lambda: putter.done.is_set() or condition.waits.acquire(blocking=False))
    return not putter.done.is_set()


def test_put_resumes_at_the_low_water_mark() -> None:
    queue = MessageQueue(max_queue=8)  # the low-water mark is 8 // 4 = 2
    assert (queue.max_queue, queue.low) == (8, 2)
    putter, condition = blocked_putter(queue, 8)
    for i in range(5):
        # Room for a message is not enough: the reader waits for the low-water mark.
        assert queue.get(0) == str(i)
        assert still_blocked(queue, putter, condition)
        assert queue.paused
    assert len(queue) == 3
    assert queue.get(0) == "5"
    putter.join()
    assert not queue.paused
    assert queue.pauses == 1
    assert [queue.get(0), queue.get(0)] == ["6", "7"]
    queue.close()


def test_put_resumes_at_a_low_water_mark_of_zero() -> None:
    queue = MessageQueue(max_queue=(3, 0))
    putter, condition = blocked_putter(queue, 3)
    assert queue.get(0) == "0"
    assert still_blocked(queue, putter, condition)
    stream = queue.get_iter()
    assert list(stream) == ["1"]
    assert still_blocked(queue, putter, condition)
    assert queue.get(0) == "2"
    putter.join()
    assert not queue.paused
    queue.close()


def test_equal_water_marks_resume_as_soon_as_one_is_taken() -> None:
    queue = MessageQueue(max_queue=(4, 4))
    putter, _ = blocked_putter(queue, 4)
    assert queue.get(0) == "0"
    putter.join()
    assert not queue.paused
    queue.close()


@pytest.mark.parametrize(
    ("max_queue", "marks"),
    [
        (16, (16, 4)),
        (3, (3, 0)),
        (None, (None, None)),
        ((10, 5), (10, 5)),
        ((10, None), (10, 2)),
        ((None, 3), (12, 3)),
        ((None, None), (None, None)),
    ],
)
def test_water_marks_as_in_websockets(
    max_queue: int | tuple[int | None, int | None] | None, marks: tuple[int | None, int | None]
) -> None:
    assert water_marks(max_queue) == marks
    queue = MessageQueue(max_queue)
    assert (queue.max_queue, queue.low) == marks


@pytest.mark.parametrize(
    ("max_queue", "error", "message"),
    [
        ((4, 5), ValueError, r"^max_queue's low-water mark must not be above its high-water"),
        ((4, -1), ValueError, r"^max_queue's low-water mark must be at least 0"),
        ((0, 0), ValueError, r"^max_queue's high-water mark must be at least 1"),
        ((None, 0), ValueError, r"^max_queue's high-water mark must be at least 1; \(None, 0\)"),
        ((4, 2, 1), TypeError, r"^max_queue must be a \(high, low\) pair"),
        ((4.0, 1), TypeError, r"^max_queue's high-water mark must be an integer"),
        ([4, 1], TypeError, r"^max_queue must be an integer, None for no limit, or a \(high"),
    ],
)
def test_bad_water_marks_are_refused(
    max_queue: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        MessageQueue(max_queue)  # type: ignore[arg-type]


def test_incomplete_messages_do_not_count() -> None:
    queue = MessageQueue(max_queue=1)
    # Fragments of a message in progress never block: only complete messages count.
    for _ in range(5):
        queue.put(binary(b"x", fin=False) if _ == 0 else cont(b"x", fin=False))
    assert not queue.paused
    putter = Background(lambda: queue.put(cont(b"x")))
    assert wait_for(lambda: queue.paused)
    assert queue.get(0) == b"xxxxxx"
    putter.join()
    queue.close()


def test_pauses_counts_each_pause() -> None:
    queue = MessageQueue(max_queue=1)
    for i in range(3):
        putter = Background(lambda: queue.put(text("m")))
        assert wait_for(lambda: queue.paused)
        assert queue.pauses == i + 1
        assert queue.get(0) == "m"
        putter.join()
        assert not queue.paused
    queue.close()


def test_resume_lifts_the_limit() -> None:
    queue = MessageQueue(max_queue=1)
    putter = Background(lambda: queue.put(text("one")))
    assert wait_for(lambda: queue.paused)
    queue.resume()
    putter.join()
    assert not queue.paused
    # For good: put() never blocks again.
    for _ in range(10):
        queue.put(text("more"))
    assert len(queue) == 11
    assert queue.max_queue is None
    queue.close()


def test_close_wakes_blocked_get(queue: MessageQueue) -> None:
    getter = Background(lambda: queue.get(TIMEOUT))
    assert wait_for(lambda: queue._getting)
    queue.close()
    with pytest.raises(EOFError):
        getter.join()


def test_close_wakes_blocked_get_iter(queue: MessageQueue) -> None:
    queue.put(text("a", fin=False))

    def consume() -> list[Data]:
        received: list[Data] = []
        for fragment in queue.get_iter():
            received.append(fragment)
        return received

    consumer = Background(consume)
    assert wait_for(lambda: not queue._frames)
    queue.close()
    with pytest.raises(EOFError):
        consumer.join()


def test_close_drains_complete_messages_first(queue: MessageQueue) -> None:
    queue.put(text("one"))
    queue.put(text("two"))
    queue.put(text("incomplete", fin=False))
    queue.close()
    assert queue.closed
    assert queue.get(0) == "one"
    assert queue.get(TIMEOUT) == "two"
    # What's left can never complete: the end of the queue.
    with pytest.raises(EOFError):
        queue.get(TIMEOUT)
    with pytest.raises(EOFError):
        queue.put(text("too late"))


def test_close_wakes_blocked_put() -> None:
    queue = MessageQueue(max_queue=1)
    putter = Background(lambda: queue.put(text("one")))
    assert wait_for(lambda: queue.paused)
    queue.close()
    putter.join()
    assert not queue.paused
    # The message put before the close can still be taken.
    assert queue.get(0) == "one"
    with pytest.raises(EOFError):
        queue.get(0)


# Memory of idle connections.


def test_idle_queue_is_small() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        queues = [MessageQueue() for _ in range(100)]
        size = (tracemalloc.get_traced_memory()[0] - before) / len(queues)
    finally:
        tracemalloc.stop()
    # The object and its lock; an empty deque alone takes 760 bytes.
    assert size < 500


def test_queues_that_never_held_a_frame_share_nothing() -> None:
    first, second = MessageQueue(), MessageQueue()
    first.put(Frame(Opcode.TEXT, b"one"))
    assert len(first) == 1
    assert len(second) == 0
    assert second.take() is None
    second.put(Frame(Opcode.BINARY, b"two"))
    assert first.take() == "one"
    assert second.take() == b"two"
    assert MessageQueue().take() is None
