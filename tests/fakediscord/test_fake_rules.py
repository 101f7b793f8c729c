"""The fake enforces the Discord rules the bot depends on (raw HTTP against the fake)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from fakediscord import FakeDiscord, FakeInteraction


async def api(
    fake: FakeDiscord,
    method: str,
    path: str,
    body: Any = None,
    *,
    files: list[tuple[str, bytes]] | None = None,
    auth: bool = True,
) -> tuple[int, Any, dict[str, str]]:
    """One raw request to the fake's REST API; returns (status, parsed body, headers)."""
    headers = {"Authorization": f"Bot {fake.token}"} if auth else {}
    kwargs: dict[str, Any] = {}
    if files is not None:
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("payload_json", json.dumps(body or {}))
        for i, (name, data) in enumerate(files):
            form.add_field(
                f"files[{i}]", data, filename=name, content_type="application/octet-stream"
            )
        kwargs["data"] = form
    elif body is not None:
        kwargs["json"] = body
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.api_url + path, headers=headers, **kwargs) as resp,
    ):
        raw = await resp.read()
        parsed = json.loads(raw) if raw and resp.content_type == "application/json" else raw
        return resp.status, parsed, dict(resp.headers)


RATE_LIMIT_429_HEADERS = (
    "Via",
    "Retry-After",
    "X-RateLimit-Bucket",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Scope",
)


def cb(inter: FakeInteraction) -> str:
    return f"/interactions/{inter.id}/{inter.token}/callback?with_response=1"


def hook(fake: FakeDiscord, inter: FakeInteraction, tail: str = "") -> str:
    return f"/webhooks/{fake.app_id}/{inter.token}{tail}"


async def test_login_routes_answer_exact_json_content_type(discord_fake: FakeDiscord) -> None:
    """REST answers carry Content-Type exactly application/json (discord.py compares it whole)."""
    status, body, headers = await api(discord_fake, "GET", "/users/@me")
    assert status == 200
    assert body["id"] == str(discord_fake.bot_user.id)
    assert headers["Content-Type"] == "application/json"
    status, body, _ = await api(discord_fake, "GET", "/oauth2/applications/@me")
    assert body["id"] == str(discord_fake.app_id)


async def test_bot_routes_need_the_token_webhook_routes_do_not(discord_fake: FakeDiscord) -> None:
    """Bot-API routes answer 401 without `Bot <token>`; interaction webhooks need none."""
    status, body, _ = await api(discord_fake, "GET", "/users/@me", auth=False)
    assert (status, body["code"]) == (401, 0)
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    status, _, _ = await api(discord_fake, "POST", cb(inter), {"type": 5}, auth=False)
    assert status == 200


async def test_callback_body_is_an_interaction_callback_response(discord_fake: FakeDiscord) -> None:
    """A type-5 callback answers the InteractionCallbackResponse shape and creates @original."""
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    status, body, _ = await api(discord_fake, "POST", cb(inter), {"type": 5, "data": {"flags": 64}})
    assert status == 200
    conv = discord_fake.conversation(inter)
    assert conv.original is not None
    assert body["interaction"]["response_message_id"] == str(conv.original.id)
    assert body["interaction"]["response_message_loading"] is True
    assert body["interaction"]["response_message_ephemeral"] is True
    assert body["resource"]["type"] == 5
    assert conv.ephemeral


async def test_second_callback_is_40060(discord_fake: FakeDiscord) -> None:
    """A second response to one interaction → 400 code 40060."""
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    assert (await api(discord_fake, "POST", cb(inter), {"type": 5}))[0] == 200
    status, body, _ = await api(
        discord_fake, "POST", cb(inter), {"type": 4, "data": {"content": "hi"}}
    )
    assert status == 400
    assert body == {"message": "Interaction has already been acknowledged.", "code": 40060}
    assert discord_fake.conversation(inter).response_types == [5]


