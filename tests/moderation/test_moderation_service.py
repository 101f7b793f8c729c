"""The moderation service on a real SQLite ledger with a clock the test controls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import Secret, Settings
from bot.i18n import Message
from bot.ledger import (
    Block,
    OperatorBlock,
    SqliteLedger,
    Task,
    TaskKind,
    TaskParams,
    TaskState,
)
from bot.metrics import Metrics
from bot.moderation import Denied, Moderation, checks
from bot.moderation.policy import GuildSettings, Refusal

GUILD, USER, OTHER = 1001, 2002, 3003


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 4, 23, 0, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


class RecordingSink:
    """A mod-log that remembers what it was asked to post."""

    def __init__(self) -> None:
        self.tasks: list[Task] = []
        self.alerts: list[str] = []

    async def post_task(self, channel_id: int, guild_id: int, task: Task) -> None:
        self.tasks.append(task)

    async def post_alert(self, channel_id: int, guild_id: int, text: Message) -> None:
        self.alerts.append(str(text))


class Balance:
    def __init__(self, value: float) -> None:
        self.value = value

    async def __call__(self) -> float:
        return self.value


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def ledger(tmp_path: Path, clock: Clock) -> AsyncIterator[SqliteLedger]:
    led = SqliteLedger(tmp_path / "ledger.sqlite3", clock=clock)
    await led.open()
    yield led
    await led.close()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def balance() -> Balance:
    return Balance(1000.0)


@pytest.fixture
def moderation(
    ledger: SqliteLedger, clock: Clock, sink: RecordingSink, balance: Balance
) -> Moderation:
    settings = Settings(
        discord_token=Secret("t"),
        kie_api_key=Secret("k"),
        credit_cost_pro=5.0,
        credit_cost_max=10.0,
        low_credit_threshold=100.0,
    )
    return Moderation(
        settings=settings,
        ledger=ledger,
        metrics=Metrics(),
        read_credits=balance,
        modlog=sink,
        clock=clock,
    )


async def screen(moderation: Moderation, model: str = "flux-kontext-pro") -> TaskParams:
    gs = await moderation.settings_for(GUILD)
    return await moderation.screen(asking(gs, TaskParams(prompt="a fox", model=model)))


def asking(
    gs: GuildSettings, params: TaskParams, defaulted: frozenset[str] = frozenset()
) -> checks.Screening:
    """An /imagine of `params` by USER in GUILD, to be screened."""
    return checks.Screening(gs, GUILD, USER, params, TaskKind.IMAGINE, defaulted)


async def charge(
    moderation: Moderation, user: int = USER, model: str = "flux-kontext-pro"
) -> float:
    gs = await moderation.settings_for(GUILD)
    return await moderation.charge(gs, guild_id=GUILD, user_id=user, model=model)


async def finished(
    ledger: SqliteLedger,
    clock: Clock,
    task_id: str,
    *,
    cost: float,
    state: TaskState,
    code: str | None,
) -> Task:
    task = Task(
        id=task_id,
        kind=TaskKind.IMAGINE,
        params=TaskParams(prompt="a fox"),
        requester_id=USER,
        guild_id=GUILD,
        channel_id=42,
        application_id=1,
        interaction_id=1,
        interaction_token="tok",
        created_at=clock.now,
        updated_at=clock.now,
        cost=cost,
    )
    await ledger.insert(task)
    return await ledger.update(task_id, state=state, error_code=code, completed_at=clock.now)


async def test_quota_is_charged_exhausted_and_reset_the_next_utc_day(
    moderation: Moderation, clock: Clock
) -> None:
    """Two Pro images fill a 10-credit allowance; the third is refused until 00:00 UTC."""
    await moderation.update(GUILD, member_daily_allowance=10.0)
    for _ in range(2):
        await screen(moderation)
        assert await charge(moderation) == 5
    with pytest.raises(Denied) as refused:
        await screen(moderation)
    assert refused.value.refusal.reason == "allowance"
    assert f"<t:{int(datetime(2025, 3, 5, tzinfo=UTC).timestamp())}:R>" in str(refused.value)
    with pytest.raises(Denied):
        await charge(moderation)
    summary = await moderation.usage(GUILD, USER)
    assert summary.member_used == 10 and summary.member_allowance == 10
    clock.now += 3600 + 1  # 00:00:01 UTC the next day
    await screen(moderation)
    assert (await moderation.usage(GUILD, USER)).member_used == 0


async def test_server_budget_counts_every_member(moderation: Moderation) -> None:
    """The server's daily budget is shared: one member's spending refuses another."""
    await moderation.update(GUILD, server_daily_budget=10.0)
    await charge(moderation, OTHER, "flux-kontext-max")
    with pytest.raises(Denied) as refused:
        await screen(moderation)
    assert refused.value.refusal.reason == "budget"


async def test_failures_are_refunded_once_and_deliveries_are_not(
    moderation: Moderation, ledger: SqliteLedger, clock: Clock
) -> None:
    """A task that fails on KIE's side gives its credits back (once); a delivered one keeps them."""
    for _ in range(2):
        await charge(moderation)
    failed = await finished(
        ledger, clock, "aaaaaaaaaaaa", cost=5, state=TaskState.FAILED, code="generation_failed"
    )
    done = await finished(ledger, clock, "bbbbbbbbbbbb", cost=5, state=TaskState.DONE, code=None)
    await moderation.task_finished(failed)
    await moderation.task_finished(done)
    assert (await moderation.usage(GUILD, USER)).member_used == 5
    stored = await ledger.get(failed.id)
    assert stored is not None and stored.refunded is True
    await moderation.task_finished(stored)  # a repeated hook must not refund twice
    assert (await moderation.usage(GUILD, USER)).member_used == 5


async def test_repeated_content_policy_rejections_cool_a_member_down(
    moderation: Moderation, ledger: SqliteLedger, clock: Clock, sink: RecordingSink
) -> None:
    """Three content-policy rejections in a day: logged, then a one-hour pause with a time."""
    await moderation.update(GUILD, modlog_channel_id=77)
    for i in range(3):
        await moderation.admit(checks.Asker(GUILD, USER, 42))
        task = await finished(
            ledger, clock, f"c{i:011d}", cost=5, state=TaskState.FAILED, code="content_policy"
        )
        await moderation.task_finished(task)
    assert [t.error_code for t in sink.tasks] == ["content_policy"] * 3
    with pytest.raises(Denied) as refused:
        await moderation.admit(checks.Asker(GUILD, USER, 42))
    assert refused.value.refusal.reason == "auto_cooldown"
    assert f"<t:{int(clock.now + 3600)}:R>" in str(refused.value)
    clock.now += 3601
    await moderation.admit(checks.Asker(GUILD, USER, 42))


async def test_an_automatic_pause_never_shortens_a_block(
    moderation: Moderation, ledger: SqliteLedger, clock: Clock
) -> None:
    """A moderator's block stays permanent even if the content filter pauses the member too."""
    await moderation.block(GUILD, USER, by=OTHER)
    for i in range(3):
        task = await finished(
            ledger, clock, f"d{i:011d}", cost=0, state=TaskState.FAILED, code="content_policy"
        )
        await moderation.task_finished(task)
    block = await moderation.get_block(GUILD, USER)
    assert block is not None and block.until is None
    assert await moderation.unblock(GUILD, USER, by=OTHER)
    await moderation.admit(checks.Asker(GUILD, USER, 42))


async def test_low_credit_alert_is_sent_once_and_reset_on_recovery(
    moderation: Moderation, sink: RecordingSink, balance: Balance
) -> None:
    """Under the threshold: one alert however often it is read; recovery re-arms it."""
    await moderation.update(GUILD, modlog_channel_id=77)
    balance.value = 50
    assert await moderation.credits() == 50
    await moderation.credits()
    assert len(sink.alerts) == 1 and "50" in sink.alerts[0]
    balance.value = 500
    await moderation.credits()
    balance.value = 20
    await moderation.credits()
    assert len(sink.alerts) == 2


async def test_a_402_refuses_members_up_front_until_the_balance_recovers(
    moderation: Moderation,
    ledger: SqliteLedger,
    clock: Clock,
    sink: RecordingSink,
    balance: Balance,
) -> None:
    """After KIE's 402 members hear "out of credits" before any task; one alert only."""
    await moderation.update(GUILD, modlog_channel_id=77)
    for i in range(2):
        task = await finished(
            ledger, clock, f"e{i:011d}", cost=5, state=TaskState.FAILED, code="out_of_credits"
        )
        await moderation.task_finished(task)
    assert len(sink.alerts) == 1
    with pytest.raises(Denied) as refused:
        await moderation.admit(checks.Asker(GUILD, USER, 42))
    assert "out of KIE credits" in str(refused.value)
    balance.value = 1000
    await moderation.credits()
    await moderation.admit(checks.Asker(GUILD, USER, 42))


async def test_settings_are_per_server(moderation: Moderation) -> None:
    """One server's settings never leak into another's."""
    await moderation.update(GUILD, spoiler=True, allowed_channels=(5,))
    assert (await moderation.settings_for(GUILD)).spoiler
    assert await moderation.settings_for(OTHER) == GuildSettings()


