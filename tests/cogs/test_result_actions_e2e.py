"""Reframe, Compare and the "From" link of a result, end to end: the real bot, the fake Discord
(select menus and modals included) and the KIE simulator."""

from __future__ import annotations

import io
from typing import Any

from e2e_checks import ephemeral_texts, ledger_rows
from fakediscord import FakeDiscord, MessageView
from PIL import Image

REFRAME_PROMPT = "Extend the scene to fill the new frame; keep the subject and style unchanged"
RATIOS = ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16"]
GAP = 16  # px between the two images of a comparison (bot.images.COMPARE_GAP)
MAX_HEIGHT = 1024  # a comparison is at most this tall (bot.images.COMPARE_MAX_HEIGHT)


def png_bytes(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


async def image_of(fake: FakeDiscord, inter: Any) -> MessageView:
    """The message with an image that answers `inter` (its reply, once the task is done)."""
    conv = fake.conversation(inter)
    await fake.wait_until(
        lambda: any(m.attachments for m in conv.messages), 30, what="an image in the reply"
    )
    return next(m for m in conv.messages if m.attachments)


async def modal_of(fake: FakeDiscord, inter: Any) -> dict[str, Any]:
    await fake.wait_until(lambda: inter.modal is not None, 10, what="a modal")
    modal: dict[str, Any] = inter.modal
    return modal


async def private_answer(fake: FakeDiscord, inter: Any) -> str:
    """The private answer's text (a "thinking…" defer has none yet)."""
    texts = await fake.wait_until(
        lambda: [t for t in ephemeral_texts(fake, inter) if t], 20, what="the answer"
    )
    return " ".join(texts)


def task_id_of(message: MessageView) -> str:
    return str(message.embeds[0]["footer"]["text"]).removeprefix("Task ")


def from_field(message: MessageView) -> str | None:
    fields = {f["name"]: f["value"] for f in message.embeds[0].get("fields") or []}
    return fields.get("From")


def link_to(fake: FakeDiscord, message: MessageView) -> str:
    return f"https://discord.com/channels/{fake.guild_id}/{message.channel_id}/{message.id}"


def rows_of(message: MessageView) -> list[list[str]]:
    """Each action row as the labels of its buttons and the placeholders of its selects."""
    return [
        [str(c.get("label") or c.get("placeholder")) for c in row.get("components") or []]
        for row in message.components
    ]


def text_inputs(modal: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for row in modal.get("components") or []:
        found += [c for c in row.get("components") or [] if c.get("type") == 4]
        if (row.get("component") or {}).get("type") == 4:
            found.append(row["component"])
    return found


async def test_reframe_edits_the_result_into_the_chosen_frame(discord_fake, kie_sim, bot_process):
    """Reframe → 4:3 opens a modal prefilled with the reframe prompt; submitting it edits this
    result (its KIE URL as inputImage) with aspectRatio 4:3, and the new result links back."""
    first = await discord_fake.slash("imagine", {"prompt": "a red barn", "aspect_ratio": "1:1"})
    result = await image_of(discord_fake, first)
    chosen = await discord_fake.select(result, ["4:3"], placeholder="Reframe…")
    modal = await modal_of(discord_fake, chosen)
    submitted = await discord_fake.submit_modal(chosen, {})
    reframed = await image_of(discord_fake, submitted)

    parent_at_kie, child_at_kie = (t for t in kie_sim.tasks.values())
    assert (
        modal["title"],
        [i.get("value") for i in text_inputs(modal)],
        child_at_kie.request["aspectRatio"],
        child_at_kie.request["inputImage"],
        child_at_kie.request["prompt"],
        from_field(reframed),
    ) == (
        "Reframe to 4:3",
        [REFRAME_PROMPT],
        "4:3",
        parent_at_kie.result_url,
        REFRAME_PROMPT,
        f"Reframe (4:3) of [task {task_id_of(result)}]({link_to(discord_fake, result)})",
    )


async def test_reframe_prompt_can_be_changed(discord_fake, kie_sim, bot_process):
    """The prefilled prompt is only a suggestion: what the member writes is what KIE gets."""
    first = await discord_fake.slash("imagine", {"prompt": "a harbour"})
    result = await image_of(discord_fake, first)
    chosen = await discord_fake.select(result, ["9:16"], placeholder="Reframe…")
    await modal_of(discord_fake, chosen)
    submitted = await discord_fake.submit_modal(chosen, {"Prompt": "show the sky above it"})
    await image_of(discord_fake, submitted)
    requests = [t.request for t in kie_sim.tasks.values()]
    assert (requests[1]["prompt"], requests[1]["aspectRatio"]) == ("show the sky above it", "9:16")


async def test_reframe_by_another_member_is_refused_privately(discord_fake, kie_sim, bot_process):
    """Someone else's choice in Reframe is told privately it isn't theirs: no modal, no task."""
    first = await discord_fake.slash("imagine", {"prompt": "a windmill"})
    result = await image_of(discord_fake, first)
    stranger = discord_fake.add_user("bob")
    chosen = await discord_fake.select(result, ["16:9"], placeholder="Reframe…", user=stranger)
    answer = await private_answer(discord_fake, chosen)
    assert (
        "isn't yours" in answer,
        discord_fake.conversation(chosen).ephemeral,
        chosen.modal,
        kie_sim.count("generate"),
    ) == (True, True, None, 1)


async def test_result_rows_offer_reframe_everywhere_and_compare_on_edits(
    discord_fake, kie_sim, bot_process
):
    """An /imagine result has Re-roll and Edit, and the Reframe select (six ratios) in a row of
    its own; an edit's result has Compare too."""
    imagined = await image_of(
        discord_fake, await discord_fake.slash("imagine", {"prompt": "a lantern"})
    )
    edited = await image_of(
        discord_fake,
        await discord_fake.slash(
            "edit",
            {"image": ("in.png", png_bytes((64, 48), (200, 0, 0)), "image/png"), "prompt": "glow"},
        ),
    )
    options = [o["value"] for o in imagined.select(placeholder="Reframe…")["options"]]
    assert (rows_of(imagined), rows_of(edited), options) == (
        [["Re-roll", "Edit"], ["Reframe…"]],
        [["Re-roll", "Edit", "Compare"], ["Reframe…"]],
        RATIOS,
    )


async def test_compare_shows_input_and_result_side_by_side_privately(
    discord_fake, kie_sim, bot_process
):
    """Compare on an edit shows whoever clicks, privately, one image: the input (left) and the
    result (right) at a common height with a small gap."""
    red = (220, 0, 0)
    inter = await discord_fake.slash(
        "edit",
        {"image": ("in.png", png_bytes((64, 48), red), "image/png"), "prompt": "paint it blue"},
    )
    result = await image_of(discord_fake, inter)
    with Image.open(io.BytesIO(result.attachments[0].data or b"")) as shown:
        result_size = shown.size
    viewer = discord_fake.add_user("carol")
    click = await discord_fake.click(result, label="Compare", user=viewer)
    conv = discord_fake.conversation(click)
    await discord_fake.wait_until(
        lambda: any(m.attachments for m in conv.ephemeral_messages), 20, what="the comparison"
    )
    message = next(m for m in conv.ephemeral_messages if m.attachments)
    with Image.open(io.BytesIO(message.attachments[0].data or b"")) as composite:
        size = composite.size
        height = min(max(48, result_size[1]), MAX_HEIGHT)
        left_width = round(64 * height / 48)
        left_colour = composite.convert("RGB").getpixel((left_width // 2, height // 2))
    right_width = round(result_size[0] * height / result_size[1])
    assert isinstance(left_colour, tuple)
    assert (
        len(message.attachments),
        size,
        all(abs(a - b) < 12 for a, b in zip(left_colour, red, strict=True)),
    ) == (1, (left_width + GAP + right_width, height), True)


async def edit_with_its_input_gone(
    fake: FakeDiscord, bot_factory: Any, bot_clock: Any
) -> tuple[Any, MessageView]:
    """An /edit's result a day later, with its stored input purged (INPUT_RETENTION_DAYS) and
    KIE's upload of it expired: the bot and the result."""
    bot = await bot_factory(**bot_clock.env)
    inter = await fake.slash(
        "edit",
        {"image": ("in.png", png_bytes((64, 48), (0, 90, 0)), "image/png"), "prompt": "snow"},
    )
    result = await image_of(fake, inter)
    await bot.stop()
    bot_clock.advance(24 * 3600)
    await bot.start(env={"INPUT_RETENTION_DAYS": "0"})
    await fake.wait_until(
        lambda: "purged 1 stored input image" in bot.log_text(), 10, what="the purge at start-up"
    )
    return bot, result


async def test_compare_without_the_input_says_so_privately(
    discord_fake, kie_sim, bot_factory, bot_clock
):
    """A day later, with the stored input purged (INPUT_RETENTION_DAYS) and KIE's upload of it
    expired, Compare says privately that the input is no longer kept, and shows nothing."""
    _, result = await edit_with_its_input_gone(discord_fake, bot_factory, bot_clock)
    click = await discord_fake.click(result, label="Compare")
    answer = await private_answer(discord_fake, click)
    conv = discord_fake.conversation(click)
    assert (
        "no longer kept" in answer,
        [len(m.attachments) for m in conv.ephemeral_messages],
    ) == (True, [0])


async def test_reroll_reads_the_parents_input_after_answering(
    discord_fake, kie_sim, bot_factory, bot_clock
):
    """Re-roll answers before it reads the parent's stored input (the ledger, then a worker
    preparing the bytes): with that input purged a day later, the "thinking…" reply goes out
    first, is withdrawn, and the member is told privately; no task is written, nothing sent to
    KIE."""
    bot, result = await edit_with_its_input_gone(discord_fake, bot_factory, bot_clock)
    click = await discord_fake.click(result, label="Re-roll")
    answer = await private_answer(discord_fake, click)
    conv = discord_fake.conversation(click)
    await discord_fake.wait_until(
        lambda: conv.original is not None and conv.original.deleted, 10, what="the withdrawal"
    )
    generates = sum(1 for c in kie_sim.calls if c.endpoint == "generate")
    assert (
        click.response_type,
        "no longer kept" in answer,
        len(ledger_rows(bot.env)),
        generates,
    ) == (5, True, 1, 1)


async def test_reroll_and_edit_results_link_their_parent(discord_fake, kie_sim, bot_factory):
    """A re-roll's and an edit's details say where they came from, linking the parent's message."""
    await bot_factory(USER_MAX_ACTIVE_TASKS="5")
    first = await discord_fake.slash("imagine", {"prompt": "a teapot"})
    result = await image_of(discord_fake, first)
    rerolled = await image_of(discord_fake, await discord_fake.click(result, label="Re-roll"))
    opened = await discord_fake.click(result, label="Edit")
    await modal_of(discord_fake, opened)
    edited = await image_of(
        discord_fake, await discord_fake.submit_modal(opened, {"Prompt": "add steam"})
    )
    parent = f"[task {task_id_of(result)}]({link_to(discord_fake, result)})"
    assert (from_field(result), from_field(rerolled), from_field(edited)) == (
        None,
        f"Re-roll of {parent}",
        f"Edit of {parent}",
    )


async def test_compare_of_an_edited_result_a_day_later(
    discord_fake, kie_sim, bot_factory, bot_clock
):
    """Edit on a result makes an edit whose input is that result: a day later (KIE's upload
    copies are gone by then, its results are not), Compare still shows both, the parent's
    result on the left."""
    await bot_factory(**bot_clock.env)
    first = await image_of(
        discord_fake, await discord_fake.slash("imagine", {"prompt": "a yellow kite"})
    )
    opened = await discord_fake.click(first, label="Edit")
    await modal_of(discord_fake, opened)
    edited = await image_of(
        discord_fake, await discord_fake.submit_modal(opened, {"Prompt": "add a tail"})
    )
    bot_clock.advance(24 * 3600)
    click = await discord_fake.click(edited, label="Compare")
    conv = discord_fake.conversation(click)
    await discord_fake.wait_until(
        lambda: any(m.text for m in conv.ephemeral_messages), 20, what="the answer"
    )
    sizes = []
    for message in (first, edited):
        with Image.open(io.BytesIO(message.attachments[0].data or b"")) as shown:
            sizes.append(shown.size)
    height = min(max(sizes[0][1], sizes[1][1]), MAX_HEIGHT)
    widths = [round(w * height / h) for w, h in sizes]
    shown_sizes = []
    for message in conv.ephemeral_messages:
        for attachment in message.attachments:
            with Image.open(io.BytesIO(attachment.data or b"")) as composite:
                shown_sizes.append(composite.size)
    assert shown_sizes == [(widths[0] + GAP + widths[1], height)]


async def test_reframe_works_after_a_restart(discord_fake, kie_sim, bot_process):
    """The Reframe select is persistent: after a restart a choice still opens its modal."""
    result = await image_of(
        discord_fake, await discord_fake.slash("imagine", {"prompt": "a quiet pier"})
    )
    await bot_process.stop()
    await bot_process.start()
    chosen = await discord_fake.select(result, ["21:9"], placeholder="Reframe…")
    modal = await modal_of(discord_fake, chosen)
    assert (modal["title"], [i.get("value") for i in text_inputs(modal)]) == (
        "Reframe to 21:9",
        [REFRAME_PROMPT],
    )


async def test_reframe_of_a_private_result_is_private_and_names_its_parent_unlinked(
    discord_fake, kie_sim, bot_process
):
    """Reframe on an ephemeral result works for its owner; the new result is ephemeral too and
    names its parent without a link (an ephemeral message has none anyone could open)."""
    first = await discord_fake.slash("imagine", {"prompt": "a hidden path", "private": True})
    result = await image_of(discord_fake, first)
    chosen = await discord_fake.select(result, ["3:4"], placeholder="Reframe…")
    await modal_of(discord_fake, chosen)
    reframed = await image_of(discord_fake, await discord_fake.submit_modal(chosen, {}))
    assert (
        result.ephemeral,
        reframed.ephemeral,
        from_field(reframed),
        list(kie_sim.tasks.values())[1].request["aspectRatio"],
    ) == (True, True, f"Reframe (3:4) of task {task_id_of(result)}", "3:4")
