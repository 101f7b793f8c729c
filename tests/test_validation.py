"""validation.nearest_aspect_ratio: the result shape of an edit of several images (image 1's)."""

from __future__ import annotations

import pytest

from bot.validation import nearest_aspect_ratio


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ((1920, 1080), "16:9"),
        ((1080, 1920), "9:16"),
        ((300, 400), "3:4"),
        ((4000, 3000), "4:3"),
        ((512, 512), "1:1"),
        ((530, 512), "1:1"),
        ((3440, 1440), "21:9"),
        ((8000, 400), "21:9"),  # wider than any: the widest
        ((400, 8000), "9:16"),
        ((1500, 1000), "4:3"),  # 3:2 lies between 4:3 and 16:9, nearer 4:3 (log scale)
    ],
)
def test_nearest_aspect_ratio(size: tuple[int, int], ratio: str) -> None:
    assert nearest_aspect_ratio(*size) == ratio
