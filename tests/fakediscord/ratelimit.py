"""An optional rate limiter for the fake (off by default): Discord's buckets, close enough.

Discord does not publish per-route numbers ("parse the headers"), so these are the commonly
observed ones, all fixed windows that open with the first request:

- the global limit: 50 requests per second per bot token, for routes sent with the bot token
  (interaction and webhook routes are not bound by it, as Discord's rate-limit page says);
- webhooks, interaction webhooks included: 5 requests per 2 s per webhook id + token;
- channel messages (create, edit, delete): 5 requests per 5 s per channel.

Every answer on a limited route carries ``X-RateLimit-*`` headers (so discord.py tracks the
bucket, as it does against Discord); over the limit the answer is 429 with ``Via``,
``Retry-After`` and a JSON ``retry_after``/``global`` (so discord.py waits and retries).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .model import Call

_WEBHOOK = re.compile(r"^/webhooks/(\d+)/([^/]+)")
_CHANNEL_MESSAGES = re.compile(r"^/channels/(\d+)/messages(/|$)")


@dataclass
class _Window:
    start: float
    count: int = 0


@dataclass
class RateLimited(Exception):
    """Over a bucket: the answer's headers and ``retry_after``."""

    headers: dict[str, str]
    retry_after: float
    is_global: bool


@dataclass
class DiscordRateLimits:
    """Bucket sizes (requests per seconds); set ``FakeDiscord.rate_limits`` to enable."""

    global_limit: int = 50
    global_per: float = 1.0
    webhook_limit: int = 5
    webhook_per: float = 2.0
    channel_limit: int = 5
    channel_per: float = 5.0
    clock: Callable[[], float] = time.monotonic
    limited: list[Call] = field(default_factory=list)  # every call answered 429 by a bucket
    _windows: dict[tuple[str, ...], _Window] = field(default_factory=dict)

    def admit(self, call: Call, bot_token: str) -> dict[str, str]:
        """Count ``call``; the headers to answer with, or raise RateLimited."""
        buckets: list[tuple[tuple[str, ...], int, float]] = []
        if call.headers.get("Authorization") == f"Bot {bot_token}":
            buckets.append((("global",), self.global_limit, self.global_per))
        m = _WEBHOOK.match(call.path)
        if m:
            key = ("webhook", m.group(1), m.group(2))
            buckets.append((key, self.webhook_limit, self.webhook_per))
        m = _CHANNEL_MESSAGES.match(call.path)
        if m and call.method in ("POST", "PATCH", "DELETE"):
            buckets.append((("channel", m.group(1)), self.channel_limit, self.channel_per))
        now = self.clock()
        windows: list[tuple[tuple[str, ...], int, float, _Window]] = []
        for key, limit, per in buckets:
            window = self._windows.get(key)
            if window is None or now - window.start >= per:
                window = self._windows[key] = _Window(now)
            windows.append((key, limit, per, window))
        for key, limit, per, window in windows:
            if window.count >= limit:
                self.limited.append(call)
                retry_after = max(0.001, window.start + per - now)
                is_global = key[0] == "global"
                headers = self._headers(key, limit, 0, retry_after)
                headers.update(
                    {
                        "Via": "1.1 google",
                        "Retry-After": str(math.ceil(retry_after)),
                        "X-RateLimit-Scope": "global" if is_global else "shared",
                    }
                )
                if is_global:
                    headers["X-RateLimit-Global"] = "true"
                raise RateLimited(headers, round(retry_after, 3), is_global)
        headers: dict[str, str] = {}
        for key, limit, per, window in windows:
            window.count += 1
            if key[0] != "global":  # the route's own bucket is what the headers describe
                reset_after = window.start + per - now
                headers = self._headers(key, limit, limit - window.count, reset_after)
        return headers

    @staticmethod
    def _headers(
        key: tuple[str, ...], limit: int, remaining: int, reset_after: float
    ) -> dict[str, str]:
        bucket = hashlib.sha1(key[0].encode()).hexdigest()[:16]
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }
