"""The service the cogs call: a request's path through admit, screen and create_task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ledger.test_sqlite_ledger import make_task

from bot.config import Secret, Settings
from bot.ledger import SqliteLedger, Task, TaskKind, TaskState
from bot.metrics import Metrics
from bot.moderation import Moderation
from bot.service import KontextService, Origin
from bot.validation import InputRejected

GUILD, USER, CHANNEL = 1001, 2002, 42


class CountingLedger(SqliteLedger):
    """The real SQLite ledger, counting how often a server's settings are read."""

    settings_reads = 0

    async def get_guild_settings(self, guild_id: int) -> dict[str, Any] | None:
        self.settings_reads += 1
        return await super().get_guild_settings(guild_id)


class QueueRecorder:
    """Stands for the runner: remembers the tasks handed over."""

    def __init__(self) -> None:
        self.queued: list[Task] = []

    def enqueue(self, task: Task) -> None:
        self.queued.append(task)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[CountingLedger]:
    led = CountingLedger(tmp_path / "ledger.sqlite3")
    await led.open()
    yield led
    await led.close()


@pytest.fixture
async def service(ledger: CountingLedger) -> KontextService:
    settings = Settings(discord_token=Secret("t"), kie_api_key=Secret("k"), credit_cost_pro=5.0)
    metrics = Metrics()

    async def balance() -> float:
        return 1000.0

    moderation = Moderation(settings=settings, ledger=ledger, metrics=metrics, read_credits=balance)
    await moderation.update(GUILD, spoiler=True, member_daily_allowance=50.0)
    return KontextService(
        settings=settings,
        ledger=ledger,
        runner=QueueRecorder(),  # type: ignore[arg-type]
        downloads=None,  # type: ignore[arg-type]
        metrics=metrics,
        moderation=moderation,
    )


async def test_a_request_reads_its_servers_settings_once(
    service: KontextService, ledger: CountingLedger
) -> None:
    """From admission to the queued task, the server's settings are read from the ledger once."""
    origin = Origin(
        user_id=USER,
        guild_id=GUILD,
        channel_id=CHANNEL,
        application_id=1,
        interaction_id=2,
        interaction_token="tok",
        upload_limit=8 * 1024 * 1024,
    )
    ledger.settings_reads = 0
    admission = await service.admit(origin)
    params = await service.screen(
        admission, service.build_params(prompt="a fox", edit=False), kind=TaskKind.IMAGINE
    )
    await service.create_task(admission, kind=TaskKind.IMAGINE, params=params, reply_message_id=99)
    assert ledger.settings_reads == 1


@pytest.mark.parametrize(
    ("state", "editable"),
    [
        (TaskState.DONE, True),
        # Posted, its DONE not yet written: a member may click Reframe or Edit on the image in
        # that moment (seen in test_result_actions_e2e, 1 run in 4: "no finished image").
        (TaskState.DELIVERING, True),
        (TaskState.GENERATING, False),
    ],
)
def test_a_result_is_editable_once_kie_gave_it(
    service: KontextService, state: TaskState, editable: bool
) -> None:
    task = make_task("aaaaaaaaaaa1", created=service._clock()).with_changes(
        state=state, result_url="https://kie.example/result.png"
    )
    try:
        url: str | None = service.result_as_input(task)
    except InputRejected:
        url = None
    assert url == ("https://kie.example/result.png" if editable else None)
