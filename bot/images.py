"""Image bytes in, image bytes out: sniffing, validation, conversion and fitting (pure, Pillow).

Inputs are checked in order of cost: byte size, magic bytes, header dimensions (before any
pixel is decoded), animation, then a full decode with warnings turned into errors so a
truncated file is refused rather than silently padded. PNG, JPEG and WebP go to KIE as they
are; other formats Pillow reads are converted to PNG (with alpha) or JPEG (without).

Only the formats listed in `_PILLOW_FORMATS` are ever handed to Pillow's decoders, so
plugins that shell out (EPS) or guess without a signature (TGA) are never reached.

Not thread-safe in one respect: `warnings.catch_warnings` is process-global, so run these
functions in one worker thread at a time if several may run concurrently.
"""

from __future__ import annotations

import asyncio
import io
import math
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, ParamSpec, TypeVar

from PIL import Image, ImageOps

from bot.i18n import Message, Text

MAX_INPUT_BYTES: Final = 20 * 1024 * 1024  # documented limit for input images
MAX_INPUT_SIDE: Final = 8192  # px, either side
MAX_INPUT_PIXELS: Final = 40_000_000
MIN_FIT_SIDE: Final = 64  # fit_to_limit never shrinks an image below this

PASSTHROUGH: Final = frozenset({"png", "jpeg", "webp"})
CONTENT_TYPES: Final = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "avif": "image/avif",
    "heic": "image/heic",
}
EXTENSIONS: Final = {"jpeg": "jpg", "tiff": "tif"}


def content_type_of(filename: str) -> str:
    """The MIME type of an image file by its extension ("kontext-x.jpg" -> image/jpeg)."""
    extension = filename.rsplit(".", 1)[-1].lower()
    kind = next((k for k, ext in EXTENSIONS.items() if ext == extension), extension)
    return CONTENT_TYPES.get(kind, "application/octet-stream")


FIT_QUALITIES: Final = (90, 85, 80, 75, 70, 65, 60)
FIT_DOWNSCALE_QUALITY: Final = 75
FIT_DOWNSCALE_STEP: Final = 0.8

# sniff() name -> the Pillow plugins allowed to decode it.
_PILLOW_FORMATS: Final = {
    "png": ["PNG"],
    "jpeg": ["JPEG", "MPO"],
    "webp": ["WEBP"],
    "gif": ["GIF"],
    "bmp": ["BMP"],
    "tiff": ["TIFF"],
    "avif": ["AVIF"],
}
_BMP_HEADER_SIZES: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_HEIC_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1"})


class ImageRejected(Exception):
    """An image we will not use; `user_message` is a sentence safe to show the member."""

    def __init__(self, reason: str, user_message: Message) -> None:
        super().__init__(f"{reason}: {user_message}")
        self.reason = reason  # short machine code: too_large, not_image, corrupt, ...
        self.user_message = user_message


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    content_type: str
    extension: str  # without the dot: png, jpg, webp
    width: int  # as displayed (after EXIF orientation)
    height: int
    converted: bool  # False: `data` is the member's file, byte for byte


def sniff(data: bytes) -> str | None:
    """The image format named by the magic bytes, or None when there is no image signature."""
    head = data[:32]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head[:2] == b"BM" and len(head) >= 18:
        (dib_size,) = struct.unpack_from("<I", head, 14)
        if dib_size in _BMP_HEADER_SIZES:
            return "bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return "avif"
        if brand in _HEIC_BRANDS:
            return "heic"
    return None


def extension_for(kind: str) -> str:
    return EXTENSIONS.get(kind, kind)


_TOO_BIG_FILE = Text("This image is larger than 20 MB; please send a smaller file.")
_NOT_IMAGE = Text("That file isn't an image I can read; please send a PNG, JPEG or WebP image.")
_UNSUPPORTED = Text("That image format isn't supported; please send a PNG, JPEG or WebP image.")
_CORRUPT = Text("That image is damaged or incomplete; please re-save it and try again.")
_ANIMATED = Text("Animated images aren't supported; please send a still image.")
_BOMB = Text("That image is far too large to process (the limit is 40 megapixels).")


