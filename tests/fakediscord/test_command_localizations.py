"""A command sync's names, descriptions and localisations follow Discord's rules (400 50035 with
the error tree), and the synced localisations are served back."""

from __future__ import annotations

from typing import Any

import pytest

from fakediscord import FakeDiscord
from tests.fakediscord.test_fake_rules import api


def imagine(**changes: Any) -> dict[str, Any]:
    command: dict[str, Any] = {
        "type": 1,
        "name": "imagine",
        "description": "Generate an image",
        "name_localizations": {"ja": "画像生成", "es-ES": "imaginar"},
        "description_localizations": {"ja": "画像を生成します"},
        "options": [
            {
                "type": 3,
                "name": "prompt",
                "description": "What to draw",
                "name_localizations": {"zh-CN": "提示词"},
                "choices": [
                    {"name": "Square", "value": "1:1", "name_localizations": {"ja": "正方形"}}
                ],
            }
        ],
    }
    command.update(changes)
    return command


async def put(fake: FakeDiscord, body: list[dict[str, Any]]) -> tuple[int, Any]:
    status, answer, _ = await api(fake, "PUT", f"/applications/{fake.app_id}/commands", body)
    return status, answer


async def test_localisations_are_stored_and_served_back(discord_fake: FakeDiscord) -> None:
    status, _ = await put(discord_fake, [imagine()])
    assert status == 200
    _, served, _ = await api(discord_fake, "GET", f"/applications/{discord_fake.app_id}/commands")
    option = served[0]["options"][0]
    assert (
        served[0]["name_localizations"]["ja"],
        served[0]["description_localizations"]["ja"],
        option["name_localizations"]["zh-CN"],
        option["choices"][0]["name_localizations"]["ja"],
    ) == ("画像生成", "画像を生成します", "提示词", "正方形")


BAD_SYNCS = [
    # A locale Discord does not have (a gettext-style code).
    (
        imagine(name_localizations={"pt_BR": "imaginar"}),
        ["0", "name_localizations", "pt_BR"],
        "BASE_TYPE_CHOICES",
    ),
    # A slash command's localised name with a capital or a space: on the whole object.
    (imagine(name_localizations={"es-ES": "Imaginar"}), ["0", "name_localizations"], None),
    (imagine(name_localizations={"ja": "画像 生成"}), ["0", "name_localizations"], None),
    # Over 32 characters.
    (imagine(name_localizations={"es-ES": "i" * 33}), ["0", "name_localizations"], None),
    # A description over 100 characters, or empty.
    (
        imagine(description_localizations={"ja": "あ" * 101}),
        ["0", "description_localizations", "ja"],
        "BASE_TYPE_BAD_LENGTH",
    ),
    (imagine(description=""), ["0", "description"], "BASE_TYPE_BAD_LENGTH"),
    # An option's bad localised name is reported on its locale.
    (
        imagine(
            options=[
                {
                    "type": 3,
                    "name": "prompt",
                    "description": "d",
                    "name_localizations": {"ja": "a b"},
                }
            ]
        ),
        ["0", "options", "0", "name_localizations", "ja"],
        None,
    ),
    # A choice's localised name over 100 characters.
    (
        imagine(
            options=[
                {
                    "type": 3,
                    "name": "ratio",
                    "description": "d",
                    "choices": [
                        {"name": "x", "value": "x", "name_localizations": {"ja": "x" * 101}}
                    ],
                }
            ]
        ),
        ["0", "options", "0", "choices", "0", "name_localizations", "ja"],
        "BASE_TYPE_BAD_LENGTH",
    ),
    # A slash command's own name in capitals.
    (imagine(name="Imagine"), ["0", "name"], None),
]


@pytest.mark.parametrize(("command", "error_path", "code"), BAD_SYNCS)
async def test_bad_names_and_localisations_are_50035(
    discord_fake: FakeDiscord, command: dict[str, Any], error_path: list[str], code: str | None
) -> None:
    status, body = await put(discord_fake, [command])
    assert (status, body["code"]) == (400, 50035)
    node = body["errors"]
    for key in error_path:
        node = node[key]
    assert node["_errors"][0]["code"] == (code or "APPLICATION_COMMAND_INVALID_NAME")
    assert not discord_fake.global_commands


async def test_a_context_menu_name_may_have_capitals_and_spaces(discord_fake: FakeDiscord) -> None:
    menu = {
        "type": 3,
        "name": "Edit with Flux Kontext",
        "name_localizations": {"ja": "Flux Kontext で編集", "es-ES": "Editar con Flux Kontext"},
    }
    status, _ = await put(discord_fake, [menu])
    assert status == 200
