"""The ledger: storage, compare-and-set transitions, queries and restarts.

Tests taking the `ledger` fixture run on both backends (SQLite and PostgreSQL: conftest.py);
those on a `db_path` are about the SQLite file itself (paths, read-only, PRAGMAs)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.ledger import (
    Ledger,
    LedgerError,
    ParentAction,
    PostgresLedger,
    SqliteLedger,
    StoredInput,
    Task,
    TaskKind,
    TaskNotFound,
    TaskParams,
    TaskState,
    open_ledger,
)
from bot.ledger.sqlite import SCHEMA_VERSION


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "ledger.sqlite3"


@pytest.fixture
def ledger_clock(clock: FakeClock) -> FakeClock:
    return clock


def make_task(task_id: str = "a1b2c3d4e5f6", *, user: int = 111, created: float = 100.0) -> Task:
    return Task(
        id=task_id,
        kind=TaskKind.IMAGINE,
        params=TaskParams(prompt="a red fox in the snow"),
        requester_id=user,
        guild_id=222,
        channel_id=333,
        application_id=444,
        interaction_id=555,
        interaction_token="tok-" + task_id,
        created_at=created,
        updated_at=created,
    )


def full_task() -> Task:
    return make_task("0123456789ab").with_changes(
        kind=TaskKind.EDIT,
        params=TaskParams(
            prompt="make it ✨ night — «ünïcode»",
            model="flux-kontext-max",
            aspect_ratio="1:1",
            output_format="png",
            enhance_prompt=True,
            safety_tolerance=5,
        ),
        guild_id=None,
        state=TaskState.DELIVERING,
        reply_message_id=2**62 + 7,
        kie_task_id="kie-xyz",
        input_image_url="https://example.test/in.png",
        parent_task_id="ffffffffffff",
        callback_secret="s3cr3t",
        attempts=3,
        submitted_at=101.5,
        completed_at=120.25,
        delivered_at=121.0,
        result_url="https://example.test/out.png",
        result_message_id=999,
        error_code="none",
        error_message="nothing went wrong",
        cost=10.5,
        retry_at=130.5,
        delivery_attempts=2,
        rerollable=False,
        reply_gone=True,
        upload_limit=25 * 1024 * 1024,
        spoiler=True,
        refunded=True,
        output_deleted_by=2**62 + 9,
        set_id="0123456789ab",
        set_index=3,
        set_size=4,
        private=True,
        result_channel_id=2**62 + 11,
        parent_action=ParentAction.REFRAME,
        locale="zh-CN",
        ref_name="Captain Mira",
    )


async def test_round_trip_every_field(ledger: Ledger) -> None:
    """Every Task field, including enums, params, booleans and big ints, reads back unchanged."""
    task = full_task()
    await ledger.insert(task)
    assert await ledger.get("0123456789ab") == task


async def test_round_trip_defaults_and_nones(ledger: Ledger) -> None:
    """A fresh task with every optional field None and default control state reads back equal."""
    task = make_task()
    await ledger.insert(task)
    got = await ledger.get(task.id)
    assert got == task
    assert got is not None and got.kie_task_id is None and got.rerollable is True


async def test_get_missing_returns_none(ledger: Ledger) -> None:
    """get() of an unknown id is None, not an error."""
    assert await ledger.get("nope") is None


async def test_duplicate_insert_is_ledger_error(ledger: Ledger) -> None:
    """Inserting the same id twice raises LedgerError (the sqlite error is wrapped)."""
    await ledger.insert(make_task())
    with pytest.raises(LedgerError):
        await ledger.insert(make_task())


async def test_update_writes_given_fields_and_updated_at(ledger: Ledger, clock: FakeClock) -> None:
    """update() changes only the given fields plus updated_at from the clock."""
    task = make_task()
    await ledger.insert(task)
    clock.now = 5000.0
    updated = await ledger.update(task.id, reply_message_id=42, reply_gone=True)
    assert updated == task.with_changes(reply_message_id=42, reply_gone=True, updated_at=5000.0)
    assert await ledger.get(task.id) == updated


async def test_update_missing_raises_not_found(ledger: Ledger) -> None:
    """update() of an unknown id raises TaskNotFound."""
    with pytest.raises(TaskNotFound):
        await ledger.update("missing", attempts=1)


async def test_update_rejects_unknown_field(ledger: Ledger) -> None:
    """update() refuses a field the Task does not have, and the id itself."""
    await ledger.insert(make_task())
    with pytest.raises(ValueError, match="bogus"):
        await ledger.update(make_task().id, bogus=1)
    with pytest.raises(ValueError, match="id"):
        await ledger.update(make_task().id, id="other")


async def test_transition_applies_when_state_matches(ledger: Ledger) -> None:
    """transition() from an expected state writes the changes and returns the new task."""
    await ledger.insert(make_task())
    got = await ledger.transition(
        make_task().id,
        frozenset({TaskState.QUEUED}),
        state=TaskState.SUBMITTING,
        attempts=1,
    )
    assert got is not None
    assert got.state is TaskState.SUBMITTING and got.attempts == 1


async def test_transition_returns_none_when_state_moved_on(ledger: Ledger) -> None:
    """transition() leaves the row alone and returns None when the state is not expected."""
    task = make_task().with_changes(state=TaskState.DONE)
    await ledger.insert(task)
    got = await ledger.transition(
        task.id, frozenset({TaskState.GENERATING}), state=TaskState.FAILED, error_code="x"
    )
    assert got is None
    assert await ledger.get(task.id) == task


async def test_transition_missing_task_raises(ledger: Ledger) -> None:
    """transition() of an unknown id raises TaskNotFound rather than pretending it moved on."""
    with pytest.raises(TaskNotFound):
        await ledger.transition("missing", frozenset({TaskState.QUEUED}), state=TaskState.FAILED)


async def test_concurrent_transitions_exactly_one_wins(ledger: Ledger) -> None:
    """Two racing transitions out of GENERATING (callback vs poll loop): exactly one succeeds."""
    task = make_task().with_changes(state=TaskState.GENERATING)
    await ledger.insert(task)
    expected = frozenset({TaskState.GENERATING})
    results = await asyncio.gather(
        ledger.transition(task.id, expected, state=TaskState.DELIVERING, result_url="a"),
        ledger.transition(task.id, expected, state=TaskState.FAILED, error_code="b"),
        ledger.transition(task.id, expected, state=TaskState.DELIVERING, result_url="c"),
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await ledger.get(task.id) == winners[0]


async def test_concurrent_transitions_from_two_connections(db_path: Path) -> None:
    """Two ledgers on the same file (two connections) racing a CAS: one wins, one gets None."""
    first, second = SqliteLedger(db_path), SqliteLedger(db_path)
    await first.open()
    await second.open()
    try:
        await first.insert(make_task())
        expected = frozenset({TaskState.QUEUED})
        a, b = await asyncio.gather(
            first.transition(make_task().id, expected, state=TaskState.SUBMITTING),
            second.transition(make_task().id, expected, state=TaskState.FAILED),
        )
        assert (a is None) != (b is None)
    finally:
        await first.close()
        await second.close()


async def test_open_tasks_oldest_first_without_terminal(ledger: Ledger) -> None:
    """open_tasks() lists every non-terminal task by created_at and leaves out DONE/FAILED."""
    await ledger.insert(make_task("t3", created=30.0).with_changes(state=TaskState.GENERATING))
    await ledger.insert(make_task("t1", created=10.0))
    await ledger.insert(make_task("done", created=5.0).with_changes(state=TaskState.DONE))
    await ledger.insert(make_task("fail", created=6.0).with_changes(state=TaskState.FAILED))
    await ledger.insert(make_task("t2", created=20.0).with_changes(state=TaskState.DELIVERING))
    await ledger.insert(make_task("t0", created=1.0).with_changes(state=TaskState.SUBMITTING))
    assert [t.id for t in await ledger.open_tasks()] == ["t0", "t1", "t2", "t3"]


async def test_count_open_for_user(ledger: Ledger) -> None:
    """count_open_for_user() counts that user's non-terminal tasks only."""
    await ledger.insert(make_task("a", user=1))
    await ledger.insert(make_task("b", user=1).with_changes(state=TaskState.GENERATING))
    await ledger.insert(make_task("c", user=1).with_changes(state=TaskState.DONE))
    await ledger.insert(make_task("d", user=2))
    assert await ledger.count_open_for_user(1) == 2
    assert await ledger.count_open_for_user(2) == 1
    assert await ledger.count_open_for_user(3) == 0


