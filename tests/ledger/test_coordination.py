"""How processes sharing one ledger divide the work (issue 15): task leases, the shared KIE
budget, meta compare-and-set and callbacks passed on by NOTIFY.

Tests taking the `ledger` fixture run on both backends. The multi-process guarantees are
PostgreSQL's alone (tests named `..._across_processes`): each PostgresLedger there has its own
pool, as each process has. SQLite serves one process: its claims take every open task."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from test_sqlite_ledger import make_task

from bot.ledger import Ledger, PostgresLedger, SqliteLedger, Task, TaskState
from bot.ledger.postgres_coordination import WAITER_STALE_SECONDS
from bot.ledger.sqlite import MIGRATIONS

LEASE = 60.0
BUDGET = "kie-create"


def now_of(ledger: Ledger) -> float:
    """The time leases are measured by: the ledger's clock (SQLite), the database's (PostgreSQL)."""
    return 1_700_000_000.0 if isinstance(ledger, SqliteLedger) else time.time()


def task(
    task_id: str, created: float, *, owner: str | None = None, lease_until: float = 0.0
) -> Task:
    return make_task(task_id, created=created).with_changes(owner=owner, lease_until=lease_until)


def image_set(
    set_id: str,
    created: float,
    size: int = 3,
    *,
    owner: str | None = None,
    lease_until: float = 0.0,
) -> list[Task]:
    """A set of `size` images, the first's id being the set's id."""
    ids = [set_id] + [f"{set_id[:-1]}{n}" for n in range(1, size)]
    return [
        task(task_id, created, owner=owner, lease_until=lease_until).with_changes(
            set_id=set_id, set_index=n + 1
        )
        for n, task_id in enumerate(ids)
    ]


def ids(tasks: list[Task]) -> list[str]:
    return [t.id for t in tasks]


@asynccontextmanager
async def processes(url: str, count: int) -> AsyncIterator[list[PostgresLedger]]:
    """`count` ledgers on one database, each with its own pool (as separate processes)."""
    ledgers = [PostgresLedger(url) for _ in range(count)]
    for led in ledgers:
        await led.open()
    try:
        yield ledgers
    finally:
        for led in ledgers:
            await led.close()


async def sql(url: str, statement: str, *args: object) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


# --- claims, on both backends ---------------------------------------------------------------


async def test_a_claim_takes_nobodys_expired_and_own_open_tasks(ledger: Ledger) -> None:
    now = now_of(ledger)
    await ledger.insert(
        task("aaaaaaaaaaa1", 100.0),
        task("aaaaaaaaaaa2", 200.0, owner="dead", lease_until=now - 5),
        task("aaaaaaaaaaa3", 300.0, owner="me", lease_until=now + LEASE),
    )
    claimed = await ledger.claim_tasks("me", LEASE, 100, mine_too=True)
    assert [(t.id, t.owner) for t in claimed] == [
        ("aaaaaaaaaaa1", "me"),
        ("aaaaaaaaaaa2", "me"),
        ("aaaaaaaaaaa3", "me"),
    ]


async def test_a_claim_never_takes_finished_tasks(ledger: Ledger) -> None:
    await ledger.insert(task("aaaaaaaaaaa1", 100.0), task("aaaaaaaaaaa2", 200.0))
    await ledger.update("aaaaaaaaaaa1", state=TaskState.DONE)
    await ledger.update("aaaaaaaaaaa2", state=TaskState.FAILED)
    assert await ledger.claim_tasks("me", LEASE, 100, mine_too=True) == []


async def test_a_claim_takes_the_open_images_of_a_set_together(ledger: Ledger) -> None:
    images = image_set("bbbbbbbbbbb0", 100.0, size=4)
    await ledger.insert(*images)
    await ledger.update(images[1].id, state=TaskState.DONE)
    claimed = await ledger.claim_tasks("me", LEASE, 1, mine_too=False)
    assert ids(claimed) == [images[0].id, images[2].id, images[3].id]


async def test_a_claims_limit_counts_sets_and_takes_the_oldest_first(ledger: Ledger) -> None:
    await ledger.insert(
        task("aaaaaaaaaaa3", 300.0),
        *image_set("bbbbbbbbbbb0", 200.0),
        task("aaaaaaaaaaa1", 100.0),
        task("aaaaaaaaaaa4", 400.0),
    )
    claimed = await ledger.claim_tasks("me", LEASE, 3, mine_too=False)
    assert ids(claimed) == [
        "aaaaaaaaaaa1",
        "bbbbbbbbbbb0",
        "bbbbbbbbbbb1",
        "bbbbbbbbbbb2",
        "aaaaaaaaaaa3",
    ]


async def test_a_claim_leases_for_the_given_time(ledger: Ledger) -> None:
    await ledger.insert(task("aaaaaaaaaaa1", 100.0))
    before = now_of(ledger)
    (claimed,) = await ledger.claim_tasks("me", LEASE, 1, mine_too=False)
    stored = await ledger.get(claimed.id)
    assert stored is not None
    assert before + LEASE <= stored.lease_until <= now_of(ledger) + LEASE


async def test_a_released_task_is_nobodys(ledger: Ledger) -> None:
    await ledger.insert(task("aaaaaaaaaaa1", 100.0), task("aaaaaaaaaaa2", 200.0))
    await ledger.claim_tasks("me", LEASE, 100, mine_too=True)
    await ledger.update("aaaaaaaaaaa2", state=TaskState.DONE)
    await ledger.release_leases("me")
    released, finished = await ledger.get("aaaaaaaaaaa1"), await ledger.get("aaaaaaaaaaa2")
    assert released is not None and finished is not None
    assert (released.owner, released.lease_until, finished.owner) == (None, 0.0, "me")


async def test_sqlite_claims_every_open_task_whatever_its_owner(tmp_path: Path) -> None:
    """One process: a restarted bot takes back all its tasks even if its name changed."""
    led = SqliteLedger(tmp_path / "ledger.sqlite3", clock=lambda: 1_700_000_000.0)
    await led.open()
    try:
        await led.insert(task("aaaaaaaaaaa1", 100.0, owner="old-name", lease_until=2e9))
        claimed = await led.claim_tasks("new-name", LEASE, 10, mine_too=False)
    finally:
        await led.close()
    assert [(t.id, t.owner) for t in claimed] == [("aaaaaaaaaaa1", "new-name")]


async def test_sqlite_hands_out_the_budget_at_once(tmp_path: Path) -> None:
    """One process: its scheduler's own window is the budget."""
    led = SqliteLedger(tmp_path / "ledger.sqlite3")
    await led.open()
    try:
        waits = [await led.take_rate_slot(BUDGET, 1, 10.0, "me") for _ in range(50)]
    finally:
        await led.close()
    assert set(waits) == {0.0}


