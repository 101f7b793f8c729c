"""KIE callbacks end to end: the bot's own HTTP server receives the simulator's callbacks."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web
from e2e_checks import ledger_rows, result_posts, settled, wait_terminal

from bot.kie_sim.callbacks import signature_headers
from bot.web import SIGNATURE_MAX_AGE

HMAC_KEY = "hmac-key-for-callback-tests"


def _base(bot_env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{bot_env['HTTP_PORT']}"


def _callback_env(bot_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {"PUBLIC_BASE_URL": _base(bot_env), **extra}


def _body(kie_task_id: str, url: str) -> dict[str, object]:
    return {
        "code": 200,
        "msg": "BFL image generated successfully.",
        "data": {"taskId": kie_task_id, "info": {"originImageUrl": url, "resultImageUrl": url}},
    }


async def _generating(discord_fake, bot_env, kie_sim):
    """Start one /imagine and wait until KIE has it; return (interaction, sim task, secret)."""
    inter = await discord_fake.slash("imagine", {"prompt": "a lighthouse at dusk"})
    await discord_fake.wait_until(lambda: kie_sim.tasks, 10, what="the task at KIE")
    sim_task = next(iter(kie_sim.tasks.values()))
    url = sim_task.request["callBackUrl"]
    return inter, sim_task, url.rsplit("/", 1)[1]


async def test_result_arrives_by_callback_quickly(discord_fake, kie_sim, bot_env, bot_factory):
    """With PUBLIC_BASE_URL set, KIE's callback brings the result at once, with one record-info."""
    await bot_factory(**_callback_env(bot_env))
    inter = await discord_fake.slash("imagine", {"prompt": "a lighthouse at dusk"})
    sim_task = await asyncio.wait_for(kie_sim.finished.get(), 10)
    finished = time.monotonic()
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(
        lambda: conv.original is not None and conv.original.attachments, 10, what="the image"
    )
    latency = time.monotonic() - finished
    print(f"callback delivery latency: {latency:.3f} s")
    assert sim_task.request["callBackUrl"].startswith(f"{_base(bot_env)}/kie/callback/")
    assert [c.status for c in kie_sim.callbacks] == [200]
    # The fallback poll is 30 s away: only the callback can explain a delivery within 15 s
    # (a bound that holds on a loaded machine; the printed figure is the measurement).
    assert latency < 15.0
    assert kie_sim.count("record-info") == 1
    await settled(discord_fake, bot_env)


async def test_duplicate_callbacks_deliver_once(discord_fake, kie_sim, bot_env, bot_factory):
    """KIE calling back twice, and once more after delivery, still posts the image once."""
    kie_sim.config.duplicate_callbacks = True
    await bot_factory(**_callback_env(bot_env))
    inter, sim_task, _secret = await _generating(discord_fake, bot_env, kie_sim)
    await wait_terminal(discord_fake, bot_env)
    await discord_fake.wait_until(lambda: len(kie_sim.callbacks) == 2, 5, what="two callbacks")
    # A third, late duplicate from KIE after the delivery: answered, and nothing more happens.
    assert await kie_sim.send_callback(sim_task.task_id)
    # A wrong re-delivery would start with a record-info poll the loop runs at once; a second
    # task taken through the same loop to its end comes after it.
    inter2 = await discord_fake.slash("imagine", {"prompt": "a second lighthouse"})
    rows = await settled(discord_fake, bot_env, count=2, timeout=20)
    assert [r.state for r in rows] == ["done", "done"]
    mine = [c.status for c in kie_sim.callbacks if c.payload["data"]["taskId"] == sim_task.task_id]
    assert mine == [200, 200, 200]
    assert kie_sim.count("record-info") == 2  # one per task
    assert len(result_posts(discord_fake)) == 2
    assert discord_fake.conversation(inter).original.attachments
    assert discord_fake.conversation(inter2).original.attachments


async def test_unknown_secret_is_404(discord_fake, kie_sim, bot_env, bot_factory):
    """A callback to a secret no task has is refused with 404 and changes nothing."""
    await bot_factory(**_callback_env(bot_env))
    _inter, sim_task, secret = await _generating(discord_fake, bot_env, kie_sim)
    async with aiohttp.ClientSession() as http:
        for bad in ("nope", secret[:-1] + ("A" if secret[-1] != "A" else "B"), "x" * 200):
            async with http.post(
                f"{_base(bot_env)}/kie/callback/{bad}",
                json=kie_sim.callback_payload(sim_task),
            ) as resp:
                assert resp.status == 404
    await wait_terminal(discord_fake, bot_env)
    await settled(discord_fake, bot_env)


