"""Discord's gateway sharding rules, as the fake applies them.

A server lives on shard ``(guild_id >> 22) % shard_count``; DMs on shard 0. One session may hold
at most MAX_GUILDS_PER_SHARD servers (else close 4011); a shard id must be below its count (else
4010). IDENTIFYs are limited per bucket (``shard_id % max_concurrency``): one per 5 seconds, and
``session_start_limit.remaining`` counts them down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

MAX_GUILDS_PER_SHARD = 2500
IDENTIFY_INTERVAL = 5.0  # seconds between two IDENTIFYs of one rate-limit bucket
INVALID_SHARD = 4010
SHARDING_REQUIRED = 4011


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard a server's events go to (DMs and events without a server: shard 0)."""
    if guild_id is None:
        return 0
    return (guild_id >> 22) % shard_count


def identify_shard(d: dict[str, Any]) -> tuple[int, int]:
    """IDENTIFY's ``shard: [id, count]``; an unsharded IDENTIFY is shard 0 of 1."""
    shard = d.get("shard")
    if shard is None:
        return 0, 1
    shard_id, count = (int(x) for x in shard)
    return shard_id, count


def shard_refusal(shard_id: int, count: int, guilds_on_shard: int) -> tuple[int, str] | None:
    """The close code and reason Discord answers this IDENTIFY with, or None to accept it."""
    if count < 1 or not 0 <= shard_id < count:
        return INVALID_SHARD, "Invalid shard."
    if guilds_on_shard > MAX_GUILDS_PER_SHARD:
        return SHARDING_REQUIRED, "Sharding required."
    return None


@dataclass
class IdentifyLimits:
    """``session_start_limit`` of GET /gateway/bot and the per-bucket IDENTIFY rate."""

    total: int = 1000
    remaining: int = 1000
    reset_after_ms: int = 86_400_000
    max_concurrency: int = 1
    last_identify: dict[int, float] = field(default_factory=dict)  # bucket → monotonic time
    violations: list[str] = field(default_factory=list)
    _reset_at: float | None = None

    def _refill(self) -> float:
        """Seconds until `remaining` goes back to `total` (refilled first if that time came)."""
        now = time.monotonic()
        if self._reset_at is None:
            self._reset_at = now + self.reset_after_ms / 1000
        if now >= self._reset_at:
            self.remaining = self.total
            self._reset_at = now + 86_400
        return self._reset_at - now

    def as_wire(self) -> dict[str, int]:
        reset_after = self._refill()
        return {
            "total": self.total,
            "remaining": self.remaining,
            "reset_after": int(reset_after * 1000),
            "max_concurrency": self.max_concurrency,
        }

    def take(self, shard_id: int, *, alongside_live_sessions: bool = True) -> bool:
        """Count an IDENTIFY of ``shard_id``; False (recorded) if Discord would refuse it.

        The 5-second rule is checked only while other sessions of the bot are live (shards
        starting together): a bot restarted at once after its only session closed is not
        refused, so that restart tests need not wait 5 s (Discord would answer op 9 and
        discord.py would identify again: the same outcome, later).
        """
        self._refill()
        bucket = shard_id % self.max_concurrency
        now = time.monotonic()
        last = self.last_identify.get(bucket)
        self.last_identify[bucket] = now
        if self.remaining <= 0:
            self.violations.append(f"IDENTIFY of shard {shard_id} with no session starts left")
            return False
        self.remaining -= 1
        if alongside_live_sessions and last is not None and now - last < IDENTIFY_INTERVAL:
            self.violations.append(
                f"IDENTIFY of shard {shard_id} {now - last:.2f} s after the last one of its "
                f"bucket {bucket} (max_concurrency {self.max_concurrency}; 5 s apart)"
            )
            return False
        return True
