"""Every message the bot can write is in every catalogue, with the English placeholders, and the
command tree's translations keep Discord's rules (names 1-32 lowercase, descriptions <= 100)."""

from __future__ import annotations

import string
import tomllib
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import CATALOGUE_OF_LOCALE, DOMAIN, EXTRACTION_KEYWORDS, LOCALE_DIR
from tests.fakediscord.command_limits import slash_name_valid

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = sorted({language for language in CATALOGUE_OF_LOCALE.values() if language})
Key = tuple[str | None, str]


def source_messages() -> dict[Key, str | tuple[str, ...]]:
    """What `pybabel extract -F pyproject.toml` finds, keyed by (context, msgid)."""
    mappings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["babel"]["mappings"]
    method_map = [(m["pattern"], m["method"]) for m in mappings]
    keywords = {**DEFAULT_KEYWORDS, **EXTRACTION_KEYWORDS}
    found: dict[Key, str | tuple[str, ...]] = {}
    for _file, _line, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, keywords=keywords
    ):
        msgid = message if isinstance(message, str) else message[0]
        found[(context, msgid)] = message
    return found


def catalogue(language: str) -> Catalog:
    with (LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        return read_po(po, locale=language)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def translations(message: Message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple) else [message.string]


@pytest.fixture(scope="module")
def in_source() -> dict[Key, str | tuple[str, ...]]:
    found = source_messages()
    assert len(found) > 100  # the extraction itself works (the command tree alone has more)
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_with_the_english_placeholders(
    language: str, in_source: dict[Key, str | tuple[str, ...]]
) -> None:
    po = catalogue(language)
    problems = []
    for (context, msgid), message in in_source.items():
        entry = po.get(msgid, context=context)
        english = message if isinstance(message, tuple) else (message,)
        expected = set().union(*(placeholders(text) for text in english))
        if entry is None or entry.fuzzy or not all(translations(entry)):
            problems.append(f"missing or fuzzy: {context or ''}|{msgid}")
        elif any(placeholders(text) - expected for text in translations(entry)) or (
            expected - set().union(*(placeholders(text) for text in translations(entry)))
        ):
            problems.append(f"placeholders differ: {msgid} -> {translations(entry)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_command_trees_translations_keep_discords_rules(language: str) -> None:
    problems = []
    for entry in catalogue(language):
        text = entry.string if isinstance(entry.string, str) else ""
        if entry.context in ("command name", "option name") and not slash_name_valid(text):
            problems.append(f"{entry.context}: {entry.id} -> {text!r}")
        elif (entry.context or "").endswith(("description", "choice name")) and len(text) > 100:
            problems.append(f"over 100 characters: {entry.id}")
    assert not problems, "\n".join(problems)
