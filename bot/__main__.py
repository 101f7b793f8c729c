"""`python -m bot [run|check|sync [--guild ID]|block|unblock|blocks]`: the command line and the
composition root."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot import net, operator_cli
from bot.config import ConfigError, Settings, database_url_for_display, load_settings
from bot.kie import KieAuthError, KieClient, KieError, KieTransportError
from bot.kie_sim import KieSimulator, SimConfig
from bot.ledger import Ledger, LedgerError, open_ledger
from bot.logs import configure_logging
from bot.metrics import Metrics
from bot.supervisor import WorkSet
from cogs.client import (
    IntentsRefused,
    KontextBot,
    ShardingRefused,
    TokenRefused,
    apply_discord_endpoints,
    login_refusals,
)
from cogs.modlog import DiscordModLog
from cogs.publisher import DiscordPublisher

log = logging.getLogger("bot")

USER_AGENT = "kontext-bot/0.1 (+https://github.com/kontext-bot/kontext-bot)"
# View Channel, Send Messages, Embed Links, Attach Files, Read Message History, Send Messages in
# Threads: what the bot needs to post a result or a failure as a new message when the interaction
# reply is gone or its token expired (the reply itself needs no permission).
INVITE_PERMISSIONS = 1024 | 2048 | 16384 | 32768 | 65536 | (1 << 38)
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
            request_timeout=settings.kie_request_timeout_seconds,
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
        publisher=lambda client: DiscordPublisher(
            client, core.ledger, core.metrics, answers=client.answers
        ),
        modlog=DiscordModLog,
    )


async def run(settings: Settings) -> int:
    apply_discord_endpoints(settings)
    try:
        return await _run(settings)
    except LedgerError as exc:
        log.error("cannot use the ledger: %s", exc)
        return 1


async def _run(settings: Settings) -> int:
    async with open_core(settings) as core:
        bot = _bot(core)
        loop = asyncio.get_running_loop()
        signalled = WorkSet()  # the shutdown a signal starts: owned, and a failure logged
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: signalled.spawn(bot.shutdown(), what="shutdown"))
        try:
            async with bot:
                with login_refusals():
                    await bot.serve(settings.discord_token.get())
        except TokenRefused as exc:
            if exc.at_gateway:
                log.error(
                    "Discord's gateway refused the token (close code 4004): check DISCORD_TOKEN"
                )
            else:
                log.error("Discord refused the token (401 Unauthorized): check DISCORD_TOKEN")
            return 2
        except IntentsRefused:
            log.error("Discord refused the intents this bot asked for")
            return 1
        except ShardingRefused as exc:
            # Retrying cannot help: the same shard layout would be refused again.
            log.error("%s", exc.advice(settings.shard_count))
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
                with login_refusals():
                    await bot.login(settings.discord_token.get())
            except TokenRefused:
                print("Discord refused the token: check DISCORD_TOKEN.", file=sys.stderr)
                return 1
            count = await bot.sync_commands(force=True, guild_id=guild_id)
    if count is None:
        print("Discord refused the command sync; see the log above.", file=sys.stderr)
        return 1
    where = f"to guild {guild_id}" if guild_id else "globally (new commands may take a while)"
    print(f"Synced {count} command(s) {where}.")
    return 0


async def check(settings: Settings) -> int:
    """Validate the configuration and both credentials; print the invite URL. Exit 1 on problems."""
    problems: list[str] = []
    notes: list[str] = []
    print(
        f"Configuration: loaded (LOG_LEVEL={settings.log_level}, LOG_FORMAT={settings.log_format})."
    )
    if settings.allow_private_urls:
        notes.append(
            "ALLOW_PRIVATE_URLS=true lets downloads reach private addresses: local use only."
        )
    if settings.public_base_url and settings.kie_webhook_hmac_key is None:
        notes.append(
            "PUBLIC_BASE_URL is set without KIE_WEBHOOK_HMAC_KEY: callbacks are not signed."
        )
    problems.extend(await _check_kie(settings))
    application_id, discord_problems = await _check_discord(settings)
    problems.extend(discord_problems)
    problems.extend(await _check_ledger(settings))
    if application_id:
        print(f"Invite URL: {invite_url(application_id)}")
    for note in notes:
        print(f"Note: {note}")
    if problems:
        print("\nProblems found:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("Everything looks right.")
    return 0


def invite_url(application_id: str) -> str:
    return (
        "https://discord.com/oauth2/authorize"
        f"?client_id={application_id}&scope=bot+applications.commands"
        f"&permissions={INVITE_PERMISSIONS}"
    )


async def _check_kie(settings: Settings) -> list[str]:
    if settings.simulator:
        print("KIE: KIE_API_BASE_URL=simulator, the built-in simulator answers (no key needed).")
        return []
    base = settings.kie_api_base_url
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), headers={"User-Agent": USER_AGENT}
    ) as http:
        kie = KieClient(
            http,
            settings.kie_api_key.get(),
            base_url=base,
            upload_base_url=settings.kie_upload_base_url,
            user_agent=USER_AGENT,
        )
        try:
            balance = await kie.credits()
        except KieAuthError as exc:
            return [
                f"KIE: {base} refused the API key (code {exc.code}). "
                "Copy a valid key from https://kie.ai/api-key into KIE_API_KEY."
            ]
        except KieTransportError:
            return [f"KIE: could not reach {base}. Check KIE_API_BASE_URL and the network."]
        except KieError as exc:
            return [f"KIE: the credit check at {base} failed with code {exc.code}."]
    print(f"KIE: the API key works; the account has {balance:g} credits.")
    if balance < settings.low_credit_threshold:
        print(f"KIE: that is under LOW_CREDIT_THRESHOLD ({settings.low_credit_threshold:g}).")
    return []


async def _check_discord(settings: Settings) -> tuple[str | None, list[str]]:
    base = settings.discord_api_base_url
    headers = {"Authorization": f"Bot {settings.discord_token.get()}", "User-Agent": USER_AGENT}
    application_id: str | None = None
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=20), headers=headers
        ) as http:
            async with http.get(f"{base}/users/@me") as resp:
                if resp.status == 401:
                    return None, [
                        "Discord: the bot token was refused (401 Unauthorized). Open the "
                        "Developer Portal -> your application -> Bot -> Reset Token, and put the "
                        "new token in DISCORD_TOKEN."
                    ]
                if resp.status != 200:
                    return None, [f"Discord: {base}/users/@me answered HTTP {resp.status}."]
                me = await resp.json(content_type=None)
            application_id = str(me.get("id"))
            print(
                f"Discord: the token works; logged in as {me.get('username')} ({application_id})."
            )
            async with http.get(f"{base}/oauth2/applications/@me") as resp:
                if resp.status == 200:
                    app = await resp.json(content_type=None)
                    application_id = str(app.get("id") or application_id)
            async with http.get(f"{base}/gateway/bot") as resp:
                gateway = await resp.json(content_type=None) if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError) as exc:
        return None, [f"Discord: could not reach {base} ({type(exc).__name__})."]
    return application_id, _check_shards(settings, gateway)


def _check_shards(settings: Settings, gateway: dict[str, Any] | None) -> list[str]:
    """Print Discord's shard recommendation and this process's shards (GET /gateway/bot)."""
    if not gateway:
        return ["Discord: GET /gateway/bot did not answer; the shard count cannot be checked."]
    recommended = int(gateway["shards"])
    count = settings.shard_count or recommended
    ids = settings.shard_ids or tuple(range(count))
    limit = gateway.get("session_start_limit") or {}
    print(
        f"Discord: recommends {recommended} gateway shard(s); SHARD_COUNT="
        f"{settings.shard_count or 'auto'} runs {len(ids)} of {count} here; "
        f"{limit.get('remaining', '?')} session start(s) left today "
        f"(max_concurrency {limit.get('max_concurrency', '?')})."
    )
    if max(ids) >= count:
        return [f"SHARD_IDS: shard {max(ids)} is past Discord's recommendation of {count}."]
    return []


async def _check_ledger(settings: Settings) -> list[str]:
    shown = database_url_for_display(settings.database_url)
    ledger = open_ledger(settings.database_url)
    try:
        await ledger.open()
        try:
            await ledger.check_writable()
        finally:
            await ledger.close()
    except LedgerError as exc:
        return [f"Ledger: {shown} cannot be written ({exc})."]
    print(f"Ledger: {shown} is writable.")
    return []


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot", description="kontext-bot")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sub.add_parser("check", help="check the configuration, KIE and Discord credentials")
    sync_parser = sub.add_parser("sync", help="sync the slash commands now")
    sync_parser.add_argument("--guild", type=int, default=None, help="sync to this server only")
    operator_cli.add_parsers(sub)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.command == operator_cli.MIGRATE_LEDGER:
        return asyncio.run(operator_cli.migrate_ledger(args))
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(
        settings.log_level,
        settings.log_format,
        settings.secret_values(),
        discord_level=settings.discord_log_level,
    )
    command = args.command or "run"
    if command == "check":
        return asyncio.run(check(settings))
    if command == "sync":
        return asyncio.run(sync(settings, args.guild))
    if command in operator_cli.COMMANDS:
        return asyncio.run(operator_cli.run(settings, args))
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
