"""Moderation and cost control: per-server settings, credit quotas, the mod-log, blocks."""

from __future__ import annotations

from bot.moderation.modlog import ModLogSink
from bot.moderation.policy import Denied, GuildSettings, Refusal
from bot.moderation.service import Moderation, UsageSummary

__all__ = [
    "Denied",
    "GuildSettings",
    "ModLogSink",
    "Moderation",
    "Refusal",
    "UsageSummary",
]
