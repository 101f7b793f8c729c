"""Graceful shutdown: SIGTERM mid-task exits 0, the task completes after a restart, and
commands arriving while the bot stops are told to come back."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from e2e_helpers import BotProcess
from fakediscord import FakeDiscord

BotFactory = Callable[..., Awaitable[BotProcess]]


async def sigterm_and_wait(bot: BotProcess, timeout: float = 15.0) -> int:
    """Send SIGTERM (what Docker sends) and wait for the exit code."""
    assert bot.proc is not None
    bot.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(bot.proc.wait(), timeout)
    await bot.stop()  # already exited: closes the log, asserts 0
    return code


async def test_sigterm_mid_task_exits_0_and_the_task_completes_after_restart(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """SIGTERM while KIE generates: exit 0; the restarted bot follows the same KIE task."""
    kie_sim.config.delay = 4.0
    inter = await discord_fake.slash("imagine", {"prompt": "a harbour in fog"})
    await discord_fake.wait_until(lambda: kie_sim.count("generate") == 1, 15, what="generate")
    conv = discord_fake.conversation(inter)
    assert not conv.files

    assert await sigterm_and_wait(bot_process) == 0
    log = bot_process.log_text()
    assert "shutting down" in log
    assert not conv.files

    await bot_process.start(wait_for_sync=False)
    await discord_fake.wait_until(lambda: conv.files, 20, what="the image after the restart")
    assert kie_sim.count("generate") == 1
    assert "resuming 1 open task(s)" in bot_process.log_text()


async def test_commands_during_shutdown_are_told_to_come_back(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """A /imagine arriving after SIGTERM gets an ephemeral "restarting" answer and no KIE call."""
    bot = await bot_factory(SHUTDOWN_GRACE_SECONDS="5")
    assert bot.proc is not None
    bot.proc.send_signal(signal.SIGTERM)
    await discord_fake.wait_until(lambda: "shutting down" in bot.log_text(), 10, what="shutdown")
    inter = await discord_fake.slash("imagine", {"prompt": "too late"})
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(lambda: conv.ephemeral_messages, 10, what="the refusal")
    assert "restarting" in conv.ephemeral_messages[0].text
    assert "try again in a minute" in conv.ephemeral_messages[0].text
    code = await asyncio.wait_for(bot.proc.wait(), 15)
    await bot.stop()
    assert code == 0
    assert kie_sim.count("generate") == 0
