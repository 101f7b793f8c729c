"""What a member reads about their task: pure rendering from a Task to plain values.

Delivery turns a StatusView into an embed. Nothing here talks to Discord; user text (the
prompt) is escaped here, and mentions are additionally neutralised by the bot's
AllowedMentions.none().
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bot.flux import MAX, MODEL_NAMES, PRO
from bot.i18n import N_, tr
from bot.ledger.models import Task, TaskKind, TaskState

ZWSP: Final = "\u200b"
MIN_SAMPLES: Final = 3

STATE_COLORS: Final[dict[TaskState, int]] = {
    TaskState.QUEUED: 0x95A5A6,  # grey
    TaskState.SUBMITTING: 0x3498DB,  # blue
    TaskState.GENERATING: 0x5865F2,  # blurple
    TaskState.DELIVERING: 0x1ABC9C,  # teal
    TaskState.DONE: 0x2ECC71,  # green
    TaskState.FAILED: 0xE74C3C,  # red
}

DEFAULT_IMAGINE_RATIO: Final = "16:9"
# bot.outcomes.Outcome.CANCELLED's value (this layer sits below bot.outcomes; a test ties them).
CANCELLED: Final = "cancelled"
GENERIC_FAILURE: Final = N_("Something went wrong while making this image.")
# A private reply is reachable for the interaction's 15 minutes only; then a DM brings it.
PRIVATE_NOTE: Final = N_(
    "Only you can see this. If the image takes longer than 15 minutes, it comes to you "
    "by direct message."
)

_MARKDOWN = frozenset("\\*_~`|>#-[]()<")
# Bidirectional embeddings, overrides and isolates can flip how the rest of a line reads.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_WHITESPACE_RUN = re.compile(r"\s+")
_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)


@dataclass(frozen=True)
class StatusView:
    title: str
    body: str
    color: int
    footer: str


def render_status(
    task: Task,
    *,
    now: float,
    queue_position: int | None = None,
    estimate: float | None = None,
    retry_at: float | None = None,
) -> StatusView:
    """The status of `task` at time `now` (unix seconds), in the task's language."""
    locale = task.locale
    lines: list[str] = []
    title = _title(task, now=now, queue_position=queue_position, estimate=estimate)
    if task.state is TaskState.QUEUED and retry_at is not None:
        lines.append(
            tr(locale, "KIE is busy; retrying {when}", when=f"<t:{math.ceil(retry_at)}:R>")
        )
    elif task.state is TaskState.FAILED:
        lines.append(failure_text(task))
    lines.extend(_details(task))
    if task.private and not task.terminal:
        lines.append(tr(locale, PRIVATE_NOTE))
    return StatusView(
        title=title,
        body="\n".join(lines),
        color=STATE_COLORS[task.state],
        footer=tr(locale, "Task {id}", id=task.id),
    )


def _title(task: Task, *, now: float, queue_position: int | None, estimate: float | None) -> str:
    locale, state = task.locale, task.state
    if state is TaskState.QUEUED:
        if queue_position is None:
            return tr(locale, "Queued")
        return tr(locale, "Queued — position {position}", position=queue_position)
    if state is TaskState.SUBMITTING:
        return tr(locale, "Sending to KIE…")
    if state is TaskState.GENERATING:
        started = task.submitted_at if task.submitted_at is not None else task.created_at
        elapsed = max(0.0, now - started)
        took = format_duration(elapsed, locale)
        if estimate is None:
            return tr(locale, "Generating — {elapsed} elapsed", elapsed=took)
        usual = format_duration(estimate, locale)
        if elapsed > estimate:
            return tr(
                locale,
                "Generating — {elapsed} elapsed · usually about {estimate}, "
                "taking longer than usual",
                elapsed=took,
                estimate=usual,
            )
        return tr(
            locale,
            "Generating — {elapsed} elapsed · usually about {estimate}",
            elapsed=took,
            estimate=usual,
        )
    if state is TaskState.DELIVERING:
        return tr(locale, "Posting the image…")
    if state is TaskState.DONE:
        finished = task.delivered_at or task.completed_at or task.updated_at
        took = format_duration(max(0.0, finished - task.created_at), locale)
        return tr(locale, "Done in {duration}", duration=took)
    return tr(locale, "Cancelled") if task.error_code == CANCELLED else tr(locale, "Failed")


def failure_text(task: Task) -> str:
    """Why the task failed, in its language: the stored message is an outcome's English text
    (bot.outcomes.MESSAGES, the catalogue's msgid); anything else is shown as it is."""
    message = task.error_message or GENERIC_FAILURE
    if "{" in message or "}" in message:
        return message
    return tr(task.locale, message)


