"""The Discord client: wires the core to Discord when built, reaches Discord in serve, loads the
cogs in setup_hook and takes the core apart in close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.answers import AnswersFirst
from bot.config import Settings
from bot.i18n import Message, Text, render
from bot.kie import KieClient, KieError
from bot.ledger import Ledger
from bot.loop_lag import LagMonitor
from bot.metrics import Metrics
from bot.moderation import Moderation
from bot.ports import ModLogSink, Publisher
from bot.refs import References
from bot.runner import Runner
from bot.scheduler import Scheduler
from bot.service import KontextService
from bot.supervisor import Supervisor, backoff_delay
from bot.web import HealthSources, WebServer
from cogs.command_catalogue import CatalogueTranslator, tree_digest
from cogs.first_answer import FirstAnswers
from cogs.shards import (
    INVALID_SHARD,
    SHARD_CLOSE_CODES,
    SHARDING_REQUIRED,
    ShardedBot,
)

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.generate",
    "cogs.translate",
    "cogs.results",
    "cogs.picks",
    "cogs.admin",
    "cogs.recall",
    "cogs.refs",
)
COMMANDS_HASH_KEY = "commands_hash"
DRAIN_SECONDS = 10.0  # at most this long for the poll loop's in-flight work to stop
IN_FLIGHT_WAIT = 10.0  # at most this long for requests being taken (download, ledger write)
CREDITS_REFRESH = 600.0  # KIE's credit endpoint is free; read the balance every 10 minutes
DISCORD_RETRY_CAP = 60.0  # start-up: at most this long between two attempts to reach Discord
DISCORD_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=20)
# Discord did not answer (network, time-out, its 5xx): worth another attempt later.
DISCORD_UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError, discord.DiscordServerError)
NO_PINGS = discord.AllowedMentions.none()


GATEWAY_AUTHENTICATION_FAILED = 4004  # the gateway's close code for a refused token


class TokenRefused(Exception):
    """Discord refused the bot's token: at login (REST 401) or at the gateway (close 4004)."""

    def __init__(self, *, at_gateway: bool) -> None:
        super().__init__("gateway" if at_gateway else "login")
        self.at_gateway = at_gateway


class IntentsRefused(Exception):
    """Discord refused the intents the bot asked for."""


@contextlib.contextmanager
def login_refusals() -> Iterator[None]:
    """discord.py's refusals of the bot itself, as this adapter's exceptions."""
    try:
        yield
    except discord.LoginFailure:
        raise TokenRefused(at_gateway=False) from None
    except discord.ConnectionClosed as exc:
        if exc.code in SHARD_CLOSE_CODES:
            raise ShardingRefused(exc.code, exc.shard_id) from None
        if exc.code != GATEWAY_AUTHENTICATION_FAILED:
            raise
        raise TokenRefused(at_gateway=True) from None
    except discord.PrivilegedIntentsRequired:
        raise IntentsRefused from None


class ShardingRefused(Exception):
    """Discord closed a shard's gateway with 4010 or 4011: the shard layout must change."""

    def __init__(self, code: int, shard_id: int | None) -> None:
        super().__init__(code)
        self.code = code
        self.shard_id = shard_id

    def advice(self, shard_count: int | None) -> str:
        count = "auto" if shard_count is None else str(shard_count)
        if self.code == SHARDING_REQUIRED:
            fix = (
                "set SHARD_COUNT to a larger number than Discord recommends"
                if shard_count is None
                else "set SHARD_COUNT=auto or a larger number"
            )
            return (
                f"Discord requires more gateway shards (close code 4011, shard {self.shard_id}): "
                f"SHARD_COUNT={count} puts more than 2,500 servers on one shard; {fix}"
            )
        return (
            f"Discord refused shard {self.shard_id} (close code 4010, invalid shard): check "
            f"SHARD_COUNT={count} and SHARD_IDS (each id must be below SHARD_COUNT)"
        )


