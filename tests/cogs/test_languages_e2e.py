"""Every member's language: the synced command tree carries its Chinese, Spanish and Japanese
names, and a member's answers come in the language of their Discord (English otherwise)."""

from __future__ import annotations

from typing import Any

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
