"""Background work is supervised: a failing task is logged with its traceback, named by /healthz
while it is down, restarted with back-off, and shutdown still stops everything.

The failure is provoked from outside: the KIE simulator answers a credit balance too large for a
float, so the KIE client's float() raises OverflowError in the credit watcher (not a KieError).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from e2e_helpers import BotProcess
from ops_checks import health_until, log_until, sample, scrape

BotFactory = Callable[..., Awaitable[BotProcess]]

TOO_LARGE_FOR_A_FLOAT = 10**400


def only_the_watcher_down(status: int, body: dict[str, Any]) -> bool:
    """Connected to Discord (READY may follow IDENTIFY by a moment), the watcher down."""
    return status == 503 and body["failed"] == ["credit_watcher"]


async def test_a_failing_credit_watcher_is_reported_and_restarted(
    kie_sim: Any, bot_factory: BotFactory
) -> None:
    """The watcher's error is logged with its traceback, /healthz 503 names it, and once KIE
    answers normally again a restart reads the balance and /healthz turns 200."""
    kie_sim.set_credits(TOO_LARGE_FOR_A_FLOAT)
    bot = await bot_factory()
    bot.allow_tracebacks = True  # the watcher's failure is logged with its traceback, on purpose

    _, body = await health_until(bot, only_the_watcher_down)
    assert body["checks"]["credit_watcher"]["error"].startswith("OverflowError")
    log = await log_until(bot, lambda text: "Traceback" in text)
    assert "OverflowError: int too large to convert to float" in log

    kie_sim.set_credits(500)
    # The watcher reads every 10 minutes: only a restart reads the balance this soon.
    await log_until(bot, lambda text: "KIE credit balance: 500" in text)
    await health_until(bot, lambda status, body: status == 200)
    metrics = await scrape(bot)
    assert sample(metrics, "kontext_background_restarts_total", task="credit_watcher") >= 1


async def test_shutdown_while_a_background_task_is_down_stops_everything(
    kie_sim: Any, bot_factory: BotFactory
) -> None:
    """SIGINT while the credit watcher keeps failing: exit 0, and the poll loop, the other
    background tasks and the HTTP server were stopped on the way out."""
    kie_sim.set_credits(TOO_LARGE_FOR_A_FLOAT)
    bot = await bot_factory()
    bot.allow_tracebacks = True  # the watcher's failure is logged with its traceback, on purpose
    await health_until(bot, only_the_watcher_down)

    await bot.stop()  # SIGINT; asserts exit code 0

    log = bot.log_text()
    stopped = next(line for line in log.splitlines() if "stopped background tasks" in line)
    for task in ("poll_loop", "housekeeping", "credit_watcher", "event_loop_lag"):
        assert task in stopped
    assert "HTTP server stopped" in log
