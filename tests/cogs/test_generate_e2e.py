"""/imagine, /edit, the context menu and the result buttons, end to end through the fakes."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from e2e_checks import ledger_rows
from fakediscord import FakeDiscord, MessageView
from PIL import Image


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "navy", fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


async def wait_for_image(fake: FakeDiscord, inter: Any, timeout: float = 20) -> MessageView:
    conv = fake.conversation(inter)

    def done() -> bool:
        return any(m.attachments for m in conv.messages)

    await fake.wait_until(done, timeout, what="an image in the conversation")
    return next(m for m in conv.messages if m.attachments)


async def wait_for_text(fake: FakeDiscord, inter: Any, needle: str, timeout: float = 20) -> str:
    conv = fake.conversation(inter)
    await fake.wait_until(lambda: needle in conv.text, timeout, what=f"{needle!r} in the reply")
    return conv.text


def image_posts(fake: FakeDiscord) -> list[MessageView]:
    return [m for m in fake.channel_messages() if m.attachments]


async def test_imagine_shows_progress_then_image(discord_fake, kie_sim, bot_process):
    """The reply moves through visible states and ends with the image, details and buttons."""
    kie_sim.config.delay = 4.0
    inter = await discord_fake.slash(
        "imagine", {"prompt": "a lighthouse in a storm", "model": "flux-kontext-max"}
    )
    message = await wait_for_image(discord_fake, inter)
    history = " ".join(json.dumps(h) for h in message.history)
    assert "Generating" in history
    embed = message.embeds[0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Model"] == "Max"
    assert fields["Aspect ratio"] == "16:9"
    assert fields["Requested by"] == f"<@{discord_fake.member.id}>"
    assert "lighthouse" in embed["description"]
    assert embed["image"]["url"].startswith("attachment://")
    assert kie_sim.count("generate") == 1
    request = next(iter(kie_sim.tasks.values())).request
    assert request["model"] == "flux-kontext-max"


async def test_edit_uploads_input_and_posts_result(discord_fake, kie_sim, bot_process):
    """/edit downloads the attachment, uploads it to KIE as inputImage, and posts the result."""
    inter = await discord_fake.slash(
        "edit",
        {
            "image": ("photo.png", png_bytes(), "image/png"),
            "prompt": "make it night",
            "aspect_ratio": "4:3",
        },
    )
    message = await wait_for_image(discord_fake, inter)
    assert kie_sim.count("upload") == 1
    request = next(iter(kie_sim.tasks.values())).request
    assert request["inputImage"].startswith(kie_sim.base_url)
    assert request["aspectRatio"] == "4:3"
    image = Image.open(io.BytesIO(message.attachments[0].data))
    assert abs(image.width / image.height - 4 / 3) < 0.02


async def test_edit_converts_gif_input(discord_fake, kie_sim, bot_process):
    """A still GIF is converted (to JPEG, having no alpha) before it is uploaded to KIE."""
    inter = await discord_fake.slash(
        "edit", {"image": ("anim.gif", png_bytes(fmt="GIF"), "image/gif"), "prompt": "sharpen"}
    )
    await wait_for_image(discord_fake, inter)
    upload = next(c for c in kie_sim.calls if c.endpoint == "upload")
    assert upload.status == 200
    stored = [t.request["inputImage"] for t in kie_sim.tasks.values()]
    assert stored and stored[0].endswith((".png", ".jpg"))


async def test_context_menu_edits_first_image(discord_fake, kie_sim, bot_process):
    """Apps → Edit with Flux Kontext asks for a prompt in a modal and edits the message's image."""
    target = discord_fake.inject_message(
        "look at this",
        attachments=[("notes.txt", b"hello", "text/plain"), ("cat.png", png_bytes(), "image/png")],
    )
    opened = await discord_fake.message_command("Edit with Flux Kontext", target)
    await discord_fake.wait_until(lambda: opened.modal is not None, 10, what="the modal")
    submitted = await discord_fake.submit_modal(opened, {"Prompt": "give the cat a hat"})
    await wait_for_image(discord_fake, submitted)
    task = next(iter(kie_sim.tasks.values()))
    assert task.request["prompt"] == "give the cat a hat"
    assert "inputImage" in task.request


async def test_context_menu_without_image_is_refused(discord_fake, kie_sim, bot_process):
    """A message with no image gets a clear ephemeral answer and no modal."""
    target = discord_fake.inject_message("just words")
    inter = await discord_fake.message_command("Edit with Flux Kontext", target)
    text = await wait_for_text(discord_fake, inter, "no image")
    assert discord_fake.conversation(inter).ephemeral
    assert inter.modal is None
    assert "no image" in text
    assert kie_sim.count("generate") == 0