def _too_many_pixels(width: int, height: int) -> Text:
    return Text(
        "That image is {width}×{height} pixels; the limit is {side} pixels on each side and "
        "{megapixels} megapixels in total.",
        width=width,
        height=height,
        side=MAX_INPUT_SIDE,
        megapixels=MAX_INPUT_PIXELS // 1_000_000,
    )


@contextmanager
def _strict() -> Iterator[None]:
    """Every Pillow warning is an error, except the decompression-bomb warning: our own
    pixel limit (checked from the header) is stricter than Pillow's warning threshold."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


_DECODE_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, struct.error, Warning)


def _open(data: bytes, kind: str) -> Image.Image:
    """Open (header only) and check dimensions before any pixel is decoded."""
    formats = _PILLOW_FORMATS.get(kind)
    if formats is None:
        raise ImageRejected("unsupported", _UNSUPPORTED)
    try:
        img = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", _BOMB) from exc
    except _DECODE_ERRORS as exc:  # includes UnidentifiedImageError (an OSError)
        raise ImageRejected("corrupt", _CORRUPT) from exc
    width, height = img.size
    if (
        width > MAX_INPUT_SIDE
        or height > MAX_INPUT_SIDE
        or width * height > MAX_INPUT_PIXELS
        or width < 1
        or height < 1
    ):
        raise ImageRejected("too_many_pixels", _too_many_pixels(width, height))
    return img


def _is_animated(img: Image.Image) -> bool:
    if img.format == "MPO":  # phone JPEGs: a primary image plus previews/depth maps
        return False
    return bool(getattr(img, "is_animated", False)) or int(getattr(img, "n_frames", 1)) > 1


def _displayed_size(img: Image.Image) -> tuple[int, int]:
    orientation = img.getexif().get(0x0112, 1)
    width, height = img.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )


def _decode(data: bytes, *, draft_height: int | None = None) -> tuple[Image.Image, str]:
    """Sniff, open, check the size from the header, refuse animation, then fully decode (a
    JPEG at a reduced scale still at least `draft_height` tall, when given: `_draft`)."""
    kind = sniff(data)
    if kind is None:
        raise ImageRejected("not_image", _NOT_IMAGE)
    with _strict():
        img = _open(data, kind)
        try:
            if _is_animated(img):
                raise ImageRejected("animated", _ANIMATED)
            if draft_height is not None:
                _draft(img, draft_height)
            img.load()
        except ImageRejected:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageRejected("too_many_pixels", _BOMB) from exc
        except _DECODE_ERRORS as exc:
            raise ImageRejected("corrupt", _CORRUPT) from exc
    return img, kind


def _draft(img: Image.Image, height: int) -> None:
    """Have a JPEG decoded at the smallest power-of-two reduction still at least `height` tall
    as displayed: a 24-megapixel photo shrunk for a composite decodes several times faster."""
    if img.format not in ("JPEG", "MPO"):
        return
    _, shown_height = _displayed_size(img)
    if shown_height <= height:
        return
    scale = height / shown_height
    img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))


def prepare_input(data: bytes) -> PreparedImage:
    """Validate a member's image; pass PNG/JPEG/WebP through, convert anything else.

    Raises ImageRejected with a user-facing sentence for every reason to refuse.
    """
    if len(data) > MAX_INPUT_BYTES:
        raise ImageRejected("too_large", _TOO_BIG_FILE)
    img, kind = _decode(data)
    if kind in PASSTHROUGH:
        width, height = _displayed_size(img)
        return PreparedImage(
            data=bytes(data),
            content_type=CONTENT_TYPES[kind],
            extension=extension_for(kind),
            width=width,
            height=height,
            converted=False,
        )
    try:
        with _strict():
            upright = ImageOps.exif_transpose(img)
        out = io.BytesIO()
        icc = img.info.get("icc_profile")
        extra = {"icc_profile": icc} if isinstance(icc, bytes) else {}
        if _has_alpha(upright):
            upright.convert("RGBA").save(out, "PNG", **extra)
            target = "png"
        else:
            upright.convert("RGB").save(out, "JPEG", quality=92, **extra)
            target = "jpeg"
    except _DECODE_ERRORS as exc:
        raise ImageRejected("corrupt", _CORRUPT) from exc
    return PreparedImage(
        data=out.getvalue(),
        content_type=CONTENT_TYPES[target],
        extension=extension_for(target),
        width=upright.width,
        height=upright.height,
        converted=True,
    )


def probe(data: bytes) -> tuple[int, int, str]:
    """Width, height and format (sniff's names) of a valid, fully decodable image.

    Raises ImageRejected when it is not one.
    """
    img, kind = _decode(data)
    return img.width, img.height, kind


def fit_to_limit(data: bytes, limit: int) -> tuple[bytes, str]:
    """Make a result fit under `limit` bytes; returns (bytes, extension without dot).

    Under the limit: unchanged, with its own extension. Otherwise JPEG at quality 90 down to
    60, then downscaled by steps of 0.8 (at quality 75) until it fits. Transparency is
    flattened onto white. Raises ValueError if it cannot be made to fit (limit absurdly
    small) and ImageRejected if `data` is not a valid image.
    """
    if len(data) <= limit:
        kind = sniff(data)
        return data, extension_for(kind) if kind else "bin"
    img, _ = _decode(data)
    with _strict():
        img = ImageOps.exif_transpose(img)
    rgb = _flatten(img)
    for quality in FIT_QUALITIES:
        encoded = _jpeg(rgb, quality)
        if len(encoded) <= limit:
            return encoded, "jpg"
    scale = 1.0
    while True:
        scale *= FIT_DOWNSCALE_STEP
        size = (round(rgb.width * scale), round(rgb.height * scale))
        if min(size) < MIN_FIT_SIDE:
            raise ValueError(f"cannot fit the image under {limit} bytes")
        encoded = _jpeg(rgb.resize(size, Image.Resampling.LANCZOS), FIT_DOWNSCALE_QUALITY)
        if len(encoded) <= limit:
            return encoded, "jpg"


COMPARE_GAP: Final = 16  # px between the two images of a comparison
COMPARE_MAX_HEIGHT: Final = 1024
COMPARE_BACKGROUND: Final = (32, 34, 37)


def compare_height(left: tuple[int, int], right: tuple[int, int]) -> int:
    """The common height of a comparison: the taller image's, at most COMPARE_MAX_HEIGHT."""
    return min(max(left[1], right[1]), COMPARE_MAX_HEIGHT)


def side_by_side(left: bytes, right: bytes) -> bytes:
    """One JPEG with `left` and `right` next to each other, scaled to a common height, a small
    gap between them. Raises ImageRejected if either is not a valid image."""
    decoded = []
    for data in (left, right):
        img, _ = _decode(data)
        with _strict():
            decoded.append(_flatten(ImageOps.exif_transpose(img)))
    height = compare_height(decoded[0].size, decoded[1].size)
    scaled = [
        img.resize(
            (max(1, round(img.width * height / img.height)), height), Image.Resampling.LANCZOS
        )
        for img in decoded
    ]
    canvas = Image.new(
        "RGB", (scaled[0].width + COMPARE_GAP + scaled[1].width, height), COMPARE_BACKGROUND
    )
    canvas.paste(scaled[0], (0, 0))
    canvas.paste(scaled[1], (scaled[0].width + COMPARE_GAP, 0))
    return _jpeg(canvas, 90)


MAX_STITCHED: Final = 4
STITCH_MAX_HEIGHT: Final = 1024  # px: each input's height in the composite, at most
STITCH_BACKGROUND: Final = (255, 255, 255)  # the empty 4th cell of three, and letterboxing
STITCH_QUALITY: Final = 92


def stitch(images: Sequence[bytes]) -> PreparedImage:
    """Several member images as one input for KIE (which takes one), in order: one image is
    prepared as it is (prepare_input); two side by side; three or four in a 2×2 grid, left to
    right then top to bottom (the cell of a missing 4th is left blank). Each is scaled to a
    common height, at most STITCH_MAX_HEIGHT (the model works at about one megapixel), and the
    whole within MAX_INPUT_SIDE and MAX_INPUT_PIXELS. Transparency is flattened onto white.

    Raises ImageRejected if an image is not valid (validate each first to name the bad one) and
    ValueError for no images or more than MAX_STITCHED.
    """
    if not 1 <= len(images) <= MAX_STITCHED:
        raise ValueError(f"stitch takes 1 to {MAX_STITCHED} images, not {len(images)}")
    if len(images) == 1:
        return prepare_input(images[0])
    # Each is shrunk to the cap as soon as it is decoded: four 40-megapixel photos are never
    # held at full size at once. Then the common height is the tallest one's.
    capped = [_upright_at_most(data, STITCH_MAX_HEIGHT) for data in images]
    height = max(img.height for img in capped)
    scaled = [_scaled_to_height(img, height) for img in capped]
    canvas = _side_by_side(scaled) if len(scaled) == 2 else _grid(scaled)
    canvas = _within_input_limits(canvas)
    data = _jpeg(canvas, STITCH_QUALITY)
    quality = STITCH_QUALITY
    while len(data) > MAX_INPUT_BYTES and quality > FIT_QUALITIES[-1]:
        quality -= 5
        data = _jpeg(canvas, quality)
    return PreparedImage(
        data=data,
        content_type=CONTENT_TYPES["jpeg"],
        extension=extension_for("jpeg"),
        width=canvas.width,
        height=canvas.height,
        converted=True,
    )


def _upright_at_most(data: bytes, height: int) -> Image.Image:
    img, _ = _decode(data, draft_height=height)
    with _strict():
        upright = _flatten(ImageOps.exif_transpose(img))
    return _scaled_to_height(upright, height) if upright.height > height else upright


def _scaled_to_height(img: Image.Image, height: int) -> Image.Image:
    width = max(1, round(img.width * height / img.height))
    if (width, height) == img.size:
        return img
    return img.resize((width, height), Image.Resampling.LANCZOS)


def _side_by_side(scaled: Sequence[Image.Image]) -> Image.Image:
    canvas = Image.new("RGB", (sum(img.width for img in scaled), scaled[0].height))
    x = 0
    for img in scaled:
        canvas.paste(img, (x, 0))
        x += img.width
    return canvas


def _grid(scaled: Sequence[Image.Image]) -> Image.Image:
    """A 2×2 grid of equal cells (as wide as the widest image), each image centred in its own."""
    cell_width = max(img.width for img in scaled)
    cell_height = scaled[0].height
    canvas = Image.new("RGB", (2 * cell_width, 2 * cell_height), STITCH_BACKGROUND)
    for index, img in enumerate(scaled):
        row, column = divmod(index, 2)
        x = column * cell_width + (cell_width - img.width) // 2
        canvas.paste(img, (x, row * cell_height))
    return canvas


def _within_input_limits(canvas: Image.Image) -> Image.Image:
    """Scaled down (keeping its shape) to fit MAX_INPUT_SIDE and MAX_INPUT_PIXELS."""
    width, height = canvas.size
    scale = min(
        1.0,
        MAX_INPUT_SIDE / width,
        MAX_INPUT_SIDE / height,
        (MAX_INPUT_PIXELS / (width * height)) ** 0.5,
    )
    if scale >= 1.0:
        return canvas
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return canvas.resize(size, Image.Resampling.LANCZOS)


def _flatten(img: Image.Image) -> Image.Image:
    if not _has_alpha(img):
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


_P = ParamSpec("_P")
_T = TypeVar("_T")
# Decoding and re-encoding take tens to hundreds of milliseconds for large images: they run
# off the event loop, in one worker thread (warnings.catch_warnings is process-global, so the
# strict decoding above must not run in two threads at once).
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kontext-images")


async def in_worker(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run an image function in the image worker thread."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_WORKER, lambda: fn(*args, **kwargs))
