"""Several bot processes on one PostgreSQL ledger (issue 15, section 4), end to end.

Three real bot processes (SHARD_COUNT=3, one shard each, distinct PROCESS_NAME, one
DATABASE_URL on the machine's PostgreSQL) against one fake Discord, whose servers are spread
over the three shards, and one KIE simulator. Each interaction arrives on its server's shard
(the fake routes it by ``(guild_id >> 22) % 3``), so the process of that shard writes the task,
leased to itself (the ledger's ``owner`` column).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from e2e_helpers import BotProcess, free_port
from fakediscord import FakeDiscord
from fakediscord.model import FakeChannel, FakeInteraction, FakeUser
from postgres_db import wait_for_rows

from bot.kie_sim import KieSimulator

Launch = Callable[..., Awaitable[BotProcess]]

SHARDS = 3
SERVERS_PER_SHARD = 2
LEASE_SECONDS = 6.0
# KIE's create window raised from 20 to 100 per 10 s (the simulator's limit and the bot's
# KIE_MAX_CREATE_PER_10S alike) so that 300 creates take three windows (~25 s), not fifteen.
# It still binds: the three processes stay under it only if they share one budget.
KIE_CREATES_PER_10S = 100
IN_FLIGHT = 20  # interactions sent and not yet answered, at most (a loaded 2-core machine)


def name_of(shard: int) -> str:
    return f"kontext-{shard}"


@dataclass
class Fleet:
    """The processes (by name), their shards and their servers."""

    fake: FakeDiscord
    kie: KieSimulator
    url: str
    launch: Launch
    env: dict[str, str]
    processes: dict[str, BotProcess]
    servers: dict[int, list[FakeChannel]]  # shard -> its servers' channels
    killed: set[str] = field(default_factory=set)

    async def kill(self, name: str) -> None:
        """kill -9: no clean stop, its leases stay until they run out."""
        self.killed.add(name)
        await self.processes[name].kill()

    async def add_process(self, name: str, shard: int, **env: str) -> BotProcess:
        process_env = {
            **self.env,
            "SHARD_COUNT": str(SHARDS),
            "SHARD_IDS": str(shard),
            "PROCESS_NAME": name,
            "DATABASE_URL": self.url,
            **env,
        }
        bot = await self.launch(name, **process_env)
        self.processes[name] = bot
        return bot

    def owner_of_port(self, port: int) -> str:
        return next(n for n, p in self.processes.items() if int(p.env["HTTP_PORT"]) == port)

    async def connected(self, shards: Sequence[int]) -> None:
        """Every process up: each shard identified and the commands synced (by one of them)."""

        def up() -> bool:
            exited = [
                n for n, p in self.processes.items() if n not in self.killed and not p.running
            ]
            assert not exited, f"process(es) exited: {exited}"
            live = {s for s, _ in self.fake.session_shards()}
            return set(shards) <= live and bool(self.fake.command_names())

        await self.fake.wait_until(up, 60, what=f"shards {list(shards)} connected")

    async def stop(self, *names: str) -> None:
        """SIGINT (clean stops, together): after this no process can post anything more."""
        await asyncio.gather(*(self.processes[n].stop(30) for n in names))

    async def imagine(
        self, jobs: Sequence[tuple[FakeUser, FakeChannel, str]]
    ) -> list[FakeInteraction]:
        """Send /imagine for each (member, server channel, prompt), keeping at most IN_FLIGHT
        unanswered: a burst of hundreds at once would test the machine, not the bot."""
        sent: list[FakeInteraction] = []
        for user, channel, prompt in jobs:
            await self.fake.wait_until(
                lambda: sum(1 for i in sent[-IN_FLIGHT:] if not i.responses) < IN_FLIGHT,
                30,
                what="the bot to answer the interactions in flight",
            )
            sent.append(
                await self.fake.slash("imagine", {"prompt": prompt}, user=user, channel=channel)
            )
        return sent


async def start_fleet(
    fake: FakeDiscord,
    kie: KieSimulator,
    launch: Launch,
    url: str,
    *,
    callbacks_to_the_next: bool = False,
    **env: str,
) -> Fleet:
    """Servers on every shard, then one process per shard, started together.

    ``callbacks_to_the_next``: callbacks on, each process's PUBLIC_BASE_URL naming the next
    process (shard + 1), so that KIE calls back a process that does not own the task."""
    # Each process IDENTIFYs its one shard as it starts. Discord lets a bot in many servers
    # start max_concurrency sessions at once (one per bucket, shard id % max_concurrency); with
    # 3 every shard has its own bucket and the three start together. (With 1 they would take
    # turns 5.5 s apart through the ledger: tests/ops/test_processes_once_e2e.py.)
    fake.identify_limits.max_concurrency = SHARDS
    servers = {
        shard: [
            fake.add_guild(f"server {shard}.{k}", shard=(shard, SHARDS))
            for k in range(SERVERS_PER_SHARD)
        ]
        for shard in range(SHARDS)
    }
    kie.config.rate_limit = KIE_CREATES_PER_10S
    kie.set_credits(1_000_000)  # credits are not what is tested (the default pays for 200)
    fleet = Fleet(
        fake,
        kie,
        url,
        launch,
        {
            "KIE_MAX_CREATE_PER_10S": str(KIE_CREATES_PER_10S),
            "MAX_OPEN_TASKS": "1000",
            "LOG_LEVEL": "INFO",
            **env,
        },
        {},
        servers,
    )
    ports = [free_port() for _ in range(SHARDS)]
    for shard in range(SHARDS):
        extra = {"HTTP_PORT": str(ports[shard])}
        if callbacks_to_the_next:
            extra["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{ports[(shard + 1) % SHARDS]}"
        await fleet.add_process(name_of(shard), shard, **extra)
    await fleet.connected(range(SHARDS))
    return fleet


async def rows(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def all_finished(url: str, count: int, timeout: float) -> list[asyncpg.Record]:
    """Wait until the ledger holds ``count`` tasks, none open; every task's row."""
    await wait_for_rows(
        url,
        "SELECT 1 FROM tasks HAVING COUNT(*) >= $1"
        " AND COUNT(*) FILTER (WHERE state NOT IN ('done', 'failed')) = 0",
        count,
        what=f"{count} tasks finished",
        timeout=timeout,
    )
    return await rows(url, "SELECT * FROM tasks ORDER BY created_at")


