"""Sets of several images (`count`): one message, picks 1-4, Re-roll of the set, restarts.

The real bot against the fake Discord and the KIE simulator. The simulator finishes nothing by
itself in most tests (NEVER): the test completes each KIE task, so every step is an event.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from e2e_checks import ephemeral_texts, settled
from fakediscord import FakeDiscord, MessageView

NEVER = 3600.0
PRO_COST = 5.0  # KIE_CREDITS_PRO by default


def set_rows(env: dict[str, str]) -> list[sqlite3.Row]:
    """Every task of the ledger with its set columns, oldest first, by place in the set."""
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM tasks ORDER BY created_at, set_index").fetchall()


def credits_used(env: dict[str, str]) -> float:
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return float(db.execute("SELECT COALESCE(SUM(credits), 0) FROM usage").fetchone()[0])


def at_kie(kie_sim: Any) -> list[str]:
    """KIE's task ids in the order they were created."""
    return list(kie_sim.tasks)


async def reply_with(fake: FakeDiscord, inter: Any, images: int) -> MessageView:
    """The reply of `inter` once it holds `images` attachments."""
    conv = fake.conversation(inter)
    await fake.wait_until(
        lambda: conv.original is not None and len(conv.original.attachments) == images,
        30,
        what=f"{images} image(s) in the reply",
    )
    assert conv.original is not None
    return conv.original


def labels(message: MessageView) -> list[tuple[str, bool]]:
    return [(b.get("label", ""), bool(b.get("disabled"))) for b in message.buttons]


def from_field(message: MessageView) -> str:
    """The "From" field of a result's details (where it came from)."""
    fields = {f["name"]: f["value"] for f in message.embeds[0].get("fields", [])}
    return str(fields.get("From"))


async def test_set_of_four_fills_one_message_as_images_arrive(discord_fake, kie_sim, bot_factory):
    """count 4: four KIE tasks, one message that counts them ("2 of 4 ready"), the images in
    the set's order, buttons 1-4 usable as each image arrives, Re-roll once all are in."""
    kie_sim.config.delay = NEVER
    bot = await bot_factory()
    inter = await discord_fake.slash("imagine", {"prompt": "four foxes", "count": 4})
    await discord_fake.wait_until(lambda: len(kie_sim.tasks) == 4, 20, what="4 KIE tasks")
    kie_ids = at_kie(kie_sim)
    for kie_id in kie_ids[:2]:
        kie_sim.complete(kie_id)
    half = await reply_with(discord_fake, inter, 2)
    await discord_fake.wait_until(lambda: "2 of 4 ready" in half.text, 20, what="2 of 4")
    half_buttons = labels(half)
    for kie_id in kie_ids[2:]:
        kie_sim.complete(kie_id)
    full = await reply_with(discord_fake, inter, 4)
    rows = await settled(discord_fake, bot.env, count=4)

    by_kie = {r["kie_task_id"]: r for r in set_rows(bot.env)}
    ready_first = sorted(by_kie[k]["set_index"] for k in kie_ids[:2])
    expected_half = [(str(i), i not in ready_first) for i in range(1, 5)]
    assert (
        [a.filename for a in full.attachments],
        {r.result_message_id for r in rows},
        half_buttons[:4],
        labels(full),
        full.embeds[0]["title"],
        credits_used(bot.env),
    ) == (
        [f"kontext-{r['id']}.jpg" for r in sorted(by_kie.values(), key=lambda r: r["set_index"])],
        {full.id},
        expected_half,
        [("1", False), ("2", False), ("3", False), ("4", False), ("Re-roll", False)],
        "4 images ready",
        4 * PRO_COST,
    )


async def test_a_failed_image_is_named_and_the_others_arrive(discord_fake, kie_sim, bot_factory):
    """One image of a set fails at KIE: the message names it, the other three arrive, and only
    that image's credits come back."""
    kie_sim.script("success", 2)
    kie_sim.script("generation_failed", 1)
    kie_sim.config.delay = 0.2
    bot = await bot_factory()
    inter = await discord_fake.slash("imagine", {"prompt": "three and a miss", "count": 4})
    await settled(discord_fake, bot.env, count=4)
    message = await reply_with(discord_fake, inter, 3)
    failed = [r for r in set_rows(bot.env) if r["state"] == "failed"]
    await discord_fake.wait_until(
        lambda: f"Image {failed[0]['set_index']}: failed" in message.text, 20, what="the failure"
    )
    assert (
        len(failed),
        failed[0]["refunded"],
        credits_used(bot.env),
        message.embeds[0]["title"],
        kie_sim.count("generate"),
    ) == (1, 1, 3 * PRO_COST, "3 of 4 ready", 4)