async def test_reroll_by_owner_and_moderator_not_by_others(discord_fake, kie_sim, bot_factory):
    """Re-roll makes a new task with the same parameters; another member is told it isn't theirs."""
    await bot_factory(USER_MAX_ACTIVE_TASKS="5")
    first = await discord_fake.slash("imagine", {"prompt": "a teapot", "aspect_ratio": "9:16"})
    result = await wait_for_image(discord_fake, first)

    stranger = discord_fake.add_user("bob")
    refused = await discord_fake.click(result, label="Re-roll", user=stranger)
    text = await wait_for_text(discord_fake, refused, "isn't yours")
    assert discord_fake.conversation(refused).ephemeral
    assert "isn't yours" in text

    again = await discord_fake.click(result, label="Re-roll")
    await wait_for_image(discord_fake, again)
    by_mod = await discord_fake.click(result, label="Re-roll", user=discord_fake.moderator)
    await wait_for_image(discord_fake, by_mod)
    requests = [t.request for t in kie_sim.tasks.values()]
    assert len(requests) == 3
    assert all(r["prompt"] == "a teapot" and r["aspectRatio"] == "9:16" for r in requests)


async def test_edit_button_uses_result_as_input(discord_fake, kie_sim, bot_process):
    """Edit opens a modal; the new task edits the previous result (its KIE URL as inputImage)."""
    first = await discord_fake.slash("imagine", {"prompt": "a bare tree"})
    result = await wait_for_image(discord_fake, first)
    first_task = next(iter(kie_sim.tasks.values()))
    opened = await discord_fake.click(result, label="Edit")
    await discord_fake.wait_until(lambda: opened.modal is not None, 10, what="the modal")
    submitted = await discord_fake.submit_modal(opened, {"Prompt": "add autumn leaves"})
    await wait_for_image(discord_fake, submitted)
    second = list(kie_sim.tasks.values())[1]
    assert second.request["prompt"] == "add autumn leaves"
    assert second.request["inputImage"] == first_task.result_url


async def test_button_of_unknown_task_answers_gone(discord_fake, kie_sim, bot_process):
    """A click on a result whose task is unknown gets an ephemeral explanation."""
    msg = discord_fake.inject_message("old result", author=discord_fake.bot_user)
    msg.components = [
        {
            "type": 1,
            "components": [
                {
                    "type": 2,
                    "style": 2,
                    "label": "Re-roll",
                    "custom_id": "kontext:reroll:0123456789ab",
                }
            ],
        }
    ]
    inter = await discord_fake.click(msg, label="Re-roll")
    text = await wait_for_text(discord_fake, inter, "no longer exists")
    assert "no longer exists" in text


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"prompt": "   "}, "empty"),
        ({"prompt": "x" * 1501}, "limit is 1500"),
        ({"prompt": "a cat", "aspect_ratio": "5:4"}, "aspect_ratio"),
        ({"prompt": "a cat", "model": "flux-dev"}, "model"),
        ({"prompt": "a cat", "safety_tolerance": 7}, "between 0 and 6"),
    ],
)
async def test_invalid_options_cost_nothing(discord_fake, kie_sim, bot_factory, options, needle):
    """Bad options get an ephemeral reason; no task, no KIE call, no cooldown charged."""
    bot = await bot_factory(USER_COOLDOWN_SECONDS="600")
    inter = await discord_fake.slash("imagine", options)
    text = await wait_for_text(discord_fake, inter, needle)
    assert discord_fake.conversation(inter).ephemeral
    assert needle in text
    assert kie_sim.count("generate") == 0
    assert ledger_rows(bot.env) == []
    ok = await discord_fake.slash("imagine", {"prompt": "a cat"})
    await wait_for_image(discord_fake, ok)


async def test_edit_tolerance_above_two_is_refused(discord_fake, kie_sim, bot_process):
    """safety_tolerance 3 on /edit is outside KIE's edit range: refused before anything is spent."""
    inter = await discord_fake.slash(
        "edit", {"image": ("a.png", png_bytes(), "image/png"), "prompt": "x", "safety_tolerance": 3}
    )
    await wait_for_text(discord_fake, inter, "between 0 and 2")
    assert kie_sim.count("upload") == 0 and kie_sim.count("generate") == 0