def _details(task: Task) -> list[str]:
    """The prompt, model and aspect ratio lines."""
    locale = task.locale
    return [
        tr(locale, "**Prompt:** {prompt}", prompt=prompt_excerpt(task.params.prompt)),
        tr(
            locale,
            "**Model:** {model} · **Aspect ratio:** {ratio}",
            model=_model_name(task.params.model),
            ratio=_ratio(task),
        ),
    ]


def render_set_status(
    tasks: Sequence[Task],
    *,
    delivered: frozenset[str],
    now: float,
    estimate: float | None = None,
) -> StatusView:
    """The status of a set (`tasks`, in their order): how many of its images are in the
    message (`delivered`: their task ids), each failure named, and what the rest are doing."""
    first = tasks[0]
    locale = first.locale
    failed = [t for t in tasks if t.state is TaskState.FAILED]
    pending = [t for t in tasks if t.id not in delivered and not t.terminal]
    title, color = _set_title(tasks, delivered=delivered, pending=pending)
    lines = [_set_failure_line(t) for t in failed]
    if pending:
        lines.append(_pending_line(pending, now=now, estimate=estimate, locale=locale))
    lines.extend(_details(first))
    if first.private and pending:
        lines.append(tr(locale, PRIVATE_NOTE))
    footer = tr(locale, "Set {id}", id=first.set_id or first.id)
    return StatusView(title=title, body="\n".join(lines), color=color, footer=footer)


def _set_failure_line(task: Task) -> str:
    why = failure_text(task)
    if task.error_code == CANCELLED:
        return tr(task.locale, "Image {index}: cancelled — {why}", index=task.set_index, why=why)
    return tr(task.locale, "Image {index}: failed — {why}", index=task.set_index, why=why)


def _set_title(
    tasks: Sequence[Task], *, delivered: frozenset[str], pending: Sequence[Task]
) -> tuple[str, int]:
    locale = tasks[0].locale
    size = len(tasks)
    ready = sum(1 for t in tasks if t.id in delivered)
    if not pending and not ready:
        cancelled = all(t.error_code == CANCELLED for t in tasks if t.state is TaskState.FAILED)
        title = tr(locale, "Cancelled") if cancelled else tr(locale, "No image could be made")
        return title, STATE_COLORS[TaskState.FAILED]
    if not pending and ready == size:
        return tr(locale, "{size} images ready", size=size), STATE_COLORS[TaskState.DONE]
    if not pending:
        title = tr(locale, "{ready} of {size} ready", ready=ready, size=size)
        return title, STATE_COLORS[TaskState.DONE]
    if ready:
        title = tr(locale, "{ready} of {size} ready", ready=ready, size=size)
    else:
        title = tr(locale, "Making {size} images…", size=size)
    return title, STATE_COLORS[min((t.state for t in pending), key=_STATE_ORDER.index)]


_STATE_ORDER: Final = list(TaskState)


def _pending_line(
    pending: Sequence[Task], *, now: float, estimate: float | None, locale: str | None
) -> str:
    """What the images still to come are doing: 'Images 2, 4: generating — 12 s elapsed'."""
    by_state: dict[TaskState, list[Task]] = {}
    for task in pending:
        by_state.setdefault(task.state, []).append(task)
    parts = []
    for state, group in by_state.items():
        numbers = ", ".join(str(t.set_index) for t in group)
        words = tr(locale, _SET_STATE_WORDS[state])
        if len(group) == 1:
            parts.append(tr(locale, "Image {numbers}: {state}", numbers=numbers, state=words))
        else:
            parts.append(tr(locale, "Images {numbers}: {state}", numbers=numbers, state=words))
    generating = [t for t in pending if t.state is TaskState.GENERATING]
    if generating:
        started = min(t.submitted_at or t.created_at for t in generating)
        elapsed = format_duration(max(0.0, now - started), locale)
        if estimate is None:
            parts.append(tr(locale, "{elapsed} elapsed", elapsed=elapsed))
        else:
            usual = format_duration(estimate, locale)
            parts.append(
                tr(
                    locale,
                    "{elapsed} elapsed, usually about {estimate}",
                    elapsed=elapsed,
                    estimate=usual,
                )
            )
    return " · ".join(parts)


_SET_STATE_WORDS: Final = {
    TaskState.QUEUED: N_("queued"),
    TaskState.SUBMITTING: N_("sending to KIE"),
    TaskState.GENERATING: N_("generating"),
    TaskState.DELIVERING: N_("posting"),
}


def _model_name(model: str) -> str:
    return MODEL_NAMES.get(model) or prompt_excerpt(model, 40)


def _ratio(task: Task) -> str:
    if task.params.aspect_ratio:
        return prompt_excerpt(task.params.aspect_ratio, 20)
    return tr(task.locale, "input's ratio") if task.kind is TaskKind.EDIT else DEFAULT_IMAGINE_RATIO


