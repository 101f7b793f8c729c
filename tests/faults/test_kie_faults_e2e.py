"""KIE faults end to end: every task ends with its image or a clear message, exactly once."""

from __future__ import annotations

from e2e_checks import ledger_rows, settled

from bot.runner import MAX_SUBMIT_ATTEMPTS


async def test_rate_limit_burst_requeues_and_delivers(discord_fake, kie_sim, bot_process, bot_env):
    """A 429 on generate puts the task back in the queue, says when it retries, then delivers."""
    kie_sim.fail_next("generate", status=200, code=429)
    inter = await discord_fake.slash("imagine", {"prompt": "a rate-limited castle"})
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(
        lambda: conv.original is not None and "retrying" in conv.original.text,
        10,
        what="a status saying when it retries",
    )
    # Back in the queue for the whole 10-s pause KIE's window needs.
    assert [r.state for r in ledger_rows(bot_env)] == ["queued"]
    rows = await settled(discord_fake, bot_env, timeout=30)
    assert rows[0].state == "done"
    assert kie_sim.count("generate") == 2
    assert conv.original.attachments


async def test_server_error_on_generate_is_retried(discord_fake, kie_sim, bot_process, bot_env):
    """A 500 and a 503 on generate are retried; the task still delivers."""
    kie_sim.fail_next("generate", status=500, code=500)
    kie_sim.fail_next("generate", status=503, code=503)
    await discord_fake.slash("imagine", {"prompt": "a persistent kettle"})
    rows = await settled(discord_fake, bot_env, timeout=30)
    assert rows[0].state == "done"
    assert kie_sim.count("generate") == 3


async def test_maintenance_is_explained(discord_fake, kie_sim, bot_process, bot_env):
    """455 (maintenance) on every generate ends with a clear message, not a hang."""
    kie_sim.fail_next("generate", status=200, code=455, count=5)
    inter = await discord_fake.slash("imagine", {"prompt": "a closed shop"})
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(lambda: "maintenance" in conv.text, 30, what="the reason")
    rows = await settled(discord_fake, bot_env, timeout=10)
    assert rows[0].error_code == "maintenance"
    assert kie_sim.count("generate") == MAX_SUBMIT_ATTEMPTS


async def test_persistent_server_errors_are_explained(discord_fake, kie_sim, bot_process, bot_env):
    """5xx on every generate attempt: tried MAX_SUBMIT_ATTEMPTS (3) times, then explained."""
    kie_sim.fail_next("generate", status=502, count=10)
    inter = await discord_fake.slash("imagine", {"prompt": "an unlucky moon"})
    rows = await settled(discord_fake, bot_env, timeout=40)
    assert rows[0].state == "failed"
    assert kie_sim.count("generate") == MAX_SUBMIT_ATTEMPTS == 3
    assert not kie_sim.tasks
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(lambda: "Re-roll" in conv.text, 10, what="the explanation")
    assert "Traceback" not in conv.text and "502" not in conv.text


async def test_malformed_json_and_resets_on_record_info(
    discord_fake, kie_sim, bot_process, bot_env
):
    """Garbage JSON and dropped connections on record-info only delay the result."""
    kie_sim.fail_next("record-info", malformed=True, count=2)
    kie_sim.fail_next("record-info", reset=True, count=4)
    inter = await discord_fake.slash("imagine", {"prompt": "a noisy line"})
    rows = await settled(discord_fake, bot_env, timeout=40)
    assert rows[0].state == "done"
    assert discord_fake.conversation(inter).original.attachments


async def test_malformed_json_on_generate(discord_fake, kie_sim, bot_process, bot_env):
    """A garbled generate answer is no answer: KIE may have created the task; no resend."""
    kie_sim.fail_next("generate", malformed=True, after_handling=True)
    inter = await discord_fake.slash("imagine", {"prompt": "a garbled reply"})
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(lambda: "Re-roll" in conv.text, 20, what="the explanation")
    rows = await settled(discord_fake, bot_env, timeout=20)
    assert (rows[0].state, rows[0].error_code) == ("failed", "no_answer")
    assert kie_sim.count("generate") == 1
    assert len(kie_sim.tasks) == 1


async def test_slow_kie_answers_only_delay(discord_fake, kie_sim, bot_process, bot_env):
    """KIE hanging for seconds on generate and record-info delays the task but does not stall it."""
    kie_sim.fail_next("generate", hang=1.5)
    kie_sim.fail_next("record-info", hang=1.5)
    await discord_fake.slash("imagine", {"prompt": "a slow snail"})
    rows = await settled(discord_fake, bot_env, timeout=30)
    assert rows[0].state == "done"


async def test_result_url_404_falls_back_to_download_url(
    discord_fake, kie_sim, bot_process, bot_env
):
    """A result URL that 404s is fetched through KIE's download-url endpoint instead."""
    kie_sim.fail_next("file", status=404)
    inter = await discord_fake.slash("imagine", {"prompt": "a lost parcel"})
    rows = await settled(discord_fake, bot_env, timeout=30)
    assert rows[0].state == "done"
    assert kie_sim.count("download-url") == 1
    assert discord_fake.conversation(inter).original.attachments


async def test_expired_result_fails_at_once(discord_fake, kie_sim, bot_process, bot_env):
    """A result past KIE's 14 days (download-url says it expired) fails at once, explained."""
    kie_sim.config.delay = 1.0

    def expire(task) -> None:
        kie_sim.advance(15 * 86400)

    kie_sim.on_task_finished = expire
    inter = await discord_fake.slash("imagine", {"prompt": "an old photograph"})
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(
        lambda: "could not be downloaded" in conv.text, 20, what="the explanation"
    )
    rows = await settled(discord_fake, bot_env, timeout=10)
    assert (rows[0].state, rows[0].error_code) == ("failed", "result_unavailable")
    # One direct try and one download-url question: nothing that cannot help is repeated.
    assert kie_sim.count("file") == 1
    assert kie_sim.count("download-url") == 1


async def test_content_policy_is_explained(discord_fake, kie_sim, bot_process, bot_env):
    """A task KIE refuses for its content ends with the reason, once."""
    kie_sim.script("content_policy")
    inter = await discord_fake.slash("imagine", {"prompt": "something refused"})
    conv = discord_fake.conversation(inter)
    # The Discord edit comes after the ledger's write: wait for the text itself.
    await discord_fake.wait_until(lambda: "content filter" in conv.text, 20, what="the reason")
    rows = await settled(discord_fake, bot_env, timeout=10)
    assert rows[0].error_code == "content_policy"