def images_per_conversation(fake: FakeDiscord, sent: Sequence[FakeInteraction]) -> Counter[int]:
    """How many conversations ended with 0, 1, 2... images."""
    return Counter(len(fake.conversation(i).files) for i in sent)


def kie_429s(kie: KieSimulator) -> int:
    """KIE's 429 answers (the simulator records each call with its body's code)."""
    return sum(1 for c in kie.calls if c.endpoint == "generate" and c.code == 429)


def discord_429s(fake: FakeDiscord) -> int:
    return len(fake.rate_limits.limited) if fake.rate_limits is not None else 0


def members(fake: FakeDiscord, count: int) -> list[FakeUser]:
    return [fake.add_user(f"member{i:03d}") for i in range(count)]


def spread(
    fleet: Fleet, users: Sequence[FakeUser], count: int, tag: str
) -> list[tuple[FakeUser, FakeChannel, str]]:
    """``count`` jobs: members in turn, servers of every shard in turn."""
    channels = [c for shard in range(SHARDS) for c in fleet.servers[shard]]
    return [
        (users[i % len(users)], channels[i % len(channels)], f"{tag} {i}") for i in range(count)
    ]


@pytest.mark.timeout(240)
async def test_300_tasks_from_100_members_on_three_processes_are_each_delivered_once(
    postgres_url: str, discord_fake: FakeDiscord, kie_sim: KieSimulator, bot_launcher: Launch
) -> None:
    """300 /imagine from 100 members in servers of all three shards: each conversation ends
    with exactly one image, KIE created 300 tasks and answered no 429 (one create budget for
    the three processes), the ledger holds 300 done tasks, each owned by its shard's process."""
    # For speed: short KIE jobs, and KIE's create window raised to KIE_CREATES_PER_10S (100
    # per 10 s, the simulator's and the bot's alike; start_fleet) from the default 20, so the
    # 300 creates take three windows; three processes without one shared budget would send
    # all 300 in the first.
    kie_sim.config.delay = 1.0
    users = members(discord_fake, 100)
    fleet = await start_fleet(discord_fake, kie_sim, bot_launcher, postgres_url)
    started = time.monotonic()

    sent = await fleet.imagine(spread(fleet, users, 300, "a lighthouse"))
    finished = await all_finished(postgres_url, 300, timeout=150)
    elapsed = time.monotonic() - started
    await fleet.stop(*fleet.processes)

    owners = Counter((r["owner"], (int(r["guild_id"]) >> 22) % SHARDS) for r in finished)
    print(
        f"300 tasks through 3 processes in {elapsed:.1f} s; (owner, shard): {dict(owners)}; "
        f"KIE 429s {kie_429s(kie_sim)}; Discord 429s {discord_429s(discord_fake)}"
    )
    assert (
        Counter(r["state"] for r in finished),
        images_per_conversation(discord_fake, sent),
        kie_sim.count("generate"),
        kie_429s(kie_sim),
        owners,
    ) == (
        Counter({"done": 300}),
        Counter({1: 300}),
        300,
        0,
        Counter({(name_of(s), s): 100 for s in range(SHARDS)}),
    )


