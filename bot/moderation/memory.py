"""What admission reads, kept in memory so that an interaction is answered before any I/O.

The ledger stays the authority: every request is checked against it again right after the
interaction is acknowledged (`KontextService.admit`), and each of those reads is written back
here. Memory only decides, before the acknowledgement, whether the answer is a private refusal
or the (public or private) "thinking…" reply. What this process writes is noted here as it is
written; what other processes write reaches memory in one of three ways:

- the operator's blocks and the out-of-credits hold are global (the CLI, or any process that
  meets a 402, writes them): re-read every `GLOBAL_REFRESH` seconds;
- everything else is read again, authoritatively, after each acknowledgement and written back,
  so a change made elsewhere is stale here for at most one request of that member or server;
- an entry not known yet (a member not seen since start) is no reason to refuse: the check
  after the acknowledgement decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from bot.ledger import Block
from bot.moderation.policy import GuildSettings

GLOBAL_REFRESH: Final = 1.0  # seconds between reads of the operator's blocks and the 402 hold


@dataclass
class AdmissionMemory:
    settings: dict[int, GuildSettings] = field(default_factory=dict)
    operator_blocked: set[int] = field(default_factory=set)
    out_of_credits_at: float | None = None
    # (scope, user) -> the block in force (None: known not blocked); absent: not known.
    blocks: dict[tuple[int, int], Block | None] = field(default_factory=dict)
    open_tasks: dict[int, int] = field(default_factory=dict)  # user -> tasks in progress
    last_submission: dict[int, float] = field(default_factory=dict)  # user -> unix time
    member_usage: dict[tuple[int, int, str], float] = field(default_factory=dict)
    server_usage: dict[tuple[int, str], float] = field(default_factory=dict)

    def load_settings(self, rows: Iterable[tuple[int, GuildSettings]]) -> None:
        self.settings = dict(rows)

    def settings_for(self, guild_id: int) -> GuildSettings:
        """A server never configured has the defaults (its row is written where it is set)."""
        return self.settings.get(guild_id) or GuildSettings()

    def note_operator_blocks(self, user_ids: Iterable[int]) -> None:
        self.operator_blocked = set(user_ids)

    def note_operator_block(self, user_id: int, blocked: bool) -> None:
        if blocked:
            self.operator_blocked.add(user_id)
        else:
            self.operator_blocked.discard(user_id)

    def note_block(self, scope: int, user_id: int, block: Block | None) -> None:
        self.blocks[(scope, user_id)] = block

    def block_of(self, scope: int, user_id: int, now: float) -> Block | None:
        block = self.blocks.get((scope, user_id))
        if block is not None and block.until is not None and block.until <= now:
            return None
        return block

    def note_open_tasks(self, user_id: int, count: int) -> None:
        self.open_tasks[user_id] = max(0, count)

    def add_open_tasks(self, user_id: int, delta: int) -> None:
        if user_id in self.open_tasks or delta > 0:
            self.note_open_tasks(user_id, self.open_tasks.get(user_id, 0) + delta)

    def note_submission(self, user_id: int, at: float | None) -> None:
        if at is None:
            self.last_submission.pop(user_id, None)
        else:
            self.last_submission[user_id] = max(at, self.last_submission.get(user_id, at))

    def note_usage(self, scope: int, user_id: int, day: str, member: float, server: float) -> None:
        self.member_usage[(scope, user_id, day)] = member
        self.server_usage[(scope, day)] = server

    def add_usage(self, scope: int, user_id: int, day: str, delta: float) -> None:
        """A charge (or, negative, a refund) of what is already known; unknown stays unknown."""
        member_key = (scope, user_id, day)
        if member_key in self.member_usage:
            self.member_usage[member_key] = max(0.0, self.member_usage[member_key] + delta)
        if (scope, day) in self.server_usage:
            self.server_usage[(scope, day)] = max(0.0, self.server_usage[(scope, day)] + delta)

    def forget_usage(self, scope: int, user_id: int, day: str) -> None:
        self.member_usage.pop((scope, user_id, day), None)
        self.server_usage.pop((scope, day), None)

    def usage_of(self, scope: int, user_id: int, day: str) -> tuple[float, float] | None:
        """(member, server) credits used that day; None while either is not known."""
        member = self.member_usage.get((scope, user_id, day))
        server = self.server_usage.get((scope, day))
        if member is None or server is None:
            return None
        return member, server

    def forget_days_before(self, today: str) -> None:
        """Usage of past days is never read again."""
        self.member_usage = {k: v for k, v in self.member_usage.items() if k[2] >= today}
        self.server_usage = {k: v for k, v in self.server_usage.items() if k[1] >= today}
