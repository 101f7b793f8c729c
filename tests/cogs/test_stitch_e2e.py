"""/edit with several images, and enableTranslation, end to end: real bot, fake Discord, KIE
simulator (which keeps the exact input image and request it received)."""

from __future__ import annotations

import io
from typing import Any

from e2e_checks import ledger_rows
from e2e_helpers import BotProcess
from fakediscord import FakeDiscord, FakeInteraction
from PIL import Image

RED, GREEN, BLUE, YELLOW = (220, 20, 20), (20, 200, 20), (20, 20, 220), (230, 220, 20)


def flat_png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def close_to(pixel: object, colour: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= 12 for a, b in zip(pixel, colour, strict=True))


async def received(fake: FakeDiscord, kie_sim: Any, count: int = 1) -> list[Any]:
    """The simulator's tasks once it has fetched each one's input (or has `count` tasks)."""

    def fetched() -> bool:
        tasks = list(kie_sim.tasks.values())
        return len(tasks) >= count and all(
            t.input_data is not None or "inputImage" not in t.request for t in tasks
        )

    await fake.wait_until(fetched, 20, what=f"KIE receiving {count} task(s)")
    return list(kie_sim.tasks.values())


async def wait_for_image(fake: FakeDiscord, inter: FakeInteraction) -> None:
    conv = fake.conversation(inter)
    await fake.wait_until(lambda: any(m.attachments for m in conv.messages), 20, what="the image")


async def test_edit_of_four_images_sends_kie_their_grid_in_order_at_image_1s_ratio(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """Image 1 is portrait (3:4), the others wide: KIE gets one 2×2 grid (red, green / blue,
    yellow) and aspectRatio 3:4, not the 2:1 grid's shape."""
    inter = await discord_fake.slash(
        "edit",
        {
            "image": ("one.png", flat_png((300, 400), RED), "image/png"),
            "image2": ("two.png", flat_png((800, 400), GREEN), "image/png"),
            "image3": ("three.png", flat_png((800, 400), BLUE), "image/png"),
            "image4": ("four.png", flat_png((800, 400), YELLOW), "image/png"),
            "prompt": "put the hat from image 2 on the person in image 1",
        },
    )
    (task,) = await received(discord_fake, kie_sim)

    with Image.open(io.BytesIO(task.input_data)) as img:
        composite = img.convert("RGB")
    centres = [(400, 200), (1200, 200), (400, 600), (1200, 600)]
    assert composite.size == (1600, 800)
    assert [
        close_to(composite.getpixel(xy), c)
        for xy, c in zip(centres, (RED, GREEN, BLUE, YELLOW), strict=True)
    ] == [True] * 4
    assert task.request["aspectRatio"] == "3:4"
    await wait_for_image(discord_fake, inter)


async def test_reroll_of_a_stitched_edit_sends_the_same_composite(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """The composite is the task's input: Re-roll gives KIE the same image again."""
    inter = await discord_fake.slash(
        "edit",
        {
            "image": ("left.png", flat_png((200, 200), RED), "image/png"),
            "image2": ("right.png", flat_png((100, 200), BLUE), "image/png"),
            "prompt": "make them friends",
        },
    )
    await wait_for_image(discord_fake, inter)
    original = discord_fake.conversation(inter).original
    assert original is not None

    await discord_fake.click(original, label="Re-roll")
    first, second = await received(discord_fake, kie_sim, count=2)

    assert (second.input_data, second.request["aspectRatio"]) == (first.input_data, "1:1")


async def test_a_refused_second_image_is_named_and_nothing_is_spent(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    inter = await discord_fake.slash(
        "edit",
        {
            "image": ("fine.png", flat_png((64, 64), RED), "image/png"),
            "image2": ("broken.png", b"<html>not an image</html>", "image/png"),
            "prompt": "combine them",
        },
    )
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(lambda: "Image 2:" in conv.text, 20, what="the refusal")

    refusal = next(m for m in conv.messages if "Image 2:" in m.text)
    assert refusal.ephemeral and "isn't an image" in refusal.text
    assert (kie_sim.count("upload"), kie_sim.count("generate")) == (0, 0)
    assert ledger_rows(bot_process.env) == []


async def test_kie_is_asked_to_translate_a_spanish_prompt_and_not_an_english_one(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    english = await discord_fake.slash("imagine", {"prompt": "a cat wearing a red hat"})
    await wait_for_image(discord_fake, english)
    spanish = await discord_fake.slash("imagine", {"prompt": "un gato con sombrero rojo"})
    await wait_for_image(discord_fake, spanish)

    sent = {t.request["prompt"]: t.request["enableTranslation"] for t in kie_sim.tasks.values()}
    assert sent == {"a cat wearing a red hat": False, "un gato con sombrero rojo": True}