@pytest.mark.parametrize(
    ("method", "tail", "body"),
    [
        ("POST", "callback", {"type": 5}),
        ("PATCH", "/messages/@original", {"content": "late"}),
        ("GET", "/messages/@original", None),
        ("POST", "?wait=1", {"content": "late"}),
    ],
)
async def test_token_older_than_15_minutes_is_50027(
    discord_fake: FakeDiscord, method: str, tail: str, body: Any
) -> None:
    """After the fake clock moves past 15 minutes, callback/@original/followup → 401 50027."""
    # Off: this pins the 15-minute check; a first callback that late is the 3-second rule's case.
    discord_fake.enforce_initial_response_deadline = False
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    if tail != "callback":
        assert (await api(discord_fake, "POST", cb(inter), {"type": 5}))[0] == 200
    discord_fake.clock.advance(14 * 60)
    path = cb(inter) if tail == "callback" else hook(discord_fake, inter, tail)
    ok, _, _ = await api(discord_fake, "GET", hook(discord_fake, inter, "/messages/@original"))
    assert ok == (404 if tail == "callback" else 200)
    discord_fake.clock.advance(61)
    status, resp, _ = await api(discord_fake, method, path, body)
    assert (status, resp["code"], resp["message"]) == (401, 50027, "Invalid Webhook Token")


async def test_deleted_messages_answer_10008_and_stay_recorded(discord_fake: FakeDiscord) -> None:
    """Editing a deleted @original or channel message → 404 10008; the message stays recorded."""
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    await api(discord_fake, "POST", cb(inter), {"type": 4, "data": {"content": "hi"}})
    original = hook(discord_fake, inter, "/messages/@original")
    assert (await api(discord_fake, "DELETE", original))[0] == 204
    status, body, _ = await api(discord_fake, "PATCH", original, {"content": "again"})
    assert (status, body["code"], body["message"]) == (404, 10008, "Unknown Message")
    conv = discord_fake.conversation(inter)
    assert conv.original is not None
    assert conv.original.deleted
    assert conv.original.content == "hi"

    ch = discord_fake.channel.id
    _, msg, _ = await api(discord_fake, "POST", f"/channels/{ch}/messages", {"content": "post"})
    path = f"/channels/{ch}/messages/{msg['id']}"
    assert (await api(discord_fake, "GET", path))[1]["content"] == "post"
    assert (await api(discord_fake, "DELETE", path))[0] == 204
    status, body, _ = await api(discord_fake, "PATCH", path, {"content": "x"})
    assert (status, body["code"]) == (404, 10008)
    assert (await api(discord_fake, "GET", path))[0] == 404
    assert discord_fake.message(int(msg["id"])).deleted


async def test_attachment_size_limit_is_40005(discord_fake: FakeDiscord) -> None:
    """Uploads above the interaction's attachment_size_limit → 413 40005; within it they land."""
    inter = await discord_fake.slash("imagine", {"prompt": "x"}, attachment_size_limit=100)
    assert inter.payload["attachment_size_limit"] == 100
    await api(discord_fake, "POST", cb(inter), {"type": 5})
    original = hook(discord_fake, inter, "/messages/@original")
    body = {"content": "big", "attachments": [{"id": 0, "filename": "big.png"}]}
    status, resp, _ = await api(
        discord_fake, "PATCH", original, body, files=[("big.png", b"x" * 101)]
    )
    assert (status, resp["code"], resp["message"]) == (413, 40005, "Request entity too large")
    status, resp, _ = await api(
        discord_fake, "POST", hook(discord_fake, inter, "?wait=1"), body, files=[("b", b"x" * 101)]
    )
    assert (status, resp["code"]) == (413, 40005)
    status, resp, _ = await api(
        discord_fake, "PATCH", original, body, files=[("big.png", b"x" * 100)]
    )
    assert status == 200
    assert resp["attachments"][0]["size"] == 100


