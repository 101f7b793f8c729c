"""The PostgreSQL ledger's schema: its own numbered migrations, applied in order at start-up.

Version 1 is SQLite's schema 6 in PostgreSQL's types: BIGINT for Discord ids, DOUBLE PRECISION
for unix times and credits, BOOLEAN, BYTEA, TEXT; the same indexes. Differences: tasks have a
`seq` identity (insertion order, SQLite's rowid), and usage is one row per server and day whose
`members` object holds each member's credits, so that a charge checks both limits on one
locked row in one statement (see postgres_moderation.py).
"""

from __future__ import annotations

from typing import Final

# Each entry is one schema version; never edit a released entry, append a new one.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE tasks (
            id                 TEXT PRIMARY KEY,
            seq                BIGINT GENERATED ALWAYS AS IDENTITY,
            kind               TEXT NOT NULL,
            state              TEXT NOT NULL,
            params             TEXT NOT NULL,
            requester_id       BIGINT NOT NULL,
            guild_id           BIGINT,
            channel_id         BIGINT NOT NULL,
            application_id     BIGINT NOT NULL,
            interaction_id     BIGINT NOT NULL,
            interaction_token  TEXT NOT NULL,
            created_at         DOUBLE PRECISION NOT NULL,
            updated_at         DOUBLE PRECISION NOT NULL,
            reply_message_id   BIGINT,
            kie_task_id        TEXT,
            input_image_url    TEXT,
            parent_task_id     TEXT,
            callback_secret    TEXT,
            attempts           INTEGER NOT NULL DEFAULT 0,
            submitted_at       DOUBLE PRECISION,
            completed_at       DOUBLE PRECISION,
            delivered_at       DOUBLE PRECISION,
            result_url         TEXT,
            result_message_id  BIGINT,
            error_code         TEXT,
            error_message      TEXT,
            cost               DOUBLE PRECISION NOT NULL DEFAULT 0,
            retry_at           DOUBLE PRECISION,
            delivery_attempts  INTEGER NOT NULL DEFAULT 0,
            rerollable         BOOLEAN NOT NULL DEFAULT TRUE,
            reply_gone         BOOLEAN NOT NULL DEFAULT FALSE,
            upload_limit       BIGINT,
            spoiler            BOOLEAN NOT NULL DEFAULT FALSE,
            refunded           BOOLEAN NOT NULL DEFAULT FALSE,
            output_deleted_by  BIGINT,
            set_id             TEXT,
            set_index          INTEGER NOT NULL DEFAULT 0,
            set_size           INTEGER NOT NULL DEFAULT 1,
            private            BOOLEAN NOT NULL DEFAULT FALSE,
            result_channel_id  BIGINT,
            parent_action      TEXT,
            locale             TEXT,
            ref_name           TEXT
        )
        """,
        "CREATE INDEX tasks_state_created ON tasks (state, created_at)",
        "CREATE INDEX tasks_requester_state ON tasks (requester_id, state)",
        "CREATE UNIQUE INDEX tasks_kie_task_id ON tasks (kie_task_id)"
        " WHERE kie_task_id IS NOT NULL",
        "CREATE UNIQUE INDEX tasks_callback_secret ON tasks (callback_secret)"
        " WHERE callback_secret IS NOT NULL",
        "CREATE INDEX tasks_done_completed ON tasks (completed_at) WHERE state = 'done'",
        "CREATE INDEX tasks_guild_requester_completed"
        " ON tasks (guild_id, requester_id, completed_at)",
        "CREATE INDEX tasks_set ON tasks (set_id) WHERE set_id IS NOT NULL",
        "CREATE INDEX tasks_requester_created ON tasks (requester_id, created_at)",
        "CREATE INDEX tasks_guild_created ON tasks (guild_id, created_at)",
        """
        CREATE TABLE inputs (
            task_id       TEXT PRIMARY KEY,
            data          BYTEA NOT NULL,
            filename      TEXT NOT NULL,
            content_type  TEXT NOT NULL,
            created_at    DOUBLE PRECISION NOT NULL
        )
        """,
        """
        CREATE TABLE result_copies (
            task_id       TEXT PRIMARY KEY,
            data          BYTEA NOT NULL,
            filename      TEXT NOT NULL,
            content_type  TEXT NOT NULL,
            created_at    DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """
        CREATE TABLE guild_settings (
            guild_id    BIGINT PRIMARY KEY,
            data        TEXT NOT NULL,
            updated_at  DOUBLE PRECISION NOT NULL
        )
        """,
        """
        CREATE TABLE usage (
            guild_id  BIGINT NOT NULL,
            day       TEXT NOT NULL,
            members   JSONB NOT NULL DEFAULT '{}',
            PRIMARY KEY (guild_id, day)
        )
        """,
        """
        CREATE TABLE blocks (
            guild_id    BIGINT NOT NULL,
            user_id     BIGINT NOT NULL,
            until       DOUBLE PRECISION,
            reason      TEXT NOT NULL,
            blocked_by  BIGINT,
            created_at  DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        )
        """,
        """
        CREATE TABLE operator_blocks (
            user_id     BIGINT PRIMARY KEY,
            reason      TEXT,
            created_at  DOUBLE PRECISION NOT NULL
        )
        """,
        """
        CREATE TABLE refs (
            guild_id      BIGINT NOT NULL,
            name_key      TEXT NOT NULL,
            name          TEXT NOT NULL,
            note          TEXT,
            owner_id      BIGINT NOT NULL,
            data          BYTEA NOT NULL,
            filename      TEXT NOT NULL,
            content_type  TEXT NOT NULL,
            created_at    DOUBLE PRECISION NOT NULL,
            kie_url       TEXT,
            kie_url_at    DOUBLE PRECISION,
            PRIMARY KEY (guild_id, name_key)
        )
        """,
    ),
    (
        # Several processes on one ledger (issue 15): each open task is leased by the process
        # working on it; the KIE budget's recent calls; the order processes asked for a slot.
        "ALTER TABLE tasks ADD COLUMN owner TEXT",
        "ALTER TABLE tasks ADD COLUMN lease_until DOUBLE PRECISION NOT NULL DEFAULT 0",
        "CREATE INDEX tasks_open_lease ON tasks (lease_until) WHERE state IN "
        "('queued', 'submitting', 'generating', 'delivering')",
        """
        CREATE TABLE rate_slots (
            name  TEXT NOT NULL,
            at    DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX rate_slots_name_at ON rate_slots (name, at)",
        """
        CREATE TABLE rate_waiters (
            name    TEXT NOT NULL,
            waiter  TEXT NOT NULL,
            since   DOUBLE PRECISION NOT NULL,
            seen    DOUBLE PRECISION NOT NULL,
            turn    DOUBLE PRECISION NOT NULL DEFAULT 0,
            PRIMARY KEY (name, waiter)
        )
        """,
        # When each member was last given a slot: the waiter whose member waited longest
        # goes first, so members take turns across processes.
        """
        CREATE TABLE member_turns (
            name     TEXT NOT NULL,
            member   BIGINT NOT NULL,
            last_at  DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (name, member)
        )
        """,
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