# --- claims across processes (PostgreSQL) ----------------------------------------------------


async def test_a_live_lease_of_another_process_is_never_taken_across_processes(
    postgres_url: str,
) -> None:
    async with processes(postgres_url, 1) as (led,):
        now = time.time()
        await led.insert(
            task("aaaaaaaaaaa1", 100.0, owner="other", lease_until=now + LEASE),
            task("aaaaaaaaaaa2", 200.0, owner="me", lease_until=now + LEASE),
            *image_set("bbbbbbbbbbb0", 300.0, owner="other", lease_until=now + LEASE),
        )
        claimed = await led.claim_tasks("me", LEASE, 100, mine_too=False)
        assert claimed == []


async def test_concurrent_claimers_never_share_a_task_nor_split_a_set_across_processes(
    postgres_url: str,
) -> None:
    async with processes(postgres_url, 4) as ledgers:
        tasks: list[Task] = []
        for n in range(30):
            tasks += image_set(f"b{n:010d}0", float(n), size=3)
            tasks.append(task(f"a{n:011d}", float(n) + 0.5))
        await ledgers[0].insert(*tasks)

        async def claim_all(led: PostgresLedger, name: str) -> list[Task]:
            mine: list[Task] = []
            while batch := await led.claim_tasks(name, LEASE, 3, mine_too=False):
                mine += batch
            return mine

        claims = await asyncio.gather(
            *(claim_all(led, f"p{n}") for n, led in enumerate(ledgers) for _ in range(2))
        )
        holder: dict[str, int] = {}
        for n, claim in enumerate(claims):
            for claimed in claim:
                assert claimed.id not in holder, f"{claimed.id} claimed twice"
                holder[claimed.id] = n
        sets_split = {t.set_id for t in tasks if t.set_id and holder[t.id] != holder[t.set_id]}
        assert (len(holder), sets_split) == (len(tasks), set())


