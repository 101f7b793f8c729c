"""The small interface the cogs call: admit, validate, create tasks, look them up.

Cogs never touch the ledger, KIE or the network directly; they hand over what Discord gave
them (an `Origin` and the options) and show what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import aiohttp

from bot import custom_ids, images, net
from bot.config import Settings
from bot.flux import DEFAULT_MODEL, MODELS
from bot.ledger import StoredInput, Task, TaskAndInputStore, TaskKind, TaskParams, TaskState
from bot.logs import task_context
from bot.metrics import Metrics
from bot.moderation import Denied, GuildSettings, Moderation
from bot.runner import Runner
from bot.validation import (
    ASPECT_RATIOS,
    OUTPUT_FORMATS,
    InputRejected,
    check_choice,
    check_tolerance,
    clean_prompt,
)

log = logging.getLogger(__name__)

RESULT_REUSE_WINDOW = 13 * 86400  # KIE keeps resultImageUrl 14 days
UPLOAD_REUSE_WINDOW = 20 * 3600  # KIE keeps uploads at least 24 h


class Refused(Exception):
    """The request is fine but may not go ahead now; `user_message` says why and until when."""

    def __init__(self, user_message: str, *, reason: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.reason = reason


@dataclass(frozen=True)
class RequestParams(TaskParams):
    """TaskParams plus the options the member left unset (a server's defaults may fill them)."""

    defaulted: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True)
class Origin:
    """Who asked, where, and through which interaction."""

    user_id: int
    guild_id: int | None
    channel_id: int
    application_id: int
    interaction_id: int
    interaction_token: str
    upload_limit: int
    can_manage_messages: bool = False
    parent_id: int | None = None  # the channel a thread (or forum post) belongs to


@dataclass(frozen=True)
class Admission:
    """A request that `admit` let in: its origin and the settings of the server it came from,
    read once for the whole request (screen and create_task use these, not a fresh read)."""

    origin: Origin
    server: GuildSettings


