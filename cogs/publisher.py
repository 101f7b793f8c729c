"""The Publisher port on Discord: status edits, the result post, the failure, and the fallbacks.

Paths, in order of preference:
- while the interaction token is fresh (15 minutes), the interaction webhook edits the reply;
- past that, the channel endpoints edit the same message (the bot authored it);
- if the reply was deleted, a new channel message mentions the requester;
- a private task (ephemeral messages) never goes to the channel: past the token, or with its
  reply gone, its result or failure comes by direct message (cogs/direct_messages.py), and
  the bot keeps a copy of its image (Discord cannot give an ephemeral one back);
- a file over the upload limit is re-encoded to fit.
Status edits are throttled per message; the final result is never held back.
Discord's error codes for a post are read here: the core gets a `PublishOutcome`, never a
discord exception.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import aiohttp
import discord

from bot import images
from bot.answers import AnswersFirst
from bot.ledger import LedgerError, StoredInput, Task, TaskAndInputStore, TaskState
from bot.logs import task_context
from bot.metrics import Metrics
from bot.ports import NotPublished, Published, PublishOutcome, Refusal, ResultImage
from bot.status import StatusView, render_status
from bot.supervisor import WorkSet
from cogs.direct_messages import DirectMessages
from cogs.replies import Replies, ReplyGone, ReplyUnreachable
from cogs.result_message import (
    failure_actions,
    result_actions,
    result_embed,
    result_filename,
    status_actions,
    status_embed,
)
from cogs.set_message import SetMessages

log = logging.getLogger(__name__)

STATUS_MIN_INTERVAL = 3.0
FIRST_EDIT_DELAY = 0.5
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024


# Discord's JSON error codes this adapter reads (its REST reference, "JSON Error Codes").
REQUEST_TOO_LARGE = 40005
MISSING_PERMISSIONS = 50013
CANNOT_MESSAGE_USER = 50007  # the member's DMs are closed to the bot


class DiscordPublisher:
    """The core's Publisher (bot.ports), on Discord."""

    def __init__(
        self,
        client: discord.Client,
        ledger: TaskAndInputStore,
        metrics: Metrics,
        *,
        status_context: Callable[[Task], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
        answers: AnswersFirst | None = None,
    ) -> None:
        self._client = client
        self._answers = answers or AnswersFirst()
        self._ledger = ledger
        self._metrics = metrics
        self._clock = clock
        self.status_context: Callable[[Task], dict[str, Any]] = status_context or _no_context
        self._last_edit: dict[str, float] = {}
        self._last_view: dict[str, StatusView] = {}
        self._pending: dict[str, asyncio.TimerHandle] = {}
        # One lock per task, or per set (its id is its first image's task id): held while its
        # message is edited. Weak, so a lock lives exactly while someone holds or awaits it: a
        # set's lock must outlive the settling of its first image while later images post.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._work = WorkSet()
        self._replies = Replies(client, clock)
        self._dms = DirectMessages(client, ledger, clock)
        self._sets = SetMessages(ledger, self._replies, clock)

    # ---- status ---------------------------------------------------------------------------

    def show_status(self, task: Task) -> None:
        """Ask for the reply to show the task's current status, at most once per few seconds."""
        if task.terminal or task.reply_gone:
            return
        key = task.set_id or task.id  # a set has one message, so one status
        if key in self._pending:
            return  # an edit is already scheduled; it reads the latest state when it fires
        now = time.monotonic()
        if key not in self._last_edit:
            # A new task goes queued -> submitting -> generating within a fraction of a second:
            # hold the first edit briefly so the member sees where it landed, in one edit.
            self._last_edit[key] = now - STATUS_MIN_INTERVAL + FIRST_EDIT_DELAY
        wait = self._last_edit[key] + STATUS_MIN_INTERVAL - now
        if wait <= 0:
            self._work.spawn(self._edit_status(key), what=f"status edit of task {key}")
        else:
            loop = asyncio.get_running_loop()
            self._pending[key] = loop.call_later(wait, self._fire_pending, key)

    def _fire_pending(self, task_id: str) -> None:
        self._pending.pop(task_id, None)
        self._work.spawn(self._edit_status(task_id), what=f"status edit of task {task_id}")

    async def _edit_status(self, task_id: str) -> None:
        """`task_id`: a task, or a set (its id is its first image's)."""
        await self._answers.after_answers()
        async with self._lock(task_id):
            task = await self._ledger.get(task_id)
            if task is None or task.reply_gone:
                return
            shown = await self._status_of(task)
            if shown is None:
                return
            view, buttons = shown
            if self._last_view.get(task_id) == view and task.state != TaskState.GENERATING:
                return
            self._last_edit[task_id] = time.monotonic()
            self._last_view[task_id] = view
            with task_context(task.id, task.guild_id, task.requester_id):
                try:
                    await self._replies.edit(
                        task,
                        embed=status_embed(view),
                        content=None,
                        attachments=None,
                        view=buttons,
                    )
                except ReplyGone:
                    log.info("reply of task %s is gone; the result will be posted anew", task_id)
                    await self._ledger.update(task_id, reply_gone=True)
                except ReplyUnreachable:
                    log.info("task %s: the interaction token ran out; no more status", task_id)
                except discord.HTTPException as exc:
                    log.warning(
                        "status edit of task %s failed: %s %s", task_id, exc.status, exc.code
                    )
                except CONNECTION_ERRORS as exc:
                    log.warning("status edit of task %s failed: %s", task_id, unreachable(exc))

    async def _status_of(self, task: Task) -> tuple[StatusView, discord.ui.View] | None:
        """What the reply shows now; None when there is no status to show any more."""
        if task.in_set:
            return await self._sets.status(task, estimate=self.status_context(task).get("estimate"))
        if task.terminal:
            return None
        view = render_status(task, now=self._clock(), **self.status_context(task))
        return view, status_actions(task)

    def forget(self, task_id: str) -> None:
        handle = self._pending.pop(task_id, None)
        if handle is not None:
            handle.cancel()
        self._last_edit.pop(task_id, None)
        self._last_view.pop(task_id, None)

    async def close(self) -> None:
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        await self._work.wait()

    # ---- final messages --------------------------------------------------------------------

    async def post_result(self, task: Task, image: ResultImage) -> PublishOutcome:
        """Post the image with its details and buttons, in the reply or a new message; a
        private result's copy is written after the post (it is not on the way to the member),
        and before the task is DONE."""
        self._cancel_pending(task.id)
        outcome = await self._post_result(task, image)
        if task.private and isinstance(outcome, Published):
            await self._keep_copy(task, image)
        return outcome

    async def _post_result(self, task: Task, image: ResultImage) -> PublishOutcome:
        limit = task.upload_limit or DEFAULT_UPLOAD_LIMIT
        # Leave room for the multipart envelope.
        budget = max(64 * 1024, limit - 16 * 1024)
        data, extension = image.data, image.extension
        if len(data) > budget:
            data, extension = await images.in_worker(images.fit_to_limit, data, budget)
        async with self._lock(task.set_id or task.id):
            for attempt in range(3):  # a re-encoding, and a private reply's switch to a DM
                filename = result_filename(task, extension, spoiler=image.spoiler)
                try:
                    if self._replies.by_dm(task):
                        return await self._dms.post_result(task, data, filename)
                    return Published(await self._post_image(task, data, filename))
                except (ReplyUnreachable, ReplyGone) as exc:
                    if task.private:  # Discord refused the token earlier than the bot's clock
                        task = task.with_changes(reply_gone=True)
                        continue
                    if isinstance(exc, ReplyUnreachable):
                        return NotPublished(Refusal.EXPIRED, "the interaction token ran out")
                    return NotPublished(Refusal.DELETED, "the reply is gone; no channel to post in")
                except discord.HTTPException as exc:
                    if exc.code == REQUEST_TOO_LARGE and attempt == 0:
                        data, extension = await images.in_worker(
                            images.fit_to_limit, data, max(64 * 1024, budget // 2)
                        )
                        continue
                    return refused(exc)
                except CONNECTION_ERRORS as exc:
                    return NotPublished(Refusal.TRANSIENT, unreachable(exc))
            return NotPublished(Refusal.TOO_LARGE, "too large even after re-encoding")

    async def post_failure(self, task: Task) -> PublishOutcome:
        """Show a failed task's reason in its reply (or a new message if the reply is gone)."""
        self._cancel_pending(task.id)
        view = render_status(task, now=self._clock())
        buttons = failure_actions(task)
        async with self._lock(task.set_id or task.id):
            try:
                if task.in_set and not task.reply_gone:
                    return Published(await self._sets.show_failure(task))
                return Published(await self._show_failure(task, status_embed(view), buttons))
            except ReplyUnreachable:
                log.warning("could not show the failure of task %s: out of reach", task.id)
                return NotPublished(Refusal.EXPIRED, "out of reach")
            except discord.HTTPException as exc:
                log.warning(
                    "could not show the failure of task %s: %s %s", task.id, exc.status, exc.code
                )
                return refused(exc)
            except CONNECTION_ERRORS as exc:
                log.warning("could not show the failure of task %s: %s", task.id, unreachable(exc))
                return NotPublished(Refusal.TRANSIENT, unreachable(exc))

    async def _show_failure(self, task: Task, embed: discord.Embed, view: discord.ui.View) -> int:
        if not self._replies.by_dm(task) and not task.reply_gone:
            try:
                return await self._replies.edit(
                    task, embed=embed, content=None, attachments=None, view=view
                )
            except ReplyGone:
                pass
            except ReplyUnreachable:
                if not task.private:
                    raise
        if task.private:
            return await self._dms.post_failure(task, embed, view)
        self._replies.check_reachable(task)
        message = await self._replies.channel(task).send(
            content=f"<@{task.requester_id}>",
            embed=embed,
            view=view,
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(task.requester_id)]),
            nonce=_nonce(task.id, "fail"),
        )
        return message.id

    async def _post_image(self, task: Task, data: bytes, filename: str) -> int:
        """Into the set's message, or as the task's own result."""
        if task.in_set and not task.reply_gone:
            try:
                return await self._sets.post_image(task, data, filename)
            except ReplyGone:
                if task.guild_id is None:
                    raise
                log.info(
                    "reply of set %s was deleted; posting image %s alone", task.set_id, task.id
                )
                task = task.with_changes(reply_gone=True)
        return await self._post_final(task, data, filename)

    async def _post_final(self, task: Task, data: bytes, filename: str) -> int:
        parent = await self._ledger.get(task.parent_task_id) if task.parent_task_id else None
        embed = result_embed(task, filename, now=self._clock(), parent=parent)
        content = None if task.private else f"<@{task.requester_id}>"
        mentions = discord.AllowedMentions(users=[discord.Object(task.requester_id)])
        view = result_actions(task)
        if not task.reply_gone:
            try:
                return await self._replies.edit(
                    task,
                    embed=embed,
                    content=content,
                    attachments=[discord.File(io.BytesIO(data), filename=filename)],
                    view=view,
                    allowed_mentions=mentions,
                )
            except ReplyGone:
                if task.guild_id is None:
                    raise  # there is no channel to post in
                log.info("reply of task %s was deleted; posting a new message", task.id)
        if task.private:
            raise ReplyGone  # never in the channel: post_result sends it by DM
        message = await self._replies.channel(task).send(
            content=content,
            embed=embed,
            file=discord.File(io.BytesIO(data), filename=filename),
            view=view,
            allowed_mentions=mentions,
            nonce=_nonce(task.id, "result"),
        )
        return message.id

    # ---- plumbing ----------------------------------------------------------------------------

    def token_fresh(self, task: Task) -> bool:
        return self._replies.token_fresh(task)

    @staticmethod
    def token_deadline(task: Task) -> float:
        return Replies.token_deadline(task)

    async def _keep_copy(self, task: Task, image: ResultImage) -> None:
        """The bot's own copy of a private result, to show it again later (/show)."""
        filename = f"kontext-{task.id}.{image.extension}"
        try:
            await self._ledger.put_result_copy(
                StoredInput(task.id, image.data, filename, images.content_type_of(filename))
            )
        except LedgerError as exc:  # the member has the image: the delivery stands
            log.warning("could not keep a copy of private result %s: %s", task.id, exc)

    def _lock(self, task_id: str) -> asyncio.Lock:
        lock = self._locks.get(task_id)
        if lock is None:
            lock = self._locks[task_id] = asyncio.Lock()
        return lock

    def _cancel_pending(self, task_id: str) -> None:
        handle = self._pending.pop(task_id, None)
        if handle is not None:
            handle.cancel()

    # Discord API errors are counted once, at the transport (KontextBot's http_trace).