async def test_a_lease_that_ran_out_is_taken_by_another_process(postgres_url: str) -> None:
    async with processes(postgres_url, 2) as (first, second):
        await first.insert(*image_set("bbbbbbbbbbb0", 100.0))
        await first.claim_tasks("first", 0.5, 10, mine_too=False)
        deadline = time.monotonic() + 5.0
        while not (taken := await second.claim_tasks("second", LEASE, 10, mine_too=False)):
            assert time.monotonic() < deadline, "the expired lease was never taken over"
            await asyncio.sleep(0.05)
        assert [(t.id, t.owner) for t in taken] == [
            ("bbbbbbbbbbb0", "second"),
            ("bbbbbbbbbbb1", "second"),
            ("bbbbbbbbbbb2", "second"),
        ]


async def test_renewals_name_only_the_open_tasks_still_held_across_processes(
    postgres_url: str,
) -> None:
    async with processes(postgres_url, 2) as (first, second):
        await first.insert(*(task(f"aaaaaaaaaaa{n}", float(n)) for n in range(1, 5)))
        await first.claim_tasks("first", LEASE, 10, mine_too=False)
        await first.update("aaaaaaaaaaa2", state=TaskState.DONE)
        await sql(postgres_url, "UPDATE tasks SET lease_until = 0 WHERE id = 'aaaaaaaaaaa3'")
        assert ids(await second.claim_tasks("second", LEASE, 10, mine_too=False)) == [
            "aaaaaaaaaaa3"
        ]
        assert await first.renew_leases("first", LEASE) == {"aaaaaaaaaaa1", "aaaaaaaaaaa4"}


async def test_released_leases_are_taken_at_once_across_processes(postgres_url: str) -> None:
    async with processes(postgres_url, 2) as (first, second):
        await first.insert(task("aaaaaaaaaaa1", 100.0), *image_set("bbbbbbbbbbb0", 200.0))
        await first.claim_tasks("first", LEASE, 10, mine_too=False)
        await first.release_leases("first")
        taken = await second.claim_tasks("second", LEASE, 10, mine_too=False)
        assert ids(taken) == ["aaaaaaaaaaa1", "bbbbbbbbbbb0", "bbbbbbbbbbb1", "bbbbbbbbbbb2"]


# --- the shared KIE budget (PostgreSQL) ------------------------------------------------------


async def record_grants(url: str) -> None:
    """Every slot granted is copied (its database time) into `granted`: rate_slots forgets."""
    await sql(
        url,
        """
        CREATE TABLE granted (at DOUBLE PRECISION NOT NULL, name TEXT NOT NULL);
        CREATE FUNCTION copy_grant() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN INSERT INTO granted VALUES (NEW.at, NEW.name); RETURN NEW; END $$;
        CREATE TRIGGER copy_grant AFTER INSERT ON rate_slots
            FOR EACH ROW EXECUTE FUNCTION copy_grant();
        """,
    )


