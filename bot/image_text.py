"""Translate text in image: the languages a member may pick and the edit prompt for KIE.

Discord has 32 locales in 30 distinct languages; a string select holds at most 25 options, so
the list offers the member's own language first, then the most widely used of the rest
(`LANGUAGES` is ordered by how useful it is on Discord). Any other language can be typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bot.flux import MAX

MAX_OPTIONS: Final = 25  # Discord's limit on a string select's options
MAX_LANGUAGE_CHARS: Final = 40  # a typed language name ("Brazilian Portuguese", "Latin")
# Max renders typography better than Pro (BFL's model notes).
TRANSLATE_MODEL: Final = MAX


@dataclass(frozen=True)
class Language:
    code: str  # the select option's value: the language's first Discord locale
    english: str  # the name in the prompt: Kontext understands English instructions best
    native: str  # the name its speakers read in the list
    locales: tuple[str, ...]

    @property
    def label(self) -> str:
        if self.native == self.english:
            return self.english
        return f"{self.english} — {self.native}"


def _language(english: str, native: str, *locales: str) -> Language:
    return Language(code=locales[0], english=english, native=native, locales=locales)


LANGUAGES: Final[tuple[Language, ...]] = (
    _language("English", "English", "en-US", "en-GB"),
    _language("Simplified Chinese", "简体中文", "zh-CN"),
    _language("Spanish", "Español", "es-ES", "es-419"),
    _language("Japanese", "日本語", "ja"),
    _language("French", "Français", "fr"),
    _language("German", "Deutsch", "de"),
    _language("Brazilian Portuguese", "Português do Brasil", "pt-BR"),
    _language("Russian", "Русский", "ru"),
    _language("Korean", "한국어", "ko"),
    _language("Traditional Chinese", "繁體中文", "zh-TW"),
    _language("Italian", "Italiano", "it"),
    _language("Hindi", "हिन्दी", "hi"),
    _language("Turkish", "Türkçe", "tr"),
    _language("Vietnamese", "Tiếng Việt", "vi"),
    _language("Indonesian", "Bahasa Indonesia", "id"),
    _language("Thai", "ไทย", "th"),
    _language("Polish", "Polski", "pl"),
    _language("Ukrainian", "Українська", "uk"),
    _language("Dutch", "Nederlands", "nl"),
    _language("Romanian", "Română", "ro"),
    _language("Greek", "Ελληνικά", "el"),
    _language("Czech", "Čeština", "cs"),
    _language("Hungarian", "Magyar", "hu"),
    _language("Swedish", "Svenska", "sv-SE"),
    _language("Bulgarian", "Български", "bg"),
    _language("Danish", "Dansk", "da"),
    _language("Finnish", "Suomi", "fi"),
    _language("Norwegian", "Norsk", "no"),
    _language("Croatian", "Hrvatski", "hr"),
    _language("Lithuanian", "Lietuvių", "lt"),
)
_BY_CODE: Final = {language.code: language for language in LANGUAGES}


def language_of_locale(locale: str | None) -> Language:
    """The language of a Discord locale ("es-419" → Spanish); English for anything unknown."""
    for language in LANGUAGES:
        if locale in language.locales:
            return language
    return LANGUAGES[0]


def languages_offered(locale: str | None) -> list[Language]:
    """The select's options: the member's language first, then the most used others."""
    own = language_of_locale(locale)
    others = [language for language in LANGUAGES if language is not own]
    return [own, *others][:MAX_OPTIONS]


def chosen_language(code: str | None, typed: str | None) -> str:
    """The language's English name for the prompt: a typed name wins over the list's choice
    (the member typed it because the list did not have it)."""
    name = " ".join((typed or "").split())[:MAX_LANGUAGE_CHARS]
    if name:
        return name
    return _BY_CODE.get(code or "", LANGUAGES[0]).english


def translation_prompt(language: str) -> str:
    """An English instruction (Kontext follows English best): what to change, how, and what
    to keep. The words themselves are unknown here, so they cannot be quoted."""
    return (
        f"Translate all visible text in the image into {language}. Replace each piece of "
        f"text with its {language} translation in the same position, keeping the original "
        "layout, font style, size and colours; keep everything else in the image unchanged."
    )
