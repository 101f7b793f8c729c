"""The moderation store on both backends: settings, daily usage and its limits, blocks."""

from __future__ import annotations

import asyncio

from bot.ledger import Block, Ledger

DAY = "2026-12-03"
GUILD = 2**60 + 1


async def test_settings_round_trip_and_listing(ledger: Ledger) -> None:
    assert await ledger.get_guild_settings(GUILD) is None
    await ledger.put_guild_settings(GUILD, {"member_daily": 20, "names": ["ü", "✨"]})
    await ledger.put_guild_settings(7, {"a": None})
    await ledger.put_guild_settings(7, {"a": 1})
    assert await ledger.get_guild_settings(GUILD) == {"member_daily": 20, "names": ["ü", "✨"]}
    assert await ledger.all_guild_settings() == [
        (7, {"a": 1}),
        (GUILD, {"member_daily": 20, "names": ["ü", "✨"]}),
    ]


async def test_charges_stop_at_the_member_and_the_server_limit(ledger: Ledger) -> None:
    async def charge(user: int, amount: float) -> bool:
        return await ledger.charge_usage(
            GUILD, user, DAY, amount, member_limit=10.0, server_limit=25.0
        )

    assert [await charge(1, 5.0) for _ in range(3)] == [True, True, False]
    assert [await charge(2, 10.0) for _ in range(2)] == [True, False]
    assert await charge(3, 5.0) is True
    assert await charge(3, 0.5) is False  # the server is at 25
    assert await ledger.usage(GUILD, 1, DAY) == (10.0, 25.0)
    assert await ledger.usage(GUILD, 4, DAY) == (0.0, 25.0)
    assert await ledger.usage(GUILD, 1, "2026-12-04") == (0.0, 0.0)
    assert await ledger.charge_usage(GUILD, 9, DAY, 100.0, member_limit=None, server_limit=None)


async def test_refunds_never_go_below_zero_and_reset_clears_one_member(ledger: Ledger) -> None:
    await ledger.add_usage(GUILD, 1, DAY, 5.0)
    await ledger.add_usage(GUILD, 2, DAY, 3.0)
    await ledger.add_usage(GUILD, 1, DAY, -8.0)
    await ledger.add_usage(GUILD, 5, DAY, -1.0)
    assert await ledger.usage(GUILD, 1, DAY) == (0.0, 3.0)
    assert await ledger.usage(GUILD, 5, DAY) == (0.0, 3.0)
    await ledger.reset_usage(GUILD, 2, DAY)
    assert await ledger.usage(GUILD, 2, DAY) == (0.0, 0.0)


async def test_many_charges_at_once_never_pass_the_limits(ledger: Ledger) -> None:
    """40 charges of one credit at the same moment: the member's 7 pass, no more; then 30
    members at once against a server limit of 12 more: exactly 12 pass."""
    member = await asyncio.gather(
        *(
            ledger.charge_usage(GUILD, 1, DAY, 1.0, member_limit=7.0, server_limit=None)
            for _ in range(40)
        )
    )
    assert member.count(True) == 7
    server = await asyncio.gather(
        *(
            ledger.charge_usage(GUILD, 100 + n, DAY, 1.0, member_limit=5.0, server_limit=19.0)
            for n in range(30)
        )
    )
    assert server.count(True) == 12
    assert (await ledger.usage(GUILD, 1, DAY)) == (7.0, 19.0)


async def test_a_timed_block_never_replaces_a_permanent_one(ledger: Ledger) -> None:
    timed = Block(GUILD, 1, until=500.0, reason="cooldown", blocked_by=None, created_at=1.0)
    permanent = Block(GUILD, 1, until=None, reason="spam", blocked_by=2**62, created_at=2.0)
    await ledger.put_block(timed)
    assert await ledger.get_block(GUILD, 1) == timed
    await ledger.put_block(permanent)
    await ledger.put_block(timed)
    assert await ledger.get_block(GUILD, 1) == permanent
    assert await ledger.delete_block(GUILD, 1) is True
    assert await ledger.delete_block(GUILD, 1) is False
    assert await ledger.get_block(GUILD, 1) is None
