"""The scheduler: round-robin fairness, caps, the sliding create window and 429 pauses."""

from __future__ import annotations

import pytest

from bot.scheduler import Scheduler, Ticket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    *, max_active: int = 100, per_user: int = 100, rate: int = 1000, window: float = 10.0
) -> tuple[Scheduler, FakeClock]:
    clock = FakeClock()
    sched = Scheduler(
        max_active=max_active, per_user=per_user, rate=rate, window=window, clock=clock
    )
    return sched, clock


def drain(sched: Scheduler) -> list[str]:
    out: list[str] = []
    while (ticket := sched.take()) is not None:
        out.append(ticket.task_id)
    return out


def test_late_user_is_served_second() -> None:
    """With A's 10 tasks queued before B's one, B's task is taken second, not eleventh."""
    sched, _ = make()
    for i in range(10):
        sched.push(f"a{i}", 1)
    sched.push("b0", 2)
    assert drain(sched) == ["a0", "b0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"]


def test_round_robin_three_users_each_fifo() -> None:
    """Three users interleave one task each per turn; each user's tasks stay in FIFO order."""
    sched, _ = make()
    for t, u in [("a0", 1), ("a1", 1), ("b0", 2), ("a2", 1), ("c0", 3), ("b1", 2), ("c1", 3)]:
        sched.push(t, u)
    assert drain(sched) == ["a0", "b0", "c0", "a1", "b1", "c1", "a2"]


def test_user_who_rejoins_goes_to_back_of_ring() -> None:
    """A user whose queue emptied and who pushes again waits behind users already waiting."""
    sched, _ = make()
    sched.push("a0", 1)
    sched.push("b0", 2)
    sched.push("b1", 2)
    assert sched.take() == Ticket("a0", 1)
    sched.push("c0", 3)
    sched.push("a1", 1)
    assert drain(sched) == ["b0", "c0", "a1", "b1"]


def test_ticket_carries_user() -> None:
    """take() returns a Ticket with the task and its user, and marks the task active."""
    sched, _ = make()
    sched.push("t", 42)
    assert sched.take() == Ticket("t", 42)
    assert sched.active == 1 and sched.queued == 0
    assert sched.is_active("t") and not sched.is_queued("t")
    assert sched.take() is None


def test_per_user_cap_skips_user_without_blocking_others() -> None:
    """A user at their active cap is skipped and others are served; a release lets them back."""
    sched, _ = make(per_user=1)
    sched.push("a0", 1)
    sched.push("a1", 1)
    sched.push("b0", 2)
    sched.push("b1", 2)
    assert drain(sched) == ["a0", "b0"]
    assert sched.wait_time() is None  # only caps block
    sched.release("b0")
    assert drain(sched) == ["b1"]
    sched.release("a0")
    assert drain(sched) == ["a1"]


def test_capped_user_keeps_priority_when_slot_frees() -> None:
    """A user skipped because of their cap is served first once one of their tasks finishes."""
    sched, _ = make(per_user=1)
    sched.push("a0", 1)
    sched.push("a1", 1)
    sched.push("b0", 2)
    sched.push("b1", 2)
    sched.push("b2", 2)
    assert sched.take() == Ticket("a0", 1)
    assert sched.take() == Ticket("b0", 2)
    sched.release("b0")
    assert sched.take() == Ticket("b1", 2)  # A capped, B goes again
    sched.release("a0")
    sched.release("b1")
    assert sched.take() == Ticket("a1", 1)  # A had been waiting longer in the ring


def test_global_cap() -> None:
    """No more than max_active tasks are active at once; a release frees one slot."""
    sched, _ = make(max_active=2)
    for i in range(4):
        sched.push(f"t{i}", i)
    assert drain(sched) == ["t0", "t1"]
    assert sched.wait_time() is None
    sched.release("t0")
    assert sched.wait_time() == 0.0
    assert drain(sched) == ["t2"]
    assert sched.active == 2


def test_sliding_window_rate() -> None:
    """At most `rate` takes in any `window` seconds, measured as a sliding window."""
    sched, clock = make(rate=3, window=10.0)
    for i in range(6):
        sched.push(f"t{i}", i)
    assert sched.take() is not None  # t=1000
    clock.now = 1004.0
    assert sched.take() is not None
    assert sched.take() is not None
    assert sched.take() is None
    assert sched.wait_time() == pytest.approx(6.0)  # the t=1000 take expires at 1010
    clock.now = 1009.9
    assert sched.take() is None
    clock.now = 1010.0
    assert sched.take() is not None
    assert sched.take() is None
    assert sched.wait_time() == pytest.approx(4.0)  # the two 1004 takes expire at 1014
    clock.now = 1014.0
    assert len(drain(sched)) == 2


def test_releases_do_not_refund_the_rate_window() -> None:
    """Releasing a task does not give back its create: the window counts creates, not actives."""
    sched, clock = make(rate=1, window=10.0)
    sched.push("a", 1)
    sched.push("b", 2)
    assert sched.take() == Ticket("a", 1)
    sched.release("a")
    assert sched.take() is None
    clock.now += 10
    assert sched.take() == Ticket("b", 2)


def test_pause_until() -> None:
    """After a 429 pause nothing is taken before the given time, whatever the other budgets."""
    sched, clock = make()
    sched.push("a", 1)
    sched.pause_until(1030.0)
    assert sched.paused_until == 1030.0
    assert sched.take() is None
    assert sched.wait_time() == pytest.approx(30.0)
    sched.pause_until(1010.0)  # never shortens
    assert sched.paused_until == 1030.0
    clock.now = 1030.0
    assert sched.paused_until is None
    assert sched.wait_time() == 0.0
    assert sched.take() == Ticket("a", 1)


