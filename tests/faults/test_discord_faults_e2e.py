"""Discord faults end to end: rate limits, 5xx, size limits, deleted replies, lost permissions,
expired tokens and gateway drops. Every task ends once, and the ledger agrees with Discord."""

from __future__ import annotations

import io

from e2e_checks import ledger_rows, result_posts, settled
from PIL import Image

REPLY = r"/webhooks/\d+/[^/]+/messages/(@original|\d+)$"
CHANNEL_MESSAGES = r"/channels/\d+/messages(/\d+)?$"


async def _generating(discord_fake, kie_sim, bot_env, prompt: str, **opts):
    inter = await discord_fake.slash("imagine", {"prompt": prompt, **opts})
    await discord_fake.wait_until(
        lambda: [r for r in ledger_rows(bot_env) if r.state == "generating"],
        10,
        what="the task generating",
    )
    return inter


async def test_rate_limits_on_edits(discord_fake, kie_sim, bot_process, bot_env):
    """429s on the reply's edits are waited out; the image arrives once."""
    fault = discord_fake.fail_next("PATCH", REPLY, status=429, count=3, retry_after=0.2)
    inter = await discord_fake.slash("imagine", {"prompt": "a queue of ducks"})
    rows = await settled(discord_fake, bot_env, timeout=30)
    assert rows[0].state == "done"
    assert len(fault.hits) == 3
    assert discord_fake.conversation(inter).original.attachments
    assert len(result_posts(discord_fake)) == 1


async def test_server_errors_on_the_upload(discord_fake, kie_sim, bot_process, bot_env):
    """5xx on the upload of the result is retried; the image arrives once."""
    kie_sim.config.delay = 1.0
    inter = await _generating(discord_fake, kie_sim, bot_env, "a shaky bridge")

    # Generating: the next edits of the reply carry the image.
    fault = discord_fake.fail_next("PATCH", REPLY, status=502, count=2)
    rows = await settled(discord_fake, bot_env, timeout=40)
    assert rows[0].state == "done"
    assert len(fault.hits) == 2
    assert discord_fake.conversation(inter).original.attachments


async def test_upload_over_the_size_limit_is_reencoded(discord_fake, kie_sim, bot_process, bot_env):
    """A result larger than the channel's upload limit is re-encoded to fit and posted."""
    limit = 150_000
    discord_fake.attachment_size_limit = limit
    discord_fake.channel_attachment_size_limit = limit
    kie_sim.config.result_noise = True
    kie_sim.config.result_long_side = 1400
    inter = await discord_fake.slash(
        "imagine", {"prompt": "a detailed forest", "output_format": "png"}
    )
    rows = await settled(discord_fake, bot_env, timeout=30)
    assert rows[0].state == "done"
    original_size = len(next(iter(kie_sim.tasks.values())).image or b"")
    posted = discord_fake.conversation(inter).original.attachments[0].data
    assert original_size > limit, "the simulator's image should not fit to begin with"
    assert len(posted) <= limit
    Image.open(io.BytesIO(posted)).verify()


async def test_deleted_reply_gets_a_new_message(discord_fake, kie_sim, bot_process, bot_env):
    """If the member deletes the reply before the result, a new message mentions them."""
    kie_sim.config.delay = 1.0
    inter = await _generating(discord_fake, kie_sim, bot_env, "a vanishing act")
    conv = discord_fake.conversation(inter)
    discord_fake.messages[conv.original.id].deleted = True
    rows = await settled(discord_fake, bot_env, timeout=20)
    assert rows[0].state == "done"
    message = discord_fake.message(rows[0].result_message_id)
    assert message.id != conv.original.id
    assert f"<@{discord_fake.member.id}>" in message.content
    mentions = next(iter(result_posts(discord_fake))).json["allowed_mentions"]
    assert [str(u) for u in mentions.get("users", [])] == [str(discord_fake.member.id)]
    assert not mentions.get("parse")


