"""The fake answers Discord's attachment, action-row, select-menu and custom-id limits with
400 50035 and the error tree, on every message path; the select builder sends what Discord does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fakediscord import FakeDiscord, FakeInteraction
from fakediscord.test_fake_rules import api, cb, hook

Send = Callable[[FakeDiscord, dict[str, Any], list[tuple[str, bytes]] | None], Awaitable[Any]]


def button(custom_id: str) -> dict[str, Any]:
    return {"type": 2, "style": 1, "label": custom_id[:80] or "b", "custom_id": custom_id}


def options(count: int) -> list[dict[str, Any]]:
    return [{"label": f"o{i}", "value": f"v{i}"} for i in range(count)]


def select(**fields: Any) -> dict[str, Any]:
    return {"type": 3, "custom_id": "pick", "options": options(3), **fields}


def rows(*children: dict[str, Any]) -> list[dict[str, Any]]:
    """Each child alone in its own action row."""
    return [{"type": 1, "components": [c]} for c in children]


def eleven_files() -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    files = [(f"f{i}.png", b"x") for i in range(11)]
    body = {"attachments": [{"id": i, "filename": name} for i, (name, _) in enumerate(files)]}
    return body, files


def error_at(body: dict[str, Any], path: list[str]) -> dict[str, Any]:
    assert (body["code"], body["message"]) == (50035, "Invalid Form Body"), body
    node = body["errors"]
    for key in path:
        assert key in node, f"no {key!r} in {node} (errors: {body['errors']})"
        node = node[key]
    return dict(node["_errors"][0])


SELECT_IN_ROW = ["components", "0", "components", "0"]


@pytest.mark.parametrize(
    ("components", "path", "code"),
    [
        (rows(*[button(f"b{i}") for i in range(6)]), ["components"], "BASE_TYPE_MAX_LENGTH"),
        (
            [{"type": 1, "components": [button("b"), select()]}],
            ["components", "0", "components", "1"],
            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
        ),
        (
            [{"type": 1, "components": [select(), button("b")]}],
            ["components", "0", "components", "1"],
            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
        ),
        (rows(select(options=options(26))), [*SELECT_IN_ROW, "options"], "BASE_TYPE_BAD_LENGTH"),
        (rows(select(options=[])), [*SELECT_IN_ROW, "options"], "BASE_TYPE_BAD_LENGTH"),
        (
            rows(select(options=[{"label": "L" * 101, "value": "v"}])),
            [*SELECT_IN_ROW, "options", "0", "label"],
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            rows(select(options=[{"label": "l", "value": "V" * 101}])),
            [*SELECT_IN_ROW, "options", "0", "value"],
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            rows(select(placeholder="p" * 151)),
            [*SELECT_IN_ROW, "placeholder"],
            "BASE_TYPE_MAX_LENGTH",
        ),
        (rows(select(min_values=-1)), [*SELECT_IN_ROW, "min_values"], "NUMBER_TYPE_MIN"),
        (rows(select(min_values=26)), [*SELECT_IN_ROW, "min_values"], "NUMBER_TYPE_MAX"),
        (rows(select(max_values=0)), [*SELECT_IN_ROW, "max_values"], "NUMBER_TYPE_MIN"),
        (rows(select(max_values=26)), [*SELECT_IN_ROW, "max_values"], "NUMBER_TYPE_MAX"),
        (
            rows(select(custom_id="s" * 101)),
            [*SELECT_IN_ROW, "custom_id"],
            "BASE_TYPE_MAX_LENGTH",
        ),
        (rows(button("")), [*SELECT_IN_ROW, "custom_id"], "BASE_TYPE_BAD_LENGTH"),
        (
            [{"type": 1, "components": []}],
            ["components", "0", "components"],
            "BASE_TYPE_BAD_LENGTH",
        ),
    ],
)
async def test_component_limit_is_50035_at_its_path(
    discord_fake: FakeDiscord, components: list[dict[str, Any]], path: list[str], code: str
) -> None:
    """Each action-row and select-menu limit → 400 50035, Discord's code at the field's path."""
    payload = {"content": "c", "components": components}
    status, body, _ = await api(
        discord_fake, "POST", f"/channels/{discord_fake.channel.id}/messages", payload
    )
    assert status == 400
    assert error_at(body, path)["code"] == code
    assert not discord_fake.channel_messages()


async def test_a_full_message_within_every_limit_is_accepted(discord_fake: FakeDiscord) -> None:
    """5 rows (a 25-option select alone, 5 buttons), 10 files and 100-character ids pass."""
    body, files = eleven_files()
    body["attachments"] = body["attachments"][:10]
    body["content"] = "full"
    body["components"] = [
        {"type": 1, "components": [select(options=options(25), max_values=25, min_values=0)]},
        {"type": 1, "components": [button(f"{i}" * 100) for i in range(5)]},
        *rows(button("a"), button("b"), button("c")),
    ]
    status, resp, _ = await api(
        discord_fake,
        "POST",
        f"/channels/{discord_fake.channel.id}/messages",
        body,
        files=files[:10],
    )
    assert status == 200, resp
    assert len(resp["attachments"]) == 10


async def _channel_post(fake: FakeDiscord, body: dict[str, Any], files: Any) -> Any:
    return await api(fake, "POST", f"/channels/{fake.channel.id}/messages", body, files=files)


async def _channel_edit(fake: FakeDiscord, body: dict[str, Any], files: Any) -> Any:
    msg = fake.inject_message("mine", author=fake.bot_user)
    path = f"/channels/{fake.channel.id}/messages/{msg.id}"
    return await api(fake, "PATCH", path, body, files=files)


async def _answered(fake: FakeDiscord) -> FakeInteraction:
    inter = await fake.slash("imagine", {"prompt": "x"})
    assert (await api(fake, "POST", cb(inter), {"type": 5}))[0] == 200
    return inter


async def _callback_message(fake: FakeDiscord, body: dict[str, Any], files: Any) -> Any:
    inter = await fake.slash("imagine", {"prompt": "x"})
    return await api(fake, "POST", cb(inter), {"type": 4, "data": body}, files=files)


async def _callback_update(fake: FakeDiscord, body: dict[str, Any], files: Any) -> Any:
    posted = fake.inject_message("mine", author=fake.bot_user, components=rows(button("go")))
    inter = await fake.click(posted, custom_id="go")
    return await api(fake, "POST", cb(inter), {"type": 7, "data": body}, files=files)


async def _edit_original(fake: FakeDiscord, body: dict[str, Any], files: Any) -> Any:
    inter = await _answered(fake)
    return await api(fake, "PATCH", hook(fake, inter, "/messages/@original"), body, files=files)


async def _followup(fake: FakeDiscord, body: dict[str, Any], files: Any) -> Any:
    inter = await _answered(fake)
    assert (await api(fake, "POST", hook(fake, inter, "?wait=1"), {"content": "1st"}))[0] == 200
    return await api(fake, "POST", hook(fake, inter, "?wait=1"), body, files=files)


async def _edit_followup(fake: FakeDiscord, body: dict[str, Any], files: Any) -> Any:
    inter = await _answered(fake)
    await api(fake, "POST", hook(fake, inter, "?wait=1"), {"content": "1st"})
    _, second, _ = await api(fake, "POST", hook(fake, inter, "?wait=1"), {"content": "2nd"})
    path = hook(fake, inter, f"/messages/{second['id']}")
    return await api(fake, "PATCH", path, body, files=files)


MESSAGE_PATHS: list[tuple[Send, list[str]]] = [
    (_channel_post, []),
    (_channel_edit, []),
    (_callback_message, ["data"]),
    (_callback_update, ["data"]),
    (_edit_original, []),
    (_followup, []),
    (_edit_followup, []),
]
PATH_IDS = ["channel-post", "channel-edit", "callback-4", "callback-7", "@original", "followup"]
PATH_IDS.append("followup-edit")


@pytest.mark.parametrize(("send", "prefix"), MESSAGE_PATHS, ids=PATH_IDS)
async def test_eleven_attachments_are_50035_on_every_message_path(
    discord_fake: FakeDiscord, send: Send, prefix: list[str]
) -> None:
    """11 attachments on a create, edit, callback or followup → 50035 at `attachments`."""
    body, files = eleven_files()
    status, resp, _ = await send(discord_fake, body, files)
    assert status == 400
    error = error_at(resp, [*prefix, "attachments"])
    assert error == {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 10 or fewer in length."}


@pytest.mark.parametrize(("send", "prefix"), MESSAGE_PATHS, ids=PATH_IDS)
async def test_six_action_rows_are_50035_on_every_message_path(
    discord_fake: FakeDiscord, send: Send, prefix: list[str]
) -> None:
    """6 action rows on a create, edit, callback or followup → 50035 at `components`."""
    body = {"content": "c", "components": rows(*[button(f"b{i}") for i in range(6)])}
    status, resp, _ = await send(discord_fake, body, None)
    assert status == 400
    error = error_at(resp, [*prefix, "components"])
    assert error == {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 5 or fewer in length."}


@pytest.mark.parametrize(("send", "prefix"), MESSAGE_PATHS, ids=PATH_IDS)
async def test_select_with_26_options_is_50035_on_every_message_path(
    discord_fake: FakeDiscord, send: Send, prefix: list[str]
) -> None:
    """A 26-option select on a create, edit, callback or followup → 50035 at its options."""
    body = {"content": "c", "components": rows(select(options=options(26)))}
    status, resp, _ = await send(discord_fake, body, None)
    assert status == 400
    error = error_at(resp, [*prefix, *SELECT_IN_ROW, "options"])
    assert error == {
        "code": "BASE_TYPE_BAD_LENGTH",
        "message": "Must be between 1 and 25 in length.",
    }


async def test_edit_adding_uploads_past_ten_kept_ones_is_refused_unchanged(
    discord_fake: FakeDiscord,
) -> None:
    """An edit whose new files (no attachments list) would make 11 → 50035; nothing changes."""
    body, files = eleven_files()
    body["attachments"] = body["attachments"][:9]
    status, posted, _ = await _channel_post(discord_fake, body, files[:9])
    assert status == 200
    path = f"/channels/{discord_fake.channel.id}/messages/{posted['id']}"
    status, resp, _ = await api(discord_fake, "PATCH", path, {"content": "more"}, files=files[9:])
    assert status == 400
    assert error_at(resp, ["attachments"])["code"] == "BASE_TYPE_MAX_LENGTH"
    stored = discord_fake.message(int(posted["id"]))
    assert (len(stored.attachments), stored.content, stored.history) == (9, "", [])


def label(component: dict[str, Any]) -> dict[str, Any]:
    return {"type": 18, "label": "Pick", "component": component}


def text_input(custom_id: str) -> dict[str, Any]:
    return {"type": 4, "custom_id": custom_id, "style": 1, "label": "Prompt"}


@pytest.mark.parametrize(
    ("components", "path", "code"),
    [
        (
            [label(text_input("t" * 101))],
            ["components", "0", "component", "custom_id"],
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [{"type": 1, "components": [text_input("t" * 101)]}],
            ["components", "0", "components", "0", "custom_id"],
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [label(select(custom_id="s" * 101))],
            ["components", "0", "component", "custom_id"],
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [label(select(options=options(26)))],
            ["components", "0", "component", "options"],
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [label(select(max_values=26))],
            ["components", "0", "component", "max_values"],
            "NUMBER_TYPE_MAX",
        ),
    ],
)
async def test_modal_input_limits_are_50035_under_data(
    discord_fake: FakeDiscord, components: list[dict[str, Any]], path: list[str], code: str
) -> None:
    """A modal's text input or select breaking a limit → 50035 under `data`; no modal opens."""
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    modal = {"custom_id": "m", "title": "T", "components": components}
    status, resp, _ = await api(discord_fake, "POST", cb(inter), {"type": 9, "data": modal})
    assert status == 400
    assert error_at(resp, ["data", *path])["code"] == code
    assert discord_fake.conversation(inter).modal is None


