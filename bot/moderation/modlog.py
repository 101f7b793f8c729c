"""The mod-log as moderation sees it: a port (bot.ports.ModLogSink). Posting it on Discord is
cogs/modlog.py's, next to the DynamicItems of its buttons."""

from __future__ import annotations

from bot.ports import ModLogSink

__all__ = ["ModLogSink"]
