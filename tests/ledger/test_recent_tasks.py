"""The ledger's recall queries: a member's (or a server's) latest tasks, and their latest requests
with a set counted once (/show's choices, /history)."""

from __future__ import annotations

from bot.ledger import Ledger, Task, TaskKind, TaskParams

MEMBER, OTHER, GUILD = 111, 999, 222


def task(
    number: int,
    *,
    user: int = MEMBER,
    guild: int | None = GUILD,
    prompt: str = "a fox",
    set_id: str | None = None,
    set_index: int = 0,
) -> Task:
    return Task(
        id=f"{number:012x}",
        kind=TaskKind.IMAGINE,
        params=TaskParams(prompt=prompt),
        requester_id=user,
        guild_id=guild,
        channel_id=333,
        application_id=444,
        interaction_id=555,
        interaction_token=f"tok-{number}",
        created_at=1000.0 + number,
        updated_at=1000.0 + number,
        set_id=set_id,
        set_index=set_index,
        set_size=4 if set_id else 1,
    )


async def insert(ledger: Ledger, *tasks: Task) -> None:
    for one in tasks:
        await ledger.insert(one)


async def test_recent_tasks_are_the_members_own_in_this_server_newest_first(
    ledger: Ledger,
) -> None:
    """Another member's task and the member's tasks elsewhere are left out; a limit holds."""
    await insert(
        ledger,
        task(1),
        task(2),
        task(3, user=OTHER),
        task(4, guild=None),
        task(5, guild=777),
        task(6),
        task(7),
    )
    mine = await ledger.recent_tasks(GUILD, requester_id=MEMBER, limit=3)
    assert [t.id for t in mine] == [f"{n:012x}" for n in (7, 6, 2)]


async def test_recent_tasks_of_everyone_and_outside_servers(ledger: Ledger) -> None:
    """Without a requester: everyone's in the server; guild None: the tasks outside servers."""
    await insert(ledger, task(1), task(2, user=OTHER), task(3, guild=None), task(4, guild=None))
    everyone = await ledger.recent_tasks(GUILD, limit=10)
    outside = await ledger.recent_tasks(None, requester_id=MEMBER, limit=10)
    assert ([t.id[-1] for t in everyone], [t.id[-1] for t in outside]) == (["2", "1"], ["4", "3"])


async def test_recent_tasks_search_matches_id_or_prompt_in_any_case(ledger: Ledger) -> None:
    """What the member typed so far narrows the list to ids or prompts containing it."""
    await insert(
        ledger,
        task(1, prompt="A Lighthouse in a storm"),
        task(2, prompt="a teapot"),
        task(0xABC, prompt="a cat"),
    )
    by_prompt = await ledger.recent_tasks(GUILD, requester_id=MEMBER, search="LIGHT", limit=10)
    by_id = await ledger.recent_tasks(GUILD, requester_id=MEMBER, search="abc", limit=10)
    assert ([t.id for t in by_prompt], [t.id for t in by_id]) == (
        [f"{1:012x}"],
        [f"{0xABC:012x}"],
    )


async def test_recent_requests_count_a_set_once_in_set_order(ledger: Ledger) -> None:
    """The 2 latest requests: a set of 4 (all its images, in order) and the single task
    before it; the oldest single task is past the limit."""
    first_of_set = f"{10:012x}"
    await insert(
        ledger,
        task(1),
        task(2),
        *(task(10 + i, set_id=first_of_set, set_index=i + 1) for i in (2, 0, 3, 1)),
        task(20, user=OTHER),
    )
    requests = await ledger.recent_requests(GUILD, MEMBER, limit=2)
    assert [(t.id[-2:], t.set_index) for t in requests] == [
        ("0a", 1),
        ("0b", 2),
        ("0c", 3),
        ("0d", 4),
        ("02", 0),
    ]
