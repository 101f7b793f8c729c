"""Cancel on a queued task's status, end to end: the real bot, the fake Discord, the simulator.

One task at a time (MAX_OPEN_TASKS=1) and a simulator that finishes nothing by itself hold the
member's later tasks in the queue until the test completes the first one at KIE.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from e2e_checks import ephemeral_texts, ledger_rows, settled
from fakediscord import FakeDiscord, FakeUser, MessageView

HELD = {"MAX_OPEN_TASKS": "1", "USER_MAX_ACTIVE_TASKS": "5"}
NEVER = 3600.0  # the simulator's delay: a task finishes when the test completes it


def credits_used(env: dict[str, str], user: FakeUser) -> float:
    """The member's credits charged today (every scope), as the ledger's usage has them."""
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT COALESCE(SUM(credits), 0) FROM usage WHERE user_id = ?", (user.id,)
        ).fetchone()
    return float(row[0])


def has_cancel(message: MessageView | None) -> bool:
    return message is not None and any(b.get("label") == "Cancel" for b in message.buttons)


async def queued_with_cancel(fake: FakeDiscord, inter: Any) -> MessageView:
    """The reply of `inter` once it shows the queued status with its Cancel button."""
    conv = fake.conversation(inter)
    await fake.wait_until(
        lambda: has_cancel(conv.original) and "Queued" in conv.text, 20, what="Cancel on the reply"
    )
    assert conv.original is not None
    return conv.original


async def answer_to(fake: FakeDiscord, click: Any) -> str:
    """The private answer to a click."""
    texts = await fake.wait_until(lambda: ephemeral_texts(fake, click), 20, what="the answer")
    return " ".join(texts)


def kie_prompts(kie_sim: Any) -> list[str]:
    return [t.request["prompt"] for t in kie_sim.tasks.values()]


def complete_at_kie(kie_sim: Any, prompt: str) -> None:
    kie_sim.complete(next(k for k, t in kie_sim.tasks.items() if t.request["prompt"] == prompt))


async def at_kie(fake: FakeDiscord, kie_sim: Any, prompt: str) -> None:
    await fake.wait_until(lambda: prompt in kie_prompts(kie_sim), 20, what=f"{prompt!r} at KIE")


async def test_cancel_queued_task_refunds_and_frees_its_turn(discord_fake, kie_sim, bot_factory):
    """Cancel on a queued task ends it as cancelled with its credits back, KIE never sees it,
    its reply says so, and the member's next task goes to KIE in its place."""
    kie_sim.config.delay = NEVER
    bot = await bot_factory(**HELD)
    member = discord_fake.member
    await discord_fake.slash("imagine", {"prompt": "first"})
    await at_kie(discord_fake, kie_sim, "first")
    second = await discord_fake.slash("imagine", {"prompt": "second"})
    reply = await queued_with_cancel(discord_fake, second)
    third = await discord_fake.slash("imagine", {"prompt": "third"})
    await queued_with_cancel(discord_fake, third)
    charged = credits_used(bot.env, member)

    click = await discord_fake.click(reply, label="Cancel")
    answer = await answer_to(discord_fake, click)
    conv = discord_fake.conversation(second)
    await discord_fake.wait_until(
        lambda: "Cancelled" in conv.text and not has_cancel(conv.original), 20, what="cancelled"
    )
    complete_at_kie(kie_sim, "first")
    await at_kie(discord_fake, kie_sim, "third")
    complete_at_kie(kie_sim, "third")
    rows = await settled(discord_fake, bot.env, count=3)

    cancelled = next(r for r in rows if r.reply_message_id == reply.id)
    assert (
        cancelled.state,
        cancelled.error_code,
        credits_used(bot.env, member),
        sorted(kie_prompts(kie_sim)),
        [r.state for r in rows if r is not cancelled],
        answer.startswith("Cancelled"),
    ) == ("failed", "cancelled", charged * 2 / 3, ["first", "third"], ["done", "done"], True)


async def test_cancel_button_is_gone_once_the_task_is_at_kie(discord_fake, kie_sim, bot_factory):
    """The queued reply carries Cancel; once the task is generating, its status has none."""
    kie_sim.config.delay = NEVER
    await bot_factory(**HELD)
    await discord_fake.slash("imagine", {"prompt": "first"})
    await at_kie(discord_fake, kie_sim, "first")
    second = await discord_fake.slash("imagine", {"prompt": "second"})
    await queued_with_cancel(discord_fake, second)

    complete_at_kie(kie_sim, "first")
    conv = discord_fake.conversation(second)
    await discord_fake.wait_until(
        lambda: "Generating" in conv.text, 20, what="the second task generating"
    )
    assert not has_cancel(conv.original)


async def test_cancel_by_another_member_is_refused_privately(discord_fake, kie_sim, bot_factory):
    """Someone else's click is told privately it isn't theirs; the task stays queued, charged."""
    kie_sim.config.delay = NEVER
    bot = await bot_factory(**HELD)
    await discord_fake.slash("imagine", {"prompt": "first"})
    await at_kie(discord_fake, kie_sim, "first")
    second = await discord_fake.slash("imagine", {"prompt": "second"})
    reply = await queued_with_cancel(discord_fake, second)
    charged = credits_used(bot.env, discord_fake.member)

    stranger = discord_fake.add_user("bob")
    click = await discord_fake.click(reply, label="Cancel", user=stranger)
    answer = await answer_to(discord_fake, click)
    row = next(r for r in ledger_rows(bot.env) if r.reply_message_id == reply.id)
    assert (
        "isn't yours" in answer,
        discord_fake.conversation(click).ephemeral,
        row.state,
        credits_used(bot.env, discord_fake.member),
    ) == (True, True, "queued", charged)


async def test_cancel_racing_the_scheduler_is_cancelled_or_sent_never_both(
    discord_fake, kie_sim, bot_factory
):
    """The click lands while the scheduler hands the task its turn (the first task's result is
    posted at that moment): the task is either cancelled (refunded, never at KIE) or sent (charged,
    at KIE), and the member's answer says which."""
    kie_sim.config.delay = NEVER
    bot = await bot_factory(**HELD)
    member = discord_fake.member
    await discord_fake.slash("imagine", {"prompt": "first"})
    await at_kie(discord_fake, kie_sim, "first")
    second = await discord_fake.slash("imagine", {"prompt": "second"})
    reply = await queued_with_cancel(discord_fake, second)
    charged = credits_used(bot.env, member)

    complete_at_kie(kie_sim, "first")
    # The first task's end frees the only slot: the scheduler dispatches "second" at once.
    await discord_fake.wait_until(
        lambda: any(r.state == "done" for r in ledger_rows(bot.env)), 20, what="the first done"
    )
    click = await discord_fake.click(reply, label="Cancel")
    answer = await answer_to(discord_fake, click)
    row = next(r for r in ledger_rows(bot.env) if r.reply_message_id == reply.id)
    cancelled = row.error_code == "cancelled"
    if not cancelled:
        await at_kie(discord_fake, kie_sim, "second")
        complete_at_kie(kie_sim, "second")
    await settled(discord_fake, bot.env, count=2)

    sent = "second" in kie_prompts(kie_sim)
    refunded = credits_used(bot.env, member) < charged
    said_cancelled = answer.startswith("Cancelled")
    assert (sent, refunded, said_cancelled) == (not cancelled, cancelled, cancelled)
