"""`python -m bot [run|check|sync [--guild ID]]`: the command line and the composition root."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import discord

from bot import net
from bot.client import KontextBot, apply_discord_endpoints
from bot.config import ConfigError, Settings, load_settings
from bot.kie import KieClient, KieError
from bot.kie_sim import KieSimulator, SimConfig
from bot.ledger import Ledger, open_ledger
from bot.logs import configure_logging
from bot.metrics import Metrics

log = logging.getLogger("bot")

USER_AGENT = "kontext-bot/0.1 (+https://github.com/kontext-bot/kontext-bot)"
# View Channel, Send Messages, Embed Links, Attach Files, Read Message History.
INVITE_PERMISSIONS = 1024 | 2048 | 16384 | 32768 | 65536
KIE_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_read=30)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_read=30)


@dataclass
class Core:
    settings: Settings
    ledger: Ledger
    kie: KieClient
    downloads: aiohttp.ClientSession
    metrics: Metrics


@contextlib.asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    """Open what the bot owns — one session per remote service, the ledger — and close it all."""
    async with contextlib.AsyncExitStack() as stack:
        kie_base, upload_base = settings.kie_api_base_url, settings.kie_upload_base_url
        allow_private = settings.allow_private_urls
        if settings.simulator:
            sim = KieSimulator(SimConfig(delay=settings.sim_delay_seconds))
            await sim.start()
            stack.push_async_callback(sim.stop)
            kie_base = upload_base = sim.base_url
            log.warning(
                "KIE_API_BASE_URL=simulator: using the built-in KIE simulator at %s", kie_base
            )
        metrics = Metrics()
        kie_session = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=KIE_TIMEOUT, headers={"User-Agent": USER_AGENT})
        )
        # Results come from KIE's own hosts; the simulator serves them on loopback.
        results = await stack.enter_async_context(
            net.make_download_session(
                allow_private=allow_private or settings.simulator,
                timeout=DOWNLOAD_TIMEOUT,
                headers={"User-Agent": USER_AGENT},
            )
        )
        downloads = await stack.enter_async_context(
            net.make_download_session(
                allow_private=allow_private,
                timeout=DOWNLOAD_TIMEOUT,
                headers={"User-Agent": USER_AGENT},
            )
        )

        async def fetch_result(url: str, max_bytes: int) -> bytes:
            fetched = await net.safe_fetch(
                results, url, max_bytes=max_bytes, allow_private=allow_private or settings.simulator
            )
            return fetched.data

        kie = KieClient(
            kie_session,
            settings.kie_api_key.get(),
            base_url=kie_base,
            upload_base_url=upload_base,
            user_agent=USER_AGENT,
            observer=metrics.kie_observer,
            download=fetch_result,
        )
        ledger = open_ledger(settings.database_url)
        await ledger.open()
        stack.push_async_callback(ledger.close)
        yield Core(settings, ledger, kie, downloads, metrics)


def _bot(core: Core) -> KontextBot:
    return KontextBot(
        settings=core.settings,
        ledger=core.ledger,
        kie=core.kie,
        downloads=core.downloads,
        metrics=core.metrics,
    )


async def run(settings: Settings) -> int:
    apply_discord_endpoints(settings)
    async with open_core(settings) as core:
        bot = _bot(core)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.shutdown()))
        try:
            async with bot:
                await bot.start(settings.discord_token.get())
        except discord.LoginFailure:
            log.error("Discord refused the token: check DISCORD_TOKEN")
            return 1
        except discord.PrivilegedIntentsRequired:
            log.error("Discord refused the intents this bot asked for")
            return 1
    log.info("stopped")
    return 0


async def sync(settings: Settings, guild_id: int | None) -> int:
    apply_discord_endpoints(settings)
    async with open_core(settings) as core:
        bot = _bot(core)
        bot.sync_only = True
        async with bot:
            try:
                await bot.login(settings.discord_token.get())
            except discord.LoginFailure:
                print("Discord refused the token: check DISCORD_TOKEN.", file=sys.stderr)
                return 1
            count = await bot.sync_commands(force=True, guild_id=guild_id)
    where = f"to guild {guild_id}" if guild_id else "globally (may take up to an hour to show)"
    print(f"Synced {count} command(s) {where}.")
    return 0 if count >= 0 else 1


async def check(settings: Settings) -> int:
    """Validate the configuration and both credentials; print the invite URL."""
    problems: list[str] = []
    apply_discord_endpoints(settings)
    async with open_core(settings) as core:
        try:
            balance = await core.kie.credits()
            print(f"KIE: the API key works; the account has {balance:g} credits.")
        except KieError as exc:
            problems.append(f"KIE: {exc.user_message} (code {exc.code})")
        application_id: str | None = None
        headers = {"Authorization": f"Bot {settings.discord_token.get()}", "User-Agent": USER_AGENT}
        timeout = aiohttp.ClientTimeout(total=20)
        try:
            async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
                async with http.get(f"{settings.discord_api_base_url}/users/@me") as resp:
                    if resp.status == 401:
                        problems.append(
                            "Discord: the bot token was refused (401). "
                            "Reset it in the Developer Portal and set DISCORD_TOKEN."
                        )
                    elif resp.status != 200:
                        problems.append(f"Discord: /users/@me answered HTTP {resp.status}.")
                    else:
                        me = await resp.json(content_type=None)
                        application_id = str(me.get("id"))
                        print(f"Discord: logged in as {me.get('username')} ({application_id}).")
                if application_id:
                    async with http.get(
                        f"{settings.discord_api_base_url}/oauth2/applications/@me"
                    ) as resp:
                        if resp.status == 200:
                            app = await resp.json(content_type=None)
                            application_id = str(app.get("id") or application_id)
        except (aiohttp.ClientError, TimeoutError) as exc:
            problems.append(
                f"Discord: could not reach {settings.discord_api_base_url} ({type(exc).__name__})."
            )
        try:
            await core.ledger.check_writable()
            print(f"Ledger: {settings.database_url} is writable.")
        except Exception as exc:
            problems.append(f"Ledger: {settings.database_url} is not writable ({exc}).")
    if application_id:
        print(
            "Invite URL: https://discord.com/oauth2/authorize"
            f"?client_id={application_id}&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}"
        )
    if problems:
        print("\nProblems found:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("Everything looks right.")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot", description="kontext-bot")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sub.add_parser("check", help="check the configuration, KIE and Discord credentials")
    sync_parser = sub.add_parser("sync", help="sync the slash commands now")
    sync_parser.add_argument("--guild", type=int, default=None, help="sync to this server only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    command = args.command or "run"
    if command == "check":
        return asyncio.run(check(settings))
    if command == "sync":
        return asyncio.run(sync(settings, args.guild))
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
