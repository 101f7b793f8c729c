"""The admission checks, written once: who and where (`admit`), then what was asked (`screen`).

They read their facts through `AdmissionFacts`: `Moderation` asks the ledger (the authority,
after the interaction is answered), `EarlyAdmission` asks memory (before the answer, so it
must never wait: `at_once` runs it and fails loudly if it does).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bot.i18n import Text
from bot.ledger import Block, TaskKind, TaskParams
from bot.moderation import policy
from bot.moderation.credits import OUT_HOLD
from bot.moderation.memory import AdmissionMemory
from bot.moderation.operator_rules import OPERATOR_BLOCKED, OperatorRules, scope_of
from bot.moderation.policy import Denied, GuildSettings, Refusal, place_of
from bot.outcomes import MESSAGES, Outcome

T = TypeVar("T")


class AdmissionFacts(Protocol):
    async def operator_refusal(self, user_id: int, guild_id: int | None) -> Refusal | None:
        """The operator's block of the member, else (outside servers) the operator's rule
        against asking there."""

    async def out_of_credits(self, now: float) -> bool: ...

    async def block(self, scope: int, user_id: int, now: float) -> Block | None:
        """The member's block in `scope` in force at `now` (None: none, or not known)."""

    async def settings(self, guild_id: int | None) -> GuildSettings: ...

    async def usage(self, scope: int, user_id: int, day: str) -> tuple[float, float] | None:
        """(member, server) credits used that day; None: not known (the quota goes unchecked)."""


@dataclass(frozen=True)
class Asker:
    """Who asks and where: `user_id` in `guild_id` (None: outside servers), in `channel_id`
    (a thread's or forum post's own channel is `parent_id`)."""

    guild_id: int | None
    user_id: int
    channel_id: int
    parent_id: int | None = None


async def admit(facts: AdmissionFacts, who: Asker, *, now: float) -> GuildSettings:
    """The operator's blocks first, then whether the bot works outside servers, the bot's
    credits, the server's blocks and channels. Raise Denied."""
    refusal = await facts.operator_refusal(who.user_id, who.guild_id)
    if refusal is not None:
        raise Denied(refusal)
    if await facts.out_of_credits(now):
        raise Denied(Refusal(Text(MESSAGES[Outcome.OUT_OF_CREDITS]), "out_of_credits"))
    block = await facts.block(scope_of(who.guild_id), who.user_id, now)
    if block is not None:
        raise Denied(policy.blocked_refusal(block.until, block.reason))
    gs = await facts.settings(who.guild_id)
    refusal = policy.check_channel(gs, who.channel_id, who.parent_id)
    if refusal is not None:
        raise Denied(refusal)
    return gs


@dataclass(frozen=True)
class Screening:
    """What a request asks, to be screened: `count` images of `params` (of which `defaulted`
    were left unset) by `user_id` in `guild_id`, under the server's settings `gs`."""

    gs: GuildSettings
    guild_id: int | None
    user_id: int
    params: TaskParams
    kind: TaskKind
    defaulted: frozenset[str]
    count: int = 1


async def screen(
    facts: AdmissionFacts, asked: Screening, *, cost_for: Callable[[str], float], now: float
) -> TaskParams:
    """Server defaults, then the model, tolerance, word and quota checks (each image at
    `cost_for` its model). Returns the params to use; raise Denied."""
    gs, place = asked.gs, place_of(asked.guild_id)
    params = policy.apply_defaults(gs, asked.params, asked.kind, asked.defaulted)
    refusal = policy.check_params(gs, params, asked.kind, place=place)
    if refusal is not None:
        raise Denied(refusal)
    used = await facts.usage(scope_of(asked.guild_id), asked.user_id, policy.day_key(now))
    if used is not None:
        refusal = policy.check_quota(
            gs,
            member_used=used[0],
            server_used=used[1],
            cost=cost_for(params.model) * asked.count,
            now=now,
            place=place,
        )
        if refusal is not None:
            raise Denied(refusal)
    return params


def at_once(checks: Coroutine[Any, Any, T]) -> T:
    """Run checks whose facts are all in memory, to their end, without the event loop; a
    check that would wait (for I/O) is a bug here, and raises RuntimeError."""
    try:
        checks.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    checks.close()
    raise RuntimeError("an admission check from memory waited for I/O")


class MemoryFacts:
    """The facts as memory has them (bot.moderation.memory): never waits."""

    def __init__(self, memory: AdmissionMemory, operator: OperatorRules) -> None:
        self._memory = memory
        self._operator = operator

    async def operator_refusal(self, user_id: int, guild_id: int | None) -> Refusal | None:
        if user_id in self._memory.operator_blocked:
            return OPERATOR_BLOCKED
        return self._operator.outside_refusal() if guild_id is None else None

    async def out_of_credits(self, now: float) -> bool:
        out_at = self._memory.out_of_credits_at
        return out_at is not None and now - out_at < OUT_HOLD

    async def block(self, scope: int, user_id: int, now: float) -> Block | None:
        return self._memory.block_of(scope, user_id, now)

    async def settings(self, guild_id: int | None) -> GuildSettings:
        if guild_id is None:
            return self._operator.outside_settings()
        return self._memory.settings_for(guild_id)

    async def usage(self, scope: int, user_id: int, day: str) -> tuple[float, float] | None:
        return self._memory.usage_of(scope, user_id, day)
