"""Task ids, and the custom ids of the persistent buttons: `kontext:<action>:<task id>`.

The one definition of what a task id looks like. The DynamicItems in cogs/ (results.py,
modlog.py) build their buttons with these ids and parse them back, so a click keeps working
after a restart.
"""

from __future__ import annotations

import re
import secrets

from bot.i18n import N_

TASK_ID_PATTERN = r"[0-9a-f]{12}"  # what new_task_id makes
_TASK_ID_RE = re.compile(rf"^{TASK_ID_PATTERN}$")


def new_task_id() -> str:
    return secrets.token_hex(6)


def is_task_id(value: str) -> bool:
    return bool(_TASK_ID_RE.match(value))


# A result's footer as a member may paste it: "Task 0123456789ab", or the footer's word in the
# member's language ("Tarea …", "任务 …", "タスク …").
_PASTED_TASK_ID = re.compile(rf"^(?:\S*\s+|\S*[^\s0-9a-f])?({TASK_ID_PATTERN})$")


def task_id_in(typed: str) -> str | None:
    """The task id in what a member typed: the id alone or after a footer's word."""
    match = _PASTED_TASK_ID.match(typed.strip().lower())
    return match[1] if match else None


def _template(action: str) -> str:
    return rf"kontext:{action}:(?P<task_id>{TASK_ID_PATTERN})"


# The result's buttons (cogs/results.py).
REROLL_TEMPLATE = _template("reroll")
EDIT_TEMPLATE = _template("edit")
REROLL_LABEL = N_("Re-roll")
EDIT_LABEL = N_("Edit")

# A single result's other actions (cogs/results.py): Compare on edits, the Reframe select.
COMPARE_TEMPLATE = _template("compare")
REFRAME_TEMPLATE = _template("reframe")
COMPARE_LABEL = N_("Compare")
REFRAME_PLACEHOLDER = N_("Reframe…")

# The queued status's button (cogs/results.py).
CANCEL_TEMPLATE = _template("cancel")
CANCEL_LABEL = N_("Cancel")

# A set's buttons 1-4: post that image alone (cogs/results.py); the label is its number.
PICK_TEMPLATE = _template("pick")

# The mod-log entry's buttons (cogs/admin.py).
DELETE_TEMPLATE = _template("modlog:delete")
BLOCK_TEMPLATE = _template("modlog:block")
RESET_TEMPLATE = _template("modlog:reset")
DELETE_LABEL = N_("Delete output")
BLOCK_LABEL = N_("Block user")
RESET_LABEL = N_("Reset quota")


def reroll_id(task_id: str) -> str:
    return f"kontext:reroll:{task_id}"


def edit_id(task_id: str) -> str:
    return f"kontext:edit:{task_id}"


def compare_id(task_id: str) -> str:
    return f"kontext:compare:{task_id}"


def reframe_id(task_id: str) -> str:
    return f"kontext:reframe:{task_id}"


def cancel_id(task_id: str) -> str:
    return f"kontext:cancel:{task_id}"


def pick_id(task_id: str) -> str:
    return f"kontext:pick:{task_id}"


def delete_id(task_id: str) -> str:
    return f"kontext:modlog:delete:{task_id}"


def block_id(task_id: str) -> str:
    return f"kontext:modlog:block:{task_id}"


def reset_id(task_id: str) -> str:
    return f"kontext:modlog:reset:{task_id}"


def modal_id() -> str:
    """A prompt modal's id: unique, never persistent (its interaction carries the answer)."""
    return f"kontext:modal:{secrets.token_hex(6)}"