@pytest.mark.parametrize(
    ("payload", "error_path"),
    [
        ({"content": "x" * 2001}, ["content"]),
        ({"embeds": [{"title": "t"}] * 11}, ["embeds"]),
        ({"embeds": [{"title": "t" * 257}]}, ["embeds", "0", "title"]),
        ({"embeds": [{"description": "d" * 4097}]}, ["embeds", "0", "description"]),
        (
            {"content": "c", "components": [{"type": 1, "components": []}] * 6},
            ["components"],
        ),
        (
            {
                "content": "c",
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {"type": 2, "style": 1, "label": "b", "custom_id": f"b{i}"}
                            for i in range(6)
                        ],
                    }
                ],
            },
            ["components", "0", "components", "5"],
        ),
        (
            {
                "content": "c",
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {"type": 2, "style": 1, "label": "L" * 81, "custom_id": "a"}
                        ],
                    }
                ],
            },
            ["components", "0", "components", "0", "label"],
        ),
        (
            {
                "content": "c",
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {"type": 2, "style": 1, "label": "l", "custom_id": "c" * 101}
                        ],
                    }
                ],
            },
            ["components", "0", "components", "0", "custom_id"],
        ),
    ],
)
async def test_message_limits_are_50035(
    discord_fake: FakeDiscord, payload: dict[str, Any], error_path: list[str]
) -> None:
    """Content/embed/component limits → 400 50035 with Discord's nested errors body."""
    status, body, _ = await api(
        discord_fake, "POST", f"/channels/{discord_fake.channel.id}/messages", payload
    )
    assert (status, body["code"], body["message"]) == (400, 50035, "Invalid Form Body")
    node = body["errors"]
    for key in error_path:
        node = node[key]
    assert node["_errors"]
    assert not discord_fake.channel_messages()


async def test_callback_content_limit_is_50035_under_data(discord_fake: FakeDiscord) -> None:
    """A too-long callback message reports the error under `data` and does not acknowledge."""
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    status, body, _ = await api(
        discord_fake, "POST", cb(inter), {"type": 4, "data": {"content": "x" * 2001}}
    )
    assert (status, body["code"]) == (400, 50035)
    assert "content" in body["errors"]["data"]
    assert not inter.acknowledged


async def test_channel_the_bot_cannot_post_in_is_50013(discord_fake: FakeDiscord) -> None:
    """A channel marked bot_can_post=False → 403 50013 on posts and typing."""
    closed = discord_fake.add_channel("closed", bot_can_post=False)
    status, body, _ = await api(
        discord_fake, "POST", f"/channels/{closed.id}/messages", {"content": "x"}
    )
    assert (status, body["code"], body["message"]) == (403, 50013, "Missing Permissions")
    assert (await api(discord_fake, "POST", f"/channels/{closed.id}/typing"))[0] == 403
    assert (await api(discord_fake, "POST", f"/channels/{discord_fake.channel.id}/typing"))[
        0
    ] == 204


async def test_multipart_is_parsed_into_json_and_file_bytes(discord_fake: FakeDiscord) -> None:
    """payload_json becomes call.json, files[n] keep their bytes, uploads get fake-CDN URLs."""
    body = {
        "content": "two",
        "attachments": [{"id": 0, "filename": "a.png"}, {"id": 1, "filename": "b.txt"}],
    }
    status, msg, _ = await api(
        discord_fake,
        "POST",
        f"/channels/{discord_fake.channel.id}/messages",
        body,
        files=[("a.png", b"\x89PNG"), ("b.txt", b"hello")],
    )
    assert status == 200
    call = discord_fake.find_calls("POST", r"/messages$")[0]
    assert call.json == body
    assert [(f.name, f.filename, f.data) for f in call.files] == [
        ("files[0]", "a.png", b"\x89PNG"),
        ("files[1]", "b.txt", b"hello"),
    ]
    view = discord_fake.message(int(msg["id"]))
    assert [(a.filename, a.data) for a in view.attachments] == [
        ("a.png", b"\x89PNG"),
        ("b.txt", b"hello"),
    ]
    assert view.attachments[0].content_type == "image/png"
    assert msg["attachments"][0]["url"].startswith(discord_fake.base_url + "/cdn/")