async def test_select_builder_sends_a_string_select_interaction(discord_fake: FakeDiscord) -> None:
    """`select` picks option values in the select by custom id, as Discord's type-3 payload."""
    msg = discord_fake.inject_message(
        "pick",
        author=discord_fake.bot_user,
        components=[
            *rows(button("go")),
            *rows(select(custom_id="ratio", options=options(6), max_values=2)),
        ],
    )
    inter = await discord_fake.select(msg, ["v1", "v4"], custom_id="ratio")
    assert inter.payload["type"] == 3
    assert inter.payload["data"] == {
        "custom_id": "ratio",
        "component_type": 3,
        "values": ["v1", "v4"],
    }
    assert inter.payload["message"]["id"] == str(msg.id)
    assert inter.message_id == msg.id


@pytest.mark.parametrize(
    "values", [["nope"], ["v0", "v1"], []], ids=["not-an-option", "too-many", "none"]
)
async def test_select_builder_refuses_values_the_member_cannot_pick(
    discord_fake: FakeDiscord, values: list[str]
) -> None:
    """Values outside the options, or more or fewer than min/max_values, fail the test loudly."""
    msg = discord_fake.inject_message(
        "pick", author=discord_fake.bot_user, components=rows(select())
    )
    with pytest.raises(AssertionError):
        discord_fake.build_select(msg, values)


async def test_modal_submit_answers_a_select_and_a_text_input(discord_fake: FakeDiscord) -> None:
    """A submitted modal carries the select's values and the text input's value, by custom id."""
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    modal = {
        "custom_id": "reframe",
        "title": "Reframe",
        "components": [
            label(select(custom_id="ratio", options=options(6))),
            label(text_input("prompt")),
        ],
    }
    assert (await api(discord_fake, "POST", cb(inter), {"type": 9, "data": modal}))[0] == 200
    payload = discord_fake.build_modal_submit(inter, {"ratio": ["v2"], "prompt": "wider"})
    assert payload["type"] == 5
    assert payload["data"]["components"] == [
        {
            "type": 18,
            "id": None,
            "component": {"type": 3, "id": None, "custom_id": "ratio", "values": ["v2"]},
        },
        {
            "type": 18,
            "id": None,
            "component": {"type": 4, "id": None, "custom_id": "prompt", "value": "wider"},
        },
    ]
