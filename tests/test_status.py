"""Status rendering: titles per state, the estimate text, prompt escaping and durations."""

from __future__ import annotations

import math

import pytest

from bot.flux import PRO
from bot.ledger.models import Task, TaskKind, TaskParams, TaskState
from bot.outcomes import Outcome, failure
from bot.status import (
    PRIVATE_NOTE,
    STATE_COLORS,
    TYPICAL_SECONDS,
    ZWSP,
    early_duration,
    estimate_duration,
    format_duration,
    model_estimate,
    prompt_excerpt,
    render_set_status,
    render_status,
)

T0 = 1_700_000_000.0


def make_task(**changes: object) -> Task:
    task = Task(
        id="abcdef012345",
        kind=TaskKind.IMAGINE,
        params=TaskParams(prompt="a red fox in the snow"),
        requester_id=1,
        guild_id=2,
        channel_id=3,
        application_id=4,
        interaction_id=5,
        interaction_token="tok",
        created_at=T0,
        updated_at=T0,
    )
    return task.with_changes(**changes)


def test_queued_with_position() -> None:
    """A queued task shows its position, the prompt, model, ratio and the task id footer."""
    view = render_status(make_task(), now=T0 + 1, queue_position=3)
    assert view.title == "Queued — position 3"
    assert "**Prompt:** a red fox in the snow" in view.body
    assert "**Model:** Pro" in view.body
    assert "**Aspect ratio:** 16:9" in view.body
    assert "retrying" not in view.body
    assert view.footer == "Task abcdef012345"
    assert view.color == STATE_COLORS[TaskState.QUEUED]


def test_queued_without_position() -> None:
    """Without a known position the title is just 'Queued'."""
    assert render_status(make_task(), now=T0).title == "Queued"


def test_queued_retry_uses_discord_timestamp() -> None:
    """A queued task waiting out a KIE 429 says so with a relative Discord timestamp."""
    view = render_status(make_task(), now=T0, queue_position=1, retry_at=T0 + 9.2)
    assert f"KIE is busy; retrying <t:{int(T0) + 10}:R>" in view.body


def test_submitting() -> None:
    """SUBMITTING reads 'Sending to KIE…'."""
    view = render_status(make_task(state=TaskState.SUBMITTING), now=T0)
    assert view.title == "Sending to KIE…"
    assert view.color == STATE_COLORS[TaskState.SUBMITTING]


def test_generating_elapsed_from_submission() -> None:
    """GENERATING shows time since submission, not since creation, without an estimate."""
    task = make_task(state=TaskState.GENERATING, submitted_at=T0 + 30)
    view = render_status(task, now=T0 + 42)
    assert view.title == "Generating — 12 s elapsed"


def test_generating_elapsed_falls_back_to_created_at() -> None:
    """With no submitted_at, elapsed time counts from created_at."""
    view = render_status(make_task(state=TaskState.GENERATING), now=T0 + 65)
    assert view.title == "Generating — 1 min 05 s elapsed"


def test_generating_with_estimate() -> None:
    """Within the estimate, GENERATING says how long it usually takes."""
    task = make_task(state=TaskState.GENERATING, submitted_at=T0)
    view = render_status(task, now=T0 + 12, estimate=20.0)
    assert view.title == "Generating — 12 s elapsed · usually about 20 s"


def test_generating_past_estimate() -> None:
    """Past the estimate, GENERATING adds 'taking longer than usual'."""
    task = make_task(state=TaskState.GENERATING, submitted_at=T0)
    view = render_status(task, now=T0 + 31, estimate=20.0)
    assert view.title == "Generating — 31 s elapsed · usually about 20 s, taking longer than usual"


def test_delivering() -> None:
    """DELIVERING reads 'Posting the image…'."""
    view = render_status(make_task(state=TaskState.DELIVERING), now=T0)
    assert view.title == "Posting the image…"
    assert view.color == STATE_COLORS[TaskState.DELIVERING]


def test_done_total_time() -> None:
    """DONE shows the total time from request to delivery."""
    task = make_task(state=TaskState.DONE, submitted_at=T0 + 2, delivered_at=T0 + 23)
    view = render_status(task, now=T0 + 500)
    assert view.title == "Done in 23 s"
    assert view.color == STATE_COLORS[TaskState.DONE]


