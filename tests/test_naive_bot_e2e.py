"""The benchmarks' yardstick, bench/naive_bot.py, delivers a result in each of its modes.

bench.compare measures this bot against it; a naive bot that failed to deliver (or delivered
something else) would make every ratio there meaningless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakediscord import FakeDiscord

from bench.harness import NaiveBotProcess


@pytest.mark.parametrize("mode", ["poll", "callback", "callback-parallel", "callback-streamed"])
async def test_naive_bot_sends_the_simulators_image_as_its_followup(
    mode: str, tmp_path: Path, discord_fake: FakeDiscord, kie_sim: Any, bot_env: dict[str, str]
) -> None:
    bot = NaiveBotProcess(discord_fake, {**bot_env, "NAIVE_MODE": mode}, tmp_path / "naive.log")
    await bot.start()
    try:
        inter = await discord_fake.slash("imagine", {"prompt": "a lighthouse at dusk"})
        post = await discord_fake.wait_for_call(
            "POST", rf"^/webhooks/\d+/{inter.token}$", lambda c: bool(c.files), timeout=30
        )
        (task,) = kie_sim.tasks.values()
        assert (post.status, post.files[0].data) == (200, task.image)
    finally:
        await bot.teardown()
