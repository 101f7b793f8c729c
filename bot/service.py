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
from dataclasses import dataclass, field, replace

import aiohttp

from bot import custom_ids, images, net
from bot.compare import Comparer
from bot.config import Settings
from bot.executors import UPLOAD_REUSE_WINDOW
from bot.flux import DEFAULT_MODEL, MODELS
from bot.i18n import Message, Plural, Text
from bot.ledger import (
    ParentAction,
    StoredInput,
    Task,
    TaskAndInputStore,
    TaskKind,
    TaskParams,
    TaskState,
)
from bot.logs import task_context
from bot.metrics import Metrics
from bot.moderation import Denied, GuildSettings, Moderation
from bot.moderation.policy import PRIVATE_OFF
from bot.runner import Runner
from bot.service_tasks import RESULT_REUSE_WINDOW, ExistingTasks
from bot.shared_work import leased
from bot.validation import (
    ASPECT_RATIOS,
    OUTPUT_FORMATS,
    InputRejected,
    check_choice,
    check_tolerance,
    clean_prompt,
)

log = logging.getLogger(__name__)

__all__ = ["RESULT_REUSE_WINDOW", "UPLOAD_REUSE_WINDOW", "KontextService", "Origin", "Refused"]


class Refused(Exception):
    """The request is fine but may not go ahead now; `user_message` says why and until when."""

    def __init__(self, user_message: Message, *, reason: str) -> None:
        super().__init__(str(user_message))
        self.user_message = user_message
        self.reason = reason


def _missing_permissions(missing: Sequence[str]) -> Plural:
    return Plural(
        "I can't post images here: I need the {names} permission in this channel. "
        "Ask a moderator to give it to me (or to my role) here, then try again.",
        "I can't post images here: I need these permissions in this channel: {names}. "
        "Ask a moderator to give them to me (or to my role) here, then try again.",
        len(missing),
        names=", ".join(f"**{name}**" for name in missing),
    )


def _too_many_open(open_count: int, cap: int) -> Text:
    return Text(
        "You already have {open_count} image(s) in progress (the limit is {cap}). "
        "Wait for one to finish, then try again.",
        open_count=open_count,
        cap=cap,
    )


def _set_too_large(count: int, total: int, cap: int) -> Text:
    return Text(
        "A set of {count} would take you to {total} images in progress (the limit "
        "is {cap}). Ask for fewer, or wait for one to finish.",
        count=count,
        total=total,
        cap=cap,
    )


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
    locale: str | None = None  # the member's Discord locale: the language of the task's messages


@dataclass(frozen=True)
class Admission:
    """A request that `admit` let in: its origin and the settings of the server it came from,
    read once for the whole request (screen and create_task use these, not a fresh read)."""

    origin: Origin
    server: GuildSettings
    open_tasks: int = 0  # the member's tasks in progress when admitted
    private: bool = False  # the task's messages are ephemeral (see `_with_privacy`)


