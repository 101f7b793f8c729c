"""Settings: one frozen object built from the environment, validated once at start-up."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypedDict, TypeVar
from urllib.parse import urlsplit

from dotenv import find_dotenv, load_dotenv

T = TypeVar("T")

DEFAULT_DISCORD_API = "https://discord.com/api/v10"
DEFAULT_DISCORD_GATEWAY = "wss://gateway.discord.gg/"
SIMULATOR = "simulator"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("text", "json")


class Secret:
    """A string that never shows itself in repr, str, f-strings or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __format__(self, spec: str) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secrets are not picklable")


class ConfigError(Exception):
    """Every missing or invalid setting, listed in one readable message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"kontext-bot cannot start: {len(problems)} setting(s) need attention\n{lines}\n"
            "See .env.example for what each setting means."
        )


@dataclass(frozen=True)
class Settings:
    discord_token: Secret
    kie_api_key: Secret
    kie_api_base_url: str = "https://api.kie.ai"
    kie_upload_base_url: str = "https://kieai.redpandaai.co"
    discord_api_base_url: str = DEFAULT_DISCORD_API
    discord_gateway_url: str = DEFAULT_DISCORD_GATEWAY
    database_url: str = "sqlite:///data/kontext-bot.sqlite3"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    public_base_url: str | None = None
    kie_webhook_hmac_key: Secret | None = None
    allow_private_urls: bool = False
    user_cooldown_seconds: float = 15.0
    user_max_active_tasks: int = 4
    kie_max_create_per_10s: int = 20
    poll_interval_seconds: float = 2.0
    task_timeout_seconds: float = 600.0
    log_level: str = "INFO"
    discord_log_level: str = "INFO"  # discord.py's own loggers (its wire log at DEBUG)
    log_format: str = "text"
    max_open_tasks: int = 200
    dev_guild_id: int | None = None
    shard_count: int | None = None  # None: Discord's recommendation (SHARD_COUNT=auto)
    shard_ids: tuple[int, ...] | None = None  # None: every shard of shard_count
    credit_cost_pro: float = 5.0
    credit_cost_max: float = 10.0
    low_credit_threshold: float = 100.0
    sim_delay_seconds: float = 8.0
    shutdown_grace_seconds: float = 2.0
    # Several processes on one PostgreSQL ledger (issue 15): this process's name in the
    # ledger's leases (unique per process; the same again after a restart), and how long a
    # lease lasts unrenewed before another process takes the task over.
    process_name: str = "local"
    task_lease_seconds: float = 30.0
    kie_request_timeout_seconds: float = 30.0
    kie_max_polls_per_second: int = 20
    input_retention_days: float = 7.0
    allow_dms: bool = False  # the bot's DM and user installs (private channels) too
    dm_daily_credits: float = 0.0  # per member per UTC day outside servers; 0: none allowed
    dm_modlog_channel_id: int | None = None
    secrets: tuple[Secret, ...] = field(default=(), repr=False, compare=False)

    @property
    def simulator(self) -> bool:
        """KIE_API_BASE_URL=simulator: run the KIE simulator inside the bot process."""
        return self.kie_api_base_url == SIMULATOR

    @property
    def sqlite_path(self) -> Path:
        return sqlite_path(self.database_url)

    @property
    def callbacks_enabled(self) -> bool:
        return self.public_base_url is not None

    def secret_values(self) -> list[str]:
        return [s.get() for s in self.secrets if s.get()]


POSTGRES_SCHEMES: Final = ("postgresql://", "postgres://")
DATABASE_URL_FORMS: Final = (
    "sqlite:///path/to/file.sqlite3 or postgresql://user:password@host:5432/database"
)


def is_postgres_url(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def check_database_url(url: str) -> None:
    """ValueError unless `url` is a sqlite:/// file or a postgresql:// (postgres://) database."""
    if not is_postgres_url(url):
        sqlite_path(url)
        return
    parts = urlsplit(url)
    if not parts.hostname and not parts.path.strip("/"):
        raise ValueError("the postgresql URL names no host and no database")


