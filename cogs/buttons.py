"""The shape every persistent task button shares: a DynamicItem whose custom id holds a task id."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self

import discord

from bot.i18n import tr
from cogs.requests import AnyInteraction, Interaction, kontext


class TaskButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"(?!)(?P<task_id>)"):
    """Subclasses give their own `template=`, LABEL, STYLE, EMOJI, make_id and `clicked`; this
    base is never registered (its template matches nothing). An instance is also the button put
    on a message: `view.add_item(RerollButton(task.id))`, so each button is defined once."""

    LABEL: ClassVar[str]
    STYLE: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary
    EMOJI: ClassVar[str | None] = None

    @staticmethod
    def make_id(task_id: str) -> str:
        raise NotImplementedError

    def __init__(self, task_id: str, *, locale: str | None = None) -> None:
        """`locale`: the language of the label (the task's member's; None: English)."""
        super().__init__(
            discord.ui.Button(
                label=tr(locale, self.LABEL),
                style=self.STYLE,
                emoji=self.EMOJI,
                custom_id=self.make_id(task_id),
            )
        )
        self.task_id = task_id

    async def callback(self, interaction: AnyInteraction) -> None:
        await self.clicked(kontext(interaction))

    async def clicked(self, interaction: Interaction) -> None:
        """What a click does (subclasses)."""
        raise NotImplementedError

    @classmethod
    async def from_custom_id(
        cls, interaction: AnyInteraction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["task_id"])
