"""bot/recall.py's decisions and texts: who may show a task, /show's choice names, /history's
lines (escaped, linked, within Discord's embed limit)."""

from __future__ import annotations

import pytest

from bot.ledger import Task, TaskKind, TaskParams, TaskState
from bot.recall import (
    DELETED,
    ELSEWHERE,
    NOT_YOURS,
    UNKNOWN,
    Viewer,
    choice_name,
    history_text,
    show_refusal,
)

OWNER, OTHER, GUILD = 111, 999, 222
NOW = 1_700_000_000.0


def task(
    number: int = 1,
    *,
    prompt: str = "a red fox",
    state: TaskState = TaskState.DONE,
    **changes: object,
) -> Task:
    base = Task(
        id=f"{number:012x}",
        kind=TaskKind.IMAGINE,
        params=TaskParams(prompt=prompt),
        requester_id=OWNER,
        guild_id=GUILD,
        channel_id=333,
        application_id=444,
        interaction_id=555,
        interaction_token="tok",
        created_at=NOW - 300,
        updated_at=NOW - 300,
        state=state,
        reply_message_id=700 + number,
        result_message_id=800 + number if state == TaskState.DONE else None,
        cost=5.0,
    )
    return base.with_changes(**changes)


@pytest.mark.parametrize(
    ("shown", "viewer", "expected"),
    [
        (None, Viewer(OWNER, GUILD), UNKNOWN),
        (task(), Viewer(OWNER, GUILD), None),
        (task(), Viewer(OTHER, GUILD), NOT_YOURS),
        (task(), Viewer(OTHER, GUILD, moderator=True), None),
        (task(), Viewer(OWNER, 777), ELSEWHERE),
        (task(), Viewer(OTHER, 777, moderator=True), UNKNOWN),
        (task(guild_id=None), Viewer(OWNER, None), None),
        (task(output_deleted_by=5), Viewer(OWNER, GUILD), DELETED),
    ],
)
def test_show_refusal(shown: Task | None, viewer: Viewer, expected: str | None) -> None:
    """Only the owner or a moderator of the task's own server; never a deleted image."""
    assert show_refusal(shown, viewer) == expected


def test_show_refusal_names_an_open_tasks_state_and_a_failures_reason() -> None:
    """Not done: the state, or why it failed (a cancel is called a cancel)."""
    viewer = Viewer(OWNER, GUILD)
    failed = task(state=TaskState.FAILED, error_message="KIE's content filter refused it.")
    cancelled = task(state=TaskState.FAILED, error_code="cancelled", error_message="Cancelled.")
    assert tuple(
        str(show_refusal(shown, viewer))
        for shown in (task(state=TaskState.QUEUED), failed, cancelled)
    ) == (
        "This task isn't finished yet: it is queued.",
        "This task has no image: it failed — KIE's content filter refused it.",
        "This task has no image: it was cancelled — Cancelled.",
    )


def test_choice_name_fits_discords_100_characters_and_names_a_sets_image() -> None:
    """A 1500-character prompt is cut so state and age still show; a set's image says which."""
    name = choice_name(
        task(prompt="word " * 300, set_id="000000000001", set_index=2, set_size=4), now=NOW
    )
    assert (len(name) <= 100, name.endswith("… · #2 of 4 · done · 5 min ago")) == (True, True)


def test_history_lines_escape_prompts_and_link_each_result() -> None:
    """Markdown and mass mentions in a prompt are escaped; a result links to its message, a
    private one has no link, a refunded failure says so."""
    text = history_text(
        [
            task(1, prompt="@everyone **bold**"),
            task(2, private=True),
            task(3, state=TaskState.FAILED, refunded=True),
        ]
    )
    first, second, third = text.split("\n")
    assert (
        "@\u200beveryone \\*\\*bold\\*\\*" in first,
        f"[message](https://discord.com/channels/{GUILD}/333/801)" in first,
        second.endswith("· private"),
        "0 credits (refunded)" in third and "/333/703)" in third,
    ) == (True, True, True, True)


def test_ten_long_entries_fit_an_embed_description() -> None:
    """10 entries of 1500-character prompts, sets of 4 among them: under 4096 characters."""
    tasks = []
    for n in range(10):
        size = 4 if n % 2 else 1
        tasks += [
            task(
                n * 10 + i,
                prompt="x" * 1500,
                set_id=f"{n * 10:012x}" if size > 1 else None,
                set_index=i + 1 if size > 1 else 0,
                set_size=size,
            )
            for i in range(size)
        ]
    text = history_text(tasks)
    assert (len(text.split("\n")), len(text) <= 4096) == (10, True)
