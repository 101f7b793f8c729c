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

from bot.flux import MODEL_NAMES
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
GENERIC_FAILURE: Final = "Something went wrong while making this image."
# A private reply is reachable for the interaction's 15 minutes only; then a DM brings it.
PRIVATE_NOTE: Final = (
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
    """The status of `task` at time `now` (unix seconds)."""
    state = task.state
    lines: list[str] = []
    if state is TaskState.QUEUED:
        title = "Queued" if queue_position is None else f"Queued — position {queue_position}"
        if retry_at is not None:
            lines.append(f"KIE is busy; retrying <t:{math.ceil(retry_at)}:R>")
    elif state is TaskState.SUBMITTING:
        title = "Sending to KIE…"
    elif state is TaskState.GENERATING:
        started = task.submitted_at if task.submitted_at is not None else task.created_at
        elapsed = max(0.0, now - started)
        title = f"Generating — {format_duration(elapsed)} elapsed"
        if estimate is not None:
            title += f" · usually about {format_duration(estimate)}"
            if elapsed > estimate:
                title += ", taking longer than usual"
    elif state is TaskState.DELIVERING:
        title = "Posting the image…"
    elif state is TaskState.DONE:
        finished = task.delivered_at or task.completed_at or task.updated_at
        title = f"Done in {format_duration(max(0.0, finished - task.created_at))}"
    else:
        title = "Cancelled" if task.error_code == CANCELLED else "Failed"
        lines.append(task.error_message or GENERIC_FAILURE)

    lines.append(f"**Prompt:** {prompt_excerpt(task.params.prompt)}")
    lines.append(f"**Model:** {_model_name(task.params.model)} · **Aspect ratio:** {_ratio(task)}")
    if task.private and not task.terminal:
        lines.append(PRIVATE_NOTE)
    return StatusView(
        title=title,
        body="\n".join(lines),
        color=STATE_COLORS[state],
        footer=f"Task {task.id}",
    )


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
    size = len(tasks)
    ready = sum(1 for t in tasks if t.id in delivered)
    failed = [t for t in tasks if t.state is TaskState.FAILED]
    pending = [t for t in tasks if t.id not in delivered and not t.terminal]
    if not pending and not ready:
        cancelled = all(t.error_code == CANCELLED for t in failed)
        title = "Cancelled" if cancelled else "No image could be made"
        color = STATE_COLORS[TaskState.FAILED]
    elif not pending:
        title = f"{size} images ready" if ready == size else f"{ready} of {size} ready"
        color = STATE_COLORS[TaskState.DONE]
    else:
        title = f"{ready} of {size} ready" if ready else f"Making {size} images…"
        color = STATE_COLORS[min((t.state for t in pending), key=_STATE_ORDER.index)]
    lines = [
        f"Image {t.set_index}: "
        + ("cancelled" if t.error_code == CANCELLED else "failed")
        + f" — {t.error_message or GENERIC_FAILURE}"
        for t in failed
    ]
    if pending:
        lines.append(_pending_line(pending, now=now, estimate=estimate))
    lines.append(f"**Prompt:** {prompt_excerpt(first.params.prompt)}")
    lines.append(
        f"**Model:** {_model_name(first.params.model)} · **Aspect ratio:** {_ratio(first)}"
    )
    if first.private and pending:
        lines.append(PRIVATE_NOTE)
    return StatusView(
        title=title, body="\n".join(lines), color=color, footer=f"Set {first.set_id or first.id}"
    )


_STATE_ORDER: Final = list(TaskState)


def _pending_line(pending: Sequence[Task], *, now: float, estimate: float | None) -> str:
    """What the images still to come are doing: 'Images 2, 4: generating — 12 s elapsed'."""
    by_state: dict[TaskState, list[Task]] = {}
    for task in pending:
        by_state.setdefault(task.state, []).append(task)
    parts = []
    for state, group in by_state.items():
        numbers = ", ".join(str(t.set_index) for t in group)
        label = f"Image {numbers}" if len(group) == 1 else f"Images {numbers}"
        parts.append(f"{label}: {_SET_STATE_WORDS[state]}")
    generating = [t for t in pending if t.state is TaskState.GENERATING]
    if generating:
        started = min(t.submitted_at or t.created_at for t in generating)
        elapsed = f"{format_duration(max(0.0, now - started))} elapsed"
        if estimate is not None:
            elapsed += f", usually about {format_duration(estimate)}"
        parts.append(elapsed)
    return " · ".join(parts)


_SET_STATE_WORDS: Final = {
    TaskState.QUEUED: "queued",
    TaskState.SUBMITTING: "sending to KIE",
    TaskState.GENERATING: "generating",
    TaskState.DELIVERING: "posting",
}


def _model_name(model: str) -> str:
    return MODEL_NAMES.get(model) or prompt_excerpt(model, 40)


def _ratio(task: Task) -> str:
    if task.params.aspect_ratio:
        return prompt_excerpt(task.params.aspect_ratio, 20)
    return "input's ratio" if task.kind is TaskKind.EDIT else DEFAULT_IMAGINE_RATIO


def estimate_duration(durations: Sequence[float]) -> float | None:
    """The median of recent durations, or None with fewer than three usable samples."""
    usable = [d for d in durations if math.isfinite(d) and d >= 0]
    if len(usable) < MIN_SAMPLES:
        return None
    return float(statistics.median(usable))


def format_duration(seconds: float) -> str:
    """'8 s', '1 min 05 s', '2 h 03 min' (rounded to the second; negatives count as 0)."""
    if not math.isfinite(seconds):
        return "—"
    total = max(0, math.floor(seconds + 0.5))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


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
