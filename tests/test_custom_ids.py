"""What /show accepts as a task id: the id, or a result's footer pasted in any of the bot's
languages."""

from __future__ import annotations

import pytest

from bot.custom_ids import task_id_in

ID = "0123456789ab"


@pytest.mark.parametrize(
    "typed",
    [ID, f" Task {ID.upper()} ", f"Tarea {ID}", f"任务 {ID}", f"タスク {ID}", f"Task{ID}"],
)
def test_a_pasted_footer_in_any_language_gives_its_task_id(typed: str) -> None:
    assert task_id_in(typed) == ID


@pytest.mark.parametrize("typed", [f"{ID}c", f"Task {ID}c", "hello", f"a b {ID}", ""])
def test_anything_else_is_no_task_id(typed: str) -> None:
    assert task_id_in(typed) is None
