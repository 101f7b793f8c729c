"""A real discord.py 2.7.1 client, in-process, against the fake: proves the fake speaks its wire."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable

import discord
import discord.gateway
import discord.http
import pytest
import pytest_asyncio
import yarl
from discord import app_commands
from discord.ext import commands

from fakediscord import Conversation, FakeDiscord

StartBot = Callable[[commands.Bot], Awaitable[commands.Bot]]


class PromptModal(discord.ui.Modal, title="New prompt"):
    prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Prompt", custom_id="prompt"
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"got {self.prompt.value}", ephemeral=True)


class ResultView(discord.ui.View):
    @discord.ui.button(label="Reroll", custom_id="reroll")
    async def reroll(self, interaction: discord.Interaction, button: discord.ui.Button[ResultView]):
        await interaction.response.send_modal(PromptModal())

    @discord.ui.button(label="Done", custom_id="done")
    async def done(self, interaction: discord.Interaction, button: discord.ui.Button[ResultView]):
        await interaction.response.edit_message(content="finished", view=None)


def make_bot() -> commands.Bot:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents(guilds=True))

    @bot.tree.command(name="imagine", description="Make an image")
    async def imagine(interaction: discord.Interaction, prompt: str, image: discord.Attachment):
        await interaction.response.defer(thinking=True)
        data = await image.read()
        await interaction.edit_original_response(
            content=f"**{prompt}**",
            attachments=[discord.File(io.BytesIO(data[::-1]), "out.png")],
            view=ResultView(),
        )

    @bot.tree.command(name="admin", description="Admin things")
    @app_commands.describe(member="who")
    async def admin(interaction: discord.Interaction, member: discord.Member, steps: int, hd: bool):
        await interaction.response.send_message(f"{member.name} {steps} {hd}", ephemeral=True)

    @bot.tree.context_menu(name="Edit with Flux Kontext")
    async def edit_menu(interaction: discord.Interaction, message: discord.Message):
        await interaction.response.send_message(f"target {message.attachments[0].filename}")

    async def setup_hook() -> None:
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


@pytest_asyncio.fixture
async def start_bot(
    discord_fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StartBot]:
    monkeypatch.setattr(discord.http.Route, "BASE", discord_fake.api_url)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(discord_fake.gateway_url)
    )
    running: list[tuple[commands.Bot, asyncio.Task[None]]] = []

    async def start(bot: commands.Bot) -> commands.Bot:
        running.append((bot, asyncio.create_task(bot.start(discord_fake.token))))
        await discord_fake.wait_for_identify()
        return bot

    yield start
    for bot, task in running:
        await bot.close()
        await asyncio.wait_for(task, 5)


async def test_login_sync_slash_defer_edit_with_file_button_and_modal(
    discord_fake: FakeDiscord, start_bot: StartBot
) -> None:
    """discord.py logs in, syncs, defers, edits @original with a file, clicks, does a modal."""
    await start_bot(make_bot())
    put = await discord_fake.wait_for_call("PUT", r"^/applications/\d+/commands$")
    assert {c["name"] for c in put.json} == {"imagine", "admin", "Edit with Flux Kontext"}
    assert discord_fake.find_calls("GET", r"^/users/@me$")
    assert discord_fake.find_calls("GET", r"^/oauth2/applications/@me$")

    inter = await discord_fake.slash(
        "imagine", {"prompt": "a cat", "image": ("in.png", b"PNGDATA", "image/png")}
    )
    conv = await discord_fake.wait_for_conversation(
        inter, lambda c: c.original and c.original.attachments
    )
    assert conv.response_types == [5]
    assert conv.original is not None
    assert conv.original.content == "**a cat**"
    assert not conv.original.loading
    assert conv.original.attachments[0].filename == "out.png"
    assert conv.original.attachments[0].data == b"ATADGNP"
    assert [b["label"] for b in conv.original.buttons] == ["Reroll", "Done"]
    patch = discord_fake.find_calls("PATCH", r"/messages/@original$")[0]
    assert patch.files[0].data == b"ATADGNP"
    assert "Authorization" not in patch.headers

    click = await discord_fake.click(conv.original, label="Reroll")
    await discord_fake.wait_until(lambda: discord_fake.conversation(click).modal)
    submit = await discord_fake.submit_modal(click, {"Prompt": "a dog"})
    answer = await discord_fake.wait_for_conversation(submit, lambda c: c.original)
    assert answer.original is not None
    assert answer.original.content == "got a dog"
    assert answer.ephemeral

    done = await discord_fake.click(conv.original, label="Done")
    await discord_fake.wait_for_conversation(done, lambda c: c.response_types == [7])
    assert conv.original.content == "finished"
    assert conv.original.components == []
    assert discord_fake.conversation(done).original.id == conv.original.id


async def test_user_int_bool_options_and_message_context_menu(
    discord_fake: FakeDiscord, start_bot: StartBot
) -> None:
    """User/int/bool options resolve to real objects; a context menu gets its target message."""
    await start_bot(make_bot())
    await discord_fake.wait_for_call("PUT", r"/commands$")
    inter = await discord_fake.slash(
        "admin",
        {"member": discord_fake.member, "steps": 30, "hd": True},
        user=discord_fake.moderator,
    )
    conv: Conversation = await discord_fake.wait_for_conversation(inter, lambda c: c.original)
    assert conv.original is not None
    assert conv.original.content == "alice 30 True"

    target = discord_fake.inject_message("look", attachments=[("cat.png", b"x", "image/png")])
    menu = await discord_fake.message_command("Edit with Flux Kontext", target)
    conv = await discord_fake.wait_for_conversation(menu, lambda c: c.original)
    assert conv.original is not None
    assert conv.original.content == "target cat.png"


async def test_gateway_drop_resume_reidentify_then_interaction_works(
    discord_fake: FakeDiscord, start_bot: StartBot
) -> None:
    """After drop_gateway the client RESUMEs, gets op 9, re-IDENTIFYs, and still answers."""
    await start_bot(make_bot())
    await discord_fake.wait_for_call("PUT", r"/commands$")
    await discord_fake.drop_gateway()
    inter = await discord_fake.slash(
        "admin", {"member": discord_fake.member, "steps": 1, "hd": False}
    )
    await discord_fake.wait_for_identify(count=2)
    assert len(discord_fake.resumes) == 1
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.original)
    assert conv.original is not None
    assert conv.original.content == "alice 1 False"


async def test_429_with_via_is_retried_by_discordpy(
    discord_fake: FakeDiscord, start_bot: StartBot
) -> None:
    """A 429 carrying Via + retry_after is retried by both discord.py HTTP paths."""
    bot = await start_bot(make_bot())
    fault = discord_fake.fail_next("POST", r"^/channels/\d+/messages$", status=429, count=2)
    msg = await bot.get_partial_messageable(discord_fake.channel.id).send("hello")
    calls = discord_fake.find_calls("POST", r"^/channels/\d+/messages$")
    assert [c.status for c in calls] == [429, 429, 200]
    assert len(fault.hits) == 2
    assert discord_fake.message(msg.id).content == "hello"

    discord_fake.fail_next("PATCH", r"/messages/@original$", status=429)
    inter = await discord_fake.slash(
        "imagine", {"prompt": "p", "image": ("in.png", b"12", "image/png")}
    )
    await discord_fake.wait_for_conversation(inter, lambda c: c.original and c.original.attachments)
    statuses = [c.status for c in discord_fake.find_calls("PATCH", r"/messages/@original$")]
    assert statuses == [429, 200]


async def test_cloudflare_429_is_not_retried_by_discordpy(
    discord_fake: FakeDiscord, start_bot: StartBot
) -> None:
    """A Cloudflare 429 (HTML, no Via) raises HTTPException in both HTTP paths, unretried."""
    bot = await start_bot(make_bot())
    discord_fake.fail_next("POST", r"^/channels/\d+/messages$", cloudflare=True)
    with pytest.raises(discord.HTTPException) as raised:
        await bot.get_partial_messageable(discord_fake.channel.id).send("hello")
    assert (raised.value.status, raised.value.code) == (429, 0)
    webhook = discord.Webhook.partial(discord_fake.app_id, "no-such-token", client=bot)
    discord_fake.fail_next("POST", r"^/webhooks/", cloudflare=True)
    with pytest.raises(discord.HTTPException) as raised:
        await webhook.send("hello")
    assert raised.value.status == 429
    assert [c.status for c in discord_fake.calls if c.method == "POST"] == [429, 429]


async def test_gateway_drop_with_accept_resume_replays_queued_interaction(
    discord_fake: FakeDiscord, start_bot: StartBot
) -> None:
    """With accept_resume the client RESUMEs (no re-IDENTIFY) and gets the queued interaction."""
    discord_fake.accept_resume = True
    await start_bot(make_bot())
    await discord_fake.wait_for_call("PUT", r"/commands$")
    await discord_fake.drop_gateway()
    inter = await discord_fake.slash(
        "admin", {"member": discord_fake.member, "steps": 2, "hd": True}
    )
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.original, timeout=5)
    assert conv.original is not None
    assert conv.original.content == "alice 2 True"
    assert len(discord_fake.resumes) == 1
    assert len(discord_fake.identifies) == 1


class RatioModal(discord.ui.Modal, title="Reframe"):
    ratio: discord.ui.Label[RatioModal] = discord.ui.Label(
        text="Aspect ratio",
        component=discord.ui.Select(
            custom_id="ratio",
            options=[discord.SelectOption(label=r, value=r) for r in ("1:1", "16:9", "9:16")],
        ),
    )
    prompt: discord.ui.Label[RatioModal] = discord.ui.Label(
        text="Prompt", component=discord.ui.TextInput(custom_id="prompt", default="extend")
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        assert isinstance(self.ratio.component, discord.ui.Select)
        assert isinstance(self.prompt.component, discord.ui.TextInput)
        await interaction.response.send_message(
            f"{self.ratio.component.values} {self.prompt.component.value}", ephemeral=True
        )


class RatioView(discord.ui.View):
    @discord.ui.select(
        custom_id="pick",
        placeholder="Reframe",
        max_values=2,
        options=[discord.SelectOption(label=r, value=r) for r in ("1:1", "16:9", "9:16")],
    )
    async def pick(
        self, interaction: discord.Interaction, select: discord.ui.Select[RatioView]
    ) -> None:
        if select.values == ["1:1"]:
            await interaction.response.send_modal(RatioModal())
        else:
            await interaction.response.edit_message(content=f"picked {select.values}")


async def test_select_menu_and_modal_with_select_reach_discordpy(
    discord_fake: FakeDiscord, start_bot: StartBot
) -> None:
    """discord.py gets a select's values from `fake.select` and a modal's select and text input
    from `fake.submit_modal`."""
    bot = await start_bot(make_bot())
    sent = await bot.get_partial_messageable(discord_fake.channel.id).send(
        "choose", view=RatioView()
    )
    picked = await discord_fake.select(sent.id, ["16:9", "9:16"], placeholder="Reframe")
    await discord_fake.wait_for_conversation(picked, lambda c: c.response_types == [7])
    assert discord_fake.message(sent.id).content == "picked ['16:9', '9:16']"

    opened = await discord_fake.select(sent.id, ["1:1"], custom_id="pick")
    await discord_fake.wait_until(lambda: discord_fake.conversation(opened).modal)
    submit = await discord_fake.submit_modal(opened, {"Aspect ratio": ["9:16"]})
    answer = await discord_fake.wait_for_conversation(submit, lambda c: c.original)
    assert answer.original is not None
    assert answer.original.content == "['9:16'] extend"
