"""Read-only views a test asserts on: messages with their attachments' bytes, and conversations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .limits import SELECT_TYPES
from .model import CallbackRecord, FakeInteraction, FakeMessage

if TYPE_CHECKING:
    from .server import FakeDiscord


@dataclass(frozen=True)
class AttachmentView:
    """An attachment on a message, with the bytes the fake's CDN serves for it."""

    id: int
    filename: str
    content_type: str | None
    size: int
    url: str
    data: bytes | None


def iter_components(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every component, depth first (rows, sections, containers and their children)."""
    for comp in components:
        yield comp
        children = list(comp.get("components") or [])
        for key in ("component", "accessory"):
            if isinstance(comp.get(key), dict):
                children.append(comp[key])
        yield from iter_components(children)


class MessageView:
    """A message as it stands now (after edits); ``history`` holds earlier wire versions."""

    def __init__(self, fake: FakeDiscord, message: FakeMessage) -> None:
        self._fake = fake
        self.message = message

    def __repr__(self) -> str:
        m = self.message
        return f"<MessageView id={m.id} kind={m.kind} deleted={m.deleted} content={m.content!r}>"

    @property
    def id(self) -> int:
        return self.message.id

    @property
    def channel_id(self) -> int:
        return self.message.channel_id

    @property
    def content(self) -> str:
        return self.message.content

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.message.embeds

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.message.components

    @property
    def flags(self) -> int:
        return self.message.flags

    @property
    def ephemeral(self) -> bool:
        return self.message.ephemeral

    @property
    def loading(self) -> bool:
        return self.message.loading

    @property
    def deleted(self) -> bool:
        return self.message.deleted

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.message.history

    @property
    def wire(self) -> dict[str, Any]:
        return self.message.to_wire()

    @property
    def attachments(self) -> list[AttachmentView]:
        out = []
        for a in self.message.attachments:
            blob = self._fake.cdn.get(int(a["id"]))
            out.append(
                AttachmentView(
                    id=int(a["id"]),
                    filename=a["filename"],
                    content_type=a.get("content_type"),
                    size=int(a.get("size", 0)),
                    url=a["url"],
                    data=blob.data if blob else None,
                )
            )
        return out

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Every button (type 2) on the message."""
        return [c for c in iter_components(self.components) if c.get("type") == 2]

    def button(self, label: str | None = None, custom_id: str | None = None) -> dict[str, Any]:
        """The button with this label or custom id; AssertionError when absent."""
        for b in self.buttons:
            if (label is not None and b.get("label") == label) or (
                custom_id is not None and b.get("custom_id") == custom_id
            ):
                return b
        raise AssertionError(
            f"no button label={label!r} custom_id={custom_id!r} on message {self.id}; "
            f"buttons: {[(b.get('label'), b.get('custom_id')) for b in self.buttons]}"
        )

    @property
    def selects(self) -> list[dict[str, Any]]:
        """Every select menu (types 3, 5-8) on the message."""
        return [c for c in iter_components(self.components) if c.get("type") in SELECT_TYPES]

    def select(
        self, custom_id: str | None = None, placeholder: str | None = None
    ) -> dict[str, Any]:
        """The select with this custom id or placeholder (the only one when both are None);
        AssertionError when absent."""
        for s in self.selects:
            if (custom_id is None and placeholder is None and len(self.selects) == 1) or (
                (custom_id is not None and s.get("custom_id") == custom_id)
                or (placeholder is not None and s.get("placeholder") == placeholder)
            ):
                return s
        found = [(s.get("custom_id"), s.get("placeholder")) for s in self.selects]
        raise AssertionError(
            f"no select custom_id={custom_id!r} placeholder={placeholder!r} on message "
            f"{self.id}; selects: {found}"
        )

    @property
    def text(self) -> str:
        """Content plus every embed's title/description/fields/footer, for substring asserts."""
        parts = [self.content]
        for e in self.embeds:
            parts += [e.get("title") or "", e.get("description") or ""]
            for f in e.get("fields") or []:
                parts += [f.get("name") or "", f.get("value") or ""]
            parts.append((e.get("footer") or {}).get("text") or "")
            parts.append((e.get("author") or {}).get("name") or "")
        for c in iter_components(self.components):
            if c.get("type") in (10,):  # components-v2 text display
                parts.append(c.get("content") or "")
        return "\n".join(p for p in parts if p)


class Conversation:
    """Everything the bot said in answer to one interaction, as it stands now."""

    def __init__(self, fake: FakeDiscord, interaction: FakeInteraction) -> None:
        self._fake = fake
        self.interaction = interaction

    def __repr__(self) -> str:
        return (
            f"<Conversation interaction={self.interaction.id} responses="
            f"{[r.type for r in self.responses]} original={self.original!r} "
            f"followups={len(self.followups)}>"
        )

    @property
    def responses(self) -> list[CallbackRecord]:
        """The callbacks the bot sent (the first is the real one; later ones got 40060)."""
        return self.interaction.responses

    @property
    def response_types(self) -> list[int]:
        return [r.type for r in self.interaction.responses]

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal a type-9 callback opened (``custom_id``, ``title``, ``components``)."""
        return self.interaction.modal

    @property
    def original(self) -> MessageView | None:
        """The ``@original`` message after all edits (None before a 4/5/6/7 callback)."""
        mid = self.interaction.original_id
        return MessageView(self._fake, self._fake.messages[mid]) if mid is not None else None

    @property
    def followups(self) -> list[MessageView]:
        """Followup messages other than the one that took over a deferred ``@original``."""
        return [
            MessageView(self._fake, self._fake.messages[m]) for m in self.interaction.followup_ids
        ]

    @property
    def channel_messages(self) -> list[MessageView]:
        """Bot channel posts that reply to (``message_reference``) this conversation's messages."""
        ids = {m.id for m in self.messages}
        if self.interaction.target_message_id is not None:
            ids.add(self.interaction.target_message_id)
        if self.interaction.message_id is not None:
            ids.add(self.interaction.message_id)
        out = []
        for msg in self._fake.messages.values():
            ref = msg.message_reference or {}
            if msg.kind == "channel" and ref.get("message_id") and int(ref["message_id"]) in ids:
                out.append(MessageView(self._fake, msg))
        return out

    @property
    def messages(self) -> list[MessageView]:
        """``@original`` (if any) then followups."""
        orig = self.original
        return ([orig] if orig else []) + self.followups

    @property
    def ephemeral(self) -> bool:
        """Whether the interaction's ``@original`` message is ephemeral (flag 64)."""
        orig = self.original
        return bool(orig and orig.ephemeral)

    @property
    def ephemeral_messages(self) -> list[MessageView]:
        return [m for m in self.messages if m.ephemeral]

    @property
    def text(self) -> str:
        """All text of ``@original`` and followups, for substring asserts."""
        return "\n".join(m.text for m in self.messages)

    @property
    def files(self) -> list[AttachmentView]:
        """Every attachment currently on ``@original`` and followups."""
        return [a for m in self.messages for a in m.attachments]
