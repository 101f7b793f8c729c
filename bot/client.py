"""The Discord client: wires the core together in setup_hook and takes it apart in close."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.delivery import Delivery
from bot.kie import KieClient
from bot.ledger import Ledger
from bot.loop_lag import LagMonitor
from bot.metrics import Metrics
from bot.moderation import DiscordModLog, Moderation
from bot.runner import Runner
from bot.scheduler import Scheduler
from bot.service import KontextService
from bot.web import HealthSources, WebServer

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.generate", "cogs.results", "cogs.admin")
COMMANDS_HASH_KEY = "commands_hash"
DRAIN_SECONDS = 10.0


def apply_discord_endpoints(settings: Settings) -> None:
    """Point discord.py at the configured REST base and gateway (a proxy, a test server)."""
    discord.http.Route.BASE = settings.discord_api_base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


class KontextTree(app_commands.CommandTree["KontextBot"]):
    """One error handler: a short message for the member, the traceback for the log."""

    async def on_error(
        self, interaction: discord.Interaction[KontextBot], error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.CheckFailure):
            message = "You don't have permission to use this command."
        elif isinstance(error, app_commands.TransformerError):
            message = "One of the options has a value the bot doesn't understand."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "command %s failed (user %s, guild %s)",
                command,
                interaction.user.id,
                interaction.guild_id,
                exc_info=error,
            )
            message = "Something went wrong on the bot's side. Please try again."
        await send_ephemeral(interaction, message)


async def send_ephemeral(interaction: discord.Interaction[Any], message: str) -> None:
    """Answer ephemerally whether or not the interaction was already answered."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not answer interaction %s: %s", interaction.id, exc.status)


class KontextBot(commands.Bot):
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: Ledger,
        kie: KieClient,
        downloads: aiohttp.ClientSession,
        metrics: Metrics,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=KontextTree,
            help_command=None,
        )
        self.settings = settings
        self.ledger = ledger
        self.kie = kie
        self.metrics = metrics
        self.lag = LagMonitor()
        self.scheduler = Scheduler(
            max_active=settings.max_open_tasks,
            per_user=settings.user_max_active_tasks,
            rate=settings.kie_max_create_per_10s,
        )
        self.delivery = Delivery(self, ledger, metrics)
        self.moderation = Moderation(
            settings=settings,
            ledger=ledger,
            metrics=metrics,
            read_credits=kie.credits,
            modlog=DiscordModLog(self),
        )
        self.runner = Runner(
            settings=settings,
            ledger=ledger,
            kie=kie,
            scheduler=self.scheduler,
            delivery=self.delivery,
            metrics=metrics,
            hooks=self.moderation,
        )
        self.delivery.status_context = self.runner.status_context
        self.service = KontextService(
            settings=settings,
            ledger=ledger,
            runner=self.runner,
            downloads=downloads,
            metrics=metrics,
            moderation=self.moderation,
        )
        self.web = WebServer(
            host=settings.http_host,
            port=settings.http_port,
            ledger=ledger,
            metrics=metrics,
            lag=self.lag,
            health=HealthSources(
                gateway_connected=lambda: self.is_ready() and not self.is_closed(),
                poll_loop_alive=lambda: self.runner.alive,
                poll_loop_last_tick=lambda: self.runner.last_tick,
            ),
            on_callback=self._on_kie_callback,
            hmac_key=settings.kie_webhook_hmac_key,
        )
        self._closing = False
        self.sync_only = False  # `python -m bot sync`: load the commands, start nothing

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.sync_only:
            return
        self.lag.start()
        await self.web.start()
        await self.runner.start()
        await self.sync_commands(force=False)

    async def _on_kie_callback(self, task_id: str, code: int) -> None:
        log.info("KIE callback for task %s (code %s)", task_id, code)
        self.runner.nudge(task_id)

    def commands_digest(self) -> str:
        payload = sorted(
            (command.to_dict(self.tree) for command in self.tree.get_commands()),
            key=lambda c: (c.get("type", 1), c["name"]),
        )
        guild = self.settings.dev_guild_id
        text = json.dumps({"guild": guild, "commands": payload}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    async def sync_commands(self, *, force: bool, guild_id: int | None = None) -> int:
        """Sync the command tree when it changed since the last sync (or when forced).

        Returns the number of commands synced, or -1 when nothing had to be done.
        """
        guild_id = guild_id or self.settings.dev_guild_id
        digest = self.commands_digest()
        key = f"{COMMANDS_HASH_KEY}:{guild_id or 'global'}"
        if not force and await self.ledger.get_meta(key) == digest:
            log.info("command set unchanged since the last sync; not syncing")
            return -1
        try:
            if guild_id:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
            else:
                synced = await self.tree.sync()
        except discord.HTTPException as exc:
            log.error("command sync failed: %s %s", exc.status, exc.code)
            return 0
        await self.ledger.set_meta(key, digest)
        log.info(
            "synced %d command(s) %s",
            len(synced),
            f"to guild {guild_id}" if guild_id else "globally",
        )
        return len(synced)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s (%s)", self.user, self.user.id if self.user else "?")

    async def shutdown(self) -> None:
        """Graceful: refuse new commands, let in-flight work settle briefly, stop, close."""
        if self._closing:
            return
        self._closing = True
        self.service.accepting = False
        log.info("shutting down: no new tasks; open tasks resume on the next start")
        await self.close()

    async def close(self) -> None:
        self.service.accepting = False
        if self.sync_only:
            await super().close()
            return
        try:
            await asyncio.wait_for(self.runner.stop(), DRAIN_SECONDS)
        except TimeoutError:
            log.warning("poll loop did not stop within %.0f s", DRAIN_SECONDS)
        await self.delivery.close()
        await self.web.stop()
        await self.lag.stop()
        await super().close()