async def test_bad_signatures_are_refused(discord_fake, kie_sim, bot_env, bot_factory):
    """With an HMAC key: wrong, missing and stale signatures get 401 and deliver nothing early."""
    kie_sim.config.hmac_key = "not-the-bot-key"
    kie_sim.config.callback_retry_delays = ()
    kie_sim.config.delay = 0.5
    await bot_factory(**_callback_env(bot_env, KIE_WEBHOOK_HMAC_KEY=HMAC_KEY))
    _inter, sim_task, secret = await _generating(discord_fake, bot_env, kie_sim)
    await discord_fake.wait_until(lambda: kie_sim.callbacks, 10, what="the simulator's callback")
    assert kie_sim.callbacks[0].status == 401
    url = f"{_base(bot_env)}/kie/callback/{secret}"
    payload = kie_sim.callback_payload(sim_task)
    now = int(time.time())
    attempts = {
        "missing": {},
        "wrong key": signature_headers("guess", sim_task.task_id, now),
        # A minute past the window either side: the bot's clock reads later than `now` by the
        # time it checks (the window's exact edges are tests/test_web_callbacks.py's).
        "stale": signature_headers(HMAC_KEY, sim_task.task_id, now - SIGNATURE_MAX_AGE - 60),
        "future": signature_headers(HMAC_KEY, sim_task.task_id, now + SIGNATURE_MAX_AGE + 60),
        "other task": signature_headers(HMAC_KEY, "some-other-task", now),
        "garbage timestamp": {"X-Webhook-Timestamp": "soon", "X-Webhook-Signature": "x"},
    }
    async with aiohttp.ClientSession() as http:
        for name, headers in attempts.items():
            async with http.post(url, json=payload, headers=headers) as resp:
                assert resp.status == 401, name
        assert ledger_rows(bot_env)[0].state == "generating"
        # The same callback, properly signed, is accepted and delivers at once.
        signed_at = time.monotonic()
        async with http.post(
            url, json=payload, headers=signature_headers(HMAC_KEY, sim_task.task_id, now)
        ) as resp:
            assert resp.status == 200
    await wait_terminal(discord_fake, bot_env, timeout=15)
    await settled(discord_fake, bot_env)
    # The fallback poll is 30 s away: the one record-info came from the signed callback, after
    # it; a refused callback that still nudged the bot would have polled before it.
    (poll,) = [c for c in kie_sim.calls if c.endpoint == "record-info"]
    assert poll.at > signed_at


async def test_signed_callbacks_from_kie_are_accepted(discord_fake, kie_sim, bot_env, bot_factory):
    """The simulator signing with the same key as the bot gets its callback accepted."""
    kie_sim.config.hmac_key = HMAC_KEY
    await bot_factory(**_callback_env(bot_env, KIE_WEBHOOK_HMAC_KEY=HMAC_KEY))
    await _generating(discord_fake, bot_env, kie_sim)
    rows = await wait_terminal(discord_fake, bot_env, timeout=15)
    assert [c.status for c in kie_sim.callbacks] == [200]
    assert rows[0].state == "done"
    assert kie_sim.count("record-info") == 1
    await settled(discord_fake, bot_env)


async def test_forged_callback_url_is_never_fetched(discord_fake, kie_sim, bot_env, bot_factory):
    """A callback whose body names a foreign image URL never makes the bot fetch that URL."""
    hits: list[str] = []

    async def trap(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=b"not the result", content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", trap)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    trap_url = f"http://127.0.0.1:{runner.addresses[0][1]}/evil.png"
    try:
        kie_sim.config.delay = 2.0
        await bot_factory(**_callback_env(bot_env))
        inter, sim_task, secret = await _generating(discord_fake, bot_env, kie_sim)
        await discord_fake.wait_until(
            lambda: ledger_rows(bot_env)[0].state == "generating", 5, what="generating"
        )
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{_base(bot_env)}/kie/callback/{secret}",
                json=_body(sim_task.task_id, trap_url),
            ) as resp,
        ):
            assert resp.status == 200
        # The bot confirms with record-info (still generating) and waits for the real result.
        await discord_fake.wait_until(
            lambda: kie_sim.count("record-info") >= 1, 5, what="a record-info check"
        )
        rows = await wait_terminal(discord_fake, bot_env, timeout=15)
        assert rows[0].state == "done"
        assert rows[0].stored_text.count("evil") == 0
        assert not hits, f"the bot fetched the forged URL: {hits}"
        image = discord_fake.conversation(inter).original.attachments[0].data
        assert image != b"not the result"
        await settled(discord_fake, bot_env)
    finally:
        await runner.cleanup()


async def test_callback_answers_fast_while_work_follows(
    discord_fake, kie_sim, bot_env, bot_factory
):
    """KIE's duplicate callback, sent while the bot downloads the result, is answered at once."""
    kie_sim.config.callback_retry_delays = ()
    kie_sim.config.duplicate_callbacks = True
    kie_sim.config.duplicate_callback_on = "file"  # the duplicate goes out as the download starts
    hang = 5.0
    kie_sim.fail_next("file", hang=hang)  # ...and the download then takes 5 s
    await bot_factory(**_callback_env(bot_env))
    await _generating(discord_fake, bot_env, kie_sim)
    await discord_fake.wait_until(lambda: len(kie_sim.callbacks) == 2, 15, what="the duplicate")
    first, duplicate = kie_sim.callbacks
    answered = duplicate.at - duplicate.sent
    print(f"duplicate callback answered in {answered * 1000:.1f} ms while the download hung")
    assert [first.status, duplicate.status] == [200, 200]
    rows = await wait_terminal(discord_fake, bot_env, timeout=15)
    assert rows[0].state == "done"
    (download,) = [c for c in kie_sim.calls if c.endpoint == "file"]
    # The download ended (its answer recorded) after the duplicate had been answered.
    assert duplicate.sent < duplicate.at < download.at
    await settled(discord_fake, bot_env)


async def test_callback_before_the_task_id_is_recorded(discord_fake, kie_sim, bot_env, bot_factory):
    """A callback that beats the bot's own bookkeeping of the submission is not lost."""
    kie_sim.config.callback_retry_delays = ()
    await bot_factory(**_callback_env(bot_env))
    # The task finishes at once: KIE's callback races the bot's own record of the submission.
    kie_sim.config.delay = 0.0
    started = time.monotonic()
    await discord_fake.slash("imagine", {"prompt": "a fast one"})
    rows = await settled(discord_fake, bot_env, timeout=10)
    took = time.monotonic() - started
    print(f"early callback: delivered {took:.2f} s after the command")
    assert rows[0].state == "done"
    assert took < 15.0  # the fallback poll would take 30 s; 15 s holds on a loaded machine