class KontextService:
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: TaskAndInputStore,
        runner: Runner,
        downloads: aiohttp.ClientSession,
        metrics: Metrics,
        moderation: Moderation,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._runner = runner
        self._downloads = downloads
        self._metrics = metrics
        self.moderation = moderation
        self._clock = clock
        self.accepting = True
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # ---- shutdown ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def taking(self) -> AsyncIterator[None]:
        """Wrap the taking of one request (admit → ledger write) so a shutdown can wait for it."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def idle(self) -> None:
        """Return once no request is being taken."""
        await self._idle.wait()

    # ---- validation (nothing spent) ------------------------------------------------------

    def build_params(
        self,
        *,
        prompt: str | None,
        edit: bool,
        aspect_ratio: str | None = None,
        model: str | None = None,
        output_format: str | None = None,
        enhance_prompt: bool | None = None,
        safety_tolerance: int | None = None,
    ) -> TaskParams:
        """Validate the options of /imagine, /edit or a modal; raise InputRejected."""
        text = clean_prompt(prompt)
        check_choice("aspect_ratio", aspect_ratio, ASPECT_RATIOS)
        check_choice("model", model, MODELS)
        check_choice("output_format", output_format, OUTPUT_FORMATS)
        tolerance = 2 if safety_tolerance is None else safety_tolerance
        check_tolerance(tolerance, edit=edit)
        unset = {"model": model, "aspect_ratio": aspect_ratio, "safety_tolerance": safety_tolerance}
        return RequestParams(
            prompt=text,
            model=model or DEFAULT_MODEL,
            aspect_ratio=aspect_ratio,
            output_format=output_format or "jpeg",
            enhance_prompt=bool(enhance_prompt),
            safety_tolerance=tolerance,
            defaulted=frozenset(name for name, value in unset.items() if value is None),
        )

    def check_bot_permissions(self, missing: Sequence[str]) -> None:
        """Refuse when the bot lacks a permission it needs to post the image where it was
        asked (`missing`: Discord's names for them, e.g. "Attach Files")."""
        if not missing:
            return
        self._refuse("bot_permissions")
        names = " and ".join(f"**{name}**" for name in missing)
        plural, them = ("permissions", "them") if len(missing) > 1 else ("permission", "it")
        raise Refused(
            f"I can't post images here: I need the {names} {plural} in this channel. "
            f"Ask a moderator to give {them} to me (or to my role) here, then try again.",
            reason="bot_permissions",
        )

    async def admit(self, origin: Origin) -> Admission:
        """Checks that cost nothing: shutting down, blocks, channels, the bot's credits,
        open tasks, the cooldown. Raise Refused."""
        if not self.accepting:
            self._refuse("shutdown")
            raise Refused("The bot is restarting. Please try again in a minute.", reason="shutdown")
        with self._moderated():
            server = await self.moderation.admit(
                guild_id=origin.guild_id,
                user_id=origin.user_id,
                channel_id=origin.channel_id,
                parent_id=origin.parent_id,
            )
        open_count = await self._ledger.count_open_for_user(origin.user_id)
        cap = self._settings.user_max_active_tasks
        if open_count >= cap:
            self._refuse("active_tasks")
            raise Refused(
                f"You already have {open_count} image(s) in progress (the limit is {cap}). "
                "Wait for one to finish, then try again.",
                reason="active_tasks",
            )
        last = await self._ledger.last_submission_at(origin.user_id)
        cooldown = self.moderation.cooldown_for(server)
        if last is not None and cooldown > 0:
            ready_at = last + cooldown
            if ready_at > self._clock():
                self._refuse("cooldown")
                raise Refused(
                    f"Slow down a little — you can try again <t:{int(ready_at) + 1}:R>.",
                    reason="cooldown",
                )
        return Admission(origin, server)

    async def screen(
        self, admission: Admission, params: TaskParams, *, kind: TaskKind
    ) -> TaskParams:
        """The server's defaults and rules on what was asked (model, tolerance, blocked words,
        daily credits). Returns the params to use; raise Refused."""
        defaulted = params.defaulted if isinstance(params, RequestParams) else frozenset()
        with self._moderated():
            screened = await self.moderation.screen(
                admission.server,
                guild_id=admission.origin.guild_id,
                user_id=admission.origin.user_id,
                params=params,
                kind=kind,
                defaulted=defaulted,
            )
        return TaskParams.from_dict(screened.to_dict())

    async def fetch_input(self, url: str) -> images.PreparedImage:
        """Download an input image from Discord now (its signed URLs expire) and validate it."""
        try:
            fetched = await net.safe_fetch(
                self._downloads,
                url,
                max_bytes=images.MAX_INPUT_BYTES,
                allow_private=self._settings.allow_private_urls,
            )
        except net.DownloadTooLarge:
            raise InputRejected(
                f"The image is larger than {images.MAX_INPUT_BYTES // (1024 * 1024)} MB."
            ) from None
        except net.DownloadError as exc:
            log.info("input download failed: %s", exc)
            raise InputRejected(
                "The image could not be downloaded from Discord. Please attach it again."
            ) from None
        try:
            return await images.in_worker(images.prepare_input, fetched.data)
        except images.ImageRejected as exc:
            raise InputRejected(exc.user_message) from None

    # ---- tasks ---------------------------------------------------------------------------

    async def create_task(
        self,
        admission: Admission,
        *,
        kind: TaskKind,
        params: TaskParams,
        reply_message_id: int | None,
        image: images.PreparedImage | None = None,
        input_image_url: str | None = None,
        parent_task_id: str | None = None,
    ) -> Task:
        """Charge the day's credits, write the task (QUEUED), hand it to the scheduler.

        Raise Refused when the daily credits ran out since `screen`."""
        origin, server = admission.origin, admission.server
        with self._moderated():
            cost = await self.moderation.charge(
                server, guild_id=origin.guild_id, user_id=origin.user_id, model=params.model
            )
        task = _new_task(
            admission,
            now=self._clock(),
            callbacks_enabled=self._settings.callbacks_enabled,
            kind=kind,
            params=params,
            cost=cost,
            reply_message_id=reply_message_id,
            input_image_url=input_image_url,
            parent_task_id=parent_task_id,
        )
        await self._ledger.insert(task)
        if image is not None:
            await self._ledger.put_input(
                StoredInput(
                    task_id=task.id,
                    data=image.data,
                    filename=f"input.{image.extension}",
                    content_type=image.content_type,
                )
            )
        with task_context(task.id, task.guild_id, task.requester_id):
            log.info(
                "task %s queued: %s by user %s in guild %s",
                task.id,
                kind.value,
                origin.user_id,
                origin.guild_id,
            )
            self._runner.enqueue(task)
        return task

    async def get_task(self, task_id: str) -> Task | None:
        return await self._ledger.get(task_id)

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a task not yet sent to KIE (refunded); False if it had moved on."""
        return await self._runner.cancel(task_id)

    @staticmethod
    def may_control(task: Task, user_id: int, *, can_manage_messages: bool) -> bool:
        return task.requester_id == user_id or can_manage_messages

    async def reroll_source(self, parent: Task) -> tuple[str | None, images.PreparedImage | None]:
        """The input of a re-roll: the parent's upload while KIE keeps it, else its stored bytes."""
        if parent.kind != TaskKind.EDIT:
            return None, None
        if (
            parent.input_image_url
            and parent.submitted_at
            and (self._clock() - parent.submitted_at < UPLOAD_REUSE_WINDOW)
        ):
            return parent.input_image_url, None
        stored = await self._ledger.get_input(parent.id)
        if stored is None:
            raise InputRejected(
                "The input image of this task is no longer kept. Run /edit again with the image."
            )
        try:
            return None, await images.in_worker(images.prepare_input, stored.data)
        except images.ImageRejected as exc:
            raise InputRejected(exc.user_message) from None

    def result_as_input(self, parent: Task) -> str:
        """The URL of a finished result, to edit it again (KIE keeps results 14 days)."""
        if parent.state != TaskState.DONE or not parent.result_url:
            raise InputRejected("This task has no finished image to edit.")
        if self._clock() - (parent.completed_at or parent.created_at) > RESULT_REUSE_WINDOW:
            raise InputRejected(
                "This image is too old to edit directly. Save it and use /edit with it."
            )
        return parent.result_url

    @contextlib.contextmanager
    def _moderated(self) -> Iterator[None]:
        """Moderation's Denied becomes the Refused the cogs show (and is counted)."""
        try:
            yield
        except Denied as exc:
            self._refuse(exc.refusal.reason)
            raise Refused(exc.refusal.message, reason=exc.refusal.reason) from None

    def _refuse(self, reason: str) -> None:
        self._metrics.refusals.labels(reason=reason).inc()


def _new_task(
    admission: Admission,
    *,
    now: float,
    callbacks_enabled: bool,
    kind: TaskKind,
    params: TaskParams,
    cost: float,
    reply_message_id: int | None,
    input_image_url: str | None,
    parent_task_id: str | None,
) -> Task:
    """A QUEUED task for the admitted request, not written yet."""
    origin = admission.origin
    return Task(
        id=custom_ids.new_task_id(),
        kind=kind,
        params=params,
        requester_id=origin.user_id,
        guild_id=origin.guild_id,
        channel_id=origin.channel_id,
        application_id=origin.application_id,
        interaction_id=origin.interaction_id,
        interaction_token=origin.interaction_token,
        created_at=now,
        updated_at=now,
        state=TaskState.QUEUED,
        reply_message_id=reply_message_id,
        input_image_url=input_image_url,
        parent_task_id=parent_task_id,
        callback_secret=secrets.token_urlsafe(24) if callbacks_enabled else None,
        cost=cost,
        upload_limit=origin.upload_limit,
        spoiler=admission.server.spoiler,
    )
