"""Translate text in image: the languages offered and the instruction sent to KIE."""

from __future__ import annotations

import discord

from bot.image_text import (
    LANGUAGES,
    MAX_OPTIONS,
    chosen_language,
    language_of_locale,
    languages_offered,
    translation_prompt,
)


def test_every_discord_locale_has_its_language() -> None:
    """Each of Discord's locales maps to one language of the list (none falls to English
    unless it is English)."""
    for locale in discord.Locale:
        language = language_of_locale(str(locale))
        assert str(locale) in language.locales, locale


def test_a_member_outside_the_most_used_25_still_finds_their_language_first() -> None:
    """A Danish member (Danish is past the 25 most used) gets Danish first, then 24 others."""
    offered = languages_offered("da")
    assert len(offered) == MAX_OPTIONS
    assert offered[0].english == "Danish"
    assert len({language.code for language in offered}) == MAX_OPTIONS


def test_the_list_for_an_unknown_locale_is_the_25_most_used_english_first() -> None:
    assert languages_offered(None) == list(LANGUAGES[:MAX_OPTIONS])


def test_a_typed_language_wins_and_is_tidied() -> None:
    assert chosen_language("ja", "  Old   Norse ") == "Old Norse"
    assert chosen_language("ja", "") == "Japanese"
    assert chosen_language("zh-TW", None) == "Traditional Chinese"
    assert len(chosen_language(None, "x" * 100)) == 40


def test_the_prompt_names_the_language_and_what_to_keep() -> None:
    prompt = translation_prompt("Japanese")
    assert prompt.startswith("Translate all visible text in the image into Japanese.")
    assert "layout, font style, size and colours" in prompt
