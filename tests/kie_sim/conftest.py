"""Fixtures: a fast KIE simulator and a raw HTTP helper for talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.kie_sim import KieSimulator, SimConfig

KEY = "sim-test-key"


class Api:
    """Raw calls to the simulator; returns (HTTP status, parsed JSON body)."""

    def __init__(self, session: aiohttp.ClientSession, sim: KieSimulator) -> None:
        self.session = session
        self.sim = sim
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> tuple[int, Any]:
        hdrs = self.headers if headers is None else headers
        async with self.session.request(
            method, self.sim.base_url + path, json=json, params=params, headers=hdrs, data=data
        ) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            return resp.status, body

    async def generate(self, **body: Any) -> tuple[int, Any]:
        return await self.call("POST", "/api/v1/flux/kontext/generate", json=body)

    async def record(self, task_id: str) -> tuple[int, Any]:
        return await self.call(
            "GET", "/api/v1/flux/kontext/record-info", params={"taskId": task_id}
        )

    async def create(self, **body: Any) -> str:
        status, answer = await self.generate(**body)
        assert status == 200 and answer["code"] == 200, answer
        return str(answer["data"]["taskId"])

    async def get_file(self, url: str) -> tuple[int, bytes, str]:
        async with self.session.get(url) as resp:
            return resp.status, await resp.read(), resp.content_type


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[KieSimulator]:
    simulator = KieSimulator(
        SimConfig(
            api_key=KEY,
            delay=0.05,
            callback_retry_delays=(0.02, 0.02, 0.02),
            callback_timeout=1.0,
            result_long_side=256,
        )
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest_asyncio.fixture
async def api(sim: KieSimulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, sim)


@pytest.fixture
def key() -> str:
    return KEY
