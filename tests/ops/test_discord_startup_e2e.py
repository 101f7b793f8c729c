"""Start-up against a Discord that does not answer yet, or refuses the token."""

from __future__ import annotations

import asyncio
from pathlib import Path

from e2e_helpers import COMMANDS_PUT, BotProcess, free_port
from fakediscord import FakeDiscord
from ops_checks import health_until, log_until

ATTEMPT = "cannot reach Discord"


async def test_discord_unreachable_at_start_up_is_retried_until_it_answers(
    tmp_path: Path, bot_env: dict[str, str]
) -> None:
    """Nothing listens where Discord should be: one warning line per attempt and no traceback,
    /healthz 503 naming discord; once Discord answers, the bot connects and answers a command."""
    late = FakeDiscord()
    port = free_port()
    env = {
        **bot_env,
        "DISCORD_TOKEN": late.token,
        "DISCORD_API_BASE_URL": f"http://127.0.0.1:{port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{port}/",
    }
    bot = BotProcess(late, env, tmp_path / "late.log")
    await bot.launch()
    try:
        await log_until(bot, lambda text: text.count(ATTEMPT) >= 2, timeout=20)
        _, body = await health_until(bot, lambda status, body: status == 503)
        assert body["failed"] == ["discord"]
        assert ATTEMPT in body["checks"]["discord"]["error"]
        log = bot.log_text()
        assert "Traceback" not in log
        attempts = [line for line in log.splitlines() if ATTEMPT in line]
        assert "attempt 1," in attempts[0] and "attempt 2," in attempts[1]

        await late.start(port=port)
        await late.wait_for_identify(timeout=30)
        await late.wait_for_call("PUT", COMMANDS_PUT, timeout=15)
        inter = await late.slash("imagine", {"prompt": "a lighthouse after the outage"})
        conv = await late.wait_for_conversation(inter, lambda c: c.files, timeout=20)
        assert conv.files[0].data
        await health_until(bot, lambda status, body: status == 200)
    finally:
        await bot.teardown()  # SIGINT: exit 0, and no traceback anywhere in the log
        await late.stop()


async def test_sigint_while_discord_is_unreachable_exits_0(
    tmp_path: Path, bot_env: dict[str, str]
) -> None:
    """Stopping a bot that is still waiting for Discord is a clean stop (exit 0, no traceback)."""
    port = free_port()
    env = {
        **bot_env,
        "DISCORD_API_BASE_URL": f"http://127.0.0.1:{port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{port}/",
    }
    bot = BotProcess(FakeDiscord(), env, tmp_path / "waiting.log")
    await bot.launch()
    await log_until(bot, lambda text: ATTEMPT in text, timeout=20)
    await bot.teardown()  # SIGINT: asserts exit 0 and no traceback


async def test_an_invalid_token_exits_2_with_one_line(
    tmp_path: Path, discord_fake: FakeDiscord, bot_env: dict[str, str]
) -> None:
    """Discord answers 401 to the token: the bot says so in one line and exits with code 2."""
    bot = BotProcess(
        discord_fake, {**bot_env, "DISCORD_TOKEN": "not-the-bot-token"}, tmp_path / "bad.log"
    )
    await bot.launch()
    assert bot.proc is not None
    await asyncio.wait_for(bot.proc.wait(), 30)
    await bot.stop(expect_code=2)  # it has exited already: this asserts the code
    errors = [line for line in bot.log_text().splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert "refused the token" in errors[0] and "DISCORD_TOKEN" in errors[0]
    await bot.teardown()  # no traceback, no secret


async def test_no_voice_warnings_at_start_up(bot_process: BotProcess) -> None:
    """The bot has no voice: discord.py's PyNaCl/davey "voice will NOT be supported" warnings
    are not printed (they came at every start)."""
    log = await log_until(bot_process, lambda text: "connected to Discord as" in text)
    assert "voice will NOT be supported" not in log
