"""/imagine end to end: the real bot process, the fake Discord and the KIE simulator."""

from __future__ import annotations

import io

from PIL import Image


async def test_imagine_posts_the_image(discord_fake, kie_sim, bot_process):
    """A /imagine reaches KIE once and ends with the image attached to the reply, with buttons."""
    inter = await discord_fake.slash(
        "imagine", {"prompt": "a red fox in snow", "aspect_ratio": "1:1"}
    )
    conv = discord_fake.conversation(inter)

    def has_image() -> bool:
        original = conv.original
        return original is not None and bool(original.attachments)

    await discord_fake.wait_until(has_image, 20, what="the image in the reply")
    original = conv.original
    assert original is not None
    image = Image.open(io.BytesIO(original.attachments[0].data))
    assert image.width == image.height
    labels = [b.get("label") for b in original.buttons]
    assert labels == ["Re-roll", "Edit"]
    assert kie_sim.count("generate") == 1
    assert f"<@{discord_fake.member.id}>" in original.content
