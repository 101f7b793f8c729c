"""Saved references (/ref): a server's shared library of reference images (characters,
products, styles) that /imagine and /edit take by name.

Names are unique per server in any case, at most MAX_REF_NAME characters; a server keeps at
most its `max_refs` (GuildSettings). Members delete their own, moderators any. The bytes are
kept in the ledger; KIE's upload of them is reused while it lasts (bot.executors.Submitter).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from bot.i18n import Text
from bot.images import PreparedImage
from bot.ledger import Reference, RefSaved, RefStore, RefSummary
from bot.moderation import Moderation
from bot.status import prompt_excerpt
from bot.validation import InputRejected

MAX_REF_NAME: Final = 32
MAX_REF_NOTE: Final = 200
NAME_CHOICES: Final = 25  # Discord shows at most 25 autocomplete choices
OUTSIDE_SERVERS: Final = Text("Saved references belong to a server: use them there.")


class RefRejected(InputRejected):
    """A /ref request or a `ref:` option that cannot be honoured; nothing was kept or spent."""


def shown_name(name: str) -> str:
    """A reference's name as the bot writes it in a message (escaped, on one line)."""
    return prompt_excerpt(name, MAX_REF_NAME)


class References:
    def __init__(
        self, store: RefStore, moderation: Moderation, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._moderation = moderation
        self._clock = clock

    @staticmethod
    def clean_name(name: str) -> str:
        """A name as typed, trimmed; RefRejected when empty, too long or on several lines."""
        cleaned = " ".join(name.split())
        if not cleaned:
            raise RefRejected(Text("Give the reference a name."))
        if len(cleaned) > MAX_REF_NAME:
            raise RefRejected(
                Text("A reference's name is at most {most} characters.", most=MAX_REF_NAME)
            )
        return cleaned

    @staticmethod
    def clean_note(note: str | None) -> str | None:
        cleaned = " ".join((note or "").split())
        if len(cleaned) > MAX_REF_NOTE:
            raise RefRejected(
                Text("A reference's note is at most {most} characters.", most=MAX_REF_NOTE)
            )
        return cleaned or None

    async def check_free(self, guild_id: int, name: str) -> None:
        """Before the image is downloaded: refuse a name the server already uses."""
        if await self._store.get_ref(guild_id, name) is not None:
            raise self._duplicate(name)

    async def save(
        self, guild_id: int, owner_id: int, name: str, note: str | None, image: PreparedImage
    ) -> Reference:
        """Keep the image under `name`; RefRejected when the name is taken or the server full."""
        limit = (await self._moderation.settings_for(guild_id)).max_refs
        ref = Reference(
            guild_id=guild_id,
            name=name,
            note=note,
            owner_id=owner_id,
            data=image.data,
            filename=f"{name_for_file(name)}.{image.extension}",
            content_type=image.content_type,
            created_at=self._clock(),
        )
        outcome = await self._store.save_ref(ref, limit=limit)
        if outcome is RefSaved.DUPLICATE:
            raise self._duplicate(name)
        if outcome is RefSaved.FULL:
            raise RefRejected(
                Text(
                    "This server keeps at most {limit} references. Delete one first "
                    "(/ref delete), or ask a moderator to raise the limit.",
                    limit=limit,
                )
            )
        return ref

    async def find(self, guild_id: int | None, name: str) -> Reference:
        """The server's reference of that name (any case); RefRejected when there is none."""
        if guild_id is None:
            raise RefRejected(OUTSIDE_SERVERS)
        ref = await self._store.get_ref(guild_id, " ".join(name.split()))
        if ref is None:
            raise RefRejected(
                Text(
                    "This server has no reference named **{name}**. "
                    "/ref list shows the saved ones.",
                    name=shown_name(name),
                )
            )
        return ref

    async def listing(self, guild_id: int) -> list[RefSummary]:
        return await self._store.list_refs(guild_id)

    async def names(self, guild_id: int | None, typed: str) -> list[str]:
        """Autocomplete: the server's names containing what was typed."""
        if guild_id is None:
            return []
        return await self._store.ref_names(guild_id, typed.strip(), limit=NAME_CHOICES)

    async def delete(
        self, guild_id: int, name: str, *, user_id: int, can_manage_messages: bool
    ) -> Reference:
        """Delete a reference with its bytes: its owner, or a moderator (Manage Messages)."""
        ref = await self.find(guild_id, name)
        if ref.owner_id != user_id and not can_manage_messages:
            raise RefRejected(
                Text(
                    "**{name}** was saved by {owner}: only they or a moderator "
                    "(Manage Messages) can delete it.",
                    name=shown_name(ref.name),
                    owner=f"<@{ref.owner_id}>",
                )
            )
        deleted = await self._store.delete_ref(guild_id, ref.name)
        if deleted is None:
            raise RefRejected(Text("**{name}** was already deleted.", name=shown_name(ref.name)))
        return deleted

    @staticmethod
    def _duplicate(name: str) -> RefRejected:
        return RefRejected(
            Text(
                "This server already has a reference named **{name}** (names are the same in "
                "any case). Pick another name, or delete that one first.",
                name=shown_name(name),
            )
        )


def name_for_file(name: str) -> str:
    """A file name made of the reference's name (letters, digits, - and _ only)."""
    kept = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name).strip("-")
    return kept[:MAX_REF_NAME] or "reference"
