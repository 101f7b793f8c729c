"""Saved references (/ref save, list, show, delete; /imagine ref:) end to end: the real bot, the
fake Discord and the KIE simulator (which keeps the exact input it fetched)."""

from __future__ import annotations

import io
import random
import sqlite3
from typing import Any

import aiohttp
from e2e_checks import ephemeral_texts
from e2e_helpers import BotProcess
from fakediscord import FakeDiscord, FakeInteraction, MessageView
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

RED, GREEN = (220, 20, 20), (20, 200, 20)


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


async def private_answer(fake: FakeDiscord, inter: FakeInteraction) -> str:
    texts = await fake.wait_until(
        lambda: [t for t in ephemeral_texts(fake, inter) if t], 20, what="the private answer"
    )
    return " ".join(texts)


async def ref(fake: FakeDiscord, subcommand: str, options: dict[str, Any], **kw: Any) -> str:
    """Run /ref <subcommand> and return its private answer."""
    return await private_answer(fake, await fake.slash("ref", options, subcommand=subcommand, **kw))


async def save(fake: FakeDiscord, name: str, colour: tuple[int, int, int] = RED, **kw: Any) -> str:
    image = (f"{name}.png", png((64, 48), colour), "image/png")
    return await ref(fake, "save", {"name": name, "image": image, **kw.pop("options", {})}, **kw)


def stored_refs(bot: BotProcess) -> list[tuple[str, int]]:
    """(name, bytes kept) of every reference in the bot's ledger, read-only."""
    path = bot.env["DATABASE_URL"].removeprefix("sqlite:///")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [(r[0], r[1]) for r in db.execute("SELECT name, length(data) FROM refs")]
    finally:
        db.close()


async def image_of(fake: FakeDiscord, inter: FakeInteraction) -> MessageView:
    conv = fake.conversation(inter)
    await fake.wait_until(lambda: any(m.attachments for m in conv.messages), 30, what="an image")
    return next(m for m in conv.messages if m.attachments)


