"""A deliberately naive Flux Kontext Discord bot: the yardstick of the issue-16 benchmarks.

Not shipped and not imported by ``bot/`` or ``cogs/``: ``bench.compare`` runs it as its own
process (``python -m bench.naive_bot``) against the same fake Discord and KIE simulator as the
real bot. ``/imagine prompt`` defers at once, asks KIE to generate, then either polls
record-info every ``NAIVE_POLL_SECONDS`` (``NAIVE_MODE=poll``) or waits for KIE's callback on
its own HTTP server (``NAIVE_MODE=callback``: on the callback one record-info), downloads the
result and sends it as the followup. No ledger, no queue, no limits, no retries.

Two idealised callback modes measure the delivery row's bound (bench/README.md): what a bot
with nothing to do but the requests gains by overlapping them. ``callback-parallel`` asks
record-info and downloads the callback's URL at once, then posts; ``callback-streamed`` also
streams the download into the upload as it arrives (bench/streamed_upload.py), its last bytes
held until record-info names the same URL.

Environment: DISCORD_TOKEN, DISCORD_API_BASE_URL, DISCORD_GATEWAY_URL, KIE_API_BASE_URL,
KIE_API_KEY, NAIVE_MODE (poll | callback | callback-parallel | callback-streamed | ack: defer
only), NAIVE_POLL_SECONDS (1), HTTP_HOST, HTTP_PORT (callback modes), LOG_LEVEL.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web
from discord.ext import commands

from bench.streamed_upload import StreamedFile  # registers its aiohttp payload

log = logging.getLogger("naive_bot")


class NaiveBot(commands.Bot):
    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None)
        self.kie_base = os.environ["KIE_API_BASE_URL"].rstrip("/")
        self.kie_headers = {"Authorization": f"Bearer {os.environ['KIE_API_KEY']}"}
        self.mode = os.environ.get("NAIVE_MODE", "poll")
        self.poll_seconds = float(os.environ.get("NAIVE_POLL_SECONDS", "1"))
        self.http_host = os.environ.get("HTTP_HOST", "127.0.0.1")
        self.http_port = int(os.environ.get("HTTP_PORT", "0"))
        self.waiting: dict[str, discord.Interaction[Any]] = {}  # KIE task id -> interaction
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None

    async def setup_hook(self) -> None:
        self.session = aiohttp.ClientSession()

        @self.tree.command(name="imagine", description="Make an image")
        async def imagine(interaction: discord.Interaction, prompt: str) -> None:
            await self.imagine(interaction, prompt)

        await self.tree.sync()
        if self.mode.startswith("callback"):
            app = web.Application()
            app.router.add_post("/callback", self.on_kie_callback)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, self.http_host, self.http_port).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()
        await super().close()

    async def imagine(self, interaction: discord.Interaction[Any], prompt: str) -> None:
        """/imagine prompt: make an image with Flux Kontext."""
        await interaction.response.defer(thinking=True)
        if self.mode == "ack":  # discord.py's own cost of answering, nothing after it
            return
        body: dict[str, Any] = {"prompt": prompt}
        if self.mode.startswith("callback"):
            body["callBackUrl"] = f"http://{self.http_host}:{self.http_port}/callback"
        assert self.session is not None
        async with self.session.post(
            f"{self.kie_base}/api/v1/flux/kontext/generate", json=body, headers=self.kie_headers
        ) as resp:
            task_id = (await resp.json())["data"]["taskId"]
        if self.mode.startswith("callback"):
            self.waiting[task_id] = interaction
            return
        while True:
            await asyncio.sleep(self.poll_seconds)
            data = await self.record_info(task_id)
            if data["successFlag"] != 0:
                break
        await self.deliver(interaction, data)

    async def record_info(self, task_id: str) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.get(
            f"{self.kie_base}/api/v1/flux/kontext/record-info",
            params={"taskId": task_id},
            headers=self.kie_headers,
        ) as resp:
            data: dict[str, Any] = (await resp.json())["data"]
        return data

    async def on_kie_callback(self, request: web.Request) -> web.Response:
        body = (await request.json())["data"]
        task_id = body["taskId"]
        interaction = self.waiting.pop(task_id, None)
        url = (body.get("info") or {}).get("resultImageUrl")
        if interaction is not None:
            await self.called_back(interaction, task_id, url)
        return web.json_response({"ok": True})

    async def called_back(
        self, interaction: discord.Interaction[Any], task_id: str, url: str | None
    ) -> None:
        if self.mode == "callback-parallel" and url:
            await self.deliver_in_parallel(interaction, task_id, url)
        elif self.mode == "callback-streamed" and url:
            await self.deliver_streamed(interaction, task_id, url)
        else:
            await self.deliver(interaction, await self.record_info(task_id))

    async def download(self, url: str) -> bytes:
        assert self.session is not None
        async with self.session.get(url) as resp:
            return await resp.read()

    async def deliver_in_parallel(
        self, interaction: discord.Interaction[Any], task_id: str, url: str
    ) -> None:
        data, image = await asyncio.gather(self.record_info(task_id), self.download(url))
        if not _confirms(data, url):
            await self.deliver(interaction, data)
            return
        await self.post(interaction, image)

    async def deliver_streamed(
        self, interaction: discord.Interaction[Any], task_id: str, url: str
    ) -> None:
        assert self.session is not None
        record = asyncio.create_task(self.record_info(task_id))
        async with self.session.get(url) as resp:
            streamed = StreamedFile(resp.content_length or 0)
            file = discord.File(streamed, "result.jpg")
            post = asyncio.create_task(interaction.followup.send(file=file))
            try:
                while chunk := await resp.content.readany():
                    streamed.feed(chunk)
            finally:
                streamed.feed(None)
        data = await record
        streamed.checked(_confirms(data, url))
        try:
            await post
        except (aiohttp.ClientError, discord.HTTPException):
            await self.deliver(interaction, data)  # abandoned: the plain way

    async def deliver(self, interaction: discord.Interaction[Any], data: dict[str, Any]) -> None:
        if data["successFlag"] != 1:
            await interaction.followup.send(f"Failed: {data.get('errorMessage')}")
            return
        await self.post(interaction, await self.download(data["response"]["resultImageUrl"]))

    async def post(self, interaction: discord.Interaction[Any], image: bytes) -> None:
        await interaction.followup.send(file=discord.File(io.BytesIO(image), "result.jpg"))


def _confirms(data: dict[str, Any], url: str) -> bool:
    """Record-info says the task succeeded with the callback's result URL."""
    return bool(data["successFlag"] == 1 and data["response"]["resultImageUrl"] == url)


async def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    # discord.py's DEBUG lines carry every payload, interaction tokens included.
    logging.getLogger("discord").setLevel(logging.INFO)
    discord.http.Route.BASE = os.environ["DISCORD_API_BASE_URL"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])
    bot = NaiveBot()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with bot:
        runner = asyncio.create_task(bot.start(os.environ["DISCORD_TOKEN"]))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({runner, stopping}, return_when=asyncio.FIRST_COMPLETED)
        await bot.close()
        stopping.cancel()


if __name__ == "__main__":
    asyncio.run(main())
