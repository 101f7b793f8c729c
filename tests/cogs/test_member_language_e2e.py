"""A task's messages in its member's Discord language (tasks.locale): status, result details,
failure reasons. Real bot, fake Discord, KIE simulator."""

from __future__ import annotations

import json
from typing import Any

from e2e_checks import ledger_rows
from e2e_helpers import BotProcess
from fakediscord import FakeDiscord, FakeInteraction, FakeUser, MessageView


def member(fake: FakeDiscord, name: str, locale: str, permissions: int | None = None) -> FakeUser:
    user = fake.add_user(name, permissions=permissions)
    user.locale = locale
    return user


async def final_message(fake: FakeDiscord, inter: FakeInteraction, what: str) -> MessageView:
    """The reply once it shows an image, or a failure (an embed with a red colour)."""
    conv = fake.conversation(inter)

    def finished() -> MessageView | None:
        original = conv.original
        if original is None or not original.embeds:
            return None
        if original.attachments or original.embeds[0].get("color") == 0xE74C3C:
            return original
        return None

    await fake.wait_until(finished, 20, what=what)
    result = finished()
    assert result is not None
    return result


def fields(message: MessageView) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message.embeds[0]["fields"]}


async def test_a_spanish_member_sees_the_status_and_the_result_details_in_spanish(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """Locale es-ES: the status while generating and the finished image's details are Spanish;
    the prompt is kept as written."""
    kie_sim.config.delay = 4.0
    lucia = member(discord_fake, "lucia", "es-ES")

    inter = await discord_fake.slash(
        "imagine", {"prompt": "un faro en la tormenta", "model": "flux-kontext-max"}, user=lucia
    )
    result = await final_message(discord_fake, inter, "the image")

    statuses = [h["embeds"][0]["title"] for h in result.history if h.get("embeds")]
    assert any(title.startswith("Generando — ") for title in statuses), statuses
    embed = result.embeds[0]
    assert embed["title"] == "Imagen lista"
    details = fields(result)
    assert list(details) == ["Modelo", "Relación de aspecto", "Pedida por", "Tardó"]
    assert (details["Modelo"], details["Relación de aspecto"]) == ("Max", "16:9")
    assert details["Pedida por"] == f"<@{lucia.id}>"
    assert embed["footer"]["text"].startswith("Tarea ")
    assert "un faro en la tormenta" in embed["description"]


async def test_a_chinese_member_sees_a_failure_reason_in_chinese(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """Locale zh-CN: KIE's content filter refusal is told in Simplified Chinese."""
    kie_sim.script("content_policy")
    wei = member(discord_fake, "wei", "zh-CN")

    inter = await discord_fake.slash("imagine", {"prompt": "a storm"}, user=wei)
    failed = await final_message(discord_fake, inter, "the failure")

    embed = failed.embeds[0]
    assert embed["title"] == "失败"
    assert "KIE 的内容过滤器拦截了提示词或图片" in embed["description"], embed
    assert "**提示词：** a storm" in embed["description"]


async def test_a_reroll_speaks_the_language_of_whoever_clicked(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """An English member's result, re-rolled by a moderator whose Discord is in Japanese: the
    new result's details are Japanese and name where it came from."""
    first = await discord_fake.slash("imagine", {"prompt": "a teapot"})
    original = await final_message(discord_fake, first, "the first image")
    assert original.embeds[0]["title"] == "Image ready"
    discord_fake.moderator.locale = "ja"

    again = await discord_fake.click(original, label="Re-roll", user=discord_fake.moderator)
    rerolled = await final_message(discord_fake, again, "the re-rolled image")

    details = fields(rerolled)
    assert rerolled.embeds[0]["title"] == "画像が完成しました"
    assert details["作成元"].endswith("の再生成"), json.dumps(details, ensure_ascii=False)


async def test_a_japanese_members_set_names_its_failed_image_in_japanese(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """A set of 2 for locale ja, one failing at KIE: the set's status counts and names the
    failure in Japanese."""
    kie_sim.script("success", 1)
    kie_sim.script("generation_failed", 1)
    yuki = member(discord_fake, "yuki", "ja")

    inter = await discord_fake.slash("imagine", {"prompt": "two cats", "count": 2}, user=yuki)
    conv = discord_fake.conversation(inter)

    def settled() -> bool:
        original = conv.original
        return original is not None and len(original.attachments) == 1 and "失敗" in original.text

    await discord_fake.wait_until(settled, 20, what="one image in and the other's failure")
    assert conv.original is not None
    embed = conv.original.embeds[0]
    assert embed["title"] == "2 枚中 1 枚完成"
    assert "KIE はこの画像を生成できませんでした。" in embed["description"]
    assert embed["footer"]["text"].startswith("セット ")


async def test_show_takes_a_spanish_footer_pasted_as_it_is(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """A Spanish member copies the result's footer, "Tarea <id>", into /show: the same image is
    posted again."""
    lucia = member(discord_fake, "lucia", "es-ES")
    first = await discord_fake.slash("imagine", {"prompt": "un barco"}, user=lucia)
    result = await final_message(discord_fake, first, "the image")
    footer = result.embeds[0]["footer"]["text"]
    assert footer.startswith("Tarea ")
    await discord_fake.wait_until(  # the image shows a moment before the ledger says done
        lambda: [r.state for r in ledger_rows(bot_process.env)] == ["done"], 20, what="done"
    )

    shown = await discord_fake.slash("show", {"task": footer}, user=lucia)
    again = await final_message(discord_fake, shown, "the image shown again")

    assert again.embeds[0]["footer"]["text"] == footer
    assert again.attachments[0].data == result.attachments[0].data
