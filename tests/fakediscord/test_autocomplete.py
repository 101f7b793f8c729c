"""Autocomplete: the fake sends APPLICATION_COMMAND_AUTOCOMPLETE (type 4) with the focused option,
takes the choices (callback 8) within Discord's limits, and a real discord.py client answers it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import discord
import discord.gateway
import discord.http
import pytest
import pytest_asyncio
import yarl
from discord import app_commands
from discord.ext import commands

from fakediscord import FakeDiscord, FakeInteraction
from fakediscord.test_component_limits import error_at
from fakediscord.test_fake_rules import api, cb


def make_bot(seen: list[str]) -> commands.Bot:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents(guilds=True))

    async def tasks(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        seen.append(current)
        return [app_commands.Choice(name=f"{current} {i}", value=f"t{i}") for i in range(3)]

    @bot.tree.command(name="show", description="Show a task again")
    @app_commands.autocomplete(task=tasks)
    async def show(interaction: discord.Interaction, task: str) -> None:
        await interaction.response.send_message(f"task {task}", ephemeral=True)

    tag = app_commands.Group(name="tag", description="Saved tags")

    async def tag_names(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        seen.append(f"tag:{current}")
        return [app_commands.Choice(name=f"{current}-tag", value=f"{current}-tag")]

    @tag.command(name="show", description="Show a tag")
    @app_commands.autocomplete(name=tag_names)
    async def tag_show(interaction: discord.Interaction, name: str) -> None:
        await interaction.response.send_message(name, ephemeral=True)

    bot.tree.add_command(tag)

    async def setup_hook() -> None:
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


@pytest_asyncio.fixture
async def running_bot(
    discord_fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[str]]:
    """A discord.py client with /show and its autocomplete; yields the values it was asked for."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord_fake.api_url)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(discord_fake.gateway_url)
    )
    seen: list[str] = []
    bot = make_bot(seen)
    task = asyncio.create_task(bot.start(discord_fake.token))
    await discord_fake.wait_for_identify()
    await discord_fake.wait_until(lambda: "show" in discord_fake.command_names(), 10)
    try:
        yield seen
    finally:
        await bot.close()
        await asyncio.wait_for(task, 5)


async def test_discordpy_answers_autocomplete_with_choices(
    discord_fake: FakeDiscord, running_bot: list[str]
) -> None:
    """The focused option's partial value reaches the client's autocomplete; its choices come
    back through callback 8 and no message is created."""
    choices = await discord_fake.autocomplete("show", {"task": "par"}, focused="task")
    inter = next(iter(discord_fake.interactions.values()))
    assert (choices, running_bot, inter.type, discord_fake.conversation(inter).messages) == (
        [{"name": f"par {i}", "value": f"t{i}"} for i in range(3)],
        ["par"],
        4,
        [],
    )


async def test_a_subcommands_option_is_completed(
    discord_fake: FakeDiscord, running_bot: list[str]
) -> None:
    """/tag show name: the focused option sits inside the subcommand, as Discord nests it."""
    choices = await discord_fake.autocomplete(
        "tag", {"name": "ab"}, focused="name", subcommand="show"
    )
    assert (choices, running_bot) == ([{"name": "ab-tag", "value": "ab-tag"}], ["tag:ab"])


async def typing_show(fake: FakeDiscord) -> FakeInteraction:
    return await fake.inject(fake.build_autocomplete("show", {"task": "x"}, focused="task"))


def choices(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"name": f"n{i}", "value": f"v{i}", **fields} for i in range(count)]


@pytest.mark.parametrize(
    ("given", "path", "code"),
    [
        (choices(26), ["data", "choices"], "BASE_TYPE_MAX_LENGTH"),
        (choices(1, name=""), ["data", "choices", "0", "name"], "BASE_TYPE_BAD_LENGTH"),
        (choices(1, name="n" * 101), ["data", "choices", "0", "name"], "BASE_TYPE_BAD_LENGTH"),
        (choices(1, value="v" * 101), ["data", "choices", "0", "value"], "BASE_TYPE_MAX_LENGTH"),
    ],
)
async def test_choices_over_discords_limits_are_50035(
    discord_fake: FakeDiscord, given: list[dict[str, Any]], path: list[str], code: str
) -> None:
    """More than 25 choices, a name outside 1-100 characters or a value over 100: 400 50035."""
    inter = await typing_show(discord_fake)
    status, body, _ = await api(
        discord_fake, "POST", cb(inter), {"type": 8, "data": {"choices": given}}
    )
    assert (status, error_at(body, path)["code"], inter.responses) == (400, code, [])


async def test_25_choices_of_100_characters_are_accepted(discord_fake: FakeDiscord) -> None:
    """Exactly at the limits: accepted and recorded."""
    inter = await typing_show(discord_fake)
    given = [{"name": f"{i:02d}" + "n" * 98, "value": f"{i:02d}" + "v" * 98} for i in range(25)]
    status, _, _ = await api(
        discord_fake, "POST", cb(inter), {"type": 8, "data": {"choices": given}}
    )
    assert (status, inter.responses[0].data["choices"]) == (200, given)


async def test_autocomplete_takes_only_choices_and_choices_answer_only_autocomplete(
    discord_fake: FakeDiscord,
) -> None:
    """A "thinking" defer of an autocomplete, or choices for a slash command: 400 50035."""
    typing = await typing_show(discord_fake)
    command = await discord_fake.slash("show", {"task": "x"})
    deferred = await api(discord_fake, "POST", cb(typing), {"type": 5})
    chosen = await api(discord_fake, "POST", cb(command), {"type": 8, "data": {"choices": []}})
    assert (deferred[0], deferred[1]["code"], chosen[0], chosen[1]["code"]) == (
        400,
        50035,
        400,
        50035,
    )


async def test_late_choices_are_10062_and_a_violation(discord_fake: FakeDiscord) -> None:
    """The 3-second rule holds for autocomplete as for any interaction."""
    inter = await typing_show(discord_fake)
    discord_fake.clock.advance(3.5)
    status, body, _ = await api(
        discord_fake, "POST", cb(inter), {"type": 8, "data": {"choices": []}}
    )
    assert (status, body["code"], len(discord_fake.violations())) == (404, 10062, 1)
    discord_fake.late_responses.clear()  # seen; let the fixture's teardown pass
