"""The task lifecycle's decisions: events in, the next state and effects out (pure)."""

from bot.lifecycle.effects import IGNORE, Decision, Effect
from bot.lifecycle.events import Event, Facts, Policy
from bot.lifecycle.table import TABLE, decide

__all__ = ["IGNORE", "TABLE", "Decision", "Effect", "Event", "Facts", "Policy", "decide"]
