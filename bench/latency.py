"""Delivery latency: from the simulator finishing a task to the image reaching the fake Discord.

Side by side in one run: the bot polling (default POLL_INTERVAL_SECONDS), the bot with KIE
callbacks, a naive client that polls record-info every 3 s (KIE's quickstart) and then downloads
and uploads the bytes, and the floor (download + upload alone).

    .venv/bin/python -m bench.latency [--tasks 20] [--delay 6]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from typing import Any

import aiohttp

from bench.harness import Rig, machine, ms, pct, setup_logging, table
from bot.kie_sim import SimConfig

log = logging.getLogger("bench.latency")
RESULT_LONG_SIDE = 1920  # 16:9 JPEG with noise: about 1 MB


async def upload(session: aiohttp.ClientSession, rig: Rig, data: bytes, name: str) -> None:
    """Post ``data`` as a file to a fresh channel of the fake (its own rate-limit bucket)."""
    channel = rig.fake.add_channel(f"up-{name[:20]}")
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", '{"content": ""}')
    form.add_field("files[0]", data, filename=name, content_type="image/jpeg")
    async with session.post(
        f"{rig.fake.api_url}/channels/{channel.id}/messages",
        data=form,
        headers={"Authorization": f"Bot {rig.fake.token}"},
    ) as resp:
        resp.raise_for_status()
        await resp.read()


async def naive_task(session: aiohttp.ClientSession, rig: Rig, prompt: str) -> None:
    """KIE's quickstart loop: create, poll every 3 s, download, upload to Discord."""
    headers = {"Authorization": "Bearer naive-key"}
    async with session.post(
        f"{rig.sim.base_url}/api/v1/flux/kontext/generate",
        json={"prompt": prompt, "aspectRatio": "16:9"},
        headers=headers,
    ) as resp:
        task_id = (await resp.json())["data"]["taskId"]
    while True:
        await asyncio.sleep(3)
        async with session.get(
            f"{rig.sim.base_url}/api/v1/flux/kontext/record-info",
            params={"taskId": task_id},
            headers=headers,
        ) as resp:
            data = (await resp.json())["data"]
        if data["successFlag"] == 1:
            break
    async with session.get(data["response"]["resultImageUrl"]) as resp:
        image = await resp.read()
    await upload(session, rig, image, f"naive-{task_id}.jpg")


async def floor(session: aiohttp.ClientSession, rig: Rig, url: str, n: int) -> list[float]:
    """Download the result from the simulator and upload the same bytes: nothing else."""
    out = []
    for i in range(n):
        start = time.monotonic()
        async with session.get(url) as resp:
            data = await resp.read()
        await upload(session, rig, data, f"floor-{i}.jpg")
        out.append(time.monotonic() - start)
    return out


def jitter(delay: float) -> str:
    """A prompt marker giving the task a simulated time uniformly within ±25 % of ``delay``."""
    return f"[sim:delay={random.uniform(0.75 * delay, 1.25 * delay):.2f}]"


