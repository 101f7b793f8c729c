"""The ledger's saved references (table refs, migration 6)."""

from __future__ import annotations

import asyncio

from bot.ledger import Ledger, Reference, RefSaved, RefSummary

GUILD = 10
OTHER_GUILD = 20


def ref(name: str, *, guild: int = GUILD, size: int = 10, owner: int = 1) -> Reference:
    return Reference(
        guild_id=guild,
        name=name,
        note=f"note of {name}",
        owner_id=owner,
        data=b"x" * size,
        filename="ref.png",
        content_type="image/png",
        created_at=1_700_000_000.0,
    )


async def test_a_name_is_unique_per_server_in_any_case(ledger: Ledger) -> None:
    results = [
        await ledger.save_ref(ref("Hero"), limit=50),
        await ledger.save_ref(ref("hERO"), limit=50),
        await ledger.save_ref(ref("HERO", guild=OTHER_GUILD), limit=50),
    ]
    found = await ledger.get_ref(GUILD, "HERO")
    assert (results, found.name if found else None) == (
        [RefSaved.SAVED, RefSaved.DUPLICATE, RefSaved.SAVED],
        "Hero",
    )


async def test_the_limit_holds_when_saves_race(ledger: Ledger) -> None:
    results = await asyncio.gather(*(ledger.save_ref(ref(f"r{i}"), limit=3) for i in range(8)))
    assert (sorted(r.value for r in results), (await ledger.ref_storage(GUILD))[0]) == (
        ["full"] * 5 + ["saved"] * 3,
        3,
    )


async def test_list_names_and_storage(ledger: Ledger) -> None:
    await ledger.save_ref(ref("beta", size=5), limit=50)
    await ledger.save_ref(ref("Alpha", size=7, owner=2), limit=50)
    await ledger.save_ref(ref("gamma", guild=OTHER_GUILD, size=100), limit=50)
    assert (
        await ledger.list_refs(GUILD),
        await ledger.ref_names(GUILD, "A", limit=25),
        await ledger.ref_storage(GUILD),
        await ledger.ref_storage(),
    ) == (
        [
            RefSummary("Alpha", "note of Alpha", 2, 7, 1_700_000_000.0),
            RefSummary("beta", "note of beta", 1, 5, 1_700_000_000.0),
        ],
        ["Alpha", "beta"],
        (2, 12),
        (3, 112),
    )


async def test_delete_takes_the_bytes_with_it(ledger: Ledger) -> None:
    await ledger.save_ref(ref("hero", size=42), limit=50)
    deleted = await ledger.delete_ref(GUILD, "HERO")
    assert (
        deleted.data if deleted else None,
        await ledger.get_ref(GUILD, "hero"),
        await ledger.ref_storage(),
        await ledger.delete_ref(GUILD, "hero"),
    ) == (b"x" * 42, None, (0, 0), None)


async def test_the_upload_is_remembered(ledger: Ledger) -> None:
    await ledger.save_ref(ref("hero"), limit=50)
    await ledger.set_ref_upload(GUILD, "Hero", "https://kie/u/1.png", 1_700_000_100.0)
    found = await ledger.get_ref(GUILD, "hero")
    assert found is not None
    assert (found.kie_url, found.kie_url_at) == ("https://kie/u/1.png", 1_700_000_100.0)


async def test_name_search_takes_percent_underscore_and_backslash_literally(ledger: Ledger) -> None:
    """The search is a substring, not a pattern: `_`, `%` and `\\` match only themselves."""
    for name in ("a_b", "axb", "50%off", "50 off", "back\\slash", "backslash"):
        await ledger.save_ref(ref(name), limit=50)
    found = [await ledger.ref_names(GUILD, search, limit=25) for search in ("_", "%", "\\", "a_")]
    assert found == [["a_b"], ["50%off"], ["back\\slash"], ["a_b"]]