async def test_expired_token_uses_the_channel(discord_fake, kie_sim, bot_process, bot_env):
    """Past the interaction token's 15 minutes, the reply is edited through the channel."""
    kie_sim.config.delay = 1.0
    inter = await _generating(discord_fake, kie_sim, bot_env, "a slow sunrise")
    discord_fake.clock.advance(16 * 60)
    mark = discord_fake.mark()
    rows = await settled(discord_fake, bot_env, timeout=20)
    assert rows[0].state == "done"
    conv = discord_fake.conversation(inter)
    assert rows[0].result_message_id == conv.original.id
    assert conv.original.attachments
    (post,) = result_posts(discord_fake)
    assert post.path.startswith("/channels/")
    assert discord_fake.find_calls("PATCH", CHANNEL_MESSAGES, since=mark)


async def test_no_permission_after_the_token_expired(discord_fake, kie_sim, bot_process, bot_env):
    """Token expired, reply deleted, and the bot may not post: the task fails clearly, once."""
    kie_sim.config.delay = 1.0
    inter = await _generating(discord_fake, kie_sim, bot_env, "a locked room")
    conv = discord_fake.conversation(inter)
    discord_fake.clock.advance(16 * 60)
    discord_fake.messages[conv.original.id].deleted = True
    discord_fake.channel.bot_can_post = False
    rows = await settled(discord_fake, bot_env, timeout=20)
    assert rows[0].state == "failed"
    assert rows[0].error_code == "cannot_post"
    assert rows[0].result_message_id is None
    assert not result_posts(discord_fake)
    refused = discord_fake.find_calls("POST", r"/channels/\d+/messages$")
    assert refused and all(c.status == 403 for c in refused)


def _sent_after_resume(fake, inter) -> bool:
    """Whether the interaction's INTERACTION_CREATE went out after the client's RESUME."""
    frames = fake.gateway_frames
    resume = next(i for i, f in enumerate(frames) if f.direction == "recv" and f.op == 6)
    sent = [
        i
        for i, f in enumerate(frames)
        if f.direction == "send" and f.t == "INTERACTION_CREATE" and f.d["id"] == str(inter.id)
    ]
    return len(sent) == 1 and sent[0] > resume


async def test_gateway_drop_and_resume_mid_task(discord_fake, kie_sim, bot_process, bot_env):
    """A command sent while the gateway is down is replayed on RESUME and answered once; the
    task that was generating meanwhile delivers once."""
    discord_fake.accept_resume = True
    kie_sim.config.delay = 1.0
    inter = await _generating(discord_fake, kie_sim, bot_env, "a flickering signal")
    await discord_fake.drop_gateway()
    # No session is live now: the fake holds this interaction until the client RESUMEs.
    inter2 = await discord_fake.slash("imagine", {"prompt": "after the storm"})
    rows = await settled(discord_fake, bot_env, count=2, timeout=20)
    assert [r.state for r in rows] == ["done", "done"]
    assert len(discord_fake.resumes) == 1
    assert _sent_after_resume(discord_fake, inter2)
    assert discord_fake.conversation(inter2).response_types == [5]
    assert discord_fake.conversation(inter).original.attachments
    assert discord_fake.conversation(inter2).original.attachments
    assert len(result_posts(discord_fake)) == 2
    assert kie_sim.count("generate") == 2


async def test_gateway_drop_with_reidentify(discord_fake, kie_sim, bot_process, bot_env):
    """The gateway dropping right after it dispatched a command (RESUME refused, re-IDENTIFY
    ~5 s in discord.py) does not lose it: answered in time over REST, one image."""
    identifies = len(discord_fake.identifies)
    inter = await discord_fake.slash("imagine", {"prompt": "a long reconnect"})
    await discord_fake.drop_gateway()  # the bot has the INTERACTION_CREATE, not yet answered
    rows = await settled(discord_fake, bot_env, timeout=20)
    assert rows[0].state == "done"
    conv = discord_fake.conversation(inter)
    assert conv.response_types == [5]  # deferred once, within the 3 s the fake enforces
    assert conv.original.attachments
    assert kie_sim.count("generate") == 1
    await discord_fake.wait_for_identify(identifies + 1, timeout=15)
