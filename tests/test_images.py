"""Image intake and result fitting: sniffing, refusals with clear messages, conversion."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image

from bot.images import (
    COMPARE_GAP,
    MAX_INPUT_BYTES,
    MAX_INPUT_PIXELS,
    MAX_INPUT_SIDE,
    STITCH_BACKGROUND,
    STITCH_MAX_HEIGHT,
    ImageRejected,
    fit_to_limit,
    prepare_input,
    probe,
    side_by_side,
    sniff,
    stitch,
)


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def gradient(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    img = Image.linear_gradient("L").resize(size)
    return img.convert(mode)


def noise(size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_png(width: int, height: int, *, idat: bytes | None = None) -> bytes:
    """A 1-bit greyscale PNG built by hand, so huge images cost no memory to make."""
    if idat is None:
        row = b"\x00" + b"\x00" * ((width + 7) // 8)
        compressor = zlib.compressobj(9)
        idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def rejected(data: bytes) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        prepare_input(data)
    return info.value


# -- sniff -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("PNG", "png"),
        ("JPEG", "jpeg"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
        ("BMP", "bmp"),
        ("TIFF", "tiff"),
        ("AVIF", "avif"),
    ],
)
def test_sniff_recognises_formats(fmt: str, name: str) -> None:
    """sniff() names each format Pillow writes from its magic bytes."""
    assert sniff(encode(gradient(), fmt)) == name


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, a text file named cat.png\n", b"BM", b"%!PS-Adobe-3.0 EPSF", b"\x00" * 64],
)
def test_sniff_rejects_non_images(data: bytes) -> None:
    """Text, empty input, PostScript and a bare 'BM' are not image signatures."""
    assert sniff(data) is None


# -- refusals ----------------------------------------------------------------------------


def test_text_file_named_png_is_rejected() -> None:
    """A text file (whatever its name) is refused as not an image."""
    err = rejected(b"just some text pretending to be cat.png")
    assert err.reason == "not_image"
    assert "isn't an image" in str(err.user_message)


def test_thirty_megabyte_input_is_rejected_before_decoding() -> None:
    """Input over 20 MB is refused by size, with the limit in the message."""
    data = encode(gradient(), "PNG")
    data += b"\x00" * (30 * 1024 * 1024 - len(data))
    assert len(data) > MAX_INPUT_BYTES
    err = rejected(data)
    assert err.reason == "too_large"
    assert "larger than 20 MB" in str(err.user_message)


def test_truncated_png_is_rejected() -> None:
    """A PNG cut in half is refused as damaged, not silently padded."""
    data = encode(noise((200, 200)), "PNG")
    err = rejected(data[: len(data) // 2])
    assert err.reason == "corrupt"
    assert "damaged or incomplete" in str(err.user_message)


def test_truncated_jpeg_is_rejected() -> None:
    """A JPEG missing its tail is refused as damaged."""
    data = encode(noise((300, 300)), "JPEG", quality=90)
    assert rejected(data[: len(data) * 2 // 3]).reason == "corrupt"


def test_header_only_png_is_rejected() -> None:
    """A PNG with a valid header but garbage pixel data is refused as damaged."""
    assert rejected(raw_png(32, 32, idat=b"not zlib at all")).reason == "corrupt"


def test_header_claiming_huge_dimensions_is_a_bomb() -> None:
    """A tiny PNG whose header claims 100000×100000 is refused without decoding."""
    data = raw_png(100_000, 100_000, idat=zlib.compress(b"\x00"))
    assert len(data) < 200
    err = rejected(data)
    assert err.reason == "too_many_pixels"
    assert "too large" in str(err.user_message)


def test_12000_square_compressible_image_is_refused_with_dimensions() -> None:
    """A real, tiny-on-disk 12000×12000 PNG is refused with its size in the message."""
    data = raw_png(12_000, 12_000)
    assert len(data) < 1_000_000
    err = rejected(data)
    assert err.reason == "too_many_pixels"
    assert "12000×12000" in str(err.user_message)
    assert "8192" in str(err.user_message)


def test_one_side_over_limit_is_refused() -> None:
    """An image wider than 8192 px is refused even though its pixel count is small."""
    assert rejected(raw_png(9000, 10)).reason == "too_many_pixels"


def test_too_many_pixels_within_side_limit_is_refused() -> None:
    """7000×7000 (49 MP) is under the side limit but over 40 megapixels: refused."""
    err = rejected(raw_png(7000, 7000))
    assert err.reason == "too_many_pixels"
    assert "40 megapixels" in str(err.user_message)


def test_animated_gif_is_rejected() -> None:
    """A GIF with several frames is refused as animated."""
    frames = [Image.new("RGB", (20, 20), (i * 100, 50, 0)) for i in range(3)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    err = rejected(data)
    assert err.reason == "animated"
    assert "Animated images aren't supported" in str(err.user_message)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_png_and_webp_are_rejected(fmt: str) -> None:
    """Animated PNG (APNG) and animated WebP are refused too."""
    frames = [Image.new("RGB", (20, 20), (i * 80, 0, 0)) for i in range(3)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    assert rejected(data).reason == "animated"


# -- passthrough and conversion ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type", "ext"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
def test_png_jpeg_webp_pass_through_unchanged(fmt: str, content_type: str, ext: str) -> None:
    """PNG, JPEG and WebP are kept byte for byte with their own type and size."""
    data = encode(gradient((64, 48)), fmt)
    prepared = prepare_input(data)
    assert prepared.data == data
    assert prepared.converted is False
    assert (prepared.content_type, prepared.extension) == (content_type, ext)
    assert (prepared.width, prepared.height) == (64, 48)


def test_static_gif_is_converted() -> None:
    """A single-frame GIF is converted to a decodable JPEG (no transparency)."""
    prepared = prepare_input(encode(gradient((40, 30)).convert("P"), "GIF"))
    assert prepared.converted is True
    assert (prepared.content_type, prepared.extension) == ("image/jpeg", "jpg")
    assert sniff(prepared.data) == "jpeg"
    assert probe(prepared.data) == (40, 30, "jpeg")


def test_transparent_gif_is_converted_to_png_keeping_alpha() -> None:
    """A GIF with a transparent colour becomes a PNG whose alpha channel survives."""
    img = Image.new("P", (10, 10), 0)
    img.putpixel((5, 5), 1)
    data = encode(img, "GIF", transparency=0)
    prepared = prepare_input(data)
    assert prepared.content_type == "image/png"
    out = Image.open(io.BytesIO(prepared.data)).convert("RGBA")
    assert out.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert out.getpixel((5, 5))[3] == 255  # type: ignore[index]


def test_bmp_is_converted() -> None:
    """A BMP is converted to JPEG with the same dimensions."""
    prepared = prepare_input(encode(gradient((33, 21)), "BMP"))
    assert prepared.converted and prepared.extension == "jpg"
    assert probe(prepared.data)[:2] == (33, 21)


def test_tiff_with_alpha_is_converted_to_png() -> None:
    """A TIFF with an alpha channel converts to PNG, keeping transparency."""
    img = Image.new("RGBA", (12, 8), (255, 0, 0, 0))
    prepared = prepare_input(encode(img, "TIFF"))
    assert prepared.extension == "png"
    assert Image.open(io.BytesIO(prepared.data)).mode == "RGBA"


def test_exif_orientation_applied_when_converting() -> None:
    """A rotated-by-EXIF TIFF (orientation 6) converts upright: width and height swap."""
    img = gradient((40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    prepared = prepare_input(encode(img, "TIFF", exif=exif))
    assert prepared.converted
    assert (prepared.width, prepared.height) == (20, 40)
    assert probe(prepared.data)[:2] == (20, 40)


def test_passthrough_jpeg_reports_displayed_size() -> None:
    """A passed-through JPEG with EXIF orientation 6 reports its displayed (rotated) size."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(gradient((40, 20)), "JPEG", exif=exif)
    prepared = prepare_input(data)
    assert prepared.data == data
    assert (prepared.width, prepared.height) == (20, 40)


