"""Checks on what a member typed, before anything is spent."""

from __future__ import annotations

import math
import re
import unicodedata

from bot.i18n import Message, Text

MAX_PROMPT_CHARS = 1500
ASPECT_RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
OUTPUT_FORMATS = ("jpeg", "png")
MAX_TOLERANCE_GENERATE = 6
MAX_TOLERANCE_EDIT = 2

# Zero-width and bidirectional control characters carry no meaning for the model and can hide
# text from moderators; they are removed before the prompt is stored or sent.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")


class InputRejected(Exception):
    """Bad input: `user_message` is shown to the member; nothing is spent."""

    def __init__(self, user_message: Message) -> None:
        super().__init__(str(user_message))
        self.user_message = user_message


def clean_prompt(prompt: str | None) -> str:
    text = unicodedata.normalize("NFC", prompt or "")
    text = _INVISIBLE.sub("", text)
    text = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = text.strip()
    if not text:
        raise InputRejected(Text("The prompt is empty. Describe the image you want."))
    if len(text) > MAX_PROMPT_CHARS:
        raise InputRejected(
            Text(
                "The prompt is {length} characters long; the limit is {limit}.",
                length=len(text),
                limit=MAX_PROMPT_CHARS,
            )
        )
    return text


def check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InputRejected(
            Text("`{name}` must be one of: {allowed}.", name=name, allowed=", ".join(allowed))
        )


def check_tolerance(value: int, *, edit: bool) -> None:
    high = MAX_TOLERANCE_EDIT if edit else MAX_TOLERANCE_GENERATE
    if not 0 <= value <= high:
        if edit:
            raise InputRejected(
                Text("`safety_tolerance` must be between 0 and {high} for edits.", high=high)
            )
        raise InputRejected(
            Text("`safety_tolerance` must be between 0 and {high} for new images.", high=high)
        )


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The supported ratio closest to an image's shape (compared as log ratios, so 2:1 is as far
    from 1:1 as 1:2 is)."""
    shape = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - shape)

    return min(ASPECT_RATIOS, key=distance)