async def test_cooldown_answers_with_relative_time(discord_fake, kie_sim, bot_factory):
    """A second submission inside the cooldown is refused with <t:…:R> and makes no KIE call."""
    await bot_factory(USER_COOLDOWN_SECONDS="120", USER_MAX_ACTIVE_TASKS="5")
    first = await discord_fake.slash("imagine", {"prompt": "one"})
    await wait_for_image(discord_fake, first)
    second = await discord_fake.slash("imagine", {"prompt": "two"})
    text = await wait_for_text(discord_fake, second, "try again")
    assert "<t:" in text and ":R>" in text
    assert discord_fake.conversation(second).ephemeral
    assert kie_sim.count("generate") == 1


async def test_active_task_cap(discord_fake, kie_sim, bot_factory):
    """A member with USER_MAX_ACTIVE_TASKS open tasks is told to wait; others are not affected."""
    kie_sim.config.delay = 5.0
    await bot_factory(USER_MAX_ACTIVE_TASKS="1")
    first = await discord_fake.slash("imagine", {"prompt": "slow one"})
    await discord_fake.wait_until(
        lambda: kie_sim.count("generate") == 1, 10, what="the first submit"
    )
    second = await discord_fake.slash("imagine", {"prompt": "too many"})
    await wait_for_text(discord_fake, second, "in progress")
    other = await discord_fake.slash(
        "imagine", {"prompt": "bob's"}, user=discord_fake.add_user("bob")
    )
    await wait_for_image(discord_fake, other)
    await wait_for_image(discord_fake, first)
    assert kie_sim.count("generate") == 2


@pytest.mark.parametrize(
    ("marker", "needle", "rerollable"),
    [
        ("[sim:policy]", "content filter", True),
        ("[sim:fail]", "Re-roll", True),
    ],
)
async def test_task_failures_are_explained(
    discord_fake, kie_sim, bot_process, marker, needle, rerollable
):
    """KIE's task outcomes (content policy, generation failed) each get their own message."""
    inter = await discord_fake.slash("imagine", {"prompt": f"a dragon {marker}"})
    await wait_for_text(discord_fake, inter, needle)
    original = discord_fake.conversation(inter).original
    assert original is not None
    assert original.embeds[0]["title"].startswith("Failed")
    labels = [b.get("label") for b in original.buttons]
    assert ("Re-roll" in labels) == rerollable
    assert not original.attachments


async def test_out_of_credits_is_explained(discord_fake, kie_sim, bot_process):
    """A 402 on generate tells the member the bot is out of credits; no retry is attempted."""
    kie_sim.set_credits(0)
    inter = await discord_fake.slash("imagine", {"prompt": "anything"})
    await wait_for_text(discord_fake, inter, "out of KIE credits")
    assert kie_sim.count("generate") == 1


async def test_refused_api_key_is_explained(discord_fake, kie_sim, bot_process):
    """A 401 from KIE says the bot's key was refused, not a raw error."""
    kie_sim.config.api_key = "the-only-key"
    inter = await discord_fake.slash("imagine", {"prompt": "anything"})
    text = await wait_for_text(discord_fake, inter, "API key was refused")
    assert "Traceback" not in text


async def test_maintenance_is_retried_then_explained(discord_fake, kie_sim, bot_process):
    """455 on generate is retried; when it persists the member is told KIE is under maintenance."""
    kie_sim.fail_next("generate", code=455, count=10)
    inter = await discord_fake.slash("imagine", {"prompt": "anything"})
    await wait_for_text(discord_fake, inter, "maintenance", timeout=40)
    assert kie_sim.count("generate") == 3


async def test_transient_500_on_generate_recovers(discord_fake, kie_sim, bot_process):
    """One internal error on generate is retried and the image still arrives."""
    kie_sim.fail_next("generate", code=500, count=1)
    inter = await discord_fake.slash("imagine", {"prompt": "anything"})
    await wait_for_image(discord_fake, inter, timeout=30)
    assert kie_sim.count("generate") == 2


async def test_invalid_parameters_are_explained(discord_fake, kie_sim, bot_process):
    """A 422 from KIE is explained as refused parameters and not retried."""
    kie_sim.fail_next("generate", code=422, count=1)
    inter = await discord_fake.slash("imagine", {"prompt": "anything"})
    await wait_for_text(discord_fake, inter, "refused the request")
    assert kie_sim.count("generate") == 1


async def test_rate_limit_requeues_and_says_when(discord_fake, kie_sim, bot_process):
    """A KIE 429 does not fail the task: the status says when it retries, then the image arrives."""
    kie_sim.fail_next("generate", status=429, code=429, count=1)
    inter = await discord_fake.slash("imagine", {"prompt": "patience"})
    await wait_for_text(discord_fake, inter, "retrying")
    await wait_for_image(discord_fake, inter, timeout=30)
    assert kie_sim.count("generate") == 2


