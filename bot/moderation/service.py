"""The moderation service: what the core asks before and after a task, and what moderators change.

`KontextService` calls `admit`/`screen` before a task exists and `charge` when it is written;
the runner calls `task_finished` (the `TaskHooks` protocol) when it ends, which refunds failures,
writes the mod-log entry, cools down repeat content-policy offenders and raises the credit alert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot import flux
from bot.config import Settings
from bot.i18n import Text
from bot.ledger import (
    Block,
    CoordinationStore,
    MetaStore,
    ModerationStore,
    Task,
    TaskParams,
    TaskState,
    TaskStore,
)
from bot.metrics import Metrics
from bot.moderation import checks, policy
from bot.moderation.credits import CreditWatch
from bot.moderation.early import EarlyAdmission
from bot.moderation.memory import AdmissionMemory
from bot.moderation.modlog import ModLogSink
from bot.moderation.operator_rules import OperatorRules, scope_of
from bot.moderation.policy import Denied, GuildSettings, Refusal, place_of
from bot.outcomes import Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageSummary:
    member_used: float
    member_allowance: float | None
    server_used: float
    server_budget: float | None
    open_tasks: int
    resets_at: float
    images_today: int = 0
    requests_today: int = 0  # a set of several images is one request


class ModerationLedger(ModerationStore, TaskStore, MetaStore, CoordinationStore, Protocol):
    """What moderation reads and writes: its own tables, the refund and deletion marks on
    tasks, open-task counts, and the credit alerts kept in meta (claimed by compare-and-set)."""


class Moderation:
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: ModerationLedger,
        metrics: Metrics,
        read_credits: Callable[[], Awaitable[float]],
        modlog: ModLogSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._modlog = modlog
        self._clock = clock
        self._credits = CreditWatch(
            settings=settings,
            ledger=ledger,
            metrics=metrics,
            read_credits=read_credits,
            modlog=modlog,
            clock=clock,
        )
        self.operator = OperatorRules(settings=settings, ledger=ledger, clock=clock)
        self.memory = AdmissionMemory()
        self._facts = _LedgerFacts(self, ledger)
        self.early = EarlyAdmission(
            memory=self.memory,
            operator=self.operator,
            ledger=ledger,
            cost_for=self.cost_for,
            clock=clock,
        )

    # ---- settings ----------------------------------------------------------------------------

    async def settings_for(self, guild_id: int | None) -> GuildSettings:
        """A server's settings; outside servers (None), the operator's rules for DMs."""
        if guild_id is None:
            return self.operator.outside_settings()
        gs = GuildSettings.from_json(await self._ledger.get_guild_settings(guild_id))
        self.memory.settings[guild_id] = gs
        return gs

    async def update(self, guild_id: int, **changes: Any) -> GuildSettings:
        current = await self.settings_for(guild_id)
        updated = current.with_changes(**changes)
        await self._ledger.put_guild_settings(guild_id, updated.to_json())
        self.memory.settings[guild_id] = updated
        log.info("guild %s settings changed: %s", guild_id, ", ".join(sorted(changes)))
        return updated

    def cost_for(self, model: str) -> float:
        if model == flux.MAX:
            return self._settings.credit_cost_max
        return self._settings.credit_cost_pro

    def cooldown_for(self, gs: GuildSettings) -> float:
        if gs.cooldown_seconds is not None:
            return gs.cooldown_seconds
        return self._settings.user_cooldown_seconds

    # ---- before a task -------------------------------------------------------------------------

    async def admit(self, who: checks.Asker) -> GuildSettings:
        """Checks on who and where (bot.moderation.checks), asked of the ledger. Raise Denied."""
        return await checks.admit(self._facts, who, now=self._clock())

    async def screen(self, asked: checks.Screening) -> TaskParams:
        """Server defaults, then the model, tolerance, word and quota checks, asked of the
        ledger (bot.moderation.checks). Returns the params to use; raise Denied."""
        return await checks.screen(self._facts, asked, cost_for=self.cost_for, now=self._clock())

    async def charge(
        self, gs: GuildSettings, *, guild_id: int | None, user_id: int, model: str, count: int = 1
    ) -> float:
        """Charge the day's quota for `count` new images under the server's settings `gs` (read
        once per request, at admission), all or none; return the cost of one. Raise Denied
        when over."""
        each = self.cost_for(model)
        if each <= 0:
            return 0.0  # free models cost nothing
        cost = each * count
        now = self._clock()
        day = policy.day_key(now)
        scope = scope_of(guild_id)
        charged = await self._ledger.charge_usage(
            scope,
            user_id,
            day,
            cost,
            member_limit=gs.member_daily_allowance,
            server_limit=gs.server_daily_budget,
        )
        if not charged:
            member, server = await self._ledger.usage(scope, user_id, day)
            self.memory.note_usage(scope, user_id, day, member, server)
            refusal = policy.check_quota(
                gs,
                member_used=member,
                server_used=server,
                cost=cost,
                now=now,
                place=place_of(guild_id),
            ) or Refusal(
                Text("The daily credit limit was just reached. Try again later."), "allowance"
            )
            raise Denied(refusal)
        self.memory.add_usage(scope, user_id, day, cost)
        return each

    # ---- after a task --------------------------------------------------------------------------

    async def task_finished(self, task: Task) -> None:
        """The runner's TaskHooks: refund, mod-log, automatic cooldown, credit alert."""
        try:
            await self._task_finished(task)
        except Exception as exc:
            log.warning("moderation follow-up of task %s failed: %s", task.id, type(exc).__name__)

    async def _task_finished(self, task: Task) -> None:
        self.memory.add_open_tasks(task.requester_id, -1)
        if task.error_code == Outcome.OUT_OF_CREDITS.value:
            self.memory.out_of_credits_at = self._clock()
            await self._credits.note_out_of_credits()  # first: refuse up front
        if task.state == TaskState.FAILED:
            task = await self._refund(task)
        if task.error_code == Outcome.CONTENT_POLICY.value:
            await self._maybe_cool_down(task)  # before its mod-log entry tells anyone
        gs = await self.settings_for(task.guild_id)  # outside servers: DM_MODLOG_CHANNEL_ID
        if gs.modlog_channel_id and self._modlog is not None:
            try:
                await self._modlog.post_task(gs.modlog_channel_id, task.guild_id, task)
            except Exception as exc:
                log.warning("mod-log entry for task %s failed: %s", task.id, type(exc).__name__)
        await self._credits.task_finished(task)

    async def _refund(self, task: Task) -> Task:
        """Give the quota back for a task that ended without an image (KIE failed or refused)."""
        if task.cost <= 0 or task.refunded:
            return task
        # Compare-and-set: of two paths refunding the same task, only one gives credits back.
        updated = await self._ledger.update_if(task.id, {"refunded": False}, refunded=True)
        if updated is None:
            return task.with_changes(refunded=True)
        day = policy.day_key(task.created_at)
        await self._ledger.add_usage(scope_of(task.guild_id), task.requester_id, day, -task.cost)
        self.memory.add_usage(scope_of(task.guild_id), task.requester_id, day, -task.cost)
        log.info("task %s refunded %s credits (%s)", task.id, task.cost, task.error_code)
        return updated

    async def _maybe_cool_down(self, task: Task) -> None:
        now = self._clock()
        count = await self._ledger.count_outcomes(
            task.guild_id, task.requester_id, Outcome.CONTENT_POLICY.value, policy.day_start(now)
        )
        if count < policy.CONTENT_POLICY_LIMIT:
            return
        block = Block(
            guild_id=scope_of(task.guild_id),
            user_id=task.requester_id,
            until=now + policy.CONTENT_POLICY_COOLDOWN,
            reason="content_policy",
            blocked_by=None,
            created_at=now,
        )
        await self._ledger.put_block(block)
        self.memory.note_block(block.guild_id, block.user_id, block)
        log.info(
            "user %s cooled down in guild %s after %d content-policy rejections",
            task.requester_id,
            task.guild_id,
            count,
        )

    # ---- credits -------------------------------------------------------------------------------

    async def out_of_credits(self, now: float | None = None) -> bool:
        """A 402 arrived recently: tell members up front instead of failing their task."""
        return await self._credits.out_of_credits(now)

    async def credits(self) -> float:
        """KIE's balance now; raises the one low-credit alert, or clears it on recovery."""
        balance = await self._credits.credits()
        if balance >= self._settings.low_credit_threshold:
            self.memory.out_of_credits_at = None  # recovered: the hold was lifted in the ledger
        return balance

    # ---- moderators' actions -------------------------------------------------------------------

    async def block(self, guild_id: int, user_id: int, *, by: int) -> None:
        block = Block(
            guild_id=guild_id,
            user_id=user_id,
            until=None,
            reason="moderator",
            blocked_by=by,
            created_at=self._clock(),
        )
        await self._ledger.put_block(block)
        self.memory.note_block(guild_id, user_id, block)
        log.info("user %s blocked in guild %s by %s", user_id, guild_id, by)

    async def unblock(self, guild_id: int, user_id: int, *, by: int) -> bool:
        removed = await self._ledger.delete_block(guild_id, user_id)
        self.memory.note_block(guild_id, user_id, None)
        if removed:
            log.info("user %s unblocked in guild %s by %s", user_id, guild_id, by)
        return removed

    async def get_block(self, guild_id: int | None, user_id: int) -> Block | None:
        block = await self._ledger.get_block(scope_of(guild_id), user_id)
        self.memory.note_block(scope_of(guild_id), user_id, block)
        if block is not None and block.until is not None and block.until <= self._clock():
            return None
        return block

    async def note_output_deleted(self, task: Task, *, by: int) -> None:
        """Remember that a moderator deleted the task's posted image."""
        await self._ledger.update(task.id, output_deleted_by=by)
        log.info("output of task %s deleted by moderator %s", task.id, by)

    async def reset_quota(self, guild_id: int, user_id: int) -> None:
        await self._ledger.reset_usage(guild_id, user_id, policy.day_key(self._clock()))
        self.memory.forget_usage(guild_id, user_id, policy.day_key(self._clock()))
        log.info("daily quota of user %s reset in guild %s", user_id, guild_id)

    async def usage(self, guild_id: int | None, user_id: int) -> UsageSummary:
        """Today's credits in this server, or outside servers (None)."""
        now = self._clock()
        gs = await self.settings_for(guild_id)
        member, server = await self._ledger.usage(scope_of(guild_id), user_id, policy.day_key(now))
        images, requests = await self._ledger.count_images(guild_id, user_id, policy.day_start(now))
        return UsageSummary(
            images_today=images,
            requests_today=requests,
            member_used=member,
            member_allowance=gs.member_daily_allowance,
            server_used=server,
            server_budget=gs.server_daily_budget,
            open_tasks=await self._ledger.count_open_for_user(user_id),
            resets_at=policy.next_reset(now),
        )


