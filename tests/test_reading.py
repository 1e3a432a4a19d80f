"""Who reads a connection's socket: the state machine, driven by a fake clock, no threads."""

from __future__ import annotations

import pytest

from syncws.reading import (
    FINISH,
    HAND_BACK_DELAY,
    POKE,
    RECV_HAND_BACK_DELAY,
    SCHEDULE,
    START,
    WAKE,
    Holder,
    ReaderThread,
    ReadOwnership,
)


class Clock:
    """A fake :func:`time.monotonic`: it moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def new(clock: Clock, *, events: bool = False) -> tuple[ReadOwnership, int]:
    state = ReadOwnership()
    return state, state.start(clock.now, events=events)


def consumer_reads(state: ReadOwnership, clock: Clock) -> int:
    """The consumer claims the socket, reads once and lets go."""
    assert state.consumer_claim()
    return state.consumer_release(clock.now)


# Starting.


def test_new_connection_without_frames_checks_soon(clock: Clock) -> None:
    state, actions = new(clock)
    assert actions == SCHEDULE
    assert state.check_at == clock.now + HAND_BACK_DELAY
    assert (state.holder, state.thread) == (Holder.NOBODY, ReaderThread.ABSENT)


def test_frames_with_the_handshake_go_to_a_reader_thread_first(clock: Clock) -> None:
    state, actions = new(clock, events=True)
    assert actions == START
    assert (state.holder, state.thread) == (Holder.READER, ReaderThread.ACTIVE)
    # Until the thread has queued them, the consumer must not read: later frames would
    # overtake them.
    assert not state.consumer_claim()


def test_nobody_receives_the_check_starts_a_reader_thread(clock: Clock) -> None:
    state, _ = new(clock)
    assert state.check(clock.advance(HAND_BACK_DELAY)) == START
    assert state.thread is ReaderThread.ACTIVE
    assert state.reader_turn() is True
    assert state.holder is Holder.READER


def test_a_check_that_runs_early_asks_for_another(clock: Clock) -> None:
    state, _ = new(clock)
    due = state.check_at
    assert state.check(clock.advance(HAND_BACK_DELAY / 2)) == SCHEDULE
    assert state.check_at == due
    assert state.check(clock.advance(HAND_BACK_DELAY / 2)) == START


def test_one_check_at_a_time(clock: Clock) -> None:
    state, _ = new(clock)
    assert state.consumer_claim()
    # The consumer's release moves the check later: no second one is asked for.
    assert state.consumer_release(clock.now) == 0
    assert state.check_at == clock.now + RECV_HAND_BACK_DELAY
    assert state.check(clock.advance(HAND_BACK_DELAY)) == SCHEDULE
    assert state.check(clock.advance(RECV_HAND_BACK_DELAY)) == START


# The consumer reads itself while it keeps receiving.


def test_consumer_keeps_the_socket_while_it_receives(clock: Clock) -> None:
    state, _ = new(clock)
    for _ in range(100):
        consumer_reads(state, clock)
        # Away for less than the hand-back delay: the check finds it has come back.
        clock.advance(RECV_HAND_BACK_DELAY / 2)
        assert state.consumer_claim()
        assert state.check(clock.now) == 0  # the consumer holds the socket
        state.consumer_release(clock.now)
    assert state.thread is ReaderThread.ABSENT


def test_consumer_gone_quiet_hands_reading_back(clock: Clock) -> None:
    state, _ = new(clock)
    consumer_reads(state, clock)
    assert state.check(clock.advance(RECV_HAND_BACK_DELAY)) == START
    assert state.reader_turn() is True
    # Now the consumer waits for the reader thread to hand it a message.
    assert not state.consumer_claim()


def test_reader_thread_that_waits_is_woken_when_the_consumer_lets_go(clock: Clock) -> None:
    state, _ = new(clock)
    assert state.consumer_claim()
    # A ping is sent while the consumer reads: a thread starts, and waits for its turn.
    assert state.wake() == START
    assert state.reader_turn() is False
    assert state.consumer_release(clock.now) == WAKE
    assert state.reader_turn() is True


# The reader thread parks only when the consumer will come back for the socket.


def test_reader_parks_after_handing_a_complete_message(clock: Clock) -> None:
    state, _ = new(clock, events=True)
    actions = state.reader_release(clock.now, handed=True, waiting=False)
    assert actions == SCHEDULE
    assert state.thread is ReaderThread.PARKED
    assert state.reader_turn() is False
    # The consumer comes back for the next message and reads it itself.
    assert state.consumer_claim()


def test_reader_keeps_reading_when_no_message_was_handed(clock: Clock) -> None:
    state, _ = new(clock, events=True)
    assert state.reader_release(clock.now, handed=False, waiting=True) == 0
    assert state.thread is ReaderThread.ACTIVE
    assert state.reader_turn() is True


def test_reader_that_parks_wakes_a_consumer_still_waiting(clock: Clock) -> None:
    """A large message arrives with the handshake and the reader hands a first message over
    in the same chunk as the start of the next: the consumer, waiting for the rest, must read
    the socket itself at once, not wait for the hand-back check (the 250 ms stall)."""
    state, _ = new(clock, events=True)
    actions = state.reader_release(clock.now, handed=True, waiting=True)
    assert actions == SCHEDULE | POKE
    assert state.consumer_claim()  # poked, it reads without waiting for anything


def test_reader_never_parks_once_closing(clock: Clock) -> None:
    state, _ = new(clock, events=True)
    assert state.start_closing() == 0  # already active
    assert state.reader_release(clock.now, handed=True, waiting=False) == 0
    assert state.thread is ReaderThread.ACTIVE
    assert state.reader_turn() is True


def test_closing_starts_no_thread(clock: Clock) -> None:
    # The thread that closes reads the socket itself while it waits for the end.
    state, _ = new(clock)
    assert state.start_closing() == 0
    assert state.thread is ReaderThread.ABSENT
    assert state.consumer_claim()


def test_closing_unparks_the_reader(clock: Clock) -> None:
    state, _ = new(clock, events=True)
    state.reader_release(clock.now, handed=True, waiting=False)
    assert state.start_closing() == WAKE
    assert state.reader_turn() is True


def test_ping_unparks_the_reader(clock: Clock) -> None:
    state, _ = new(clock, events=True)
    state.reader_release(clock.now, handed=True, waiting=False)
    assert state.wake() == WAKE
    assert state.thread is ReaderThread.ACTIVE
    assert state.wake() == 0


def test_parked_reader_takes_over_at_the_check(clock: Clock) -> None:
    state, _ = new(clock, events=True)
    state.reader_release(clock.now, handed=True, waiting=False)
    assert state.check(clock.advance(RECV_HAND_BACK_DELAY)) == WAKE
    assert state.reader_turn() is True


@pytest.mark.parametrize("thread", [ReaderThread.PARKED, ReaderThread.ACTIVE])
def test_idle_reader_thread_ends_only_when_the_consumer_reads(
    clock: Clock, thread: ReaderThread
) -> None:
    state, _ = new(clock, events=True)
    state.reader_release(clock.now, handed=thread is ReaderThread.PARKED, waiting=False)
    if thread is ReaderThread.ACTIVE:
        # Active, nobody holds the socket: it reads rather than ends.
        assert state.reader_idle() is False
        assert state.consumer_claim()
    assert state.reader_idle() is True
    assert state.thread is ReaderThread.ABSENT


# The end.


def test_end_seen_by_the_consumer_finishes_when_it_lets_go(clock: Clock) -> None:
    state, _ = new(clock)
    assert state.consumer_claim()
    assert state.mark_done() == 0  # it holds the socket
    assert state.consumer_release(clock.now) == FINISH
    assert state.finishing
    assert not state.consumer_claim()


def test_end_seen_by_the_reader_thread(clock: Clock) -> None:
    state, _ = new(clock, events=True)
    assert state.reader_exit() == FINISH
    assert (state.holder, state.thread, state.done) == (Holder.NOBODY, ReaderThread.ABSENT, True)


def test_abort_while_the_reader_waits_wakes_it_and_finishes_once(clock: Clock) -> None:
    state, _ = new(clock, events=True)
    state.reader_release(clock.now, handed=True, waiting=False)
    assert state.mark_done() == WAKE | FINISH
    assert state.reader_turn() is None
    assert state.reader_exit() == 0  # already finishing


def test_abort_while_the_reader_reads_finishes_when_it_stops(clock: Clock) -> None:
    state, _ = new(clock, events=True)
    assert state.mark_done() == WAKE
    assert state.reader_release(clock.now, handed=False, waiting=False) == FINISH
    assert state.reader_exit() == 0


def test_reader_thread_that_cannot_start_ends_reading(clock: Clock) -> None:
    state, _ = new(clock)
    assert state.check(clock.advance(HAND_BACK_DELAY)) == START
    assert state.thread_failed() == FINISH
    assert state.done
    assert state.wake() == 0
    assert state.check(clock.advance(1)) == 0


def test_nothing_happens_after_the_end(clock: Clock) -> None:
    state, _ = new(clock)
    state.mark_done()
    assert not state.consumer_claim()
    assert state.wake() == 0
    assert state.start_closing() == 0
    assert state.check(clock.advance(10)) == 0
    assert "done finishing" in repr(state)


# The invariant, over random sequences of events: whenever nobody holds the socket and
# reading is not over, the reader thread is about to read, or a check is due.


def test_socket_is_never_left_unread() -> None:
    import random  # noqa: PLC0415

    for seed in range(200):
        rng = random.Random(seed)
        clock = Clock()
        state, _ = new(clock, events=rng.random() < 0.5)
        for _ in range(200):
            clock.advance(rng.random() * RECV_HAND_BACK_DELAY)
            choice = rng.randrange(7)
            if choice == 0 and state.holder is Holder.NOBODY:
                if state.consumer_claim():
                    state.consumer_release(clock.now)
            elif choice == 1 and state.holder is Holder.NOBODY:
                state.consumer_claim()
            elif choice == 2 and state.holder is Holder.CONSUMER:
                state.consumer_release(clock.now)
            elif choice == 3 and state.check_due:
                state.check(clock.now)
            elif choice == 4:
                state.wake()
            elif choice == 5 and state.reader_turn():
                state.reader_release(
                    clock.now, handed=rng.random() < 0.5, waiting=rng.random() < 0.5
                )
            elif choice == 6 and state.thread is not ReaderThread.ABSENT:
                state.reader_idle()
            if state.holder is Holder.NOBODY and not state.done:
                assert state.thread is ReaderThread.ACTIVE or state.check_due, (seed, state)