class KontextService(ExistingTasks):
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
        self.compare = _comparer(settings, ledger, downloads, clock)
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
        raise Refused(_missing_permissions(missing), reason="bot_permissions")

    async def admit(
        self, origin: Origin, *, private: bool | None = None, parent_task_id: str | None = None
    ) -> Admission:
        """Checks that cost nothing: shutting down, blocks, channels, the bot's credits,
        open tasks, the cooldown, privacy (`private`: the member's option; `parent_task_id`:
        the result the request is made from). Raise Refused."""
        parent = await self._ledger.get(parent_task_id) if parent_task_id else None
        origin = where_counted(origin, parent)
        if not self.accepting:
            self._refuse("shutdown")
            raise Refused(
                Text("The bot is restarting. Please try again in a minute."), reason="shutdown"
            )
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
            raise Refused(_too_many_open(open_count, cap), reason="active_tasks")
        last = await self._ledger.last_submission_at(origin.user_id)
        cooldown = self.moderation.cooldown_for(server)
        if last is not None and cooldown > 0:
            ready_at = last + cooldown
            if ready_at > self._clock():
                self._refuse("cooldown")
                raise Refused(
                    Text(
                        "Slow down a little — you can try again {when}.",
                        when=f"<t:{int(ready_at) + 1}:R>",
                    ),
                    reason="cooldown",
                )
        return self._with_privacy(Admission(origin, server, open_count), private, parent)

    def images_for(self, admission: Admission, asked: int | None) -> int:
        """How many images a request makes (`count`, else the server's default), within the
        server's maximum and the member's open tasks (a set of 4 counts as 4). Raise Refused."""
        server = admission.server
        if asked is not None and asked > server.max_count:
            self._refuse("count")
            raise Refused(
                Text(
                    "This server allows at most {max_count} image(s) per request.",
                    max_count=server.max_count,
                ),
                reason="count",
            )
        count = server.count_for(asked)
        cap = self._settings.user_max_active_tasks
        if count > 1 and admission.open_tasks + count > cap:
            self._refuse("active_tasks")
            total = admission.open_tasks + count
            raise Refused(_set_too_large(count, total, cap), reason="active_tasks")
        return count

    def _with_privacy(
        self, admission: Admission, asked: bool | None, parent: Task | None
    ) -> Admission:
        """Whether the request's messages are private: always when made from a private result
        (a re-roll, edit, reframe or pick of it); outside servers as asked; in a server as its
        mode says (forced, the member's choice, or off: asking is refused)."""
        origin, server = admission.origin, admission.server
        from_private = parent is not None and parent.private
        if from_private or origin.guild_id is None:
            return replace(admission, private=from_private or bool(asked))
        if asked and server.private_results == PRIVATE_OFF:
            self._refuse("private")
            raise Refused(Text("Private results are turned off in this server."), reason="private")
        return replace(admission, private=server.private_for(asked))

    async def screen(
        self, admission: Admission, params: TaskParams, *, kind: TaskKind, count: int = 1
    ) -> TaskParams:
        """The server's defaults and rules on what was asked (model, tolerance, blocked words,
        daily credits for `count` images). Returns the params to use; raise Refused."""
        defaulted = params.defaulted if isinstance(params, RequestParams) else frozenset()
        with self._moderated():
            screened = await self.moderation.screen(
                admission.server,
                guild_id=admission.origin.guild_id,
                user_id=admission.origin.user_id,
                params=params,
                kind=kind,
                defaulted=defaulted,
                count=count,
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
                Text(
                    "The image is larger than {megabytes} MB.",
                    megabytes=images.MAX_INPUT_BYTES // (1024 * 1024),
                )
            ) from None
        except net.DownloadError as exc:
            log.info("input download failed: %s", exc)
            raise InputRejected(
                Text("The image could not be downloaded from Discord. Please attach it again.")
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
        parent_action: ParentAction | None = None,
        count: int = 1,
        ref_name: str | None = None,
    ) -> list[Task]:
        """Charge the day's credits, write the task (QUEUED), hand it to the scheduler.

        `count` > 1 makes a set: one task per image, charged together (each holds its own
        cost, refunded on its own), sharing the reply and the input image (`ref_name`'s alone).
        Raise Refused when the daily credits ran out since `screen`."""
        origin, server = admission.origin, admission.server
        with self._moderated():
            cost = await self.moderation.charge(
                server,
                guild_id=origin.guild_id,
                user_id=origin.user_id,
                model=params.model,
                count=count,
            )
        first = _new_task(
            admission,
            now=self._clock(),
            callbacks_enabled=self._settings.callbacks_enabled,
            kind=kind,
            params=params,
            cost=cost,
            reply_message_id=reply_message_id,
            input_image_url=input_image_url,
            parent_task_id=parent_task_id,
            parent_action=parent_action,
        ).with_changes(ref_name=ref_name)
        tasks = [first] if count == 1 else _as_set(first, count, self._settings.callbacks_enabled)
        tasks = [leased(task, self._settings) for task in tasks]
        await self._ledger.insert(*tasks, lease_seconds=self._settings.task_lease_seconds)
        if image is not None:
            await self._ledger.put_input(
                StoredInput(
                    task_id=first.input_key,
                    data=image.data,
                    filename=f"input.{image.extension}",
                    content_type=image.content_type,
                )
            )
        for task in tasks:
            self._enqueue(task)
        return tasks

    def _enqueue(self, task: Task) -> None:
        with task_context(task.id, task.guild_id, task.requester_id):
            log.info(
                "task %s queued: %s by user %s in guild %s%s",
                task.id,
                task.kind.value,
                task.requester_id,
                task.guild_id,
                f" (image {task.set_index} of {task.set_size})" if task.in_set else "",
            )
            self._runner.enqueue(task)

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


def _comparer(
    settings: Settings,
    inputs: TaskAndInputStore,
    downloads: aiohttp.ClientSession,
    clock: Callable[[], float],
) -> Comparer:
    """Compare's sources: the stored input, else KIE's URLs while KIE still serves them."""
    return Comparer(
        inputs=inputs,
        downloads=downloads,
        allow_private_urls=settings.allow_private_urls,
        upload_window=UPLOAD_REUSE_WINDOW,
        result_window=RESULT_REUSE_WINDOW,
        clock=clock,
    )


def where_counted(origin: Origin, parent: Task | None) -> Origin:
    """A click in the bot's DM on a private result it sent there (past the token) counts where
    the result was made: that server's rules, credits and mod-log. The answer is the click's own
    ephemeral reply, so nothing is posted in that server's channel."""
    if parent is None or not parent.private or parent.guild_id is None:
        return origin
    if origin.guild_id is not None or origin.channel_id != parent.result_channel_id:
        return origin
    return replace(origin, guild_id=parent.guild_id, channel_id=parent.channel_id, parent_id=None)


def _callback_secret(callbacks_enabled: bool) -> str | None:
    """The secret in a task's callback URL (each image of a set has its own)."""
    return secrets.token_urlsafe(24) if callbacks_enabled else None


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
    parent_action: ParentAction | None,
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
        parent_action=parent_action,
        callback_secret=_callback_secret(callbacks_enabled),
        cost=cost,
        upload_limit=origin.upload_limit,
        spoiler=admission.server.spoiler,
        private=admission.private,
        locale=origin.locale,
    )


def _as_set(first: Task, count: int, callbacks_enabled: bool) -> list[Task]:
    """The `count` tasks of a set: `first` and its siblings, each its own KIE task."""
    tasks = [first.with_changes(set_id=first.id, set_index=1, set_size=count)]
    for index in range(2, count + 1):
        tasks.append(
            first.with_changes(
                id=custom_ids.new_task_id(),
                set_id=first.id,
                set_index=index,
                set_size=count,
                callback_secret=_callback_secret(callbacks_enabled),
            )
        )
    return tasks
