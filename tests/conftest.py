"""Shared fixtures: the fake Discord, the KIE simulator, the bot's env and the bot process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from postgres_db import fresh_database

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `bot` is not installed into the venv; import it from source
    sys.path.insert(0, str(REPO_ROOT))

from e2e_helpers import BotClock, BotProcess, free_port  # noqa: E402
from fakediscord import FakeDiscord  # noqa: E402

from bot.kie_sim import KieSimulator, SimConfig  # noqa: E402

BOT_LOGS_KEY = pytest.StashKey[list[BotProcess]]()


@pytest_asyncio.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    """A fresh fake Discord per test, strict by default (the 3-second rule, rate-limit buckets).

    Fails the test at teardown if the bot broke a Discord rule: a route the fake lacks, an
    interaction first answered after 3 s, an IDENTIFY asking for more than GUILDS.
    """
    fake = FakeDiscord()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    problems = fake.violations()
    assert not problems, "Discord rules broken:\n  " + "\n  ".join(problems)


@pytest_asyncio.fixture
async def kie_sim() -> AsyncIterator[Any]:
    """The KIE simulator (bot.kie_sim) on a free port, with a short job delay."""
    sim = KieSimulator(SimConfig(delay=0.3))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def bot_env(tmp_path: Path, discord_fake: FakeDiscord, kie_sim: Any) -> dict[str, str]:
    """Environment for `python -m bot` pointing at the fake Discord and the KIE simulator."""
    return {
        "DISCORD_TOKEN": discord_fake.token,
        "KIE_API_KEY": "kie-test-key",
        "DISCORD_API_BASE_URL": discord_fake.api_url,
        "DISCORD_GATEWAY_URL": discord_fake.gateway_url,
        "KIE_API_BASE_URL": kie_sim.base_url,
        "KIE_UPLOAD_BASE_URL": kie_sim.base_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(free_port()),
        "ALLOW_PRIVATE_URLS": "true",
        "POLL_INTERVAL_SECONDS": "0.2",
        "USER_COOLDOWN_SECONDS": "0",
        "SHUTDOWN_GRACE_SECONDS": "0",  # tests that need the shutdown window set their own
        "LOG_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
    }


@pytest_asyncio.fixture
async def bot_factory(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    discord_fake: FakeDiscord,
    bot_env: dict[str, str],
) -> AsyncIterator[Callable[..., Awaitable[BotProcess]]]:
    """``await bot_factory(**env)`` starts a bot with extra env; all are stopped at teardown."""
    bots: list[BotProcess] = []
    request.node.stash[BOT_LOGS_KEY] = bots

    async def make(**env: str) -> BotProcess:
        log = tmp_path / f"bot-{len(bots)}.log"
        bot = BotProcess(discord_fake, {**bot_env, **env}, log)
        bots.append(bot)
        return await bot.start()

    yield make
    errors = []
    for bot in bots:
        try:
            await bot.teardown()
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n\n".join(errors)


@pytest_asyncio.fixture
async def bot_launcher(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    discord_fake: FakeDiscord,
    bot_env: dict[str, str],
) -> AsyncIterator[Callable[..., Awaitable[BotProcess]]]:
    """``await bot_launcher(name, **env)`` launches one more bot process of a deployment with
    its own log (``<name>.log``) and HTTP port, without waiting for it (processes of one
    deployment sync the commands once, so ``BotProcess.start``'s wait for a sync fits only the
    first). At teardown all are stopped together and their logs checked, as bot_factory's."""
    bots: list[BotProcess] = request.node.stash.setdefault(BOT_LOGS_KEY, [])
    mine: list[BotProcess] = []

    async def launch(name: str, **env: str) -> BotProcess:
        bot = BotProcess(
            discord_fake,
            {**bot_env, "HTTP_PORT": str(free_port()), **env},
            tmp_path / f"{name}.log",
        )
        bots.append(bot)
        mine.append(bot)
        await bot.launch()
        return bot

    yield launch
    results = await asyncio.gather(*(bot.teardown() for bot in mine), return_exceptions=True)
    errors = [str(r) for r in results if isinstance(r, BaseException)]
    assert not errors, "\n\n".join(errors)


@pytest.fixture
def bot_clock(tmp_path: Path, discord_fake: FakeDiscord) -> BotClock:
    """The bot's wall clock and the fake's, moved together (``advance``); libfaketime.

    Start the bot with ``await bot_factory(**bot_clock.env)``; fails clearly without libfaketime.
    """
    return BotClock(discord_fake, tmp_path / "bot-clock")


@pytest_asyncio.fixture
async def bot_process(bot_factory: Callable[..., Awaitable[BotProcess]]) -> BotProcess:
    """The real bot, started against the fake Discord and the KIE simulator."""
    return await bot_factory()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Attach every bot's log to a failing test's report."""
    report = yield
    if report.failed:
        for i, bot in enumerate(item.stash.get(BOT_LOGS_KEY, [])):
            report.sections.append((f"bot log #{i} ({call.when})", bot.log_text()))
    return report


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (no schema yet) on the machine's server, dropped after
    the test. Request it before the bot fixtures: fixtures are torn down in reverse, so the
    database is dropped after the bots have stopped."""
    async with fresh_database() as url:
        yield url
