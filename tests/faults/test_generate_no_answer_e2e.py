"""A generate call that gets no answer is never resent blindly (KIE has no idempotency key).

When KIE created (and charged) the task but its answer was lost, the member is told plainly, the
task fails without a second create, and the operator sees the orphaned create in the log and in
/metrics (``kontext_kie_orphaned_creates_total``).
"""

from __future__ import annotations

import aiohttp
from e2e_checks import ledger_rows, settled
from e2e_helpers import BotProcess
from prometheus_client.parser import text_string_to_metric_families

ORPHANED = "kontext_kie_orphaned_creates_total"
REASON = "did not answer in time"


async def metric(bot: BotProcess, name: str) -> float:
    """One unlabelled sample of the bot's /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"{bot.http_url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} is not in /metrics")


async def _told_plainly(discord_fake, inter) -> None:
    """The reply says KIE did not answer and offers Re-roll, with no jargon."""
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(lambda: REASON in conv.text, 20, what="the reason")
    assert "Re-roll" in conv.text
    for jargon in ("Traceback", "Error", "transport", "timed out", "HTTP", "JSON", "taskId"):
        assert jargon not in conv.text
    assert [b.get("label") for b in conv.original.buttons] == ["Re-roll"]


async def _orphan_is_reported(discord_fake, kie_sim, bot: BotProcess) -> None:
    """Exactly one create reached KIE and was charged; the task failed; the operator can see it."""
    (row,) = await settled(discord_fake, bot.env, timeout=20)
    assert (row.state, row.error_code) == ("failed", "no_answer")
    assert kie_sim.count("generate") == 1
    assert len(kie_sim.tasks) == 1
    assert kie_sim.balances[bot.env["KIE_API_KEY"]] == kie_sim.config.credits - 5
    assert row.kie_task_id is None  # the bot never learnt KIE's id
    lines = [line for line in bot.log_text().splitlines() if "KIE may have created" in line]
    assert len(lines) == 1, f"expected one orphaned-create warning:\n{bot.log_text()}"
    assert "WARNING" in lines[0] and row.id in lines[0] and "credits may be spent" in lines[0]
    assert await metric(bot, ORPHANED) == 1


async def test_created_then_connection_dropped(discord_fake, kie_sim, bot_process):
    """KIE creates and charges the task, then drops the connection: no resend, one orphan."""
    kie_sim.fail_next("generate", reset=True, after_handling=True)
    inter = await discord_fake.slash("imagine", {"prompt": "a quiet harbour"})
    await _told_plainly(discord_fake, inter)
    await _orphan_is_reported(discord_fake, kie_sim, bot_process)


async def test_created_then_never_answered(discord_fake, kie_sim, bot_factory):
    """KIE creates and charges the task, then never answers (the bot times out): no resend."""
    bot = await bot_factory(KIE_REQUEST_TIMEOUT_SECONDS="1")
    kie_sim.fail_next("generate", hang=120.0, after_handling=True)
    inter = await discord_fake.slash("imagine", {"prompt": "a quiet harbour"})
    await _told_plainly(discord_fake, inter)
    await _orphan_is_reported(discord_fake, kie_sim, bot)


async def test_generate_timeout_is_not_resent(discord_fake, kie_sim, bot_factory):
    """When generate times out before KIE handled it, the task fails and nothing is resent."""
    bot = await bot_factory(KIE_REQUEST_TIMEOUT_SECONDS="1")
    kie_sim.fail_next("generate", hang=120.0)  # never handled while the test runs
    inter = await discord_fake.slash("imagine", {"prompt": "a quiet harbour"})
    await _told_plainly(discord_fake, inter)
    # The hung call was abandoned before the simulator answered (so it is not counted);
    # a resend would have been answered and counted.
    assert kie_sim.count("generate") == 0
    assert not kie_sim.tasks
    # The bot cannot tell this apart from a lost answer: it reports a possible orphan.
    assert await metric(bot, ORPHANED) == 1


async def test_dropped_connection_on_generate_is_not_resent(
    discord_fake, kie_sim, bot_process, bot_env
):
    """A connection dropped before KIE handled the create is explained, not retried."""
    kie_sim.fail_next("generate", reset=True)
    inter = await discord_fake.slash("imagine", {"prompt": "a quiet harbour"})
    await _told_plainly(discord_fake, inter)
    assert kie_sim.count("generate") == 1
    assert not kie_sim.tasks
    assert [r.error_code for r in ledger_rows(bot_env)] == ["no_answer"]