async def test_find_by_kie_task_id_and_callback_secret(ledger: Ledger) -> None:
    """Tasks can be found by KIE's task id and by their callback secret; unknown ones are None."""
    await ledger.insert(make_task("a").with_changes(kie_task_id="k1", callback_secret="s1"))
    await ledger.insert(make_task("b").with_changes(kie_task_id="k2", callback_secret="s2"))
    found = await ledger.find_by_kie_task_id("k2")
    assert found is not None and found.id == "b"
    found = await ledger.find_by_callback_secret("s1")
    assert found is not None and found.id == "a"
    assert await ledger.find_by_kie_task_id("k3") is None
    assert await ledger.find_by_callback_secret("nope") is None


async def test_kie_task_id_is_unique(ledger: Ledger) -> None:
    """Two tasks cannot claim the same KIE task id."""
    await ledger.insert(make_task("a").with_changes(kie_task_id="k1"))
    await ledger.insert(make_task("b"))
    with pytest.raises(LedgerError):
        await ledger.update("b", kie_task_id="k1")


async def test_inputs_put_get_delete(ledger: Ledger) -> None:
    """An input image is stored byte for byte, replaced by a second put, and deleted."""
    blob = bytes(range(256)) * 100
    await ledger.put_input(StoredInput("a", blob, "cat.png", "image/png"))
    assert await ledger.get_input("a") == StoredInput("a", blob, "cat.png", "image/png")
    await ledger.put_input(StoredInput("a", b"\x00new", "dog.jpg", "image/jpeg"))
    assert await ledger.get_input("a") == StoredInput("a", b"\x00new", "dog.jpg", "image/jpeg")
    await ledger.delete_input("a")
    assert await ledger.get_input("a") is None
    await ledger.delete_input("a")  # idempotent


