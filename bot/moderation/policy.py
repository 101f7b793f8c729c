"""Moderation policy: a server's settings and the pure checks made on each request.

Nothing here does I/O: `GuildSettings` is a plain value read from and written to the ledger as
JSON, and each check returns a `Refusal` (what to tell the member, and why) or None.

Defaults for a server that never configured anything are deliberately permissive but safe:
every channel, both models, a safety-tolerance cap of 6 for new images and 2 for edits (KIE's own
limits), no spoiler tags, the operator's USER_COOLDOWN_SECONDS, no blocked words, no mod-log and
no daily credit limits (moderators opt in to an allowance/budget; the operator's KIE balance is
watched by the low-credit alert).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bot.flux import MAX, MODEL_NAMES, model_name
from bot.i18n import N_, Message, Text
from bot.ledger.models import TaskKind, TaskParams
from bot.validation import MAX_TOLERANCE_EDIT, MAX_TOLERANCE_GENERATE

REGEX_PREFIX: Final = "re:"
MAX_BLOCKED_ENTRIES: Final = 100
MAX_ENTRY_CHARS: Final = 100  # words and regular expressions alike
MAX_ALLOWED_CHANNELS: Final = 50
CONTENT_POLICY_LIMIT: Final = 3  # content-policy rejections in one UTC day ...
CONTENT_POLICY_COOLDOWN: Final = 3600.0  # ... earn this long a pause
MAX_COUNT: Final = 4  # images per request (`count`): one message holds them together
DEFAULT_MAX_REFS: Final = 50  # saved reference images per server (/ref save) ...
MAX_REFS_LIMIT: Final = 500  # ... and the most a moderator may allow
# /kontext-admin private: whether results may, must or may not be private (ephemeral).
PRIVATE_FORCED: Final = "forced"
PRIVATE_ALLOWED: Final = "allowed"
PRIVATE_OFF: Final = "off"
PRIVATE_MODES: Final = (PRIVATE_FORCED, PRIVATE_ALLOWED, PRIVATE_OFF)


@dataclass(frozen=True)
class Refusal:
    """Why a request may not go ahead: the member's text and a short reason for metrics."""

    message: Message
    reason: str


