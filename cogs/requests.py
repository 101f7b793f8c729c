"""What every way of asking for an image shares: admission, defer, input download, submission."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import discord

from bot import images
from bot.i18n import N_, Message, Text, tr
from bot.images import MAX_INPUT_BYTES, PreparedImage
from bot.ledger import ParentAction, Reference, Task, TaskKind, TaskParams
from bot.refs import OUTSIDE_SERVERS, RefRejected
from bot.service import Admission, KontextService, Origin, Refused
from bot.validation import MAX_PROMPT_CHARS, InputRejected, nearest_aspect_ratio
from cogs.client import KontextBot, send_ephemeral

log = logging.getLogger(__name__)

# An input image: its URL and, when Discord says, its size in bytes.
InputImage = tuple[str, int | None]
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".avif", ".tif", ".tiff")

Interaction = discord.Interaction[KontextBot]
# discord.ui's overridable callbacks (and Cog.interaction_check) are typed for any Client: an
# override takes this and narrows it with `kontext`.
AnyInteraction = discord.Interaction[discord.Client]

DEFER_REFUSED = Text(
    "Discord did not accept the bot's answer just now. Nothing was started — try again."
)


def kontext(interaction: AnyInteraction) -> Interaction:
    """The same interaction, typed for this bot. Every interaction this process receives comes
    through KontextBot; checked, so a wrong client fails here and not deep inside a callback."""
    if not isinstance(interaction.client, KontextBot):
        raise TypeError(f"an interaction of {type(interaction.client).__name__}, not KontextBot")
    return cast(Interaction, interaction)


def locale_of(interaction: AnyInteraction) -> str:
    """The member's Discord language, e.g. "ja" (bot.i18n renders messages in it)."""
    return str(interaction.locale)


def server_id_of(interaction: Interaction) -> int | None:
    """The server a request counts in; None outside servers: the bot's DM, a private channel,
    or a server the bot is not in (reached through a member's user install). There the
    operator's rules apply and the bot reaches the member only through the interaction."""
    if interaction.guild_id is None:
        return None
    if interaction.is_user_integration() and not interaction.is_guild_integration():
        return None
    return interaction.guild_id


def origin_of(interaction: Interaction) -> Origin:
    channel_id = interaction.channel_id or 0
    channel = interaction.channel
    return Origin(
        user_id=interaction.user.id,
        guild_id=server_id_of(interaction),
        channel_id=channel_id,
        application_id=interaction.application_id,
        interaction_id=interaction.id,
        interaction_token=interaction.token,
        upload_limit=interaction.filesize_limit,
        can_manage_messages=interaction.permissions.manage_messages,
        parent_id=channel.parent_id if isinstance(channel, discord.Thread) else None,
        locale=locale_of(interaction),
    )


# What the bot must be allowed in a channel to post a result there: the image is an attachment
# shown in an embed. Send Messages is not needed: the webhook of the interaction posts the reply.
REQUIRED_APP_PERMISSIONS = (("attach_files", "Attach Files"), ("embed_links", "Embed Links"))


def missing_app_permissions(interaction: Interaction) -> list[str]:
    """The permissions the bot needs to post an image here but was not granted (in a server;
    the bot's DMs and private channels grant them)."""
    if interaction.guild_id is None:
        return []
    granted = interaction.app_permissions
    return [name for flag, name in REQUIRED_APP_PERMISSIONS if not getattr(granted, flag)]


async def refused_for_permissions(interaction: Interaction) -> bool:
    """Before a prompt is asked for: when the bot may not post an image here, say so privately
    and return True."""
    try:
        interaction.client.service.check_bot_permissions(missing_app_permissions(interaction))
    except Refused as exc:
        await send_ephemeral(interaction, exc.user_message)
        return True
    return False


def first_image_url(message: discord.Message) -> InputImage | None:
    """The first image attachment (or image embed) of a message: its URL and size if known."""
    for attachment in message.attachments:
        content_type = (attachment.content_type or "").split(";")[0]
        if content_type.startswith("image/") or attachment.filename.lower().endswith(
            IMAGE_EXTENSIONS
        ):
            return attachment.url, attachment.size
    for embed in message.embeds:
        for media in (embed.image, embed.thumbnail):
            if media.url:
                return media.url, None
    return None


def numbered(number: int, total: int, message: Message) -> Message:
    """A refusal about one of several images names it: "Image 2: …"."""
    if total == 1:
        return message
    return Text("Image {number}: {message}", number=number, message=message)


def check_sizes(inputs: Sequence[InputImage]) -> None:
    """Before anything is spent: refuse an image Discord says is over the input limit."""
    for number, (_, size) in enumerate(inputs, start=1):
        if size is not None and size > MAX_INPUT_BYTES:
            too_large = Text(
                "The image is larger than {megabytes} MB.",
                megabytes=MAX_INPUT_BYTES // (1024 * 1024),
            )
            raise InputRejected(numbered(number, len(inputs), too_large))