class _LedgerFacts:
    """The admission checks' facts from the ledger; each is noted in memory on the way, for
    the early checks of the member's next request."""

    def __init__(self, moderation: Moderation, ledger: ModerationStore) -> None:
        self._moderation = moderation
        self._memory = moderation.memory
        self._ledger = ledger

    async def operator_refusal(self, user_id: int, guild_id: int | None) -> Refusal | None:
        operator = self._moderation.operator
        refusal = await operator.blocked(user_id)
        self._memory.note_operator_block(user_id, refusal is not None)
        if refusal is None and guild_id is None:
            refusal = operator.outside_refusal()
        return refusal

    async def out_of_credits(self, now: float) -> bool:
        return await self._moderation.out_of_credits(now)

    async def block(self, scope: int, user_id: int, now: float) -> Block | None:
        block = await self._ledger.get_block(scope, user_id)
        self._memory.note_block(scope, user_id, block)
        return self._memory.block_of(scope, user_id, now)

    async def settings(self, guild_id: int | None) -> GuildSettings:
        return await self._moderation.settings_for(guild_id)

    async def usage(self, scope: int, user_id: int, day: str) -> tuple[float, float] | None:
        member, server = await self._ledger.usage(scope, user_id, day)
        self._memory.note_usage(scope, user_id, day, member, server)
        return member, server
