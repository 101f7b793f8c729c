"""The SQLite ledger's schema: numbered migrations, applied in order on open."""

from __future__ import annotations

from typing import Final

# Each entry is one schema version; never edit a released entry, append a new one.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE tasks (
            id                 TEXT PRIMARY KEY,
            kind               TEXT NOT NULL,
            state              TEXT NOT NULL,
            params             TEXT NOT NULL,
            requester_id       INTEGER NOT NULL,
            guild_id           INTEGER,
            channel_id         INTEGER NOT NULL,
            application_id     INTEGER NOT NULL,
            interaction_id     INTEGER NOT NULL,
            interaction_token  TEXT NOT NULL,
            created_at         REAL NOT NULL,
            updated_at         REAL NOT NULL,
            reply_message_id   INTEGER,
            kie_task_id        TEXT,
            input_image_url    TEXT,
            parent_task_id     TEXT,
            callback_secret    TEXT,
            attempts           INTEGER NOT NULL DEFAULT 0,
            submitted_at       REAL,
            completed_at       REAL,
            delivered_at       REAL,
            result_url         TEXT,
            result_message_id  INTEGER,
            error_code         TEXT,
            error_message      TEXT,
            cost               REAL NOT NULL DEFAULT 0,
            extra              TEXT NOT NULL DEFAULT '{}'
        )
        """,
        "CREATE INDEX tasks_state_created ON tasks (state, created_at)",
        "CREATE INDEX tasks_requester_state ON tasks (requester_id, state)",
        "CREATE UNIQUE INDEX tasks_kie_task_id ON tasks (kie_task_id) "
        "WHERE kie_task_id IS NOT NULL",
        "CREATE UNIQUE INDEX tasks_callback_secret ON tasks (callback_secret) "
        "WHERE callback_secret IS NOT NULL",
        "CREATE INDEX tasks_done_completed ON tasks (completed_at) WHERE state = 'done'",
        """
        CREATE TABLE inputs (
            task_id       TEXT PRIMARY KEY,
            data          BLOB NOT NULL,
            filename      TEXT NOT NULL,
            content_type  TEXT NOT NULL,
            created_at    REAL NOT NULL
        )
        """,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        # Moderation (issue #8): per-server settings, daily credit usage, blocks.
        """
        CREATE TABLE guild_settings (
            guild_id    INTEGER PRIMARY KEY,
            data        TEXT NOT NULL,
            updated_at  REAL NOT NULL
        )
        """,
        """
        CREATE TABLE usage (
            guild_id  INTEGER NOT NULL,
            user_id   INTEGER NOT NULL,
            day       TEXT NOT NULL,
            credits   REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (guild_id, day, user_id)
        )
        """,
        """
        CREATE TABLE blocks (
            guild_id    INTEGER NOT NULL,
            user_id     INTEGER NOT NULL,
            until       REAL,
            reason      TEXT NOT NULL,
            blocked_by  INTEGER,
            created_at  REAL NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        )
        """,
        "CREATE INDEX tasks_guild_requester_completed"
        " ON tasks (guild_id, requester_id, completed_at)",
    ),
    (
        # The operator's blocks (issue #11): `python -m bot block`, valid in every server and DM.
        """
        CREATE TABLE operator_blocks (
            user_id     INTEGER PRIMARY KEY,
            reason      TEXT,
            created_at  REAL NOT NULL
        )
        """,
    ),
    (
        # Control state as typed columns (issue #12), moved out of the JSON `extra` bag.
        "ALTER TABLE tasks ADD COLUMN retry_at REAL",
        "ALTER TABLE tasks ADD COLUMN delivery_attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN rerollable INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE tasks ADD COLUMN reply_gone INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN upload_limit INTEGER",
        "ALTER TABLE tasks ADD COLUMN spoiler INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN output_deleted_by INTEGER",
        """
        UPDATE tasks SET
            retry_at = json_extract(extra, '$.retry_at'),
            delivery_attempts = COALESCE(json_extract(extra, '$.delivery_attempts'), 0),
            rerollable = COALESCE(json_extract(extra, '$.rerollable'), 1) != 0,
            reply_gone = COALESCE(json_extract(extra, '$.reply_gone'), 0) != 0,
            upload_limit = json_extract(extra, '$.upload_limit'),
            spoiler = COALESCE(json_extract(extra, '$.spoiler'), 0) != 0,
            refunded = COALESCE(json_extract(extra, '$.refunded'), 0) != 0,
            output_deleted_by = json_extract(extra, '$.output_deleted_by')
        WHERE json_valid(extra) AND json_type(extra) = 'object'
        """,
        "ALTER TABLE tasks DROP COLUMN extra",
    ),
    (
        # Sets, private results and recall (issue #13).
        "ALTER TABLE tasks ADD COLUMN set_id TEXT",
        "ALTER TABLE tasks ADD COLUMN set_index INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN set_size INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE tasks ADD COLUMN private INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN result_channel_id INTEGER",
        "ALTER TABLE tasks ADD COLUMN parent_action TEXT",
        "CREATE INDEX tasks_set ON tasks (set_id) WHERE set_id IS NOT NULL",
        "CREATE INDEX tasks_requester_created ON tasks (requester_id, created_at)",
        # The bot's own copy of a result Discord cannot give back later (a private result's
        # ephemeral message is out of reach once its interaction token has run out).
        """
        CREATE TABLE result_copies (
            task_id       TEXT PRIMARY KEY,
            data          BLOB NOT NULL,
            filename      TEXT NOT NULL,
            content_type  TEXT NOT NULL,
            created_at    REAL NOT NULL
        )
        """,
        # A server's latest tasks, for a moderator's /show choices.
        "CREATE INDEX tasks_guild_created ON tasks (guild_id, created_at)",
    ),
    (
        # Saved references and every member's language (issue #14).
        "ALTER TABLE tasks ADD COLUMN locale TEXT",
        "ALTER TABLE tasks ADD COLUMN ref_name TEXT",
        """
        CREATE TABLE refs (
            guild_id      INTEGER NOT NULL,
            name_key      TEXT NOT NULL,
            name          TEXT NOT NULL,
            note          TEXT,
            owner_id      INTEGER NOT NULL,
            data          BLOB NOT NULL,
            filename      TEXT NOT NULL,
            content_type  TEXT NOT NULL,
            created_at    REAL NOT NULL,
            kie_url       TEXT,
            kie_url_at    REAL,
            PRIMARY KEY (guild_id, name_key)
        )
        """,
    ),
    (
        # Leases (issue 15). The SQLite ledger serves one process, which claims every open
        # task at start-up; the columns keep both backends' tasks alike.
        "ALTER TABLE tasks ADD COLUMN owner TEXT",
        "ALTER TABLE tasks ADD COLUMN lease_until REAL NOT NULL DEFAULT 0",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
