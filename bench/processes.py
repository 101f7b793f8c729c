"""Several processes: 3 bot processes on one PostgreSQL ledger, one of them killed mid-run,
beside one process on SQLite, both serving the same 1,000 /imagine in 10,000 servers.

The bot is in 10,000 servers of the fake Discord, so it needs at least 4 shards (Discord closes
a shard with more than 2,500 servers, 4011): SHARD_COUNT=6, split 0,1 / 2,3 / 4,5 between the
three processes (PROCESS_NAME bench-a, bench-b, bench-c; one KIE key, so the simulator's create
limit is one account's). 1,000 commands from 100 members are spread over servers on every
shard; once all are answered, bench-a is killed (SIGKILL) while it still holds open tasks.

Reports per run: delivered (and twice), tasks created twice at KIE, time until all were
delivered, KIE generate and record-info calls, KIE 429s (any endpoint), Discord 429s, peak RSS
(VmHWM) per process, and for the kill: the killed process's open tasks and the takeover time
(kill → the last of them delivered; the others wait out TASK_LEASE_SECONDS first).

    .venv/bin/python -m bench.processes                   # ~5 min: both runs
    .venv/bin/python -m bench.processes --only postgres   # ~3 min
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.harness import (
    BotProcess,
    LagSampler,
    Rig,
    machine,
    ms,
    pct,
    setup_logging,
    table,
    vm_hwm_mb,
)
from bot.kie_sim import SimConfig

# isort: split
# bench.harness has put tests/ on sys.path.
from fakediscord import FakeInteraction, FakeUser
from fakediscord.model import FakeChannel
from postgres_db import fresh_database

log = logging.getLogger("bench.processes")

SERVERS = 10_000
SHARD_COUNT = 6
SPLIT = ("0,1", "2,3", "4,5")
CHANNELS_PER_SHARD = 5  # servers with a channel the members use; the rest are bare
KIE_KEY = "bench-shared-key"  # one KIE account for every process
OPEN_STATES = ["queued", "submitting", "generating", "delivering"]
IDENTIFY_GAP_SECONDS = 5.5
DEFERRED = 5  # the interaction callback type of an accepted command


@dataclass
class Process:
    name: str
    shard_ids: str | None
    bot: BotProcess
    peak_rss_mb: float = float("nan")
    lag: LagSampler | None = None


@dataclass
class Outcome:
    """What one run measured."""

    label: str
    processes: list[Process]
    submitted_s: float = 0.0
    all_delivered_s: float = float("nan")
    delivered: int = 0
    twice: int = 0
    refused: int = 0
    created_twice: int = 0
    generates: int = 0
    record_infos: int = 0
    kie_429s: int = 0
    discord_429s: int = 0
    accepted: int = 0
    late: int = 0  # answered after Discord's 3 s (10062): refused by Discord, nothing started
    rule_breaks: list[str] = field(default_factory=list)
    victim_tokens: list[str] = field(default_factory=list)
    victim_states: dict[str, int] = field(default_factory=dict)
    victim_at_kie: list[str] = field(default_factory=list)  # generating/delivering at the kill
    released_s: float = float("nan")  # kill → no open task leased to the killed process
    first_takeover_s: float = float("nan")
    at_kie_done_s: float = float("nan")  # kill → the last of those already at KIE delivered
    takeover_s: float = float("nan")
    bench_lag_p99: float = float("nan")  # the benchmark process's own loop lag (fake + sim)


def spread_servers(rig: Rig) -> list[FakeChannel]:
    """CHANNELS_PER_SHARD servers with a channel on each shard, then bare servers up to
    SERVERS (their ids spread evenly over the shards: ~1,667 per shard)."""
    channels = [
        rig.fake.add_guild(f"shard {s} server {i}", shard=(s, SHARD_COUNT))
        for s in range(SHARD_COUNT)
        for i in range(CHANNELS_PER_SHARD)
    ]
    rig.fake.add_guilds(SERVERS - len(rig.fake.guild_ids()))
    assert len(rig.fake.guild_ids()) == SERVERS
    return channels


async def start_process(
    rig: Rig, name: str, shard_ids: str | None, env: dict[str, str], first: bool
) -> Process:
    """Like Rig.start_bot, but only the first process waits for the command sync (it happens
    once per deploy), and each waits until all its shards are connected."""
    extra = {**env, "PROCESS_NAME": name, "KIE_API_KEY": KIE_KEY}
    if shard_ids is not None:
        extra["SHARD_IDS"] = shard_ids
    bot = BotProcess(rig.fake, rig.env(**extra), rig.workdir / f"{name}.log")
    bot.ready_timeout = 120
    rig.bots.append(bot)
    before = len(rig.fake.session_shards())
    await bot.start(wait_for_sync=first)
    wanted = before + (len(shard_ids.split(",")) if shard_ids else SHARD_COUNT)
    await rig.fake.wait_until(
        lambda: len(rig.fake.session_shards()) >= wanted or not bot.running,
        120,
        what=f"every shard of {name}",
    )
    assert bot.running, bot.log_text()
    return Process(name, shard_ids, bot)


async def send_commands(
    rig: Rig, users: list[FakeUser], channels: list[FakeChannel], total: int, window: float
) -> list[FakeInteraction]:
    """``total`` /imagine spread evenly over ``window`` s, round-robin over members and servers
    (so every shard, and every process, gets its share)."""
    started = time.monotonic()
    inters = []
    for i in range(total):
        user = users[i % len(users)]
        channel = channels[i % len(channels)]
        prompt = f"procs {i} by {user.username} [sim:delay={random.uniform(10, 20):.1f}]"
        inter = await rig.fake.slash("imagine", {"prompt": prompt}, user=user, channel=channel)
        rig.by_token[inter.token] = (prompt, time.monotonic())
        rig.token_of[prompt] = inter.token
        inters.append(inter)
        await asyncio.sleep(max(0.0, started + window * (i + 1) / total - time.monotonic()))
    return inters


async def wait_written(
    rig: Rig, inters: list[FakeInteraction], db_url: str | None, limit_s: float = 60
) -> None:
    """Until the bot tried to answer every command (an answer after Discord's 3 s is refused
    with 10062 and the bot starts nothing: counted as a late answer) and, on PostgreSQL, every
    accepted one is a task row (so the kill finds every task its process held)."""
    ids = {str(i.id) for i in inters}

    def tried() -> bool:
        answered = {
            c.path.split("/")[2]
            for c in rig.fake.calls
            if c.method == "POST" and c.path.endswith("/callback")
        }
        return ids <= answered

    await rig.fake.wait_until(tried, limit_s, what="an answer to every command")
    if db_url is None:
        return
    accepted = sum(1 for i in inters if i.response_type == DEFERRED)
    conn = await asyncpg.connect(db_url, timeout=10)
    try:
        deadline = time.monotonic() + limit_s
        while await conn.fetchval("SELECT COUNT(*) FROM tasks") < accepted:
            assert time.monotonic() < deadline, "the accepted commands never became tasks"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def kill_victim(victim: Process, db_url: str, out: Outcome) -> float:
    """SIGKILL the victim and note the open tasks it held (their lease has not run out yet, so
    `owner` still names it right after the kill)."""
    assert victim.bot.proc is not None
    victim.peak_rss_mb = vm_hwm_mb(victim.bot.proc.pid)
    await victim.bot.kill()
    killed_at = time.monotonic()
    conn = await asyncpg.connect(db_url, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT interaction_token, state FROM tasks WHERE owner = $1 AND state = ANY($2)",
            victim.name,
            OPEN_STATES,
        )
    finally:
        await conn.close()
    out.victim_tokens = [str(r["interaction_token"]) for r in rows]
    out.victim_at_kie = [
        str(r["interaction_token"]) for r in rows if r["state"] in ("generating", "delivering")
    ]
    out.victim_states = dict(Counter(str(r["state"]) for r in rows))
    log.info("killed %s holding %d open tasks %s", victim.name, len(rows), out.victim_states)
    return killed_at


async def watch_release(db_url: str, victim: str, killed_at: float, out: Outcome) -> None:
    """Until no open task is leased to the killed process any more (all taken over)."""
    conn = await asyncpg.connect(db_url, timeout=10)
    try:
        sql = "SELECT COUNT(*) FROM tasks WHERE owner = $1 AND state = ANY($2)"
        while True:
            if not await conn.fetchval(sql, victim, OPEN_STATES):
                break
            await asyncio.sleep(0.2)
        out.released_s = time.monotonic() - killed_at
    finally:
        await conn.close()


async def sample_own_lag(lags: list[float]) -> None:
    """The benchmark process's loop lag (it serves the fake Discord and the simulator for every
    bot): a late wake-up here delays what the bots see and when the simulator counts a call."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(0.1)
        lags.append(time.monotonic() - before - 0.1)