# Seconds a model's task is assumed to take before the bot has seen three of them finish.
# KIE documents no generation times (../shared/kie-api.md; its simulator's default is 8 s):
# these are the upper ends of the typical times issue 16's brief gives (Pro 15-20 s, Max
# 20-25 s). Too long costs one late look at a fast task; too short, polls in the wrong place.
TYPICAL_SECONDS: Final[dict[str, float]] = {PRO: 20.0, MAX: 25.0}


def estimate_duration(durations: Sequence[float], running: Sequence[float] = ()) -> float | None:
    """The median of recent durations, or None with fewer than three usable samples.

    With `running` (how long each task still generating has run so far) it is the median of
    all of them, a running task counting as at least as long as it has run (Kaplan and
    Meier's estimate): tasks sent together finish shortest first, and the median of the
    first three alone is the median of the three shortest. None while more than half of them
    may still be longer than every finished one."""
    return _median(_usable(durations), _usable(running))


def _median(finished: list[float], running: list[float]) -> float | None:
    """estimate_duration of durations already made `_usable`."""
    if len(finished) < MIN_SAMPLES:
        return None
    if not running:
        return float(statistics.median(finished))
    return _censored_median(finished, running)


def _usable(durations: Sequence[float]) -> list[float]:
    """The durations that can be measured against (finite, not negative), shortest first."""
    return sorted(d for d in durations if math.isfinite(d) and d >= 0)


def _censored_median(finished: list[float], running: list[float]) -> float | None:
    at_risk = len(finished) + len(running)
    still = 1.0  # the share of tasks longer than the duration reached
    gone = 0  # running tasks shorter than the duration reached: no longer at risk
    for i, duration in enumerate(finished):
        while gone < len(running) and running[gone] < duration:
            gone += 1
        still *= 1 - 1 / (at_risk - i - gone)
        if still <= 0.5:
            return duration
    return None


def model_estimate(
    model: str, durations: Sequence[float], running: Sequence[float] = ()
) -> tuple[float, bool]:
    """How long a task of `model` should take: the median of its recent `durations` (and the
    tasks still `running`: see estimate_duration), else the model's typical time (Pro's for
    an unknown model); when the running tasks leave the median unknown, the longest of all
    so far if that is longer. The flag: True when it is not a median."""
    finished, still = _usable(durations), _usable(running)
    measured = _median(finished, still)
    if measured is not None:
        return measured, False
    typical = TYPICAL_SECONDS.get(model, TYPICAL_SECONDS[PRO])
    if len(finished) < MIN_SAMPLES:  # the guess alone
        return typical, True
    return max(typical, finished[-1], *still[-1:]), True


def early_duration(durations: Sequence[float]) -> float | None:
    """The 10th percentile (nearest rank) of recent durations: how soon a fast task finishes;
    None with fewer than three usable samples."""
    usable = _usable(durations)
    if len(usable) < MIN_SAMPLES:
        return None
    return usable[round(0.1 * (len(usable) - 1))]


def format_duration(seconds: float, locale: str | None = None) -> str:
    """'8 s', '1 min 05 s', '2 h 03 min' (rounded to the second; negatives count as 0), in
    `locale`'s language."""
    if not math.isfinite(seconds):
        return "—"
    total = max(0, math.floor(seconds + 0.5))
    if total < 60:
        return tr(locale, "{seconds} s", seconds=total)
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return tr(locale, "{minutes} min {seconds} s", minutes=minutes, seconds=f"{secs:02d}")
    hours, minutes = divmod(minutes, 60)
    return tr(locale, "{hours} h {minutes} min", hours=hours, minutes=f"{minutes:02d}")


def prompt_excerpt(prompt: str, limit: int = 200) -> str:
    """User text made safe to show inside Discord markdown, on one line, at most `limit`
    visible characters (cut with '…').

    Control and bidi-override characters are dropped, any run of whitespace (newlines
    included) becomes one space, markdown and mention syntax is backslash-escaped, and
    @everyone / @here are broken with a zero-width space.
    """
    cleaned = "".join(
        " " if ch.isspace() else ch
        for ch in prompt
        if ch not in _BIDI_CONTROLS and (ch.isspace() or ch.isprintable() or _is_joiner(ch))
    )
    text = _WHITESPACE_RUN.sub(" ", cleaned).strip()
    if len(text) > limit:
        text = text[: max(0, limit - 1)].rstrip() + "…"
    escaped = "".join("\\" + ch if ch in _MARKDOWN else ch for ch in text)
    return _MASS_MENTION.sub(lambda m: "@" + ZWSP + m.group(1), escaped)


def _is_joiner(ch: str) -> bool:
    # Zero-width (non-)joiners are needed by emoji sequences and some scripts; harmless.
    return ch in "\u200c\u200d"
