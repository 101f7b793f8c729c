"""Custom ids of the persistent result buttons: `kontext:<action>:<task id>`.

The core builds the buttons (bot.delivery) and cogs/results.py registers DynamicItems that parse
the same ids, so a click keeps working after a restart.
"""

from __future__ import annotations

import re

TASK_ID_PATTERN = r"[0-9a-f]{12}"
REROLL_TEMPLATE = rf"kontext:reroll:(?P<task_id>{TASK_ID_PATTERN})"
EDIT_TEMPLATE = rf"kontext:edit:(?P<task_id>{TASK_ID_PATTERN})"
REROLL_LABEL = "Re-roll"
EDIT_LABEL = "Edit"

_TASK_ID_RE = re.compile(rf"^{TASK_ID_PATTERN}$")


def reroll_id(task_id: str) -> str:
    return f"kontext:reroll:{task_id}"


def edit_id(task_id: str) -> str:
    return f"kontext:edit:{task_id}"


def is_task_id(value: str) -> bool:
    return bool(_TASK_ID_RE.match(value))