async def test_expired_token_falls_back_to_channel_edit(discord_fake, kie_sim, bot_process):
    """Past the 15-minute token the result is edited into the same message via the channel."""
    kie_sim.config.delay = 3.0
    inter = await discord_fake.slash("imagine", {"prompt": "late"})
    await discord_fake.wait_until(lambda: kie_sim.count("generate") == 1, 10, what="the submit")
    discord_fake.clock.advance(16 * 60)
    message = await wait_for_image(discord_fake, inter)
    assert message.id == discord_fake.conversation(inter).original.id
    edits = discord_fake.find_calls("PATCH", rf"/channels/\d+/messages/{message.id}")
    assert edits


async def test_deleted_reply_gets_a_new_message(discord_fake, kie_sim, bot_process):
    """If the reply was deleted, the image comes in a new message mentioning the requester."""
    kie_sim.config.delay = 2.0
    inter = await discord_fake.slash("imagine", {"prompt": "orphan"})
    await discord_fake.wait_until(lambda: discord_fake.conversation(inter).original is not None, 10)
    original = discord_fake.conversation(inter).original
    discord_fake.messages[original.id].deleted = True
    await discord_fake.wait_until(lambda: bool(image_posts(discord_fake)), 20, what="a new post")
    posts = image_posts(discord_fake)
    assert len(posts) == 1
    assert posts[0].id != original.id
    assert f"<@{discord_fake.member.id}>" in posts[0].content


async def test_oversized_result_is_reencoded(discord_fake, kie_sim, bot_process):
    """A result larger than the interaction's upload limit is re-encoded to fit."""
    kie_sim.config.result_noise = True
    inter = await discord_fake.slash(
        "imagine", {"prompt": "static", "output_format": "png"}, attachment_size_limit=300_000
    )
    message = await wait_for_image(discord_fake, inter, timeout=30)
    data = message.attachments[0].data
    assert len(data) <= 300_000
    Image.open(io.BytesIO(data)).verify()


async def test_restart_after_submission_delivers_once(discord_fake, kie_sim, bot_process):
    """SIGKILL after submission, restart: the result arrives once and generate was called once."""
    kie_sim.config.delay = 3.0
    inter = await discord_fake.slash("imagine", {"prompt": "phoenix"})
    await discord_fake.wait_until(
        lambda: any(r.state == "generating" for r in ledger_rows(bot_process.env)),
        10,
        what="generating",
    )
    await bot_process.kill()
    await bot_process.start()
    await wait_for_image(discord_fake, inter, timeout=30)
    assert kie_sim.count("generate") == 1
    assert len(image_posts(discord_fake)) == 1
    await discord_fake.wait_until(
        lambda: [r.state for r in ledger_rows(bot_process.env)] == ["done"], 10, what="done"
    )


async def test_results_finished_while_down_are_delivered(discord_fake, kie_sim, bot_process):
    """A task that finished while the bot was down is delivered on the next start."""
    kie_sim.config.delay = 0.5
    kie_sim.config.delay = 1.0
    inter = await discord_fake.slash("imagine", {"prompt": "while away"})
    await discord_fake.wait_until(lambda: kie_sim.count("generate") == 1, 10, what="the submit")
    await bot_process.stop()
    await discord_fake.wait_until(
        lambda: all(t.flag != 0 for t in kie_sim.tasks.values()), 10, what="KIE to finish"
    )
    await bot_process.start()
    await wait_for_image(discord_fake, inter)
    assert kie_sim.count("generate") == 1


def stored_inputs(env: dict[str, str]) -> int:
    path = Path(env["DATABASE_URL"].removeprefix("sqlite:///"))
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT COUNT(*) FROM inputs").fetchone()[0])
    finally:
        con.close()


async def test_input_images_are_purged_after_retention(discord_fake, kie_sim, bot_process):
    """A finished edit's input image is kept for Re-roll, then purged per INPUT_RETENTION_DAYS."""
    inter = await discord_fake.slash(
        "edit", {"image": ("photo.png", png_bytes(), "image/png"), "prompt": "make it night"}
    )
    await wait_for_image(discord_fake, inter)
    assert stored_inputs(bot_process.env) == 1
    await bot_process.stop()
    await bot_process.start(env={"INPUT_RETENTION_DAYS": "0"})
    # The log line is written after the purge's ledger write: wait for the line itself.
    await discord_fake.wait_until(
        lambda: "purged 1 stored input image" in bot_process.log_text(),
        10,
        what="the purge at start-up",
    )
    assert stored_inputs(bot_process.env) == 0