async def wait_all_delivered(rig: Rig, total: int, procs: list[Process], limit_s: float) -> None:
    def done() -> bool:
        return len(rig.fake.delivered) >= total or not any(p.bot.running for p in procs)

    await rig.fake.wait_until(done, limit_s, what="every result")


def tally(rig: Rig, out: Outcome, started: float) -> None:
    delivered = rig.fake.delivered
    out.delivered = len(delivered)
    out.twice = sum(1 for calls in delivered.values() if len(calls) > 1)
    if delivered:
        out.all_delivered_s = max(calls[0].time for calls in delivered.values()) - started
    prompts = Counter(str(t.request.get("prompt")) for t in rig.sim.tasks.values())
    out.created_twice = sum(1 for n in prompts.values() if n > 1)
    out.generates = rig.local_sim.count("generate")
    out.record_infos = rig.local_sim.count("record-info")
    out.kie_429s = sum(1 for c in rig.sim.calls if c.code == 429 or c.status == 429)
    out.discord_429s = rig.discord_429s()
    out.refused = sum(
        1
        for c in rig.fake.calls
        if c.method == "POST"
        and c.path.endswith("/callback")
        and isinstance(c.json, dict)
        and c.json.get("type") == 4
    )


def bot_env(kie_rate: int, total: int, lease: int) -> dict[str, str]:
    return {
        "USER_MAX_ACTIVE_TASKS": "10",
        "USER_COOLDOWN_SECONDS": "0",
        "MAX_OPEN_TASKS": str(total),
        "KIE_MAX_CREATE_PER_10S": str(kie_rate),
        "SHARD_COUNT": str(SHARD_COUNT),
        "TASK_LEASE_SECONDS": str(lease),
    }


