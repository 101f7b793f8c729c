"""Start-up: process start to ready (the fake sees IDENTIFY; /healthz answers 200).

With an empty ledger, and with 1,000 open tasks to resume: the bot takes 1,000 /imagine from
100 members (60-minute simulated tasks, a raised KIE create limit so that takes seconds), is
killed with SIGKILL, and restarts on the same ledger. While the 1,000 tasks are open, the
restarted bot's resident memory and event-loop lag are sampled for a minute.

    .venv/bin/python -m bench.startup [--open 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import aiohttp

from bench.harness import (
    BotProcess,
    LagSampler,
    Rig,
    healthz,
    machine,
    ms,
    result_config,
    setup_logging,
    table,
    vm_hwm_mb,
    vm_rss_mb,
)
from bot.kie_sim import SimConfig

log = logging.getLogger("bench.startup")


async def timed_start(rig: Rig, bot: BotProcess) -> tuple[float, float]:
    """(seconds to IDENTIFY, seconds to /healthz 200) from the moment the process is spawned."""
    identifies = len(rig.fake.identifies)
    start = time.monotonic()
    starting = asyncio.create_task(bot.start())
    t_identify = t_health = float("nan")
    async with aiohttp.ClientSession() as session:
        while t_identify != t_identify or t_health != t_health:
            now = time.monotonic()
            if t_identify != t_identify and len(rig.fake.identifies) > identifies:
                t_identify = now - start
            if t_health != t_health and bot.running:
                status, _ = await healthz(session, bot)
                if status == 200:
                    t_health = time.monotonic() - start
            if now - start > 120:
                break
            await asyncio.sleep(0.01)
    await starting
    return t_identify, t_health


async def finish_all(rig: Rig, bot: BotProcess, created: set[str]) -> list[str]:
    """Every resumed task finishes at once: the bot delivers them all (each result ~1 MB)."""
    assert bot.proc is not None
    start = time.monotonic()
    with LagSampler(bot) as lag:
        for task_id in created:
            rig.local_sim.complete(task_id)
        await rig.fake.wait_until(
            lambda: sum(1 for t in rig.by_token if rig.fake.delivered.get(t)) >= len(created),
            900,
            what="every result delivered",
        )
        took = time.monotonic() - start
    sizes = [len(calls[0].files[0].data) for calls in rig.fake.delivered.values() if calls]
    return [
        f"those {len(created)} finish at once ({max(sizes, default=0) / 1e6:.2f} MB results)",
        "—",
        "—",
        f"all delivered after {took:.1f} s",
        f"peak {vm_hwm_mb(bot.proc.pid):.0f} MB",
        ms(lag.worst),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--open", type=int, default=1000, help="open tasks to resume")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds to sample after restart")
    parser.add_argument(
        "--small-results", action="store_true", help="~30 KB results instead of ~1 MB"
    )
    args = parser.parse_args()
    setup_logging()
    rows = []
    config = SimConfig(delay=3600.0, rate_limit=100_000, **result_config(args.small_results))
    async with Rig(sim_config=config) as rig:
        # Empty ledger, three times (a fresh ledger each).
        for i in range(3):
            env = rig.env()
            bot = BotProcess(rig.fake, env, rig.workdir / f"empty-{i}.log")
            rig.bots.append(bot)
            t_id, t_health = await timed_start(rig, bot)
            rows.append([f"empty ledger #{i + 1}", ms(t_id), ms(t_health), "—", "—", "—"])
            await bot.stop(30, expect_code=None)

        # 1,000 open tasks.
        members = max(1, args.open // 10)
        users = [rig.fake.add_user(f"m{i:03d}") for i in range(members)]
        bot = await rig.start_bot(
            USER_MAX_ACTIVE_TASKS="10",
            MAX_OPEN_TASKS=str(args.open),
            KIE_MAX_CREATE_PER_10S="1000",
            TASK_TIMEOUT_SECONDS="7200",
        )
        for i in range(args.open):
            await rig.imagine(f"open task {i}", users[i % members])
            if i % 50 == 49:
                await asyncio.sleep(0.2)
        await rig.fake.wait_until(
            lambda: rig.local_sim.count("generate") >= args.open, 300, what="every task submitted"
        )
        await asyncio.sleep(3)  # the last GENERATING transitions reach the ledger
        assert bot.proc is not None
        await bot.kill()
        created = set(rig.sim.tasks)
        polls_before = {t: len(rig.record_infos[t]) for t in created}
        t_id, t_health = await timed_start(rig, bot)
        restart = time.monotonic()
        await rig.fake.wait_until(
            lambda: all(len(rig.record_infos[t]) > polls_before[t] for t in created),
            300,
            what="every resumed task checked",
        )
        all_checked = time.monotonic() - restart + t_health
        with LagSampler(bot) as lag:
            await asyncio.sleep(args.hold)
        assert bot.proc is not None
        rss, hwm = vm_rss_mb(bot.proc.pid), vm_hwm_mb(bot.proc.pid)
        rows.append(
            [
                f"{len(created)} open tasks, after SIGKILL",
                ms(t_id),
                ms(t_health),
                f"{all_checked:.1f} s",
                f"{rss:.0f} MB (peak {hwm:.0f} MB)",
                ms(lag.worst),
            ]
        )
        rows.append(await finish_all(rig, bot, created))
        await bot.stop(60, expect_code=None)
    print()
    print(
        table(
            "Start-up: process spawned → ready",
            [
                "ledger",
                "→ IDENTIFY",
                "→ /healthz 200",
                "→ every open task checked with KIE",
                f"RSS over the next {args.hold:g} s",
                "loop lag p99 (worst /healthz)",
            ],
            rows,
        )
    )
    print(f"Discord 429s: {rig.discord_429s()}, KIE 429s: {rig.kie_429s()}")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    asyncio.run(main())