def test_mpo_phone_photo_is_not_treated_as_animated() -> None:
    """A multi-picture JPEG (MPO, as phones write) is accepted and passed through."""
    frames = [gradient((32, 32)), gradient((16, 16))]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    prepared = prepare_input(data)
    assert prepared.data == data and prepared.extension == "jpg"


# -- results -----------------------------------------------------------------------------


def test_fit_to_limit_leaves_small_image_unchanged() -> None:
    """An image already under the limit comes back unchanged with its own extension."""
    data = encode(gradient(), "PNG")
    assert fit_to_limit(data, 1024 * 1024) == (data, "png")


def test_fit_to_limit_shrinks_noisy_png_under_limit() -> None:
    """A noisy ~3 MB PNG is re-encoded as a JPEG under 1 MB that still decodes."""
    data = encode(noise((1000, 1000)), "PNG")
    assert len(data) > 3_000_000 - 100_000
    fitted, ext = fit_to_limit(data, 1024 * 1024)
    assert ext == "jpg"
    assert len(fitted) <= 1024 * 1024
    width, height, kind = probe(fitted)
    assert kind == "jpeg" and width == height and width >= 256


def test_fit_to_limit_downscales_when_quality_is_not_enough() -> None:
    """When even quality 60 is too big, the image is downscaled until it fits."""
    data = encode(noise((800, 600)), "PNG")
    fitted, ext = fit_to_limit(data, 60_000)
    width, height, _ = probe(fitted)
    assert len(fitted) <= 60_000 and ext == "jpg"
    assert width < 800 and abs(width / height - 800 / 600) < 0.02


