"""Members' first answers before everything else.

Discord gives an interaction 3 seconds for its first answer, and a member waits for nothing else
as keenly. Under a burst (hundreds of commands in one go) the answers would queue behind the work
that follows earlier answers: the ledger writes, the status edits, the KIE creates. So that work
waits while interactions are still unanswered (at most `max_hold` seconds, so a steady stream
of commands cannot starve it), and the answers themselves go out a few at a time, over
connections kept open, instead of opening one connection each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterator

from bot.metrics import Metrics

# Answers on the wire at once: enough to keep Discord busy, few enough that a burst reuses
# kept-alive connections instead of opening hundreds.
ANSWERS_IN_FLIGHT = 8
# The longest other work waits for the answers ahead of it.
MAX_HOLD_SECONDS = 1.0
# The longest an answer waits for one of the `ANSWERS_IN_FLIGHT` places: when Discord answers
# slowly (a distant region), a queue of answers must not run into the 3 s.
MAX_PLACE_WAIT_SECONDS = 0.25


class AnswersFirst:
    """Counts interactions waiting for their first answer; other work asks `after_answers`."""

    def __init__(
        self,
        metrics: Metrics | None = None,
        *,
        in_flight: int = ANSWERS_IN_FLIGHT,
        max_hold: float = MAX_HOLD_SECONDS,
        max_place_wait: float = MAX_PLACE_WAIT_SECONDS,
    ) -> None:
        self._metrics = metrics
        self._unanswered = 0
        # Work waiting for the answers, in the order it asked; each leaves once it goes on.
        self._held: deque[asyncio.Future[None]] = deque()
        self._sending = asyncio.Semaphore(in_flight)
        self._max_hold = max_hold
        self._max_place_wait = max_place_wait

    @property
    def unanswered(self) -> int:
        return self._unanswered

    @contextlib.contextmanager
    def unanswered_interaction(self) -> Iterator[None]:
        """Around an interaction's handling until its first answer is sent (or given up)."""
        self._unanswered += 1
        try:
            yield
        finally:
            self._unanswered -= 1
            if self._unanswered == 0:
                for turn in self._held:
                    if not turn.done():
                        turn.set_result(None)

    @contextlib.asynccontextmanager
    async def sending(self) -> AsyncIterator[None]:
        """Around the request that carries a first answer: one of `in_flight` places, or none
        after `max_place_wait`."""
        try:
            await asyncio.wait_for(self._sending.acquire(), self._max_place_wait)
        except TimeoutError:
            yield
            return
        try:
            yield
        finally:
            self._sending.release()

    async def after_answers(self) -> None:
        """Return once no interaction waits for its first answer, or after `max_hold`; work
        held together goes on in the order it asked (the ledger writes keep the members'
        order), and work asking later goes after it."""
        if self._unanswered == 0 and not self._held:
            return
        turn = asyncio.get_running_loop().create_future()
        if self._unanswered == 0:
            turn.set_result(None)  # only behind work already released: after it, in order
        self._held.append(turn)
        self._show_held()
        try:
            await asyncio.wait([turn], timeout=self._max_hold)
        finally:
            self._held.remove(turn)
            self._show_held()

    def _show_held(self) -> None:
        if self._metrics is not None:
            self._metrics.held_for_answers.set(len(self._held))
