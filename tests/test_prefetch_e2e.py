"""Prefetch on a verified callback (issue 16): the result is downloaded while record-info
confirms it, and posted only when record-info names the same URL."""

from __future__ import annotations

from typing import Any

import aiohttp
from e2e_checks import ledger_rows, settled


def callbacks_env(bot_env: dict[str, str]) -> dict[str, str]:
    return {"PUBLIC_BASE_URL": f"http://127.0.0.1:{bot_env['HTTP_PORT']}"}


async def deliver_one(discord_fake: Any, prompt: str) -> Any:
    inter = await discord_fake.slash("imagine", {"prompt": prompt})
    return await discord_fake.wait_for_conversation(inter, lambda c: c.files, timeout=30)


def order(kie_sim: Any) -> list[str]:
    """record-info calls and result downloads, in the order the simulator answered them."""
    return [c.endpoint for c in kie_sim.calls if c.endpoint in ("record-info", "file")]


async def test_the_result_is_downloaded_while_record_info_confirms_it(
    discord_fake: Any, kie_sim: Any, bot_env: dict[str, str], bot_factory: Any
) -> None:
    """The second task's record-info answers 2 s late: its result download, started on the
    callback, has ended before it; one record-info and one download per task, and Discord
    gets the simulator's own bytes."""
    await bot_factory(**callbacks_env(bot_env))
    kie_sim.config.delay = 1.0
    await deliver_one(discord_fake, "a lighthouse at dusk")  # KIE's file host is now known
    kie_sim.fail_next("record-info", hang=2.0)  # only slow: the answer is the real one
    conv = await deliver_one(discord_fake, "a second lighthouse")
    await settled(discord_fake, bot_env, count=2)
    second = next(t for t in kie_sim.tasks.values() if "second" in t.request["prompt"])
    assert (order(kie_sim), conv.files[0].data == kie_sim._task_image(second)) == (
        ["record-info", "file", "file", "record-info"],
        True,
    )


async def test_a_callback_naming_another_url_posts_record_infos_result(
    discord_fake: Any, kie_sim: Any, bot_env: dict[str, str], bot_factory: Any
) -> None:
    """A callback whose body names another image (on KIE's own file host, even) gets that
    image prefetched but never posted: record-info's result is downloaded and posted."""
    await bot_factory(**callbacks_env(bot_env))
    kie_sim.config.delay = 1.0
    await deliver_one(discord_fake, "a lighthouse at dusk")
    first = next(iter(kie_sim.tasks.values()))
    inter = await discord_fake.slash("imagine", {"prompt": "a second one [sim:delay=60]"})
    await discord_fake.wait_until(lambda: len(kie_sim.tasks) == 2, 10, what="the second task")
    second = next(t for t in kie_sim.tasks.values() if t is not first)
    await discord_fake.wait_until(
        lambda: sorted(r.state for r in ledger_rows(bot_env)) == ["done", "generating"],
        10,
        what="the second task generating",
    )
    # While KIE still generates: a callback for the second task naming the first's image.
    body = {
        "code": 200,
        "msg": "BFL image generated successfully.",
        "data": {
            "taskId": second.task_id,
            "info": {"originImageUrl": first.result_url, "resultImageUrl": first.result_url},
        },
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(second.request["callBackUrl"], json=body) as resp,
    ):
        assert resp.status == 200
    # Its record-info (still generating) and the first image fetched a second time.
    await discord_fake.wait_until(
        lambda: sorted(order(kie_sim)) == ["file", "file", "record-info", "record-info"], 10
    )
    kie_sim.complete(second.task_id)  # KIE finishes and calls back with the real URL
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.files, timeout=30)
    await settled(discord_fake, bot_env, count=2)
    assert conv.files[0].data == kie_sim._task_image(second)
    assert conv.files[0].data != kie_sim._task_image(first)
    assert order(kie_sim)[-2:] == ["record-info", "file"]  # record-info's URL, downloaded
