"""The operator's blocks from the command line: `python -m bot block USER_ID [--reason …]`,
`python -m bot unblock USER_ID` and `python -m bot blocks`.

They write to the ledger (DATABASE_URL) directly, so they work whether or not the bot runs; a
running bot reads the blocks at every request and applies a change at once.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any, Final

from bot.config import Settings
from bot.ledger import LedgerError, OperatorBlock, open_ledger
from bot.moderation.operator_rules import OperatorRules

COMMANDS: Final = ("block", "unblock", "blocks")


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


def describe(block: OperatorBlock) -> str:
    since = datetime.fromtimestamp(block.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    reason = f" — {block.reason}" if block.reason else ""
    return f"{block.user_id}  since {since}{reason}"