def test_failed_shows_error_message() -> None:
    """FAILED shows the task's user-safe error message, or a generic one when absent."""
    task = make_task(state=TaskState.FAILED, error_message="KIE refused this prompt.")
    view = render_status(task, now=T0)
    assert view.title == "Failed"
    assert view.body.splitlines()[0] == "KIE refused this prompt."
    assert view.color == STATE_COLORS[TaskState.FAILED]
    generic = render_status(make_task(state=TaskState.FAILED), now=T0)
    assert "Something went wrong" in generic.body


def test_cancelled_says_cancelled() -> None:
    """A task the member cancelled reads "Cancelled", not "Failed", with the outcome's words."""
    why = failure(Outcome.CANCELLED)
    task = make_task(
        state=TaskState.FAILED, error_code=why.outcome.value, error_message=why.message
    )
    view = render_status(task, now=T0)
    assert (view.title, view.body.splitlines()[0]) == ("Cancelled", why.message)


def test_a_private_task_says_a_late_image_comes_by_dm_until_it_ends() -> None:
    """A private reply is reachable for 15 minutes: its status says where a later image goes
    (a single task and a set alike); a finished task's no longer does."""
    running = make_task(private=True, state=TaskState.GENERATING)
    members = [
        running.with_changes(id=f"abcdef01234{i}", set_id="abcdef012341", set_index=i, set_size=2)
        for i in (1, 2)
    ]
    shown = [
        PRIVATE_NOTE in render_status(running, now=T0).body,
        PRIVATE_NOTE in render_set_status(members, delivered=frozenset(), now=T0).body,
        PRIVATE_NOTE in render_status(running.with_changes(state=TaskState.FAILED), now=T0).body,
        PRIVATE_NOTE in render_status(running.with_changes(private=False), now=T0).body,
    ]
    assert shown == [True, True, False, False]
    assert "direct message" in PRIVATE_NOTE


def test_each_state_has_its_own_color() -> None:
    """Every state has a color and no two states share one."""
    assert set(STATE_COLORS) == set(TaskState)
    assert len(set(STATE_COLORS.values())) == len(TaskState)


def test_edit_without_ratio_and_max_model() -> None:
    """An edit with no ratio shows "input's ratio"; the Max model is named Max."""
    task = make_task(
        kind=TaskKind.EDIT, params=TaskParams(prompt="make it night", model="flux-kontext-max")
    )
    body = render_status(task, now=T0).body
    assert "**Model:** Max" in body
    assert "**Aspect ratio:** input's ratio" in body


def test_explicit_ratio_shown() -> None:
    """An explicit aspect ratio is shown as given."""
    task = make_task(params=TaskParams(prompt="x", aspect_ratio="9:16"))
    assert "**Aspect ratio:** 9:16" in render_status(task, now=T0).body


def test_body_prompt_is_escaped() -> None:
    """The prompt inside the body is escaped, so user markdown cannot restyle the embed."""
    task = make_task(params=TaskParams(prompt="**bold** @everyone"))
    body = render_status(task, now=T0).body
    assert f"\\*\\*bold\\*\\* @{ZWSP}everyone" in body


def test_estimate_duration_median() -> None:
    """The estimate is the median of recent durations."""
    assert estimate_duration([10.0, 30.0, 20.0]) == 20.0
    assert estimate_duration([10.0, 20.0, 30.0, 1000.0]) == 25.0


def test_early_duration_is_the_fast_tenth() -> None:
    """early_duration is the 10th percentile (nearest rank), None below three samples."""
    assert (early_duration([float(s) for s in range(30, 0, -1)]), early_duration([1.0, 2.0])) == (
        4.0,
        None,
    )