async def tasks_at_kie(
    fleet: Fleet, victim: str, per_shard: int
) -> tuple[list[FakeInteraction], list[str]]:
    """Send ``per_shard`` tasks into every shard and wait until all of ``victim``'s are at KIE
    (generating) and none is queued or being sent: each task it holds then has a KIE task id,
    and it sends nothing more. Returns the interactions and the victim's task ids."""
    total = per_shard * SHARDS
    users = members(fleet.fake, total)
    sent = await fleet.imagine(spread(fleet, users, total, "a glacier"))
    held = await wait_for_rows(
        fleet.url,
        "SELECT id FROM tasks WHERE owner = $1 AND (SELECT COUNT(*) FROM tasks) = $2"
        " AND (SELECT COUNT(*) FROM tasks WHERE owner = $1 AND state = 'generating') = $3",
        victim,
        total,
        per_shard,
        what=f"{victim}'s {per_shard} tasks at KIE",
        timeout=60,
    )
    return sent, [r["id"] for r in held]


async def kill_with_tasks_at_kie(
    fleet: Fleet, victim: str, per_shard: int
) -> tuple[list[FakeInteraction], list[str], float]:
    """``tasks_at_kie``, then kill -9 ``victim``; also the kill's unix time."""
    sent, theirs = await tasks_at_kie(fleet, victim, per_shard)
    await fleet.kill(victim)
    return sent, theirs, time.time()


async def delivered(url: str, ids: list[str], what: str, timeout: float) -> float:
    """Wait until the tasks ``ids`` are all done; the unix time the last was delivered."""
    done = await wait_for_rows(
        url,
        "SELECT MAX(delivered_at) AS last FROM tasks WHERE id = ANY($1::text[])"
        " HAVING COUNT(*) FILTER (WHERE state = 'done') = $2",
        ids,
        len(ids),
        what=what,
        timeout=timeout,
    )
    return float(done[0]["last"])


@pytest.mark.timeout(180)
async def test_killed_process_tasks_are_delivered_by_the_others_within_the_lease(
    postgres_url: str, discord_fake: FakeDiscord, kie_sim: KieSimulator, bot_launcher: Launch
) -> None:
    """kill -9 of a process while KIE works on its tasks (TASK_LEASE_SECONDS=6): the other two
    take them over when the lease runs out and deliver each within lease + 10 s of the kill;
    KIE created each task once and every conversation ends with one image."""
    # Long enough that the victim's tasks are at KIE when it dies, finished at the takeover:
    # the time measured is the takeover's, not KIE's.
    kie_sim.config.delay = 5.0
    fleet = await start_fleet(
        discord_fake, kie_sim, bot_launcher, postgres_url, TASK_LEASE_SECONDS=str(LEASE_SECONDS)
    )
    victim = name_of(1)

    sent, theirs, killed_at = await kill_with_tasks_at_kie(fleet, victim, per_shard=10)
    last = await delivered(
        postgres_url, theirs, "the killed process's tasks delivered", LEASE_SECONDS + 30
    )
    takeover = last - killed_at
    finished = await all_finished(postgres_url, len(sent), timeout=30)
    await fleet.stop(name_of(0), name_of(2))

    print(f"kill -9 to the last of the victim's {len(theirs)} tasks delivered: {takeover:.1f} s")
    assert takeover <= LEASE_SECONDS + 10
    assert (
        Counter(r["state"] for r in finished),
        {r["owner"] for r in finished if r["id"] in theirs} <= {name_of(0), name_of(2)},
        kie_sim.count("generate"),
        kie_429s(kie_sim),
        images_per_conversation(discord_fake, sent),
    ) == (Counter({"done": len(sent)}), True, len(sent), 0, Counter({1: len(sent)}))


