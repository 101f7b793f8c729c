"""A generate call that gets no answer is never resent blindly (KIE has no idempotency key)."""

from __future__ import annotations


async def test_generate_timeout_is_not_resent(discord_fake, kie_sim, bot_factory):
    """When generate times out, the task fails with a Re-roll hint and generate was called once."""
    await bot_factory(KIE_REQUEST_TIMEOUT_SECONDS="1")
    kie_sim.fail_next("generate", hang=3.0)
    inter = await discord_fake.slash("imagine", {"prompt": "a quiet harbour"})
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(
        lambda: "did not answer in time" in conv.text, 20, what="the reason"
    )
    original = conv.original
    assert original is not None
    assert [b.get("label") for b in original.buttons] == ["Re-roll"]
    # The hung call was abandoned before the simulator answered (so it is not counted);
    # a resend would have been answered and counted.
    assert kie_sim.count("generate") == 0
    assert not kie_sim.tasks


async def test_dropped_connection_on_generate_is_not_resent(discord_fake, kie_sim, bot_process):
    """A connection dropped after the create was sent is explained, not retried."""
    kie_sim.fail_next("generate", reset=True)
    inter = await discord_fake.slash("imagine", {"prompt": "a quiet harbour"})
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(
        lambda: "did not answer in time" in conv.text, 20, what="the reason"
    )
    assert kie_sim.count("generate") == 1
