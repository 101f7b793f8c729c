"""The callback handler's hand-over: a verified callback for a task open in this process goes to
the runner with the task and the body's result URL; for any other the runner tells the process
that holds it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from ledger.test_sqlite_ledger import make_task

from bot.config import Secret
from bot.kie_sim.callbacks import signature_headers
from bot.ledger import SqliteLedger, Task, TaskState
from bot.loop_lag import LagMonitor
from bot.metrics import Metrics
from bot.web import SIGNATURE_MAX_AGE, HealthSources, WebServer

SECRET = "s" * 32
RESULT = "https://files.kie.example/result.png"


class Runner:
    """The runner's side: which tasks are open here, and what it was handed."""

    def __init__(self, open_ids: set[str]) -> None:
        self.open_ids = open_ids
        self.handed: list[tuple[str, str, str | None]] = []  # (task id, state, url)
        self.told: list[str] = []  # task ids whose owner elsewhere was told

    async def called_back(self, task: Task, result_url: str | None) -> None:
        if task.id not in self.open_ids:
            self.told.append(task.id)
            return
        self.handed.append((task.id, task.state.value, result_url))


class Rig:
    def __init__(self, client: TestClient, runner: Runner) -> None:
        self.client, self.runner, self.nudged = client, runner, runner.told

    async def call_back(
        self, kie_task_id: str = "kie-1", headers: dict[str, str] | None = None
    ) -> int:
        body = {
            "code": 200,
            "msg": "ok",
            "data": {"taskId": kie_task_id, "info": {"resultImageUrl": RESULT}},
        }
        async with self.client.post(
            f"/kie/callback/{SECRET}", json=body, headers=headers or {}
        ) as resp:
            return resp.status


@asynccontextmanager
async def serving(
    tmp_path: Path,
    open_ids: set[str],
    hmac_key: Secret | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[Rig]:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    await ledger.open()
    task = make_task("a00000000001").with_changes(
        state=TaskState.GENERATING, kie_task_id="kie-1", callback_secret=SECRET
    )
    await ledger.insert(task)
    runner = Runner(open_ids)
    server = WebServer(
        host="127.0.0.1",
        port=0,
        ledger=ledger,
        metrics=Metrics(),
        lag=LagMonitor(),
        health=HealthSources(discord=dict, background=dict, poll_loop_last_tick=float),
        callbacks=runner,
        hmac_key=hmac_key,
        clock=clock,
    )
    client = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        yield Rig(client, runner)
    finally:
        await client.close()
        await ledger.close()


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    async with serving(tmp_path, set(request.param)) as served:
        yield served


@pytest.mark.parametrize("rig", [{"a00000000001"}], indirect=True)
async def test_a_task_open_here_is_handed_to_the_runner_with_the_result_url(rig: Rig) -> None:
    assert (await rig.call_back(), rig.runner.handed, rig.nudged) == (
        200,
        [("a00000000001", "generating", RESULT)],
        [],
    )


@pytest.mark.parametrize("rig", [set()], indirect=True)
async def test_a_task_not_open_here_goes_to_the_process_that_holds_it(rig: Rig) -> None:
    """Another process holds it: the runner tells that process."""
    assert (await rig.call_back(), rig.runner.handed, rig.nudged) == (200, [], ["a00000000001"])


@pytest.mark.parametrize("rig", [{"a00000000001"}], indirect=True)
async def test_a_callback_for_another_kie_task_is_handed_to_nobody(rig: Rig) -> None:
    assert (await rig.call_back("kie-other"), rig.runner.handed, rig.nudged) == (400, [], [])


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (-SIGNATURE_MAX_AGE - 1, 401),
        (-SIGNATURE_MAX_AGE, 200),
        (SIGNATURE_MAX_AGE, 200),
        (SIGNATURE_MAX_AGE + 1, 401),
    ],
)
async def test_a_signature_counts_only_within_its_window(
    tmp_path: Path, offset: int, status: int
) -> None:
    """On a fixed clock: a timestamp up to SIGNATURE_MAX_AGE away either side is accepted, one
    second more is refused."""
    now = 1_800_000_000
    async with serving(tmp_path, {"a00000000001"}, Secret("k"), clock=lambda: float(now)) as rig:
        assert await rig.call_back(headers=signature_headers("k", "kie-1", now + offset)) == status