async def test_pick_posts_that_image_alone_with_every_action(discord_fake, kie_sim, bot_factory):
    """Button 2 posts image 2 alone as a result of its own (a new task, parent: image 2, no
    KIE call, no credit), with the actions of a single result."""
    kie_sim.config.delay = 0.2
    bot = await bot_factory()
    inter = await discord_fake.slash("imagine", {"prompt": "pick me", "count": 2})
    message = await reply_with(discord_fake, inter, 2)
    await settled(discord_fake, bot.env, count=2)
    charged = credits_used(bot.env)

    click = await discord_fake.click(message, label="2")
    conv = discord_fake.conversation(click)
    await discord_fake.wait_until(
        lambda: conv.original is not None and conv.original.attachments, 20, what="the pick"
    )
    assert conv.original is not None
    rows = await settled(discord_fake, bot.env, count=3)
    second = next(r for r in set_rows(bot.env) if r["set_index"] == 2)
    pick = next(r for r in set_rows(bot.env) if r["parent_action"] == "pick")
    picked_bytes = message.attachments[1].data
    assert (
        conv.original.attachments[0].data == picked_bytes,
        pick["parent_task_id"],
        pick["state"],
        pick["cost"],
        pick["result_message_id"],
        conv.original.embeds[0]["footer"]["text"],
        from_field(conv.original),
        [b.get("label") for b in conv.original.buttons][:2],
        kie_sim.count("generate"),
        credits_used(bot.env),
        len(rows),
    ) == (
        True,
        second["id"],
        "done",
        0.0,
        conv.original.id,
        f"Task {pick['id']}",
        f"Pick 2 of [set {second['set_id']}](https://discord.com/channels/"
        f"{discord_fake.guild_id}/{message.channel_id}/{message.id})",
        ["Re-roll", "Edit"],
        2,
        charged,
        3,
    )


async def test_reroll_of_a_set_makes_the_whole_set_again(discord_fake, kie_sim, bot_factory):
    """Re-roll under a set asks KIE for as many images again, into a new set message."""
    kie_sim.config.delay = 0.2
    bot = await bot_factory()
    inter = await discord_fake.slash("imagine", {"prompt": "again please", "count": 3})
    message = await reply_with(discord_fake, inter, 3)
    await settled(discord_fake, bot.env, count=3)

    click = await discord_fake.click(message, label="Re-roll")
    again = await reply_with(discord_fake, click, 3)
    await settled(discord_fake, bot.env, count=6)
    rows = set_rows(bot.env)
    assert (
        kie_sim.count("generate"),
        len({r["set_id"] for r in rows}),
        {r["parent_task_id"] for r in rows[3:]},
        again.id != message.id,
    ) == (6, 2, {rows[0]["id"]}, True)


async def test_count_beyond_the_server_maximum_is_refused(discord_fake, kie_sim, bot_factory):
    """max-count 2: a count of 3 is refused privately with nothing spent; the server's default
    count (2) applies when a member leaves count unset."""
    kie_sim.config.delay = 0.2
    bot = await bot_factory()
    mod = discord_fake.moderator
    for sub, options in (("max-count", {"value": 2}), ("defaults", {"count": 2})):
        inter = await discord_fake.slash("kontext-admin", options, subcommand=sub, user=mod)
        await discord_fake.wait_for_conversation(inter, lambda c: c.text, timeout=10)

    too_many = await discord_fake.slash("imagine", {"prompt": "three?", "count": 3})
    refusal = await discord_fake.wait_until(
        lambda: ephemeral_texts(discord_fake, too_many), 10, what="the refusal"
    )
    defaulted = await discord_fake.slash("imagine", {"prompt": "the default"})
    await reply_with(discord_fake, defaulted, 2)
    rows = await settled(discord_fake, bot.env, count=2)
    assert (refusal, len(rows), kie_sim.count("generate"), credits_used(bot.env)) == (
        ["This server allows at most 2 image(s) per request."],
        2,
        2,
        2 * PRO_COST,
    )