def test_fit_to_limit_impossible_limit_raises() -> None:
    """A limit no reasonable image can meet raises ValueError instead of looping."""
    with pytest.raises(ValueError):
        fit_to_limit(encode(noise((300, 300)), "PNG"), 100)


def test_probe_reports_size_and_format() -> None:
    """probe() gives width, height and format, and refuses non-images."""
    assert probe(encode(gradient((70, 50)), "WEBP")) == (70, 50, "webp")
    with pytest.raises(ImageRejected):
        probe(b"<html>not an image</html>")


def test_recognised_but_unsupported_format_is_refused() -> None:
    """A HEIC file (recognised, but Pillow cannot decode it here) gets the unsupported message."""
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    assert sniff(data) == "heic"
    err = rejected(data)
    assert err.reason == "unsupported"
    assert "format isn't supported" in str(err.user_message)


def test_side_by_side_uses_displayed_orientation_and_flattens_alpha() -> None:
    """A phone photo stored sideways (EXIF 6) is compared upright; a transparent input is put
    on white, next to the result at the same height."""
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = encode(Image.new("RGB", (40, 20), (0, 0, 200)), "JPEG", exif=exif)
    clear = encode(Image.new("RGBA", (30, 40), (0, 0, 0, 0)), "PNG")
    with Image.open(io.BytesIO(side_by_side(clear, sideways))) as composite:
        size = composite.size
        left = composite.convert("RGB").getpixel((15, 20))
    assert isinstance(left, tuple)
    assert (size, all(c > 240 for c in left)) == ((30 + COMPARE_GAP + 20, 40), True)


def test_side_by_side_refuses_what_is_not_an_image() -> None:
    with pytest.raises(ImageRejected):
        side_by_side(b"not an image", encode(gradient(), "PNG"))


# -- stitch ------------------------------------------------------------------------------

RED, GREEN, BLUE, YELLOW = (220, 20, 20), (20, 200, 20), (20, 20, 220), (230, 220, 20)


