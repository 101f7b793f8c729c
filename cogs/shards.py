"""Gateway shards: which of this process's shards hold a live session, for /healthz and
/metrics."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

INVALID_SHARD = 4010  # the gateway's close code for a shard id or count it does not accept
SHARDING_REQUIRED = 4011  # the session would hold too many servers: more shards are needed
SHARD_CLOSE_CODES = (INVALID_SHARD, SHARDING_REQUIRED)


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
