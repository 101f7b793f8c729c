"""Reading a running bot from outside: /healthz, /metrics and its log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from e2e_helpers import BotProcess
from prometheus_client.parser import text_string_to_metric_families

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


async def health_until(
    bot: BotProcess, accept: Callable[[int, dict[str, Any]], bool], timeout: float = 15.0
) -> tuple[int, dict[str, Any]]:
    """Poll /healthz until `accept(status, body)`; fail with the last answer after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: tuple[int, Any] = (0, "no answer yet")
    while True:
        try:
            status, body = await get_json(f"{bot.http_url}/healthz")
        except aiohttp.ClientConnectionError as exc:  # the bot's HTTP server is not up yet
            last = (0, repr(exc))
        else:
            if accept(status, body):
                return status, body
            last = (status, body)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/healthz never matched; last answer {last}")
        await asyncio.sleep(0.1)


async def log_until(bot: BotProcess, accept: Callable[[str], bool], timeout: float = 15.0) -> str:
    """Re-read the bot's log until `accept(text)`; fail with the log after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not accept(text := bot.log_text()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the bot log never matched:\n{text}")
        await asyncio.sleep(0.1)
    return text


async def scrape(bot: BotProcess) -> Metrics:
    """/metrics as {(sample name, sorted labels): value}."""
    async with aiohttp.ClientSession() as http, http.get(f"{bot.http_url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)
