"""Secrets never reach the log: the Discord token, the KIE key and the webhook HMAC key."""

from __future__ import annotations

import io
import logging

import aiohttp
import pytest
from e2e_checks import settled
from PIL import Image

from bot.logs import configure_logging

TOKEN = "MTIzNDU2Nzg5.discord-token-SECRET-7f3a9c"
KIE_KEY = "kie-key-SECRET-5b2e8d41"
HMAC_KEY = "hmac-key-SECRET-c0ffee77"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_filter_redacts_messages_arguments_and_tracebacks(fmt, capsys, restore_logging):
    """Secrets in a message, its %-arguments, an exception's traceback and a stack are redacted."""
    configure_logging("DEBUG", fmt, [TOKEN, KIE_KEY, HMAC_KEY])
    log = logging.getLogger("bot.test")
    log.info("token %s key %r", TOKEN, KIE_KEY)
    log.debug(f"header Authorization: Bearer {KIE_KEY}")
    try:
        raise RuntimeError(f"request failed with Bot {TOKEN} and {HMAC_KEY}")
    except RuntimeError:
        log.exception("failure while using %s", HMAC_KEY)
    log.warning("stack for %s", KIE_KEY, stack_info=True)
    logging.getLogger("discord.http").error("odd %s", {"Authorization": f"Bot {TOKEN}"})
    out = capsys.readouterr().out
    assert "RuntimeError" in out and "Traceback" in out
    for secret in (TOKEN, KIE_KEY, HMAC_KEY):
        assert secret not in out
        assert repr(secret) not in out
    assert out.count("[redacted]") >= 7


ITOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OmZha2UtaW50ZXJhY3Rpb24tdG9rZW4"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_filter_redacts_interaction_tokens_it_was_not_told(fmt, capsys, restore_logging):
    """Interaction tokens, unknown in advance, are redacted where discord.py and the bot would
    carry them: webhook and interaction-callback URLs (its DEBUG lines, its 429 warning, an
    exception's text), a payload's "token" and a task's interaction_token."""
    configure_logging("DEBUG", fmt, [])
    base = "https://discord.com/api/v10"
    webhook = logging.getLogger("discord.webhook.async_")
    webhook.setLevel(logging.DEBUG)  # configure_logging holds discord.py at INFO; lift it here
    try:
        webhook.debug(
            "Webhook ID %s with %s %s has returned status code %s",
            1234,
            "PATCH",
            f"{base}/webhooks/1234/{ITOKEN}/messages/@original",
            200,
        )
    finally:
        webhook.setLevel(logging.NOTSET)
    logging.getLogger("discord.http").warning(
        "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds.",
        "POST",
        f"{base}/interactions/5678/{ITOKEN}/callback?with_response=true",
        1.0,
    )
    url = f"{base}/webhooks/1234/{ITOKEN}"
    try:
        raise RuntimeError(f"400, url='{url}'")
    except RuntimeError:
        logging.getLogger("bot.test").exception("edit failed")
    logging.getLogger("bot.test").info("payload %s", {"id": "5678", "token": ITOKEN})
    logging.getLogger("bot.test").info("task Task(id='abc', interaction_token='%s')", ITOKEN)
    out = capsys.readouterr().out
    assert ITOKEN not in out
    assert "/webhooks/1234/[redacted]/messages/@original" in out
    assert "/interactions/5678/[redacted]/callback?with_response=true" in out
    assert "url='https://discord.com/api/v10/webhooks/1234/[redacted]'" in out
    assert "'token': '[redacted]'" in out
    assert "interaction_token='[redacted]'" in out


