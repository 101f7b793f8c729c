"""Discord's message/modal shape limits (from the OpenAPI spec), checked cheaply.

Each check returns a nested ``errors`` object in Discord's ``Invalid Form Body`` shape, or ``{}``.
"""

from __future__ import annotations

from typing import Any

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
ACTION_ROWS_MAX = 5
ROW_WIDTH_MAX = 5  # a button is 1 wide, a select 5
SELECT_TYPES = (3, 5, 6, 7, 8)  # string, user, role, mentionable, channel selects
SELECT_OPTIONS_MAX = 25  # also the bound of min_values / max_values
SELECT_OPTION_TEXT_MAX = 100  # option label, value, description
SELECT_PLACEHOLDER_MAX = 150
ATTACHMENTS_MAX = 10
BUTTON_LABEL_MAX = 80
CUSTOM_ID_MAX = 100
MODAL_TITLE_MAX = 45
TEXT_INPUT_LABEL_MAX = 45

Errors = dict[str, Any]


def _err(code: str, message: str) -> Errors:
    return {"_errors": [{"code": code, "message": message}]}


def _too_long(limit: int) -> Errors:
    return _err("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _set(errors: Errors, path: list[str | int], leaf: Errors) -> None:
    node = errors
    for key in path:
        node = node.setdefault(str(key), {})
    node.update(leaf)


def _check_len(errors: Errors, path: list[str | int], value: Any, limit: int) -> None:
    if isinstance(value, str | list) and len(value) > limit:
        _set(errors, path, _too_long(limit))


def _bad_length(low: int, high: int) -> Errors:
    return _err("BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _check_range(errors: Errors, path: list[str | int], value: Any, low: int, high: int) -> None:
    """An integer field with Discord's NUMBER_TYPE_MIN / NUMBER_TYPE_MAX answers."""
    if not isinstance(value, int) or isinstance(value, bool):
        return
    if value < low:
        _set(
            errors,
            path,
            _err("NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}."),
        )
    elif value > high:
        _set(
            errors,
            path,
            _err("NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}."),
        )


def _check_custom_id(errors: Errors, path: list[str | int], custom_id: Any) -> None:
    if isinstance(custom_id, str):
        if not custom_id:
            _set(errors, path, _bad_length(1, CUSTOM_ID_MAX))
        _check_len(errors, path, custom_id, CUSTOM_ID_MAX)


def validate_string_select(errors: Errors, path: list[str | int], select: dict[str, Any]) -> None:
    """A string select (type 3): 1-25 options with label/value/description <= 100, placeholder
    <= 150, min_values 0-25, max_values 1-25, custom id 1-100 characters."""
    _check_custom_id(errors, [*path, "custom_id"], select.get("custom_id"))
    _check_len(errors, [*path, "placeholder"], select.get("placeholder"), SELECT_PLACEHOLDER_MAX)
    _check_range(errors, [*path, "min_values"], select.get("min_values"), 0, SELECT_OPTIONS_MAX)
    _check_range(errors, [*path, "max_values"], select.get("max_values"), 1, SELECT_OPTIONS_MAX)
    options = select.get("options")
    if not isinstance(options, list) or not 1 <= len(options) <= SELECT_OPTIONS_MAX:
        _set(errors, [*path, "options"], _bad_length(1, SELECT_OPTIONS_MAX))
        return
    for o, option in enumerate(options):
        if not isinstance(option, dict):
            continue
        for key in ("label", "value", "description"):
            _check_len(errors, [*path, "options", o, key], option.get(key), SELECT_OPTION_TEXT_MAX)


def _validate_row(errors: Errors, path: list[str | int], children: Any, seen: set[str]) -> None:
    """One action row: 1-5 children, a select fills the row's width alone (Discord answers the
    child that overflows with COMPONENT_LAYOUT_WIDTH_EXCEEDED), custom ids unique per message."""
    if not isinstance(children, list) or not children:
        _set(errors, path, _bad_length(1, ROW_WIDTH_MAX))
        return
    width = 0
    for c, child in enumerate(children):
        if not isinstance(child, dict):
            continue
        width += ROW_WIDTH_MAX if child.get("type") in SELECT_TYPES else 1
        if width > ROW_WIDTH_MAX:
            _set(
                errors,
                [*path, c],
                _err(
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                ),
            )
        if child.get("type") == 2:
            _check_len(errors, [*path, c, "label"], child.get("label"), BUTTON_LABEL_MAX)
        if child.get("type") == 3:
            validate_string_select(errors, [*path, c], child)
        custom_id = child.get("custom_id")
        if isinstance(custom_id, str):
            _check_custom_id(errors, [*path, c, "custom_id"], custom_id)
            if custom_id in seen:
                _set(
                    errors,
                    [*path, c, "custom_id"],
                    _err(
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    ),
                )
            seen.add(custom_id)


def validate_components(errors: Errors, prefix: list[str | int], components: Any) -> None:
    """Classic components: at most 5 action rows (type 1) of buttons and selects."""
    if not isinstance(components, list):
        return
    _check_len(errors, prefix, components, ACTION_ROWS_MAX)
    seen: set[str] = set()
    for r, row in enumerate(components):
        if isinstance(row, dict) and row.get("type") == 1:
            _validate_row(errors, [*prefix, r, "components"], row.get("components"), seen)


def validate_attachments(errors: Errors, prefix: list[str | int], attachments: Any) -> None:
    """At most 10 attachments per message (the ``attachments`` list of a create/edit body)."""
    _check_len(errors, [*prefix, "attachments"], attachments, ATTACHMENTS_MAX)


def check_attachment_count(errors: Errors, prefix: list[str | int], count: int) -> None:
    """The message a body leaves has at most 10 attachments, listed or not."""
    if count > ATTACHMENTS_MAX:
        _set(errors, [*prefix, "attachments"], _too_long(ATTACHMENTS_MAX))


def validate_embeds(errors: Errors, prefix: list[str | int], embeds: Any) -> None:
    """Embed count and per-field lengths."""
    if not isinstance(embeds, list):
        return
    _check_len(errors, prefix, embeds, EMBEDS_MAX)
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            continue
        path = [*prefix, i]
        _check_len(errors, [*path, "title"], embed.get("title"), EMBED_TITLE_MAX)
        _check_len(errors, [*path, "description"], embed.get("description"), EMBED_DESCRIPTION_MAX)
        fields = embed.get("fields") or []
        _check_len(errors, [*path, "fields"], fields, EMBED_FIELDS_MAX)
        for f, field in enumerate(fields):
            if isinstance(field, dict):
                _check_len(
                    errors, [*path, "fields", f, "name"], field.get("name"), EMBED_FIELD_NAME_MAX
                )
                _check_len(
                    errors, [*path, "fields", f, "value"], field.get("value"), EMBED_FIELD_VALUE_MAX
                )
                total += len(str(field.get("name") or "")) + len(str(field.get("value") or ""))
        footer = embed.get("footer") or {}
        author = embed.get("author") or {}
        _check_len(errors, [*path, "footer", "text"], footer.get("text"), EMBED_FOOTER_MAX)
        _check_len(errors, [*path, "author", "name"], author.get("name"), EMBED_AUTHOR_MAX)
        for part in (
            embed.get("title"),
            embed.get("description"),
            footer.get("text"),
            author.get("name"),
        ):
            total += len(part) if isinstance(part, str) else 0
    if total > EMBED_TOTAL_MAX:
        _set(
            errors,
            prefix,
            _err("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"),
        )


def validate_message(payload: Any, prefix: list[str | int] | None = None) -> Errors:
    """Content, embeds and components of a message create/edit body."""
    errors: Errors = {}
    if not isinstance(payload, dict):
        return errors
    p: list[str | int] = list(prefix or [])
    _check_len(errors, [*p, "content"], payload.get("content"), CONTENT_MAX)
    validate_embeds(errors, [*p, "embeds"], payload.get("embeds"))
    validate_components(errors, [*p, "components"], payload.get("components"))
    validate_attachments(errors, p, payload.get("attachments"))
    return errors


def validate_modal(payload: Any, prefix: list[str | int] | None = None) -> Errors:
    """A type-9 callback's modal: title, custom id, rows and text-input labels."""
    errors: Errors = {}
    if not isinstance(payload, dict):
        return errors
    p: list[str | int] = list(prefix or [])
    _check_len(errors, [*p, "title"], payload.get("title"), MODAL_TITLE_MAX)
    _check_len(errors, [*p, "custom_id"], payload.get("custom_id"), CUSTOM_ID_MAX)
    components = payload.get("components") or []
    _check_len(errors, [*p, "components"], components, ACTION_ROWS_MAX)
    for r, row in enumerate(components):
        if not isinstance(row, dict):
            continue
        if row.get("type") == 18:
            _check_len(
                errors, [*p, "components", r, "label"], row.get("label"), TEXT_INPUT_LABEL_MAX
            )
            _validate_modal_input(errors, [*p, "components", r, "component"], row.get("component"))
            continue
        for c, child in enumerate(row.get("components") or []):
            _validate_modal_input(errors, [*p, "components", r, "components", c], child)
    return errors


def _validate_modal_input(errors: Errors, path: list[str | int], child: Any) -> None:
    """A modal's text input (type 4) or string select (type 3, inside a label)."""
    if not isinstance(child, dict):
        return
    if child.get("type") == 4:
        _check_len(errors, [*path, "label"], child.get("label"), TEXT_INPUT_LABEL_MAX)
    if child.get("type") == 3:
        validate_string_select(errors, path, child)
    _check_custom_id(errors, [*path, "custom_id"], child.get("custom_id"))


INTERACTION_CONTEXTS = (0, 1, 2)  # GUILD, BOT_DM, PRIVATE_CHANNEL
INTEGRATION_TYPES = (0, 1)  # GUILD_INSTALL, USER_INSTALL


def _check_enum_array(
    errors: Errors, path: list[str | int], value: Any, allowed: tuple[int, ...]
) -> None:
    """Null, or a non-empty array of distinct values from ``allowed`` (the OpenAPI schema)."""
    if value is None:
        return
    if not isinstance(value, list):
        _set(errors, path, _err("BASE_TYPE_ARRAY", "Must be an array."))
        return
    if not value:
        _set(errors, path, _err("BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length."))
    for i, item in enumerate(value):
        if isinstance(item, bool) or item not in allowed:
            choices = ", ".join(str(a) for a in allowed)
            _set(
                errors,
                [*path, i],
                _err("BASE_TYPE_CHOICES", f"Value must be one of {{{choices}}}."),
            )
    if len(set(map(str, value))) != len(value):
        _set(errors, path, _err("UNIQUE_ITEMS", "Items must be unique."))


def validate_command(cmd: Any, prefix: list[str | int] | None = None) -> Errors:
    """A command of a bulk overwrite: where it may be used (``contexts``) and installed
    (``integration_types``)."""
    errors: Errors = {}
    if not isinstance(cmd, dict):
        return errors
    p: list[str | int] = list(prefix or [])
    _check_enum_array(errors, [*p, "contexts"], cmd.get("contexts"), INTERACTION_CONTEXTS)
    _check_enum_array(
        errors, [*p, "integration_types"], cmd.get("integration_types"), INTEGRATION_TYPES
    )
    return errors


AUTOCOMPLETE_CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
CHOICE_STRING_VALUE_MAX = 100


def validate_autocomplete(payload: Any, prefix: list[str | int] | None = None) -> Errors:
    """A type-8 callback's choices: at most 25, each name 1-100 characters, a string value at
    most 100 (Discord's application command option choice)."""
    errors: Errors = {}
    if not isinstance(payload, dict):
        return errors
    p: list[str | int] = [*(prefix or []), "choices"]
    choices = payload.get("choices")
    if choices is None:
        return errors
    if not isinstance(choices, list):
        _set(errors, p, _err("BASE_TYPE_ARRAY", "Must be an array."))
        return errors
    _check_len(errors, p, choices, AUTOCOMPLETE_CHOICES_MAX)
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        name = choice.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= CHOICE_NAME_MAX:
            _set(errors, [*p, i, "name"], _bad_length(1, CHOICE_NAME_MAX))
        _check_len(errors, [*p, i, "value"], choice.get("value"), CHOICE_STRING_VALUE_MAX)
    return errors