async def gauges(bot: BotProcess, *names: str) -> list[float]:
    """The values of unlabelled gauges on the bot's /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"{bot.http_url}/metrics") as resp:
        text = await resp.text()
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return [values[name] for name in names]


def colour_of(data: bytes | None) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data or b"")) as img:
        pixel = img.convert("RGB").getpixel((img.width // 2, img.height // 2))
    assert isinstance(pixel, tuple)
    return tuple(int(c) for c in pixel)


def near(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(pixel, colour, strict=True))


async def test_save_list_show_and_delete_a_reference(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """Saved, it is listed privately with its note, shown with its image and note (the note's
    mention does not ping), and deleted with its bytes."""
    saved = await save(discord_fake, "Hero", options={"note": "our @everyone mascot"})
    listed = await ref(discord_fake, "list", {})
    shown_inter = await discord_fake.slash("ref", {"name": "hero"}, subcommand="show")
    shown = await image_of(discord_fake, shown_inter)
    kept_before = stored_refs(bot_process)
    deleted = await ref(discord_fake, "delete", {"name": "HERO"})
    assert (
        "Saved **Hero**" in saved,
        "**Hero**" in listed and "mascot" in listed,
        near(colour_of(shown.attachments[0].data), RED),
        shown.embeds[0]["title"],
        "@\u200beveryone" in shown.embeds[0]["description"],
        len(kept_before),
        "Deleted **Hero**" in deleted,
        stored_refs(bot_process),
    ) == (True, True, True, "Reference: Hero", True, 1, True, [])


async def test_a_name_taken_in_any_case_is_refused_and_nothing_kept(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    await save(discord_fake, "Hero")
    again = await save(discord_fake, "hERO", GREEN)
    blank = await save(discord_fake, "   ")
    too_long = await save(discord_fake, "x" * 33)
    assert (
        "already has a reference named **hERO**" in again,
        "Give the reference a name" in blank,
        "at most 32 characters" in too_long,
        [name for name, _ in stored_refs(bot_process)],
    ) == (True, True, True, ["Hero"])


async def test_the_servers_limit_and_a_moderators_change_of_it(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """With /kontext-admin ref-limit 2 the third save is refused; raised to 3 it is kept."""
    changed = await private_answer(
        discord_fake,
        await discord_fake.slash(
            "kontext-admin", {"value": 2}, subcommand="ref-limit", user=discord_fake.moderator
        ),
    )
    await save(discord_fake, "one")
    await save(discord_fake, "two")
    refused = await save(discord_fake, "three")
    await private_answer(
        discord_fake,
        await discord_fake.slash(
            "kontext-admin", {"value": 3}, subcommand="ref-limit", user=discord_fake.moderator
        ),
    )
    kept = await save(discord_fake, "three")
    shown = await discord_fake.slash(
        "kontext-admin", subcommand="show", user=discord_fake.moderator
    )
    conv = discord_fake.conversation(shown)
    await discord_fake.wait_until(lambda: conv.ephemeral_messages, 10, what="the settings")
    assert (
        "**Saved references:** at most 3" in conv.ephemeral_messages[0].embeds[0]["description"],
        "at most 2 saved reference(s)" in changed,
        "keeps at most 2 references" in refused,
        "Saved **three**" in kept,
        sorted(name for name, _ in stored_refs(bot_process)),
    ) == (True, True, True, True, ["one", "three", "two"])


async def test_only_the_owner_or_a_moderator_deletes(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    bob = discord_fake.add_user("bob")
    await save(discord_fake, "Hero")
    by_bob = await ref(discord_fake, "delete", {"name": "Hero"}, user=bob)
    after_bob = [name for name, _ in stored_refs(bot_process)]
    by_mod = await ref(discord_fake, "delete", {"name": "Hero"}, user=discord_fake.moderator)
    assert (
        "only they or a moderator" in by_bob,
        after_bob,
        "Deleted **Hero**" in by_mod,
        stored_refs(bot_process),
    ) == (True, ["Hero"], True, [])


async def test_autocomplete_offers_the_servers_names(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    for name in ("Hero", "Villain", "Heroine"):
        await save(discord_fake, name)
    choices = await discord_fake.autocomplete(
        "ref", {"name": "her"}, focused="name", subcommand="show"
    )
    on_imagine = await discord_fake.autocomplete(
        "imagine", {"prompt": "x", "ref": "VIL"}, focused="ref"
    )
    assert ([c["value"] for c in choices], [c["value"] for c in on_imagine]) == (
        ["Hero", "Heroine"],
        ["Villain"],
    )


def kept_bytes(bot: BotProcess, name: str) -> bytes:
    path = bot.env["DATABASE_URL"].removeprefix("sqlite:///")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return bytes(db.execute("SELECT data FROM refs WHERE name = ?", (name,)).fetchone()[0])
    finally:
        db.close()


async def received(fake: FakeDiscord, kie_sim: Any, count: int) -> list[Any]:
    """The simulator's tasks once it has `count` and has fetched each one's input."""

    def fetched() -> bool:
        tasks = list(kie_sim.tasks.values())
        return len(tasks) >= count and all(t.input_data is not None for t in tasks)

    await fake.wait_until(fetched, 20, what=f"KIE fetching {count} input(s)")
    return list(kie_sim.tasks.values())


def details(message: MessageView) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message.embeds[0].get("fields") or []}


async def test_imagine_with_a_reference_edits_the_reference(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """/imagine ref: is an edit whose input is the reference's kept bytes, exactly; the
    result's details name the reference."""
    await save(discord_fake, "Hero")
    inter = await discord_fake.slash("imagine", {"prompt": "the hero at the beach", "ref": "hero"})
    result = await image_of(discord_fake, inter)
    (task,) = await received(discord_fake, kie_sim, 1)
    assert (
        task.input_data == kept_bytes(bot_process, "Hero"),
        task.request["prompt"],
        result.embeds[0]["title"],
        details(result).get("Reference"),
    ) == (True, "the hero at the beach", "Edit ready", "Hero")