async def fetch_inputs(
    service: KontextService,
    inputs: Sequence[InputImage],
    params: TaskParams,
    reference: Reference | None = None,
) -> tuple[PreparedImage, TaskParams]:
    """Download and validate each image in order (a refusal names it), then stitch them into
    KIE's one input image, a saved `reference` last. Of several, the result's shape is image
    1's nearest ratio (not the composite's) unless the member chose one."""
    prepared: list[PreparedImage] = []
    for number, (url, _) in enumerate(inputs, start=1):
        try:
            prepared.append(await service.fetch_input(url))
        except InputRejected as exc:
            raise InputRejected(numbered(number, len(inputs), exc.user_message)) from None
    if len(prepared) == 1 and reference is None:
        return prepared[0], params
    stitching = [image.data for image in prepared] + ([reference.data] if reference else [])
    stitched = await images.in_worker(images.stitch, stitching)
    if params.aspect_ratio is None:
        first = prepared[0]
        params = replace(params, aspect_ratio=nearest_aspect_ratio(first.width, first.height))
    return stitched, params


def check_reference_rules(guild_id: int | None, name: str | None, attached: int) -> None:
    """What can be said of a named reference without reading it: only in a server, and stitched
    after the `attached` images, so at most MAX_STITCHED - 1 of them. Raise InputRejected."""
    if name is None:
        return
    if guild_id is None:
        raise RefRejected(OUTSIDE_SERVERS)
    if attached >= images.MAX_STITCHED:
        raise InputRejected(
            Text(
                "With a reference, attach at most {most} images: the reference comes after "
                "them as image {position}.",
                most=images.MAX_STITCHED - 1,
                position=attached + 1,
            )
        )


@dataclass(frozen=True)
class Request:
    """One request, as a command or button hands it to `submit_request`.

    `count`: images asked for (None: the server's default); `private`: the member's option (a
    task made from a private result — `parent` — is private whatever it says: `admit`);
    `ref_name`: a saved reference, the input alone or stitched last; `more_images`: /edit's
    image2..4, stitched after `image_url`; `parents_input`: the input is the parent's own (a
    Re-roll), read after the answer."""

    kind: TaskKind
    build: Callable[[], TaskParams]
    image_url: str | None = None
    image_size: int | None = None
    more_images: Sequence[InputImage] = ()
    input_image_url: str | None = None
    parent: Task | None = None
    parent_action: ParentAction | None = None
    parents_input: bool = False
    count: int | None = None
    private: bool | None = None
    ref_name: str | None = None

    @property
    def inputs(self) -> list[InputImage]:
        if self.image_url is None:
            return []
        return [(self.image_url, self.image_size), *self.more_images]


async def submit_request(interaction: Interaction, **options: Any) -> None:
    """Take one request (`Request`'s fields; see `_take_request`); a graceful shutdown waits
    until it is written."""
    async with interaction.client.service.taking():
        await _take_request(interaction, Request(**options))


async def _take_request(interaction: Interaction, request: Request) -> None:
    """Validate, admit, answer within 3 s, download the input, write the task(s); or say why not.

    Nothing before the answer touches the disk or the network: the checks are answered from
    memory (`admit_early`), and asked of the ledger again right after it (`admit`), where a
    refusal withdraws the reply. Every refusal is ephemeral and costs nothing: no task, no KIE
    call, no cooldown. The work after the answer waits for other members' answers
    (`AnswersFirst`).
    """
    origin = origin_of(interaction)
    with interaction.client.answers.unanswered_interaction():
        answered = await _answer(interaction, origin, request)
    if answered is None:
        return
    early, params, reply_id = answered
    await interaction.client.answers.after_answers()
    try:
        await _admit_and_write(interaction, origin, early, request, params, reply_id)
    # Refused by the ledger (memory was behind), a refused input, or the daily quota ran
    # out between the check and the charge.
    except (InputRejected, Refused) as exc:
        await _withdraw(interaction, exc.user_message)


async def _answer(
    interaction: Interaction, origin: Origin, request: Request
) -> tuple[Admission, TaskParams, int] | None:
    """The checks from memory, then the first answer; None when refused (and told) or Discord
    refused the answer."""
    received = time.perf_counter()
    service = interaction.client.service
    try:
        service.check_bot_permissions(missing_app_permissions(interaction))
        params = request.build()
        check_sizes(request.inputs)
        early = service.admit_early(origin, private=request.private, parent=request.parent)
        check_reference_rules(origin.guild_id, request.ref_name, len(request.inputs))
        count = service.images_for(early, request.count)
        service.screen_early(early, params, kind=request.kind, count=count)
    except (InputRejected, Refused) as exc:
        await send_ephemeral(interaction, exc.user_message)
        return None
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "interaction %s: %.3f ms of checks before the answer, sent %.1f ms after its creation",
            interaction.id,
            (time.perf_counter() - received) * 1000,
            (discord.utils.utcnow() - interaction.created_at).total_seconds() * 1000,
        )
    reply_id = await _defer(interaction, private=early.private)
    if reply_id is None:
        return None
    return early, params, reply_id


