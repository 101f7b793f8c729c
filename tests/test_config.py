"""Settings: validation, secrets, .env handling and the start-up message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import clean_env

from bot.config import ConfigError, Secret, load_settings

BASE = {"DISCORD_TOKEN": "discord-secret-token", "KIE_API_KEY": "kie-secret-key"}


def test_defaults_match_the_documented_table():
    """With only the two required values, every default is the documented one."""
    s = load_settings(BASE)
    assert s.kie_api_base_url == "https://api.kie.ai"
    assert s.kie_upload_base_url == "https://kieai.redpandaai.co"
    assert s.discord_api_base_url == "https://discord.com/api/v10"
    assert s.database_url == "sqlite:///data/kontext-bot.sqlite3"
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)
    assert s.public_base_url is None and s.kie_webhook_hmac_key is None
    assert s.allow_private_urls is False
    assert s.kie_max_create_per_10s == 20
    assert s.task_timeout_seconds == 600
    assert s.log_level == "INFO"


def test_every_problem_is_listed_at_once():
    """Missing and invalid settings are reported together in one readable error."""
    with pytest.raises(ConfigError) as info:
        load_settings(
            {
                "HTTP_PORT": "eighty",
                "ALLOW_PRIVATE_URLS": "maybe",
                "KIE_API_BASE_URL": "ftp://x",
                "DATABASE_URL": "mysql://db",
                "LOG_LEVEL": "LOUD",
                "POLL_INTERVAL_SECONDS": "-1",
            }
        )
    text = str(info.value)
    for name in (
        "DISCORD_TOKEN",
        "KIE_API_KEY",
        "HTTP_PORT",
        "ALLOW_PRIVATE_URLS",
        "KIE_API_BASE_URL",
        "DATABASE_URL",
        "LOG_LEVEL",
        "POLL_INTERVAL_SECONDS",
    ):
        assert name in text
    assert len(info.value.problems) == 8


def test_database_url_picks_postgresql_and_keeps_its_password_secret():
    """postgresql:// and postgres:// are accepted; the password is a secret (redacted from
    logs) and a bad URL's message names both forms without showing it."""
    url = "postgresql://kontext:pw-SECRET-91@db.internal:5432/kontext"
    s = load_settings({**BASE, "DATABASE_URL": url})
    assert s.database_url == url
    assert "pw-SECRET-91" in s.secret_values()
    assert load_settings({**BASE, "DATABASE_URL": "postgres://db/kontext"}).secret_values() == [
        "discord-secret-token",
        "kie-secret-key",
    ]
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "DATABASE_URL": "mysql://kontext:pw-SECRET-91@db/kontext"})
    text = str(info.value)
    assert "sqlite:///" in text and "postgresql://" in text
    assert "pw-SECRET-91" not in text


def test_secrets_never_show_themselves():
    """repr, str, f-strings and the settings' repr hide the token, the key and the HMAC key."""
    s = load_settings({**BASE, "KIE_WEBHOOK_HMAC_KEY": "hmac-secret-value"})
    shown = " ".join(
        [repr(s), str(s), f"{s.discord_token}", f"{s.kie_api_key!r}", repr(s.kie_webhook_hmac_key)]
    )
    for secret in ("discord-secret-token", "kie-secret-key", "hmac-secret-value"):
        assert secret not in shown
    assert s.discord_token.get() == "discord-secret-token"
    assert sorted(s.secret_values()) == [
        "discord-secret-token",
        "hmac-secret-value",
        "kie-secret-key",
    ]
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")


def test_simulator_keyword_and_callbacks():
    """KIE_API_BASE_URL=simulator picks the simulator; PUBLIC_BASE_URL turns on callbacks."""
    s = load_settings(
        {**BASE, "KIE_API_BASE_URL": "simulator", "PUBLIC_BASE_URL": "https://bot.example.org/"}
    )
    assert s.simulator
    assert s.callbacks_enabled and s.public_base_url == "https://bot.example.org"


def _run_bot(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        check=False,
        env=clean_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_python_m_bot_without_token_names_the_missing_settings(tmp_path):
    """`python -m bot` with no token exits with one clear message naming what is missing."""
    result = _run_bot({}, tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN is missing" in result.stderr
    assert "KIE_API_KEY is missing" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_real_environment_wins_over_dotenv(tmp_path):
    """A value in .env is used, but a real environment variable overrides it."""
    (tmp_path / ".env").write_text(
        "DISCORD_TOKEN=from-dotenv\nKIE_API_KEY=from-dotenv\nHTTP_PORT=notaport\n"
    )
    result = _run_bot({"HTTP_PORT": "also-bad"}, tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN" not in result.stderr  # found in .env
    assert "'also-bad'" in result.stderr and "notaport" not in result.stderr


def test_outside_servers_settings():
    """ALLOW_DMS (default false), DM_DAILY_CREDITS (default 0), DM_MODLOG_CHANNEL_ID (an id)."""
    default = load_settings(BASE)
    on = load_settings(
        {**BASE, "ALLOW_DMS": "true", "DM_DAILY_CREDITS": "25", "DM_MODLOG_CHANNEL_ID": "42"}
    )
    assert (default.allow_dms, default.dm_daily_credits, default.dm_modlog_channel_id) == (
        False,
        0,
        None,
    )
    assert (on.allow_dms, on.dm_daily_credits, on.dm_modlog_channel_id) == (True, 25, 42)


def test_a_bad_dm_modlog_channel_id_is_named():
    """DM_MODLOG_CHANNEL_ID must be a channel id; the start-up message names it."""
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "DM_MODLOG_CHANNEL_ID": "#mod-log", "DM_DAILY_CREDITS": "-1"})
    assert "DM_MODLOG_CHANNEL_ID" in str(info.value) and "DM_DAILY_CREDITS" in str(info.value)


def test_shard_settings():
    """SHARD_COUNT: auto (None, Discord's recommendation) or a number; SHARD_IDS: distinct ids
    below the count, sorted; bad values are named."""
    default = load_settings(BASE)
    assert (default.shard_count, default.shard_ids) == (None, None)
    s = load_settings({**BASE, "SHARD_COUNT": "6", "SHARD_IDS": "3, 2"})
    assert (s.shard_count, s.shard_ids) == (6, (2, 3))
    assert load_settings({**BASE, "SHARD_COUNT": "AUTO", "SHARD_IDS": "7"}).shard_ids == (7,)
    for bad in ({"SHARD_COUNT": "0"}, {"SHARD_COUNT": "two"}):
        with pytest.raises(ConfigError) as info:
            load_settings({**BASE, **bad})
        assert "SHARD_COUNT must be auto or a whole number from 1" in str(info.value)
    for ids in ("2", "0,0", "-1", "a,b"):
        with pytest.raises(ConfigError) as info:
            load_settings({**BASE, "SHARD_COUNT": "2", "SHARD_IDS": ids})
        assert "SHARD_IDS must be distinct shard ids such as 0,2,5 below SHARD_COUNT (2)" in str(
            info.value
        )
