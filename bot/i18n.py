"""Every member's language: message catalogues (gettext .mo compiled from bot/locale/*/kontext.po).

Code that knows the reader's Discord locale translates at once with `tr(locale, msgid, **params)`.
Code that does not (the core's refusals, outcomes, status lines) returns a `Text`, which the
Discord side renders in the reader's locale with `render(message, locale)`. Placeholders are
`{name}` (str.format; a literal brace is doubled). English is the source and the fallback.

Extract, update and compile the catalogues: see README.md, "Translations".
"""

from __future__ import annotations

import gettext
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Protocol

DOMAIN = "kontext"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

# The Discord locales served, each with its catalogue; any other locale reads English.
CATALOGUE_OF_LOCALE: Mapping[str, str | None] = {
    "en-US": None,
    "en-GB": None,
    "zh-CN": "zh_CN",
    "es-ES": "es",
    "es-419": "es",
    "ja": "ja",
}
LOCALES = ("en-US", "zh-CN", "es-ES", "ja")
TRANSLATED_LOCALES = ("zh-CN", "es-ES", "ja")

# What `pybabel extract -k ...` looks for (README.md, "Translations"; tests/test_catalogues.py):
# the function name and which arguments are the message (and its plural).
EXTRACTION_KEYWORDS: Mapping[str, tuple[int, ...]] = {
    "Text": (1,),
    "tr": (2,),
    "N_": (1,),
    "Plural": (1, 2),
    "ntr": (2, 3),
}


def N_(msgid: str) -> str:
    """Marks a constant for extraction; it is translated where it is shown."""
    return msgid


def catalogue_language(locale: str | None) -> str | None:
    """The catalogue for a Discord locale ("es-419" -> "es"); None: English."""
    if not locale:
        return None
    return CATALOGUE_OF_LOCALE.get(str(locale))


@cache
def _translations(language: str | None) -> gettext.NullTranslations:
    if language is None:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


def has_catalogue(locale: str) -> bool:
    """Whether the compiled catalogue for `locale` is installed (False for English)."""
    return isinstance(_translations(catalogue_language(locale)), gettext.GNUTranslations)


def translated(locale: str | None, msgid: str, *, context: str | None = None) -> str | None:
    """The catalogue's translation of `msgid` (under a gettext `context`), or None when the
    locale reads English or the catalogue has none. Unformatted: for the command tree."""
    translations = _translations(catalogue_language(locale))
    text = translations.pgettext(context, msgid) if context else translations.gettext(msgid)
    return None if text == msgid else text


class Renderable(Protocol):
    def render(self, locale: str | None) -> str: ...


Message = str | Renderable


def render(message: Message, locale: str | None) -> str:
    """A message in the reader's language; plain strings (user text, ids) pass through."""
    return message if isinstance(message, str) else message.render(locale)


def _rendered(params: Mapping[str, object], locale: str | None) -> dict[str, object]:
    return {
        name: value.render(locale) if isinstance(value, Text | Plural | Joined) else value
        for name, value in params.items()
    }


def tr(locale: str | None, msgid: str, **params: object) -> str:
    """`msgid` translated into `locale`'s language, then its `{placeholders}` filled in."""
    return (
        _translations(catalogue_language(locale)).gettext(msgid).format(**_rendered(params, locale))
    )


def ntr(locale: str | None, singular: str, plural: str, n: int, **params: object) -> str:
    """Like `tr`, choosing the plural form for `n` (also given to the text as `{n}`)."""
    text = _translations(catalogue_language(locale)).ngettext(singular, plural, n)
    return text.format(n=n, **_rendered(params, locale))


class Text:
    """A message to translate later: `Text("Wait {seconds} s.", seconds=5)`; str() is English."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, /, **params: object) -> None:
        self.msgid = msgid
        self.params: Mapping[str, object] = params

    def render(self, locale: str | None) -> str:
        return tr(locale, self.msgid, **self.params)

    def __str__(self) -> str:
        return self.render(None)

    def __repr__(self) -> str:
        return f"Text({self.msgid!r}, **{dict(self.params)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Text):
            return NotImplemented
        return (self.msgid, dict(self.params)) == (other.msgid, dict(other.params))

    def __hash__(self) -> int:
        return hash(self.msgid)


class Plural:
    """A message with a count: `Plural("{n} image", "{n} images", 3)`; str() is English."""

    __slots__ = ("n", "params", "plural", "singular")

    def __init__(self, singular: str, plural: str, n: int, /, **params: object) -> None:
        self.singular, self.plural, self.n = singular, plural, n
        self.params: Mapping[str, object] = params

    def render(self, locale: str | None) -> str:
        return ntr(locale, self.singular, self.plural, self.n, **self.params)

    def __str__(self) -> str:
        return self.render(None)

    def __repr__(self) -> str:
        return f"Plural({self.singular!r}, {self.plural!r}, {self.n!r}, **{dict(self.params)!r})"


class Joined:
    """Messages shown together (`join(" ", [a, b])`), each part rendered in the same locale."""

    __slots__ = ("parts", "separator")

    def __init__(self, separator: str, parts: Iterable[Message]) -> None:
        self.separator = separator
        self.parts: tuple[Message, ...] = tuple(parts)

    def render(self, locale: str | None) -> str:
        return self.separator.join(render(part, locale) for part in self.parts)

    def __str__(self) -> str:
        return self.render(None)

    def __repr__(self) -> str:
        return f"Joined({self.separator!r}, {self.parts!r})"


def join(separator: str, parts: Iterable[Message]) -> Joined:
    return Joined(separator, parts)
