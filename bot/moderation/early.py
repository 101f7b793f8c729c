"""Admission answered from memory, before the interaction is acknowledged (no I/O).

`Moderation.admit` and `screen` stay the authority, run right after the acknowledgement; these
answer the same questions from `AdmissionMemory` so that what memory already knows is refused
privately up front, and everything else is answered at once (see bot.moderation.memory).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bot.ledger import ModerationStore
from bot.moderation import checks, policy
from bot.moderation.credits import OUT_KEY, CreditLedger
from bot.moderation.memory import GLOBAL_REFRESH, AdmissionMemory
from bot.moderation.operator_rules import OperatorRules
from bot.moderation.policy import GuildSettings
from bot.supervisor import Supervisor

log = logging.getLogger("bot.moderation.service")


class EarlyAdmission:
    def __init__(
        self,
        *,
        memory: AdmissionMemory,
        operator: OperatorRules,
        ledger: CreditLedger,
        cost_for: Callable[[str], float],
        clock: Callable[[], float],
    ) -> None:
        self.memory = memory
        self._operator = operator
        self._ledger: ModerationStore = ledger
        self._meta = ledger
        self._cost_for = cost_for
        self._clock = clock
        self._facts = checks.MemoryFacts(memory, operator)

    async def start(self, supervisor: Supervisor) -> None:
        """`load`, then keep memory current in the background."""
        await self.load()
        supervisor.start("admission_memory", self.keep_current)

    async def load(self) -> None:
        """At start, before any interaction: the servers' settings and the global marks."""
        self.memory.load_settings(
            (guild_id, GuildSettings.from_json(data))
            for guild_id, data in await self._ledger.all_guild_settings()
        )
        await self.refresh()

    async def refresh(self) -> None:
        """Re-read what any process may write for every server: the operator's blocks and the
        out-of-credits hold."""
        blocked = {block.user_id for block in await self._operator.blocks()}
        if blocked != self.memory.operator_blocked:
            log.info("operator blocks in force: %d", len(blocked))
        self.memory.note_operator_blocks(blocked)
        self.memory.out_of_credits_at = _as_time(await self._meta.get_meta(OUT_KEY))
        self.memory.forget_days_before(policy.day_key(self._clock()))

    async def keep_current(self) -> None:
        """Background task: `refresh` every GLOBAL_REFRESH seconds, the bound on how long an
        operator's block (or its lifting) made by the CLI goes unseen here."""
        while True:
            await asyncio.sleep(GLOBAL_REFRESH)
            await self.refresh()

    def admit(self, who: checks.Asker) -> GuildSettings:
        """`Moderation.admit`'s checks (bot.moderation.checks), from memory. Raise Denied."""
        return checks.at_once(checks.admit(self._facts, who, now=self._clock()))

    def screen(self, asked: checks.Screening) -> None:
        """`Moderation.screen`'s checks from memory (a quota not known yet is left to it)."""
        checks.at_once(
            checks.screen(self._facts, asked, cost_for=self._cost_for, now=self._clock())
        )


def _as_time(raw: str | None) -> float | None:
    """A unix time kept in meta (an empty or bad value: none)."""
    try:
        return float(raw) if raw else None
    except ValueError:
        return None