class Denied(Exception):
    """A moderation rule refuses the request; `refusal` says why (for the member)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal.message))
        self.refusal = refusal


def place_of(guild_id: int | None) -> str:
    """Where a request counts, for the refusals that name it."""
    return N_("in this server") if guild_id is not None else N_("outside servers")


@dataclass(frozen=True)
class GuildSettings:
    allowed_channels: tuple[int, ...] = ()  # empty: every channel
    default_model: str | None = None
    default_aspect_ratio: str | None = None
    max_model_allowed: bool = True
    max_tolerance: int = MAX_TOLERANCE_GENERATE
    spoiler: bool = False
    cooldown_seconds: float | None = None  # None: the operator's USER_COOLDOWN_SECONDS
    blocked_words: tuple[str, ...] = ()
    modlog_channel_id: int | None = None
    member_daily_allowance: float | None = None  # credits; None: no limit
    server_daily_budget: float | None = None  # credits; None: no limit
    default_count: int = 1  # images per request when a member leaves `count` unset
    max_count: int = MAX_COUNT  # the most images a member may ask for at once
    private_results: str = PRIVATE_ALLOWED  # forced / allowed / off (see PRIVATE_MODES)
    max_refs: int = DEFAULT_MAX_REFS  # saved reference images this server may keep
    _patterns: tuple[re.Pattern[str], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        compiled = []
        for entry in self.blocked_words:
            pattern = compile_entry(entry)
            if pattern is not None:
                compiled.append(pattern)
        object.__setattr__(self, "_patterns", tuple(compiled))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_patterns", None)
        data["allowed_channels"] = [str(c) for c in self.allowed_channels]
        data["blocked_words"] = list(self.blocked_words)
        if self.modlog_channel_id is not None:
            data["modlog_channel_id"] = str(self.modlog_channel_id)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> GuildSettings:
        """Tolerant: unknown keys are ignored, bad values fall back to the defaults."""
        if not data:
            return cls()
        base = cls()

        def opt_float(name: str) -> float | None:
            value = data.get(name)
            if value is None or isinstance(value, bool):
                return None
            try:
                number = float(value)
            except (TypeError, ValueError):
                return None
            return number if math.isfinite(number) and number >= 0 else None

        def opt_int(value: Any) -> int | None:
            try:
                return int(value) if value is not None and not isinstance(value, bool) else None
            except (TypeError, ValueError):
                return None

        channels = tuple(
            c for c in (opt_int(v) for v in data.get("allowed_channels") or []) if c is not None
        )
        model = data.get("default_model")
        ratio = data.get("default_aspect_ratio")
        tolerance = opt_int(data.get("max_tolerance"))
        words = tuple(
            w
            for w in (data.get("blocked_words") or [])
            if isinstance(w, str) and check_entry(w) is None
        )
        return cls(
            allowed_channels=channels,
            default_model=model if model in MODEL_NAMES else None,
            default_aspect_ratio=ratio if isinstance(ratio, str) else None,
            max_model_allowed=bool(data.get("max_model_allowed", True)),
            max_tolerance=(
                base.max_tolerance
                if tolerance is None
                else max(0, min(MAX_TOLERANCE_GENERATE, tolerance))
            ),
            spoiler=bool(data.get("spoiler", False)),
            cooldown_seconds=opt_float("cooldown_seconds"),
            blocked_words=words,
            modlog_channel_id=opt_int(data.get("modlog_channel_id")),
            member_daily_allowance=opt_float("member_daily_allowance"),
            server_daily_budget=opt_float("server_daily_budget"),
            default_count=_clamp_count(opt_int(data.get("default_count")), base.default_count),
            max_count=_clamp_count(opt_int(data.get("max_count")), base.max_count),
            private_results=(
                private
                if (private := data.get("private_results")) in PRIVATE_MODES
                else base.private_results
            ),
            max_refs=_clamp_refs(opt_int(data.get("max_refs")), base.max_refs),
        )

    def count_for(self, asked: int | None) -> int:
        """How many images a request makes: what was asked, else the server's default,
        never above the server's maximum (a refusal of a larger `count` is `screen`'s)."""
        return min(self.max_count, asked if asked is not None else self.default_count)

    def private_for(self, asked: bool | None) -> bool:
        """Whether a request's messages are private: forced, off, or the member's choice."""
        if self.private_results == PRIVATE_FORCED:
            return True
        if self.private_results == PRIVATE_OFF:
            return False
        return bool(asked)

    def with_changes(self, **changes: Any) -> GuildSettings:
        return replace(self, **changes)

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return self._patterns

    def model_allowed(self, model: str) -> bool:
        return model != MAX or self.max_model_allowed


def _clamp_count(value: int | None, default: int) -> int:
    return default if value is None else max(1, min(MAX_COUNT, value))


def _clamp_refs(value: int | None, default: int) -> int:
    return default if value is None else max(1, min(MAX_REFS_LIMIT, value))


# ---- blocked words ----------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Compatibility-fold and case-fold, so full-width or styled letters still match."""
    return unicodedata.normalize("NFKC", text).casefold()


def check_entry(entry: str) -> Text | None:
    """None when `entry` is a usable word or `re:` expression, else what is wrong with it."""
    text = entry.strip()
    if not text:
        return Text("The entry is empty.")
    if len(text) > MAX_ENTRY_CHARS:
        return Text("An entry may be at most {most} characters long.", most=MAX_ENTRY_CHARS)
    if text.startswith(REGEX_PREFIX):
        body = text[len(REGEX_PREFIX) :]
        if not body:
            return Text("The regular expression is empty.")
        try:
            re.compile(body, re.IGNORECASE)
        except re.error as exc:
            return Text("That regular expression doesn't compile ({error}).", error=exc.msg)
        if re.compile(body, re.IGNORECASE).search("") is not None:
            return Text("That regular expression matches every prompt.")
    return None


def compile_entry(entry: str) -> re.Pattern[str] | None:
    """A word matches as a whole word, case-insensitively; `re:` entries are regexes."""
    if check_entry(entry) is not None:
        return None
    text = entry.strip()
    if text.startswith(REGEX_PREFIX):
        return re.compile(text[len(REGEX_PREFIX) :], re.IGNORECASE)
    word = re.escape(normalise(text))
    return re.compile(rf"(?<!\w){word}(?!\w)", re.IGNORECASE)


def blocked_match(prompt: str, patterns: Iterable[re.Pattern[str]]) -> bool:
    folded = normalise(prompt)
    return any(p.search(folded) or p.search(prompt) for p in patterns)


# ---- days and costs -----------------------------------------------------------------------------


def day_key(now: float) -> str:
    """The UTC day `now` falls in: quotas reset at 00:00 UTC."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def day_start(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_reset(now: float) -> float:
    """When today's quotas reset (the next 00:00 UTC)."""
    start = datetime.fromtimestamp(day_start(now), UTC)
    return (start + timedelta(days=1)).timestamp()