# ---- admission from memory (bot.moderation.early): what this process writes is refused at
# once, what another process writes after a refresh, and nothing not known yet is refused.

CHANNEL = 4004


def admit_early(moderation: Moderation, user: int = USER) -> None:
    moderation.early.admit(checks.Asker(GUILD, user, CHANNEL))


def screen_early(moderation: Moderation) -> None:
    gs = moderation.memory.settings_for(GUILD)
    moderation.early.screen(asking(gs, TaskParams(prompt="a fox", model="flux-kontext-pro")))


class WaitingFacts:
    """Admission facts of which one has to be waited for, as a ledger read would be."""

    async def operator_refusal(self, user_id: int, guild_id: int | None) -> Refusal | None:
        return None

    async def out_of_credits(self, now: float) -> bool:
        await asyncio.sleep(0)
        return False

    async def block(self, scope: int, user_id: int, now: float) -> Block | None:
        return None

    async def settings(self, guild_id: int | None) -> GuildSettings:
        return GuildSettings()

    async def usage(self, scope: int, user_id: int, day: str) -> tuple[float, float] | None:
        return None


async def test_a_check_from_memory_that_would_wait_is_a_bug_raised_at_once() -> None:
    admitting = checks.admit(WaitingFacts(), checks.Asker(GUILD, USER, 1), now=0.0)
    with pytest.raises(RuntimeError, match="waited for I/O"):
        checks.at_once(admitting)


async def test_memory_and_the_ledger_cost_the_servers_default_model_alike(
    moderation: Moderation,
) -> None:
    """The member left the model unset and the server's default is Max (10 credits; Pro is 5):
    with 5 of a 10-credit allowance used, both refuse, from memory as from the ledger."""
    await moderation.update(GUILD, member_daily_allowance=10.0, default_model="flux-kontext-max")
    await charge(moderation)  # 5 credits
    gs = await moderation.settings_for(GUILD)
    asked = asking(gs, TaskParams(prompt="a fox", model="flux-kontext-pro"), frozenset({"model"}))
    with pytest.raises(Denied) as from_ledger:
        await moderation.screen(asked)
    with pytest.raises(Denied) as from_memory:
        moderation.early.screen(asked)
    assert (from_ledger.value.refusal.reason, from_memory.value.refusal.reason) == (
        "allowance",
        "allowance",
    )


async def test_a_moderators_block_is_refused_from_memory_at_once(moderation: Moderation) -> None:
    await moderation.early.load()
    await moderation.block(GUILD, USER, by=1)
    with pytest.raises(Denied) as refused:
        admit_early(moderation)
    assert refused.value.refusal.reason == "blocked"


async def test_a_channel_rule_set_here_applies_from_memory(moderation: Moderation) -> None:
    await moderation.early.load()
    await moderation.update(GUILD, allowed_channels=(CHANNEL + 1,))
    with pytest.raises(Denied) as refused:
        admit_early(moderation)
    assert refused.value.refusal.reason == "channel"


async def test_settings_written_before_the_start_are_loaded(
    moderation: Moderation, ledger: SqliteLedger
) -> None:
    await moderation.update(GUILD, allowed_channels=(CHANNEL + 1,))
    moderation.memory.settings.clear()  # as a fresh process finds them: only in the ledger
    await moderation.early.load()
    with pytest.raises(Denied) as refused:
        admit_early(moderation)
    assert refused.value.refusal.reason == "channel"


async def test_an_operator_block_from_another_process_applies_after_a_refresh(
    moderation: Moderation, ledger: SqliteLedger, clock: Clock
) -> None:
    await moderation.early.load()
    await ledger.put_operator_block(OperatorBlock(user_id=USER, reason=None, created_at=clock()))
    admit_early(moderation)  # not read yet: left to the ledger's check after the answer
    await moderation.early.refresh()
    with pytest.raises(Denied) as refused:
        admit_early(moderation)
    assert refused.value.refusal.reason == "operator_block"


async def test_the_daily_allowance_counts_what_was_charged_here(
    moderation: Moderation,
) -> None:
    await moderation.early.load()
    await moderation.update(GUILD, member_daily_allowance=5.0)
    screen_early(moderation)  # usage not known yet: not refused from memory
    await screen(moderation)  # the ledger's check reads it (0) into memory
    await charge(moderation)  # 5 of 5
    with pytest.raises(Denied) as refused:
        screen_early(moderation)
    assert refused.value.refusal.reason == "allowance"
