"""The poll loop keeps the whole bot under KIE_MAX_POLLS_PER_SECOND record-info calls."""

from __future__ import annotations


async def test_record_info_rate_is_capped(discord_fake, kie_sim, bot_factory):
    """Twelve tasks polled every 0.2 s still cause at most 4 record-info calls in any 0.9 s."""
    kie_sim.config.delay = 3.0
    await bot_factory(KIE_MAX_POLLS_PER_SECOND="4", POLL_INTERVAL_SECONDS="0.2")
    interactions = []
    for n in range(12):
        user = discord_fake.add_user(f"member{n}")
        interactions.append(await discord_fake.slash("imagine", {"prompt": f"tile {n}"}, user=user))
    for inter in interactions:
        await discord_fake.wait_for_conversation(inter, lambda c: c.files, timeout=60)
    times = sorted(c.at for c in kie_sim.calls if c.endpoint == "record-info")
    assert len(times) >= 12
    busiest = max(sum(1 for t in times if start <= t < start + 0.9) for start in times)
    assert busiest <= 4