def database_password(url: str) -> str | None:
    """The password a postgresql:// URL carries (redacted from logs), if any."""
    if not is_postgres_url(url):
        return None
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def database_url_for_display(url: str) -> str:
    """DATABASE_URL as it may be shown or logged: a password (any scheme) as ***."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if not password:
        return url
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***{at}{host}"


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` to a Path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError("only sqlite:/// URLs are supported")
    rest = url[len(prefix) :]
    if not rest:
        raise ValueError("the sqlite URL names no file")
    return Path(rest)


class _Reader:
    """Reads one variable at a time and collects every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def required_secret(self, name: str, what: str) -> Secret:
        value = self.raw(name)
        if value is None:
            self.problems.append(f"{name} is missing: set it to your {what}.")
            return Secret("")
        return Secret(value)

    def optional_secret(self, name: str) -> Secret | None:
        value = self.raw(name)
        return Secret(value) if value is not None else None

    def parse(self, name: str, default: T, convert: Callable[[str], T], expect: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return convert(value)
        except (ValueError, TypeError):
            self.problems.append(f"{name} must be {expect} (got {value!r}).")
            return default

    def number(self, name: str, default: float, low: float, high: float) -> float:
        def convert(v: str) -> float:
            n = float(v)
            if not low <= n <= high:
                raise ValueError
            return n

        return self.parse(name, default, convert, f"a number from {low:g} to {high:g}")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        def convert(v: str) -> int:
            n = int(v)
            if not low <= n <= high:
                raise ValueError
            return n

        return self.parse(name, default, convert, f"a whole number from {low} to {high}")

    def boolean(self, name: str, default: bool) -> bool:
        def convert(v: str) -> bool:
            low = v.lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError

        return self.parse(name, default, convert, "true or false")

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        def convert(v: str) -> str:
            parts = urlsplit(v)
            if parts.scheme not in schemes or not parts.netloc:
                raise ValueError
            return v.rstrip("/")

        return self.parse(name, default, convert, f"a URL starting with {' or '.join(schemes)}://")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        def convert(v: str) -> str:
            if v.upper() in choices:
                return v.upper()
            if v.lower() in choices:
                return v.lower()
            raise ValueError

        return self.parse(name, default, convert, f"one of {', '.join(choices)}")


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """Build the settings from `env` (default: the process environment after `.env`).

    A real environment variable wins over `.env` (load_dotenv does not override).
    Raises ConfigError listing every problem at once.
    """
    if env is None:
        if dotenv:
            # The working directory's .env (or a parent's), not the package's directory.
            load_dotenv(find_dotenv(usecwd=True), override=False)
        env = os.environ
    r = _Reader(env)
    discord = _discord_settings(r)
    kie = _kie_settings(r)
    service = _service_settings(r)
    limits = _limit_settings(r)
    outside = _outside_server_settings(r)
    logs = _log_settings(r)
    if r.problems:
        raise ConfigError(r.problems)
    service["process_name"] = service["process_name"] or default_process_name(discord["shard_ids"])
    db_password = database_password(service["database_url"])
    secrets = (
        discord["discord_token"],
        kie["kie_api_key"],
        kie["kie_webhook_hmac_key"],
        Secret(db_password) if db_password else None,
    )
    return Settings(
        **discord,
        **kie,
        **service,
        **limits,
        **outside,
        **logs,
        secrets=tuple(s for s in secrets if s),
    )


class _DiscordSettings(TypedDict):
    discord_token: Secret
    discord_api_base_url: str
    discord_gateway_url: str
    dev_guild_id: int | None
    shard_count: int | None
    shard_ids: tuple[int, ...] | None


def _discord_settings(r: _Reader) -> _DiscordSettings:
    shard_count = r.parse("SHARD_COUNT", None, _shard_count, "auto or a whole number from 1")
    return _DiscordSettings(
        discord_token=r.required_secret("DISCORD_TOKEN", "Discord bot token"),
        discord_api_base_url=r.url("DISCORD_API_BASE_URL", DEFAULT_DISCORD_API, ("http", "https")),
        discord_gateway_url=r.url("DISCORD_GATEWAY_URL", DEFAULT_DISCORD_GATEWAY, ("ws", "wss")),
        dev_guild_id=_optional_snowflake(r, "DEV_GUILD_ID", "a Discord server id"),
        shard_count=shard_count,
        shard_ids=_shard_ids(r, shard_count),
    )


def _shard_count(value: str) -> int | None:
    if value.strip().lower() in ("", "auto"):
        return None
    n = int(value)
    if n < 1:
        raise ValueError
    return n


def _shard_ids(r: _Reader, shard_count: int | None) -> tuple[int, ...] | None:
    """SHARD_IDS: comma-separated shard ids, distinct, each under SHARD_COUNT when it is a
    number (with auto they are checked against Discord's recommendation at start-up)."""
    raw = r.raw("SHARD_IDS")
    if raw is None or not raw.strip():
        return None
    highest = "" if shard_count is None else f" below SHARD_COUNT ({shard_count})"

    def convert(v: str) -> tuple[int, ...]:
        ids = tuple(int(part) for part in v.split(","))
        if len(set(ids)) != len(ids) or any(i < 0 for i in ids):
            raise ValueError
        if shard_count is not None and max(ids) >= shard_count:
            raise ValueError
        return tuple(sorted(ids))

    return r.parse("SHARD_IDS", None, convert, f"distinct shard ids such as 0,2,5{highest}")


class _KieSettings(TypedDict):
    kie_api_key: Secret
    kie_webhook_hmac_key: Secret | None
    kie_api_base_url: str
    kie_upload_base_url: str
    kie_request_timeout_seconds: float
    kie_max_create_per_10s: int
    kie_max_polls_per_second: int
    credit_cost_pro: float
    credit_cost_max: float
    low_credit_threshold: float
    sim_delay_seconds: float


def _kie_settings(r: _Reader) -> _KieSettings:
    api_key = r.required_secret("KIE_API_KEY", "KIE API key (https://kie.ai/api-key)")
    kie_base = r.raw("KIE_API_BASE_URL")
    if kie_base is not None and kie_base.lower() == SIMULATOR:
        kie_api_base_url = SIMULATOR
    else:
        kie_api_base_url = r.url("KIE_API_BASE_URL", "https://api.kie.ai", ("http", "https"))
    return _KieSettings(
        kie_api_key=api_key,
        kie_webhook_hmac_key=r.optional_secret("KIE_WEBHOOK_HMAC_KEY"),
        kie_api_base_url=kie_api_base_url,
        kie_upload_base_url=r.url(
            "KIE_UPLOAD_BASE_URL", "https://kieai.redpandaai.co", ("http", "https")
        ),
        kie_request_timeout_seconds=r.number("KIE_REQUEST_TIMEOUT_SECONDS", 30.0, 1, 300),
        kie_max_create_per_10s=r.integer("KIE_MAX_CREATE_PER_10S", 20, 1, 1000),
        kie_max_polls_per_second=r.integer("KIE_MAX_POLLS_PER_SECOND", 20, 1, 1000),
        credit_cost_pro=r.number("KIE_CREDITS_PRO", 5.0, 0, 1_000_000),
        credit_cost_max=r.number("KIE_CREDITS_MAX", 10.0, 0, 1_000_000),
        low_credit_threshold=r.number("LOW_CREDIT_THRESHOLD", 100.0, 0, 1_000_000_000),
        sim_delay_seconds=r.number("KIE_SIM_DELAY_SECONDS", 8.0, 0, 3600),
    )


class _ServiceSettings(TypedDict):
    """Where the bot keeps its data and how it is reached."""

    database_url: str
    http_host: str
    http_port: int
    public_base_url: str | None
    allow_private_urls: bool
    shutdown_grace_seconds: float
    process_name: str
    task_lease_seconds: float


def _service_settings(r: _Reader) -> _ServiceSettings:
    database_url = r.raw("DATABASE_URL") or "sqlite:///data/kontext-bot.sqlite3"
    try:
        check_database_url(database_url)
    except ValueError:
        shown = database_url_for_display(database_url)
        r.problems.append(f"DATABASE_URL must look like {DATABASE_URL_FORMS} (got {shown!r}).")
    public_base_url = r.raw("PUBLIC_BASE_URL")
    if public_base_url is not None:
        public_base_url = r.url("PUBLIC_BASE_URL", "", ("http", "https")) or None
    return _ServiceSettings(
        database_url=database_url,
        http_host=r.raw("HTTP_HOST") or "127.0.0.1",
        http_port=r.integer("HTTP_PORT", 8080, 0, 65535),
        public_base_url=public_base_url,
        allow_private_urls=r.boolean("ALLOW_PRIVATE_URLS", False),
        shutdown_grace_seconds=r.number("SHUTDOWN_GRACE_SECONDS", 2.0, 0, 60),
        process_name=r.raw("PROCESS_NAME") or "",  # filled in by load_settings
        task_lease_seconds=r.number("TASK_LEASE_SECONDS", 30.0, 3, 3600),
    )


def default_process_name(shard_ids: tuple[int, ...] | None) -> str:
    """The host's name, and the shards this process runs when SHARD_IDS says: distinct for
    each process of a deployment, and the same when a process comes back after a restart."""
    host = socket.gethostname() or "localhost"
    if shard_ids is None:
        return host
    return f"{host}/shards-{'-'.join(str(i) for i in shard_ids)}"


class _LimitSettings(TypedDict):
    user_cooldown_seconds: float
    user_max_active_tasks: int
    max_open_tasks: int
    poll_interval_seconds: float
    task_timeout_seconds: float
    input_retention_days: float


def _limit_settings(r: _Reader) -> _LimitSettings:
    return _LimitSettings(
        user_cooldown_seconds=r.number("USER_COOLDOWN_SECONDS", 15.0, 0, 86400),
        user_max_active_tasks=r.integer("USER_MAX_ACTIVE_TASKS", 4, 1, 100),
        max_open_tasks=r.integer("MAX_OPEN_TASKS", 200, 1, 100000),
        poll_interval_seconds=r.number("POLL_INTERVAL_SECONDS", 2.0, 0.05, 300),
        task_timeout_seconds=r.number("TASK_TIMEOUT_SECONDS", 600.0, 5, 86400),
        input_retention_days=r.number("INPUT_RETENTION_DAYS", 7.0, 0, 3650),
    )


class _OutsideServerSettings(TypedDict):
    """Direct messages and user installs."""

    allow_dms: bool
    dm_daily_credits: float
    dm_modlog_channel_id: int | None


def _outside_server_settings(r: _Reader) -> _OutsideServerSettings:
    return _OutsideServerSettings(
        allow_dms=r.boolean("ALLOW_DMS", False),
        dm_daily_credits=r.number("DM_DAILY_CREDITS", 0.0, 0, 1_000_000),
        dm_modlog_channel_id=_optional_snowflake(r, "DM_MODLOG_CHANNEL_ID", "a Discord channel id"),
    )


class _LogSettings(TypedDict):
    log_level: str
    discord_log_level: str
    log_format: str


def _log_settings(r: _Reader) -> _LogSettings:
    return _LogSettings(
        log_level=r.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
        discord_log_level=r.choice("DISCORD_LOG_LEVEL", "INFO", LOG_LEVELS),
        log_format=r.choice("LOG_FORMAT", "text", LOG_FORMATS),
    )


def _optional_snowflake(r: _Reader, name: str, what: str) -> int | None:
    """A Discord id when ``name`` is set, else None."""
    if not r.raw(name):
        return None
    return r.parse(name, None, _snowflake, what)


def _snowflake(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise ValueError
    return n