def test_wait_time_empty_queue_is_none() -> None:
    """wait_time() is None with an empty queue, even while paused."""
    sched, _ = make()
    assert sched.wait_time() is None
    sched.pause_until(2000.0)
    assert sched.wait_time() is None


def test_wait_time_pause_and_rate_take_the_later() -> None:
    """wait_time() is the later of the pause and the window freeing a create."""
    sched, _ = make(rate=1, window=10.0)
    sched.push("a", 1)
    sched.push("b", 2)
    sched.take()
    sched.pause_until(1003.0)
    assert sched.wait_time() == pytest.approx(10.0)
    sched.pause_until(1025.0)
    assert sched.wait_time() == pytest.approx(25.0)


def test_front_requeue_after_429() -> None:
    """A task pushed back with front=True (after a 429) is the next one served, same ticket."""
    sched, clock = make(rate=100)
    for t, u in [("a0", 1), ("a1", 1), ("b0", 2), ("c0", 3)]:
        sched.push(t, u)
    first = sched.take()
    assert first == Ticket("a0", 1)
    sched.push("a0", 1, front=True)  # releases it and puts it first
    assert sched.active == 0
    sched.pause_until(clock.now + 5)
    assert sched.position("a0") == 1
    clock.now += 5
    assert drain(sched) == ["a0", "b0", "c0", "a1"]


def test_push_duplicate_is_noop_and_front_moves() -> None:
    """Pushing an already-queued task does not duplicate it; front=True moves it first."""
    sched, _ = make()
    sched.push("a0", 1)
    sched.push("a1", 1)
    sched.push("a0", 1)
    assert sched.queued == 2
    sched.push("a1", 1, front=True)
    assert drain(sched) == ["a1", "a0"]


def test_remove_queued_and_active() -> None:
    """remove() drops a task from the queue or the active set, and is idempotent."""
    sched, _ = make(max_active=1)
    sched.push("a0", 1)
    sched.push("b0", 2)
    sched.push("b1", 2)
    assert sched.take() == Ticket("a0", 1)
    sched.remove("b0")
    sched.remove("b0")
    assert sched.position("b0") is None
    assert sched.take() is None  # a0 still holds the only slot
    sched.remove("a0")
    sched.remove("unknown")
    assert sched.active == 0
    assert drain(sched) == ["b1"]
    assert sched.queued == 0


def test_release_is_idempotent() -> None:
    """Releasing twice (or a task never taken) does not free a second slot."""
    sched, _ = make(per_user=1)
    sched.push("a0", 1)
    sched.push("a1", 1)
    sched.push("a2", 1)
    assert sched.take() == Ticket("a0", 1)
    sched.release("a0")
    sched.release("a0")
    sched.release("zzz")
    assert sched.take() == Ticket("a1", 1)
    assert sched.take() is None


def test_positions_match_take_order() -> None:
    """positions() predicts the exact order in which take() then serves the queue."""
    sched, _ = make()
    for t, u in [("a0", 1), ("a1", 1), ("a2", 1), ("b0", 2), ("c0", 3), ("c1", 3), ("b1", 2)]:
        sched.push(t, u)
    sched.take()  # a0 served: A goes to the back
    predicted = sched.positions()
    assert sched.position("a1") == predicted["a1"]
    served = drain(sched)
    assert sorted(predicted, key=predicted.__getitem__) == served
    assert served == ["b0", "c0", "a1", "b1", "c1", "a2"]


def test_positions_with_per_user_cap_match_take_order() -> None:
    """With a user at their cap, positions() still lists the order take() serves (with releases)."""
    sched, _ = make(per_user=1)
    for t, u in [("a0", 1), ("a1", 1), ("a2", 1), ("b0", 2)]:
        sched.push(t, u)
    assert sched.take() == Ticket("a0", 1)
    predicted = sched.positions()
    order = sorted(predicted, key=predicted.__getitem__)
    served: list[str] = []
    while (ticket := sched.take()) is not None or sched.active:
        if ticket is None:
            for task in ["a0", *served]:
                sched.release(task)
            continue
        served.append(ticket.task_id)
    assert order == served == ["b0", "a1", "a2"]


def test_position_unknown_is_none() -> None:
    """position() is None for a task that is not queued (never pushed, or already taken)."""
    sched, _ = make()
    sched.push("a", 1)
    assert sched.position("a") == 1
    sched.take()
    assert sched.position("a") is None
    assert sched.position("zzz") is None
    assert sched.positions() == {}


def test_invalid_limits_rejected() -> None:
    """Zero caps, rates or windows are refused at construction."""
    with pytest.raises(ValueError):
        Scheduler(max_active=0, per_user=1, rate=1)
    with pytest.raises(ValueError):
        Scheduler(max_active=1, per_user=1, rate=1, window=0)


def test_mark_active_counts_against_caps_without_spending_rate() -> None:
    """mark_active() (a task resumed after restart) takes a cap slot but no create budget."""
    sched, _ = make(per_user=1, rate=1)
    sched.push("a0", 1)
    sched.push("b0", 2)
    sched.mark_active("a0", 1)
    sched.mark_active("a0", 1)  # idempotent
    assert sched.active == 1 and sched.queued == 1
    assert sched.is_active("a0") and not sched.is_queued("a0")
    assert sched.take() == Ticket("b0", 2)  # the rate budget was still whole
    sched.push("a1", 1)
    assert sched.take() is None
    sched.release("a0")
    assert sched.positions() == {"a1": 1}