def test_estimate_duration_needs_three_samples() -> None:
    """Fewer than three (usable) durations give no estimate."""
    assert estimate_duration([]) is None
    assert estimate_duration([5.0, 6.0]) is None
    assert estimate_duration([5.0, 6.0, float("nan"), -1.0]) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (8, "8 s"),
        (8.4, "8 s"),
        (59.4, "59 s"),
        (59.6, "1 min 00 s"),
        (65, "1 min 05 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h 00 min"),
        (2 * 3600 + 3 * 60 + 20, "2 h 03 min"),
        (-5, "0 s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    """Durations read as seconds, minutes and seconds, or hours and minutes."""
    assert format_duration(seconds) == text


def test_excerpt_escapes_markdown() -> None:
    """Every markdown metacharacter, and the backslash itself, is escaped."""
    raw = r"\ * _ ~ ` | > # - [ ] ( ) <"
    expected = r"\\ \* \_ \~ \` \| \> \# \- \[ \] \( \) \<"
    assert prompt_excerpt(raw) == expected


def test_excerpt_masked_link_and_mentions_neutralised() -> None:
    """Masked links, user/role mention markup and timestamps cannot render as markup."""
    out = prompt_excerpt("[click](https://evil.test) <@123> <@&456> <t:0:R>")
    assert "[click](" not in out
    assert "<@" not in out.replace("\\<@", "")
    assert out.startswith(r"\[click\]\(https://evil.test\)")


def test_excerpt_breaks_everyone_and_here() -> None:
    """@everyone and @here (any case) are broken with a zero-width space."""
    out = prompt_excerpt("hi @everyone and @here and @EveryOne")
    assert "@everyone" not in out and "@here" not in out and "@EveryOne" not in out
    assert out == f"hi @{ZWSP}everyone and @{ZWSP}here and @{ZWSP}EveryOne"


def test_excerpt_drops_invisible_and_bidi_characters() -> None:
    """Bidi overrides, zero-width spaces and controls are dropped; emoji joiners are kept."""
    out = prompt_excerpt("abc\u202edcba\u2066x\u2069 \u200b@\u200beveryone\x00\x07 👩\u200d💻")
    assert "\u202e" not in out and "\u2066" not in out and "\u2069" not in out
    assert "\x00" not in out and "\x07" not in out
    assert f"@{ZWSP}everyone" in out  # the smuggled ZWSP was removed, then ours added
    assert "👩\u200d💻" in out
    assert out.startswith("abcdcbax ")


def test_excerpt_single_line() -> None:
    """Newlines, tabs and runs of spaces collapse into single spaces."""
    assert prompt_excerpt("  line one\n\n# line two\r\n\tthree\u2028four  ") == (
        r"line one \# line two three four"
    )


def test_excerpt_truncates_with_ellipsis() -> None:
    """Long prompts are cut to `limit` visible characters ending in '…'; short ones are kept."""
    out = prompt_excerpt("x" * 500)
    assert out == "x" * 199 + "…"
    assert prompt_excerpt("y" * 200) == "y" * 200
    assert prompt_excerpt("abc defgh", limit=5) == "abc…"


def test_excerpt_truncation_never_splits_an_escape() -> None:
    """Truncation counts visible characters before escaping, so no dangling backslash remains."""
    out = prompt_excerpt("*" * 300, limit=10)
    assert out == "\\*" * 9 + "…"


# A cold batch of ten 20-s (± 10 %) tasks, sent together: the three shortest finished first.
FIRST_THREE = [18.42, 18.49, 18.57]


def test_running_tasks_count_as_at_least_their_time() -> None:
    """The first three of ten finished and seven still run: the median of all ten is not
    known yet (the median of the three would be 18.49 s). Two more finish: it is the fifth
    of ten. Running tasks shorter than every finished one change nothing."""
    assert (
        estimate_duration(FIRST_THREE, [18.6] * 7),
        estimate_duration([*FIRST_THREE, 18.66, 18.99], [19.0] * 5),
        estimate_duration([10.0, 11.0, 12.0], [1.0, 2.0]),
    ) == (None, 18.99, 11.0)


def test_a_median_left_unknown_by_running_tasks_keeps_the_guess_or_the_longest() -> None:
    """While the running tasks leave the median unknown, the model's typical time stands in,
    or the longest time so far when that is longer."""
    assert (
        model_estimate(PRO, FIRST_THREE, [18.6] * 7),
        model_estimate(PRO, [28.0, 28.5, 29.0], [29.5] * 7),
    ) == ((TYPICAL_SECONDS[PRO], True), (29.5, True))


def test_the_longest_so_far_counts_only_usable_durations() -> None:
    """An unusable sample (infinite, negative: a clock that jumped) is left out of the
    longest as it is of the median."""
    assert model_estimate(PRO, [28.0, 28.5, 29.0, math.inf, -5.0], [29.5] * 7) == (29.5, True)
