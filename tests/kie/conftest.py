"""Fixtures: a KIE simulator on 127.0.0.1 and a KieClient pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import pytest_asyncio

from bot.kie import KieClient
from bot.kie_sim import KieSimulator, SimConfig
from bot.net import safe_fetch

API_KEY = "sk-test-5f2c9e1d7a4b4c0e9f3a8b6d2e1c7a90"


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[KieSimulator]:
    simulator = KieSimulator(
        SimConfig(api_key=API_KEY, delay=0.05, callback_retry_delays=(0.01, 0.01, 0.01))
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def build_client(sim: KieSimulator, session: aiohttp.ClientSession, **kwargs: object) -> KieClient:
    """A client against the simulator; downloads allow 127.0.0.1 (the simulator's host)."""

    async def download(url: str, max_bytes: int) -> bytes:
        return (await safe_fetch(session, url, max_bytes=max_bytes, allow_private=True)).data

    options: dict[str, object] = {
        "base_url": sim.base_url,
        "upload_base_url": sim.base_url,
        "request_timeout": 2.0,
        "backoff_base": 0.01,
        "backoff_max": 0.02,
        "download": download,
        "rate_limit_wait": 0.05,
    }
    options.update(kwargs)
    api_key = str(options.pop("api_key", API_KEY))
    return KieClient(session, api_key, **options)  # type: ignore[arg-type]


MakeClient = Callable[..., KieClient]


@pytest.fixture
def make_client() -> MakeClient:
    """A factory: ``make_client(sim, session, **KieClient options)``."""
    return build_client


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest_asyncio.fixture
async def client(sim: KieSimulator, session: aiohttp.ClientSession) -> KieClient:
    return build_client(sim, session)
