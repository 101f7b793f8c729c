"""The bad input catalogue: each gets a clear private answer and costs nothing.

Nothing costs: no task in the ledger, no KIE call (generate or upload), no cooldown charged.
The bot runs with a one-hour cooldown, and a valid request at the end still goes through.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest
from e2e_checks import ledger_rows, settled
from PIL import Image

MiB = 1024 * 1024


def _png(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def _huge_png(width: int, height: int) -> bytes:
    """A valid PNG header and a tiny compressed body claiming ``width``×``height`` (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = zlib.compress(row * height, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _gif_animated() -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


@pytest.fixture
async def strict_bot(bot_factory):
    """A bot with a one-hour cooldown: a single charged request would block the next."""
    return await bot_factory(USER_COOLDOWN_SECONDS="3600")


def _answer(discord_fake, inter) -> str:
    conv = discord_fake.conversation(inter)
    texts = [m.text for m in conv.ephemeral_messages]
    return "\n".join(texts)


async def _refused(discord_fake, inter, *needles: str) -> str:
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(lambda: conv.ephemeral_messages, 15, what="an ephemeral answer")
    text = _answer(discord_fake, inter)
    for needle in needles:
        assert needle.lower() in text.lower(), text
    # Nothing public is left behind (a deferred "thinking…" reply is deleted).
    assert all(m.ephemeral or m.deleted for m in conv.messages), conv
    return text


def _assert_free(kie_sim, bot_env) -> None:
    assert ledger_rows(bot_env) == []
    assert kie_sim.count("generate") == 0
    assert kie_sim.count("upload") == 0


PROMPT_CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("empty prompt", {"prompt": ""}, ("empty",)),
    ("whitespace", {"prompt": "   \t  "}, ("empty",)),
    ("zero-width only", {"prompt": "\u200b\u200c\u200d\u2060\ufeff"}, ("empty",)),
    ("bidi controls only", {"prompt": "\u202e\u2066\u2069"}, ("empty",)),
    ("over-long", {"prompt": "a" * 1501}, ("1501", "1500")),
    ("aspect ratio", {"prompt": "a cat", "aspect_ratio": "5:4"}, ("aspect_ratio",)),
    ("model", {"prompt": "a cat", "model": "flux-dev"}, ("model",)),
    ("format", {"prompt": "a cat", "output_format": "gif"}, ("output_format",)),
    ("tolerance", {"prompt": "a cat", "safety_tolerance": 9}, ("safety_tolerance",)),
]


async def test_bad_prompts_and_options(discord_fake, kie_sim, bot_env, strict_bot):
    """Empty, invisible and over-long prompts and out-of-choice options are refused for free."""
    for name, options, needles in PROMPT_CASES:
        inter = await discord_fake.slash("imagine", options)
        text = await _refused(discord_fake, inter, *needles)
        assert "wrong on the bot" not in text, name
    # /edit allows a tolerance of 2 at most.
    inter = await discord_fake.slash(
        "edit",
        {"image": ("a.png", _png(), "image/png"), "prompt": "x", "safety_tolerance": 3},
    )
    await _refused(discord_fake, inter, "safety_tolerance", "0 and 2")
    _assert_free(kie_sim, bot_env)
    await _valid_request_goes_through(discord_fake, kie_sim, bot_env)


IMAGE_CASES: list[tuple[str, tuple[str, bytes, str], tuple[str, ...]]] = [
    (
        "text named .png",
        ("notes.png", b"just some text, not an image\n" * 10, "image/png"),
        ("isn't an image",),
    ),
    ("truncated PNG", ("cut.png", _png((300, 300))[:200], "image/png"), ("damaged",)),
    ("decompression bomb", ("bomb.png", _huge_png(30000, 30000), "image/png"), ("too large",)),
    ("12000×12000", ("big.png", _huge_png(12000, 12000), "image/png"), ("12000", "limit")),
    ("animated GIF", ("anim.gif", _gif_animated(), "image/gif"), ("animated",)),
]


async def test_bad_images(discord_fake, kie_sim, bot_env, strict_bot):
    """Non-images, broken, huge, animated and missing attachments are refused for free."""
    for name, attachment, needles in IMAGE_CASES:
        inter = await discord_fake.slash("edit", {"image": attachment, "prompt": "make it blue"})
        await _refused(discord_fake, inter, *needles)
        assert ledger_rows(bot_env) == [], name
    # An attachment whose URL 404s.
    payload = discord_fake.build_slash(
        "edit", {"image": ("gone.png", _png(), "image/png"), "prompt": "make it blue"}
    )
    (att,) = payload["data"]["resolved"]["attachments"].values()
    del discord_fake.cdn[int(att["id"])]
    inter = await discord_fake.inject(payload)
    await _refused(discord_fake, inter, "could not be downloaded")
    _assert_free(kie_sim, bot_env)
    await _valid_request_goes_through(discord_fake, kie_sim, bot_env)


async def test_oversized_attachments(discord_fake, kie_sim, bot_env, strict_bot):
    """A 30 MB attachment is refused before download; a lying size is caught while streaming."""
    payload = discord_fake.build_slash(
        "edit", {"image": ("huge.png", _png(), "image/png"), "prompt": "make it blue"}
    )
    (att,) = payload["data"]["resolved"]["attachments"].values()
    att["size"] = 30 * MiB
    inter = await discord_fake.inject(payload)
    await _refused(discord_fake, inter, "20 MB")
    assert not [c for c in discord_fake.calls if c.kind == "cdn"], "it was downloaded"
    # The size says 1 KB, the file is 30 MB.
    liar = _png() + b"\0" * (30 * MiB)
    payload = discord_fake.build_slash(
        "edit", {"image": ("liar.png", liar, "image/png"), "prompt": "make it blue"}
    )
    (att,) = payload["data"]["resolved"]["attachments"].values()
    att["size"] = 1024
    inter = await discord_fake.inject(payload)
    await _refused(discord_fake, inter, "20 MB")
    _assert_free(kie_sim, bot_env)
    await _valid_request_goes_through(discord_fake, kie_sim, bot_env)


async def test_message_without_image(discord_fake, kie_sim, bot_env, strict_bot):
    """ "Edit with Flux Kontext" on a message with no image says so, privately, for free."""
    message = discord_fake.inject_message("just words, no picture")
    inter = await discord_fake.message_command("Edit with Flux Kontext", message)
    await _refused(discord_fake, inter, "no image")
    assert discord_fake.conversation(inter).modal is None
    _assert_free(kie_sim, bot_env)


async def test_private_address_refused(discord_fake, kie_sim, bot_env, bot_factory):
    """With ALLOW_PRIVATE_URLS=false, an attachment on a loopback address is never fetched."""
    await bot_factory(ALLOW_PRIVATE_URLS="false", USER_COOLDOWN_SECONDS="3600")
    inter = await discord_fake.slash(
        "edit", {"image": ("local.png", _png(), "image/png"), "prompt": "make it blue"}
    )
    await _refused(discord_fake, inter, "could not be downloaded")
    assert not [c for c in discord_fake.calls if c.kind == "cdn"], "the bot fetched 127.0.0.1"
    _assert_free(kie_sim, bot_env)


async def _valid_request_goes_through(discord_fake, kie_sim, bot_env) -> None:
    """A prompt full of mentions, markdown, zero-width and RTL text is valid and pings nobody."""
    prompt = (
        "@everyone @here <@123456789012345678> <@&876543210987654321> **bold** `code` "
        "||spoiler|| [link](https://example.com) a\u200bb \u202eRTL\u202c שלום مرحبا"
    )
    inter = await discord_fake.slash("imagine", {"prompt": prompt})
    rows = await settled(discord_fake, bot_env, timeout=20)
    assert [r.state for r in rows] == ["done"]
    assert kie_sim.count("generate") == 1
    sent = next(iter(kie_sim.tasks.values())).request["prompt"]
    assert "\u200b" not in sent and "\u202e" not in sent
    assert "@everyone" in sent and "שלום" in sent
    conv = discord_fake.conversation(inter)
    requester = str(discord_fake.member.id)
    for call in discord_fake.calls:
        body = call.json if isinstance(call.json, dict) else {}
        if "embeds" not in body and "content" not in body:
            continue
        mentions = body.get("allowed_mentions")
        assert mentions is not None, f"{call} sends text without allowed_mentions"
        assert not mentions.get("parse"), call
        assert [str(u) for u in mentions.get("users", [])] in ([], [requester]), call
        assert not mentions.get("roles"), call
        assert "@everyone" not in (body.get("content") or ""), call
    assert conv.original.attachments
    # The cooldown applies to the valid request: the next one is refused, politely.
    again = await discord_fake.slash("imagine", {"prompt": "another one"})
    await _refused(discord_fake, again, "slow down")
