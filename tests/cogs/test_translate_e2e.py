"""The message command "Translate text in image", end to end: real bot, fake Discord, KIE
simulator."""

from __future__ import annotations

import io
from typing import Any

from e2e_checks import ledger_rows
from e2e_helpers import BotProcess
from fakediscord import FakeDiscord, FakeInteraction, FakeUser
from PIL import Image

MENU = "Translate text in image"
SIGN_SIZE = (96, 40)  # an odd shape, to know the image KIE received


def sign() -> Image.Image:
    """A white sign with a red band: its pixels tell it from any other image."""
    image = Image.new("RGB", SIGN_SIZE, "white")
    image.paste((200, 0, 0), (0, 12, SIGN_SIZE[0], 28))
    return image


def sign_png() -> bytes:
    buf = io.BytesIO()
    sign().save(buf, format="PNG")
    return buf.getvalue()


def language_select(opened: FakeInteraction) -> dict[str, Any]:
    """The string select in the modal the bot opened."""
    assert opened.modal is not None
    for row in opened.modal["components"]:
        component = row.get("component") or {}
        if component.get("type") == 3:
            return component
    raise AssertionError(f"no select in {opened.modal}")


async def open_menu(fake: FakeDiscord, user: FakeUser | None = None) -> FakeInteraction:
    target = fake.inject_message(
        "our shop sign",
        attachments=[("readme.txt", b"hi", "text/plain"), ("sign.png", sign_png(), "image/png")],
    )
    opened = await fake.message_command(MENU, target, user=user)
    await fake.wait_until(lambda: opened.modal is not None, 10, what="the language modal")
    return opened


async def kie_request(fake: FakeDiscord, kie_sim: Any) -> Any:
    await fake.wait_until(
        lambda: kie_sim.tasks and next(iter(kie_sim.tasks.values())).input_data,
        20,
        what="KIE fetching the input image",
    )
    return next(iter(kie_sim.tasks.values()))


async def test_translate_rewrites_the_text_of_the_first_image_into_the_picked_language(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """The member picks Japanese: KIE gets an edit of the message's image (its size) with the
    English instruction naming Japanese, on Max."""
    opened = await open_menu(discord_fake)

    submitted = await discord_fake.submit_modal(opened, {"Language": ["ja"]})
    task = await kie_request(discord_fake, kie_sim)

    assert task.request["prompt"].startswith(
        "Translate all visible text in the image into Japanese. Replace each piece of text "
        "with its Japanese translation in the same position, keeping the original layout, "
        "font style, size and colours"
    )
    assert task.request["model"] == "flux-kontext-max"
    with Image.open(io.BytesIO(task.input_data)) as received:
        assert received.convert("RGB").tobytes() == sign().tobytes()
    await discord_fake.wait_until(
        lambda: any(m.attachments for m in discord_fake.conversation(submitted).messages),
        20,
        what="the translated image",
    )


async def test_the_list_opens_on_the_members_language_and_offers_25(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """Submitted as it opens (en-US member), the modal translates into English; the list holds
    Discord's limit of 25 languages, the member's first and chosen."""
    opened = await open_menu(discord_fake)
    select = language_select(opened)
    assert len(select["options"]) == 25
    assert [o["label"] for o in select["options"] if o.get("default")] == ["English"]

    await discord_fake.submit_modal(opened, {})
    task = await kie_request(discord_fake, kie_sim)

    assert "into English." in task.request["prompt"]


async def test_a_japanese_member_gets_the_box_in_japanese_with_japanese_chosen(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """Locale ja: the modal speaks Japanese and, submitted as it opens, translates into
    Japanese."""
    yuki = discord_fake.add_user("yuki")
    yuki.locale = "ja"
    opened = await open_menu(discord_fake, yuki)
    assert opened.modal is not None
    assert opened.modal["title"] == "画像内の文字を翻訳"
    assert [o["value"] for o in language_select(opened)["options"] if o.get("default")] == ["ja"]

    await discord_fake.submit_modal(opened, {}, user=yuki)
    task = await kie_request(discord_fake, kie_sim)

    assert "into Japanese." in task.request["prompt"]


async def test_a_typed_language_wins_over_the_list(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """A language Discord has no locale for, typed in "Other language", is the one asked for."""
    opened = await open_menu(discord_fake)

    await discord_fake.submit_modal(opened, {"Language": ["fr"], "Other language": " Catalan "})
    task = await kie_request(discord_fake, kie_sim)

    assert "into Catalan." in task.request["prompt"]


async def test_translate_on_a_message_without_image_answers_privately(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: dict[str, str]
) -> None:
    """No image: a private "no image" answer, no modal, no task."""
    target = discord_fake.inject_message("just words")
    inter = await discord_fake.message_command(MENU, target)
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.text, timeout=10)

    assert conv.ephemeral and "no image" in conv.text, conv
    assert inter.modal is None
    assert (ledger_rows(bot_env), kie_sim.count("generate")) == ([], 0)