async def test_cdn_serves_injected_and_uploaded_files(discord_fake: FakeDiscord) -> None:
    """The CDN route serves test-injected attachments and the bot's uploads by URL."""
    att = discord_fake.add_cdn_file("in.png", b"PNGBYTES", "image/png")
    async with aiohttp.ClientSession() as session:
        async with session.get(att["url"]) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "image/png"
            assert await resp.read() == b"PNGBYTES"
        async with session.get(f"{discord_fake.base_url}/cdn/1/missing.png") as resp:
            assert resp.status == 404
    _, msg, _ = await api(
        discord_fake,
        "POST",
        f"/channels/{discord_fake.channel.id}/messages",
        {"attachments": [{"id": 0, "filename": "out.png"}]},
        files=[("out.png", b"OUT")],
    )
    async with (
        aiohttp.ClientSession() as session,
        session.get(msg["attachments"][0]["url"]) as resp,
    ):
        assert await resp.read() == b"OUT"
    assert discord_fake.find_calls("GET", r"^/cdn/")


async def test_unknown_route_is_404_and_recorded(discord_fake: FakeDiscord) -> None:
    """An unknown route answers 404 and lands in fake.unhandled (the fixture fails on it)."""
    status, body, _ = await api(discord_fake, "POST", "/guilds/1/bans/2", {"x": 1})
    assert (status, body["code"]) == (404, 0)
    assert [(c.method, c.path, c.json) for c in discord_fake.unhandled] == [
        ("POST", "/guilds/1/bans/2", {"x": 1})
    ]
    discord_fake.unhandled.clear()


async def test_fail_next_injects_429_5xx_and_codes(discord_fake: FakeDiscord) -> None:
    """fail_next answers N matching calls with Discord's 429 (headers, body), 5xx or a code."""
    path = f"/channels/{discord_fake.channel.id}/messages"
    discord_fake.fail_next("POST", r"/messages$", status=429, retry_after=0.25)
    status, body, headers = await api(discord_fake, "POST", path, {"content": "x"})
    assert status == 429
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "message": "You are being rate limited.",
        "code": 0,
        "retry_after": 0.25,
        "global": False,
    }
    assert {k: headers[k] for k in RATE_LIMIT_429_HEADERS if k != "X-RateLimit-Reset"} == {
        "Via": "1.1 google",
        "Retry-After": "1",
        "X-RateLimit-Bucket": headers["X-RateLimit-Bucket"],
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": "0.250",
        "X-RateLimit-Scope": "user",
    }
    assert len(headers["X-RateLimit-Bucket"]) == 16
    assert float(headers["X-RateLimit-Reset"]) > 0
    discord_fake.fail_next("*", r"/messages$", status=503, count=2)
    assert (await api(discord_fake, "POST", path, {"content": "x"}))[0] == 503
    assert (await api(discord_fake, "POST", path, {"content": "x"}))[0] == 503
    discord_fake.fail_next("POST", r"/messages$", status=403, code=50013)
    status, body, _ = await api(discord_fake, "POST", path, {"content": "x"})
    assert (status, body["code"], body["message"]) == (403, 50013, "Missing Permissions")
    assert (await api(discord_fake, "POST", path, {"content": "x"}))[0] == 200
    assert [c.status for c in discord_fake.calls] == [429, 503, 503, 403, 200]


async def test_first_followup_after_defer_takes_over_the_loading_message(
    discord_fake: FakeDiscord,
) -> None:
    """After a type-5 defer the first followup becomes @original; the next is a new message."""
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    await api(discord_fake, "POST", cb(inter), {"type": 5, "data": {"flags": 64}})
    _, first, _ = await api(
        discord_fake, "POST", hook(discord_fake, inter, "?wait=1"), {"content": "one"}
    )
    _, second, _ = await api(
        discord_fake, "POST", hook(discord_fake, inter, "?wait=1"), {"content": "two"}
    )
    conv = discord_fake.conversation(inter)
    assert conv.original is not None
    assert first["id"] == str(conv.original.id)
    assert conv.original.content == "one"
    assert not conv.original.loading
    assert conv.ephemeral
    assert [m.content for m in conv.followups] == ["two"]
    assert second["id"] == str(conv.followups[0].id)
    path = hook(discord_fake, inter, f"/messages/{second['id']}")
    assert (await api(discord_fake, "PATCH", path, {"content": "2"}))[1]["content"] == "2"
    assert (await api(discord_fake, "DELETE", path))[0] == 204
    assert conv.followups[0].deleted