class DiscordUnanswered(Exception):
    """Discord's REST API answered, but not with what logging in needs (a 5xx, a 429)."""


def apply_discord_endpoints(settings: Settings) -> None:
    """Point discord.py at the configured REST base and gateway (a proxy, a test server)."""
    discord.http.Route.BASE = settings.discord_api_base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def command_reach(
    settings: Settings,
) -> tuple[app_commands.AppCommandContext, app_commands.AppInstallationType]:
    """Where the member commands can be used (commands that set their own, like
    /kontext-admin, keep theirs): servers only, or with ALLOW_DMS the bot's DM and, installed
    to a member's account, their private channels too (bot/moderation/operator_rules.py)."""
    outside = settings.allow_dms
    return (
        app_commands.AppCommandContext(guild=True, dm_channel=outside, private_channel=outside),
        app_commands.AppInstallationType(guild=True, user=outside),
    )


def discord_error_trace(metrics: Metrics) -> aiohttp.TraceConfig:
    """Count every Discord API error at the transport, whoever made the call."""
    trace = aiohttp.TraceConfig()

    async def on_end(
        session: aiohttp.ClientSession, ctx: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status >= 400:
            metrics.discord_errors.labels(code=str(params.response.status)).inc()

    async def on_exception(
        session: aiohttp.ClientSession,
        ctx: object,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        metrics.discord_errors.labels(code="network").inc()

    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_exception)
    return trace


async def probe_discord(base_url: str, token: str, user_agent: str) -> None:
    """GET /users/@me once: returns if Discord answers it; 401 raises LoginFailure."""
    headers = {"Authorization": f"Bot {token}", "User-Agent": user_agent}
    async with (
        aiohttp.ClientSession(timeout=DISCORD_PROBE_TIMEOUT) as http,
        http.get(f"{base_url}/users/@me", headers=headers) as resp,
    ):
        if resp.status == 401:
            raise discord.LoginFailure("Discord refused the token (401 Unauthorized)")
        if resp.status != 200:
            raise DiscordUnanswered(f"HTTP {resp.status}")


def client_options(settings: Settings, metrics: Metrics) -> dict[str, Any]:
    """discord.py's options for this bot: the guilds intent only, no pings, where commands reach."""
    intents = discord.Intents.none()
    intents.guilds = True
    # No voice here: discord.py need not warn at every start that PyNaCl/davey are missing.
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False
    contexts, installs = command_reach(settings)
    return {
        "command_prefix": commands.when_mentioned,
        "intents": intents,
        "allowed_mentions": discord.AllowedMentions.none(),
        "tree_cls": KontextTree,
        "allowed_contexts": contexts,
        "allowed_installs": installs,
        "help_command": None,
        "http_trace": discord_error_trace(metrics),
        # None: Discord's recommendation, read in ShardedBot.plan_shards before connecting.
        "shard_count": settings.shard_count,
        "shard_ids": list(settings.shard_ids) if settings.shard_ids else None,
    }


def scheduler_for(settings: Settings) -> Scheduler:
    return Scheduler(
        max_active=settings.max_open_tasks,
        per_user=settings.user_max_active_tasks,
        rate=settings.kie_max_create_per_10s,
        # KIE counts creates as they arrive, some milliseconds after our take (a ledger write
        # comes first): a window a little longer than 10 s keeps its count under.
        window=10.5,
    )


class KontextTree(app_commands.CommandTree["KontextBot"]):
    """One error handler: a short message for the member, the traceback for the log."""

    async def on_error(
        self, interaction: discord.Interaction[KontextBot], error: app_commands.AppCommandError
    ) -> None:
        message: Text
        if isinstance(error, app_commands.CheckFailure):
            message = Text("You don't have permission to use this command.")
        elif isinstance(error, app_commands.TransformerError):
            message = Text("One of the options has a value the bot doesn't understand.")
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "command %s failed (user %s, guild %s)",
                command,
                interaction.user.id,
                interaction.guild_id,
                exc_info=error,
            )
            message = Text("Something went wrong on the bot's side. Please try again.")
        await send_ephemeral(interaction, message)


