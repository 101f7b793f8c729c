"""The switch to the channel endpoints before the interaction token's 15 minutes, by the bot's
own clock (moved with libfaketime), without waiting 15 minutes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from e2e_checks import ledger_rows, result_posts, settled
from e2e_helpers import BotClock, BotProcess
from fakediscord import FakeDiscord

WEBHOOK_EDIT = r"^/webhooks/\d+/[^/]+/messages/(@original|\d+)$"


async def test_result_goes_through_the_channel_at_14_minutes_by_the_bots_clock(
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_env: dict[str, str],
    bot_clock: BotClock,
    bot_factory: Callable[..., Awaitable[BotProcess]],
) -> None:
    """At 14.5 minutes (the fake's token still valid) the bot edits its reply through the
    channel endpoints: it switched by its own clock, never meeting 50027."""
    kie_sim.config.delay = 3600  # generating until the test completes it
    await bot_factory(
        **bot_clock.env,
        TASK_TIMEOUT_SECONDS="7200",  # task age is wall-clock time: 14.5 min must not time out
        PUBLIC_BASE_URL=f"http://127.0.0.1:{bot_env['HTTP_PORT']}",  # KIE's callback: no wait
    )
    inter = await discord_fake.slash("imagine", {"prompt": "a lighthouse at dusk"})
    rows = await discord_fake.wait_until(
        lambda: [r for r in ledger_rows(bot_env) if r.state == "generating"],
        15,
        what="the task generating",
    )
    await discord_fake.wait_for_call("PATCH", WEBHOOK_EDIT)
    mark = discord_fake.mark()
    bot_clock.advance(14 * 60 + 30)
    kie_sim.complete(rows[0].kie_task_id)
    (row,) = await settled(discord_fake, bot_env, timeout=30)
    assert row.state == "done"
    assert discord_fake.interaction_age(inter) < 15 * 60  # Discord would still take the token
    (post,) = result_posts(discord_fake)
    assert (post.method, post.status) == ("PATCH", 200)
    assert post.path == f"/channels/{discord_fake.channel.id}/messages/{row.reply_message_id}"
    assert discord_fake.calls.index(post) >= mark
    assert not [c for c in discord_fake.calls if c.status == 401]  # no 50027, ever
