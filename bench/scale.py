"""Scale: 1,000 /imagine from 100 members within a minute, through one bot process.

Reports: all delivered and none twice, KIE 429s, Discord 429s (the fake enforces Discord's
buckets), Discord edits per task, peak resident memory (VmHWM), event-loop lag p99 (sampled
from /healthz), and fairness (a member's first command to their first and last image).

    .venv/bin/python -m bench.scale                 # KIE's default 20 creates per 10 s (~9 min)
    .venv/bin/python -m bench.scale --kie-rate 200  # an account with a raised limit
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import time

from bench.harness import (
    LagSampler,
    Rig,
    machine,
    ms,
    pct,
    result_config,
    setup_logging,
    table,
    vm_hwm_mb,
)
from bot.kie_sim import SimConfig

log = logging.getLogger("bench.scale")


async def run(
    kie_rate: int, members: int, per_member: int, window: float, small: bool
) -> list[str]:
    total = members * per_member
    config = SimConfig(delay=15.0, rate_limit=kie_rate, **result_config(small))
    async with Rig(sim_config=config) as rig:
        users = [rig.fake.add_user(f"member{i:03d}") for i in range(members)]
        bot = await rig.start_bot(
            USER_MAX_ACTIVE_TASKS=str(per_member),
            USER_COOLDOWN_SECONDS="0",
            MAX_OPEN_TASKS=str(total),
            KIE_MAX_CREATE_PER_10S=str(kie_rate),
        )
        assert bot.proc is not None
        first_cmd: dict[int, float] = {}
        user_tokens: dict[int, list[str]] = {u.id: [] for u in users}
        started = time.monotonic()
        with LagSampler(bot) as lag:
            for i in range(total):
                user = users[i % members]
                prompt = f"scale {i} by {user.username} [sim:delay={random.uniform(10, 20):.1f}]"
                inter = await rig.imagine(prompt, user)
                first_cmd.setdefault(user.id, time.monotonic())
                user_tokens[user.id].append(inter.token)
                # Spread the commands evenly over the window.
                await asyncio.sleep(max(0.0, started + window * (i + 1) / total - time.monotonic()))
            submitted = time.monotonic() - started
            log.info("%d commands sent in %.1f s", total, submitted)
            timeout = total / kie_rate * 10 * 1.5 + 180
            await rig.fake.wait_until(
                lambda: len(rig.fake.delivered) >= total or not bot.running,
                timeout,
                what="every result",
            )
            elapsed = time.monotonic() - started
            hwm = vm_hwm_mb(bot.proc.pid)
        await asyncio.sleep(1)  # any duplicate post would arrive now
        delivered = rig.fake.delivered
        twice = sum(1 for calls in delivered.values() if len(calls) > 1)
        firsts, lasts = [], []
        for uid, tokens in user_tokens.items():
            times = sorted(delivered[t][0].time for t in tokens if delivered.get(t))
            if times:
                firsts.append(times[0] - first_cmd[uid])
                lasts.append(times[-1] - first_cmd[uid])
        edits = [rig.edits(t) for t in rig.token_of.values()]
        refusals = sum(
            1
            for c in rig.fake.calls
            if c.method == "POST"
            and c.path.endswith("/callback")
            and isinstance(c.json, dict)
            and c.json.get("type") == 4
        )
        sizes = [len(calls[0].files[0].data) for calls in delivered.values() if calls]
        log.info("result size: %.2f MB", max(sizes, default=0) / 1e6)
        await bot.stop(60, expect_code=None)
        return [
            f"{kie_rate} / 10 s" + (" (KIE default)" if kie_rate == 20 else " (raised)"),
            f"{total} in {submitted:.0f} s",
            f"{len(delivered)} / {total}",
            str(twice),
            str(refusals),
            f"{elapsed:.0f} s",
            str(rig.kie_429s()),
            str(rig.discord_429s()),
            f"{statistics.mean(edits):.1f} (max {max(edits)})",
            f"{hwm:.0f} MB",
            ms(lag.worst),
            f"{max(firsts, default=float('nan')):.0f} s (median {pct(firsts, 0.5):.0f} s)",
            f"{max(lasts, default=float('nan')):.0f} s",
        ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kie-rate", type=int, nargs="+", default=[20], help="creates per 10 s")
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--per-member", type=int, default=10)
    parser.add_argument("--window", type=float, default=60.0, help="seconds to send commands")
    parser.add_argument(
        "--small-results", action="store_true", help="~30 KB results instead of ~1 MB"
    )
    args = parser.parse_args()
    setup_logging()
    rows = [
        await run(rate, args.members, args.per_member, args.window, args.small_results)
        for rate in args.kie_rate
    ]
    print()
    print(
        table(
            f"Scale: {args.members * args.per_member} /imagine from {args.members} members "
            f"within {args.window:g} s (10-20 s tasks, "
            f"{'~30 KB' if args.small_results else '~1 MB'} results, Discord buckets on)",
            [
                "KIE create limit",
                "commands",
                "delivered",
                "delivered twice",
                "refused",
                "all delivered after",
                "KIE 429s",
                "Discord 429s",
                "PATCHes of the reply / task",
                "bot peak RSS (VmHWM)",
                "loop lag p99 (worst /healthz)",
                "longest wait for a member's 1st image",
                "longest wait for a member's last image",
            ],
            rows,
        )
    )
    print(f"machine: {machine()}")


if __name__ == "__main__":
    asyncio.run(main())
