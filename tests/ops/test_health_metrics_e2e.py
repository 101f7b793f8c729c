"""Operations: /healthz green and red, /metrics moving with real tasks, JSON logs with task ids.

All through the real bot process, the fake Discord and the KIE simulator on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import BotProcess
from fakediscord import FakeDiscord
from ops_checks import health_until, sample, scrape

BotFactory = Callable[..., Awaitable[BotProcess]]


async def imagine_to_the_end(fake: FakeDiscord, prompt: str = "a lighthouse at dusk") -> Any:
    inter = await fake.slash("imagine", {"prompt": prompt})
    conv = fake.conversation(inter)
    await fake.wait_until(lambda: conv.files, 20, what="the image in the reply")
    return conv


async def test_healthz_is_green_on_a_running_bot(bot_process: BotProcess) -> None:
    """A connected bot answers /healthz 200 with every check (Discord, ledger, the background
    tasks) passing."""
    _, body = await health_until(bot_process, lambda s, b: s == 200)
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert set(body["checks"]) == {
        "discord",
        "ledger",
        "poll_loop",
        "housekeeping",
        "credit_watcher",
        "admission_memory",
        "event_loop_lag",
    }
    assert all(check["ok"] for check in body["checks"].values())


async def test_healthz_names_discord_when_it_goes_away(
    discord_fake: FakeDiscord, bot_process: BotProcess
) -> None:
    """With Discord gone (fake stopped), /healthz turns 503 and names the discord check."""
    await health_until(bot_process, lambda s, b: s == 200)
    await discord_fake.stop()
    _, body = await health_until(bot_process, lambda s, b: s == 503)
    assert body["status"] == "unhealthy"
    assert body["failed"] == ["discord"]
    assert body["checks"]["discord"]["ok"] is False
    assert body["checks"]["ledger"]["ok"] is True


def _set_immutable(paths: list[Path], on: bool) -> bool:
    if shutil.which("chattr") is None:
        return False
    flag = "+i" if on else "-i"
    result = subprocess.run(
        ["chattr", flag, *map(str, paths)], capture_output=True, text=True, check=False
    )
    return result.returncode == 0


async def test_healthz_names_the_ledger_when_it_cannot_be_written(
    tmp_path: Path, bot_process: BotProcess
) -> None:
    """With the ledger's files immutable (writes fail at the filesystem), /healthz 503s on it.

    Tests run as root, which ignores file modes; the immutable attribute stops root too.
    """
    await health_until(bot_process, lambda s, b: s == 200)
    db = Path(bot_process.env["DATABASE_URL"].removeprefix("sqlite:///"))
    files = [db, db.with_name(db.name + "-wal")]
    assert all(f.exists() for f in files)
    if not _set_immutable(files, True):
        pytest.skip("chattr +i is not available here (needs root and a filesystem that has it)")
    try:
        _, body = await health_until(bot_process, lambda s, b: s == 503)
        assert body["failed"] == ["ledger"]
        assert body["checks"]["ledger"]["ok"] is False
        assert body["checks"]["ledger"]["error"]
    finally:
        _set_immutable(files, False)
    # Writable again: the bot recovers without a restart.
    await health_until(bot_process, lambda s, b: s == 200)


async def test_metrics_move_as_tasks_run(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """Open tasks by state, outcomes, durations, KIE calls, credits and refusals all move."""
    kie_sim.set_credits(1234)
    bot = await bot_factory(USER_COOLDOWN_SECONDS="600")
    before = await scrape(bot)
    assert sample(before, "kontext_task_outcomes_total", outcome="done") == 0
    assert sample(before, "kontext_tasks", state="generating") == 0
    assert sample(before, "kontext_kie_credits") == 1234  # read at start-up
    assert sample(before, "kontext_kie_calls_total", endpoint="credit", code="200") >= 1

    kie_sim.config.delay = 3.0
    inter = await discord_fake.slash("imagine", {"prompt": "a slow lighthouse"})
    await kie_sim_wait(discord_fake, kie_sim, "generate")
    during = await scrape(bot)
    assert sample(during, "kontext_tasks", state="generating") == 1
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(lambda: conv.files, 20, what="the image in the reply")

    # A second request inside the cooldown is refused and counted.
    refused = await discord_fake.slash("imagine", {"prompt": "again"})
    refused_conv = discord_fake.conversation(refused)
    await discord_fake.wait_until(lambda: refused_conv.ephemeral_messages, 10, what="refusal")

    after = await scrape(bot)
    assert sample(after, "kontext_task_outcomes_total", outcome="done") == 1
    assert sample(after, "kontext_task_duration_seconds_count") == 1
    assert sample(after, "kontext_task_duration_seconds_sum") >= 3.0
    assert sample(after, "kontext_tasks", state="generating") == 0
    assert sample(after, "kontext_queue_depth") == 0
    assert sample(after, "kontext_kie_calls_total", endpoint="generate", code="200") == 1
    assert sample(after, "kontext_kie_calls_total", endpoint="record-info", code="200") >= 1
    assert sample(after, "kontext_refusals_total", reason="cooldown") == 1


async def kie_sim_wait(fake: FakeDiscord, kie_sim: Any, endpoint: str) -> None:
    await fake.wait_until(lambda: kie_sim.count(endpoint) >= 1, 15, what=f"KIE {endpoint}")


async def test_discord_api_errors_are_counted_by_code(
    discord_fake: FakeDiscord, bot_process: BotProcess
) -> None:
    """A Discord error on any call (here an edit of the reply) shows in the error counter."""
    fault = discord_fake.fail_next(
        "PATCH", r"^/webhooks/\d+/[^/]+/messages/\d+$", status=500, count=1
    )
    await imagine_to_the_end(discord_fake)
    assert fault.hits
    metrics = await scrape(bot_process)
    assert sample(metrics, "kontext_discord_api_errors_total", code="500") >= 1


async def test_json_logs_parse_and_carry_task_ids(
    discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """With LOG_FORMAT=json every line is one JSON object; a task's lines carry its ids."""
    bot = await bot_factory(LOG_FORMAT="json", LOG_LEVEL="INFO")
    conv = await imagine_to_the_end(discord_fake)
    await discord_fake.wait_until(lambda: "delivered" in bot.log_text(), 10, what="delivered")
    await bot.stop()
    task_id = conv.original.embeds[0]["footer"]["text"].removeprefix("Task ")
    lines = [
        line
        for line in bot.log_text().splitlines()
        if line.strip() and not line.startswith("===== bot start")
    ]
    records = [json.loads(line) for line in lines]  # every line parses
    assert all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    mine = [r for r in records if r.get("task_id") == task_id]
    messages = " | ".join(r["message"] for r in mine)
    assert "queued" in messages and "submitted" in messages and "delivered" in messages
    for record in mine:
        assert record["guild_id"] == discord_fake.guild_id
        assert record["user_id"] == discord_fake.member.id
    assert "shutting down" in " ".join(r["message"] for r in records)
