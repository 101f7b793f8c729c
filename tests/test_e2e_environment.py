"""End-to-end bots start from a clean environment: a developer's `.env` or shell changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import COMMANDS_PUT, REPO_ROOT, BotProcess
from fakediscord import FakeDiscord

GUILD_COMMANDS_PUT = r"^/applications/\d+/guilds/\d+/commands$"


@pytest.fixture
def repo_dotenv() -> Iterator[Path]:
    """A `.env` in the repo root saying LOG_FORMAT=json (a developer's own is left untouched)."""
    path = REPO_ROOT / ".env"
    created = not path.exists()
    if created:
        path.write_text("LOG_FORMAT=json\nUSER_COOLDOWN_SECONDS=999\n")
    try:
        yield path
    finally:
        if created:
            path.unlink(missing_ok=True)


async def test_repo_dotenv_and_runner_environment_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
    repo_dotenv: Path,
    discord_fake: FakeDiscord,
    bot_factory: Callable[..., Awaitable[BotProcess]],
) -> None:
    """With a stray DEV_GUILD_ID, token and cooldown in os.environ and a `.env` in the repo root,
    the bot still runs exactly on the test's env: global sync, text logs, no cooldown."""
    monkeypatch.setenv("DEV_GUILD_ID", str(discord_fake.guild_id))
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("USER_COOLDOWN_SECONDS", "999")
    monkeypatch.setenv("DISCORD_TOKEN", "a-wrong-token-from-the-shell")
    bot = await bot_factory()
    assert Path(bot.workdir) != REPO_ROOT
    assert discord_fake.find_calls("PUT", COMMANDS_PUT)
    assert not discord_fake.find_calls("PUT", GUILD_COMMANDS_PUT)
    assert not [line for line in bot.log_text().splitlines() if line.startswith("{")]
    first = await discord_fake.slash("imagine", {"prompt": "a red kite"})
    second = await discord_fake.slash("imagine", {"prompt": "a blue kite"})
    for inter in (first, second):
        conv = await discord_fake.wait_for_conversation(
            inter, lambda c: c.original is not None and c.original.attachments, timeout=30
        )
        assert not conv.ephemeral
