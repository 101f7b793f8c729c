"""The command tree in every member's language: discord.py's Translator over the message
catalogues (bot.i18n), and the extractor that puts the tree's strings into them.

Each string of the tree is looked up with a gettext context saying where it sits ("command
name", "option description", ...), because Discord's rules differ by place: slash command and
option names are 1-32 lowercase characters without spaces, descriptions 1-100 characters.
A context menu's name is free text: its constant is marked with N_ and looked up without context.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import pkgutil
from collections.abc import Iterator
from typing import IO, Any

import discord
from discord import app_commands
from discord.app_commands import Command, Group, TranslationContextLocation, locale_str
from discord.ext import commands

from bot.i18n import translated

Location = TranslationContextLocation
CONTEXT_OF_LOCATION = {
    Location.command_name: "command name",
    Location.group_name: "command name",
    Location.command_description: "command description",
    Location.group_description: "command description",
    Location.parameter_name: "option name",
    Location.parameter_description: "option description",
    Location.choice_name: "choice name",
}
TRANSLATOR_NOTES = {
    "command name": "A slash command's name: 1-32 lowercase letters, digits, - or _; no spaces.",
    "option name": "A slash command option's name: 1-32 lowercase letters, digits, - or _.",
    "command description": "At most 100 characters.",
    "option description": "At most 100 characters.",
    "choice name": "At most 100 characters.",
}


class CatalogueTranslator(app_commands.Translator):
    """Names, descriptions and choices of every command, from the catalogues (None: English)."""

    async def translate(
        self,
        string: locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        gettext_context = CONTEXT_OF_LOCATION.get(context.location)
        if isinstance(context.data, app_commands.ContextMenu):
            gettext_context = None
        return translated(locale.value, string.message, context=gettext_context)


async def tree_digest(tree: app_commands.CommandTree[Any], guild_id: int | None) -> str:
    """A hash of the tree as a sync would send it, its localisations included: the bot syncs
    again when a name, an option or a translation changed."""
    translator = tree.translator
    payload = sorted(
        [
            await command.get_translated_payload(tree, translator)
            if translator
            else command.to_dict(tree)
            for command in tree.get_commands()
        ],
        key=lambda c: (c.get("type", 1), c["name"]),
    )
    text = json.dumps({"guild": guild_id, "commands": payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _tree_commands() -> Iterator[Command[Any, ..., Any] | Group]:
    """Every slash command and group the cogs declare (read from their classes; no bot needed)."""
    import cogs  # noqa: PLC0415 - the package being walked

    for module_info in pkgutil.iter_modules(cogs.__path__, "cogs."):
        module = importlib.import_module(module_info.name)
        for cog in vars(module).values():
            if inspect.isclass(cog) and issubclass(cog, commands.Cog):
                if cog.__module__ != module.__name__:
                    continue
                if cog.__cog_is_app_commands_group__:
                    yield app_commands.Group(
                        name=cog.__cog_group_name__,
                        description=cog.__cog_group_description__,
                    )
                yield from cog.__cog_app_commands__


def tree_strings() -> Iterator[tuple[str, str]]:
    """(gettext context, English text) for every name, description and choice of the tree."""
    for command in _tree_commands():
        yield from _command_strings(command)


def _command_strings(command: Command[Any, ..., Any] | Group) -> Iterator[tuple[str, str]]:
    yield "command name", command.name
    yield "command description", command.description
    if isinstance(command, Group):
        for child in command.commands:
            yield from _command_strings(child)
        return
    for parameter in command.parameters:
        yield "option name", parameter.display_name
        yield "option description", parameter.description
        for choice in parameter.choices:
            yield "choice name", choice.name


def extract_command_tree(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, list[str], list[str]]]:
    """A Babel extraction method (pyproject.toml, [tool.babel.mappings]): the tree's strings,
    each with its gettext context and a note for translators on Discord's limits."""
    seen: set[tuple[str, str]] = set()
    for context, text in tree_strings():
        if (context, text) not in seen and text and text != "…":
            seen.add((context, text))
            yield 0, "pgettext", [context, text], [TRANSLATOR_NOTES[context]]
