"""The poll schedule (bot.polling.next_poll_delay) and the per-model estimate it is built on
(bot.durations): record-info calls per task and how late a finish is seen, computed by walking
the schedule (pure: no clock, no I/O)."""

from __future__ import annotations

import statistics

import pytest
from ledger.test_sqlite_ledger import make_task

from bot.durations import ModelDurations
from bot.flux import MAX, PRO
from bot.ledger import Task, TaskParams, TaskState
from bot.lifecycle.events import Policy
from bot.polling import next_poll_delay
from bot.status import TYPICAL_SECONDS

BASE = 2.0  # POLL_INTERVAL_SECONDS' default
LATENCY = 0.01  # a record-info round trip on the machine's loopback


def walk(
    finish: float,
    estimate: float,
    *,
    base: float = BASE,
    guessed: bool = False,
    early: float | None = None,
) -> tuple[int, float]:
    """(record-info calls, seconds from the finish to the call that sees it) for a task
    finishing `finish` seconds after submission."""
    elapsed, calls = 0.0, 0
    while True:
        elapsed += next_poll_delay(elapsed, estimate, base, guessed=guessed, early=early)
        elapsed += LATENCY
        calls += 1
        if elapsed >= finish:
            return calls, elapsed - finish


def spread(center: float, share: float, n: int = 401) -> list[float]:
    """`n` finishes evenly across center ± share."""
    low = center * (1 - share)
    return [low + 2 * center * share * i / (n - 1) for i in range(n)]


@pytest.mark.parametrize("estimate", [19.4, 20.0, 20.4])
def test_20_s_tasks_cost_at_most_6_calls_seen_within_half_a_second_warm(estimate: float) -> None:
    """Warm (the median of finished 20-s tasks, off by up to 2-3 %; their fastest tenth took
    18.4 s), tasks of 20 s ± 10 %: each ≤ 6 record-info calls, detection p50 ≤ 0.5 s."""
    walks = [walk(t, estimate, early=18.4) for t in spread(20.0, 0.1)]
    calls, late = [c for c, _ in walks], [d for _, d in walks]
    assert (max(calls) <= 6, statistics.median(late) <= 0.5) == (True, True)


def test_20_s_tasks_cost_at_most_6_calls_seen_within_half_a_second_cold() -> None:
    """Cold (no finished task yet: Pro's typical time stands in, with a look halfway for a
    fast task), the same tasks: the same bounds."""
    guess = TYPICAL_SECONDS[PRO]
    walks = [walk(t, guess, guessed=True) for t in spread(20.0, 0.1)]
    calls, late = [c for c, _ in walks], [d for _, d in walks]
    assert (max(calls) <= 6, statistics.median(late) <= 0.5) == (True, True)


def test_short_and_long_tasks_warm() -> None:
    """Warm 5-s and 60-s tasks: no more calls than before the schedule changed (3 and 8), each
    seen within the dense gap (0.5 s and 2 s)."""
    short, long = walk(5.0, 5.3, early=5.0), walk(60.0, 60.5, early=59.0)
    assert (short[0] <= 3, short[1] <= 0.5, long[0] <= 8, long[1] <= 2.0) == (
        True,
        True,
        True,
        True,
    )


def test_a_guess_never_holds_a_fast_task_long() -> None:
    """A guessed 20 s against a 0.3-s task (the simulator in tests, POLL_INTERVAL_SECONDS=0.2):
    the first look comes within 5 base intervals."""
    calls, late = walk(0.3, TYPICAL_SECONDS[PRO], base=0.2, guessed=True)
    assert (calls, round(late, 2)) == (1, 0.71)


def _done(model: str, duration: float) -> Task:
    return make_task(f"t{duration}", created=0.0).with_changes(
        params=TaskParams(prompt="p", model=model),
        state=TaskState.DONE,
        submitted_at=100.0,
        completed_at=100.0 + duration,
    )


def test_each_model_guesses_until_three_of_its_own_tasks_finish() -> None:
    """Max's guess holds while only Pro has history; three finished Max tasks replace it."""
    durations = ModelDurations()
    durations.load({PRO: [9.0, 10.0, 11.0]})
    before = durations.policy(Policy(), MAX)
    for seconds in (30.0, 31.0, 32.0):
        durations.finished(_done(MAX, seconds))
    after = durations.policy(Policy(), MAX)
    assert (
        durations.estimate(PRO),
        (before.estimate, before.estimate_guessed),
        (after.estimate, after.estimate_guessed),
    ) == ((10.0, False), (TYPICAL_SECONDS[MAX], True), (31.0, False))


def test_a_task_much_faster_than_usual_is_seen_at_the_early_look() -> None:
    """The model's fastest tenth took 9 s, most 20 s: a 9-s task is seen at the look at 9 s,
    not at the window 9 s later."""
    calls, late = walk(8.9, 20.0, early=9.0)
    assert (calls, round(late, 2)) == (1, 0.11)


def test_members_are_never_shown_the_guess() -> None:
    """The status shows a model's estimate from finished tasks only."""
    assert ModelDurations().measured(PRO) is None


def test_a_batchs_first_finishers_do_not_set_the_estimate() -> None:
    """Ten tasks sent together at 100.0; at 118.6 the three shortest have finished and seven
    still run: the guess stands (the three alone would say 18.49 s), and once two more
    finish at 18.66 and 18.99 s, the estimate is the fifth of ten."""
    now = [118.6]
    running = [100.0] * 7

    def generating_since(model: str) -> list[float]:
        return list(running) if model == PRO else []

    durations = ModelDurations(generating_since, lambda: now[0])
    for seconds in (18.42, 18.49, 18.57):
        durations.finished(_done(PRO, seconds))
    first = durations.estimate(PRO)
    now[0] = 119.0
    del running[:2]
    for seconds in (18.66, 18.99):
        durations.finished(_done(PRO, seconds))
    seconds, guessed = durations.estimate(PRO)
    assert (first, (round(seconds, 2), guessed)) == ((TYPICAL_SECONDS[PRO], True), (18.99, False))