async def take_slot(
    led: Ledger, limit: int, window: float, waiter: str, *, every: float | None = None
) -> None:
    """Ask until granted, as SharedWork does (or every `every` seconds, sooner than told)."""
    while True:
        wait = await led.take_rate_slot(BUDGET, limit, window, waiter)
        if not wait:
            return
        await asyncio.sleep(wait if every is None else every)


async def test_the_budget_is_never_exceeded_in_any_window_across_processes(
    postgres_url: str,
) -> None:
    limit, window, each = 4, 0.25, 4
    async with processes(postgres_url, 3) as ledgers:
        await record_grants(postgres_url)

        async def hammer(led: PostgresLedger, waiter: str) -> None:
            for _ in range(each):
                await take_slot(led, limit, window, waiter)

        waiters = [(led, f"p{n}-w{k}") for n, led in enumerate(ledgers) for k in range(2)]
        await asyncio.wait_for(asyncio.gather(*(hammer(*w) for w in waiters)), 10.0)
        conn = await asyncpg.connect(postgres_url)
        try:
            grants = [row[0] for row in await conn.fetch("SELECT at FROM granted ORDER BY at")]
        finally:
            await conn.close()
    crowded = [
        (grants[n], grants[n + limit])
        for n in range(len(grants) - limit)
        if grants[n + limit] - grants[n] < window
    ]
    assert (len(grants), crowded) == (len(waiters) * each, [])


async def test_waiters_are_served_in_the_order_they_first_asked_across_processes(
    postgres_url: str,
) -> None:
    async with processes(postgres_url, 4) as (filler, *ledgers):
        assert await filler.take_rate_slot(BUDGET, 1, 0.3, "filler") == 0.0
        for n, led in enumerate(ledgers):
            assert await led.take_rate_slot(BUDGET, 1, 0.3, f"p{n}") > 0
        served: list[str] = []

        async def wait_turn(led: PostgresLedger, waiter: str) -> None:
            await take_slot(led, 1, 0.3, waiter, every=0.01)
            served.append(waiter)

        # The last to ask asks most eagerly: it still waits its turn.
        await asyncio.wait_for(
            asyncio.gather(
                *(wait_turn(led, f"p{n}") for n, led in reversed(list(enumerate(ledgers))))
            ),
            5.0,
        )
    assert served == ["p0", "p1", "p2"]


async def test_a_waiter_keeps_its_place_through_a_long_window_across_processes(
    postgres_url: str,
) -> None:
    """A window longer than a waiter's staleness (KIE's creates: 10 s): the waiter that asked
    first, doing as told, is served before one that came later and asks often."""
    window = WAITER_STALE_SECONDS + 0.5
    async with processes(postgres_url, 3) as (filler, patient, eager):
        assert await filler.take_rate_slot(BUDGET, 1, window, "filler") == 0.0
        patient_turn = asyncio.create_task(take_slot(patient, 1, window, "patient"))
        # Arranging the order (not proving an absence): the eager one comes once the patient
        # one would count as gone had it not asked again.
        await asyncio.sleep(WAITER_STALE_SECONDS + 0.2)
        eager_turn = asyncio.create_task(take_slot(eager, 1, window, "eager", every=0.01))
        done, _ = await asyncio.wait(
            {patient_turn, eager_turn}, timeout=5.0, return_when=asyncio.FIRST_COMPLETED
        )
        for turn in (patient_turn, eager_turn):
            turn.cancel()
    assert done == {patient_turn}


async def test_a_waiter_that_stopped_asking_does_not_block_others_across_processes(
    postgres_url: str,
) -> None:
    async with processes(postgres_url, 3) as (filler, gone, alive):
        assert await filler.take_rate_slot(BUDGET, 1, 0.2, "filler") == 0.0
        assert await gone.take_rate_slot(BUDGET, 1, 0.2, "gone") > 0  # first in line, then dies
        await asyncio.wait_for(take_slot(alive, 1, 0.2, "alive"), WAITER_STALE_SECONDS + 3.0)


