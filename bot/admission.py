"""Admission: whether a request may go ahead, asked twice.

Before the interaction is acknowledged, `admit_early` and `screen_early` answer from memory
(bot.moderation.memory), with no I/O, so the answer (a private refusal, or the "thinking…"
reply, public or private) goes out at once. Right after it, `admit` and `screen` ask the
ledger, the authority; a refusal there withdraws the reply (cogs.requests). Each
authoritative read is written back to memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from bot.config import Settings
from bot.i18n import Message, Plural, Text
from bot.ledger import Task, TaskAndInputStore, TaskKind, TaskParams
from bot.metrics import Metrics
from bot.moderation import Denied, GuildSettings, Moderation
from bot.moderation.checks import Asker, Screening
from bot.moderation.policy import PRIVATE_OFF


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

    def asker(self) -> Asker:
        """Who asked and where, as the admission checks read it."""
        return Asker(self.guild_id, self.user_id, self.channel_id, self.parent_id)


@dataclass(frozen=True)
class Admission:
    """A request that `admit` let in: its origin and the settings of the server it came from,
    read once for the whole request (screen and create_task use these, not a fresh read)."""

    origin: Origin
    server: GuildSettings
    open_tasks: int = 0  # the member's tasks in progress when admitted
    private: bool = False  # the task's messages are ephemeral (see `_with_privacy`)


class Admitting:
    """KontextService's admission (a base class, like ExistingTasks, for its size)."""

    _settings: Settings
    _ledger: TaskAndInputStore
    _metrics: Metrics
    _clock: Callable[[], float]
    moderation: Moderation
    accepting: bool

    def check_bot_permissions(self, missing: Sequence[str]) -> None:
        """Refuse when the bot lacks a permission it needs to post the image where it was
        asked (`missing`: Discord's names for them, e.g. "Attach Files")."""
        if not missing:
            return
        self._refuse("bot_permissions")
        raise Refused(_missing_permissions(missing), reason="bot_permissions")

    def admit_early(
        self, origin: Origin, *, private: bool | None = None, parent: Task | None = None
    ) -> Admission:
        """`admit` answered from memory, before the acknowledgement. Raise Refused."""
        origin = where_counted(origin, parent)
        self._check_accepting()
        memory = self.moderation.memory
        with self._moderated():
            server = self.moderation.early.admit(origin.asker())
        open_count = memory.open_tasks.get(origin.user_id, 0)
        self._check_member(open_count, memory.last_submission.get(origin.user_id), server)
        return self._with_privacy(Admission(origin, server, open_count), private, parent)

    def screen_early(
        self, admission: Admission, params: TaskParams, *, kind: TaskKind, count: int = 1
    ) -> None:
        """`screen` answered from memory (what it does not know yet is left to `screen`)."""
        with self._moderated():
            self.moderation.early.screen(_screening(admission, params, kind, count))

    async def admit(
        self, origin: Origin, *, private: bool | None = None, parent_task_id: str | None = None
    ) -> Admission:
        """Checks that cost nothing: shutting down, blocks, channels, the bot's credits,
        open tasks, the cooldown, privacy (`private`: the member's option; `parent_task_id`:
        the result the request is made from), asked of the ledger. Raise Refused."""
        parent = await self._ledger.get(parent_task_id) if parent_task_id else None
        origin = where_counted(origin, parent)
        self._check_accepting()
        with self._moderated():
            server = await self.moderation.admit(origin.asker())
        open_count = await self._ledger.count_open_for_user(origin.user_id)
        last = await self._ledger.last_submission_at(origin.user_id)
        self.moderation.memory.note_open_tasks(origin.user_id, open_count)
        self.moderation.memory.note_submission(origin.user_id, last)
        self._check_member(open_count, last, server)
        return self._with_privacy(Admission(origin, server, open_count), private, parent)

    def _check_accepting(self) -> None:
        if not self.accepting:
            self._refuse("shutdown")
            raise Refused(
                Text("The bot is restarting. Please try again in a minute."), reason="shutdown"
            )

    def _check_member(self, open_count: int, last: float | None, server: GuildSettings) -> None:
        """The member's open tasks against the cap, and the cooldown since `last`."""
        cap = self._settings.user_max_active_tasks
        if open_count >= cap:
            self._refuse("active_tasks")
            raise Refused(_too_many_open(open_count, cap), reason="active_tasks")
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
        with self._moderated():
            screened = await self.moderation.screen(_screening(admission, params, kind, count))
        return TaskParams.from_dict(screened.to_dict())

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


def _screening(admission: Admission, params: TaskParams, kind: TaskKind, count: int) -> Screening:
    defaulted = params.defaulted if isinstance(params, RequestParams) else frozenset()
    return Screening(
        admission.server,
        admission.origin.guild_id,
        admission.origin.user_id,
        params,
        kind,
        defaulted,
        count,
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