async def bot_phase(
    rig: Rig, session: aiohttp.ClientSession, *, callbacks: bool, tasks: int, delay: float
) -> dict[str, Any]:
    mode = "callbacks" if callbacks else "polling"
    bot = await rig.start_bot(callbacks=callbacks, USER_MAX_ACTIVE_TASKS="10")
    try:
        user = rig.fake.add_user(f"lat-{mode}")
        # Warm-up: the adaptive poller needs three finished tasks for its estimate.
        warm = [f"{mode} warm-up {i} {jitter(delay)}" for i in range(4)]
        for prompt in warm:
            await rig.imagine(prompt, user)
        await rig.fake.wait_until(
            lambda: all(rig.by_token_done(p) for p in warm), 120, what="warm-up"
        )
        prompts = [f"{mode} latency {i} {jitter(delay)}" for i in range(tasks)]
        naive = []
        for i, prompt in enumerate(prompts):
            await rig.imagine(prompt, user)
            naive_prompt = f"naive {mode} {i} {jitter(delay)}"
            naive.append(asyncio.create_task(naive_task(session, rig, naive_prompt)))
            await asyncio.sleep(delay / 3)
        await rig.fake.wait_until(
            lambda: all(rig.by_token_done(p) for p in prompts), 120, what=f"{mode} deliveries"
        )
        await asyncio.gather(*naive)
    finally:
        await bot.stop(30, expect_code=None)
    latencies, detections, sizes = [], [], []
    results = rig.results()
    for token, (prompt, _) in rig.by_token.items():
        if prompt not in prompts:
            continue
        task = rig.sim_task_for(prompt)
        call = results[token][0]
        done = rig.done_at[task.task_id]
        latencies.append(call.time - done)
        sizes.append(len(call.files[0].data))
        seen = [r.at for r in rig.record_infos[task.task_id] if r.flag == 1 and r.at >= done]
        if seen:
            detections.append(seen[0] - done)
    return {"mode": mode, "lat": latencies, "detect": detections, "sizes": sizes}


def naive_latencies(rig: Rig) -> tuple[list[float], list[float]]:
    out: list[float] = []
    detections: list[float] = []
    for call in rig.fake.find_calls("POST", r"^/channels/\d+/messages$", lambda c: bool(c.files)):
        name = call.files[0].filename or ""
        if name.startswith("naive-"):
            task_id = name[len("naive-") : -len(".jpg")]
            done = rig.done_at[task_id]
            out.append(call.time - done)
            seen = [r.at for r in rig.record_infos[task_id] if r.flag == 1 and r.at >= done]
            detections.extend(t - done for t in seen[:1])
    return out, detections


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20, help="measured tasks per mode")
    parser.add_argument("--delay", type=float, default=6.0, help="simulated generation time (s)")
    args = parser.parse_args()
    setup_logging()
    config = SimConfig(
        delay=args.delay,
        result_noise=True,
        result_long_side=RESULT_LONG_SIDE,
        rate_limit=1000,
    )
    async with Rig(sim_config=config) as rig, aiohttp.ClientSession() as session:
        phases = []
        for callbacks in (False, True):
            phases.append(
                await bot_phase(
                    rig, session, callbacks=callbacks, tasks=args.tasks, delay=args.delay
                )
            )
        some_task = next(t for t in rig.sim.tasks.values() if t.result_url)
        floors = await floor(session, rig, str(some_task.result_url), args.tasks)
        naive, naive_detect = naive_latencies(rig)
        size = phases[0]["sizes"][0] if phases[0]["sizes"] else 0
        rows = []
        for phase in phases:
            lat, det = phase["lat"], phase["detect"]
            rows.append(
                [
                    f"bot, {phase['mode']}",
                    len(lat),
                    ms(pct(lat, 0.5)),
                    ms(pct(lat, 0.95)),
                    ms(max(lat, default=float("nan"))),
                    ms(pct(det, 0.5)),
                ]
            )
        rows.append(
            [
                "naive client, record-info every 3 s",
                len(naive),
                ms(pct(naive, 0.5)),
                ms(pct(naive, 0.95)),
                ms(max(naive, default=float("nan"))),
                ms(pct(naive_detect, 0.5)),
            ]
        )
        rows.append(
            [
                "floor: download + upload only",
                len(floors),
                ms(pct(floors, 0.5)),
                ms(pct(floors, 0.95)),
                ms(max(floors)),
                "0",
            ]
        )
        print()
        print(
            table(
                f"Delivery latency, simulator done → image at the fake Discord "
                f"({size / 1e6:.2f} MB JPEG, {args.delay:g} s ± 25 % tasks, Discord buckets on)",
                ["path", "tasks", "p50", "p95", "max", "detection p50"],
                rows,
            )
        )
        print(f"machine: {machine()}")


if __name__ == "__main__":
    asyncio.run(main())