@pytest.mark.timeout(180)
async def test_a_cleanly_stopped_process_gives_its_tasks_back_at_once(
    postgres_url: str, discord_fake: FakeDiscord, kie_sim: KieSimulator, bot_launcher: Launch
) -> None:
    """SIGINT (a rolling restart) of a process while KIE works on its tasks: it releases their
    leases as it stops, so no open task is still its own when it has exited, and the others
    take them over at their next round (every lease/3 s) instead of after a lease."""
    kie_sim.config.delay = 5.0  # the victim stops with its tasks at KIE
    lease = 12.0  # rounds every 4 s: a takeover by release comes well before one by expiry
    fleet = await start_fleet(
        discord_fake, kie_sim, bot_launcher, postgres_url, TASK_LEASE_SECONDS=str(lease)
    )
    victim = name_of(1)

    sent, theirs = await tasks_at_kie(fleet, victim, per_shard=4)
    await fleet.stop(victim)
    stopped_at = time.time()
    still_held = await rows(
        postgres_url,
        "SELECT id FROM tasks WHERE owner = $1 AND state NOT IN ('done', 'failed')",
        victim,
    )
    last = await delivered(postgres_url, theirs, "the stopped process's tasks delivered", 30)
    finished = await all_finished(postgres_url, len(sent), timeout=30)
    await fleet.stop(name_of(0), name_of(2))

    print(f"clean stop to the last of the victim's tasks delivered: {last - stopped_at:.1f} s")
    assert (
        still_held,
        Counter(r["state"] for r in finished),
        kie_sim.count("generate"),
        images_per_conversation(discord_fake, sent),
    ) == ([], Counter({"done": len(sent)}), len(sent), Counter({1: len(sent)}))
    assert last - stopped_at < lease


@pytest.mark.timeout(180)
async def test_a_process_started_for_a_dead_ones_shard_serves_its_servers(
    postgres_url: str, discord_fake: FakeDiscord, kie_sim: KieSimulator, bot_launcher: Launch
) -> None:
    """After a kill -9 (and the takeover of its tasks), a fourth process started with the dead
    one's SHARD_IDS and a new PROCESS_NAME answers the new interactions in that shard's servers
    and delivers them itself (the ledger's owner column and its own log say so)."""
    kie_sim.config.delay = 5.0  # as in the takeover test: the victim dies with tasks at KIE
    fleet = await start_fleet(
        discord_fake, kie_sim, bot_launcher, postgres_url, TASK_LEASE_SECONDS=str(LEASE_SECONDS)
    )
    _sent, theirs, _killed_at = await kill_with_tasks_at_kie(fleet, name_of(1), per_shard=4)
    await delivered(postgres_url, theirs, "the killed process's tasks taken over", 40)
    kie_sim.config.delay = 1.0
    newcomer = await fleet.add_process("kontext-1-new", 1)
    await fleet.connected([1])

    users = members(discord_fake, 4)
    jobs = [
        (u, fleet.servers[1][i % SERVERS_PER_SHARD], f"a harbour {i}") for i, u in enumerate(users)
    ]
    sent = await fleet.imagine(jobs)
    ids = [str(i.id) for i in sent]
    mine = await wait_for_rows(
        postgres_url,
        "SELECT id, owner, state FROM tasks WHERE interaction_id = ANY($1::bigint[])"
        " AND (SELECT COUNT(*) FROM tasks WHERE interaction_id = ANY($1::bigint[])"
        " AND state = 'done') = $2",
        [int(i) for i in ids],
        len(ids),
        what="the new shard-1 tasks delivered",
        timeout=60,
    )
    await fleet.stop(name_of(0), name_of(2), "kontext-1-new")

    log = newcomer.log_text()
    assert (
        {r["owner"] for r in mine},
        all(f"task {r['id']} delivered as message" in log for r in mine),
        images_per_conversation(discord_fake, sent),
    ) == ({"kontext-1-new"}, True, Counter({1: len(sent)}))