async def test_component_callbacks_6_and_7_target_the_clicked_message(
    discord_fake: FakeDiscord,
) -> None:
    """Type 6/7 on a click target the clicked message; 7 edits it; type 9 records a modal."""
    ch = discord_fake.channel.id
    row = {"type": 1, "components": [{"type": 2, "style": 1, "label": "Go", "custom_id": "go"}]}
    _, msg, _ = await api(
        discord_fake, "POST", f"/channels/{ch}/messages", {"content": "m", "components": [row]}
    )
    click = await discord_fake.click(int(msg["id"]), label="Go")
    assert click.payload["message"]["id"] == msg["id"]
    status, body, _ = await api(
        discord_fake, "POST", cb(click), {"type": 7, "data": {"content": "edited"}}
    )
    assert status == 200
    assert body["interaction"]["response_message_id"] == msg["id"]
    assert discord_fake.message(int(msg["id"])).content == "edited"
    assert discord_fake.message(int(msg["id"])).history[0]["content"] == "m"

    click2 = await discord_fake.click(int(msg["id"]), custom_id="go", user=discord_fake.moderator)
    await api(discord_fake, "POST", cb(click2), {"type": 6})
    assert discord_fake.conversation(click2).original.id == int(msg["id"])
    assert click2.payload["member"]["permissions"] == str(discord_fake.moderator.permissions)

    click3 = await discord_fake.click(int(msg["id"]), label="Go")
    modal = {
        "custom_id": "m1",
        "title": "Prompt",
        "components": [
            {
                "type": 1,
                "components": [{"type": 4, "custom_id": "p", "label": "Prompt", "style": 1}],
            }
        ],
    }
    await api(discord_fake, "POST", cb(click3), {"type": 9, "data": modal})
    assert discord_fake.conversation(click3).modal == modal
    submit = await discord_fake.submit_modal(click3, {"p": "a dog"})
    assert submit.payload["data"]["components"][0]["components"][0]["value"] == "a dog"
    assert submit.payload["message"]["id"] == msg["id"]
    with pytest.raises(AssertionError):
        discord_fake.build_modal_submit(click3, {"nope": "x"})


async def test_slash_builder_shapes_options_and_resolved(discord_fake: FakeDiscord) -> None:
    """Slash payloads carry snowflake ids, string option ids keyed into resolved, subcommands."""
    inter = await discord_fake.slash(
        "kontext-admin",
        {"member": discord_fake.member},
        subcommand="block",
        user=discord_fake.moderator,
    )
    p = inter.payload
    assert p["data"]["options"][0] == {
        "name": "block",
        "type": 1,
        "options": [{"name": "member", "type": 6, "value": str(discord_fake.member.id)}],
    }
    assert str(discord_fake.member.id) in p["data"]["resolved"]["users"]
    assert abs(discord_fake.interaction_age(inter)) < 1
    img = await discord_fake.slash(
        "edit", {"prompt": "p", "image": ("in.png", b"abc", "image/png"), "steps": 3, "hd": False}
    )
    opts = {o["name"]: o for o in img.payload["data"]["options"]}
    assert (opts["steps"]["type"], opts["hd"]["type"], opts["prompt"]["type"]) == (4, 5, 3)
    att = img.payload["data"]["resolved"]["attachments"][opts["image"]["value"]]
    assert discord_fake.cdn[int(att["id"])].data == b"abc"
    extra = discord_fake.add_user("bob", permissions=discord_fake.member.permissions | (1 << 13))
    assert extra.permissions & (1 << 13)


