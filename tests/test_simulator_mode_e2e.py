"""KIE_API_BASE_URL=simulator: an operator tries the bot with no KIE account."""

from __future__ import annotations

import io

from PIL import Image


async def test_builtin_simulator_serves_imagine(discord_fake, kie_sim, bot_factory):
    """With the built-in simulator the bot never calls the test's KIE and still posts an image."""
    bot = await bot_factory(
        KIE_API_BASE_URL="simulator",
        KIE_SIM_DELAY_SECONDS="0.3",
        ALLOW_PRIVATE_URLS="false",
    )
    inter = await discord_fake.slash(
        "imagine", {"prompt": "a test pattern", "aspect_ratio": "21:9"}
    )
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.files, timeout=20)
    image = Image.open(io.BytesIO(conv.files[0].data))
    assert abs(image.width / image.height - 21 / 9) < 0.05
    assert kie_sim.calls == []  # the external simulator was never used
    assert "built-in KIE simulator" in bot.log_text()
