"""Issue 16's delivery row, and how far any design can take it on this machine.

    python -m bench.bound [--rounds 3] [--out bench/results/delivery-bound.txt]   # ~5 min

Each round runs bench.compare's delivery measurement (a 1 MB result, KIE's callback → the
image read by the fake Discord) for four bots, one after the other on the same rig:

- the naive bot (bench/naive_bot.py, ``callback``): record-info, then the download, then
  the post: the yardstick;
- ``callback-parallel``: the same bot asking record-info and downloading the callback's URL
  at once, as this bot does;
- ``callback-streamed``: besides, its download streamed into the upload as it arrives,
  the last 1 KB held until record-info confirms the URL: the issue's "download streamed
  straight into the upload";
- this bot, with callbacks.

The idealised two do nothing but their requests: no ledger lookup of the callback, no state
written before the post, no bookkeeping. Their ratio to the naive bot is what overlapping
alone can reach here; this bot's work before the post comes on top of it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from bench.compare import StartBot, bot_starter, checkout, delivery, naive_starter, raw
from bench.harness import REPO_ROOT, machine, setup_logging

TARGET = 0.9


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--delay", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/results/delivery-bound.txt")
    args = parser.parse_args()
    setup_logging()
    started = time.monotonic()
    bots: dict[str, StartBot] = {
        "naive (record-info, download, post)": naive_starter("callback"),
        "naive, record-info and download at once": naive_starter("callback-parallel"),
        "naive, and download streamed into the upload": naive_starter("callback-streamed"),
        "this bot": bot_starter(callbacks=True, USER_MAX_ACTIVE_TASKS=str(args.tasks)),
    }
    samples: dict[str, list[list[float]]] = {name: [] for name in bots}
    lines = [
        f"Callback → image in Discord, 1 MB, p50 of {args.tasks} tasks per bot and round "
        f"(ratio to the naive bot of the same round; target ≤ {TARGET}×)",
        "",
    ]
    for round_ in range(1, args.rounds + 1):
        for name, start in bots.items():
            samples[name].append((await delivery(start, args.tasks, args.delay))["lat"])
        p50s = {name: statistics.median(rounds[-1]) for name, rounds in samples.items()}
        naive = p50s[next(iter(bots))]
        lines.append(f"round {round_}:")
        lines += [
            f"  {name:46s} {p50 * 1000:5.1f} ms  {p50 / naive:.2f}×" for name, p50 in p50s.items()
        ]
    commit = await asyncio.to_thread(checkout)
    lines += [
        "",
        "Raw samples:",
        *(
            raw(f"{name}, round {i}", values)
            for name, rounds in samples.items()
            for i, values in enumerate(rounds, 1)
        ),
        f"commit: {commit}",
        f"machine: {machine()}",
        f"took {time.monotonic() - started:.0f} s",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
