"""Gateway shards through the real bot process, the fake Discord and the KIE simulator:
SHARD_COUNT, SHARD_IDS, SHARD_COUNT=auto, /healthz and /metrics per shard, and the plain
refusal of an unsharded bot in more than 2,500 servers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from e2e_helpers import BotProcess
from fakediscord import FakeDiscord
from fakediscord.gateway import shard_of
from fakediscord.model import FakeChannel
from ops_checks import health_until, scrape

BotFactory = Callable[..., Awaitable[BotProcess]]


async def imagine_delivered(fake: FakeDiscord, channel: FakeChannel, prompt: str) -> None:
    inter = await fake.slash("imagine", {"prompt": prompt}, channel=channel)
    conv = fake.conversation(inter)
    await fake.wait_until(lambda: conv.files, 30, what=f"the image for {prompt!r}")


def server_on(fake: FakeDiscord, shard: int, count: int) -> FakeChannel:
    """A channel of a server on ``shard`` (the main server's when it is there already)."""
    if shard_of(fake.guild_id, count) == shard:
        return fake.channel
    return fake.add_guild(f"server on shard {shard}", shard=(shard, count))


async def test_two_shards_each_deliver_an_imagine_in_their_servers(
    discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """SHARD_COUNT=2: one IDENTIFY per shard with its [id, 2]; an /imagine in a server of each
    shard is delivered."""
    channels = [server_on(discord_fake, shard, 2) for shard in (0, 1)]
    await bot_factory(SHARD_COUNT="2")
    await discord_fake.wait_until(lambda: len(discord_fake.session_shards()) == 2, 20)

    assert sorted(i["shard"] for i in discord_fake.identifies) == [[0, 2], [1, 2]]
    for shard, channel in enumerate(channels):
        await imagine_delivered(discord_fake, channel, f"a lighthouse from shard {shard}")


async def test_identifies_follow_max_concurrency(
    discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """max_concurrency 2: shards 0 and 1 are in different buckets and IDENTIFY at once; shard 2
    shares shard 0's bucket and waits its 5 s (the fake fails the test on a sooner one)."""
    discord_fake.identify_limits.max_concurrency = 2
    await bot_factory(SHARD_COUNT="3")
    await discord_fake.wait_until(lambda: len(discord_fake.session_shards()) == 3, 20)

    sent = {
        f.d["shard"][0]: f.time
        for f in discord_fake.gateway_frames
        if f.direction == "recv" and f.op == 2
    }
    assert sent[1] - sent[0] < 1.0
    assert sent[2] - sent[0] >= 5.0


async def test_too_few_session_starts_wait_for_the_reset(
    discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """No session start left today: the bot says so and waits for the reset instead of
    IDENTIFYing into a refusal (the fake records an IDENTIFY without starts left)."""
    discord_fake.identify_limits.remaining = 0
    discord_fake.identify_limits.reset_after_ms = 2000
    bot = await bot_factory()

    assert discord_fake.identify_limits.violations == []
    assert "Discord allows 0 more gateway session start(s) now and this process needs 1" in (
        bot.log_text()
    )


async def test_gateway_bot_unanswered_is_retried_before_connecting(
    discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """GET /gateway/bot refused once (Cloudflare's 429, which discord.py does not retry): the
    bot says so, waits its back-off and asks again instead of crashing."""
    discord_fake.fail_next("GET", r"^/gateway/bot$", cloudflare=True)
    bot = await bot_factory()

    assert len(discord_fake.find_calls("GET", r"^/gateway/bot$")) == 2
    assert "cannot reach Discord" in bot.log_text()
    assert "GatewayNotFound" in bot.log_text()


async def test_shard_ids_runs_only_those_shards(
    discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """SHARD_IDS=1 of SHARD_COUNT=2: the bot connects shard 1 only; shard 0's server is
    served by another process (here: none, so its interaction waits at the fake)."""
    away, mine = (server_on(discord_fake, shard, 2) for shard in (0, 1))
    await bot_factory(SHARD_COUNT="2", SHARD_IDS="1")

    assert discord_fake.session_shards() == [(1, 2)]
    assert not discord_fake.shard_connected(0)
    await imagine_delivered(discord_fake, mine, "a harbour on shard 1")
    await discord_fake.slash("imagine", {"prompt": "nobody here"}, channel=away)
    assert discord_fake.pending_events(0) == ["INTERACTION_CREATE"]


async def test_auto_follows_discords_recommendation_and_health_reports_each_shard(
    discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """SHARD_COUNT unset (auto): the count GET /gateway/bot recommends; /healthz lists each
    shard connected with its latency and /metrics has a gauge per shard."""
    discord_fake.shard_count = 2
    bot = await bot_factory()
    await discord_fake.wait_until(lambda: len(discord_fake.session_shards()) == 2, 20)

    assert discord_fake.session_shards() == [(0, 2), (1, 2)]
    _, body = await health_until(
        bot, lambda s, b: s == 200 and len(b["checks"]["discord"]["shards"]) == 2
    )
    shards = body["checks"]["discord"]["shards"]
    assert {s: v["connected"] for s, v in shards.items()} == {"0": True, "1": True}
    metrics = await scrape(bot)
    assert metrics[("kontext_discord_shard_connected", (("shard", "0"),))] == 1
    assert metrics[("kontext_discord_shard_connected", (("shard", "1"),))] == 1


async def test_unsharded_bot_past_2500_servers_says_so_and_exits(
    discord_fake: FakeDiscord, bot_env: dict[str, str], tmp_path: Path
) -> None:
    """SHARD_COUNT=1 in 2,501 servers: Discord closes with 4011; the bot says what to change
    and exits 1 (the same layout would be refused again, so retrying cannot help)."""
    discord_fake.add_guilds(2500)
    bot = BotProcess(discord_fake, {**bot_env, "SHARD_COUNT": "1"}, tmp_path / "bot.log")
    await bot.launch()
    await discord_fake.wait_until(lambda: not bot.running, 30, what="the bot to exit")
    assert await bot.stop(expect_code=1) == 1

    assert discord_fake.session_shards() == []
    assert (
        "Discord requires more gateway shards (close code 4011, shard 0): SHARD_COUNT=1 puts "
        "more than 2,500 servers on one shard; set SHARD_COUNT=auto or a larger number"
    ) in bot.log_text()
    await bot.teardown()  # no traceback, no secret in the log
