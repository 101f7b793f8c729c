"""Finding results again: the image /show posts, who may show what, and the lists of /show's
choices and /history.

A result is kept by whoever still has it, asked in this order: the bot's own copy (private
results), the message that delivered it (through the `ResultArchive` port), then KIE while it
keeps `resultImageUrl` (14 days).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp

from bot import images, net
from bot.custom_ids import task_id_in
from bot.flux import model_name
from bot.i18n import N_, Message, Text, tr
from bot.ledger import OPEN_STATES, Task, TaskAndInputStore, TaskState
from bot.moderation import Moderation
from bot.moderation.policy import PRIVATE_FORCED, Refusal, blocked_refusal, check_channel
from bot.outcomes import Outcome
from bot.ports import ResultArchive, ResultImage
from bot.service import RESULT_REUSE_WINDOW
from bot.status import prompt_excerpt

log = logging.getLogger(__name__)

RESULT_MAX_BYTES: Final = 50 * 1024 * 1024
CHOICES_MAX: Final = 25  # Discord shows at most 25 autocomplete choices
HISTORY_ENTRIES: Final = 10
CHOICE_NAME_MAX: Final = 100

UNKNOWN = Text(
    "I can't find that task. Pick one from the list while you type, or copy the id from the "
    "footer of a result."
)
NOT_YOURS = Text("Only the member who asked for this image (or a moderator) can show it.")
ELSEWHERE = Text("This task was made somewhere else; it can only be shown where it was made.")
DELETED = Text("A moderator deleted this image, so it can't be shown again.")
GONE = Text(
    "This image can't be shown any more: its message was deleted and KIE no longer keeps it "
    "(results expire after 14 days)."
)
HISTORY_FOR_MODERATORS = Text("Only moderators (Manage Messages) can see another member's history.")


@dataclass(frozen=True)
class Showing:
    """How a result may be shown again: `refusal` says why not; `private`: only the viewer
    would see it."""

    refusal: Message | None
    private: bool = False


@dataclass(frozen=True)
class Viewer:
    """Who asks to see tasks, and where."""

    user_id: int
    guild_id: int | None  # None: outside servers
    moderator: bool = False  # may manage messages here


def show_refusal(task: Task | None, viewer: Viewer) -> Message | None:
    """Why `viewer` may not see `task` posted again, or None when they may."""
    if task is None:
        return UNKNOWN
    if task.guild_id != viewer.guild_id:
        # A moderator's right ends at their server; a member's images stay where they were made.
        return UNKNOWN if task.requester_id != viewer.user_id else ELSEWHERE
    if task.requester_id != viewer.user_id and not viewer.moderator:
        return NOT_YOURS
    if task.output_deleted_by is not None:
        return DELETED
    if task.state in OPEN_STATES:
        return Text("This task isn't finished yet: it is {state}.", state=_state_words(task))
    if task.state == TaskState.FAILED:
        reason = task.error_message or Text("no image was made")
        if task.error_code == Outcome.CANCELLED.value:
            return Text("This task has no image: it was cancelled — {reason}", reason=reason)
        return Text("This task has no image: it failed — {reason}", reason=reason)
    return None


def _message(refusal: Refusal | None) -> Message | None:
    return None if refusal is None else refusal.message


def _state_words(task: Task) -> Message:
    words = {
        TaskState.QUEUED: N_("queued"),
        TaskState.SUBMITTING: N_("being sent to KIE"),
        TaskState.GENERATING: N_("generating"),
        TaskState.DELIVERING: N_("being posted"),
    }.get(task.state)
    return Text(words) if words else task.state.value


STATE_LABELS = {
    "cancelled": N_("cancelled"),
    TaskState.QUEUED.value: N_("queued"),
    TaskState.SUBMITTING.value: N_("submitting"),
    TaskState.GENERATING.value: N_("generating"),
    TaskState.DELIVERING.value: N_("delivering"),
    TaskState.DONE.value: N_("done"),
    TaskState.FAILED.value: N_("failed"),
}


def _state_label(task: Task, locale: str | None = None) -> str:
    if task.state == TaskState.FAILED and task.error_code == Outcome.CANCELLED.value:
        state = "cancelled"
    else:
        state = task.state.value
    return tr(locale, STATE_LABELS[state]) if state in STATE_LABELS else state


def ago(seconds: float, locale: str | None = None) -> str:
    """'just now', '12 min ago', '3 h ago', '5 d ago' (plain text: choice names show no markup)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return tr(locale, "just now")
    if seconds >= 86400:
        return tr(locale, "{n} d ago", n=int(seconds // 86400))
    if seconds >= 3600:
        return tr(locale, "{n} h ago", n=int(seconds // 3600))
    return tr(locale, "{n} min ago", n=int(seconds // 60))


def _plain(text: str, limit: int) -> str:
    """One line of user text for a choice name (plain text: nothing to escape there, but
    control and bidi-override characters are dropped)."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def choice_name(task: Task, *, now: float, locale: str | None = None) -> str:
    """What /show's list says about a task: 'a red fox · done · 5 min ago' (≤ 100 characters)."""
    tail = f" · {_state_label(task, locale)} · {ago(now - task.created_at, locale)}"
    if task.in_set:
        place = tr(locale, "#{index} of {size}", index=task.set_index, size=task.set_size)
        tail = f" · {place}" + tail
    return _plain(task.params.prompt, CHOICE_NAME_MAX - len(tail)) + tail


def message_link(task: Task) -> str | None:
    """A link to the message that shows the task (the result, else its reply); None when there
    is none a link could open (a private task's messages are ephemeral)."""
    message = task.result_message_id or task.reply_message_id
    if message is None or task.private:
        return None
    channel = task.result_channel_id or task.channel_id
    return f"https://discord.com/channels/{task.guild_id or '@me'}/{channel}/{message}"


def group_requests(tasks: Sequence[Task]) -> list[list[Task]]:
    """Tasks (in the ledger's order) grouped by request: a set's images together."""
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.set_id or task.id, []).append(task)
    return list(groups.values())


def _request_state(request: Sequence[Task], locale: str | None) -> str:
    if len(request) == 1:
        return _state_label(request[0], locale)
    counts: dict[str, int] = {}
    for task in request:
        counts[_state_label(task, locale)] = counts.get(_state_label(task, locale), 0) + 1
    states = ", ".join(f"{n} {s}" for s, n in counts.items())
    return tr(locale, "set of {size}: {states}", size=len(request), states=states)


def history_line(number: int, request: Sequence[Task], locale: str | None = None) -> str:
    """One /history entry: prompt, model, state, when, cost, link (a set is one entry)."""
    first = request[0]
    cost = f"{sum(t.cost for t in request if not t.refunded):g}"
    credits = (
        tr(locale, "{cost} credits (refunded)", cost=cost)
        if any(t.refunded for t in request)
        else tr(locale, "{cost} credits", cost=cost)
    )
    parts = [
        f"**{number}.** {prompt_excerpt(first.params.prompt, 80)}",
        model_name(first.params.model),
        _request_state(request, locale),
        f"<t:{int(first.created_at)}:R>",
        credits,
    ]
    if first.output_deleted_by is not None:
        parts.append(tr(locale, "deleted by a moderator"))
    elif (link := message_link(first)) is not None:
        parts.append(tr(locale, "[message]({link})", link=link))
    elif first.private:
        parts.append(tr(locale, "private"))
    return " · ".join(parts)


def history_text(tasks: Sequence[Task], locale: str | None = None) -> str:
    """The /history list: one line per request, newest first."""
    requests = group_requests(tasks)
    if not requests:
        return tr(locale, "No images yet.")
    lines = (history_line(i, request, locale) for i, request in enumerate(requests, 1))
    return "\n".join(lines)


class Recall:
    """Finds a member's tasks and a finished task's image again."""

    def __init__(
        self,
        *,
        ledger: TaskAndInputStore,
        archive: ResultArchive,
        moderation: Moderation,
        downloads: aiohttp.ClientSession,
        allow_private_urls: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._archive = archive
        self._moderation = moderation
        self._downloads = downloads
        self._allow_private = allow_private_urls
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    async def task(self, task_id: str) -> Task | None:
        """The task with this id (as typed, or pasted with a result's footer, "Task …" in any
        of the bot's languages)."""
        found = task_id_in(task_id)
        return await self._ledger.get(found) if found is not None else None

    async def showing(
        self, task: Task | None, viewer: Viewer, *, channel_id: int, parent_id: int | None = None
    ) -> Showing:
        """Whether `viewer` may have `task` posted again here (see show_refusal; and not where
        a new image could not be asked for: the operator's or the server's block, a channel
        the server does not use the bot in), and whether only they would see it (a private
        task, or a server that makes every result private)."""
        refusal = show_refusal(task, viewer)
        if refusal is not None or task is None:
            return Showing(refusal or UNKNOWN)
        denied = await self._moderation.operator.blocked(viewer.user_id)
        if viewer.guild_id is None:
            return Showing(_message(denied), private=task.private)
        block = await self._moderation.get_block(viewer.guild_id, viewer.user_id)
        if denied is None and block is not None:
            denied = blocked_refusal(block.until, block.reason)
        settings = await self._moderation.settings_for(viewer.guild_id)
        denied = denied or check_channel(settings, channel_id, parent_id)
        forced = settings.private_results == PRIVATE_FORCED
        return Showing(_message(denied), private=task.private or forced)

    async def choices(
        self, viewer: Viewer, typed: str, locale: str | None = None
    ) -> list[tuple[str, str]]:
        """/show's list while the member types: (name, task id), newest first; a moderator
        sees everyone's tasks in this server."""
        mine = None if viewer.moderator and viewer.guild_id is not None else viewer.user_id
        tasks = await self._ledger.recent_tasks(
            viewer.guild_id, requester_id=mine, search=typed, limit=CHOICES_MAX
        )
        now = self._clock()
        return [(choice_name(task, now=now, locale=locale), task.id) for task in tasks]

    async def history(self, guild_id: int | None, member_id: int, locale: str | None = None) -> str:
        """A member's last requests here, as /history lists them (in `locale`)."""
        tasks = await self._ledger.recent_requests(guild_id, member_id, limit=HISTORY_ENTRIES)
        return history_text(tasks, locale)

    async def result_image(self, task: Task) -> ResultImage | None:
        """The finished image of `task`: the bot's copy, else the delivered message's
        attachment, else KIE's while it keeps it; None when nobody has it any more."""
        copy = await self._ledger.get_result_copy(task.id)
        if copy is not None:
            found = await self._image(task, copy.data)
            if found is not None:
                return found
        sources = [await self._archive.posted_image_url(task)]
        finished = task.completed_at or task.created_at
        if task.result_url and self._clock() - finished < RESULT_REUSE_WINDOW:
            sources.append(task.result_url)
        for url in sources:
            if url is None:
                continue
            try:
                fetched = await net.safe_fetch(
                    self._downloads,
                    url,
                    max_bytes=RESULT_MAX_BYTES,
                    allow_private=self._allow_private,
                )
            except net.DownloadError as exc:
                log.info("the image of task %s could not be fetched again: %s", task.id, exc)
                continue
            found = await self._image(task, fetched.data)
            if found is not None:
                return found
        return None

    @staticmethod
    async def _image(task: Task, data: bytes) -> ResultImage | None:
        try:
            _, _, kind = await images.in_worker(images.probe, data)
        except images.ImageRejected:
            log.warning("a stored image of task %s is not an image", task.id)
            return None
        return ResultImage(data, images.extension_for(kind), spoiler=task.spoiler)
