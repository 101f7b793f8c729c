"""Gateway shards: which of this process's shards hold a live session (for /healthz and
/metrics) and Discord's IDENTIFY pacing, within this process and across the processes sharing
one ledger."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from discord.ext import commands

from bot.config import Settings
from bot.ledger import Ledger, LedgerError

log = logging.getLogger(__name__)

INVALID_SHARD = 4010  # the gateway's close code for a shard id or count it does not accept
SHARDING_REQUIRED = 4011  # the session would hold too many servers: more shards are needed
SHARD_CLOSE_CODES = (INVALID_SHARD, SHARDING_REQUIRED)
# Discord: one IDENTIFY per 5 s in each max_concurrency bucket; the half second more covers the
# time between this process's clock and Discord's receipt of the previous IDENTIFY.
IDENTIFY_INTERVAL = 5.5
# How long a process waits at most between two asks for the shared IDENTIFY slot: the ledger
# forgets a waiter that has not asked for 2 s (its place in line).
SHARED_SLOT_RECHECK = 1.0


class ShardHealth:
    """The shards this process runs and which are connected now (READY or RESUMED seen, no
    disconnect since). `latency_of` reads a shard's heartbeat latency (seconds, inf if none)."""

    def __init__(self, latency_of: Callable[[int], float]) -> None:
        self._latency_of = latency_of
        self.expected: tuple[int, ...] = ()
        self._up: set[int] = set()

    def launched(self, shard_ids: Iterable[int]) -> None:
        self.expected = tuple(shard_ids)

    def up(self, shard_id: int) -> None:
        self._up.add(shard_id)

    def down(self, shard_id: int) -> None:
        if shard_id in self._up:
            log.warning(
                "lost the Discord gateway on shard %d; discord.py is reconnecting", shard_id
            )
        self._up.discard(shard_id)

    def all_up(self) -> bool:
        return bool(self.expected) and all(s in self._up for s in self.expected)

    def report(self) -> dict[str, dict[str, Any]]:
        """Per shard: connected, and the last heartbeat's latency (None before the first)."""
        shards: dict[str, dict[str, Any]] = {}
        for shard_id in self.expected:
            latency = self._latency_of(shard_id)
            shards[str(shard_id)] = {
                "connected": shard_id in self._up,
                "latency_seconds": round(latency, 4) if math.isfinite(latency) else None,
            }
        return shards


class IdentifyPacer:
    """Discord's IDENTIFY rate: one per IDENTIFY_INTERVAL seconds in each bucket
    (`shard_id % max_concurrency`). discord.py waits 5 s before every IDENTIFY but a process's
    first; this waits only as long as the shard's bucket needs, so a bot with max_concurrency
    16 starts 16 shards at once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_concurrency = 1
        self._clock = clock
        self._last: dict[int, float] = {}

    def delay(self, shard_id: int) -> float:
        """Seconds shard `shard_id` must wait before its IDENTIFY (0: go now)."""
        last = self._last.get(shard_id % self.max_concurrency)
        return 0.0 if last is None else max(0.0, last + IDENTIFY_INTERVAL - self._clock())

    def identified(self, shard_id: int) -> None:
        self._last[shard_id % self.max_concurrency] = self._clock()


def session_starts_short(remaining: int, reset_after_ms: int, shards: int) -> float | None:
    """Seconds until Discord allows `shards` more session starts (`session_start_limit` of
    GET /gateway/bot: remaining, reset_after), or None when it allows them now."""
    if remaining >= shards:
        return None
    return reset_after_ms / 1000


class ShardedBot(commands.AutoShardedBot):
    """discord.py's AutoShardedBot, with each shard's health for /healthz and /metrics and
    IDENTIFYs paced by Discord's max_concurrency buckets. The subclass sets `settings` and
    `ledger`: Discord counts IDENTIFYs per bot, so processes sharing a ledger take turns."""

    settings: Settings
    ledger: Ledger
    _discord_problem: str | None = None  # why Discord is not connected, for /healthz
    _closing = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.shard_health = ShardHealth(self._shard_latency)
        self.identify_pacer = IdentifyPacer()
        self._shards_stop = asyncio.Event()

    async def plan_shards(self) -> float | None:
        """From GET /gateway/bot: the count for SHARD_COUNT=auto and the IDENTIFY concurrency.
        Returns the seconds to wait for enough session starts (said in the log), or None."""
        recommended, _, limit = await self.http.get_bot_gateway()
        if self.shard_count is None:
            self.shard_count = recommended
            log.info("Discord recommends %d shard(s)", recommended)
        self.identify_pacer.max_concurrency = max(1, limit["max_concurrency"])
        shards = len(self.shard_ids or range(self.shard_count))
        wait = session_starts_short(limit["remaining"], limit["reset_after"], shards)
        if wait is not None:
            self._discord_problem = (
                f"Discord allows {limit['remaining']} more gateway session start(s) now and "
                f"this process needs {shards}; waiting {wait:.0f} s for the daily reset"
            )
            log.error("%s", self._discord_problem)
        return wait

    async def launch_shards(self) -> None:
        """discord.py's, given up when the bot closes meanwhile: discord.py retries a shard
        that failed to connect for ever, even after close(), so a process stopped while a
        shard waits for its IDENTIFY turn would never exit."""
        launching = asyncio.ensure_future(super().launch_shards())
        stopping = asyncio.ensure_future(self._shards_stop.wait())
        try:
            await asyncio.wait((launching, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not launching.done():
                launching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await launching
        if not launching.cancelled():
            launching.result()

    async def close(self) -> None:
        self._shards_stop.set()
        await super().close()

    def _shard_latency(self, shard_id: int) -> float:
        shard = self.get_shard(shard_id)
        return shard.latency if shard is not None else math.inf

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        shard = shard_id or 0
        await asyncio.sleep(self.identify_pacer.delay(shard))
        await self._take_shared_identify_slot(shard)
        self.identify_pacer.identified(shard)

    async def _take_shared_identify_slot(self, shard_id: int) -> None:
        """Wait for the bucket's IDENTIFY slot shared by every process on the ledger (on
        SQLite, one process: at once). Without the database, this process's pacing alone."""
        bucket = shard_id % self.identify_pacer.max_concurrency
        waiter = f"{self.settings.process_name}:shard-{shard_id}"
        told = False
        try:
            while True:
                wait = await self.ledger.take_rate_slot(
                    f"identify:{bucket}", 1, IDENTIFY_INTERVAL, waiter
                )
                if not wait:
                    return
                if not told:
                    log.info("shard %d waits for its bucket's IDENTIFY turn (shared)", shard_id)
                    told = True
                await asyncio.sleep(min(wait, SHARED_SLOT_RECHECK))  # the window is in the DB
        except LedgerError as exc:
            log.warning(
                "IDENTIFY of shard %d paced by this process only: the ledger did not answer (%s)",
                shard_id,
                exc,
            )

    async def on_shard_connect(self, shard_id: int) -> None:
        """READY on a shard (its session is live; on_shard_ready comes once its servers are in)."""
        # With SHARD_COUNT=auto the count is known once discord.py has asked Discord.
        if self.shard_count is not None and not self.shard_health.expected:
            self.shard_health.launched(self.shard_ids or range(self.shard_count))
        self.shard_health.up(shard_id)
        self._discord_problem = None
        log.info("shard %d of %s connected", shard_id, self.shard_count)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self.shard_health.up(shard_id)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self.shard_health.down(shard_id)
        if not self._closing:
            self._discord_problem = f"lost the gateway connection of shard {shard_id}; reconnecting"