# No answer from Discord at all (a dropped connection, a reset, a timeout): discord.py passes
# these through once its own retries are spent. A retried post is safe: an edit replaces, and a
# channel post carries a nonce.
CONNECTION_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


def unreachable(exc: BaseException) -> str:
    return f"no answer from Discord ({type(exc).__name__})"


def refused(exc: discord.HTTPException) -> NotPublished:
    """Discord's refusal of a post, as the core reads it."""
    detail = f"Discord answered {exc.status} {exc.code}"
    if exc.code == CANNOT_MESSAGE_USER:
        return NotPublished(Refusal.DM_CLOSED, detail)
    if exc.code == MISSING_PERMISSIONS or exc.status == 403:
        return NotPublished(Refusal.FORBIDDEN, detail)
    if exc.code == REQUEST_TOO_LARGE:
        return NotPublished(Refusal.TOO_LARGE, detail)
    if exc.status >= 500 or exc.status == 429:
        return NotPublished(Refusal.TRANSIENT, detail)
    return NotPublished(Refusal.REFUSED, detail)


def _no_context(task: Task) -> dict[str, Any]:
    return {}


def _nonce(task_id: str, kind: str) -> str:
    # Discord de-duplicates channel messages by nonce, so a retried post cannot appear twice.
    return f"{task_id}{kind[:1]}"