async def start_processes(rig: Rig, postgres: bool, env: dict[str, str]) -> list[Process]:
    layout: list[tuple[str, str | None]] = [("bench-solo", None)]
    if postgres:
        layout = list(zip(("bench-a", "bench-b", "bench-c"), SPLIT, strict=True))
    procs: list[Process] = []
    for i, (name, ids) in enumerate(layout):
        if procs:
            # Every shard is in IDENTIFY bucket 0 (max_concurrency 1): one IDENTIFY per 5 s for
            # the whole bot. Processes on one ledger take turns (since 197a27c); the gap keeps
            # the script right on older commits too.
            await asyncio.sleep(IDENTIFY_GAP_SECONDS)
        procs.append(await start_process(rig, name, ids, env, first=i == 0))
    for p in procs:
        p.lag = LagSampler(p.bot).__enter__()
    return procs


async def finish(rig: Rig, out: Outcome, started: float, killed_at: float | None) -> None:
    """Peak RSS and lag of the survivors, the tally, the takeover times; stop the survivors."""
    for p in out.processes:
        if p.lag is not None:
            p.lag.__exit__(None, None, None)
        if p.bot.running and p.bot.proc is not None:
            p.peak_rss_mb = vm_hwm_mb(p.bot.proc.pid)
    tally(rig, out, started)
    out.rule_breaks = rig.fake.violations()
    if killed_at is not None:
        delivered = rig.fake.delivered
        times = [delivered[t][0].time for t in out.victim_tokens if t in delivered]
        if times:
            out.first_takeover_s = min(times) - killed_at
        if times and len(times) == len(out.victim_tokens):
            out.takeover_s = max(times) - killed_at
        at_kie = [delivered[t][0].time for t in out.victim_at_kie if t in delivered]
        if at_kie and len(at_kie) == len(out.victim_at_kie):
            out.at_kie_done_s = max(at_kie) - killed_at
    for p in out.processes:
        if p.bot.running:
            await p.bot.stop(60, expect_code=None)


async def run(postgres: bool, args: argparse.Namespace) -> Outcome:
    total, kie_rate = args.members * args.per_member, args.kie_rate
    config = SimConfig(delay=15.0, rate_limit=kie_rate)
    out_box: list[Outcome] = []
    try:
        return await _run(postgres, args, total, kie_rate, config, out_box)
    except AssertionError as exc:
        # The rig fails a run that broke a Discord rule; this benchmark reports them instead.
        if not out_box or "Discord rules broken" not in str(exc):
            raise
        return out_box[0]


