"""Logging: one line per event, text or JSON, secrets redacted by construction."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

REDACTED = "[redacted]"

# Secrets not known in advance: each interaction's token (anyone holding it may post as the bot
# for 15 minutes). discord.py puts it in webhook and callback URLs (/webhooks/<app id>/<token>,
# /interactions/<id>/<token>/callback); payloads carry it as "token", a task as interaction_token.
TOKEN_PATTERNS = (
    re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/?#\s'\"]+"),
    re.compile(r"(\b(?:interaction_)?token['\"]?\s*[:=]\s*['\"])[^'\"\s]+"),
)

# Each task's lines carry its task id, guild and user ids: set once where the work starts.
_task_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "kontext_task_context", default=None
)


@contextmanager
def task_context(task_id: str, guild_id: int | None, user_id: int) -> Iterator[None]:
    token = _task_context.set({"task_id": task_id, "guild_id": guild_id, "user_id": user_id})
    try:
        yield
    finally:
        _task_context.reset(token)


class RedactingFilter(logging.Filter):
    """Replaces every known secret, and every interaction token (by pattern), in the formatted
    message, its arguments and tracebacks."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in TOKEN_PATTERNS:
            text = pattern.sub(rf"\g<1>{REDACTED}", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _task_context.get()
        if ctx is not None:
            for key, value in ctx.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class ReconnectNoiseFilter(logging.Filter):
    """discord.py logs every gateway reconnect with a full traceback; an operator needs one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.name in ("discord.client", "discord.shard")
            and isinstance(record.msg, str)
            and record.msg.startswith(("Attempting a reconnect", "Failed to connect for shard"))
            and record.exc_info
            and record.exc_info[1] is not None
        ):
            exc = record.exc_info[1]
            detail = str(exc)[:200]
            record.msg = f"{record.getMessage()} after {type(exc).__name__}" + (
                f": {detail}" if detail else ""
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{k}={getattr(record, k)}"
            for k in ("task_id", "guild_id", "user_id")
            if hasattr(record, k)
        ]
        if ids:
            first, _, rest = line.partition("\n")
            line = f"{first} [{' '.join(ids)}]" + (f"\n{rest}" if rest else "")
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("task_id", "guild_id", "user_id", "event"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_text:
            out["exception"] = record.exc_text
        elif record.exc_info and record.exc_info[0] is not None:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(
    level: str, fmt: str, secrets: Iterable[str], *, discord_level: str = "INFO"
) -> RedactingFilter:
    """Configure the root logger once: stdout, one line per event, secrets redacted.

    discord.py's loggers follow ``discord_level``, never louder than ``level``: at DEBUG they
    log every request URL, interaction tokens included (redacted by the filter).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    redactor = RedactingFilter(secrets)
    handler.addFilter(ReconnectNoiseFilter())  # before redaction: it rewrites the message
    handler.addFilter(redactor)
    root.addHandler(handler)
    root.setLevel(level)
    # discord.py is chatty at DEBUG (every gateway frame): it follows DISCORD_LOG_LEVEL.
    chosen = max(logging.getLevelName(level), logging.getLevelName(discord_level))
    for name in ("discord", "discord.http", "discord.client", "discord.state"):
        logging.getLogger(name).setLevel(chosen)
    logging.getLogger("discord.gateway").setLevel(max(chosen, logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    logging.captureWarnings(True)
    return redactor