@pytest.mark.timeout(180)
async def test_a_callback_to_another_process_wakes_the_owner(
    postgres_url: str, discord_fake: FakeDiscord, kie_sim: KieSimulator, bot_launcher: Launch
) -> None:
    """Callbacks on, and each process's PUBLIC_BASE_URL names the next process (as a load
    balancer may send a callback to any process): every callback reaches a process that does
    not own the task; it NOTIFYs the owner, whose log says "received by another process", and
    the owner delivers with its one confirming record-info, long before the 30-s safety poll."""
    kie_sim.config.delay = 1.0
    fleet = await start_fleet(
        discord_fake, kie_sim, bot_launcher, postgres_url, callbacks_to_the_next=True
    )
    users = members(discord_fake, 6)
    sent = await fleet.imagine(spread(fleet, users, 6, "a comet"))
    finished = await all_finished(postgres_url, len(sent), timeout=25)
    await fleet.stop(*fleet.processes)

    sim_tasks = {t.task_id: t for t in kie_sim.tasks.values()}
    wrong = []
    latencies = {}  # task -> seconds from KIE's finish to the delivery
    for row in finished:
        sim_task = sim_tasks[row["kie_task_id"]]
        receiver = fleet.owner_of_port(int(urlsplit(sim_task.request["callBackUrl"]).port or 0))
        owner_log = fleet.processes[row["owner"]].log_text()
        if receiver == row["owner"] or (
            f"KIE callback for task {row['id']} received by another process" not in owner_log
        ):
            wrong.append((row["id"], row["owner"], receiver))
        assert sim_task.finished_wall is not None
        latencies[row["id"]] = row["delivered_at"] - sim_task.finished_wall.timestamp()
    print(f"KIE done to delivered, woken by NOTIFY: max {max(latencies.values()):.2f} s")
    # The safety-net poll is 30 s away: a delivery within 10 s was woken by the callback.
    late = {task: seconds for task, seconds in latencies.items() if seconds > 10}
    assert (wrong, late, kie_sim.count("record-info"), [c.status for c in kie_sim.callbacks]) == (
        [],
        {},
        len(sent),
        [200] * len(sent),
    )


@pytest.mark.timeout(120)
async def test_members_take_turns_at_kie_across_processes(
    postgres_url: str, discord_fake: FakeDiscord, kie_sim: KieSimulator, bot_launcher: Launch
) -> None:
    """One member queues 5 images in a server of shard 0, then another member asks for one in
    a server of shard 1 while the first one's third waits for the shared create window (2 per
    window here): the second member's image is created next, before the first member's third
    — the slot goes to the member served longest ago, whichever process holds their task."""
    # A window of 2 creates (the bot's KIE_MAX_CREATE_PER_10S; the simulator allows more) so
    # that one member's five images must wait; the member's cooldown and open-task cap are
    # lifted so that the five can be queued at once.
    kie_sim.config.delay = 1.0
    fleet = await start_fleet(
        discord_fake,
        kie_sim,
        bot_launcher,
        postgres_url,
        KIE_MAX_CREATE_PER_10S="2",
        USER_COOLDOWN_SECONDS="0",
        USER_MAX_ACTIVE_TASKS="10",
    )
    first, second = members(discord_fake, 2)
    many = await fleet.imagine(
        [(first, fleet.servers[0][0], f"first member {n}") for n in range(5)]
    )
    await wait_for_rows(
        postgres_url,
        "SELECT 1 FROM rate_waiters WHERE name = 'kie-create' AND waiter = $1",
        name_of(0),
        what="shard 0's process waiting for a create slot",
        timeout=30,
    )
    one = await fleet.imagine([(second, fleet.servers[1][0], "second member")])
    await all_finished(postgres_url, 6, timeout=90)
    whose = [
        task.request["prompt"].rsplit(" ", 1)[0] if "first" in task.request["prompt"] else "second"
        for task in sorted(kie_sim.tasks.values(), key=lambda task: task.created)
    ]
    assert (whose, images_per_conversation(discord_fake, [*many, *one])) == (
        ["first member", "first member", "second", *["first member"] * 3],
        Counter({1: 6}),
    )
