"""The bot's KIE credits as moderation watches them: the 402 hold, the balance, the one alert.

After a 402 members are told up front, for ``OUT_HOLD`` seconds, that the bot is out of
credits. The balance is read after deliveries (at most every ``CREDIT_CHECK_INTERVAL``) and by
the operator; one alert goes to every mod-log when it runs low or out, and is cleared when the
balance recovers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.config import Settings
from bot.i18n import Text
from bot.ledger import CoordinationStore, MetaStore, ModerationStore, Task, TaskState
from bot.metrics import Metrics
from bot.moderation import policy
from bot.moderation.modlog import ModLogSink
from bot.moderation.policy import GuildSettings
from bot.outcomes import Outcome

log = logging.getLogger("bot.moderation.service")

ALERT_KEY = "credits.alerted_at"  # set when the one alert went out; cleared on recovery
OUT_KEY = "credits.out_at"  # the last 402: members are told up front for a while
OUT_HOLD = 300.0  # seconds after a 402 during which new requests are refused up front
CREDIT_CHECK_INTERVAL = 600.0  # read the balance at most this often after deliveries


class CreditLedger(ModerationStore, MetaStore, CoordinationStore, Protocol):
    """The alert marks kept in meta (claimed by compare-and-set: processes sharing the ledger
    send one alert), and the servers' settings (their mod-log channels)."""


class CreditWatch:
    """Tracks the account's balance and raises, or clears, the one credit alert."""

    def __init__(
        self,
        *,
        settings: Settings,
        ledger: CreditLedger,
        metrics: Metrics,
        read_credits: Callable[[], Awaitable[float]],
        modlog: ModLogSink | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._metrics = metrics
        self._read_credits = read_credits
        self._modlog = modlog
        self._clock = clock
        self._last_credit_read = 0.0

    async def note_out_of_credits(self) -> None:
        """KIE answered 402: from now on, refuse new requests up front for a while."""
        await self._ledger.set_meta(OUT_KEY, repr(self._clock()))

    async def out_of_credits(self, now: float | None = None) -> bool:
        """A 402 arrived recently: tell members up front instead of failing their task."""
        raw = await self._ledger.get_meta(OUT_KEY)
        if not raw:
            return False
        try:
            at = float(raw)
        except ValueError:
            return False
        return (now if now is not None else self._clock()) - at < OUT_HOLD

    async def task_finished(self, task: Task) -> None:
        """Alert on a 402; after a delivery, read the balance if it has not been read lately."""
        if task.error_code == Outcome.OUT_OF_CREDITS.value:
            await self._alert_once(
                Text(
                    "KIE answered that the bot's account is out of credits (402). Members are "
                    "told the bot is out of credits until the account is topped up."
                )
            )
        elif (
            task.state == TaskState.DONE
            and self._clock() - self._last_credit_read >= CREDIT_CHECK_INTERVAL
        ):
            try:
                await self.credits()
            except Exception as exc:
                log.info("credit balance check failed: %s", type(exc).__name__)

    async def credits(self) -> float:
        """KIE's balance now; raises the one low-credit alert, or clears it on recovery."""
        balance = await self._read_credits()
        self._last_credit_read = self._clock()
        self._metrics.kie_credits.set(balance)
        threshold = self._settings.low_credit_threshold
        if balance < threshold:
            await self._alert_once(
                Text(
                    "The bot's KIE balance is {balance} credits, under the alert threshold of "
                    "{threshold}. The operator should top up the account.",
                    balance=policy.fmt_credits(balance),
                    threshold=policy.fmt_credits(threshold),
                )
            )
        elif await self._ledger.get_meta(ALERT_KEY) or await self._ledger.get_meta(OUT_KEY):
            log.info("KIE balance recovered (%s credits); credit alert reset", balance)
            await self._ledger.set_meta(ALERT_KEY, "")
            await self._ledger.set_meta(OUT_KEY, "")
        return balance

    async def _alert_once(self, text: Text) -> None:
        # One compare-and-set: of processes sharing the ledger, only the one that marks the
        # alert sent sends it (a read and then a write would let two both send it).
        if not await self._ledger.swap_meta(ALERT_KEY, "", repr(self._clock())):
            return
        log.warning("credit alert: %s", text)
        if self._modlog is None:
            return
        targets: list[tuple[int | None, int | None]] = [
            (guild_id, GuildSettings.from_json(data).modlog_channel_id)
            for guild_id, data in await self._ledger.all_guild_settings()
        ]
        targets.append((None, self._settings.dm_modlog_channel_id))
        for guild_id, channel_id in targets:
            if channel_id:
                try:
                    await self._modlog.post_alert(channel_id, guild_id, text)
                except Exception as exc:
                    log.warning("credit alert to guild %s failed: %s", guild_id, type(exc).__name__)
