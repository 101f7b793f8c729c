"""The real bot process (`python -m bot`) logs into the fake Discord and syncs its commands."""

from __future__ import annotations

from e2e_helpers import COMMANDS_PUT, BotProcess
from fakediscord import FakeDiscord


async def test_bot_logs_in_and_syncs_its_commands(
    discord_fake: FakeDiscord, bot_process: BotProcess
) -> None:
    """`python -m bot` logs in (GET /users/@me, IDENTIFY) and PUTs imagine, edit and the menu."""
    assert discord_fake.find_calls("GET", r"^/users/@me$")
    assert discord_fake.find_calls("GET", r"^/oauth2/applications/@me$")
    identify = discord_fake.identifies[0]
    assert identify["token"] == discord_fake.token
    put = discord_fake.find_calls("PUT", COMMANDS_PUT)[-1]
    assert put.status == 200
    names = {c["name"] for c in put.json}
    assert {"imagine", "edit", "Edit with Flux Kontext"} <= names
    menu = next(c for c in put.json if c["name"] == "Edit with Flux Kontext")
    assert menu["type"] == 3


async def test_bot_stops_cleanly_and_restarts_on_the_same_ledger(
    discord_fake: FakeDiscord, bot_process: BotProcess
) -> None:
    """SIGINT exits 0; a restart on the same ledger logs in again without re-syncing blindly."""
    await bot_process.stop()
    puts = len(discord_fake.find_calls("PUT", COMMANDS_PUT))
    await bot_process.start()
    assert len(discord_fake.identifies) == 2
    assert len(discord_fake.find_calls("PUT", COMMANDS_PUT)) == puts


async def test_imagine_round_trip_delivers_an_image(
    discord_fake: FakeDiscord, bot_process: BotProcess
) -> None:
    """A /imagine through the real bot and the KIE simulator ends with an image in the reply."""
    inter = await discord_fake.slash("imagine", {"prompt": "a red fox in snow"})
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.files, timeout=20)
    assert conv.responses[0].type in (4, 5)
    assert conv.files[0].data