# --- meta compare-and-set ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected", "written"),
    [
        (None, "", True),
        ("", "", True),
        ("v1", "v1", True),
        ("v1", "", False),
        ("v1", "v2", False),
        (None, "v1", False),
    ],
)
async def test_swap_meta_writes_only_over_the_expected_value(
    ledger: Ledger, stored: str | None, expected: str, written: bool
) -> None:
    if stored is not None:
        await ledger.set_meta("alert", stored)
    swapped = await ledger.swap_meta("alert", expected, "new")
    after = await ledger.get_meta("alert")
    assert (swapped, after) == (written, "new" if written else stored)


@pytest.mark.parametrize("stored", [None, "old"])
async def test_concurrent_swaps_exactly_one_wins_across_processes(
    postgres_url: str, stored: str | None
) -> None:
    async with processes(postgres_url, 3) as ledgers:
        if stored is not None:
            await ledgers[0].set_meta("alert", stored)
        results = await asyncio.gather(
            *(
                led.swap_meta("alert", stored or "", f"{n}-{k}")
                for n, led in enumerate(ledgers)
                for k in range(5)
            )
        )
    assert results.count(True) == 1


# --- callbacks ----------------------------------------------------------------------------


async def test_a_callback_notified_by_one_process_reaches_another(postgres_url: str) -> None:
    async with processes(postgres_url, 2) as (receiver, owner):
        heard: asyncio.Queue[str] = asyncio.Queue()
        await owner.listen_callbacks(heard.put_nowait)
        await receiver.notify_callback("aaaaaaaaaaa1")
        assert await asyncio.wait_for(heard.get(), 5.0) == "aaaaaaaaaaa1"


async def test_a_set_with_an_image_being_written_is_not_split_across_processes(
    postgres_url: str,
) -> None:
    """Its old owner (lease run out, still alive) writes one image as another process claims:
    the claim leaves the whole set for later rather than take the other images."""
    async with processes(postgres_url, 1) as (led,):
        expired = image_set("bbbbbbbbbbb0", 100.0, owner="slow", lease_until=time.time() - 1)
        await led.insert(*expired, task("aaaaaaaaaaa1", 200.0))
        writer = await asyncpg.connect(postgres_url)
        try:
            async with writer.transaction():
                await writer.execute("SELECT 1 FROM tasks WHERE id = 'bbbbbbbbbbb1' FOR UPDATE")
                claimed = await led.claim_tasks("other", LEASE, 10, mine_too=False)
        finally:
            await writer.close()
    assert ids(claimed) == ["aaaaaaaaaaa1"]


# --- the SQLite ledger from before leases (schema 6) ---------------------------------------


def schema_6_database(path: Path) -> None:
    """A ledger as the bot before issue 15 left it: an open set of two and a finished task."""
    with sqlite3.connect(path) as db:
        for statements in MIGRATIONS[:6]:
            for statement in statements:
                db.execute(statement)
        for task_id, state, set_id, set_index in (
            ("bbbbbbbbbbb0", "generating", "bbbbbbbbbbb0", 1),
            ("bbbbbbbbbbb1", "queued", "bbbbbbbbbbb0", 2),
            ("aaaaaaaaaaa1", "done", None, 0),
        ):
            db.execute(
                "INSERT INTO tasks (id, kind, state, params, requester_id, channel_id,"
                " application_id, interaction_id, interaction_token, created_at, updated_at,"
                " set_id, set_index, set_size, locale) VALUES (?, 'imagine', ?, ?, 1, 3, 4, 5,"
                " 'tok', 1.0, 1.0, ?, ?, 2, 'de')",
                (task_id, state, json.dumps({"prompt": "p"}), set_id, set_index),
            )
        db.execute("PRAGMA user_version = 6")


