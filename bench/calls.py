"""KIE record-info calls and Discord edits per task, for 5-s, 20-s and 60-s tasks.

One bot per (task length, mode), all running at once: polling (default POLL_INTERVAL_SECONDS)
and callbacks. Each bot first runs a cold batch (no duration estimate yet: the adaptive poller
needs three finished tasks), then a warm batch of the same length.

    .venv/bin/python -m bench.calls [--cold 3] [--warm 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from bench.harness import Rig, machine, ms, pct, setup_logging, table
from bot.kie_sim import SimConfig

DELAYS = (5.0, 20.0, 60.0)


async def run_bot(delay: float, callbacks: bool, cold: int, warm: int) -> tuple[list[object], int]:
    """One rig (fake Discord + simulator) per bot: the fake serves one gateway at a time."""
    async with Rig(sim_config=SimConfig(delay=delay, rate_limit=1000)) as rig:
        row = await measure(rig, delay, callbacks, cold, warm)
        return row, rig.discord_429s() + rig.kie_429s()


async def measure(rig: Rig, delay: float, callbacks: bool, cold: int, warm: int) -> list[object]:
    mode = "callbacks" if callbacks else "polling"
    bot = await rig.start_bot(callbacks=callbacks, USER_MAX_ACTIVE_TASKS="10")
    user = rig.fake.add_user(f"calls-{mode}-{delay:g}")
    out: list[object] = [f"{delay:g} s", mode]
    try:
        for batch, n in (("cold", cold), ("warm", warm)):
            prompts = [f"{mode} {delay:g}s {batch} {i} [sim:delay={delay:g}]" for i in range(n)]
            for prompt in prompts:
                await rig.imagine(prompt, user)
            await rig.fake.wait_until(
                rig.all_delivered(prompts),
                delay * 3 + 60,
                what=f"{mode} {delay} {batch}",
            )
            kie = [len(rig.record_infos[rig.sim_task_for(p).task_id]) for p in prompts]
            edits = [rig.edits(rig.token_of[p]) for p in prompts]
            seen = [d for d in map(lambda p: detection(rig, p), prompts) if d == d]  # not NaN
            out.append(f"{statistics.mean(kie):.1f} (max {max(kie)}), seen {ms(pct(seen, 0.5))}")
            if batch == "warm":
                out.append(f"{statistics.mean(edits):.1f} (max {max(edits)})")
    finally:
        await bot.stop(30, expect_code=None)
    return out


def detection(rig: Rig, prompt: str) -> float:
    """Seconds from the simulator finishing the task to the record-info call that saw it (0
    when a callback's confirmation saw it)."""
    task_id = rig.sim_task_for(prompt).task_id
    done = rig.done_at[task_id]
    seen = [r.at for r in rig.record_infos[task_id] if r.flag == 1 and r.at >= done]
    return seen[0] - done if seen else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", type=int, default=3, help="tasks in the cold batch")
    parser.add_argument("--warm", type=int, default=5, help="tasks in the warm batch")
    args = parser.parse_args()
    setup_logging()
    results = await asyncio.gather(
        *(
            run_bot(delay, callbacks, args.cold, args.warm)
            for delay in DELAYS
            for callbacks in (False, True)
        )
    )
    rows = [row for row, _ in results]
    print()
    print(
        table(
            "KIE record-info calls and Discord edits per task "
            f"(cold: first {args.cold} tasks, no estimate; warm: next {args.warm})",
            [
                "task length",
                "mode",
                "record-info / task, cold (detection p50)",
                "record-info / task, warm (detection p50)",
                "Discord PATCHes of the reply / task, warm (status edits + result)",
            ],
            [list(map(str, r)) for r in rows],
        )
    )
    print(f"Discord + KIE 429s: {sum(n for _, n in results)}")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    asyncio.run(main())