async def test_purge_inputs_only_old_finished_ones(ledger: Ledger, clock: FakeClock) -> None:
    """purge_inputs deletes inputs of finished tasks stored before the cutoff, and nothing else."""
    old_done = make_task("000000000001").with_changes(state=TaskState.DONE)
    old_failed = make_task("000000000002").with_changes(state=TaskState.FAILED)
    old_open = make_task("000000000003").with_changes(state=TaskState.GENERATING)
    new_done = make_task("000000000004").with_changes(state=TaskState.DONE)
    for task in (old_done, old_failed, old_open):
        await ledger.insert(task)
        await ledger.put_input(StoredInput(task.id, b"img", "input.png", "image/png"))
    cutoff = clock.now + 1
    clock.now += 10
    await ledger.insert(new_done)
    await ledger.put_input(StoredInput(new_done.id, b"img", "input.png", "image/png"))
    assert await ledger.purge_inputs(cutoff) == 2
    assert await ledger.get_input(old_done.id) is None
    assert await ledger.get_input(old_failed.id) is None
    assert await ledger.get_input(old_open.id) is not None  # still needed: not finished
    assert await ledger.get_input(new_done.id) is not None  # too recent
    assert await ledger.purge_inputs(cutoff) == 0


async def test_result_copies_put_get_delete(ledger: Ledger) -> None:
    """A result's own copy: stored once (a second put keeps the first), read, deleted."""
    await ledger.insert(make_task())
    first = StoredInput("a1b2c3d4e5f6", b"\x89PNG first", "kontext.png", "image/png")
    await ledger.put_result_copy(first)
    await ledger.put_result_copy(StoredInput("a1b2c3d4e5f6", b"other", "x.jpg", "image/jpeg"))
    kept = await ledger.get_result_copy("a1b2c3d4e5f6")
    await ledger.delete_result_copy("a1b2c3d4e5f6")
    assert (kept, await ledger.get_result_copy("a1b2c3d4e5f6")) == (first, None)