def relative(ts: float) -> str:
    """Discord's relative timestamp markup."""
    return f"<t:{math.ceil(ts)}:R>"


def fmt_credits(value: float) -> str:
    return f"{value:g}"


# ---- the checks ----------------------------------------------------------------------------------


def check_channel(
    gs: GuildSettings, channel_id: int, parent_id: int | None = None
) -> Refusal | None:
    if not gs.allowed_channels:
        return None
    if channel_id in gs.allowed_channels or (
        parent_id is not None and parent_id in gs.allowed_channels
    ):
        return None
    where = ", ".join(f"<#{c}>" for c in gs.allowed_channels[:10])
    return Refusal(
        Text("The image bot isn't enabled in this channel. Use it in {where}.", where=where),
        "channel",
    )


def apply_defaults(
    gs: GuildSettings, params: TaskParams, kind: TaskKind, defaulted: frozenset[str]
) -> TaskParams:
    """Fill what the member left unset with the server's defaults."""
    changes: dict[str, Any] = {}
    if "model" in defaulted and gs.default_model and gs.model_allowed(gs.default_model):
        changes["model"] = gs.default_model
    if (
        kind == TaskKind.IMAGINE
        and params.aspect_ratio is None
        and "aspect_ratio" in defaulted
        and gs.default_aspect_ratio
    ):
        changes["aspect_ratio"] = gs.default_aspect_ratio
    if "safety_tolerance" in defaulted:
        cap = tolerance_cap(gs, kind)
        if params.safety_tolerance > cap:
            changes["safety_tolerance"] = cap
    return replace(params, **changes) if changes else params


def tolerance_cap(gs: GuildSettings, kind: TaskKind) -> int:
    kind_limit = MAX_TOLERANCE_EDIT if kind == TaskKind.EDIT else MAX_TOLERANCE_GENERATE
    return min(gs.max_tolerance, kind_limit)


def check_params(
    gs: GuildSettings, params: TaskParams, kind: TaskKind, *, place: str = "in this server"
) -> Refusal | None:
    if not gs.model_allowed(params.model):
        name = model_name(params.model)
        return Refusal(
            Text(
                "The {name} model is turned off in this server. Choose the Pro model instead.",
                name=name,
            ),
            "model",
        )
    cap = tolerance_cap(gs, kind)
    if params.safety_tolerance > cap:
        return Refusal(
            Text(
                "The safety tolerance allowed {place} is at most {cap}. "
                "Ask again with safety_tolerance {cap} or lower.",
                place=Text(place),
                cap=cap,
            ),
            "tolerance",
        )
    if gs.patterns and blocked_match(params.prompt, gs.patterns):
        return Refusal(
            Text(
                "Your prompt contains a word or phrase this server's moderators have blocked. "
                "Rephrase it and try again."
            ),
            "blocked_word",
        )
    return None


def check_quota(
    gs: GuildSettings,
    *,
    member_used: float,
    server_used: float,
    cost: float,
    now: float,
    place: str = "in this server",
) -> Refusal | None:
    reset = relative(next_reset(now))
    allowance = gs.member_daily_allowance
    if allowance is not None and member_used + cost > allowance + 1e-9:
        return Refusal(
            Text(
                "You've used {used} of your {allowance} daily credits {place} and this "
                "request costs {cost}. Your allowance resets {reset}.",
                used=fmt_credits(member_used),
                allowance=fmt_credits(allowance),
                place=Text(place),
                cost=fmt_credits(cost),
                reset=reset,
            ),
            "allowance",
        )
    budget = gs.server_daily_budget
    if budget is not None and server_used + cost > budget + 1e-9:
        return Refusal(
            Text(
                "This server has used its daily image budget ({budget} credits). "
                "It resets {reset}.",
                budget=fmt_credits(budget),
                reset=reset,
            ),
            "budget",
        )
    return None


def blocked_refusal(until: float | None, reason: str) -> Refusal:
    if until is None:
        return Refusal(
            Text(
                "A moderator has blocked you from using the image bot in this server. "
                "Ask a moderator if you think this is a mistake."
            ),
            "blocked",
        )
    if reason == "content_policy":
        return Refusal(
            Text(
                "Several of your requests today were rejected by the content filter, so "
                "you're paused for a while. You can try again {when}.",
                when=relative(until),
            ),
            "auto_cooldown",
        )
    return Refusal(
        Text(
            "You're paused from using the image bot in this server. You can try again {when}.",
            when=relative(until),
        ),
        "paused",
    )
