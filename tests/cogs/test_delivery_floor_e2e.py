"""Delivery at the floor (issue 16): after KIE's callback, one record-info call confirms the
result and one download brings it to Discord; the image goes out as KIE made it."""

from __future__ import annotations

from typing import Any

from e2e_checks import settled


async def test_a_callback_costs_one_record_info_and_one_download(
    discord_fake: Any, kie_sim: Any, bot_env: dict[str, str], bot_factory: Any
) -> None:
    """The confirmed callback's path: record-info once, the result file once, and the bytes
    Discord receives are the simulator's own (no re-encoding on the way)."""
    await bot_factory(PUBLIC_BASE_URL=f"http://127.0.0.1:{bot_env['HTTP_PORT']}")
    inter = await discord_fake.slash("imagine", {"prompt": "a lighthouse at dusk"})
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.files, timeout=30)
    await settled(discord_fake, bot_env)
    sim_task = next(iter(kie_sim.tasks.values()))
    sent = kie_sim._task_image(sim_task)  # what the simulator serves as the result
    assert (kie_sim.count("record-info"), kie_sim.count("file"), conv.files[0].data == sent) == (
        1,
        1,
        True,
    )