async def send_ephemeral(
    interaction: discord.Interaction[discord.Client], message: Message
) -> None:
    """Answer privately, whether or not the interaction was already answered (then as a
    followup), in the member's language. The one way the bot answers a member privately;
    mentions in it never ping."""
    message = render(message, str(interaction.locale))
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(
                message, ephemeral=True, allowed_mentions=NO_PINGS
            )
    except discord.HTTPException as exc:
        log.warning("could not answer interaction %s: %s", interaction.id, exc.status)


def web_server_of(bot: KontextBot) -> WebServer:
    """The bot's own HTTP server (/healthz, /metrics, KIE's callbacks)."""
    settings = bot.settings
    return WebServer(
        host=settings.http_host,
        port=settings.http_port,
        ledger=bot.ledger,
        metrics=bot.metrics,
        lag=bot.lag,
        health=HealthSources(
            discord=bot.discord_health,
            background=bot.supervisor.health,
            poll_loop_last_tick=lambda: bot.runner.last_tick,
        ),
        callbacks=bot.runner,
        hmac_key=settings.kie_webhook_hmac_key,
    )


class KontextBot(ShardedBot):
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: Ledger,
        kie: KieClient,
        downloads: aiohttp.ClientSession,
        metrics: Metrics,
        publisher: Callable[[KontextBot], Publisher],
        modlog: Callable[[KontextBot], ModLogSink],
    ) -> None:
        """`publisher` and `modlog` build the ports on this client (cogs.publisher,
        cogs.modlog): they are handed in because they use the buttons the cogs define, and the
        cogs use this client."""
        super().__init__(**client_options(settings, metrics))
        self.settings = settings
        self.ledger = ledger
        self.kie = kie
        self.downloads = downloads
        self.metrics = metrics
        self.lag = LagMonitor()
        self.supervisor = Supervisor(
            on_restart=lambda name: metrics.background_restarts.labels(task=name).inc()
        )
        self.scheduler = scheduler_for(settings)
        self.answers = AnswersFirst(metrics)
        self.first_answers = FirstAnswers(self.http.user_agent)
        self.delivery = publisher(self)
        self.moderation = Moderation(
            settings=settings,
            ledger=ledger,
            metrics=metrics,
            read_credits=kie.credits,
            modlog=modlog(self),
        )
        self.runner = self._runner()
        self.service = KontextService(
            settings=settings,
            ledger=ledger,
            runner=self.runner,
            downloads=downloads,
            metrics=metrics,
            moderation=self.moderation,
        )
        self.refs = References(ledger, self.moderation)
        self.web = web_server_of(self)
        self._closing = False
        self._closing_now = asyncio.Event()
        self._stopping_core = asyncio.Lock()
        self._core_stopped = False
        self._discord_problem: str | None = None  # why Discord is not connected, for /healthz
        self._http_started = False
        self._set_up = False
        self.sync_only = False  # `python -m bot sync`: load the commands, start nothing

    def _runner(self) -> Runner:
        runner = Runner(
            settings=self.settings,
            ledger=self.ledger,
            kie=self.kie,
            scheduler=self.scheduler,
            delivery=self.delivery,
            metrics=self.metrics,
            hooks=self.moderation,
            supervisor=self.supervisor,
            refs=self.ledger,
        )
        self.delivery.status_context = runner.status_context
        return runner

    @property
    def gateway_connected(self) -> bool:
        """An identified gateway session is up now (false between a drop and the next READY)."""
        return self.shard_health.all_up() and not self.is_closed()

    def discord_health(self) -> dict[str, Any]:
        check: dict[str, Any] = {"ok": self.gateway_connected}
        if not check["ok"] and self._discord_problem:
            check["error"] = self._discord_problem
        check["shards"] = self.shard_health.report()
        return check

    async def start_http(self) -> None:
        """The HTTP server and the lag monitor: up before Discord answers, so /healthz tells."""
        if self._http_started:
            return
        self._http_started = True
        self.supervisor.start("event_loop_lag", self.lag.run)
        await self.web.start()

    async def serve(self, token: str) -> None:
        """Serve /healthz, reach Discord (retrying with back-off while it does not answer), log
        in and stay connected until closed. A refused token raises discord.LoginFailure."""
        await self.start_http()
        attempt = 0
        while not self._set_up and not self._closing_now.is_set():
            attempt += 1
            try:
                await probe_discord(self.settings.discord_api_base_url, token, self.http.user_agent)
                # Discord may still vanish between the probe and the login (a rare race): that
                # login's half-open HTTP session is then left to the garbage collector.
                await self.login(token)
            except (*DISCORD_UNREACHABLE, DiscordUnanswered) as exc:
                if self._set_up:
                    raise  # setup_hook itself failed: not a question of reaching Discord
                if not await self._wait_to_retry(attempt, exc):
                    return  # shutting down
        if not await self._choose_shards_retrying():
            return  # shutting down
        self._discord_problem = "logged in; connecting to the gateway"
        await self.connect()

    async def _choose_shards_retrying(self) -> bool:
        """plan_shards (again with back-off while GET /gateway/bot gets no answer), then wait
        for the session starts it lacks. False if shutting down meanwhile; ShardingRefused for
        a SHARD_IDS id past Discord's recommended count."""
        attempt = 0
        while not self._closing_now.is_set():
            try:
                wait = await self.plan_shards()
            except (*DISCORD_UNREACHABLE, discord.GatewayNotFound) as exc:
                attempt += 1
                if not await self._wait_to_retry(attempt, exc):
                    return False
                continue
            if self.shard_ids and self.shard_count and max(self.shard_ids) >= self.shard_count:
                raise ShardingRefused(INVALID_SHARD, max(self.shard_ids))
            return wait is None or await self._pause(wait)
        return False

    async def _wait_to_retry(self, attempt: int, exc: Exception) -> bool:
        """Say why, wait the back-off; False if the bot is shutting down meanwhile."""
        delay = backoff_delay(attempt, cap=DISCORD_RETRY_CAP)
        reason = f"{type(exc).__name__}: {exc}".removesuffix(": ")[:200]
        self._discord_problem = f"cannot reach Discord ({reason}); attempt {attempt}"
        log.warning(
            "cannot reach Discord at %s (%s); attempt %d, next in %g s",
            self.settings.discord_api_base_url,
            reason,
            attempt,
            delay,
        )
        return await self._pause(delay)

    async def _pause(self, delay: float) -> bool:
        """Wait `delay` seconds; False if the bot is shutting down meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._closing_now.wait()
        return not self._closing_now.is_set()

    async def setup_hook(self) -> None:
        self._set_up = True
        await self.tree.set_translator(CatalogueTranslator())
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.sync_only:
            return
        await self.start_http()
        await self.runner.start()
        self.supervisor.start("credit_watcher", self._watch_credits)
        await self.sync_commands(force=False)

    async def _watch_credits(self) -> None:
        """Read KIE's credit balance now and every CREDITS_REFRESH seconds (a free call)."""
        threshold = self.settings.low_credit_threshold
        while True:
            try:
                # Through moderation: it sets the gauge and raises (or re-arms) the one alert.
                balance = await self.moderation.credits()
            except KieError as exc:
                log.warning("could not read the KIE credit balance: %s", exc)
            else:
                if balance < threshold:
                    log.warning("KIE credit balance is low: %g (threshold %g)", balance, threshold)
                else:
                    log.info("KIE credit balance: %g", balance)
            await asyncio.sleep(CREDITS_REFRESH)

    async def sync_commands(self, *, force: bool, guild_id: int | None = None) -> int | None:
        """Sync the command tree when it changed since the last sync (or when forced).

        Of processes starting together on one ledger, only the one whose compare-and-set moves
        the stored digest to this tree's syncs; a failed sync puts the old digest back so that
        a later start tries again. Returns the number of commands synced, -1 when nothing had
        to be done (or another process syncs), None on failure.
        """
        guild_id = guild_id or self.settings.dev_guild_id
        digest = await tree_digest(self.tree, self.settings.dev_guild_id)
        key = f"{COMMANDS_HASH_KEY}:{guild_id or 'global'}"
        stored = await self.ledger.get_meta(key) or ""
        if not force:
            if stored == digest:
                log.info("command set unchanged since the last sync; not syncing")
                return -1
            if not await self.ledger.swap_meta(key, stored, digest):
                log.info("another process is syncing this command set; not syncing")
                return -1
        synced: list[app_commands.AppCommand] | None = None
        try:
            if guild_id:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
            else:
                synced = await self.tree.sync()
        except discord.HTTPException as exc:
            log.error("command sync failed: %s %s", exc.status, exc.code)
            return None
        finally:
            if synced is None and not force:  # failed (or cancelled): a later start retries
                await self.ledger.swap_meta(key, digest, stored)
        await self.ledger.set_meta(key, digest)
        log.info(
            "synced %d command(s) %s",
            len(synced),
            f"to guild {guild_id}" if guild_id else "globally",
        )
        return len(synced)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s (%s)", self.user, self.user.id if self.user else "?")

    def dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        # Once closing, discord.py's reconnect loop may still fail a connection attempt and
        # dispatch 'disconnect' after close() has dropped the event loop (a crash on exit when
        # Discord is unreachable). Nothing listens for events past that point anyway.
        if self.is_closed():
            return
        super().dispatch(event_name, *args, **kwargs)

    async def shutdown(self) -> None:
        """Graceful: refuse new commands, let in-flight work settle briefly, stop, close.

        The gateway stays up for SHUTDOWN_GRACE_SECONDS (and until requests already being
        taken are written to the ledger), so commands arriving now are told to come back
        instead of timing out.
        """
        if self._closing:
            return
        self._closing = True
        self._closing_now.set()
        self.service.accepting = False
        log.info("shutting down: no new tasks; open tasks resume on the next start")
        if not self.sync_only and not self.is_closed():
            grace = asyncio.create_task(asyncio.sleep(self.settings.shutdown_grace_seconds))
            try:
                await asyncio.wait_for(self.service.idle(), IN_FLIGHT_WAIT)
            except TimeoutError:
                log.warning("requests still being taken after %.0f s; closing", IN_FLIGHT_WAIT)
            await grace
        await self.close()

    async def close(self) -> None:
        self.service.accepting = False
        self._closing_now.set()
        if not self.sync_only:
            # close() may be called twice at once (a signal's shutdown, then leaving `async
            # with`): the second waits for the first instead of stopping things again.
            async with self._stopping_core:
                if not self._core_stopped:
                    await self._stop_core()
                    self._core_stopped = True
        await super().close()

    async def _stop_core(self) -> None:
        # Each step runs even if one before it failed: a half-stopped bot would not exit.
        await self.supervisor.stop()  # never raises
        steps = (
            ("the poll work", self._stop_runner),
            ("deliveries", self.delivery.close),
            ("first answers", self.first_answers.close),
        )
        for what, step in (*steps, ("the HTTP server", self.web.stop)):
            try:
                await step()
            except Exception:
                log.exception("stopping %s failed", what)

    async def _stop_runner(self) -> None:
        try:
            await asyncio.wait_for(self.runner.stop(), DRAIN_SECONDS)
        except TimeoutError:
            log.warning("poll loop did not stop within %.0f s", DRAIN_SECONDS)
