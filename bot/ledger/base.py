"""The ledger interface: the one place that knows how tasks are stored.

Every state change is written here before it is acted on. The interface is split by concern
(TaskStore, InputStore, ModerationStore, MetaStore, RefStore) so that each part of the bot
depends on the smallest one it needs and a second backend can implement them one by one;
`Ledger` is their union. SQLite implements it today (bot.ledger.sqlite).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.ledger.models import Task, TaskParams, TaskState

DURATION_SCAN_FACTOR = 4  # recent_durations_by_model reads this many times `limit` rows


def durations_by_model(rows: Iterable[tuple[str, float]], limit: int) -> dict[str, list[float]]:
    """(the task's params as stored, its duration) rows, newest first -> durations per model,
    up to `limit` each."""
    out: dict[str, list[float]] = {}
    for params, duration in rows:
        model = TaskParams.from_dict(json.loads(params)).model
        kept = out.setdefault(model, [])
        if len(kept) < limit:
            kept.append(float(duration))
    return out


class LedgerError(Exception):
    """The ledger could not read or write."""


class TaskNotFound(LedgerError):
    pass


@dataclass(frozen=True)
class StoredInput:
    """An input image kept until it has been uploaded to KIE (Discord's CDN URLs expire)."""

    task_id: str
    data: bytes
    filename: str
    content_type: str


@dataclass(frozen=True)
class Reference:
    """A saved reference image of a server (/ref save), kept by the bot with its bytes, and
    KIE's upload of it (`kie_url`, made at `kie_url_at`) while that lasts."""

    guild_id: int
    name: str
    note: str | None
    owner_id: int
    data: bytes
    filename: str
    content_type: str
    created_at: float
    kie_url: str | None = None
    kie_url_at: float | None = None

    @property
    def name_key(self) -> str:
        return ref_key(self.name)


@dataclass(frozen=True)
class RefSummary:
    """A reference as /ref list shows it: no bytes, only their size."""

    name: str
    note: str | None
    owner_id: int
    size: int
    created_at: float


class RefSaved(enum.Enum):
    SAVED = "saved"
    DUPLICATE = "duplicate"  # the server has a reference of that name (any case)
    FULL = "full"  # the server is at its limit


def ref_key(name: str) -> str:
    """A reference's name as its server looks it up: any case is the same name."""
    return name.casefold()


@dataclass(frozen=True)
class Block:
    """A member barred from the bot in one server: for good (`until` None) or until a time."""

    guild_id: int
    user_id: int
    until: float | None
    reason: str
    blocked_by: int | None
    created_at: float


@dataclass(frozen=True)
class OperatorBlock:
    """A member the bot's operator barred everywhere: every server, DMs, private channels."""

    user_id: int
    reason: str | None
    created_at: float


class TaskStore(Protocol):
    """Tasks: every state change is written here before it is acted on."""

    async def insert(self, *tasks: Task, lease_seconds: float | None = None) -> None:
        """Write new tasks, all or none (the images of a set). With `lease_seconds`, each
        one's lease (to its `owner`) runs that long from now by the ledger's clock (the
        database's on PostgreSQL, as every claim and renewal is)."""
        ...

    async def set_members(self, set_id: str) -> list[Task]:
        """The tasks of a set (`count` > 1), in their order in its message."""
        ...

    async def get(self, task_id: str) -> Task | None: ...

    async def update(self, task_id: str, **changes: Any) -> Task:
        """Write the given fields (and updated_at); return the task as stored. TaskNotFound."""
        ...

    async def transition(
        self, task_id: str, expected: frozenset[TaskState], **changes: Any
    ) -> Task | None:
        """Compare-and-set: apply changes only while the state is one of `expected`.

        Returns the new task, or None when the state had already moved on (another path won).
        """
        ...

    async def update_if(
        self, task_id: str, expect: Mapping[str, Any], **changes: Any
    ) -> Task | None:
        """Compare-and-set on any fields: apply changes only while every field in `expect`
        still holds its value (e.g. `refunded` False -> True happens once). None otherwise."""
        ...

    async def open_tasks(self) -> list[Task]:
        """Every non-terminal task, oldest first."""
        ...

    async def count_open_for_user(self, user_id: int) -> int: ...

    async def find_by_kie_task_id(self, kie_task_id: str) -> Task | None: ...

    async def find_by_callback_secret(self, secret: str) -> Task | None: ...

    async def recent_durations(self, limit: int = 50) -> list[float]:
        """Seconds from submission to KIE's outcome for the latest successful tasks."""
        ...

    async def recent_durations_by_model(self, limit: int = 50) -> dict[str, list[float]]:
        """`recent_durations` per model (KIE's model id), newest first, up to `limit` each,
        among the latest `limit` * DURATION_SCAN_FACTOR successful tasks."""
        ...

    async def last_submission_at(self, user_id: int) -> float | None: ...

    async def recent_tasks(
        self,
        guild_id: int | None,
        *,
        requester_id: int | None = None,
        search: str = "",
        limit: int,
    ) -> list[Task]:
        """The latest tasks in one server (None: outside servers), newest first: a member's
        (`requester_id`) or everyone's; `search` keeps those whose id or prompt contains it
        (any case)."""
        ...

    async def recent_requests(
        self, guild_id: int | None, requester_id: int, *, limit: int
    ) -> list[Task]:
        """The tasks of a member's latest `limit` requests in one server (None: outside
        servers), newest request first; the images of a set are one request, in set order."""
        ...


class InputStore(Protocol):
    """Input images, kept until they have been uploaded to KIE."""

    async def put_input(self, item: StoredInput) -> None: ...

    async def get_input(self, task_id: str) -> StoredInput | None: ...

    async def delete_input(self, task_id: str) -> None: ...

    async def purge_inputs(self, older_than: float) -> int:
        """Delete stored inputs of finished tasks created before `older_than`; return how many."""
        ...

    # The bot's own copy of a result (`task_id` is the result's task), for results Discord
    # cannot give back later (a private result's ephemeral message).

    async def put_result_copy(self, item: StoredInput) -> None: ...

    async def get_result_copy(self, task_id: str) -> StoredInput | None: ...

    async def delete_result_copy(self, task_id: str) -> None: ...

    async def purge_result_copies(self, older_than: float) -> int:
        """Delete result copies kept since before `older_than`; return how many."""
        ...


class MetaStore(Protocol):
    """Small key/value facts of the bot itself (command sync hashes, alerts, health)."""

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    async def check_writable(self) -> None:
        """Raise LedgerError when a write would fail (used by /healthz)."""
        ...


class ModerationStore(Protocol):
    """Per-server settings, daily credit usage, blocks and the operator's blocks."""

    async def get_guild_settings(self, guild_id: int) -> dict[str, Any] | None:
        """The server's settings as stored (a JSON object), or None if never configured."""
        ...

    async def put_guild_settings(self, guild_id: int, data: Mapping[str, Any]) -> None: ...

    async def all_guild_settings(self) -> list[tuple[int, dict[str, Any]]]: ...

    async def usage(self, guild_id: int, user_id: int, day: str) -> tuple[float, float]:
        """Credits used on `day` (YYYY-MM-DD, UTC): (by this member, by the whole server)."""
        ...

    async def charge_usage(
        self,
        guild_id: int,
        user_id: int,
        day: str,
        amount: float,
        *,
        member_limit: float | None,
        server_limit: float | None,
    ) -> bool:
        """Atomically add `amount` unless a limit would be exceeded; False when refused."""
        ...

    async def add_usage(self, guild_id: int, user_id: int, day: str, delta: float) -> None:
        """Add credits (negative: a refund); never below zero."""
        ...

    async def reset_usage(self, guild_id: int, user_id: int, day: str) -> None: ...

    async def get_block(self, guild_id: int, user_id: int) -> Block | None: ...

    async def put_block(self, block: Block) -> None:
        """Store a block; a timed block never replaces a permanent one."""
        ...

    async def delete_block(self, guild_id: int, user_id: int) -> bool:
        """Remove a block (permanent or timed); False when there was none."""
        ...

    async def count_outcomes(
        self, guild_id: int | None, user_id: int, error_code: str, since: float
    ) -> int:
        """Tasks of this member in this server (None: outside servers) that ended with
        `error_code` since `since`."""
        ...

    async def count_images(
        self, guild_id: int | None, user_id: int, since: float
    ) -> tuple[int, int]:
        """Images this member asked for in this server (None: outside servers) since `since`,
        and in how many requests (a set counts once); picks and cancelled images not counted."""
        ...

    # -- the operator's blocks (`python -m bot block`): every server, DMs, private channels --

    async def get_operator_block(self, user_id: int) -> OperatorBlock | None: ...

    async def put_operator_block(self, block: OperatorBlock) -> None:
        """Store a block (a second one for the same member replaces the reason)."""
        ...

    async def delete_operator_block(self, user_id: int) -> bool:
        """Remove the block; False when there was none."""
        ...

    async def operator_blocks(self) -> list[OperatorBlock]:
        """Every operator block, oldest first."""
        ...


class RefStore(Protocol):
    """A server's saved reference images; names are unique per server in any case."""

    async def save_ref(self, ref: Reference, *, limit: int) -> RefSaved:
        """Keep `ref` unless its server already has one of that name or has `limit`."""
        ...

    async def get_ref(self, guild_id: int, name: str) -> Reference | None: ...

    async def list_refs(self, guild_id: int) -> list[RefSummary]:
        """The server's references by name."""
        ...

    async def ref_names(self, guild_id: int, search: str, *, limit: int) -> list[str]:
        """Names of the server's references containing `search` (any case), by name."""
        ...

    async def delete_ref(self, guild_id: int, name: str) -> Reference | None:
        """Delete a reference with its bytes; the deleted reference, or None."""
        ...

    async def ref_storage(self, guild_id: int | None = None) -> tuple[int, int]:
        """How many references and how many bytes they hold: one server's, or all (None)."""
        ...

    async def set_ref_upload(self, guild_id: int, name: str, url: str, at: float) -> None:
        """Remember KIE's upload of a reference (`at`: when it was made)."""
        ...


class CoordinationStore(Protocol):
    """How the processes sharing one ledger divide the work (issue 15). A ledger only one
    process uses (SQLite) gives the trivial answers; see docs/operations.md for the scheme."""

    @property
    def shared(self) -> bool:
        """Several processes may use this ledger at once."""
        ...

    async def claim_tasks(
        self, owner: str, lease_seconds: float, limit: int, *, mine_too: bool
    ) -> list[Task]:
        """Lease to `owner` up to `limit` open tasks (whole sets) that are nobody's or whose
        lease ran out (and, `mine_too`, those `owner` holds); the claimed tasks, oldest first."""
        ...

    async def renew_leases(self, owner: str, lease_seconds: float) -> set[str]:
        """Extend `owner`'s leases; the ids of the open tasks it still holds."""
        ...

    async def release_leases(self, owner: str) -> None:
        """Give up `owner`'s open tasks (a clean stop): another process takes them at once."""
        ...

    async def take_rate_slot(
        self, name: str, limit: int, window: float, waiter: str, member: int | None = None
    ) -> float:
        """Take one of `limit` calls per `window` seconds shared by every process: 0.0 when
        taken, else the seconds to wait before asking again. `member`: whose task the slot is
        for; the waiter whose member was given a slot longest ago goes first, then the waiter
        that asked first."""
        ...

    async def swap_meta(self, key: str, expected: str, value: str) -> bool:
        """Compare-and-set a meta value (`expected` "": absent or empty); True if written."""
        ...

    async def notify_callback(self, task_id: str) -> None:
        """Tell every process a callback came for `task_id` (its owner acts on it)."""
        ...

    async def listen_callbacks(self, on_task: Callable[[str], None]) -> None:
        """Call `on_task(task_id)` for each callback another process received."""
        ...


class TaskAndInputStore(TaskStore, InputStore, Protocol):
    """Tasks with their input images: what the runner and the request service work on."""


class Ledger(
    TaskStore, InputStore, ModerationStore, MetaStore, RefStore, CoordinationStore, Protocol
):
    """Every store on one backend, opened and closed together (what the process wires up)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...
