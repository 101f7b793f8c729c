"""/kontext-admin settings of what members get: models, tolerance, spoilers, sets, privacy.

A mixin of the Admin GroupCog (cogs/admin.py): discord.py collects a GroupCog's commands from
every class of its MRO, so these stay subcommands of /kontext-admin while the class holding
the other settings keeps to its size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot.i18n import N_, Message, Text
from bot.moderation.policy import (
    MAX_COUNT,
    MAX_REFS_LIMIT,
    PRIVATE_ALLOWED,
    PRIVATE_FORCED,
    PRIVATE_OFF,
)
from cogs.requests import Interaction

if TYPE_CHECKING:
    from cogs.client import KontextBot

PRIVATE_CHOICES = [
    Choice(name="Forced: every result is private", value=PRIVATE_FORCED),
    Choice(name="Allowed: members choose with the private option", value=PRIVATE_ALLOWED),
    Choice(name="Off: every result is public", value=PRIVATE_OFF),
]
PRIVATE_ANSWERS = {
    PRIVATE_FORCED: N_("Every result is now private: only the member who asked sees it."),
    PRIVATE_ALLOWED: N_("Members may now ask for private results with the `private` option."),
    PRIVATE_OFF: N_("Results are now always public; the `private` option is refused."),
}


class OutputSettings(commands.Cog):
    """The subcommands; `Admin` supplies `bot` and `_update` (never added on its own)."""

    bot: KontextBot

    async def _update(self, interaction: Interaction, text: Message, **changes: Any) -> None:
        raise NotImplementedError

    @app_commands.command(name="models", description="Allow or turn off the Max model")
    @app_commands.describe(max="Whether members may use Flux Kontext Max (costs more)")
    async def models(self, interaction: Interaction, max: bool) -> None:
        await self._update(
            interaction,
            Text("Members may now use the Max model.")
            if max
            else Text("The Max model is now off."),
            max_model_allowed=max,
        )

    @app_commands.command(name="max-tolerance", description="Highest safety tolerance allowed")
    @app_commands.describe(value="0 = strictest … 6 = most permissive (edits never exceed 2)")
    async def max_tolerance(self, interaction: Interaction, value: Range[int, 0, 6]) -> None:
        await self._update(
            interaction,
            Text("Members may now ask for a safety tolerance of at most {value}.", value=value),
            max_tolerance=value,
        )

    @app_commands.command(name="spoiler", description="Spoiler-tag every result")
    @app_commands.describe(enabled="Post every image behind a spoiler")
    async def spoiler(self, interaction: Interaction, enabled: bool) -> None:
        await self._update(
            interaction,
            Text("Results are now posted as spoilers.")
            if enabled
            else Text("Results are no longer spoilers."),
            spoiler=enabled,
        )

    @app_commands.command(name="max-count", description="Most images a member may ask for at once")
    @app_commands.describe(value=f"1 to {MAX_COUNT} (each image is charged on its own)")
    async def max_count(self, interaction: Interaction, value: Range[int, 1, MAX_COUNT]) -> None:
        await self._update(
            interaction,
            Text("Members may now ask for at most {value} image(s) at once.", value=value),
            max_count=value,
        )

    @app_commands.command(name="ref-limit", description="Most saved references this server keeps")
    @app_commands.describe(value=f"1 to {MAX_REFS_LIMIT} reference images (/ref save)")
    async def ref_limit(
        self, interaction: Interaction, value: Range[int, 1, MAX_REFS_LIMIT]
    ) -> None:
        await self._update(
            interaction,
            Text("This server may now keep at most {value} saved reference(s).", value=value),
            max_refs=value,
        )

    @app_commands.command(name="private", description="Whether results may be private")
    @app_commands.describe(mode="Forced, allowed (the member chooses) or off")
    @app_commands.choices(mode=PRIVATE_CHOICES)
    async def private(self, interaction: Interaction, mode: str) -> None:
        await self._update(interaction, Text(PRIVATE_ANSWERS[mode]), private_results=mode)