async def test_purge_result_copies_only_old_ones(ledger: Ledger, clock: FakeClock) -> None:
    """purge_result_copies deletes the copies kept before the cutoff (the inputs' retention)."""
    await ledger.put_result_copy(StoredInput("000000000001", b"old", "a.png", "image/png"))
    cutoff = clock.now + 1
    clock.now += 10
    await ledger.put_result_copy(StoredInput("000000000002", b"new", "b.png", "image/png"))
    purged = await ledger.purge_result_copies(cutoff)
    left = [await ledger.get_result_copy(t) for t in ("000000000001", "000000000002")]
    assert (purged, [c and c.data for c in left]) == (1, [None, b"new"])


async def test_meta_get_set(ledger: Ledger) -> None:
    """meta is a key/value store: missing is None, set overwrites."""
    assert await ledger.get_meta("commands_hash") is None
    await ledger.set_meta("commands_hash", "abc")
    await ledger.set_meta("commands_hash", "def")
    assert await ledger.get_meta("commands_hash") == "def"


async def test_recent_durations(ledger: Ledger) -> None:
    """recent_durations() is completed-submitted for the latest DONE tasks with both times set."""
    for i in range(5):
        await ledger.insert(
            make_task(f"d{i}").with_changes(
                state=TaskState.DONE, submitted_at=100.0 * i, completed_at=100.0 * i + 10 + i
            )
        )
    await ledger.insert(
        make_task("f").with_changes(state=TaskState.FAILED, submitted_at=1e6, completed_at=1e6 + 99)
    )
    await ledger.insert(make_task("nosub").with_changes(state=TaskState.DONE, completed_at=1e7))
    await ledger.insert(make_task("open").with_changes(state=TaskState.GENERATING, submitted_at=1))
    assert await ledger.recent_durations() == [14.0, 13.0, 12.0, 11.0, 10.0]
    assert await ledger.recent_durations(limit=2) == [14.0, 13.0]


async def test_recent_durations_by_model(ledger: Ledger) -> None:
    """recent_durations_by_model() gives each model its own latest DONE durations, newest
    first, up to `limit` each."""
    for i, model in enumerate(["flux-kontext-pro"] * 3 + ["flux-kontext-max"] * 2):
        task = make_task(f"m{i}")
        await ledger.insert(
            task.with_changes(
                params=TaskParams(prompt="p", model=model),
                state=TaskState.DONE,
                submitted_at=100.0 * i,
                completed_at=100.0 * i + 10 + i,
            )
        )
    assert await ledger.recent_durations_by_model(limit=2) == {
        "flux-kontext-max": [14.0, 13.0],
        "flux-kontext-pro": [12.0, 11.0],
    }


async def test_last_submission_at(ledger: Ledger) -> None:
    """last_submission_at() is the newest created_at of that user's tasks, any state."""
    assert await ledger.last_submission_at(1) is None
    await ledger.insert(make_task("a", user=1, created=50.0).with_changes(state=TaskState.DONE))
    await ledger.insert(make_task("b", user=1, created=70.0).with_changes(state=TaskState.FAILED))
    await ledger.insert(make_task("c", user=1, created=60.0))
    await ledger.insert(make_task("d", user=2, created=900.0))
    assert await ledger.last_submission_at(1) == 70.0


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    """After close and a new process-like reopen, tasks, inputs and meta are all still there."""
    first = SqliteLedger(db_path)
    await first.open()
    task = make_task().with_changes(state=TaskState.GENERATING, kie_task_id="k")
    await first.insert(task)
    await first.put_input(StoredInput(task.id, b"img", "a.png", "image/png"))
    await first.set_meta("k", "v")
    await first.close()

    second = SqliteLedger(db_path)
    await second.open()
    try:
        assert await second.open_tasks() == [task]
        assert await second.get_input(task.id) == StoredInput(task.id, b"img", "a.png", "image/png")
        assert await second.get_meta("k") == "v"
    finally:
        await second.close()


