"""The publisher's per-message locks: a set's message is edited by one image at a time."""

from __future__ import annotations

from pathlib import Path

import discord

from bot.ledger import SqliteLedger
from bot.metrics import Metrics
from cogs.publisher import DiscordPublisher


async def test_a_sets_lock_outlives_the_settling_of_its_first_image(tmp_path: Path) -> None:
    """A set's lock is keyed by its id, which is its first image's task id. That image
    settling (forget) while a later image holds the lock must not hand the next image a new
    lock: two images would then edit the message at once and one would drop the other's
    attachment (seen once in four runs of a set of 4 before this was fixed)."""
    client = discord.Client(intents=discord.Intents.none())
    publisher = DiscordPublisher(client, SqliteLedger(tmp_path / "unused.sqlite3"), Metrics())
    held = publisher._lock("0123456789ab")
    async with held:
        publisher.forget("0123456789ab")  # image 1 settled; images 2-4 still posting
        assert publisher._lock("0123456789ab") is held
