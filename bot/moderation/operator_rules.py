"""The operator's rules: blocks that apply everywhere, and what members may do outside servers.

Outside servers (the bot's DM, a member's private channels through a user install, a server the
bot is not in) there are no moderators, so the operator's settings stand in for a server's:
`ALLOW_DMS` opens those places at all, `DM_DAILY_CREDITS` is every member's daily allowance
there (charged and refunded exactly like a server's allowance, kept under the scope
`OUTSIDE_SERVERS`), and `DM_MODLOG_CHANNEL_ID` receives their mod-log entries. Operator blocks
(`python -m bot block`) bar a member from the bot in every server as well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from bot.config import Settings
from bot.i18n import Text
from bot.ledger import ModerationStore, OperatorBlock
from bot.moderation.policy import GuildSettings, Refusal
from bot.validation import MAX_TOLERANCE_EDIT

log = logging.getLogger(__name__)

# Usage and automatic pauses of tasks outside servers are stored under this server id, which no
# Discord snowflake takes.
OUTSIDE_SERVERS: Final = 0
MAX_REASON_CHARS: Final = 200

OUTSIDE_SERVERS_OFF: Final = Refusal(
    Text("The image bot works only in servers. Use it in a server where the bot is installed."),
    "outside_servers",
)
OPERATOR_BLOCKED: Final = Refusal(
    Text("The bot's operator has blocked you from using the image bot."), "operator_block"
)


def no_credits_outside_servers() -> Refusal:
    return Refusal(
        Text(
            "The bot's operator has not enabled any credits for direct messages and private "
            "channels, so images can only be made in a server where the bot is installed."
        ),
        "outside_servers_no_credits",
    )


def scope_of(guild_id: int | None) -> int:
    """The server id quotas and pauses are kept under (tasks outside servers share one)."""
    return OUTSIDE_SERVERS if guild_id is None else guild_id


class OperatorRules:
    def __init__(
        self, *, settings: Settings, ledger: ModerationStore, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._clock = clock

    def outside_settings(self) -> GuildSettings:
        """What applies outside servers, in the shape of a server's settings.

        No blocked-word list (that is each server's own); the safety tolerance stays at KIE's
        default of 2, since no moderator watches there.
        """
        return GuildSettings(
            max_tolerance=MAX_TOLERANCE_EDIT,
            member_daily_allowance=self._settings.dm_daily_credits,
            modlog_channel_id=self._settings.dm_modlog_channel_id,
        )

    def outside_refusal(self) -> Refusal | None:
        """Why nothing may be asked outside servers at all (None: members may, within quota)."""
        if not self._settings.allow_dms:
            return OUTSIDE_SERVERS_OFF
        if self._settings.dm_daily_credits <= 0:
            return no_credits_outside_servers()
        return None

    async def blocked(self, user_id: int) -> Refusal | None:
        """Read from the ledger on every request, so a block made by the CLI applies at once."""
        block = await self._ledger.get_operator_block(user_id)
        return None if block is None else OPERATOR_BLOCKED

    # ---- the operator's commands (python -m bot block / unblock / blocks) ----------------------

    async def block(self, user_id: int, reason: str | None = None) -> OperatorBlock:
        text = (reason or "").strip()[:MAX_REASON_CHARS] or None
        block = OperatorBlock(user_id=user_id, reason=text, created_at=self._clock())
        await self._ledger.put_operator_block(block)
        log.info("user %s blocked by the operator", user_id)
        return block

    async def unblock(self, user_id: int) -> bool:
        removed = await self._ledger.delete_operator_block(user_id)
        if removed:
            log.info("user %s unblocked by the operator", user_id)
        return removed

    async def blocks(self) -> list[OperatorBlock]:
        return await self._ledger.operator_blocks()
