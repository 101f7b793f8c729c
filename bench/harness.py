"""The rig every benchmark uses: the fake Discord, the KIE simulator and the real bot process.

Everything runs on 127.0.0.1. The fake Discord and the simulator live in the benchmark's own
process (so their clocks agree: both use ``time.monotonic``); the bot is ``python -m bot``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO_ROOT = Path(__file__).resolve().parent.parent
for extra in (REPO_ROOT, REPO_ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from e2e_helpers import BotProcess, clean_env, free_port  # noqa: E402

__all__ = ["BotProcess", "NaiveBotProcess", "Rig", "free_port"]
from fakediscord import (  # noqa: E402
    Call,
    FakeDiscord,
    FakeInteraction,
    FakeUser,
)

from bench.remote_sim import RemoteSim, prerender  # noqa: E402
from bot.kie_sim import KieSimulator, SimConfig  # noqa: E402

log = logging.getLogger("bench")


# The simulator's result image: a noisy JPEG whose long side is 1920 px is ~1 MB (issue 16:
# results as large as real ones); without noise at 1024 px it is ~30 KB (the old default).
ONE_MB_RESULT: dict[str, Any] = {"result_noise": True, "result_long_side": 1920}
SMALL_RESULT: dict[str, Any] = {"result_noise": False, "result_long_side": 1024}


def result_config(small: bool) -> dict[str, Any]:
    return dict(SMALL_RESULT if small else ONE_MB_RESULT)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ms(value: float) -> str:
    return "—" if value != value else f"{value * 1000:.0f} ms"


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (printed, and pasted into bench/README.md)."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def machine() -> str:
    """nproc, memory, CPU model and Python version, for the README."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout
    total = next((ln.split()[1] for ln in mem.splitlines() if ln.startswith("Mem:")), "?")
    return (
        f"{os.cpu_count()} CPU ({cpu}), {total} RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


class BenchFake(FakeDiscord):
    """The fake Discord, indexing result posts as they arrive (no scans of every call)."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: dict[str, list[Call]] = defaultdict(list)  # token -> result posts
        self.patches: dict[str, int] = defaultdict(int)  # token -> PATCHes of the reply
        self.acks: dict[str, Call] = {}  # token -> first accepted callback of type 4 or 5

    async def _finish(self, call: Call, status: int, response: Any) -> None:
        parts = call.path.split("/")
        if call.method == "PATCH" and parts[1] == "webhooks" and "messages" in parts:
            self.patches[parts[3]] += 1
            if call.files and status == 200:
                self.delivered[parts[3]].append(call)
        elif (
            call.method == "POST"
            and parts[1] == "webhooks"
            and len(parts) == 4
            and call.files
            and status == 200
        ):
            # A followup carrying the file (bench/naive_bot.py delivers that way).
            self.delivered[parts[3]].append(call)
        elif (
            call.method == "POST"
            and parts[1] == "interactions"
            and status == 200
            and isinstance(call.json, dict)
            and call.json.get("type") in (4, 5)
        ):
            self.acks.setdefault(parts[3], call)
        await super()._finish(call, status, response)


class NaiveBotProcess(BotProcess):
    """``python -m bench.naive_bot`` instead of ``python -m bot``, with the same environment."""

    async def launch(self, env: dict[str, str] | None = None) -> None:
        assert not self.running, "the bot is already running"
        self.env.update(env or {})
        self.starts += 1
        self._log = self.log_path.open("ab")
        self._log.write(f"\n===== naive bot start #{self.starts} =====\n".encode())
        self._log.flush()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.naive_bot",
            cwd=str(self.workdir),
            env=clean_env(self.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )


@dataclass
class RecordInfo:
    task_id: str
    at: float
    flag: int | None


@dataclass
class Rig:
    """Fake Discord + KIE simulator + one bot at a time (``await rig.start_bot(**env)``)."""

    sim_config: SimConfig = field(default_factory=SimConfig)
    # The fake enforces Discord's rules as in the tests: its rate-limit buckets (False turns
    # them off), the 3-second rule and IDENTIFY's intents (a run that breaks one fails).
    rate_limits: bool = True
    # The simulator in a process of its own (bench/remote_sim.py), as KIE is: its serving
    # then neither waits for nor delays the fake Discord's.
    separate_sim: bool = False
    fake: BenchFake = field(init=False)
    sim: KieSimulator | RemoteSim = field(init=False)
    workdir: Path = field(init=False)
    done_at: dict[str, float] = field(default_factory=dict)  # sim task id -> monotonic
    record_infos: dict[str, list[RecordInfo]] = field(default_factory=lambda: defaultdict(list))
    by_token: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> prompt, sent
    token_of: dict[str, str] = field(default_factory=dict)  # prompt -> token
    bots: list[BotProcess] = field(default_factory=list)
    prerender: bool = True
    _images: dict[tuple[str, Any], bytes] = field(default_factory=dict)

    async def __aenter__(self) -> Rig:
        self.workdir = Path(tempfile.mkdtemp(prefix="kontext-bench-"))
        self.fake = BenchFake()
        if not self.rate_limits:
            self.fake.rate_limits = None
        await self.fake.start()
        # Credits are not what is measured: enough for any run (the default pays for 200 tasks).
        self.sim_config.credits = max(self.sim_config.credits, 1e9)
        if self.separate_sim:
            self.sim = RemoteSim(self.sim_config, self._remote_done, self._remote_record_info)
        else:
            self.sim = KieSimulator(self.sim_config)
            self.sim.app.middlewares.append(self._record_info_probe)
            self.sim.on_task_finished = self._finished
        await self.sim.start()
        return self

    @property
    def local_sim(self) -> KieSimulator:
        """The simulator in this process (every rig but `separate_sim`'s), with its call log
        and its controls."""
        assert isinstance(self.sim, KieSimulator), "the simulator runs in a process of its own"
        return self.sim

    async def __aexit__(self, *exc: object) -> None:
        for bot in self.bots:
            if bot.running:
                with contextlib.suppress(Exception):
                    await bot.stop(30, expect_code=None)
        await self.sim.stop()
        await self.fake.stop()
        problems = self.fake.violations()
        if problems and exc[0] is None:
            raise AssertionError("Discord rules broken:\n  " + "\n  ".join(problems))
        for problem in problems:
            log.error("Discord rule broken: %s", problem)

    def _finished(self, task: Any) -> None:
        if self.prerender:
            prerender(self.local_sim, self._images, task)
        self.done_at[task.task_id] = time.monotonic()

    def _remote_done(self, task_id: str, at: float) -> None:
        self.done_at[task_id] = at

    def _remote_record_info(self, task_id: str, at: float, flag: int | None) -> None:
        self.record_infos[task_id].append(RecordInfo(task_id, at, flag))

    @web.middleware
    async def _record_info_probe(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        resp = await handler(request)
        if request.path.endswith("/record-info"):
            task_id = request.query.get("taskId", "")
            task = self.sim.tasks.get(task_id)
            self.record_infos[task_id].append(
                RecordInfo(task_id, time.monotonic(), task.flag if task else None)
            )
        return resp

    def env(self, **extra: str) -> dict[str, str]:
        db = self.workdir / f"ledger-{len(self.bots)}.sqlite3"
        base = {
            "DISCORD_TOKEN": self.fake.token,
            "KIE_API_KEY": f"bench-key-{len(self.bots)}",
            "DISCORD_API_BASE_URL": self.fake.api_url,
            "DISCORD_GATEWAY_URL": self.fake.gateway_url,
            "KIE_API_BASE_URL": self.sim.base_url,
            "KIE_UPLOAD_BASE_URL": self.sim.base_url,
            "DATABASE_URL": f"sqlite:///{db}",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(free_port()),
            "ALLOW_PRIVATE_URLS": "true",
            "USER_COOLDOWN_SECONDS": "0",
            "SHUTDOWN_GRACE_SECONDS": "0",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        base.update(extra)
        return base

    async def start_bot(self, *, callbacks: bool = False, **extra: str) -> BotProcess:
        env = self.env(**extra)
        if callbacks:
            env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{env['HTTP_PORT']}"
        bot = BotProcess(self.fake, env, self.workdir / f"bot-{len(self.bots)}.log")
        bot.ready_timeout = 120
        self.bots.append(bot)
        await bot.start()
        return bot

    async def start_naive(self, mode: str = "poll", **extra: str) -> BotProcess:
        """bench/naive_bot.py as its own process: ``mode`` "poll" (record-info every
        NAIVE_POLL_SECONDS, 1 s) or "callback" (KIE calls back its own HTTP server)."""
        env = self.env(NAIVE_MODE=mode, **extra)
        bot = NaiveBotProcess(self.fake, env, self.workdir / f"naive-{len(self.bots)}.log")
        bot.ready_timeout = 120
        self.bots.append(bot)
        await bot.start()
        return bot

    # ---- driving -------------------------------------------------------------------------

    async def imagine(self, prompt: str, user: FakeUser | None = None) -> FakeInteraction:
        inter = await self.fake.slash("imagine", {"prompt": prompt}, user=user)
        self.by_token[inter.token] = (prompt, time.monotonic())
        self.token_of[prompt] = inter.token
        return inter

    def results(self) -> dict[str, list[Call]]:
        """Successful result posts (an edit of the reply carrying a file), by interaction token."""
        return self.fake.delivered

    def by_token_done(self, prompt: str) -> bool:
        token = self.token_of[prompt]
        return bool(self.fake.delivered.get(token))

    def all_delivered(self, prompts: list[str]) -> Callable[[], bool]:
        """A predicate for `fake.wait_until`: every one of `prompts` has its image."""
        return lambda: all(map(self.by_token_done, prompts))

    def sim_task_for(self, prompt: str) -> Any:
        for task in self.sim.tasks.values():
            if task.request.get("prompt") == prompt:
                return task
        return None

    def edits(self, token: str) -> int:
        """Every PATCH of the reply (status edits and the final one), answered or not."""
        return self.fake.patches.get(token, 0)

    def discord_429s(self) -> int:
        return sum(1 for c in self.fake.calls if c.status == 429)

    def kie_429s(self) -> int:
        return sum(1 for c in self.sim.calls if c.endpoint == "generate" and c.code == 429)


async def healthz(session: aiohttp.ClientSession, bot: BotProcess) -> tuple[int, dict[str, Any]]:
    try:
        async with session.get(bot.http_url + "/healthz") as resp:
            return resp.status, json.loads(await resp.read())
    except (aiohttp.ClientError, ValueError):
        return 0, {}


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class LagSampler:
    """Samples /healthz every ``every`` s: the event-loop lag p99 (over the last minute)."""

    def __init__(self, bot: BotProcess, every: float = 2.0) -> None:
        self.bot = bot
        self.every = every
        self.p99s: list[float] = []
        self.unhealthy = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                status, body = await healthz(session, self.bot)
                lag = body.get("checks", {}).get("event_loop_lag", {}).get("p99_seconds")
                if lag is not None:
                    self.p99s.append(float(lag))
                if status != 200:
                    self.unhealthy += 1
                await asyncio.sleep(self.every)

    def __enter__(self) -> LagSampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def worst(self) -> float:
        return max(self.p99s) if self.p99s else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("bot.kie_sim.server").setLevel(logging.WARNING)
