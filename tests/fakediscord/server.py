"""FakeDiscord: an aiohttp app on 127.0.0.1 that speaks discord.py 2.7.1's gateway and REST wire.

See tests/fakediscord/__init__.py for the public API in one place.
"""

# The waiting helpers take `timeout=` on purpose: tests read better than with asyncio.timeout.

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import BodyPartReader, WSMsgType, web

from .command_limits import check_command_texts
from .conversation import Conversation, MessageView, iter_components
from .gateway import IdentifyLimits, identify_shard, shard_of, shard_refusal
from .limits import (
    Errors,
    check_attachment_count,
    validate_autocomplete,
    validate_command,
    validate_message,
    validate_modal,
)
from .model import (
    ATTACH_FILES,
    CONTEXT_BOT_DM,
    CONTEXT_GUILD,
    CONTEXT_PRIVATE_CHANNEL,
    DISCORD_EPOCH_MS,
    DM_CHANNEL,
    EPHEMERAL,
    GROUP_DM_CHANNEL,
    INTERACTION_TOKEN_TTL,
    LOADING,
    MEMBER_PERMISSIONS,
    MODERATOR_PERMISSIONS,
    NO_MESSAGES_CHANNEL_TYPES,
    PRIVATE_CHANNEL_APP_PERMISSIONS,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    SEND_MESSAGES,
    TEXT_CHANNEL,
    VIEW_CHANNEL,
    Call,
    CallbackRecord,
    CdnFile,
    FakeChannel,
    FakeClock,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    GatewayFrame,
    UploadedFile,
    iso,
)
from .ratelimit import (
    CLOUDFLARE_429_HTML,
    DiscordRateLimits,
    RateLimited,
    rate_limited,
    route_bucket,
)

T = TypeVar("T")
MiB = 1024 * 1024
DEFAULT_ATTACHMENT_SIZE_LIMIT = 10 * MiB
HEARTBEAT_INTERVAL_MS = 41250
SUPPRESS_EMBEDS = 1 << 2

ERROR_MESSAGES: dict[int, str] = {
    10003: "Unknown Channel",
    10008: "Unknown Message",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    40005: "Request entity too large",
    40060: "Interaction has already been acknowledged.",
    50005: "Cannot edit a message authored by another user",
    50001: "Missing Access",
    50006: "Cannot send an empty message",
    50007: "Cannot send messages to this user",
    50008: "Cannot send messages in a non-text channel",
    50013: "Missing Permissions",
    50027: "Invalid Webhook Token",
    50035: "Invalid Form Body",
}
STATUS_TEXT = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


class DiscordError(Exception):
    """An error answer in Discord's shape ``{"message": ..., "code": N[, "errors": ...]}``."""

    def __init__(
        self,
        status: int,
        code: int = 0,
        message: str | None = None,
        *,
        errors: Errors | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        html: str | None = None,
    ) -> None:
        if message is None:
            message = ERROR_MESSAGES.get(code) or f"{status}: {STATUS_TEXT.get(status, 'Error')}"
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code, **(extra or {})}
        if errors:
            self.body["errors"] = errors
        self.headers = headers or {}
        self.html = html  # answered as a text/html page instead of the JSON body (Cloudflare)

    @classmethod
    def from_rate_limited(cls, limited: RateLimited) -> DiscordError:
        """Discord's own 429 (JSON body, Via, every rate-limit header)."""
        body = limited.body
        return cls(
            429,
            int(body["code"]),
            str(body["message"]),
            headers=limited.headers,
            extra={"retry_after": body["retry_after"], "global": body["global"]},
        )


GUILDS_INTENT = 1 << 0
INITIAL_RESPONSE_DEADLINE = 3.0  # seconds Discord waits for an interaction's first callback
AUTOCOMPLETE = 4  # APPLICATION_COMMAND_AUTOCOMPLETE, answered by callback 8 with its choices


@dataclass
class LateResponse:
    """A first callback that came after the 3-second deadline (Discord refused it: 10062)."""

    interaction: FakeInteraction
    age: float
    call: Call

    def __str__(self) -> str:
        data = self.interaction.payload.get("data") or {}
        what = data.get("name") or data.get("custom_id") or "?"
        kind = {2: "command", 3: "component", 5: "modal submit"}.get(self.interaction.type, "?")
        return (
            f"{kind} {what!r} (interaction {self.interaction.id}) first answered after "
            f"{self.age:.1f} s"
        )


@dataclass
class Hold:
    """The next matching REST call, held before it is handled (see ``FakeDiscord.hold_next``)."""

    method: str
    pattern: re.Pattern[str]
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    call: Call | None = None

    def release(self) -> None:
        self.released.set()


@dataclass
class Fault:
    """A pending injected failure (see ``FakeDiscord.fail_next``)."""

    method: str
    pattern: re.Pattern[str]
    status: int
    code: int | None
    remaining: int
    retry_after: float
    message: str | None
    cloudflare: bool = False
    when: Callable[[Call], bool] | None = None
    reset: bool = False
    hits: list[Call] = field(default_factory=list)

    def matches(self, call: Call) -> bool:
        return (
            self.remaining > 0
            and self.method in ("*", call.method)
            and self.pattern.search(call.path) is not None
            and (self.when is None or self.when(call))
        )

    def error(self, call: Call, limits: DiscordRateLimits | None) -> DiscordError:
        if self.cloudflare:
            # Cloudflare's ban page: no JSON, no Via, no X-RateLimit-* (discord.py won't retry).
            return DiscordError(429, 0, "Cloudflare 1015", html=CLOUDFLARE_429_HTML)
        if self.status == 429:
            bucket = route_bucket(call)
            limit = limits.limit_of(bucket) if limits is not None else 5
            error = DiscordError.from_rate_limited(
                rate_limited(bucket, limit, self.retry_after, code=self.code or 0)
            )
            if self.message is not None:
                error.body["message"] = self.message
            return error
        if self.status >= 500 and self.code is None:
            return DiscordError(self.status, 0, self.message or f"{self.status}: Server Error")
        return DiscordError(self.status, self.code or 0, self.message)


class _DropConnection(Exception):
    """An injected fault: close the connection without an answer."""


class _GatewayConn:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0
        self.identified = False
        self.shard = (0, 1)  # [id, count] of its IDENTIFY (or of the session it RESUMEd)


Handler = Callable[..., Awaitable[tuple[int, Any]]]


def chosen_values(select: dict[str, Any], values: list[str]) -> list[str]:
    """The values a member can submit in ``select``: its own options' values, as many as its
    min_values..max_values (default 1..1) allow; AssertionError otherwise."""
    offered = [o.get("value") for o in select.get("options") or []]
    unknown = [v for v in values if v not in offered]
    assert not unknown, (
        f"{unknown} are not options of select {select.get('custom_id')!r}: {offered}"
    )
    low = select.get("min_values")
    high = select.get("max_values")
    low = 1 if low is None else low
    high = 1 if high is None else high
    if select.get("required") is False:
        low = 0
    assert low <= len(values) <= high, (
        f"select {select.get('custom_id')!r} takes {low}..{high} values, not {values}"
    )
    return list(values)


def _error_response(err: DiscordError, headers: dict[str, str]) -> web.Response:
    if err.html is not None:
        return web.Response(status=err.status, text=err.html, content_type="text/html")
    return _json_response(err.status, err.body, {**headers, **err.headers})


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if body is None or status == 204:
        return web.Response(status=status, headers=headers)
    # Content-Type must be exactly application/json: discord.py compares the whole string.
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