# The server's private-results mode changed elsewhere between the answer and the ledger's check
# (a shard moved between processes): rare enough for the general message.
PRIVACY_CHANGED = Text("Something went wrong on the bot's side. Please try again.")


async def _admit_and_write(
    interaction: Interaction,
    origin: Origin,
    early: Admission,
    request: Request,
    params: TaskParams,
    reply_id: int,
) -> None:
    """After the answer: admission asked of the ledger, the reference and input images read,
    then the task(s) written. Raise InputRejected or Refused."""
    service = interaction.client.service
    parent_task_id = request.parent.id if request.parent is not None else None
    admission = await service.admit(origin, private=request.private, parent_task_id=parent_task_id)
    if admission.private != early.private:
        # The reply already went out public (or private); the task must not be the other.
        raise Refused(PRIVACY_CHANGED, reason="private")
    image_count = service.images_for(admission, request.count)
    params = await service.screen(admission, params, kind=request.kind, count=image_count)
    ref = None
    if request.ref_name is not None:
        ref = await interaction.client.refs.find(origin.guild_id, request.ref_name)
    image, input_url = None, request.input_image_url
    if request.parents_input and request.parent is not None:
        input_url, image = await service.reroll_source(request.parent)
    if request.inputs:
        image, params = await fetch_inputs(service, request.inputs, params, ref)
    await service.create_task(
        admission,
        kind=request.kind,
        params=params,
        reply_message_id=reply_id,
        image=image,
        input_image_url=input_url,
        parent_task_id=parent_task_id,
        parent_action=request.parent_action,
        count=image_count,
        ref_name=ref.name if ref is not None else None,
    )


async def _defer(interaction: Interaction, *, private: bool) -> int | None:
    """Answer with the "thinking…" reply (ephemeral when `private`) and return its message id;
    None when Discord refused the answer (the member is then told privately, if reachable)."""
    try:
        async with interaction.client.answers.sending():
            reply_id = await interaction.client.first_answers.defer_thinking(
                interaction, private=private
            )
    except discord.HTTPException as exc:
        # Discord refused the first answer (Cloudflare's 429 is not retried: first_answer.py):
        # nothing is written or spent; the member may still be reachable with a private note.
        log.warning(
            "could not answer interaction %s (%s %s); nothing was started",
            interaction.id,
            exc.status,
            exc.code,
        )
        await send_ephemeral(interaction, DEFER_REFUSED)
        return None
    if reply_id is not None:
        return reply_id
    return (await interaction.original_response()).id


async def _withdraw(interaction: Interaction, message: Message) -> None:
    """After the "thinking…" reply: remove it and tell the member alone why."""
    with contextlib.suppress(discord.HTTPException):
        await interaction.delete_original_response()
    await send_ephemeral(interaction, message)


PROMPT_LABEL = N_("Prompt")
PROMPT_PLACEHOLDER = N_("Describe the change: “make it night, add neon signs”")


class KontextModal(discord.ui.Modal):
    """The bot's modals: a failure is logged and the member told privately, in their language."""

    async def on_error(
        self,
        interaction: AnyInteraction,
        error: Exception,
        item: discord.ui.Item[Any] | None = None,
        /,
    ) -> None:
        # The optional `item` keeps this compatible with View.on_error too (a Modal is a View).
        log.error("%s failed (user %s)", type(self).__name__, interaction.user.id, exc_info=error)
        await send_ephemeral(
            interaction, Text("Something went wrong on the bot's side. Please try again.")
        )


class PromptModal(KontextModal):
    """Asks for a prompt, then hands the modal's own interaction to `on_prompt`."""

    prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label=PROMPT_LABEL,
        style=discord.TextStyle.paragraph,
        placeholder=PROMPT_PLACEHOLDER,
        max_length=MAX_PROMPT_CHARS,
        required=True,
    )

    def __init__(
        self,
        *,
        title: str,
        on_prompt: Callable[[Interaction, str], Coroutine[Any, Any, None]],
        custom_id: str,
        default: str | None = None,
        locale: str | None = None,
    ) -> None:
        """`default`: the prompt the box opens with (the member may change it); `locale`: the
        member's language for the box's label (`title` comes translated)."""
        super().__init__(title=title, timeout=15 * 60, custom_id=custom_id)
        self.prompt.label = tr(locale, PROMPT_LABEL)
        self.prompt.placeholder = tr(locale, PROMPT_PLACEHOLDER)
        self.prompt.default = default
        self._on_prompt = on_prompt

    async def on_submit(self, interaction: AnyInteraction, /) -> None:
        await self._on_prompt(kontext(interaction), self.prompt.value)
