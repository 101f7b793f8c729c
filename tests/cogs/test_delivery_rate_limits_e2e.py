"""429s from Discord end to end: Discord's own (discord.py waits them out) and Cloudflare's
(an HTML page, no Via: discord.py raises at once), on the defer, a status edit and the result."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_checks import ephemeral_texts, ledger_rows, settled
from e2e_helpers import BotProcess
from fakediscord import Call, FakeDiscord, FakeInteraction

REPLY = r"^/webhooks/\d+/[^/]+/messages/(@original|\d+)$"
CALLBACK = r"^/interactions/\d+/[^/]+/callback$"
KINDS: dict[str, dict[str, Any]] = {"discord": {}, "cloudflare": {"cloudflare": True}}


def _status_edit(call: Call) -> bool:
    return not call.files


def _result_post(call: Call) -> bool:
    return bool(call.files)


async def _generating(
    discord_fake: FakeDiscord, kie_sim: Any, bot_env: dict[str, str], prompt: str
) -> tuple[FakeInteraction, str]:
    """/imagine a task that stays generating until the test completes it; its KIE task id."""
    kie_sim.config.delay = 3600
    inter = await discord_fake.slash("imagine", {"prompt": prompt})
    rows = await discord_fake.wait_until(
        lambda: [r for r in ledger_rows(bot_env) if r.state == "generating"],
        15,
        what="the task generating",
    )
    return inter, rows[0].kie_task_id


@pytest.mark.parametrize("kind", KINDS)
async def test_429_on_a_status_edit_loses_nothing(
    kind: str, discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: Any
) -> None:
    """A 429 on a status edit: the image still arrives exactly once; the ledger says done."""
    fault = discord_fake.fail_next("PATCH", REPLY, when=_status_edit, **KINDS[kind])
    inter, kie_task_id = await _generating(discord_fake, kie_sim, bot_env, "a lantern")
    await discord_fake.wait_until(lambda: fault.hits, 15, what="a status edit refused with 429")
    kie_sim.complete(kie_task_id)
    (row,) = await settled(discord_fake, bot_env, timeout=30)
    assert row.state == "done"
    assert len(fault.hits) == 1
    assert discord_fake.conversation(inter).original.attachments


@pytest.mark.parametrize("kind", KINDS)
async def test_429_on_the_result_post_loses_nothing(
    kind: str, discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: Any
) -> None:
    """A 429 on the result post: the image still arrives exactly once; the ledger says done."""
    fault = discord_fake.fail_next("PATCH", REPLY, when=_result_post, **KINDS[kind])
    inter = await discord_fake.slash("imagine", {"prompt": "a paper boat"})
    (row,) = await settled(discord_fake, bot_env, timeout=30)
    assert row.state == "done"
    assert len(fault.hits) == 1
    assert discord_fake.conversation(inter).original.attachments


async def test_discord_429_on_the_defer_is_waited_out(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: Any
) -> None:
    """Discord's 429 on the first answer is retried within the 3 s; the task runs to done."""
    fault = discord_fake.fail_next("POST", CALLBACK)
    inter = await discord_fake.slash("imagine", {"prompt": "a kite"})
    (row,) = await settled(discord_fake, bot_env, timeout=30)
    assert row.state == "done"
    assert len(fault.hits) == 1
    assert discord_fake.conversation(inter).response_types == [5]


async def test_cloudflare_429_on_the_defer_starts_nothing_and_says_so(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: Any
) -> None:
    """Cloudflare's 429 on the defer: no task, no KIE call; the member is told privately."""
    fault = discord_fake.fail_next("POST", CALLBACK, cloudflare=True)
    inter = await discord_fake.slash("imagine", {"prompt": "a kite"})
    await discord_fake.wait_until(
        lambda: ephemeral_texts(discord_fake, inter), 15, what="a private answer"
    )
    assert len(fault.hits) == 1
    (text,) = ephemeral_texts(discord_fake, inter)
    assert "Nothing was started" in text
    assert ledger_rows(bot_env) == []
    assert kie_sim.count("generate") == 0


async def test_a_dropped_connection_on_the_result_post_loses_nothing(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: Any
) -> None:
    """Discord's connection drops while the result is posted (no answer at all): the post is
    tried again and the image arrives exactly once; the ledger says done."""
    fault = discord_fake.fail_next("PATCH", REPLY, when=_result_post, reset=True)
    inter, kie_task_id = await _generating(discord_fake, kie_sim, bot_env, "a cut cable")
    kie_sim.complete(kie_task_id)
    (row,) = await settled(discord_fake, bot_env, timeout=30)
    assert row.state == "done"
    assert len(fault.hits) == 1
    assert discord_fake.conversation(inter).original.attachments