class FakeDiscord:
    """A fake Discord (gateway + REST + CDN) for one test. ``await start()`` / ``await stop()``."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token.kontext.test",
        attachment_size_limit: int = DEFAULT_ATTACHMENT_SIZE_LIMIT,
        host: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.host = host
        self.attachment_size_limit = attachment_size_limit
        self.channel_attachment_size_limit = attachment_size_limit
        self.clock = FakeClock()
        # Discord's 3-second rule: a first callback later than this is refused (404/10062) and
        # recorded in `late_responses`, which `violations()` reports. A test that needs it off
        # sets this to False in its own body, saying why.
        self.enforce_initial_response_deadline = True
        self.late_responses: list[LateResponse] = []
        # The gateway intents an IDENTIFY may ask for (GUILDS: all the README promises).
        self.allowed_intents = GUILDS_INTENT
        # RESUME handling: False → op 9 (client waits 5 s in before_identify_hook, re-IDENTIFYs);
        # True → RESUMED and the queued events are replayed (fast reconnect).
        self.accept_resume = False
        # Discord's rate-limit buckets (see ratelimit.py); a test may set None to turn them off.
        self.rate_limits: DiscordRateLimits | None = DiscordRateLimits()
        self._last_id = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._cond: asyncio.Condition | None = None

        # Recorded traffic
        self.calls: list[Call] = []
        self.unhandled: list[Call] = []
        self.gateway_frames: list[GatewayFrame] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []

        # World
        self.guild_id = self._snowflake()
        # The server's language (Server Settings → Community → language): GUILD_CREATE's
        # `preferred_locale` and every guild interaction's `guild_locale`. Set before the bot
        # connects.
        self.guild_locale = "en-US"
        self.app_id = self._snowflake()
        self.bot_user = FakeUser(self.app_id, "Kontext", MEMBER_PERMISSIONS, bot=True)
        self.roles: dict[int, dict[str, Any]] = {}
        self._add_role("@everyone", MEMBER_PERMISSIONS, role_id=self.guild_id)
        self.moderator_role_id = self._add_role("Moderator", MODERATOR_PERMISSIONS)
        self.bot_role_id = self._add_role("Kontext", MEMBER_PERMISSIONS, managed=True)
        self.bot_user.roles = [self.bot_role_id]
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user}
        self.member = self.add_user("alice")
        self.moderator = self.add_user("mod", roles=[self.moderator_role_id])
        self.channels: dict[int, FakeChannel] = {}
        self.channel = self.add_channel("general")
        self.joined_at = iso(self.clock.time() - 86400)

        # Commands, messages, interactions, CDN
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self._by_token: dict[str, FakeInteraction] = {}
        self.cdn: dict[int, CdnFile] = {}

        # Gateway. `shard_count` is what GET /gateway/bot recommends; servers besides the main
        # one (add_guild, add_guilds) let a test spread servers over shards.
        self.shard_count = 1
        self.identify_limits = IdentifyLimits()
        self.extra_guilds: dict[int, dict[str, Any]] = {}
        self._conns: list[_GatewayConn] = []
        self._sessions: dict[int, _GatewayConn] = {}  # shard id → its identified connection
        self._session_shard_count = 1  # the count the bot's sessions were identified with
        self._pending: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        self.session_id = secrets.token_hex(16)  # shard 0's; shard n's ends in -n

        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self._build_routes()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1 with ``port`` (0: a free port)."""
        self._cond = asyncio.Condition()
        app = web.Application(client_max_size=1024 * MiB)
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_route("GET", "/cdn/{id}/{name}", self._cdn)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close gateway sockets and the server."""
        for hold in self.holds:
            hold.release()
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Value for DISCORD_API_BASE_URL / ``discord.http.Route.BASE``."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """Value for DISCORD_GATEWAY_URL / ``DiscordWebSocket.DEFAULT_GATEWAY``."""
        return f"ws://{self.host}:{self.port}/"

    # ------------------------------------------------------------------ ids, world

    def _snowflake(self) -> int:
        ms = int(self.clock.time() * 1000) - DISCORD_EPOCH_MS
        self._last_id = max(self._last_id + 1, ms << 22)
        return self._last_id

    def _add_role(
        self, name: str, permissions: int, *, role_id: int | None = None, managed: bool = False
    ) -> int:
        rid = role_id if role_id is not None else self._snowflake()
        self.roles[rid] = {
            "id": str(rid),
            "name": name,
            "permissions": str(permissions),
            "position": len(self.roles),
            "color": 0,
            "hoist": False,
            "managed": managed,
            "mentionable": False,
            "flags": 0,
        }
        return rid

    def add_user(
        self, username: str, *, permissions: int | None = None, roles: list[int] | None = None
    ) -> FakeUser:
        """Add a guild member; extra ``permissions`` bits (guild bitfield) get their own role."""
        role_ids = list(roles or [])
        if permissions is not None and permissions & ~MEMBER_PERMISSIONS:
            role_ids.append(self._add_role(f"{username}-role", permissions & ~MEMBER_PERMISSIONS))
        perms = MEMBER_PERMISSIONS
        for rid in role_ids:
            perms |= int(self.roles[rid]["permissions"])
        if permissions is not None:
            perms = permissions
        user = FakeUser(self._snowflake(), username, perms, role_ids)
        self.users[user.id] = user
        return user

    def add_channel(
        self, name: str, *, bot_can_post: bool = True, type: int = TEXT_CHANNEL, bot_deny: int = 0
    ) -> FakeChannel:
        """Add a guild channel of ``type`` (0 text by default; 2 voice, 4 category, 5
        announcement, 13 stage, 15 forum, 16 media). ``bot_deny`` bits are denied to the bot here
        by an overwrite; ``bot_can_post=False`` (or set it later) → posts get 403/50013."""
        ch = FakeChannel(
            self._snowflake(),
            name,
            self.guild_id,
            len(self.channels),
            bot_can_post,
            type=type,
            bot_deny=bot_deny,
        )
        self.channels[ch.id] = ch
        return ch

    def add_thread(self, parent: FakeChannel, name: str, *, private: bool = False) -> FakeChannel:
        """Add a thread (type 11, or 12 when ``private``) under ``parent``; it takes the
        parent's permissions, as Discord computes them."""
        ch = FakeChannel(
            self._snowflake(),
            name,
            self.guild_id,
            0,
            parent.bot_can_post,
            type=PRIVATE_THREAD if private else PUBLIC_THREAD,
            parent_id=parent.id,
        )
        self.channels[ch.id] = ch
        return ch

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The DM channel between ``user`` and the bot (context 1 interactions come from it)."""
        for ch in self.channels.values():
            if ch.type == DM_CHANNEL and ch.recipients[0]["id"] == str(user.id):
                return ch
        ch = FakeChannel(self._snowflake(), "", None, type=DM_CHANNEL, recipients=[user.user_obj()])
        self.channels[ch.id] = ch
        return ch

    def private_channel(self, user: FakeUser, *, group: bool = True) -> FakeChannel:
        """A DM or group DM between members that the bot is not in (context 2, user-installed):
        the bot reaches it only through the interaction token; channel endpoints answer 50001."""
        other = self.add_user(f"friend-of-{user.username}")
        ch = FakeChannel(
            self._snowflake(),
            "group" if group else "",
            None,
            type=GROUP_DM_CHANNEL if group else DM_CHANNEL,
            bot_has_access=False,
            recipients=[other.user_obj()],
        )
        self.channels[ch.id] = ch
        return ch

    def permissions_for(self, user: FakeUser, channel: FakeChannel) -> int:
        if channel.is_thread and channel.parent_id in self.channels:
            channel = self.channels[channel.parent_id]
        perms = user.permissions
        if user.id == self.bot_user.id:
            perms &= ~channel.bot_denied
        return perms

    def _guild_on_shard(self, shard: tuple[int, int] | None) -> int:
        """A new server id; on shard ``[id, count]`` when given."""
        guild_id = self._snowflake()
        if shard is not None:
            shard_id, count = shard
            stamp = guild_id >> 22
            guild_id = (stamp + (shard_id - stamp) % count) << 22
            self._last_id = max(self._last_id, guild_id)
        return guild_id

    def add_guild(
        self, name: str, *, shard: tuple[int, int] | None = None, locale: str = "en-US"
    ) -> FakeChannel:
        """Add another server (on shard ``[id, count]`` when given) with every member and the
        roles of the main one; returns its text channel "general" (its ``guild_id`` names it)."""
        guild_id = self._guild_on_shard(shard)
        self.extra_guilds[guild_id] = {"name": name, "locale": locale, "members": True}
        ch = FakeChannel(self._snowflake(), "general", guild_id, 0, True, type=TEXT_CHANNEL)
        self.channels[ch.id] = ch
        return ch

    def add_guilds(self, count: int) -> list[int]:
        """Add ``count`` bare servers (no channels, the bot its only member), cheaply: their
        ids spread evenly over any shard count."""
        first = (self._snowflake() >> 22) + 1
        ids = [(first + i) << 22 for i in range(count)]
        for guild_id in ids:
            self.extra_guilds[guild_id] = {"name": f"server {guild_id}", "locale": "en-US"}
        self._last_id = max(self._last_id, ids[-1]) if ids else self._last_id
        return ids

    def guild_ids(self) -> list[int]:
        return [self.guild_id, *self.extra_guilds]

    def guild_locale_of(self, guild_id: int) -> str:
        extra = self.extra_guilds.get(guild_id)
        return str(extra["locale"]) if extra else self.guild_locale

    def _guild_roles(self, guild_id: int) -> list[dict[str, Any]]:
        if guild_id == self.guild_id:
            return list(self.roles.values())
        everyone = {**self.roles[self.guild_id], "id": str(guild_id)}
        return [everyone, *(r for rid, r in self.roles.items() if rid != self.guild_id)]

    def guild_obj(self, guild_id: int | None = None) -> dict[str, Any]:
        guild_id = guild_id or self.guild_id
        extra = self.extra_guilds.get(guild_id)
        users = list(self.users.values())
        if extra is not None and not extra.get("members"):
            users = [self.bot_user]
        members = [u.member_obj(self.joined_at) for u in users]
        here = [c for c in self.channels.values() if c.guild_id == guild_id]
        return {
            "id": str(guild_id),
            "name": extra["name"] if extra else "Kontext Test Guild",
            "icon": None,
            "owner_id": str(self.moderator.id),
            "unavailable": False,
            "large": False,
            "member_count": len(members),
            "joined_at": self.joined_at,
            "roles": self._guild_roles(guild_id),
            "channels": [c.channel_obj(self.bot_user.id) for c in here if not c.is_thread],
            "threads": [c.channel_obj(self.bot_user.id) for c in here if c.is_thread],
            "members": members,
            "presences": [],
            "voice_states": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "preferred_locale": self.guild_locale_of(guild_id),
            "premium_tier": 0,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_id": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
        }

    # ------------------------------------------------------------------ CDN

    def add_cdn_file(
        self, filename: str, data: bytes, content_type: str | None = None
    ) -> dict[str, Any]:
        """Store bytes on the fake CDN; returns a Discord attachment object pointing at them."""
        if content_type is None:
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        aid = self._snowflake()
        self.cdn[aid] = CdnFile(aid, filename, bytes(data), content_type)
        url = f"{self.base_url}/cdn/{aid}/{quote(filename)}"
        return {
            "id": str(aid),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    async def _cdn(self, request: web.Request) -> web.Response:
        call = self._new_call(request, request.path, None, [], kind="cdn")
        try:
            blob = self.cdn.get(int(request.match_info["id"]))
        except ValueError:
            blob = None
        if blob is None:
            resp = web.Response(status=404, text="Not Found")
        else:
            resp = web.Response(
                status=200, body=blob.data, headers={"Content-Type": blob.content_type}
            )
        await self._finish(call, resp.status, None)
        return resp

    # ------------------------------------------------------------------ recording, waiting

    def _new_call(
        self,
        request: web.Request,
        path: str,
        body: Any,
        files: list[UploadedFile],
        kind: str = "rest",
    ) -> Call:
        return Call(
            method=request.method,
            path=path,
            query=dict(request.query),
            headers=dict(request.headers),
            json=body,
            files=files,
            time=time.monotonic(),
            kind=kind,
        )

    async def _finish(self, call: Call, status: int, response: Any) -> None:
        call.status = status
        call.response = response
        self.calls.append(call)
        await self._changed()

    async def _changed(self) -> None:
        if self._cond is not None:
            async with self._cond:
                self._cond.notify_all()

    async def wait_until(
        self, predicate: Callable[[], T], timeout: float = 10.0, *, what: str | None = None
    ) -> T:
        """Wait until ``predicate()`` is truthy (re-checked on every fake event); returns it."""
        assert self._cond is not None, "start() the fake first"
        deadline = asyncio.get_running_loop().time() + timeout
        async with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    recent = "\n  ".join(repr(c) for c in self.calls[-15:])
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what or predicate}; "
                        f"last calls:\n  {recent}"
                    )
                # Wake on any fake event; re-check at least every 0.1 s for external state.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), min(remaining, 0.1))

    def find_calls(
        self,
        method: str,
        path_regex: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        since: int = 0,
    ) -> list[Call]:
        """Recorded calls matching method ("*" = any) and ``re.search(path_regex, path)``."""
        pat = re.compile(path_regex)
        method = method.upper()
        return [
            c
            for c in self.calls[since:]
            if method in ("*", c.method)
            and pat.search(c.path)
            and (predicate is None or predicate(c))
        ]

    def mark(self) -> int:
        """An index into ``calls``, for ``since=`` (only calls recorded after this point)."""
        return len(self.calls)

    def violations(self) -> list[str]:
        """Every Discord rule the client broke so far; the ``discord_fake`` fixture fails on any.

        Calls to routes the fake does not know, interactions first answered after 3 s, and
        IDENTIFYs asking for intents beyond ``allowed_intents`` or over the IDENTIFY limits.
        """
        problems: list[str] = []
        if self.unhandled:
            problems.append(f"calls the fake does not know: {self.unhandled}")
        problems.extend(
            f"answered late, refused with 404/10062 Unknown interaction: {late}"
            for late in self.late_responses
        )
        for number, identify in enumerate(self.identifies, 1):
            intents = int(identify.get("intents") or 0)
            if intents & ~self.allowed_intents:
                problems.append(
                    f"IDENTIFY #{number} asked for intents {intents} ({intents:#b}); only "
                    f"{self.allowed_intents} ({self.allowed_intents:#b}, GUILDS) is promised"
                )
        problems.extend(self.identify_limits.violations)
        return problems

    async def wait_for_call(
        self,
        method: str,
        path_regex: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,
        *,
        since: int = 0,
    ) -> Call:
        """The first recorded call matching (waiting for it up to ``timeout`` seconds)."""

        def first() -> Call | None:
            found = self.find_calls(method, path_regex, predicate, since=since)
            return found[0] if found else None

        result = await self.wait_until(first, timeout, what=f"{method} {path_regex}")
        assert result is not None
        return result

    async def wait_for_identify(self, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the ``count``-th IDENTIFY (READY has been sent when this returns)."""
        await self.wait_until(
            lambda: len(self.identifies) >= count and bool(self._sessions),
            timeout,
            what=f"IDENTIFY #{count}",
        )
        return self.identifies[count - 1]

    async def wait_for_conversation(
        self,
        interaction: FakeInteraction,
        predicate: Callable[[Conversation], Any],
        timeout: float = 10.0,
    ) -> Conversation:
        """Wait until ``predicate(conversation)`` holds; returns the conversation."""
        conv = self.conversation(interaction)
        await self.wait_until(lambda: predicate(conv), timeout, what=f"conversation {predicate}")
        return conv

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 429,
        code: int | None = None,
        count: int = 1,
        retry_after: float = 0.05,
        message: str | None = None,
        cloudflare: bool = False,
        when: Callable[[Call], bool] | None = None,
        reset: bool = False,
    ) -> Fault:
        """The next ``count`` matching REST calls answer ``status``.

        ``when`` narrows the match to calls it accepts (e.g. ``lambda c: bool(c.files)``: the
        result post, not a status edit of the same message).

        A 429 is Discord's own (``Via``, ``Retry-After``, ``X-RateLimit-*`` with scope "user",
        JSON ``retry_after``/``global``/``code``): discord.py waits and retries it.
        ``cloudflare=True`` answers Cloudflare's 429 instead (an HTML page, no ``Via``, no
        rate-limit headers): discord.py raises ``HTTPException`` without retrying.
        ``reset=True`` drops the connection before handling the call (nothing is done, nothing
        is answered): the client sees the server disconnect.
        """
        if cloudflare:
            status = 429
        fault = Fault(
            method.upper(),
            re.compile(path_regex),
            status,
            code,
            count,
            retry_after,
            message,
            cloudflare=cloudflare,
            when=when,
            reset=reset,
        )
        self.faults.append(fault)
        return fault

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """Hold the next matching REST call before it is handled: ``arrived`` is set when it
        comes in, and it is handled (and answered) once the test calls ``release()``."""
        hold = Hold(method.upper(), re.compile(path_regex))
        self.holds.append(hold)
        return hold

    async def _wait_if_held(self, call: Call) -> None:
        for hold in self.holds:
            if hold.call is None and hold.method == call.method and hold.pattern.search(call.path):
                hold.call = call
                hold.arrived.set()
                await hold.released.wait()
                return

    def _take_fault(self, call: Call) -> DiscordError | None:
        for fault in self.faults:
            if fault.matches(call):
                fault.remaining -= 1
                fault.hits.append(call)
                if fault.reset:
                    raise _DropConnection
                return fault.error(call, self.rate_limits)
        return None

    # ------------------------------------------------------------------ REST plumbing

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        files: list[UploadedFile] = []
        body: Any = None
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                data = await part.read()
                name = part.name or ""
                if name == "payload_json":
                    body = json.loads(bytes(data))
                else:
                    files.append(
                        UploadedFile(
                            name,
                            part.filename,
                            part.headers.get("Content-Type"),
                            bytes(data),
                        )
                    )
        elif request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
        return body, files

    def _route(self, method: str, pattern: str, handler: Handler, *, auth: bool = True) -> None:
        self._routes.append((method, re.compile(pattern), handler, auth))

    def _build_routes(self) -> None:
        sf = r"(\d+)"
        tok = r"([^/]+)"
        r = self._route
        r("GET", r"/users/@me", self._get_me)
        r("GET", rf"/users/{sf}", self._get_user)
        r("POST", r"/users/@me/channels", self._open_dm)
        r("GET", r"/oauth2/applications/@me", self._get_app)
        r("GET", r"/gateway", self._get_gateway, auth=False)
        r("GET", r"/gateway/bot", self._get_gateway)
        r("GET", rf"/applications/{sf}/commands", self._get_commands)
        r("PUT", rf"/applications/{sf}/commands", self._put_commands)
        r("GET", rf"/applications/{sf}/guilds/{sf}/commands", self._get_guild_commands)
        r("PUT", rf"/applications/{sf}/guilds/{sf}/commands", self._put_guild_commands)
        r("POST", rf"/interactions/{sf}/{tok}/callback", self._callback, auth=False)
        r("GET", rf"/webhooks/{sf}/{tok}/messages/@original", self._get_original, auth=False)
        r("PATCH", rf"/webhooks/{sf}/{tok}/messages/@original", self._edit_original, auth=False)
        r("DELETE", rf"/webhooks/{sf}/{tok}/messages/@original", self._delete_original, auth=False)
        r("POST", rf"/webhooks/{sf}/{tok}", self._followup, auth=False)
        r("GET", rf"/webhooks/{sf}/{tok}/messages/{sf}", self._get_followup, auth=False)
        r("PATCH", rf"/webhooks/{sf}/{tok}/messages/{sf}", self._edit_followup, auth=False)
        r("DELETE", rf"/webhooks/{sf}/{tok}/messages/{sf}", self._delete_followup, auth=False)
        r("GET", rf"/channels/{sf}", self._get_channel)
        r("GET", rf"/channels/{sf}/messages", self._history)
        r("POST", rf"/channels/{sf}/messages", self._send)
        r("GET", rf"/channels/{sf}/messages/{sf}", self._fetch)
        r("PATCH", rf"/channels/{sf}/messages/{sf}", self._edit)
        r("DELETE", rf"/channels/{sf}/messages/{sf}", self._delete)
        r("POST", rf"/channels/{sf}/typing", self._typing)
        r("GET", rf"/guilds/{sf}/members/{sf}", self._get_member)

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        try:
            body, files = await self._read_body(request)
        except Exception as exc:  # malformed body: record and answer 400
            call = self._new_call(request, path, None, [])
            err = DiscordError(400, 50109, f"The request body contains invalid JSON. ({exc})")
            await self._finish(call, err.status, err.body)
            return _json_response(err.status, err.body, err.headers)
        call = self._new_call(request, path, body, files)
        await self._wait_if_held(call)
        headers: dict[str, str] = {}
        try:
            fault = self._take_fault(call)
            if fault is not None:
                raise fault
            if self.rate_limits is not None:
                headers = self._rate_limit(call)
            for method, pattern, handler, auth in self._routes:
                m = pattern.fullmatch(path)
                if m and method == request.method:
                    if auth and request.headers.get("Authorization") != f"Bot {self.token}":
                        raise DiscordError(401, 0, "401: Unauthorized")
                    status, payload = await handler(call, *m.groups())
                    break
            else:
                self.unhandled.append(call)
                raise DiscordError(404, 0, "404: Not Found")
        except DiscordError as err:
            await self._finish(call, err.status, err.html if err.html is not None else err.body)
            return _error_response(err, headers)
        except _DropConnection:
            await self._finish(call, 0, None)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError from None  # the handler ends; nothing is written back
        await self._finish(call, status, payload)
        return _json_response(status, payload, headers)

    def _rate_limit(self, call: Call) -> dict[str, str]:
        assert self.rate_limits is not None
        try:
            return self.rate_limits.admit(call, self.token)
        except RateLimited as limited:
            raise DiscordError.from_rate_limited(limited) from None

    async def _unknown(self, request: web.Request) -> web.Response:
        body, files = await self._read_body(request)
        call = self._new_call(request, request.path, body, files, kind="unknown")
        self.unhandled.append(call)
        err = DiscordError(404, 0, "404: Not Found")
        await self._finish(call, 404, err.body)
        return _json_response(404, err.body)

    # ------------------------------------------------------------------ login, commands

    async def _get_me(self, call: Call) -> tuple[int, Any]:
        return 200, {**self.bot_user.user_obj(), "verified": True, "mfa_enabled": False, "flags": 0}

    async def _get_user(self, call: Call, uid: str) -> tuple[int, Any]:
        user = self.users.get(int(uid))
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return 200, user.user_obj()

    async def _get_member(self, call: Call, gid: str, uid: str) -> tuple[int, Any]:
        user = self.users.get(int(uid))
        if int(gid) != self.guild_id:
            raise DiscordError(404, 10004, "Unknown Guild")
        if user is None:
            raise DiscordError(404, 10007, "Unknown Member")
        return 200, user.member_obj(self.joined_at)

    async def _get_app(self, call: Call) -> tuple[int, Any]:
        return 200, {
            "id": str(self.app_id),
            "name": self.bot_user.username,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.moderator.user_obj(),
            "verify_key": "0" * 64,
            "flags": 0,
            "team": None,
            "summary": "",
        }

    async def _get_gateway(self, call: Call) -> tuple[int, Any]:
        return 200, {
            "url": self.gateway_url.rstrip("/"),
            "shards": self.shard_count,
            "session_start_limit": self.identify_limits.as_wire(),
        }

    def _check_app(self, app_id: str) -> None:
        if int(app_id) != self.app_id:
            raise DiscordError(403, 50001, "Missing Access")

    def _store_commands(self, body: Any, guild_id: int | None) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise DiscordError(400, 50035, errors={"_errors": [{"code": "LIST_TYPE_CONVERT"}]})
        existing = self.guild_commands.get(guild_id, []) if guild_id else self.global_commands
        ids = {(c["name"], c.get("type", 1)): c["id"] for c in existing}
        errors: Errors = {}
        for i, cmd in enumerate(body):
            errors.update(validate_command(cmd, [i]))
            check_command_texts(errors, [i], cmd)
        self._raise_invalid(errors)
        out = []
        for cmd in body:
            ctype = cmd.get("type", 1)
            stored = {
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "contexts": None,  # null: every context
                **cmd,
                # Unset: the app's default install type (a bot: servers).
                "integration_types": cmd.get("integration_types") or [0],
                "id": ids.get((cmd["name"], ctype)) or str(self._snowflake()),
                "application_id": str(self.app_id),
                "type": ctype,
                "version": str(self._snowflake()),
            }
            if guild_id is not None:
                stored["guild_id"] = str(guild_id)
            out.append(stored)
        return out

    async def _get_commands(self, call: Call, app: str) -> tuple[int, Any]:
        self._check_app(app)
        return 200, self.global_commands

    async def _put_commands(self, call: Call, app: str) -> tuple[int, Any]:
        self._check_app(app)
        self.global_commands = self._store_commands(call.json, None)
        return 200, self.global_commands

    async def _get_guild_commands(self, call: Call, app: str, gid: str) -> tuple[int, Any]:
        self._check_app(app)
        return 200, self.guild_commands.get(int(gid), [])

    async def _put_guild_commands(self, call: Call, app: str, gid: str) -> tuple[int, Any]:
        self._check_app(app)
        if int(gid) != self.guild_id:
            raise DiscordError(403, 50001, "Missing Access")
        self.guild_commands[int(gid)] = self._store_commands(call.json, int(gid))
        return 200, self.guild_commands[int(gid)]

    def command_names(self) -> set[str]:
        """Names of every synced command (global and guild)."""
        names = {c["name"] for c in self.global_commands}
        for cmds in self.guild_commands.values():
            names |= {c["name"] for c in cmds}
        return names

    # ------------------------------------------------------------------ messages

    @staticmethod
    def _file_index(f: UploadedFile) -> int | None:
        m = re.fullmatch(r"files\[(\d+)\]", f.name) or re.fullmatch(r"file(\d*)", f.name)
        if not m:
            return None
        return int(m.group(1) or 0)

    def _check_sizes(self, files: list[UploadedFile], limit: int) -> None:
        for f in files:
            if len(f.data) > limit:
                raise DiscordError(413, 40005)

    def _upload(self, f: UploadedFile, filename: str | None) -> dict[str, Any]:
        name = filename or f.filename or "file"
        ctype = f.content_type
        if not ctype or ctype == "application/octet-stream":
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return self.add_cdn_file(name, f.data, ctype)

    def _plan_attachments(
        self,
        existing: list[dict[str, Any]],
        spec: Any,
        files: list[UploadedFile],
        *,
        editing: bool,
    ) -> list[dict[str, Any] | tuple[UploadedFile, str | None]]:
        """The message's attachments after this body: kept ones, and uploads with their name."""
        uploads = {self._file_index(f): f for f in files}
        used: set[int | None] = set()
        out: list[dict[str, Any] | tuple[UploadedFile, str | None]] = []
        if spec is None:
            out = list(existing) if editing else []
        else:
            by_id = {str(a["id"]): a for a in existing}
            for entry in spec if isinstance(spec, list) else []:
                aid = entry.get("id")
                idx = int(aid) if isinstance(aid, int | str) and str(aid).isdigit() else None
                if idx is not None and idx in uploads and idx < 10_000:
                    out.append((uploads[idx], entry.get("filename")))
                    used.add(idx)
                elif str(aid) in by_id:
                    out.append(by_id[str(aid)])
        for idx, f in uploads.items():
            if idx not in used:
                out.append((f, None))
        return out

    def _resolve_attachments(
        self,
        existing: list[dict[str, Any]],
        spec: Any,
        files: list[UploadedFile],
        *,
        editing: bool,
    ) -> list[dict[str, Any]]:
        return [
            self._upload(*item) if isinstance(item, tuple) else item
            for item in self._plan_attachments(existing, spec, files, editing=editing)
        ]

    def _check_message(
        self,
        payload: dict[str, Any],
        files: list[UploadedFile],
        prefix: list[str | int] | None = None,
        *,
        editing: FakeMessage | None = None,
    ) -> None:
        """Discord's shape limits of a message body, and at most 10 attachments on the message
        it leaves (kept ones plus uploads, listed or not); 400 50035 with the error tree."""
        p: list[str | int] = list(prefix or [])
        errors = validate_message(payload, p)
        existing = editing.attachments if editing is not None else []
        planned = self._plan_attachments(
            existing, payload.get("attachments"), files, editing=editing is not None
        )
        check_attachment_count(errors, p, len(planned))
        self._raise_invalid(errors)

    @staticmethod
    def _is_empty(payload: dict[str, Any], files: list[UploadedFile]) -> bool:
        return not (
            payload.get("content")
            or payload.get("embeds")
            or payload.get("components")
            or payload.get("sticker_ids")
            or payload.get("poll")
            or files
        )

    @staticmethod
    def _raise_invalid(errors: Errors) -> None:
        if errors:
            raise DiscordError(400, 50035, errors=errors)

    def _create_message(
        self,
        kind: str,
        channel_id: int,
        payload: dict[str, Any],
        files: list[UploadedFile],
        *,
        author: dict[str, Any] | None = None,
        interaction: FakeInteraction | None = None,
        flags: int = 0,
    ) -> FakeMessage:
        now = iso(self.clock.time())
        msg = FakeMessage(
            id=self._snowflake(),
            channel_id=channel_id,
            author=author or self.bot_user.user_obj(),
            kind=kind,
            content=payload.get("content") or "",
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            attachments=self._resolve_attachments(
                [], payload.get("attachments"), files, editing=False
            ),
            flags=flags,
            timestamp=now,
            message_reference=payload.get("message_reference"),
            nonce=payload.get("nonce"),
        )
        if interaction is not None:
            msg.interaction_id = interaction.id
            msg.webhook_id = self.app_id
            msg.interaction_metadata = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": interaction.user.user_obj(),
                "authorizing_integration_owners": interaction.payload.get(
                    "authorizing_integration_owners", {"0": str(self.guild_id)}
                ),
            }
        self.messages[msg.id] = msg
        return msg

    def _apply_edit(
        self, msg: FakeMessage, payload: dict[str, Any], files: list[UploadedFile]
    ) -> None:
        msg.history.append(msg.to_wire())
        if "content" in payload:
            msg.content = payload["content"] or ""
        if "embeds" in payload:
            msg.embeds = list(payload["embeds"] or [])
        if "components" in payload:
            msg.components = list(payload["components"] or [])
        if isinstance(payload.get("flags"), int):
            msg.flags = (msg.flags & ~SUPPRESS_EMBEDS) | (payload["flags"] & SUPPRESS_EMBEDS)
        msg.attachments = self._resolve_attachments(
            msg.attachments, payload.get("attachments"), files, editing=True
        )
        msg.flags &= ~LOADING
        msg.edited_timestamp = iso(self.clock.time())

    def message(self, message_id: int) -> MessageView:
        """A view of any stored message by id."""
        return MessageView(self, self.messages[message_id])

    def channel_messages(
        self, channel_id: int | None = None, *, include_deleted: bool = True
    ) -> list[MessageView]:
        """Non-ephemeral messages in a channel (default: ``fake.channel``), oldest first."""
        cid = channel_id if channel_id is not None else self.channel.id
        return [
            MessageView(self, m)
            for m in self.messages.values()
            if m.channel_id == cid and not m.ephemeral and (include_deleted or not m.deleted)
        ]

    def inject_message(
        self,
        content: str = "",
        *,
        channel: FakeChannel | None = None,
        author: FakeUser | None = None,
        attachments: list[tuple[str, bytes, str]] | None = None,
        embeds: list[dict[str, Any]] | None = None,
        components: list[dict[str, Any]] | None = None,
    ) -> FakeMessage:
        """Store a message by a user (default ``fake.member``), e.g. a context-menu target."""
        ch = channel or self.channel
        user = author or self.member
        msg = self._create_message(
            "user",
            ch.id,
            {"content": content, "embeds": embeds or [], "components": components or []},
            [],
            author=user.user_obj(),
        )
        msg.attachments = [self.add_cdn_file(*a) for a in attachments or []]
        return msg

    # ------------------------------------------------------------------ channel routes

    def _channel(self, cid: str) -> FakeChannel:
        ch = self.channels.get(int(cid))
        if ch is None:
            raise DiscordError(404, 10003)
        if not ch.bot_has_access:
            raise DiscordError(403, 50001, "Missing Access")
        return ch

    def _channel_message(self, cid: str, mid: str) -> FakeMessage:
        self._channel(cid)
        msg = self.messages.get(int(mid))
        if msg is None or msg.channel_id != int(cid) or msg.deleted or msg.ephemeral:
            raise DiscordError(404, 10008)
        return msg

    async def _get_channel(self, call: Call, cid: str) -> tuple[int, Any]:
        return 200, self._channel(cid).channel_obj(self.bot_user.id)

    async def _history(self, call: Call, cid: str) -> tuple[int, Any]:
        self._channel(cid)
        limit = int(call.query.get("limit", 50))
        msgs = [v.message.to_wire() for v in self.channel_messages(int(cid), include_deleted=False)]
        return 200, list(reversed(msgs))[:limit]

    async def _open_dm(self, call: Call) -> tuple[int, Any]:
        """Create DM: the DM channel between the bot and ``recipient_id`` (the same one each
        time). Opening always works; a member's closed DMs refuse the messages (50007)."""
        body = call.json if isinstance(call.json, dict) else {}
        recipient = str(body.get("recipient_id") or "")
        user = self.users.get(int(recipient)) if recipient.isdigit() else None
        if not recipient.isdigit():
            bad = {
                "code": "NUMBER_TYPE_COERCE",
                "message": f"Value {recipient!r} is not snowflake.",
            }
            self._raise_invalid({"recipient_id": {"_errors": [bad]}})
        if user is None or user.bot:
            raise DiscordError(400, 50033, "Invalid Recipient(s)")
        return 200, self.dm_channel(user).channel_obj(self.bot_user.id)

    def _check_dms_open(self, ch: FakeChannel) -> None:
        """A member who closed their DMs (``FakeUser.dms_closed``) refuses the bot's messages."""
        if ch.type != DM_CHANNEL or not ch.bot_has_access:
            return
        recipient = self.users.get(int(ch.recipients[0]["id"]))
        if recipient is not None and recipient.dms_closed:
            raise DiscordError(403, 50007)

    async def _send(self, call: Call, cid: str) -> tuple[int, Any]:
        ch = self._channel(cid)
        self._check_dms_open(ch)
        self._check_bot_can_post(ch, with_files=bool(call.files))
        payload = call.json if isinstance(call.json, dict) else {}
        self._check_message(payload, call.files)
        if self._is_empty(payload, call.files):
            raise DiscordError(400, 50006)
        self._check_sizes(call.files, self.channel_attachment_size_limit)
        ref = payload.get("message_reference")
        if isinstance(ref, dict) and ref.get("message_id"):
            target = self.messages.get(int(ref["message_id"]))
            if (target is None or target.deleted) and ref.get("fail_if_not_exists", True):
                self._raise_invalid(
                    {
                        "message_reference": {
                            "_errors": [
                                {
                                    "code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                                    "message": "Unknown message",
                                }
                            ]
                        }
                    }
                )
            ref = {**ref, "channel_id": str(ch.id), "guild_id": str(self.guild_id)}
            payload = {**payload, "message_reference": ref}
        flags = int(payload.get("flags") or 0) & SUPPRESS_EMBEDS
        msg = self._create_message("channel", ch.id, payload, call.files, flags=flags)
        return 200, msg.to_wire()

    async def _fetch(self, call: Call, cid: str, mid: str) -> tuple[int, Any]:
        return 200, self._channel_message(cid, mid).to_wire()

    async def _edit(self, call: Call, cid: str, mid: str) -> tuple[int, Any]:
        msg = self._channel_message(cid, mid)
        if msg.author.get("id") != str(self.bot_user.id):
            raise DiscordError(403, 50005)
        payload = call.json if isinstance(call.json, dict) else {}
        self._check_message(payload, call.files, editing=msg)
        self._check_sizes(call.files, self.channel_attachment_size_limit)
        self._apply_edit(msg, payload, call.files)
        return 200, msg.to_wire()

    async def _delete(self, call: Call, cid: str, mid: str) -> tuple[int, Any]:
        msg = self._channel_message(cid, mid)
        msg.deleted = True
        return 204, None

    async def _typing(self, call: Call, cid: str) -> tuple[int, Any]:
        self._check_bot_can_post(self._channel(cid), with_files=False)
        return 204, None

    def _check_bot_can_post(self, ch: FakeChannel, *, with_files: bool) -> None:
        """Discord's refusals of a bot post: a channel without a message list (category, forum,
        media), no View Channel, no Send Messages, or files without Attach Files."""
        if ch.type in NO_MESSAGES_CHANNEL_TYPES:
            raise DiscordError(400, 50008)
        perms = self.permissions_for(self.bot_user, ch)
        if not perms & VIEW_CHANNEL:
            raise DiscordError(403, 50001)
        if not perms & SEND_MESSAGES or (with_files and not perms & ATTACH_FILES):
            raise DiscordError(403, 50013)

    # ------------------------------------------------------------------ interactions (REST side)

    def interaction_age(self, interaction: FakeInteraction) -> float:
        """Seconds since the interaction was created, on the fake clock."""
        return self.clock.time() - interaction.created_at

    def _check_age(self, inter: FakeInteraction) -> None:
        if self.interaction_age(inter) > INTERACTION_TOKEN_TTL:
            raise DiscordError(401, 50027)

    def _by_webhook(self, app: str, token: str) -> FakeInteraction:
        inter = self._by_token.get(token)
        if inter is None or int(app) != self.app_id:
            raise DiscordError(404, 10015)
        self._check_age(inter)
        return inter

    def _interaction_message(self, inter: FakeInteraction, mid: int | None) -> FakeMessage:
        if mid is None or mid not in self.messages or self.messages[mid].deleted:
            raise DiscordError(404, 10008)
        return self.messages[mid]

    def _callback_body(
        self, inter: FakeInteraction, rtype: int, msg: FakeMessage | None
    ) -> dict[str, Any]:
        info: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        resource: dict[str, Any] = {"type": rtype}
        if msg is not None:
            info["response_message_id"] = str(msg.id)
            info["response_message_loading"] = msg.loading
            info["response_message_ephemeral"] = msg.ephemeral
            if rtype != 6:
                resource["message"] = msg.to_wire()
        return {"interaction": info, "resource": resource}

    async def _callback(self, call: Call, iid: str, token: str) -> tuple[int, Any]:
        inter = self.interactions.get(int(iid))
        if inter is None or inter.token != token:
            raise DiscordError(404, 10062)
        age = self.interaction_age(inter)
        if (
            self.enforce_initial_response_deadline
            and not inter.acknowledged
            and age > INITIAL_RESPONSE_DEADLINE
        ):
            self.late_responses.append(LateResponse(inter, age, call))
            raise DiscordError(404, 10062)
        self._check_age(inter)
        if inter.acknowledged:
            raise DiscordError(400, 40060)
        body = call.json if isinstance(call.json, dict) else {}
        rtype = body.get("type")
        data = body.get("data") or {}
        ephemeral = int(data.get("flags") or 0) & EPHEMERAL
        msg: FakeMessage | None = None
        if (inter.type == AUTOCOMPLETE) != (rtype == 8):
            # An autocomplete is answered with its choices (8) and nothing else; 8 answers
            # nothing else.
            raise DiscordError(
                400, 50035, errors={"type": {"_errors": [{"code": "BASE_TYPE_CHOICES"}]}}
            )
        if rtype == 8:
            self._raise_invalid(validate_autocomplete(data, ["data"]))
        elif rtype == 4:
            self._check_message(data, call.files, ["data"])
            if self._is_empty(data, call.files):
                raise DiscordError(400, 50006)
            self._check_sizes(call.files, inter.attachment_size_limit)
            flags = ephemeral | (int(data.get("flags") or 0) & SUPPRESS_EMBEDS)
            msg = self._create_message(
                "original", inter.channel_id, data, call.files, interaction=inter, flags=flags
            )
            inter.original_id = msg.id
        elif rtype == 5:
            msg = self._create_message(
                "original", inter.channel_id, {}, [], interaction=inter, flags=LOADING | ephemeral
            )
            inter.original_id = msg.id
        elif rtype in (6, 7):
            if inter.message_id is None:
                raise DiscordError(
                    400, 50035, errors={"type": {"_errors": [{"code": "INTERACTION_NO_MESSAGE"}]}}
                )
            msg = self._interaction_message(inter, inter.message_id)
            if rtype == 7:
                self._check_message(data, call.files, ["data"], editing=msg)
                self._check_sizes(call.files, inter.attachment_size_limit)
                self._apply_edit(msg, data, call.files)
            inter.original_id = msg.id
        elif rtype == 9:
            if inter.type == 5:
                raise DiscordError(
                    400, 50035, errors={"type": {"_errors": [{"code": "MODAL_FROM_MODAL"}]}}
                )
            self._raise_invalid(validate_modal(data, ["data"]))
            inter.modal = data
        else:
            raise DiscordError(
                400, 50035, errors={"type": {"_errors": [{"code": "BASE_TYPE_CHOICES"}]}}
            )
        inter.responses.append(CallbackRecord(int(rtype), data, call))
        return 200, self._callback_body(inter, int(rtype), msg)

    async def _get_original(self, call: Call, app: str, token: str) -> tuple[int, Any]:
        inter = self._by_webhook(app, token)
        return 200, self._interaction_message(inter, inter.original_id).to_wire()

    async def _edit_original(self, call: Call, app: str, token: str) -> tuple[int, Any]:
        inter = self._by_webhook(app, token)
        msg = self._interaction_message(inter, inter.original_id)
        payload = call.json if isinstance(call.json, dict) else {}
        self._check_message(payload, call.files, editing=msg)
        self._check_sizes(call.files, inter.attachment_size_limit)
        self._apply_edit(msg, payload, call.files)
        return 200, msg.to_wire()

    async def _delete_original(self, call: Call, app: str, token: str) -> tuple[int, Any]:
        inter = self._by_webhook(app, token)
        self._interaction_message(inter, inter.original_id).deleted = True
        return 204, None

    async def _followup(self, call: Call, app: str, token: str) -> tuple[int, Any]:
        inter = self._by_webhook(app, token)
        if not inter.acknowledged:
            raise DiscordError(404, 10015)
        payload = call.json if isinstance(call.json, dict) else {}
        self._check_message(payload, call.files)
        if self._is_empty(payload, call.files):
            raise DiscordError(400, 50006)
        self._check_sizes(call.files, inter.attachment_size_limit)
        original = self.messages.get(inter.original_id) if inter.original_id else None
        if (
            inter.response_type == 5
            and original is not None
            and original.loading
            and not original.deleted
        ):
            # Discord: the first followup after a "thinking" defer replaces the loading message.
            self._apply_edit(original, payload, call.files)
            return 200, original.to_wire()
        flags = int(payload.get("flags") or 0) & (EPHEMERAL | SUPPRESS_EMBEDS)
        msg = self._create_message(
            "followup", inter.channel_id, payload, call.files, interaction=inter, flags=flags
        )
        inter.followup_ids.append(msg.id)
        return 200, msg.to_wire()

    def _owned(self, inter: FakeInteraction, mid: str) -> FakeMessage:
        m = int(mid)
        if m != inter.original_id and m not in inter.followup_ids:
            raise DiscordError(404, 10008)
        return self._interaction_message(inter, m)

    async def _get_followup(self, call: Call, app: str, token: str, mid: str) -> tuple[int, Any]:
        inter = self._by_webhook(app, token)
        return 200, self._owned(inter, mid).to_wire()

    async def _edit_followup(self, call: Call, app: str, token: str, mid: str) -> tuple[int, Any]:
        inter = self._by_webhook(app, token)
        msg = self._owned(inter, mid)
        payload = call.json if isinstance(call.json, dict) else {}
        self._check_message(payload, call.files, editing=msg)
        self._check_sizes(call.files, inter.attachment_size_limit)
        self._apply_edit(msg, payload, call.files)
        return 200, msg.to_wire()

    async def _delete_followup(self, call: Call, app: str, token: str, mid: str) -> tuple[int, Any]:
        inter = self._by_webhook(app, token)
        self._owned(inter, mid).deleted = True
        return 204, None

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return await self._unknown(request)
        await ws.prepare(request)
        conn = _GatewayConn(ws)
        self._conns.append(conn)
        try:
            await self._ws_send(conn, 10, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_gateway(conn, json.loads(msg.data))
        finally:
            self._conns.remove(conn)
            if self._sessions.get(conn.shard[0]) is conn:
                del self._sessions[conn.shard[0]]
            await self._changed()
        return ws

    async def _ws_send(self, conn: _GatewayConn, op: int, d: Any, t: str | None = None) -> None:
        frame: dict[str, Any] = {"op": op, "d": d}
        if op == 0:
            conn.seq += 1
            frame.update(s=conn.seq, t=t)
        self.gateway_frames.append(GatewayFrame("send", op, t, d, time.monotonic()))
        await conn.ws.send_str(json.dumps(frame))

    async def _on_gateway(self, conn: _GatewayConn, frame: dict[str, Any]) -> None:
        op, d = frame.get("op"), frame.get("d")
        self.gateway_frames.append(GatewayFrame("recv", int(op or 0), None, d, time.monotonic()))
        if op == 1:
            await self._ws_send(conn, 11, None)
        elif op == 2:
            if not isinstance(d, dict) or d.get("token") != self.token:
                await conn.ws.close(code=4004, message=b"Authentication failed.")
                return
            await self._identify(conn, d)
        elif op == 6:
            self.resumes.append(d if isinstance(d, dict) else {})
            shard = self._shard_of_session(d.get("session_id") if isinstance(d, dict) else None)
            if (
                self.accept_resume
                and isinstance(d, dict)
                and shard is not None
                and d.get("token") == self.token
            ):
                conn.seq = int(d.get("seq") or 0)
                conn.shard = (shard, self._session_shard_count)
                await self._ws_send(conn, 0, {}, "RESUMED")
                conn.identified = True
                self._sessions[shard] = conn
                await self._send_pending(conn)
            else:
                await self._ws_send(conn, 9, False)
        elif op == 8:
            members = [u.member_obj(self.joined_at) for u in self.users.values()]
            nonce = d.get("nonce") if isinstance(d, dict) else None
            await self._ws_send(
                conn,
                0,
                {
                    "guild_id": str(self.guild_id),
                    "members": members,
                    "chunk_index": 0,
                    "chunk_count": 1,
                    "nonce": nonce,
                },
                "GUILD_MEMBERS_CHUNK",
            )
        await self._changed()

    async def _identify(self, conn: _GatewayConn, d: dict[str, Any]) -> None:
        """READY and the GUILD_CREATEs of the IDENTIFY's shard, or Discord's refusal."""
        self.identifies.append(d)
        shard_id, count = identify_shard(d)
        on_shard = [g for g in self.guild_ids() if shard_of(g, count) == shard_id]
        refusal = shard_refusal(shard_id, count, len(on_shard))
        if refusal is not None:
            code, reason = refusal
            await conn.ws.close(code=code, message=reason.encode())
            return
        others_live = any(c is not conn and not c.ws.closed for c in self._sessions.values())
        if not self.identify_limits.take(shard_id, alongside_live_sessions=others_live):
            await self._ws_send(conn, 9, False)  # Discord: an IDENTIFY over the limit
            return
        conn.shard = (shard_id, count)
        self._session_shard_count = count
        ready: dict[str, Any] = {
            "v": 10,
            "user": {**self.bot_user.user_obj(), "verified": True, "flags": 0},
            "guilds": [{"id": str(g), "unavailable": True} for g in on_shard],
            "session_id": self._session_id(shard_id),
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if "shard" in d:
            ready["shard"] = [shard_id, count]
        await self._ws_send(conn, 0, ready, "READY")
        for guild_id in on_shard:
            await self._ws_send(conn, 0, self.guild_obj(guild_id), "GUILD_CREATE")
        conn.identified = True
        self._sessions[shard_id] = conn
        await self._send_pending(conn)

    def _session_id(self, shard_id: int) -> str:
        return self.session_id if shard_id == 0 else f"{self.session_id}-{shard_id}"

    def _shard_of_session(self, session_id: Any) -> int | None:
        for shard_id in range(self._session_shard_count):
            if session_id == self._session_id(shard_id):
                return shard_id
        return None

    async def _send_pending(self, conn: _GatewayConn) -> None:
        pending = self._pending.pop(conn.shard[0], [])
        for event, data in pending:
            if event == "INTERACTION_CREATE" and int(data["id"]) in self.interactions:
                # Discord only creates an interaction for a connected bot: one queued while the
                # bot was away counts its 3 seconds from now, as if the member acted just now.
                self.interactions[int(data["id"])].created_at = self.clock.time()
            await self._ws_send(conn, 0, data, event)

    def event_shard(self, data: dict[str, Any]) -> int:
        """The shard an event about ``data`` goes to: its server's (DMs: shard 0)."""
        guild_id = data.get("guild_id")
        return shard_of(int(guild_id) if guild_id else None, self._session_shard_count)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway DISPATCH on its server's shard; queued until that shard's next
        IDENTIFY if it has no live session."""
        shard = self.event_shard(data)
        conn = self._sessions.get(shard)
        if conn is None or conn.ws.closed:
            self._pending.setdefault(shard, []).append((event, data))
            return
        try:
            await self._ws_send(conn, 0, data, event)
        except ConnectionResetError:
            self._pending.setdefault(shard, []).append((event, data))

    def pending_events(self, shard_id: int = 0) -> list[str]:
        """The events queued for a shard that has no live session."""
        return [event for event, _ in self._pending.get(shard_id, [])]

    async def drop_gateway(self, code: int = 4000, *, shard_id: int | None = None) -> None:
        """Close the live gateway socket (of every shard, or of ``shard_id``); discord.py
        reconnects, RESUMEs, gets op 9, IDENTIFYs."""
        shards = list(self._sessions) if shard_id is None else [shard_id]
        for shard in shards:
            conn = self._sessions.pop(shard, None)
            if conn is not None:
                await conn.ws.close(code=code, message=b"dropped by test")

    @property
    def connected(self) -> bool:
        """Whether a client holds an identified gateway session now (on any shard)."""
        return any(not conn.ws.closed for conn in self._sessions.values())

    def shard_connected(self, shard_id: int) -> bool:
        """Whether shard ``shard_id`` has an identified gateway session now."""
        conn = self._sessions.get(shard_id)
        return conn is not None and not conn.ws.closed

    def session_shards(self) -> list[tuple[int, int]]:
        """[id, count] of every live session, by shard id."""
        return sorted(c.shard for c in self._sessions.values() if not c.ws.closed)

    # ------------------------------------------------------------------ interaction builders

    def _interaction_payload(
        self,
        itype: int,
        data: dict[str, Any],
        *,
        user: FakeUser | None,
        channel: FakeChannel | None,
        attachment_size_limit: int | None,
        app_permissions: int | None = None,
    ) -> dict[str, Any]:
        """The INTERACTION_CREATE payload Discord sends for ``channel``'s context: a guild
        channel or thread (context 0, ``member``), the bot's DM (context 1) or a private
        channel (context 2, user-installed), both with ``user`` and no guild."""
        user = user or self.member
        ch = channel or self.channel
        iid = self._snowflake()
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": itype,
            "token": f"fake-itoken-{iid}-{secrets.token_urlsafe(24)}",
            "version": 1,
            "channel_id": str(ch.id),
            "locale": user.locale,
            "entitlements": [],
            "attachment_size_limit": (
                attachment_size_limit
                if attachment_size_limit is not None
                else self.attachment_size_limit
            ),
            "data": data,
        }
        if ch.is_private:
            bot_perms = PRIVATE_CHANNEL_APP_PERMISSIONS
            payload.update(
                channel={**ch.channel_obj(self.bot_user.id), "permissions": str(bot_perms)},
                user=user.user_obj(),
                context=CONTEXT_BOT_DM if ch.bot_has_access else CONTEXT_PRIVATE_CHANNEL,
                # Guild install ("0") in the bot's DM; user install ("1") elsewhere.
                authorizing_integration_owners=(
                    {"0": "0"} if ch.bot_has_access else {"1": str(user.id)}
                ),
            )
        else:
            perms = self.permissions_for(user, ch)
            bot_perms = self.permissions_for(self.bot_user, ch)
            guild_id = ch.guild_id or self.guild_id
            locale = self.guild_locale_of(guild_id)
            payload.update(
                guild_id=str(guild_id),
                guild={"id": str(guild_id), "locale": locale, "features": []},
                channel={**ch.channel_obj(self.bot_user.id), "permissions": str(perms)},
                member=user.member_obj(self.joined_at, perms),
                guild_locale=locale,
                context=CONTEXT_GUILD,
                authorizing_integration_owners={"0": str(guild_id)},
            )
        payload["app_permissions"] = str(
            app_permissions if app_permissions is not None else bot_perms
        )
        return payload

    def _command_id(self, name: str, ctype: int) -> tuple[str, int | None]:
        for gid, cmds in self.guild_commands.items():
            for c in cmds:
                if c["name"] == name and c["type"] == ctype:
                    return c["id"], gid
        for c in self.global_commands:
            if c["name"] == name and c["type"] == ctype:
                return c["id"], None
        return str(self._snowflake()), None

    def _option(self, name: str, value: Any, resolved: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if isinstance(value, dict) and "type" in value:
            return {"name": name, **value}
        if isinstance(value, bool):
            return {"name": name, "type": 5, "value": value}
        if isinstance(value, int):
            return {"name": name, "type": 4, "value": value}
        if isinstance(value, float):
            return {"name": name, "type": 10, "value": value}
        if isinstance(value, str):
            return {"name": name, "type": 3, "value": value}
        if isinstance(value, tuple):
            att = self.add_cdn_file(*value)
            resolved.setdefault("attachments", {})[att["id"]] = att
            return {"name": name, "type": 11, "value": att["id"]}
        if isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = value.user_obj()
            member = value.member_obj(self.joined_at, value.permissions)
            member.pop("user")
            resolved.setdefault("members", {})[str(value.id)] = member
            return {"name": name, "type": 6, "value": str(value.id)}
        if isinstance(value, FakeChannel):
            resolved.setdefault("channels", {})[str(value.id)] = {
                **value.channel_obj(self.bot_user.id),
                "permissions": str(MEMBER_PERMISSIONS),
            }
            return {"name": name, "type": 7, "value": str(value.id)}
        raise TypeError(f"cannot build an option from {value!r}")

    def build_slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        user: FakeUser | None = None,
        channel: FakeChannel | None = None,
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload for ``/name [group] [subcommand] options...``.

        Option values: str→3, int→4, bool→5, float→10, FakeUser→6, FakeChannel→7,
        ``(filename, bytes, content_type)``→11 (stored on the CDN, put in ``resolved``),
        or a raw ``{"type": N, "value": ...}``.
        """
        resolved: dict[str, dict[str, Any]] = {}
        opts = [self._option(k, v, resolved) for k, v in (options or {}).items()]
        if subcommand is not None:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        if group is not None:
            opts = [{"name": group, "type": 2, "options": opts}]
        cmd_id, gid = self._command_id(name, 1)
        data: dict[str, Any] = {"id": cmd_id, "name": name, "type": 1, "options": opts}
        if resolved:
            data["resolved"] = resolved
        if gid is not None:
            data["guild_id"] = str(gid)
        return self._interaction_payload(
            2,
            data,
            user=user,
            channel=channel,
            attachment_size_limit=attachment_size_limit,
            app_permissions=app_permissions,
        )

    def build_autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        *,
        focused: str,
        subcommand: str | None = None,
        user: FakeUser | None = None,
        channel: FakeChannel | None = None,
    ) -> dict[str, Any]:
        """An APPLICATION_COMMAND_AUTOCOMPLETE payload for ``/name [subcommand]`` while the
        member types: ``options`` as typed so far (see ``build_slash``), ``focused`` the one
        being typed (inside the subcommand's options, as Discord nests them)."""
        assert focused in options, f"the focused option {focused!r} is not among {options}"
        payload = self.build_slash(name, options, subcommand=subcommand, user=user, channel=channel)
        payload["type"] = AUTOCOMPLETE
        typed = payload["data"]["options"]
        if subcommand is not None:
            typed = typed[0]["options"]
        for option in typed:
            if option["name"] == focused:
                option["focused"] = True
        return payload

    def _as_message(self, message: FakeMessage | MessageView | int) -> FakeMessage:
        if isinstance(message, MessageView):
            return message.message
        if isinstance(message, int):
            return self.messages[message]
        return message

    def build_message_command(
        self,
        name: str,
        message: FakeMessage | MessageView | int,
        *,
        user: FakeUser | None = None,
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
    ) -> dict[str, Any]:
        """A message context-menu INTERACTION_CREATE on a stored message."""
        msg = self._as_message(message)
        assert not msg.deleted, f"message {msg.id} was deleted"
        assert not msg.ephemeral, "ephemeral messages have no context menu"
        cmd_id, gid = self._command_id(name, 3)
        data: dict[str, Any] = {
            "id": cmd_id,
            "name": name,
            "type": 3,
            "target_id": str(msg.id),
            "resolved": {"messages": {str(msg.id): msg.to_wire()}},
        }
        if gid is not None:
            data["guild_id"] = str(gid)
        return self._interaction_payload(
            2,
            data,
            user=user,
            channel=self.channels[msg.channel_id],
            attachment_size_limit=attachment_size_limit,
            app_permissions=app_permissions,
        )

    def build_click(
        self,
        message: FakeMessage | MessageView | int,
        *,
        label: str | None = None,
        custom_id: str | None = None,
        user: FakeUser | None = None,
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
    ) -> dict[str, Any]:
        """A button-click INTERACTION_CREATE on a stored message (button by label/custom id)."""
        msg = self._as_message(message)
        assert not msg.deleted, f"message {msg.id} was deleted; nothing to click"
        button = MessageView(self, msg).button(label=label, custom_id=custom_id)
        assert not button.get("disabled"), f"button {button} is disabled"
        assert button.get("custom_id"), f"button {button} is a link/premium button"
        data = {"custom_id": button["custom_id"], "component_type": 2}
        payload = self._interaction_payload(
            3,
            data,
            user=user,
            channel=self.channels[msg.channel_id],
            attachment_size_limit=attachment_size_limit,
            app_permissions=app_permissions,
        )
        payload["message"] = msg.to_wire()
        return payload

    def build_select(
        self,
        message: FakeMessage | MessageView | int,
        values: list[str],
        *,
        custom_id: str | None = None,
        placeholder: str | None = None,
        user: FakeUser | None = None,
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
    ) -> dict[str, Any]:
        """A string-select INTERACTION_CREATE on a stored message: the member picks ``values``
        (option values) in the select with ``custom_id`` or ``placeholder`` (or the only one)."""
        msg = self._as_message(message)
        assert not msg.deleted, f"message {msg.id} was deleted; nothing to select"
        select = MessageView(self, msg).select(custom_id=custom_id, placeholder=placeholder)
        assert select.get("type") == 3, f"select {select} is not a string select"
        assert not select.get("disabled"), f"select {select} is disabled"
        data = {
            "custom_id": select["custom_id"],
            "component_type": 3,
            "values": chosen_values(select, values),
        }
        payload = self._interaction_payload(
            3,
            data,
            user=user,
            channel=self.channels[msg.channel_id],
            attachment_size_limit=attachment_size_limit,
            app_permissions=app_permissions,
        )
        payload["message"] = msg.to_wire()
        return payload

    def build_modal_submit(
        self,
        opened_by: FakeInteraction,
        values: dict[str, str | list[str]],
        *,
        user: FakeUser | None = None,
    ) -> dict[str, Any]:
        """A modal-submit INTERACTION_CREATE answering the modal ``opened_by`` got (type 9).

        ``values`` keys are inputs' custom ids or labels: a string for a text input, a list of
        option values for a string select (unanswered selects submit their default options).
        """
        modal = opened_by.modal
        assert modal is not None, f"{opened_by} opened no modal (no type-9 callback recorded)"
        left = dict(values)

        def answer(inp: dict[str, Any], label: str | None) -> dict[str, Any]:
            cid = inp.get("custom_id")
            given: str | list[str] | None = None
            for key in (cid, inp.get("label"), label):
                if key is not None and key in left:
                    given = left.pop(key)
                    break
            if inp.get("type") == 3:
                picked = [o["value"] for o in inp.get("options") or [] if o.get("default")]
                chosen = chosen_values(inp, picked if given is None else list(given))
                return {"type": 3, "id": inp.get("id"), "custom_id": cid, "values": chosen}
            value = (inp.get("value") or "") if given is None else given
            assert isinstance(value, str), f"text input {cid!r} takes a string, not {value!r}"
            if inp.get("required", True) and inp.get("type") == 4 and not value:
                raise AssertionError(f"required text input {cid!r} has no value")
            return {
                "type": inp.get("type", 4),
                "id": inp.get("id"),
                "custom_id": cid,
                "value": value,
            }

        rows = []
        for row in modal.get("components") or []:
            if row.get("type") == 18:
                inner = row.get("component") or {}
                rows.append(
                    {"type": 18, "id": row.get("id"), "component": answer(inner, row.get("label"))}
                )
            else:
                rows.append(
                    {
                        "type": 1,
                        "id": row.get("id"),
                        "components": [
                            answer(c, None)
                            for c in row.get("components") or []
                            if c.get("type") == 4
                        ],
                    }
                )
        assert not left, f"no text input matches {sorted(left)} in modal {modal}"
        channel = self.channels[opened_by.channel_id]
        payload = self._interaction_payload(
            5,
            {"custom_id": modal["custom_id"], "components": rows},
            user=user or opened_by.user,
            channel=channel,
            attachment_size_limit=opened_by.attachment_size_limit,
        )
        if opened_by.message_id is not None and opened_by.message_id in self.messages:
            payload["message"] = self.messages[opened_by.message_id].to_wire()
        return payload

    async def inject(self, payload: dict[str, Any]) -> FakeInteraction:
        """Register an interaction payload and send it as INTERACTION_CREATE."""
        member = payload.get("member") or {}
        uid = int((member.get("user") or payload.get("user") or {}).get("id", self.member.id))
        user = self.users.get(uid, self.member)
        inter = FakeInteraction(
            id=int(payload["id"]),
            token=payload["token"],
            type=int(payload["type"]),
            payload=payload,
            created_at=self.clock.time(),
            user=user,
            channel_id=int(payload["channel_id"]),
            attachment_size_limit=int(payload["attachment_size_limit"]),
        )
        if "message" in payload:
            inter.message_id = int(payload["message"]["id"])
        target = (payload.get("data") or {}).get("target_id")
        if payload["type"] == 2 and (payload.get("data") or {}).get("type") == 3 and target:
            inter.target_message_id = int(target)
        self.interactions[inter.id] = inter
        self._by_token[inter.token] = inter
        await self.dispatch("INTERACTION_CREATE", payload)
        await self._changed()
        return inter

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        user: FakeUser | None = None,
        channel: FakeChannel | None = None,
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
    ) -> FakeInteraction:
        """Invoke a slash command (see ``build_slash``) in ``channel``: a guild channel, a
        thread (``add_thread``), the bot's DM (``dm_channel``) or a private channel
        (``private_channel``); ``app_permissions`` overrides what the bot is granted there."""
        return await self.inject(
            self.build_slash(
                name,
                options,
                subcommand=subcommand,
                group=group,
                user=user,
                channel=channel,
                attachment_size_limit=attachment_size_limit,
                app_permissions=app_permissions,
            )
        )

    async def autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        *,
        focused: str,
        subcommand: str | None = None,
        user: FakeUser | None = None,
        channel: FakeChannel | None = None,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Type into ``/name [subcommand]``'s option ``focused`` and return the choices the bot
        answered (a type-8 callback; the 3-second rule applies as to any interaction)."""
        inter = await self.inject(
            self.build_autocomplete(
                name, options, focused=focused, subcommand=subcommand, user=user, channel=channel
            )
        )
        await self.wait_until(lambda: inter.responses, timeout, what=f"choices for /{name}")
        choices: list[dict[str, Any]] = inter.responses[0].data.get("choices") or []
        return choices

    async def message_command(
        self,
        name: str,
        message: FakeMessage | MessageView | int,
        *,
        user: FakeUser | None = None,
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
    ) -> FakeInteraction:
        """Invoke a message context-menu command on ``message``."""
        return await self.inject(
            self.build_message_command(
                name,
                message,
                user=user,
                attachment_size_limit=attachment_size_limit,
                app_permissions=app_permissions,
            )
        )

    async def click(
        self,
        message: FakeMessage | MessageView | int,
        *,
        label: str | None = None,
        custom_id: str | None = None,
        user: FakeUser | None = None,
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
    ) -> FakeInteraction:
        """Click the button with ``label`` (or ``custom_id``) on ``message``."""
        return await self.inject(
            self.build_click(
                message,
                label=label,
                custom_id=custom_id,
                user=user,
                attachment_size_limit=attachment_size_limit,
                app_permissions=app_permissions,
            )
        )

    async def select(
        self,
        message: FakeMessage | MessageView | int,
        values: list[str],
        *,
        custom_id: str | None = None,
        placeholder: str | None = None,
        user: FakeUser | None = None,
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
    ) -> FakeInteraction:
        """Pick ``values`` in a string select on ``message`` (see ``build_select``)."""
        return await self.inject(
            self.build_select(
                message,
                values,
                custom_id=custom_id,
                placeholder=placeholder,
                user=user,
                attachment_size_limit=attachment_size_limit,
                app_permissions=app_permissions,
            )
        )

    async def submit_modal(
        self,
        opened_by: FakeInteraction,
        values: dict[str, str | list[str]],
        *,
        user: FakeUser | None = None,
    ) -> FakeInteraction:
        """Submit the modal ``opened_by`` answered with (values by custom id or label; a list
        of option values for a select)."""
        return await self.inject(self.build_modal_submit(opened_by, values, user=user))

    # ------------------------------------------------------------------ views

    def conversation(self, interaction: FakeInteraction | int | dict[str, Any]) -> Conversation:
        """The live view of everything the bot answered to ``interaction``."""
        if isinstance(interaction, dict):
            interaction = int(interaction["id"])
        if isinstance(interaction, int):
            interaction = self.interactions[interaction]
        return Conversation(self, interaction)

    def buttons_of(self, message: FakeMessage | MessageView | int) -> list[dict[str, Any]]:
        """Every button on a stored message."""
        msg = self._as_message(message)
        return [c for c in iter_components(msg.components) if c.get("type") == 2]