async def test_edit_with_a_reference_stitches_it_last(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """/edit image + ref: KIE gets one image: the attachment on the left, the reference right."""
    await save(discord_fake, "Hero", RED)
    inter = await discord_fake.slash(
        "edit",
        {
            "image": ("in.png", png((64, 48), GREEN), "image/png"),
            "prompt": "give the person in image 1 the hat of image 2",
            "ref": "Hero",
        },
    )
    result = await image_of(discord_fake, inter)
    (task,) = await received(discord_fake, kie_sim, 1)
    with Image.open(io.BytesIO(task.input_data)) as img:
        rgb = img.convert("RGB")
        left = rgb.getpixel((rgb.width // 4, rgb.height // 2))
        right = rgb.getpixel((3 * rgb.width // 4, rgb.height // 2))
    assert isinstance(left, tuple) and isinstance(right, tuple)
    assert (near(left, GREEN), near(right, RED), details(result).get("Reference")) == (
        True,
        True,
        "Hero",
    )


async def test_an_unknown_reference_is_refused_privately_and_costs_nothing(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    answer = await private_answer(
        discord_fake, await discord_fake.slash("imagine", {"prompt": "x", "ref": "nobody"})
    )
    assert ("no reference named **nobody**" in answer, kie_sim.tasks) == (True, {})


async def test_metrics_count_the_references_and_their_bytes(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    await save(discord_fake, "one")
    await save(discord_fake, "two", GREEN)
    sizes = dict(stored_refs(bot_process))
    both = await gauges(bot_process, "kontext_reference_images", "kontext_reference_bytes")
    await ref(discord_fake, "delete", {"name": "one"})
    after = await gauges(bot_process, "kontext_reference_images", "kontext_reference_bytes")
    assert (both, after) == ([2, sizes["one"] + sizes["two"]], [1, sizes["two"]])


async def test_a_reference_outlives_a_restart_and_its_upload_is_reused_until_it_expires(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: Any, bot_clock: Any
) -> None:
    """Two uses within hours share one upload to KIE; after a restart a day later (KIE's
    upload gone by then), the kept bytes are uploaded again and KIE fetches them."""
    bot = await bot_factory(**bot_clock.env)
    await save(discord_fake, "Hero")
    first = await discord_fake.slash("imagine", {"prompt": "at the beach", "ref": "Hero"})
    await image_of(discord_fake, first)
    bot_clock.advance(3600)
    second = await discord_fake.slash("imagine", {"prompt": "in the snow", "ref": "Hero"})
    await image_of(discord_fake, second)
    uploads_before_restart = kie_sim.count("upload")
    await bot.stop()
    bot_clock.advance(24 * 3600)
    kie_sim.advance(24 * 3600)
    await bot.start()
    third = await discord_fake.slash("imagine", {"prompt": "on the moon", "ref": "hero"})
    await image_of(discord_fake, third)
    tasks = await received(discord_fake, kie_sim, 3)
    kept = kept_bytes(bot, "Hero")
    assert (
        uploads_before_restart,
        tasks[0].request["inputImage"] == tasks[1].request["inputImage"],
        kie_sim.count("upload"),
        [t.input_data == kept for t in tasks],
    ) == (1, True, 2, [True, True, True])


async def test_a_reroll_a_day_later_edits_the_reference_again(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: Any, bot_clock: Any
) -> None:
    """KIE's upload of the reference is gone a day later: Re-roll uploads the kept bytes again
    (it does not fail for want of the input) and its details still name the reference."""
    await bot_factory(**bot_clock.env)
    await save(discord_fake, "Hero")
    first = await image_of(
        discord_fake,
        await discord_fake.slash("imagine", {"prompt": "the hero waving", "ref": "Hero"}),
    )
    bot_clock.advance(24 * 3600)
    kie_sim.advance(24 * 3600)
    rerolled = await image_of(discord_fake, await discord_fake.click(first, label="Re-roll"))
    tasks = await received(discord_fake, kie_sim, 2)
    assert (
        kie_sim.count("upload"),
        tasks[1].input_data == tasks[0].input_data,
        details(rerolled).get("Reference"),
    ) == (2, True, "Hero")


async def test_a_blocked_member_can_neither_save_nor_post_a_reference(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    await save(discord_fake, "Hero", user=discord_fake.moderator)
    await private_answer(
        discord_fake,
        await discord_fake.slash(
            "kontext-admin",
            {"member": discord_fake.member},
            subcommand="block",
            user=discord_fake.moderator,
        ),
    )
    saved = await save(discord_fake, "Mine")
    shown_inter = await discord_fake.slash("ref", {"name": "Hero"}, subcommand="show")
    shown = await private_answer(discord_fake, shown_inter)
    assert (
        "blocked" in saved,
        "blocked" in shown,
        [m for m in discord_fake.conversation(shown_inter).messages if m.attachments],
        [name for name, _ in stored_refs(bot_process)],
    ) == (True, True, [], ["Hero"])


async def test_show_fits_a_large_reference_under_the_channels_upload_limit(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """A reference larger than what the channel accepts is posted shrunk to fit, not refused."""
    noise = Image.frombytes("RGB", (400, 400), bytes(random.Random(1).randbytes(400 * 400 * 3)))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    await ref(
        discord_fake, "save", {"name": "Noise", "image": ("noise.png", buf.getvalue(), "image/png")}
    )
    limit = 200 * 1024
    shown = await image_of(
        discord_fake,
        await discord_fake.slash(
            "ref", {"name": "Noise"}, subcommand="show", attachment_size_limit=limit
        ),
    )
    data = shown.attachments[0].data or b""
    assert (len(buf.getvalue()) > limit, len(data) <= limit, data[:3]) == (
        True,
        True,
        b"\xff\xd8\xff",
    )


async def test_four_images_and_a_reference_are_refused_privately_before_anything_is_spent(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """The reference is stitched after the images and KIE's input holds four: with a reference,
    at most three attached."""
    await save(discord_fake, "Hero")
    options: dict[str, Any] = {
        key: (f"{key}.png", png((32, 32), GREEN), "image/png")
        for key in ("image", "image2", "image3", "image4")
    }
    answer = await private_answer(
        discord_fake,
        await discord_fake.slash("edit", {**options, "prompt": "combine them", "ref": "Hero"}),
    )
    assert ("attach at most 3 images" in answer, kie_sim.tasks) == (True, {})