async def test_a_schema_6_ledger_keeps_its_tasks_held_by_nobody(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    schema_6_database(path)
    led = SqliteLedger(path)
    await led.open()
    try:
        stored = [
            await led.get(task_id) for task_id in ("bbbbbbbbbbb0", "bbbbbbbbbbb1", "aaaaaaaaaaa1")
        ]
    finally:
        await led.close()
    assert [(t.state, t.set_index, t.locale, t.owner, t.lease_until) for t in stored if t] == [
        (TaskState.GENERATING, 1, "de", None, 0.0),
        (TaskState.QUEUED, 2, "de", None, 0.0),
        (TaskState.DONE, 0, "de", None, 0.0),
    ]


async def test_a_schema_6_ledgers_open_set_is_claimed_whole(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    schema_6_database(path)
    led = SqliteLedger(path)
    await led.open()
    try:
        claimed = await led.claim_tasks("me", LEASE, 10, mine_too=True)
    finally:
        await led.close()
    assert [(t.id, t.owner) for t in claimed] == [("bbbbbbbbbbb0", "me"), ("bbbbbbbbbbb1", "me")]


async def test_the_callback_listener_comes_back_after_its_connection_is_lost(
    postgres_url: str,
) -> None:
    """PostgreSQL restarted, or the listener's connection cut: callbacks reach the owner again
    once it has reconnected (one sent while it was away is not heard; its poll finds it)."""
    async with processes(postgres_url, 2) as (receiver, owner):
        heard: asyncio.Queue[str] = asyncio.Queue()
        await owner.listen_callbacks(heard.put_nowait)
        await sql(
            postgres_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        deadline = time.monotonic() + 5.0
        while True:
            assert time.monotonic() < deadline, "the listener never came back"
            await receiver.notify_callback("aaaaaaaaaaa1")
            try:
                assert await asyncio.wait_for(heard.get(), 0.2) == "aaaaaaaaaaa1"
                break
            except TimeoutError:
                continue


async def test_a_new_tasks_lease_runs_by_the_databases_clock_across_processes(
    postgres_url: str,
) -> None:
    """A task written by a host whose clock is far behind (its times in 1970) is leased from
    the database's now, as claims are measured: another process does not take it."""
    async with processes(postgres_url, 2) as (writer, other):
        await writer.insert(task("aaaaaaaaaaa1", 100.0, owner="writer"), lease_seconds=LEASE)
        before = time.time()
        stored = await writer.get("aaaaaaaaaaa1")
        taken = await other.claim_tasks("other", LEASE, 100, mine_too=False)
    assert stored is not None
    assert (taken, stored.owner, stored.lease_until > before + LEASE - 5) == ([], "writer", True)


async def test_insert_with_a_lease_leases_each_task_from_now(ledger: Ledger) -> None:
    """Both backends: `lease_seconds` sets every written task's lease from the ledger's now."""
    tasks = image_set("bbbbbbbbbbb0", 100.0, owner="me")
    await ledger.insert(*tasks, lease_seconds=LEASE)
    stored = [await ledger.get(t.id) for t in tasks]
    now = now_of(ledger)
    assert all(t is not None and now + LEASE - 5 < t.lease_until <= now + LEASE + 5 for t in stored)


async def test_the_member_served_longest_ago_goes_first_across_processes(
    postgres_url: str,
) -> None:
    """A waiter for a member already given a slot asked first; a waiter of another process for
    a member never served asked after: the next slot is the second's."""
    async with processes(postgres_url, 2) as (first, second):
        assert await first.take_rate_slot(BUDGET, 1, 0.5, "first", member=1) == 0.0
        assert await first.take_rate_slot(BUDGET, 1, 0.5, "first", member=1) > 0.0
        assert await second.take_rate_slot(BUDGET, 1, 0.5, "second", member=2) > 0.0
        granted: list[str] = []
        while not granted:
            for led, name, member in ((first, "first", 1), (second, "second", 2)):
                if await led.take_rate_slot(BUDGET, 1, 0.5, name, member=member) == 0.0:
                    granted.append(name)
                    break
            else:
                await asyncio.sleep(0.05)
    assert granted == ["second"]
