"""Real result images for the simulator: the prompt written on a gradient, drawn with Pillow."""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "21:9": (21, 9),
    "16:9": (16, 9),
    "4:3": (4, 3),
    "1:1": (1, 1),
    "3:4": (3, 4),
    "9:16": (9, 16),
}


def size_for(ratio: tuple[int, int], long_side: int) -> tuple[int, int]:
    """Pixel size with the given ratio whose longer side is ``long_side``."""
    w, h = ratio
    if w >= h:
        return long_side, max(1, round(long_side * h / w))
    return max(1, round(long_side * w / h)), long_side


def _gradient(size: tuple[int, int], seed: int) -> Image.Image:
    palette = [
        (40 + seed % 90, 30, 120),
        (200, 60 + seed % 120, 90),
        (30, 150, 160 + seed % 80),
        (240, 200, 60 + seed % 100),
    ]
    tiny = Image.new("RGB", (2, 2))
    tiny.putdata(palette)
    return tiny.resize(size, Image.Resampling.BILINEAR)


def render(
    prompt: str,
    *,
    size: tuple[int, int],
    fmt: str = "jpeg",
    noise: bool = False,
    seed: int = 0,
) -> bytes:
    """Draw ``prompt`` on a gradient of ``size`` and encode it as ``fmt`` (jpeg or png)."""
    img = _gradient(size, seed)
    if noise:
        bands = [Image.effect_noise(size, 64) for _ in range(3)]
        img = Image.blend(img, Image.merge("RGB", bands), 0.35)
    draw = ImageDraw.Draw(img)
    font_size = max(10, min(size) // 14)
    font = ImageFont.load_default(size=font_size)
    chars = max(8, int(size[0] / (font_size * 0.55)))
    lines = textwrap.wrap(prompt, width=chars)[:8] or [""]
    y = max(4, (size[1] - len(lines) * font_size * 1.2) / 2)
    for line in lines:
        draw.text((size[0] * 0.05 + 2, y + 2), line, fill=(0, 0, 0), font=font)
        draw.text((size[0] * 0.05, y), line, fill=(255, 255, 255), font=font)
        y += font_size * 1.2
    out = io.BytesIO()
    if fmt == "png":
        img.save(out, format="PNG")
    else:
        img.save(out, format="JPEG", quality=88)
    return out.getvalue()


def sniff_image(data: bytes) -> tuple[int, int] | None:
    """The (width, height) of ``data`` if Pillow can read it as an image, else None."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None
