"""The operator's blocks from the command line: `python -m bot block USER_ID [--reason …]`,
`python -m bot unblock USER_ID` and `python -m bot blocks`.

They write to the ledger (DATABASE_URL) directly, so they work whether or not the bot runs; a
running bot reads the blocks at every request and applies a change at once.

`python -m bot migrate-ledger --from sqlite:///… --to postgresql://…` copies a single
instance's ledger to an empty PostgreSQL database and proves the copy (bot.ledger.copy); it
needs no Discord or KIE settings.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any, Final

from bot.config import Settings, database_url_for_display, is_postgres_url, sqlite_path
from bot.ledger import LedgerError, OperatorBlock, open_ledger
from bot.ledger.copy import copy_ledger
from bot.moderation.operator_rules import OperatorRules

COMMANDS: Final = ("block", "unblock", "blocks")
MIGRATE_LEDGER: Final = "migrate-ledger"


def _user_id(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a Discord user id (a number)")
    return number


def add_parsers(sub: Any) -> None:
    """Add the three verbs to `python -m bot`'s sub-command parser."""
    block = sub.add_parser(
        "block", help="block a member from the bot everywhere: every server, DMs, private channels"
    )
    block.add_argument("user_id", type=_user_id, metavar="USER_ID", help="the member's user id")
    block.add_argument("--reason", default=None, help="a note for the operator (not shown)")
    unblock = sub.add_parser("unblock", help="lift an operator block")
    unblock.add_argument("user_id", type=_user_id, metavar="USER_ID", help="the member's user id")
    sub.add_parser("blocks", help="list the operator's blocks")
    migrate = sub.add_parser(
        MIGRATE_LEDGER, help="copy a SQLite ledger into an empty PostgreSQL database, verified"
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="sqlite:///FILE")
    migrate.add_argument("--to", dest="target", required=True, metavar="postgresql://…")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    ledger = open_ledger(settings.database_url)
    try:
        await ledger.open()
    except LedgerError as exc:
        print(f"Cannot open the ledger: {exc}", file=sys.stderr)
        return 1
    try:
        rules = OperatorRules(settings=settings, ledger=ledger)
        if args.command == "block":
            await rules.block(args.user_id, args.reason)
            print(f"Blocked user {args.user_id} everywhere (servers, DMs, private channels).")
        elif args.command == "unblock":
            if not await rules.unblock(args.user_id):
                print(f"User {args.user_id} was not blocked.")
                return 1
            print(f"Unblocked user {args.user_id}.")
        else:
            blocks = await rules.blocks()
            print("\n".join(describe(b) for b in blocks) if blocks else "No operator blocks.")
    except LedgerError as exc:
        print(f"The ledger refused: {exc}", file=sys.stderr)
        return 1
    finally:
        await ledger.close()
    return 0


async def migrate_ledger(args: argparse.Namespace) -> int:
    """Copy, then print each table's row counts and checksums; 1 unless every table matches."""
    try:
        source = sqlite_path(args.source)
    except ValueError:
        print("--from must be a sqlite:///path/to/file.sqlite3 URL", file=sys.stderr)
        return 2
    if not is_postgres_url(args.target):
        print("--to must be a postgresql:// (or postgres://) URL", file=sys.stderr)
        return 2
    target = database_url_for_display(args.target)
    try:
        proofs = await copy_ledger(source, args.target)
    except LedgerError as exc:
        print(f"Nothing copied: {exc}", file=sys.stderr)
        return 1
    for proof in proofs:
        verdict = "ok" if proof.ok else "MISMATCH"
        print(
            f"{proof.table}: {proof.source_rows} -> {proof.target_rows} rows,"
            f" sha256 {proof.source_sha256[:16]} -> {proof.target_sha256[:16]} {verdict}"
        )
    if not all(proof.ok for proof in proofs):
        print(f"The copy in {target} does not match the source.", file=sys.stderr)
        return 1
    print(f"Copied {source} to {target}: every table's count and checksum match.")
    return 0


def describe(block: OperatorBlock) -> str:
    since = datetime.fromtimestamp(block.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    reason = f" — {block.reason}" if block.reason else ""
    return f"{block.user_id}  since {since}{reason}"
