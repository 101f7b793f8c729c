"""The fake's rate limiter: on by default, answering Discord's 429s; a test may turn it off."""

from __future__ import annotations

from fakediscord import DiscordRateLimits, FakeDiscord
from fakediscord.test_fake_rules import api, cb, hook


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_limits_are_on_by_default_and_headers_describe_the_bucket(
    discord_fake: FakeDiscord,
) -> None:
    """Every fake enforces the buckets: webhook edits carry X-RateLimit-*; the 6th in 2 s is 429."""
    assert isinstance(discord_fake.rate_limits, DiscordRateLimits)
    clock = _Clock()
    discord_fake.rate_limits.clock = clock
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    assert (await api(discord_fake, "POST", cb(inter), {"type": 5}, auth=False))[0] == 200
    path = hook(discord_fake, inter, "/messages/@original")
    for _ in range(5):
        status, _, headers = await api(discord_fake, "PATCH", path, {"content": "x"})
        assert (status, headers["X-RateLimit-Limit"]) == (200, "5")
    status, body, headers = await api(discord_fake, "PATCH", path, {"content": "x"})
    assert (status, body["code"], headers["Retry-After"]) == (429, 0, "2")
    assert discord_fake.rate_limits.limited[0].path == path


async def test_limits_can_be_turned_off(discord_fake: FakeDiscord) -> None:
    """With rate_limits None, twenty edits in a row all succeed and carry no X-RateLimit headers."""
    # Off: this test is about the switch itself.
    discord_fake.rate_limits = None
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    assert (await api(discord_fake, "POST", cb(inter), {"type": 5}, auth=False))[0] == 200
    path = hook(discord_fake, inter, "/messages/@original")
    for _ in range(20):
        status, _, headers = await api(discord_fake, "PATCH", path, {"content": "x"})
        assert status == 200
        assert "X-RateLimit-Remaining" not in headers


async def test_webhook_bucket_answers_429_with_via_and_resets(discord_fake: FakeDiscord) -> None:
    """The 6th webhook edit within 2 s is 429 (Via, retry_after, headers); the window resets."""
    clock = _Clock()
    limits = discord_fake.rate_limits = DiscordRateLimits(clock=clock)
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    assert (await api(discord_fake, "POST", cb(inter), {"type": 5}, auth=False))[0] == 200
    path = hook(discord_fake, inter, "/messages/@original")
    remaining = []
    for _ in range(5):
        status, _, headers = await api(discord_fake, "PATCH", path, {"content": "x"}, auth=False)
        assert status == 200
        remaining.append(headers["X-RateLimit-Remaining"])
    assert remaining == ["4", "3", "2", "1", "0"]
    clock.now += 0.5
    status, body, headers = await api(discord_fake, "PATCH", path, {"content": "x"}, auth=False)
    assert status == 429
    assert headers["Via"]
    assert body["global"] is False
    assert abs(body["retry_after"] - 1.5) < 0.01
    assert headers["X-RateLimit-Scope"] == "user"
    assert len(limits.limited) == 1
    clock.now += 1.5
    assert (await api(discord_fake, "PATCH", path, {"content": "x"}, auth=False))[0] == 200


async def test_channel_and_global_buckets(discord_fake: FakeDiscord) -> None:
    """Channel messages: 5 per 5 s per channel; bot-token routes: a global 50 per second."""
    clock = _Clock()
    discord_fake.rate_limits = DiscordRateLimits(clock=clock)
    path = f"/channels/{discord_fake.channel.id}/messages"
    for _ in range(5):
        assert (await api(discord_fake, "POST", path, {"content": "hi"}))[0] == 200
    status, body, _ = await api(discord_fake, "POST", path, {"content": "hi"})
    assert (status, body["global"]) == (429, False)
    other = discord_fake.add_channel("other")
    assert (await api(discord_fake, "POST", f"/channels/{other.id}/messages", {"content": "hi"}))[
        0
    ] == 200
    for _ in range(44):  # 6 counted so far (the 429 was not): the 50th is the last admitted
        assert (await api(discord_fake, "GET", "/users/@me"))[0] == 200
    status, body, headers = await api(discord_fake, "GET", "/users/@me")
    assert (status, body["global"], headers["X-RateLimit-Global"]) == (429, True, "true")
