"""Discord's rules for the names, descriptions and their localisations in a command sync.

Slash command (and option) names: 1-32 characters of ^[-_\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]$,
lowercase where a letter has a lowercase form; context menu names: 1-32 characters of any kind;
descriptions (and choice names): 1-100. `name_localizations` / `description_localizations` are
keyed by Discord's locales only, and each value follows the rule of the field it translates.
A slash command's bad localised name is reported on the whole `name_localizations` (Discord
does so: discord-api-docs#7712), an option's on the locale.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from .limits import Errors, _bad_length, _err, _set

DISCORD_LOCALES = (
    "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu", "nl",
    "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru", "uk", "hi",
    "th", "zh-CN", "ja", "zh-TW", "ko",
)  # fmt: skip
NAME_MAX = 32
DESCRIPTION_MAX = 100
CHOICE_NAME_MAX = 100
SUBCOMMAND_TYPES = (1, 2)  # SUB_COMMAND, SUB_COMMAND_GROUP


def _name_char(ch: str) -> bool:
    if ch in "-_" or unicodedata.category(ch)[0] in "LN":
        return True
    return unicodedata.name(ch, "").startswith(("DEVANAGARI", "THAI"))


def slash_name_valid(name: Any) -> bool:
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX:
        return False
    return all(_name_char(ch) for ch in name) and name == name.lower()


def _invalid_name() -> Errors:
    return _err("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


def _check_text(errors: Errors, path: list[str | int], value: Any, high: int) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= high:
        _set(errors, path, _bad_length(1, high))


def _localizations(errors: Errors, path: list[str | int], value: Any) -> dict[str, Any]:
    """The valid part of a localisations object; bad keys are reported."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        _set(errors, path, _err("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"))
        return {}
    allowed = ", ".join(f"'{code}'" for code in DISCORD_LOCALES)
    for key in value:
        if key not in DISCORD_LOCALES:
            choices = _err("BASE_TYPE_CHOICES", f"Value must be one of ({allowed}).")
            _set(errors, [*path, key], choices)
    return {k: v for k, v in value.items() if k in DISCORD_LOCALES}


def _check_name(errors: Errors, path: list[str | int], obj: dict[str, Any], slash: bool) -> None:
    name = obj.get("name")
    if slash and not slash_name_valid(name):
        _set(errors, [*path, "name"], _invalid_name())
    elif not slash:
        _check_text(errors, [*path, "name"], name, NAME_MAX)
    localized = _localizations(errors, [*path, "name_localizations"], obj.get("name_localizations"))
    for locale, value in localized.items():
        if slash and not slash_name_valid(value):
            per_locale = len(path) > 1  # an option (a command's error is on the whole object)
            where = [*path, "name_localizations"] + ([locale] if per_locale else [])
            _set(errors, where, _invalid_name())
        elif not slash:
            _check_text(errors, [*path, "name_localizations", locale], value, NAME_MAX)


def _check_description(errors: Errors, path: list[str | int], obj: dict[str, Any]) -> None:
    _check_text(errors, [*path, "description"], obj.get("description"), DESCRIPTION_MAX)
    localized = _localizations(
        errors, [*path, "description_localizations"], obj.get("description_localizations")
    )
    for locale, value in localized.items():
        _check_text(errors, [*path, "description_localizations", locale], value, DESCRIPTION_MAX)


def _check_option(errors: Errors, path: list[str | int], option: Any) -> None:
    if not isinstance(option, dict):
        return
    _check_name(errors, path, option, slash=True)
    _check_description(errors, path, option)
    for i, choice in enumerate(option.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        where: list[str | int] = [*path, "choices", i]
        _check_text(errors, [*where, "name"], choice.get("name"), CHOICE_NAME_MAX)
        localized = _localizations(
            errors, [*where, "name_localizations"], choice.get("name_localizations")
        )
        for locale, value in localized.items():
            _check_text(errors, [*where, "name_localizations", locale], value, CHOICE_NAME_MAX)
    if option.get("type") in SUBCOMMAND_TYPES:
        for i, child in enumerate(option.get("options") or []):
            _check_option(errors, [*path, "options", i], child)


def check_command_texts(errors: Errors, path: list[str | int], cmd: Any) -> None:
    """The names, descriptions and localisations of one command of a bulk overwrite."""
    if not isinstance(cmd, dict):
        return
    slash = cmd.get("type", 1) == 1
    _check_name(errors, path, cmd, slash=slash)
    if slash:
        _check_description(errors, path, cmd)
        for i, option in enumerate(cmd.get("options") or []):
            _check_option(errors, [*path, "options", i], option)
