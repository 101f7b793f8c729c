"""Every member's language: the synced command tree carries its Chinese, Spanish and Japanese
names, and a member's answers come in the language of their Discord (English otherwise)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from e2e_checks import ephemeral_texts, ledger_rows
from e2e_helpers import COMMANDS_PUT, BotProcess
from fakediscord import FakeDiscord


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(item for item in items if item["name"] == name)


async def test_the_synced_imagine_is_named_and_described_in_three_languages(
    discord_fake: FakeDiscord, bot_process: BotProcess
) -> None:
    """The PUT the fake accepted (it checks Discord's rules) and serves back has /imagine's
    name, description, options and choices in zh-CN, es-ES and ja."""
    assert discord_fake.find_calls("PUT", COMMANDS_PUT)[-1].status == 200
    imagine = by_name(discord_fake.global_commands, "imagine")
    prompt = by_name(imagine["options"], "prompt")
    ratio = by_name(imagine["options"], "aspect_ratio")
    wide = next(c for c in ratio["choices"] if c["value"] == "16:9")
    seen = {
        locale: (
            imagine["name_localizations"][locale],
            imagine["description_localizations"][locale],
            prompt["name_localizations"][locale],
            prompt["description_localizations"][locale],
            wide["name_localizations"][locale],
        )
        for locale in ("zh-CN", "es-ES", "ja")
    }
    assert seen == {
        "zh-CN": (
            "生成",
            "用 Flux Kontext 根据提示词生成图像",
            "提示词",
            "要画什么（英文效果最好）",
            "16:9 — 宽屏",
        ),
        "es-ES": (
            "imaginar",
            "Genera una imagen a partir de una instrucción con Flux Kontext",
            "instrucción",
            "Qué dibujar (en inglés funciona mejor)",
            "16:9 — panorámico",
        ),
        "ja": (
            "画像生成",
            "Flux Kontext でプロンプトから画像を生成します",
            "プロンプト",
            "描きたいもの（英語が最もうまくいきます）",
            "16:9 — ワイド",
        ),
    }
    menu = by_name(discord_fake.global_commands, "Edit with Flux Kontext")
    assert menu["name_localizations"]["ja"] == "Flux Kontext で編集"


async def test_a_refusal_comes_in_the_members_language(
    discord_fake: FakeDiscord, bot_process: BotProcess
) -> None:
    """An empty prompt (only a zero-width space) is refused privately in Japanese, Spanish, or
    English for a locale the bot has no catalogue for (pt-BR); nothing is written."""
    answers = {}
    for name, locale in (("aiko", "ja"), ("lucia", "es-ES"), ("joao", "pt-BR")):
        member = discord_fake.add_user(name)
        member.locale = locale
        inter = await discord_fake.slash("imagine", {"prompt": "\u200b"}, user=member)
        texts = await discord_fake.wait_until(
            lambda inter=inter: ephemeral_texts(discord_fake, inter), 10, what=f"{locale} answer"
        )
        answers[locale] = texts[0]
    assert answers == {
        "ja": "プロンプトが空です。欲しい画像を説明してください。",
        "es-ES": "La instrucción está vacía. Describe la imagen que quieres.",
        "pt-BR": "The prompt is empty. Describe the image you want.",
    }
    assert not ledger_rows(bot_process.env)


async def test_a_japanese_members_result_has_japanese_buttons_and_prompt_box(
    discord_fake: FakeDiscord, bot_process: BotProcess
) -> None:
    """The buttons and the Reframe list under a Japanese member's result are in Japanese (the
    task keeps the member's locale), and Edit opens a prompt box titled and labelled in Japanese."""
    aiko = discord_fake.add_user("aiko")
    aiko.locale = "ja"
    inter = await discord_fake.slash("imagine", {"prompt": "a red fox in snow"}, user=aiko)
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.files, timeout=20)
    assert conv.original is not None
    labels = [str(c.get("label")) for c in conv.original.buttons]
    reframe = next(
        c
        for row in conv.original.components
        for c in row.get("components") or []
        if c.get("type") == 3
    )
    wide = next(o["label"] for o in reframe["options"] if o["value"] == "16:9")
    click = await discord_fake.click(conv.original, label="編集", user=aiko)
    await discord_fake.wait_until(lambda: click.modal is not None, 10, what="the prompt box")
    modal = click.modal
    assert modal is not None
    box = modal["components"][0]
    field = box.get("component") or box["components"][0]
    assert (labels, reframe["placeholder"], wide, modal["title"], field["label"]) == (
        ["再生成", "編集"],
        "画角を変更…",
        "16:9 — ワイド",
        "この画像を編集",
        "プロンプト",
    )


async def test_the_mod_log_is_in_the_servers_language(
    discord_fake: FakeDiscord, bot_factory: Callable[..., Awaitable[BotProcess]]
) -> None:
    """In a Spanish server, a Japanese member's task is logged in Spanish (the server's
    preferred locale), buttons included; the member's own reply stays Japanese."""
    discord_fake.guild_locale = "es-ES"
    modlog = discord_fake.add_channel("mod-log")
    await bot_factory()
    setup = await discord_fake.slash(
        "kontext-admin", {"channel": modlog}, subcommand="modlog", user=discord_fake.moderator
    )
    await discord_fake.wait_for_conversation(setup, lambda c: c.text, timeout=10)
    aiko = discord_fake.add_user("aiko")
    aiko.locale = "ja"
    inter = await discord_fake.slash("imagine", {"prompt": "a paper crane"}, user=aiko)
    await discord_fake.wait_for_conversation(inter, lambda c: c.files, timeout=20)
    entries = await discord_fake.wait_until(
        lambda: discord_fake.channel_messages(modlog.id), 10, what="the mod-log entry"
    )
    entry = entries[0]
    assert (entry.embeds[0]["title"], [b["label"] for b in entry.buttons]) == (
        "Imagen · Entregada",
        ["Eliminar resultado", "Bloquear usuario", "Reiniciar cuota"],
    )


async def test_a_chinese_moderator_reads_the_settings_in_chinese(
    discord_fake: FakeDiscord, bot_process: BotProcess
) -> None:
    """/kontext-admin show in a moderator's Simplified Chinese: the title and each setting."""
    discord_fake.moderator.locale = "zh-CN"
    inter = await discord_fake.slash(
        "kontext-admin", subcommand="show", user=discord_fake.moderator
    )
    conv = await discord_fake.wait_for_conversation(
        inter, lambda c: c.ephemeral_messages, timeout=10
    )
    embed = conv.ephemeral_messages[0].embeds[0]
    assert (embed["title"], embed["description"].splitlines()[:2]) == (
        "图像机器人设置",
        ["**频道:** 所有频道", "**默认模型:** Pro（未设置）"],
    )


async def test_kies_own_error_reaches_a_moderator_in_their_language(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """/kontext-admin credits while KIE is under maintenance: the reason KIE's error carries is
    translated too (it was English inside a Japanese sentence)."""
    discord_fake.moderator.locale = "ja"
    kie_sim.fail_next("credit", code=455, count=10)  # every retry of the read too
    inter = await discord_fake.slash(
        "kontext-admin", subcommand="credits", user=discord_fake.moderator
    )
    texts = await discord_fake.wait_until(
        lambda: [t for t in ephemeral_texts(discord_fake, inter) if t], 20, what="the answer"
    )
    assert "KIE は現在メンテナンス中です。" in texts[0], texts
