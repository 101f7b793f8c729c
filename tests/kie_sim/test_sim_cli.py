"""`python -m bot.kie_sim` serves KIE's quickstart flow end to end."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_cli_quickstart_flow() -> None:
    """The CLI prints its URL, then generate -> record-info until done -> GET result works."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.kie_sim",
        "--port",
        str(port),
        "--delay",
        "0.2",
        "--api-key",
        "cli-key",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        base = f"http://127.0.0.1:{port}"
        assert base in banner
        headers = {"Authorization": "Bearer cli-key", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(
                base + "/api/v1/flux/kontext/generate",
                json={"prompt": "A serene mountain landscape", "aspectRatio": "4:3"},
            ) as resp:
                created = await resp.json()
            assert created["code"] == 200
            task_id = created["data"]["taskId"]
            async with asyncio.timeout(10):
                while True:
                    async with http.get(
                        base + "/api/v1/flux/kontext/record-info", params={"taskId": task_id}
                    ) as resp:
                        record = (await resp.json())["data"]
                    if record["successFlag"] != 0:
                        break
                    await asyncio.sleep(0.05)
            assert record["successFlag"] == 1
            async with http.get(record["response"]["resultImageUrl"]) as resp:
                assert resp.status == 200
                image = await resp.read()
        with Image.open(io.BytesIO(image)) as im:
            assert im.format == "JPEG"
            assert abs(im.size[0] / im.size[1] - 4 / 3) < 0.01
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    assert code == 0
