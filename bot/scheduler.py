"""Who goes next: fair round-robin across users, concurrency caps and KIE's create rate.

Pure logic with an injected clock; the runner owns the only instance and asks it
`take()` whenever something may have changed (a push, a release, `wait_time()` elapsing).

Fairness: users take turns. Each user's own tasks are served first-in first-out, and after a
user is served they move to the back of the ring, so one member queueing ten images cannot
make the next member wait for all ten. A user at their active cap is skipped (keeping their
place at the front for when a slot frees up) rather than blocking everyone behind them.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Ticket:
    task_id: str
    user_id: int


class Scheduler:
    def __init__(
        self,
        *,
        max_active: int,
        per_user: int,
        rate: int,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_active < 1 or per_user < 1 or rate < 1:
            raise ValueError("max_active, per_user and rate must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        self.max_active = max_active
        self.per_user = per_user
        self.rate = rate
        self.window = window
        self._clock = clock
        self._queues: dict[int, deque[str]] = {}  # user -> their queued tasks, FIFO
        self._ring: deque[int] = deque()  # users with queued tasks, next turn first
        self._queued: dict[str, int] = {}  # task -> user
        self._active: dict[str, int] = {}  # task -> user
        self._active_per_user: Counter[int] = Counter()
        self._takes: deque[float] = deque()  # clock times of recent takes
        self._paused_until: float | None = None

    # -- queue -----------------------------------------------------------------------------

    def push(self, task_id: str, user_id: int, *, front: bool = False) -> None:
        """Queue a task. front=True puts it (and its user) first: it is coming back after 429.

        A task that is active is released first. Pushing a task that is already queued does
        nothing, except that front=True moves it to the front.
        """
        self.release(task_id)
        if task_id in self._queued:
            if not front:
                return
            self._dequeue(task_id)
        queue = self._queues.get(user_id)
        if queue is None:
            queue = self._queues[user_id] = deque()
            self._ring.append(user_id)
        if front:
            queue.appendleft(task_id)
            self._ring.remove(user_id)
            self._ring.appendleft(user_id)
        else:
            queue.append(task_id)
        self._queued[task_id] = user_id

    def remove(self, task_id: str) -> None:
        """Forget a task, queued or active (cancelled, failed, finished). Idempotent."""
        self._dequeue(task_id)
        self.release(task_id)

    def _dequeue(self, task_id: str) -> None:
        user_id = self._queued.pop(task_id, None)
        if user_id is None:
            return
        queue = self._queues[user_id]
        queue.remove(task_id)
        if not queue:
            del self._queues[user_id]
            self._ring.remove(user_id)

    # -- taking ----------------------------------------------------------------------------

    def take(self) -> Ticket | None:
        """The next task to submit, or None. Marks it active and spends one create."""
        user_id = self.next_user()
        if user_id is None:
            return None
        now = self._clock()
        queue = self._queues[user_id]
        task_id = queue.popleft()
        del self._queued[task_id]
        self._ring.remove(user_id)
        if queue:
            self._ring.append(user_id)  # served: to the back of the ring
        else:
            del self._queues[user_id]
        self._active[task_id] = user_id
        self._active_per_user[user_id] += 1
        self._takes.append(now)
        return Ticket(task_id, user_id)

    def next_user(self) -> int | None:
        """Whose task take() would return now (None: it would return nothing); takes nothing."""
        now = self._clock()
        if self._pause_left(now) > 0 or len(self._active) >= self.max_active:
            return None
        self._prune(now)
        if len(self._takes) >= self.rate:
            return None
        return self._next_user(self._active_per_user)

    def mark_active(self, task_id: str, user_id: int) -> None:
        """Count a task as active without spending a create (resumed after a restart)."""
        self._dequeue(task_id)
        if task_id in self._active:
            return
        self._active[task_id] = user_id
        self._active_per_user[user_id] += 1

    def release(self, task_id: str) -> None:
        """The task is no longer active (finished, failed, or going back to the queue)."""
        user_id = self._active.pop(task_id, None)
        if user_id is None:
            return
        self._active_per_user[user_id] -= 1
        if self._active_per_user[user_id] <= 0:
            del self._active_per_user[user_id]

    def pause_until(self, t: float) -> None:
        """KIE answered 429: nothing is taken before clock time `t` (never shortens a pause)."""
        if self._paused_until is None or t > self._paused_until:
            self._paused_until = t

    def wait_time(self) -> float | None:
        """Seconds until take() could succeed: 0 if now; None if nothing to take or only the
        caps block (a release or push will change that, so wake up then instead)."""
        if not self._queued:
            return None
        if len(self._active) >= self.max_active:
            return None
        if self._next_user(self._active_per_user) is None:
            return None
        now = self._clock()
        self._prune(now)
        wait = self._pause_left(now)
        if len(self._takes) >= self.rate:
            frees_at = self._takes[len(self._takes) - self.rate] + self.window
            wait = max(wait, frees_at - now)
        return max(0.0, wait)

    # -- positions -------------------------------------------------------------------------

    def positions(self) -> dict[str, int]:
        """1-based place of every queued task in the order take() would serve them.

        Exact as long as nothing is pushed or released meanwhile; when every user still
        waiting is at their cap, each is assumed to get one slot back (a release).
        """
        queues = {user: deque(tasks) for user, tasks in self._queues.items()}
        ring = deque(self._ring)
        active = Counter(self._active_per_user)
        order: dict[str, int] = {}
        while ring:
            user_id = next((u for u in ring if active[u] < self.per_user), None)
            if user_id is None:
                for u in ring:
                    active[u] = max(0, min(active[u], self.per_user) - 1)
                continue
            queue = queues[user_id]
            order[queue.popleft()] = len(order) + 1
            active[user_id] += 1
            ring.remove(user_id)
            if queue:
                ring.append(user_id)
        return order

    def position(self, task_id: str) -> int | None:
        if task_id not in self._queued:
            return None
        return self.positions()[task_id]

    # -- state -----------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._queued)

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def paused_until(self) -> float | None:
        """The clock time before which nothing is taken, or None when not paused."""
        if self._pause_left(self._clock()) > 0:
            return self._paused_until
        return None

    def is_queued(self, task_id: str) -> bool:
        return task_id in self._queued

    def is_active(self, task_id: str) -> bool:
        return task_id in self._active

    # -- internals -------------------------------------------------------------------------

    def _next_user(self, active: Counter[int]) -> int | None:
        return next((u for u in self._ring if active[u] < self.per_user), None)

    def _pause_left(self, now: float) -> float:
        if self._paused_until is None:
            return 0.0
        left = self._paused_until - now
        if left <= 0:
            self._paused_until = None
            return 0.0
        return left

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        while self._takes and self._takes[0] <= horizon:
            self._takes.popleft()
