"""Discord's rate limits in the fake (on by default): its buckets, and the shape of a 429.

Discord does not publish per-route numbers ("parse the headers"), so these are the commonly
observed ones, all fixed windows that open with the first request:

- the global limit: 50 requests per second per bot token, for routes sent with the bot token
  (interaction and webhook routes are not bound by it, as Discord's rate-limit page says);
- webhooks, interaction webhooks included: 5 requests per 2 s per webhook id + token;
- channel messages (create, edit, delete): 5 requests per 5 s per channel.

Every answer on a limited route carries ``X-RateLimit-*`` headers (so discord.py tracks the
bucket, as it does against Discord); over the limit the answer is Discord's 429: ``Via``,
``Retry-After``, ``X-RateLimit-Bucket/Limit/Remaining/Reset/Reset-After/Scope`` and a JSON
body ``{"message", "retry_after", "global", "code"}`` (so discord.py waits and retries).

A 429 from Cloudflare (an IP ban in front of Discord) is different: an HTML page, no ``Via``,
no ``X-RateLimit-*`` headers. discord.py does not retry it; it raises ``HTTPException``.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .model import Call

_WEBHOOK = re.compile(r"^/webhooks/(\d+)/([^/]+)")
_INTERACTION = re.compile(r"^/interactions/(\d+)/([^/]+)")
_CHANNEL_MESSAGES = re.compile(r"^/channels/(\d+)/messages(/|$)")
_SNOWFLAKE = re.compile(r"/\d{5,}")

RATE_LIMITED_MESSAGE = "You are being rate limited."
CLOUDFLARE_429_HTML = (
    "<!DOCTYPE html>\n<html><head><title>Access denied | discord.com used Cloudflare to "
    "restrict access</title></head>\n<body><h1>Error 1015</h1><h2>You are being rate "
    "limited</h2><p>The owner of this website (discord.com) has banned you temporarily from "
    "accessing this website.</p></body></html>\n"
)

Bucket = tuple[str, ...]


@dataclass
class _Window:
    start: float
    count: int = 0


@dataclass
class RateLimited(Exception):
    """Over a bucket: the answer's headers and body."""

    headers: dict[str, str]
    body: dict[str, Any]


def route_bucket(call: Call) -> Bucket:
    """The bucket a call's route belongs to (its major parameter included)."""
    m = _WEBHOOK.match(call.path) or _INTERACTION.match(call.path)
    if m:
        return ("webhook", m.group(1), m.group(2))
    m = _CHANNEL_MESSAGES.match(call.path)
    if m:
        return ("channel", m.group(1))
    return ("route", call.method, _SNOWFLAKE.sub("/{id}", call.path))


def bucket_hash(bucket: Bucket) -> str:
    """A stable ``X-RateLimit-Bucket`` value: one per kind of bucket, as Discord's hashes are."""
    kind = bucket[0] if bucket[0] != "route" else "/".join(bucket)
    return hashlib.sha1(kind.encode()).hexdigest()[:16]


def window_headers(
    bucket: Bucket, limit: int, remaining: int, reset_after: float
) -> dict[str, str]:
    """The ``X-RateLimit-*`` headers Discord sends with every answer on a limited route."""
    return {
        "X-RateLimit-Bucket": bucket_hash(bucket),
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
    }


def rate_limited(
    bucket: Bucket, limit: int, retry_after: float, *, is_global: bool = False, code: int = 0
) -> RateLimited:
    """Discord's 429 for ``bucket``: every header and the JSON body Discord sends."""
    headers = window_headers(bucket, limit, 0, retry_after)
    headers.update(
        {
            "Via": "1.1 google",
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
    )
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {
        "message": RATE_LIMITED_MESSAGE,
        "retry_after": round(retry_after, 3),
        "global": is_global,
        "code": code,
    }
    return RateLimited(headers, body)


@dataclass
class DiscordRateLimits:
    """Bucket sizes (requests per seconds); ``FakeDiscord.rate_limits`` (None turns them off)."""

    global_limit: int = 50
    global_per: float = 1.0
    webhook_limit: int = 5
    webhook_per: float = 2.0
    channel_limit: int = 5
    channel_per: float = 5.0
    clock: Callable[[], float] = time.monotonic
    limited: list[Call] = field(default_factory=list)  # every call answered 429 by a bucket
    _windows: dict[Bucket, _Window] = field(default_factory=dict)

    def limit_of(self, bucket: Bucket) -> int:
        """The size of a route bucket (what a 429 on that route says in X-RateLimit-Limit)."""
        if bucket[0] == "webhook":
            return self.webhook_limit
        if bucket[0] == "channel":
            return self.channel_limit
        return self.global_limit

    def _buckets(self, call: Call, bot_token: str) -> list[tuple[Bucket, int, float]]:
        buckets: list[tuple[Bucket, int, float]] = []
        if call.headers.get("Authorization") == f"Bot {bot_token}":
            buckets.append((("global",), self.global_limit, self.global_per))
        route = route_bucket(call)
        if route[0] == "webhook" and _WEBHOOK.match(call.path):
            buckets.append((route, self.webhook_limit, self.webhook_per))
        if route[0] == "channel" and call.method in ("POST", "PATCH", "DELETE"):
            buckets.append((route, self.channel_limit, self.channel_per))
        return buckets

    def admit(self, call: Call, bot_token: str) -> dict[str, str]:
        """Count ``call``; the headers to answer with, or raise RateLimited."""
        now = self.clock()
        windows: list[tuple[Bucket, int, float, _Window]] = []
        for key, limit, per in self._buckets(call, bot_token):
            window = self._windows.get(key)
            if window is None or now - window.start >= per:
                window = self._windows[key] = _Window(now)
            windows.append((key, limit, per, window))
        for key, limit, per, window in windows:
            if window.count >= limit:
                self.limited.append(call)
                retry_after = max(0.001, window.start + per - now)
                raise rate_limited(key, limit, retry_after, is_global=key[0] == "global")
        headers: dict[str, str] = {}
        for key, limit, per, window in windows:
            window.count += 1
            if key[0] != "global":  # the route's own bucket is what the headers describe
                headers = window_headers(key, limit, limit - window.count, window.start + per - now)
        return headers
