"""Moderation policy: settings round trips, blocked words, defaults, caps, quotas and UTC days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot import flux
from bot.ledger import TaskKind, TaskParams
from bot.moderation import policy
from bot.moderation.policy import GuildSettings


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_unconfigured_server_gets_safe_defaults() -> None:
    """A server that never configured anything: every channel, both models, caps 6/2, no limits."""
    gs = GuildSettings.from_json(None)
    assert gs.allowed_channels == ()
    assert gs.model_allowed(flux.MAX) and gs.model_allowed(flux.PRO)
    assert policy.tolerance_cap(gs, TaskKind.IMAGINE) == 6
    assert policy.tolerance_cap(gs, TaskKind.EDIT) == 2
    assert not gs.spoiler
    assert gs.member_daily_allowance is None and gs.server_daily_budget is None
    assert policy.check_channel(gs, 123) is None


def test_settings_survive_a_json_round_trip() -> None:
    """Every field comes back as written (snowflakes as strings in JSON, ints again after)."""
    gs = GuildSettings(
        allowed_channels=(1234567890123456789,),
        default_model=flux.MAX,
        default_aspect_ratio="1:1",
        max_model_allowed=False,
        max_tolerance=3,
        spoiler=True,
        cooldown_seconds=30.0,
        blocked_words=("dragon", "re:fo+x"),
        modlog_channel_id=987654321987654321,
        member_daily_allowance=50.0,
        server_daily_budget=500.0,
    )
    data = gs.to_json()
    assert data["allowed_channels"] == ["1234567890123456789"]
    back = GuildSettings.from_json(data)
    assert back == gs
    assert len(back.patterns) == 2


def test_bad_stored_values_fall_back_to_defaults() -> None:
    """Garbage in the stored JSON never crashes admission; it reads as the default."""
    gs = GuildSettings.from_json(
        {
            "default_model": "gpt",
            "max_tolerance": 99,
            "cooldown_seconds": -5,
            "member_daily_allowance": "lots",
            "blocked_words": ["ok", "re:(", 7],
            "allowed_channels": ["x", "42"],
        }
    )
    assert gs.default_model is None
    assert gs.max_tolerance == 6
    assert gs.cooldown_seconds is None
    assert gs.member_daily_allowance is None
    assert gs.blocked_words == ("ok",)
    assert gs.allowed_channels == (42,)


@pytest.mark.parametrize(
    ("prompt", "blocked"),
    [
        ("a DRAGON over the sea", True),
        ("a dragonfly on a leaf", False),
        ("ａ ｄｒａｇｏｎ in full-width letters", True),
        ("a fooooox", True),
        ("a box", False),
    ],
)
def test_blocked_words_match_whole_words_and_regexes(prompt: str, blocked: bool) -> None:
    """Words match case-insensitively as whole words (also full-width); re: entries as regexes."""
    gs = GuildSettings(blocked_words=("dragon", "re:fo+x"))
    refusal = policy.check_params(gs, TaskParams(prompt=prompt), TaskKind.IMAGINE)
    assert (refusal is not None and refusal.reason == "blocked_word") is blocked


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("re:(", "doesn't compile"),
        ("re:.*", "matches every prompt"),
        ("x" * 101, "at most 100"),
        ("   ", "empty"),
        ("re:", "empty"),
    ],
)
def test_unusable_entries_are_explained(entry: str, problem: str) -> None:
    """A regex that doesn't compile, matches everything or is too long is refused with why."""
    message = policy.check_entry(entry)
    assert message is not None and problem in str(message)


def test_model_and_tolerance_rules() -> None:
    """Max can be switched off; the tolerance cap applies (edits never above 2)."""
    gs = GuildSettings(max_model_allowed=False, max_tolerance=4)
    max_params = TaskParams(prompt="x", model=flux.MAX)
    refusal = policy.check_params(gs, max_params, TaskKind.IMAGINE)
    assert refusal is not None and refusal.reason == "model" and "Pro" in str(refusal.message)
    high = TaskParams(prompt="x", safety_tolerance=5)
    refusal = policy.check_params(gs, high, TaskKind.IMAGINE)
    assert refusal is not None and refusal.reason == "tolerance" and "4" in str(refusal.message)
    assert (
        policy.check_params(gs, TaskParams(prompt="x", safety_tolerance=4), TaskKind.IMAGINE)
        is None
    )


def test_server_defaults_fill_only_what_the_member_left_unset() -> None:
    """Defaults apply when unset; a chosen value wins; a denied default is skipped."""
    gs = GuildSettings(default_model=flux.MAX, default_aspect_ratio="1:1", max_tolerance=1)
    params = TaskParams(prompt="x")
    unset = frozenset({"model", "aspect_ratio", "safety_tolerance"})
    got = policy.apply_defaults(gs, params, TaskKind.IMAGINE, unset)
    assert (got.model, got.aspect_ratio, got.safety_tolerance) == (flux.MAX, "1:1", 1)
    chosen = policy.apply_defaults(gs, params, TaskKind.IMAGINE, frozenset())
    assert (chosen.model, chosen.aspect_ratio) == (flux.PRO, None)
    edit = policy.apply_defaults(gs, params, TaskKind.EDIT, unset)
    assert edit.aspect_ratio is None  # an edit keeps its input's shape
    denied = gs.with_changes(max_model_allowed=False)
    assert policy.apply_defaults(denied, params, TaskKind.IMAGINE, unset).model == flux.PRO


def test_quota_refusals_say_when_they_reset() -> None:
    """Over the allowance or the budget: refused with the numbers and the next 00:00 UTC."""
    now = ts("2025-03-04T15:00:00")
    midnight = int(ts("2025-03-05T00:00:00"))
    gs = GuildSettings(member_daily_allowance=10, server_daily_budget=100)
    assert policy.check_quota(gs, member_used=5, server_used=5, cost=5, now=now) is None
    member = policy.check_quota(gs, member_used=10, server_used=10, cost=5, now=now)
    assert member is not None and member.reason == "allowance"
    assert f"<t:{midnight}:R>" in str(member.message) and "10" in str(member.message)
    server = policy.check_quota(gs, member_used=0, server_used=98, cost=5, now=now)
    assert (
        server is not None
        and server.reason == "budget"
        and f"<t:{midnight}:R>" in str(server.message)
    )


def test_days_are_utc() -> None:
    """Quotas belong to the UTC day; the next reset is the following 00:00 UTC."""
    late = ts("2025-12-31T23:59:59")
    assert policy.day_key(late) == "2025-12-31"
    assert policy.day_key(late + 1) == "2026-01-01"
    assert policy.next_reset(late) == ts("2026-01-01T00:00:00")
    assert policy.day_start(late) == ts("2025-12-31T00:00:00")


def test_channel_restriction_names_the_allowed_channels() -> None:
    """A request elsewhere is refused and told where the bot works."""
    gs = GuildSettings(allowed_channels=(11, 22))
    assert policy.check_channel(gs, 22) is None
    refusal = policy.check_channel(gs, 33)
    assert (
        refusal is not None and "<#11>" in str(refusal.message) and "<#22>" in str(refusal.message)
    )