async def test_waiting_helpers_return_matches_and_time_out_loudly(
    discord_fake: FakeDiscord,
) -> None:
    """wait_for_call returns a later match (since=mark) and raises AssertionError on timeout."""
    await api(discord_fake, "GET", "/users/@me")
    mark = discord_fake.mark()
    with pytest.raises(AssertionError, match="timed out"):
        await discord_fake.wait_for_call("GET", r"^/users/@me$", since=mark, timeout=0.2)
    await api(discord_fake, "GET", "/users/@me")
    call = await discord_fake.wait_for_call("GET", r"^/users/@me$", since=mark, timeout=1)
    assert call is discord_fake.calls[-1]


async def test_initial_response_deadline_is_on_by_default(discord_fake: FakeDiscord) -> None:
    """A first callback after 3 s gets 404/10062 and is reported by violations(), by name."""
    on_time = await discord_fake.slash("imagine", {"prompt": "x"})
    assert (await api(discord_fake, "POST", cb(on_time), {"type": 5}))[0] == 200
    late = await discord_fake.slash("imagine", {"prompt": "x"})
    discord_fake.clock.advance(3.5)
    status, body, _ = await api(discord_fake, "POST", cb(late), {"type": 5})
    assert (status, body) == (404, {"message": "Unknown interaction", "code": 10062})
    assert discord_fake.conversation(late).response_types == []
    # A later answer to the interaction answered in time is not a late first answer: 40060.
    assert (await api(discord_fake, "POST", cb(on_time), {"type": 5}))[1]["code"] == 40060
    assert discord_fake.violations() == [
        "answered late, refused with 404/10062 Unknown interaction: command 'imagine' "
        f"(interaction {late.id}) first answered after 3.5 s"
    ]
    discord_fake.late_responses.clear()  # seen; let the fixture's teardown pass


async def test_initial_response_deadline_can_be_turned_off(discord_fake: FakeDiscord) -> None:
    """With the rule off (a test saying why), a first callback after 5 s is accepted."""
    # Off: this test is about the switch itself.
    discord_fake.enforce_initial_response_deadline = False
    late = await discord_fake.slash("imagine", {"prompt": "x"})
    discord_fake.clock.advance(5)
    assert (await api(discord_fake, "POST", cb(late), {"type": 5}))[0] == 200
    assert discord_fake.violations() == []


async def test_cloudflare_429_is_html_without_via_or_rate_limit_headers(
    discord_fake: FakeDiscord,
) -> None:
    """fail_next(cloudflare=True) answers 429 with an HTML page: no JSON, no Via, no X-RateLimit."""
    path = f"/channels/{discord_fake.channel.id}/messages"
    fault = discord_fake.fail_next("POST", r"/messages$", cloudflare=True)
    status, body, headers = await api(discord_fake, "POST", path, {"content": "x"})
    assert status == 429
    assert headers["Content-Type"].startswith("text/html")
    assert b"Cloudflare" in body
    assert not [h for h in headers if h.lower() == "via" or h.lower().startswith("x-ratelimit")]
    assert len(fault.hits) == 1
    assert (await api(discord_fake, "POST", path, {"content": "x"}))[0] == 200


async def _identify(fake: FakeDiscord, intents: int) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as ws:
        hello = await ws.receive_json()
        assert hello["op"] == 10
        identify = {"token": fake.token, "intents": intents, "properties": {}}
        await ws.send_json({"op": 2, "d": identify})
        ready = await ws.receive_json()
        assert ready["t"] == "READY"


async def test_identify_with_guilds_only_passes(discord_fake: FakeDiscord) -> None:
    """An IDENTIFY asking for GUILDS (1 << 0) alone breaks no rule."""
    await _identify(discord_fake, 1)
    assert discord_fake.identifies[0]["intents"] == 1
    assert discord_fake.violations() == []


async def test_identify_asking_for_more_than_guilds_is_a_violation(
    discord_fake: FakeDiscord,
) -> None:
    """An IDENTIFY with GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT is reported by violations()."""
    await _identify(discord_fake, 1 | 1 << 9 | 1 << 15)
    assert discord_fake.violations() == [
        "IDENTIFY #1 asked for intents 33281 (0b1000001000000001); only 1 (0b1, GUILDS) is promised"
    ]
    discord_fake.identifies.clear()  # seen; let the fixture's teardown pass