async def test_restart_in_the_middle_of_a_set(discord_fake, kie_sim, bot_factory):
    """SIGKILL with 2 of 4 images in the message; the rest finish while the bot is down. After
    the restart every image is in the same message exactly once and KIE made exactly 4."""
    kie_sim.config.delay = NEVER
    bot = await bot_factory()
    inter = await discord_fake.slash("imagine", {"prompt": "survive a crash", "count": 4})
    await discord_fake.wait_until(lambda: len(kie_sim.tasks) == 4, 20, what="4 KIE tasks")
    kie_ids = at_kie(kie_sim)
    for kie_id in kie_ids[:2]:
        kie_sim.complete(kie_id)
    before = await reply_with(discord_fake, inter, 2)
    await bot.kill()
    for kie_id in kie_ids[2:]:
        kie_sim.complete(kie_id)
    await bot.start()
    after = await reply_with(discord_fake, inter, 4)
    rows = await settled(discord_fake, bot.env, count=4)  # each image posted exactly once
    ordered = sorted(set_rows(bot.env), key=lambda r: r["set_index"])
    assert (
        after.id,
        [a.filename for a in after.attachments],
        kie_sim.count("generate"),
        {r.result_message_id for r in rows},
    ) == (before.id, [f"kontext-{r['id']}.jpg" for r in ordered], 4, {before.id})


async def test_usage_counts_a_set_as_one_request_of_four_images(discord_fake, kie_sim, bot_factory):
    """/usage after a set of 4 and a single image: 5 images in 2 requests, 5 images' credits."""
    kie_sim.config.delay = 0.2
    bot = await bot_factory()
    first = await discord_fake.slash("imagine", {"prompt": "a set", "count": 4})
    await reply_with(discord_fake, first, 4)
    await settled(discord_fake, bot.env, count=4)
    single = await discord_fake.slash("imagine", {"prompt": "one more"})
    await reply_with(discord_fake, single, 1)
    await settled(discord_fake, bot.env, count=5)

    usage = await discord_fake.slash("usage")
    text = await discord_fake.wait_until(
        lambda: " ".join(ephemeral_texts(discord_fake, usage)), 10, what="/usage"
    )
    assert ("Today: 5 images in 2 requests." in text, f"**{5 * PRO_COST:g}**" in text) == (
        True,
        True,
    )


async def test_cancel_under_a_queued_set_cancels_every_image(discord_fake, kie_sim, bot_factory):
    """A set waiting in the queue shows Cancel; it cancels every image, gives every credit
    back, and KIE never sees them."""
    kie_sim.config.delay = NEVER
    bot = await bot_factory(MAX_OPEN_TASKS="1")
    await discord_fake.slash("imagine", {"prompt": "holding the queue"})
    await discord_fake.wait_until(lambda: len(kie_sim.tasks) == 1, 20, what="the first at KIE")
    queued = await discord_fake.slash("imagine", {"prompt": "never made", "count": 2})
    conv = discord_fake.conversation(queued)
    await discord_fake.wait_until(
        lambda: conv.original is not None and ("Cancel", False) in labels(conv.original),
        20,
        what="Cancel under the set",
    )
    assert conv.original is not None
    click = await discord_fake.click(conv.original, label="Cancel")
    answer = await discord_fake.wait_until(
        lambda: ephemeral_texts(discord_fake, click), 20, what="the answer"
    )
    await discord_fake.wait_until(lambda: "Cancelled" in conv.text, 20, what="cancelled")
    kie_sim.complete(at_kie(kie_sim)[0])
    rows = await settled(discord_fake, bot.env, count=3)
    assert (
        [(r.state, r.error_code) for r in rows[1:]],
        credits_used(bot.env),
        kie_sim.count("generate"),
        answer[0].startswith("Cancelled"),
    ) == ([("failed", "cancelled")] * 2, PRO_COST, 1, True)


async def test_a_private_pick_keeps_the_bots_copy(discord_fake, kie_sim, bot_factory):
    """A pick from a private set is private too, and the bot keeps its copy (the ephemeral
    message is out of reach once the click's token runs out), byte for byte."""
    kie_sim.config.delay = 0.2
    bot = await bot_factory()
    inter = await discord_fake.slash(
        "imagine", {"prompt": "secret pair", "count": 2, "private": True}
    )
    message = await reply_with(discord_fake, inter, 2)
    await settled(discord_fake, bot.env, count=2)

    click = await discord_fake.click(message, label="1")
    conv = discord_fake.conversation(click)
    await discord_fake.wait_until(
        lambda: conv.original is not None and conv.original.attachments, 20, what="the pick"
    )
    await settled(discord_fake, bot.env, count=3)
    pick = next(r for r in set_rows(bot.env) if r["parent_action"] == "pick")
    path = bot.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        copy = db.execute("SELECT data FROM result_copies WHERE task_id = ?", (pick["id"],))
        kept = copy.fetchone()
    assert conv.original is not None
    assert (pick["private"], conv.original.ephemeral, kept is not None and bytes(kept[0])) == (
        1,
        True,
        message.attachments[0].data,
    )
