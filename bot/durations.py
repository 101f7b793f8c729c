"""How long each model's tasks take: the estimate the poll schedule (bot.polling) is built on.

Read from the ledger's recent finished tasks at start (so it survives restarts) and kept
current as tasks finish here; before a model has three finished tasks, its typical time
(bot.status.TYPICAL_SECONDS) stands in.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from bot.ledger import Task
from bot.lifecycle.events import Policy
from bot.status import early_duration, model_estimate

DURATION_SAMPLES = 50  # per model: the estimate is their median
# An estimate counting running tasks is made again after this long (monotonic seconds): they
# have run longer since.
RUNNING_FRESH = 0.5


def _none_running(model: str) -> list[float]:
    return []


class ModelDurations:
    """Each model's recent durations (submission to KIE's outcome), read from the ledger at
    start and kept current as tasks finish, without a ledger read per task."""

    def __init__(
        self,
        running: Callable[[str], list[float]] = _none_running,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`running(model)`: when the model's tasks still generating here were submitted
        (unix times, as `clock`). Until a model has DURATION_SAMPLES finished tasks they
        count in its estimate (bot.status.estimate_duration); after, the median alone is
        the estimate (a batch's shortest are then a few among many)."""
        self._samples: dict[str, deque[float]] = {}
        self._running = running
        self._clock = clock
        # model -> (monotonic time made, or None: it stands until the next finish; estimate)
        self._estimates: dict[str, tuple[float | None, tuple[float, bool, float | None]]] = {}

    def load(self, durations: dict[str, list[float]]) -> None:
        for model, newest_first in durations.items():
            kept = self._of(model)
            kept.extend(reversed(newest_first[:DURATION_SAMPLES]))
        self._estimates.clear()

    def finished(self, task: Task) -> None:
        if task.submitted_at is None or task.completed_at is None:
            return
        duration = task.completed_at - task.submitted_at
        if duration >= 0:
            self._of(task.params.model).append(duration)
            self._estimates.pop(task.params.model, None)

    def estimate(self, model: str) -> tuple[float, bool]:
        """`bot.status.model_estimate` for `model`: (seconds, guessed)."""
        seconds, guessed, _ = self._of_model(model)
        return seconds, guessed

    def measured(self, model: str) -> float | None:
        """The estimate members are shown: from finished tasks only, never the guess."""
        seconds, guessed = self.estimate(model)
        return None if guessed else seconds

    def policy(self, base: Policy, model: str) -> Policy:
        seconds, guessed, early = self._of_model(model)
        return replace(base, estimate=seconds, estimate_guessed=guessed, estimate_early=early)

    def _of_model(self, model: str) -> tuple[float, bool, float | None]:
        now = time.monotonic()
        made = self._estimates.get(model)
        if made is not None and (made[0] is None or now - made[0] < RUNNING_FRESH):
            return made[1]
        samples = self._samples.get(model, ())
        few = len(samples) < DURATION_SAMPLES
        unix = self._clock()
        running = [unix - submitted for submitted in self._running(model)] if few else []
        estimate = (*model_estimate(model, samples, running), early_duration(samples))
        self._estimates[model] = (now if few else None, estimate)
        return estimate

    def _of(self, model: str) -> deque[float]:
        return self._samples.setdefault(model, deque(maxlen=DURATION_SAMPLES))