async def _exercise(discord_fake, kie_sim, bot_env, bot) -> None:
    """Representative flows: a callback-delivered image, a forged callback, an /edit, a KIE
    auth failure and a gateway drop."""
    inter = await discord_fake.slash("imagine", {"prompt": "a secret garden"})
    await settled(discord_fake, bot_env, timeout=20)
    assert discord_fake.conversation(inter).original.attachments
    sim_task = next(iter(kie_sim.tasks.values()))
    secret_path = sim_task.request["callBackUrl"].split("/kie/")[1]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{bot.http_url}/kie/{secret_path}",
            json=kie_sim.callback_payload(sim_task),
            headers={"X-Webhook-Timestamp": "1", "X-Webhook-Signature": HMAC_KEY},
        ) as resp,
    ):
        assert resp.status == 401
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(buf, "PNG")
    await discord_fake.slash(
        "edit", {"image": ("in.png", buf.getvalue(), "image/png"), "prompt": "make it blue"}
    )
    await settled(discord_fake, bot_env, count=2, timeout=20)
    # KIE now refuses the key: the task fails with a clear message (and the key is not logged).
    kie_sim.config.api_key = "some-other-key"
    await discord_fake.slash("imagine", {"prompt": "refused by KIE"})
    rows = await settled(discord_fake, bot_env, count=3, timeout=30)
    assert rows[-1].state == "failed"
    await discord_fake.drop_gateway()
    await discord_fake.wait_for_identify(2, timeout=15)


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_bot_log_holds_no_secret(discord_fake, kie_sim, bot_env, bot_factory, fmt):
    """At DEBUG, text or JSON, through successes, failures and reconnects: no secret logged."""
    discord_fake.token = TOKEN
    kie_sim.config.hmac_key = HMAC_KEY
    bot = await bot_factory(
        DISCORD_TOKEN=TOKEN,
        KIE_API_KEY=KIE_KEY,
        KIE_WEBHOOK_HMAC_KEY=HMAC_KEY,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{bot_env['HTTP_PORT']}",
        LOG_LEVEL="DEBUG",
        LOG_FORMAT=fmt,
        USER_MAX_ACTIVE_TASKS="5",
    )
    await _exercise(discord_fake, kie_sim, bot_env, bot)
    await bot.stop()
    raw = bot.log_path.read_bytes()
    assert len(raw) > 2000, "the log should hold the flows above"
    for secret in (TOKEN, KIE_KEY, HMAC_KEY):
        assert secret.encode() not in raw
        # Nor a recognisable piece of it (the distinctive middle part).
        assert secret.split("SECRET-")[1].encode() not in raw
    bot.assert_no_secrets()


async def test_a_whole_task_at_debug_logs_no_interaction_token(discord_fake, bot_env, bot_factory):
    """At LOG_LEVEL=DEBUG with discord.py's wire log on (DISCORD_LOG_LEVEL=DEBUG), a task from
    the command to the posted image (defer, status edits, the result) leaves no interaction
    token in the log, though every webhook URL that carried one is logged."""
    bot = await bot_factory(DISCORD_LOG_LEVEL="DEBUG")
    assert bot.env["LOG_LEVEL"] == "DEBUG"
    inter = await discord_fake.slash("imagine", {"prompt": "a secret lighthouse"})
    await settled(discord_fake, bot_env, timeout=20)
    assert discord_fake.conversation(inter).original.attachments
    await bot.stop()
    log_bytes = bot.log_path.read_bytes()
    assert f"/webhooks/{discord_fake.app_id}/".encode() in log_bytes  # the wire log is on
    assert inter.token.encode() not in log_bytes
    bot.assert_no_secrets()


async def test_admin_commands_carry_default_permissions(discord_fake, bot_process):
    """Any admin command is registered with default member permissions (hidden from members)."""
    commands = discord_fake.global_commands + [
        c for cmds in discord_fake.guild_commands.values() for c in cmds
    ]
    admin = [c for c in commands if "admin" in c["name"]]
    assert [c["name"] for c in admin] == ["kontext-admin"]
    for command in admin:
        # Null would show the command to everyone; "0" or a permission bit set hides it.
        assert command.get("default_member_permissions") is not None, command["name"]


async def test_admin_commands_check_permissions_at_run_time(discord_fake, bot_process):
    """A member without Manage Server who invokes /kontext-admin anyway is refused privately."""
    assert "kontext-admin" in discord_fake.command_names()
    inter = await discord_fake.slash("kontext-admin", subcommand="show", user=discord_fake.member)
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(lambda: conv.ephemeral_messages, 10, what="a refusal")
    assert "permission" in conv.text.lower()