def flat(size: tuple[int, int], colour: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    return encode(Image.new("RGB", size, colour), fmt)


def opened(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def close_to(pixel: object, colour: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= 12 for a, b in zip(pixel, colour, strict=True))


def test_stitch_of_one_image_is_that_image_as_prepared() -> None:
    """One image goes to KIE as today: the member's PNG byte for byte."""
    data = flat((50, 40), RED)
    stitched = stitch([data])
    assert (stitched.data, stitched.converted) == (data, False)


def test_stitch_of_two_puts_them_side_by_side_at_a_common_height() -> None:
    """Image 1 on the left, image 2 (smaller, another format) scaled up to image 1's height."""
    stitched = stitch([flat((120, 100), RED), flat((30, 50), BLUE, "JPEG")])
    composite = opened(stitched.data)
    assert (stitched.width, stitched.height, stitched.content_type) == (180, 100, "image/jpeg")
    assert composite.size == (180, 100)
    assert close_to(composite.getpixel((60, 50)), RED)
    assert close_to(composite.getpixel((150, 50)), BLUE)


def test_stitch_of_four_is_a_grid_left_to_right_then_top_to_bottom() -> None:
    inputs = [flat((64, 64), colour) for colour in (RED, GREEN, BLUE, YELLOW)]
    composite = opened(stitch(inputs).data)
    assert composite.size == (128, 128)
    quadrants = [composite.getpixel(xy) for xy in ((32, 32), (96, 32), (32, 96), (96, 96))]
    assert all(
        close_to(pixel, colour)
        for pixel, colour in zip(quadrants, (RED, GREEN, BLUE, YELLOW), strict=True)
    )


def test_stitch_of_three_leaves_the_fourth_cell_blank_and_centres_narrow_images() -> None:
    """Cells are as wide as the widest image; a narrower one is centred in its cell."""
    inputs = [flat((100, 50), RED), flat((50, 50), GREEN), flat((100, 50), BLUE)]
    composite = opened(stitch(inputs).data)
    assert composite.size == (200, 100)
    assert close_to(composite.getpixel((110, 25)), STITCH_BACKGROUND)  # beside image 2
    assert close_to(composite.getpixel((150, 25)), GREEN)
    assert close_to(composite.getpixel((150, 75)), STITCH_BACKGROUND)  # the empty 4th cell


def test_stitch_caps_the_common_height() -> None:
    """Big photos are scaled down to STITCH_MAX_HEIGHT each: the model works at ~1 MP."""
    stitched = stitch([flat((3000, 2000), RED, "JPEG"), flat((1000, 2000), BLUE, "JPEG")])
    assert (stitched.width, stitched.height) == (2048, STITCH_MAX_HEIGHT)


def test_stitch_keeps_the_composite_within_the_input_limits() -> None:
    """Four panoramas side by side in a grid would be far wider than KIE takes: scaled down."""
    panorama = flat((8000, 400), GREEN)
    stitched = stitch([panorama] * 4)
    assert stitched.width <= MAX_INPUT_SIDE and stitched.height <= MAX_INPUT_SIDE
    assert stitched.width * stitched.height <= MAX_INPUT_PIXELS
    assert len(stitched.data) <= MAX_INPUT_BYTES
    assert abs(stitched.width / stitched.height - 20) < 0.1


def test_stitch_flattens_transparency_and_turns_sideways_photos_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = encode(Image.new("RGB", (40, 20), BLUE), "JPEG", exif=exif)
    clear = encode(Image.new("RGBA", (20, 40), (0, 0, 0, 0)), "PNG")
    stitched = stitch([clear, sideways])
    composite = opened(stitched.data)
    assert (composite.size, close_to(composite.getpixel((10, 20)), (255, 255, 255))) == (
        (40, 40),
        True,
    )


def test_stitch_refuses_bad_images_and_bad_counts() -> None:
    with pytest.raises(ImageRejected):
        stitch([flat((10, 10), RED), b"not an image"])
    with pytest.raises(ValueError):
        stitch([])
    with pytest.raises(ValueError):
        stitch([flat((10, 10), RED)] * 5)


def test_stitch_of_big_photos_keeps_their_displayed_shape_and_colours() -> None:
    """Big JPEGs are decoded at a reduced scale: a sideways phone photo (EXIF 6, stored
    3000×1500) and a greyscale one still come out upright, at the capped height."""
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = encode(Image.new("RGB", (3000, 1500), RED), "JPEG", exif=exif)
    grey = encode(Image.new("L", (2048, 2048), 90), "JPEG")
    stitched = stitch([sideways, grey])
    composite = opened(stitched.data)
    assert (stitched.width, stitched.height) == (512 + 1024, STITCH_MAX_HEIGHT)
    assert close_to(composite.getpixel((256, 512)), RED)
    assert close_to(composite.getpixel((1024, 512)), (90, 90, 90))