async def _run(
    postgres: bool,
    args: argparse.Namespace,
    total: int,
    kie_rate: int,
    config: SimConfig,
    out_box: list[Outcome],
) -> Outcome:
    async with (
        fresh_database() if postgres else _NoDatabase() as db_url,
        Rig(sim_config=config) as rig,
    ):
        channels = spread_servers(rig)
        users = [rig.fake.add_user(f"member{i:03d}") for i in range(args.members)]
        env = bot_env(kie_rate, total, args.lease)
        if db_url is not None:
            env["DATABASE_URL"] = db_url
        procs = await start_processes(rig, postgres, env)
        label = (
            f"PostgreSQL, {len(procs)} processes (shards {' / '.join(SPLIT)}), one killed"
            if postgres
            else f"SQLite, 1 process (all {SHARD_COUNT} shards)"
        )
        out = Outcome(label, procs)
        out_box.append(out)
        own_lags: list[float] = []
        lag_task = asyncio.create_task(sample_own_lag(own_lags))
        started = time.monotonic()
        inters = await send_commands(rig, users, channels, total, args.window)
        out.submitted_s = time.monotonic() - started
        log.info("%d commands sent in %.1f s", total, out.submitted_s)
        await wait_written(rig, inters, db_url)
        out.late = sum(1 for i in inters if not i.acknowledged)
        accepted = out.accepted = sum(1 for i in inters if i.response_type == DEFERRED)
        killed_at = None
        if db_url is not None:
            await asyncio.sleep(args.kill_after)
            killed_at = await kill_victim(procs[0], db_url, out)
            watcher = asyncio.create_task(watch_release(db_url, procs[0].name, killed_at, out))
        timeout = total / kie_rate * 10 * 1.5 + args.lease + 180
        await wait_all_delivered(rig, accepted, procs, timeout)
        await asyncio.sleep(1)  # a duplicate post would arrive now
        if killed_at is not None:
            await asyncio.wait_for(watcher, 10)
        out.bench_lag_p99 = pct(own_lags, 0.99)
        lag_task.cancel()
        await finish(rig, out, started, killed_at)
        return out


class _NoDatabase:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def row(out: Outcome, total: int, lease: int) -> list[Any]:
    rss = ", ".join(f"{p.name} {p.peak_rss_mb:.0f} MB" for p in out.processes)
    lags = [p.lag.worst for p in out.processes if p.lag is not None and p.lag.p99s]
    killed = "—"
    if len(out.victim_tokens):
        states = ", ".join(f"{n} {s}" for s, n in sorted(out.victim_states.items()))
        killed = (
            f"{len(out.victim_tokens)} ({states}): all re-leased {out.released_s:.1f} s, "
            f"first delivered {out.first_takeover_s:.1f} s, the last of those at KIE "
            f"{out.at_kie_done_s:.1f} s, the last of all {out.takeover_s:.1f} s after the kill "
            f"(lease {lease} s)"
        )
    return [
        out.label,
        f"{total} in {out.submitted_s:.0f} s",
        f"{out.delivered} / {out.accepted}",
        str(out.late),
        str(out.twice),
        str(out.created_twice),
        str(out.refused),
        f"{out.all_delivered_s:.0f} s",
        f"{out.generates} / {out.record_infos}",
        str(out.kie_429s),
        str(out.discord_429s),
        rss,
        ms(max(lags)) if lags else "—",
        ms(out.bench_lag_p99),
        killed,
    ]


HEADER = [
    "ledger, processes",
    "commands",
    "delivered / accepted",
    "answered late (10062)",
    "delivered twice",
    "created twice at KIE",
    "refused",
    "all delivered after",
    "KIE generate / record-info calls",
    "KIE 429s",
    "Discord 429s",
    "peak RSS (VmHWM) per process",
    "loop lag p99 (worst /healthz)",
    "benchmark's own loop lag p99",
    "killed process's open tasks → taken over",
]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["postgres", "sqlite"], default=None)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--per-member", type=int, default=10)
    parser.add_argument("--window", type=float, default=40.0, help="seconds to send commands")
    parser.add_argument("--kie-rate", type=int, default=200, help="creates per 10 s (account)")
    parser.add_argument("--lease", type=int, default=30, help="TASK_LEASE_SECONDS")
    parser.add_argument("--kill-after", type=float, default=2.0, help="s after the last answer")
    args = parser.parse_args()
    setup_logging()
    total = args.members * args.per_member
    rows: list[list[str]] = []
    breaks: list[str] = []
    for postgres in (True, False):
        if args.only is None or args.only == ("postgres" if postgres else "sqlite"):
            outcome = await run(postgres, args)
            rows.append(row(outcome, total, args.lease))
            breaks.extend(f"{outcome.label}: {b}" for b in outcome.rule_breaks)
    print()
    print(
        table(
            f"Several processes: {total} /imagine from {args.members} members in {SERVERS:,} "
            f"servers ({SHARD_COUNT} shards), KIE {args.kie_rate} creates / 10 s for the account, "
            "10-20 s tasks, Discord buckets on",
            HEADER,
            rows,
        )
    )
    print("Discord rules broken:" if breaks else "Discord rules broken: none")
    for line in breaks:
        print(f"  {line}")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    asyncio.run(main())
