"""/show and /history end to end: the real bot, the fake Discord (autocomplete included) and the
KIE simulator (whose results expire after 14 days)."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import aiohttp
from e2e_checks import ephemeral_texts, ledger_rows, wait_terminal
from fakediscord import FakeDiscord, FakeUser, MessageView

PAST_KIE_EXPIRY = 15 * 86400.0
LINK = re.compile(r"\(https://discord\.com/channels/(\d+)/(\d+)/(\d+)\)")


async def image_of(fake: FakeDiscord, inter: Any) -> MessageView:
    """The message with an image that answers `inter`."""
    conv = fake.conversation(inter)
    await fake.wait_until(
        lambda: any(m.attachments for m in conv.messages), 30, what="an image in the answer"
    )
    return next(m for m in conv.messages if m.attachments)


async def private_answer(fake: FakeDiscord, inter: Any) -> str:
    texts = await fake.wait_until(lambda: ephemeral_texts(fake, inter), 20, what="the answer")
    return " ".join(texts)


def task_id_of(message: MessageView) -> str:
    return str(message.embeds[0]["footer"]["text"]).removeprefix("Task ")


async def done_result(fake: FakeDiscord, env: dict[str, str], inter: Any) -> MessageView:
    """The result answering `inter`, once the ledger has its task done (the image shows in
    Discord a moment before the bot writes that it was delivered)."""
    result = await image_of(fake, inter)
    task_id = task_id_of(result)
    await fake.wait_until(
        lambda: any(r.id == task_id and r.state == "done" for r in ledger_rows(env)),
        20,
        what=f"task {task_id} done",
    )
    return result


async def imagine(
    fake: FakeDiscord, env: dict[str, str], prompt: str, user: FakeUser | None = None
) -> MessageView:
    return await done_result(fake, env, await fake.slash("imagine", {"prompt": prompt}, user=user))


async def kie_status(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status


async def test_show_posts_the_result_again_with_its_buttons(discord_fake, kie_sim, bot_process):
    """/show task:<id> answers publicly with the same image bytes, details and buttons."""
    result = await imagine(discord_fake, bot_process.env, "a lighthouse in a storm")
    shown = await image_of(
        discord_fake, await discord_fake.slash("show", {"task": task_id_of(result)})
    )
    labels = [b.get("label") for b in shown.buttons]
    assert (
        shown.attachments[0].data == result.attachments[0].data,
        shown.ephemeral,
        task_id_of(shown),
        "Re-roll" in labels and "Edit" in labels,
    ) == (True, False, task_id_of(result), True)


async def test_show_works_past_kies_expiry(discord_fake, kie_sim, bot_process):
    """15 days on, KIE answers 404 for the result; /show still posts the same bytes (read back
    from the delivered message's attachment)."""
    result = await imagine(discord_fake, bot_process.env, "a teapot on a cliff")
    task_id = task_id_of(result)
    kie_sim.advance(PAST_KIE_EXPIRY)
    expired = await kie_status(next(iter(kie_sim.tasks.values())).result_url)
    shown = await image_of(discord_fake, await discord_fake.slash("show", {"task": task_id}))
    assert (expired, shown.attachments[0].data == result.attachments[0].data) == (404, True)


async def test_show_of_a_deleted_message_past_expiry_says_it_is_gone(
    discord_fake, kie_sim, bot_process
):
    """The result message deleted and KIE's copy expired: a private "can't be shown any more",
    and no image is posted."""
    result = await imagine(discord_fake, bot_process.env, "a paper boat")
    result.message.deleted = True  # a moderator deleted it in Discord
    kie_sim.advance(PAST_KIE_EXPIRY)
    show = await discord_fake.slash("show", {"task": task_id_of(result)})
    answer = await private_answer(discord_fake, show)
    conv = discord_fake.conversation(show)
    assert ("can't be shown any more" in answer, [m for m in conv.messages if m.attachments]) == (
        True,
        [],
    )


async def test_show_is_refused_to_others_and_allowed_to_moderators(
    discord_fake, kie_sim, bot_process
):
    """Another member is told privately it isn't theirs; a moderator may show it."""
    result = await imagine(discord_fake, bot_process.env, "a green door")
    stranger = discord_fake.add_user("bob")
    refused = await discord_fake.slash("show", {"task": task_id_of(result)}, user=stranger)
    answer = await private_answer(discord_fake, refused)
    by_mod = await discord_fake.slash(
        "show", {"task": task_id_of(result)}, user=discord_fake.moderator
    )
    shown = await image_of(discord_fake, by_mod)
    assert (
        answer.startswith("Only the member who asked"),
        [m for m in discord_fake.conversation(refused).messages if m.attachments],
        shown.attachments[0].data == result.attachments[0].data,
    ) == (True, [], True)


async def test_show_of_an_unknown_id_is_a_clear_private_answer(discord_fake, kie_sim, bot_process):
    """An id no task has: a private answer that says so, nothing deferred or posted."""
    show = await discord_fake.slash("show", {"task": "<@everyone> nope"})
    answer = await private_answer(discord_fake, show)
    assert (answer.startswith("I can't find that task"), show.response_type) == (True, 4)


async def test_autocomplete_lists_the_members_own_recent_tasks(discord_fake, kie_sim, bot_factory):
    """The member's choices are their own tasks, newest first, named by prompt and state;
    another member's task is not among them, and a moderator sees all three."""
    bot = await bot_factory(USER_MAX_ACTIVE_TASKS="5")
    first = task_id_of(await imagine(discord_fake, bot.env, "a red fox"))
    second = task_id_of(await imagine(discord_fake, bot.env, "a blue whale"))
    other = task_id_of(
        await imagine(discord_fake, bot.env, "a parrot", user=discord_fake.add_user("bob"))
    )
    mine = await discord_fake.autocomplete("show", {"task": ""}, focused="task")
    typed = await discord_fake.autocomplete("show", {"task": "FOX"}, focused="task")
    moderator = await discord_fake.autocomplete(
        "show", {"task": ""}, focused="task", user=discord_fake.moderator
    )
    assert (
        [c["value"] for c in mine],
        mine[0]["name"].startswith("a blue whale · done · "),
        [c["value"] for c in typed],
        [c["value"] for c in moderator],
    ) == ([second, first], True, [first], [other, second, first])


async def history_of(fake: FakeDiscord, user: FakeUser | None = None, **options: Any) -> Any:
    inter = await fake.slash("history", options, user=user)
    conv = fake.conversation(inter)
    await fake.wait_until(lambda: conv.messages, 20, what="the history")
    return conv


async def test_history_lists_the_10_newest_with_links(discord_fake, kie_sim, bot_factory):
    """Of 11 images, the 10 newest, newest first, each with a link to its result message;
    the answer is private."""
    bot = await bot_factory(USER_MAX_ACTIVE_TASKS="12")
    asked = [await discord_fake.slash("imagine", {"prompt": f"image {n}"}) for n in range(11)]
    results = [await done_result(discord_fake, bot.env, inter) for inter in asked]
    conv = await history_of(discord_fake)
    lines = conv.messages[0].embeds[0]["description"].split("\n")
    linked = [int(m[3]) for line in lines for m in [LINK.search(line)] if m]
    assert (
        (
            conv.ephemeral,
            [re.search(r"image (\d+)", line)[1] for line in lines],  # type: ignore[index]
            linked,
            all("· done ·" in line for line in lines),
        )
        == (True, [str(n) for n in range(10, 0, -1)], [r.id for r in results[:0:-1]], True)
    )


async def test_history_of_another_member_is_for_moderators(discord_fake, kie_sim, bot_process):
    """`member:` from a member is refused privately; a moderator sees that member's images."""
    bob = discord_fake.add_user("bob")
    await imagine(discord_fake, bot_process.env, "bob's castle", user=bob)
    refused = await discord_fake.slash("history", {"member": bob})
    answer = await private_answer(discord_fake, refused)
    conv = await history_of(discord_fake, user=discord_fake.moderator, member=bob)
    description = conv.messages[0].embeds[0]["description"]
    assert (answer.startswith("Only moderators"), "castle" in description, conv.ephemeral) == (
        True,
        True,
        True,
    )


async def test_show_of_a_private_result_is_private_from_the_bots_copy(
    discord_fake, kie_sim, bot_process
):
    """A private result (ephemeral: Discord cannot give it back) is shown again privately, past
    KIE's expiry, from the bot's own copy."""
    asked = await discord_fake.slash("imagine", {"prompt": "a secret garden", "private": True})
    result = await done_result(discord_fake, bot_process.env, asked)
    kie_sim.advance(PAST_KIE_EXPIRY)
    show = await discord_fake.slash("show", {"task": task_id_of(result)})
    shown = await image_of(discord_fake, show)
    assert (
        result.ephemeral,
        shown.ephemeral,
        shown.attachments[0].data == result.attachments[0].data,
    ) == (True, True, True)


async def test_show_outside_servers_shows_the_members_own_task(discord_fake, kie_sim, bot_factory):
    """With ALLOW_DMS, /show in the bot's DM posts the member's DM result again (from KIE,
    which still keeps it: the bot cannot read its DM messages back)."""
    bot = await bot_factory(ALLOW_DMS="true", DM_DAILY_CREDITS="10")
    dm = discord_fake.dm_channel(discord_fake.member)
    asked = await discord_fake.slash("imagine", {"prompt": "a dm fox"}, channel=dm)
    result = await done_result(discord_fake, bot.env, asked)
    show = await discord_fake.slash("show", {"task": task_id_of(result)}, channel=dm)
    shown = await image_of(discord_fake, show)
    assert shown.attachments[0].data == result.attachments[0].data


async def test_history_counts_a_set_of_4_as_one_entry(discord_fake, kie_sim, bot_factory):
    """A request for 4 images is one entry "set of 4", after the single image before it."""
    bot = await bot_factory(USER_MAX_ACTIVE_TASKS="5")
    await imagine(discord_fake, bot.env, "a single owl")
    await discord_fake.slash("imagine", {"prompt": "four owls", "count": 4})
    await wait_terminal(discord_fake, bot.env, count=5)
    conv = await history_of(discord_fake)
    lines = conv.messages[0].embeds[0]["description"].split("\n")
    assert (len(lines), "four owls" in lines[0], "set of 4: 4 done" in lines[0]) == (2, True, True)


async def test_show_of_one_image_of_a_set_past_expiry_posts_that_image(
    discord_fake, kie_sim, bot_factory
):
    """Image 3 of a set of 4, past KIE's expiry: /show posts that image alone, the bytes of its
    attachment (kontext-<task>.<ext>) in the set's message."""
    bot = await bot_factory(USER_MAX_ACTIVE_TASKS="5")
    await discord_fake.slash("imagine", {"prompt": "four owls", "count": 4})
    await wait_terminal(discord_fake, bot.env, count=4)
    third, message_id = set_image(bot.env, 3)
    kie_sim.advance(PAST_KIE_EXPIRY)
    shown = await image_of(discord_fake, await discord_fake.slash("show", {"task": third}))
    posted = discord_fake.message(message_id)
    delivered = next(a for a in posted.attachments if third in a.filename)
    assert (
        len(posted.attachments),
        task_id_of(shown),
        shown.attachments[0].data == delivered.data,
    ) == (4, third, True)


def set_image(env: dict[str, str], index: int) -> tuple[str, int]:
    """The task id and result message of a set's image `index` (the ledger's set_index)."""
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        task_id, message_id = db.execute(
            "SELECT id, result_message_id FROM tasks WHERE set_index = ?", (index,)
        ).fetchone()
    return str(task_id), int(message_id)


async def moderator_sets(fake: FakeDiscord, sub: str, options: dict[str, Any], **kw: Any) -> None:
    inter = await fake.slash("kontext-admin", options, subcommand=sub, user=fake.moderator, **kw)
    await fake.wait_until(lambda: fake.conversation(inter).text, 10, what=f"/kontext-admin {sub}")


async def test_show_keeps_the_servers_rules_a_block_and_its_channels(
    discord_fake, kie_sim, bot_process
):
    """/show posts nothing where a new image could not be asked for: in a channel the server
    does not use the bot in, or for a member a moderator blocked."""
    result = await imagine(discord_fake, bot_process.env, "a lantern")
    art = discord_fake.add_channel("art")
    await moderator_sets(discord_fake, "add", {"channel": art}, group="channels")
    elsewhere = await discord_fake.slash("show", {"task": task_id_of(result)})
    channel_answer = await private_answer(discord_fake, elsewhere)
    await moderator_sets(discord_fake, "block", {"member": discord_fake.member})
    blocked = await discord_fake.slash("show", {"task": task_id_of(result)}, channel=art)
    block_answer = await private_answer(discord_fake, blocked)
    posted = [m.id for m in discord_fake.channel_messages() if m.attachments]
    assert (
        "isn't enabled in this channel" in channel_answer,
        "blocked you" in block_answer,
        posted,
    ) == (
        True,
        True,
        [result.id],
    )


async def test_show_is_private_where_the_server_forces_private_results(
    discord_fake, kie_sim, bot_process
):
    """A public result shown again after moderators made every result private: ephemeral."""
    result = await imagine(discord_fake, bot_process.env, "a harbour at dawn")
    await moderator_sets(discord_fake, "private", {"mode": "forced"})
    shown = await image_of(
        discord_fake, await discord_fake.slash("show", {"task": task_id_of(result)})
    )
    assert (result.ephemeral, shown.ephemeral) == (False, True)


async def test_show_of_a_failed_task_says_why_privately(discord_fake, kie_sim, bot_process):
    """A task KIE failed has no image: /show says so privately, with the failure's reason."""
    await discord_fake.slash("imagine", {"prompt": "a storm [sim:fail]"})
    rows = await wait_terminal(discord_fake, bot_process.env)
    show = await discord_fake.slash("show", {"task": rows[0].id})
    answer = await private_answer(discord_fake, show)
    assert (rows[0].state, answer.startswith("This task has no image: it failed — ")) == (
        "failed",
        True,
    )