async def test_schema_version_and_idempotent_reopen(db_path: Path) -> None:
    """open() sets the schema version, WAL mode, and reopening does not re-run migrations."""
    led = SqliteLedger(db_path)
    await led.open()
    assert await led.schema_version() == SCHEMA_VERSION
    await led.close()
    await led.open()  # same object can be reopened
    assert await led.schema_version() == SCHEMA_VERSION
    await led.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tasks", "inputs", "meta"} <= tables


async def test_newer_schema_is_refused(db_path: Path) -> None:
    """A database written by a newer bot (higher schema version) is refused with LedgerError."""
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    led = SqliteLedger(db_path)
    with pytest.raises(LedgerError, match="newer"):
        await led.open()


async def test_open_creates_parent_directories(db_path: Path) -> None:
    """open() creates missing parent directories of the database file."""
    assert not db_path.parent.exists()
    led = SqliteLedger(db_path)
    await led.open()
    await led.close()
    assert db_path.exists()  # noqa: ASYNC240


async def test_use_before_open_is_ledger_error(db_path: Path) -> None:
    """Calling the ledger before open() (or after close()) raises LedgerError."""
    led = SqliteLedger(db_path)
    with pytest.raises(LedgerError):
        await led.get("x")
    await led.open()
    await led.close()
    with pytest.raises(LedgerError):
        await led.set_meta("a", "b")


async def test_check_writable_passes_on_a_normal_ledger(ledger: Ledger) -> None:
    """check_writable() succeeds on a writable database and really writes."""
    await ledger.check_writable()
    assert await ledger.get_meta("health.last_write_check") is not None


async def test_check_writable_fails_on_read_only_database(db_path: Path) -> None:
    """A database opened read-only (mode=ro) fails check_writable() with LedgerError."""
    writer = SqliteLedger(db_path)
    await writer.open()
    await writer.insert(make_task())
    await writer.close()
    reader = SqliteLedger(db_path, read_only=True)
    await reader.open()
    try:
        assert await reader.get(make_task().id) == make_task()
        with pytest.raises(LedgerError):
            await reader.check_writable()
    finally:
        await reader.close()


async def test_check_writable_fails_with_query_only(db_path: Path) -> None:
    """A connection that cannot write (PRAGMA query_only) fails check_writable()."""
    ledger = SqliteLedger(db_path)
    await ledger.open()
    try:
        await ledger._conn().execute("PRAGMA query_only = ON")
        with pytest.raises(LedgerError):
            await ledger.check_writable()
    finally:
        await ledger.close()


def test_open_ledger_picks_the_backend_by_url(tmp_path: Path) -> None:
    """open_ledger() builds a SqliteLedger for sqlite:/// URLs, a PostgresLedger for
    postgresql:// and postgres://, and refuses other schemes naming both forms."""
    led: Ledger = open_ledger(f"sqlite:///{tmp_path}/x.sqlite3")
    assert isinstance(led, SqliteLedger)
    assert led.path == tmp_path / "x.sqlite3"
    assert isinstance(open_ledger("postgresql://u:pw@localhost/db"), PostgresLedger)
    assert isinstance(open_ledger("postgres://localhost/db"), PostgresLedger)
    with pytest.raises(ValueError, match=r"sqlite:///.*postgresql://"):
        open_ledger("mysql://localhost/db")
