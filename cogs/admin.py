"""/kontext-admin (server settings, blocks, credits), /usage; registers the mod-log buttons."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot.flux import DEFAULT_MODEL, MODEL_NAMES, model_name
from bot.i18n import N_, Message, Plural, Text, join, render, tr
from bot.kie import KieError
from bot.moderation import GuildSettings, UsageSummary
from bot.moderation.policy import (
    MAX_ALLOWED_CHANNELS,
    MAX_BLOCKED_ENTRIES,
    MAX_COUNT,
    PRIVATE_ALLOWED,
    PRIVATE_FORCED,
    PRIVATE_OFF,
    check_entry,
    fmt_credits,
    relative,
)
from bot.validation import ASPECT_RATIOS
from cogs.admin_output import OutputSettings
from cogs.channel_options import (
    CommandChannel,
    ModlogChannel,
    command_channel_refusal,
    modlog_problem,
)
from cogs.client import send_ephemeral
from cogs.modlog import DYNAMIC_ITEMS
from cogs.requests import AnyInteraction, Interaction, locale_of, server_id_of

if TYPE_CHECKING:
    from cogs.client import KontextBot

log = logging.getLogger(__name__)

NOT_A_MODERATOR = Text(
    "Only moderators with the Manage Server permission can change the image bot."
)
NO_MENTIONS = discord.AllowedMentions.none()

NO_DEFAULT_MODEL = Text("{model} (none set)", model=model_name(DEFAULT_MODEL))
DEFAULT_MODEL_CHOICES = [
    *(Choice(name=name, value=model) for model, name in MODEL_NAMES.items()),
    Choice(name=f"No default ({model_name(DEFAULT_MODEL)})", value="none"),
]
DEFAULT_RATIO_CHOICES = [Choice(name=r, value=r) for r in ASPECT_RATIOS] + [
    Choice(name="No default (16:9)", value="none")
]


CREDITS_FOOTER = N_("Credits per image: Pro {pro}, Max {max}. Quotas reset at 00:00 UTC.")
TOO_MANY_CHANNELS = N_("At most {most} channels can be listed.")
LIST_FULL = N_("The list is full ({most} entries).")
ALLOWANCE_SET = N_(
    "Each member may now spend {credits} credits per day (Pro costs {pro}, Max {max})."
)
BLOCKED = N_("{member} is now blocked from the image bot in this server.")
RESET = N_("{member}'s credits for today were reset.")
BALANCE_UNREAD = N_("KIE's balance couldn't be read right now: {why}")
BALANCE = N_("KIE balance: **{balance}** credits (alert threshold {threshold}).")
BALANCE_LOW = N_(
    "KIE balance: **{balance}** credits (alert threshold {threshold}) — under the alert "
    "threshold, the operator should top up."
)


def _defaults_answer(gs: GuildSettings) -> Text:
    return Text(
        "Default model: {model}. Default aspect ratio: {ratio}. Images per request: {count}.",
        model=_default_model(gs),
        ratio=gs.default_aspect_ratio or Text("16:9 (none set)"),
        count=gs.default_count,
    )


def _channels(ids: tuple[int, ...]) -> Message:
    return ", ".join(f"<#{c}>" for c in ids) if ids else Text("all channels")


def _limit(value: float | None, locale: str | None) -> str:
    if value is None:
        return tr(locale, "no limit")
    return tr(locale, "{cost} credits", cost=fmt_credits(value))


def _on_off(on: bool, locale: str | None) -> str:
    return tr(locale, "on") if on else tr(locale, "off")


def _default_model(gs: GuildSettings) -> Message:
    return model_name(gs.default_model) if gs.default_model else NO_DEFAULT_MODEL


def describe(gs: GuildSettings, default_cooldown: float, locale: str | None = None) -> str:
    """The current settings of a server, as a moderator reads them (in `locale`)."""
    cooldown = gs.cooldown_seconds if gs.cooldown_seconds is not None else default_cooldown
    seconds = tr(locale, "{seconds} s", seconds=f"{cooldown:g}")
    if gs.cooldown_seconds is None:
        seconds = tr(locale, "{seconds} (the bot's default)", seconds=seconds)
    modlog = f"<#{gs.modlog_channel_id}>" if gs.modlog_channel_id else tr(locale, "off")
    rows = [
        (N_("Channels"), render(_channels(gs.allowed_channels), locale)),
        (N_("Default model"), render(_default_model(gs), locale)),
        (N_("Default aspect ratio"), gs.default_aspect_ratio or tr(locale, "16:9 (none set)")),
        (N_("Max model"), tr(locale, "allowed") if gs.max_model_allowed else tr(locale, "off")),
        (
            N_("Highest safety tolerance"),
            tr(locale, "{tolerance} (edits: at most 2)", tolerance=gs.max_tolerance),
        ),
        (N_("Spoiler-tag results"), _on_off(gs.spoiler, locale)),
        (
            N_("Images per request"),
            tr(
                locale,
                "{count} by default, at most {most}",
                count=gs.default_count,
                most=gs.max_count,
            ),
        ),
        (N_("Private results"), tr(locale, _PRIVATE_NAMES[gs.private_results])),
        (N_("Saved references"), tr(locale, "at most {most} (/ref)", most=gs.max_refs)),
        (N_("Member cooldown"), seconds),
        (N_("Blocked words/expressions"), str(len(gs.blocked_words))),
        (N_("Mod-log"), modlog),
        (N_("Member daily allowance"), _limit(gs.member_daily_allowance, locale)),
        (N_("Server daily budget"), _limit(gs.server_daily_budget, locale)),
    ]
    return "\n".join(f"**{tr(locale, label)}:** {value}" for label, value in rows)


_PRIVATE_NAMES = {
    PRIVATE_FORCED: N_("forced"),
    PRIVATE_ALLOWED: N_("allowed"),
    PRIVATE_OFF: N_("off"),
}


def _guild(interaction: Interaction) -> int:
    assert interaction.guild_id is not None  # guild_only
    return interaction.guild_id


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
# Server-only even with ALLOW_DMS (which opens the member commands outside servers).
@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
class Admin(
    OutputSettings,
    commands.GroupCog,
    group_name="kontext-admin",
    group_description="Run the image bot in this server (moderators)",
):
    channels = app_commands.Group(
        name="channels", description="Where members may use the image bot"
    )
    words = app_commands.Group(
        name="blocked-words", description="Words and re: expressions refused in prompts"
    )

    def __init__(self, bot: KontextBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: AnyInteraction, /) -> bool:
        """Discord's default permission can be changed by a server; check again here."""
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    async def _update(self, interaction: Interaction, text: Message, **changes: Any) -> None:
        await self.bot.moderation.update(_guild(interaction), **changes)
        await send_ephemeral(interaction, text)

    async def _settings(self, interaction: Interaction) -> GuildSettings:
        return await self.bot.moderation.settings_for(_guild(interaction))

    # ---- settings ----------------------------------------------------------------------------

    @app_commands.command(name="show", description="Show this server's image bot settings")
    async def show(self, interaction: Interaction) -> None:
        gs, settings, locale = (
            await self._settings(interaction),
            self.bot.settings,
            locale_of(interaction),
        )
        embed = discord.Embed(
            title=tr(locale, "Image bot settings"),
            description=describe(gs, settings.user_cooldown_seconds, locale),
            color=0x5865F2,
        )
        embed.set_footer(
            text=tr(
                locale,
                CREDITS_FOOTER,
                pro=fmt_credits(settings.credit_cost_pro),
                max=fmt_credits(settings.credit_cost_max),
            )
        )
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @channels.command(name="add", description="Allow the image bot in a channel")
    @app_commands.describe(channel="A text, announcement, voice, forum or media channel")
    async def channels_add(self, interaction: Interaction, channel: CommandChannel) -> None:
        if refusal := command_channel_refusal(channel):
            await send_ephemeral(interaction, refusal)
            return
        gs = await self._settings(interaction)
        if channel.id in gs.allowed_channels:
            await send_ephemeral(
                interaction, Text("{channel} is already allowed.", channel=f"<#{channel.id}>")
            )
            return
        if len(gs.allowed_channels) >= MAX_ALLOWED_CHANNELS:
            await send_ephemeral(interaction, Text(TOO_MANY_CHANNELS, most=MAX_ALLOWED_CHANNELS))
            return
        channels = (*gs.allowed_channels, channel.id)
        await self._update(
            interaction,
            Text("The image bot now works only in {channels}.", channels=_channels(channels)),
            allowed_channels=channels,
        )

    @channels.command(name="remove", description="Stop allowing the image bot in a channel")
    @app_commands.describe(channel="The channel to remove from the list")
    async def channels_remove(
        self, interaction: Interaction, channel: app_commands.AppCommandChannel
    ) -> None:
        gs = await self._settings(interaction)
        if channel.id not in gs.allowed_channels:
            await send_ephemeral(
                interaction, Text("{channel} isn't on the list.", channel=f"<#{channel.id}>")
            )
            return
        channels = tuple(c for c in gs.allowed_channels if c != channel.id)
        await self._update(
            interaction,
            Text("The image bot now works in {channels}.", channels=_channels(channels)),
            allowed_channels=channels,
        )

    @channels.command(name="all", description="Allow the image bot in every channel")
    async def channels_all(self, interaction: Interaction) -> None:
        await self._update(
            interaction, Text("The image bot now works in all channels."), allowed_channels=()
        )

    @app_commands.command(name="defaults", description="Default model, aspect ratio and count")
    @app_commands.describe(
        model="Used when a member doesn't pick one",
        aspect_ratio="Used for new images",
        count=f"Images per request when a member doesn't say (1 to {MAX_COUNT})",
    )
    @app_commands.choices(model=DEFAULT_MODEL_CHOICES, aspect_ratio=DEFAULT_RATIO_CHOICES)
    async def defaults(
        self,
        interaction: Interaction,
        model: str | None = None,
        aspect_ratio: str | None = None,
        count: Range[int, 1, MAX_COUNT] | None = None,
    ) -> None:
        changes: dict[str, Any] = {}
        if model is not None:
            changes["default_model"] = None if model == "none" else model
        if aspect_ratio is not None:
            changes["default_aspect_ratio"] = None if aspect_ratio == "none" else aspect_ratio
        if count is not None:
            changes["default_count"] = count
        gs = await self._settings(interaction)
        if changes:
            gs = await self.bot.moderation.update(_guild(interaction), **changes)
        await send_ephemeral(interaction, _defaults_answer(gs))

    @app_commands.command(name="cooldown", description="Seconds a member waits between images")
    @app_commands.describe(seconds="Leave empty to use the bot's default")
    async def cooldown(
        self, interaction: Interaction, seconds: Range[int, 0, 86400] | None = None
    ) -> None:
        default = f"{self.bot.settings.user_cooldown_seconds:g}"
        text = (
            Text("The cooldown is back to the bot's default ({seconds} s).", seconds=default)
            if seconds is None
            else Text("Members now wait {seconds} s between images.", seconds=seconds)
        )
        await self._update(
            interaction, text, cooldown_seconds=None if seconds is None else float(seconds)
        )

    @words.command(name="add", description="Refuse prompts with a word (or re:expression)")
    @app_commands.describe(entry="A word or phrase, or re: followed by a regular expression")
    async def words_add(self, interaction: Interaction, entry: Range[str, 1, 100]) -> None:
        entry = entry.strip()
        problem = check_entry(entry)
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        gs = await self._settings(interaction)
        if entry in gs.blocked_words:
            await send_ephemeral(interaction, Text("That entry is already on the list."))
            return
        if len(gs.blocked_words) >= MAX_BLOCKED_ENTRIES:
            await send_ephemeral(interaction, Text(LIST_FULL, most=MAX_BLOCKED_ENTRIES))
            return
        await self._update(
            interaction,
            Text("Added. {count} entries are blocked.", count=len(gs.blocked_words) + 1),
            blocked_words=(*gs.blocked_words, entry),
        )

    @words.command(name="remove", description="Remove a blocked word or expression")
    @app_commands.describe(entry="The entry exactly as listed")
    async def words_remove(self, interaction: Interaction, entry: Range[str, 1, 100]) -> None:
        gs = await self._settings(interaction)
        entry = entry.strip()
        if entry not in gs.blocked_words:
            await send_ephemeral(interaction, Text("That entry isn't on the list."))
            return
        await self._update(
            interaction,
            Text("Removed. {count} entries are blocked.", count=len(gs.blocked_words) - 1),
            blocked_words=tuple(w for w in gs.blocked_words if w != entry),
        )

    @words.command(name="list", description="List the blocked words and expressions")
    async def words_list(self, interaction: Interaction) -> None:
        gs = await self._settings(interaction)
        if not gs.blocked_words:
            await send_ephemeral(interaction, Text("No words are blocked."))
            return
        lines = [f"- `{w.replace('`', 'ˋ')}`" for w in gs.blocked_words]
        text = tr(locale_of(interaction), "Blocked:") + "\n" + "\n".join(lines)
        await send_ephemeral(interaction, text[:1990])

    @app_commands.command(name="modlog", description="Where the mod-log is posted")
    @app_commands.describe(channel="A text or announcement channel; leave empty to turn it off")
    async def modlog(self, interaction: Interaction, channel: ModlogChannel | None = None) -> None:
        if channel is not None and (problem := modlog_problem(interaction, channel)):
            await send_ephemeral(interaction, problem)
            return
        text = (
            Text("The mod-log is now posted in {channel}.", channel=f"<#{channel.id}>")
            if channel
            else Text("The mod-log is now off.")
        )
        await self._update(interaction, text, modlog_channel_id=channel.id if channel else None)

    @app_commands.command(name="allowance", description="Daily credits per member")
    @app_commands.describe(credits="Credits each member may spend per UTC day; empty = no limit")
    async def allowance(
        self, interaction: Interaction, credits: Range[int, 0, 1_000_000] | None = None
    ) -> None:
        settings = self.bot.settings
        text = (
            Text("Members now have no daily credit limit.")
            if credits is None
            else Text(
                ALLOWANCE_SET,
                credits=credits,
                pro=fmt_credits(settings.credit_cost_pro),
                max=fmt_credits(settings.credit_cost_max),
            )
        )
        await self._update(
            interaction,
            text,
            member_daily_allowance=None if credits is None else float(credits),
        )

    @app_commands.command(name="budget", description="Daily credits for the whole server")
    @app_commands.describe(credits="Credits the server may spend per UTC day; empty = no limit")
    async def budget(
        self, interaction: Interaction, credits: Range[int, 0, 10_000_000] | None = None
    ) -> None:
        text = (
            Text("The server now has no daily credit budget.")
            if credits is None
            else Text("The server may now spend {credits} credits per day.", credits=credits)
        )
        await self._update(
            interaction, text, server_daily_budget=None if credits is None else float(credits)
        )

    # ---- members -------------------------------------------------------------------------------

    @app_commands.command(name="block", description="Block a member from the image bot")
    @app_commands.describe(member="The member to block")
    async def block(self, interaction: Interaction, member: discord.User) -> None:
        if member.id == interaction.user.id:
            await send_ephemeral(interaction, Text("You can't block yourself."))
            return
        await self.bot.moderation.block(_guild(interaction), member.id, by=interaction.user.id)
        await send_ephemeral(interaction, Text(BLOCKED, member=f"<@{member.id}>"))

    @app_commands.command(name="unblock", description="Let a blocked member use the image bot")
    @app_commands.describe(member="The member to unblock")
    async def unblock(self, interaction: Interaction, member: discord.User) -> None:
        removed = await self.bot.moderation.unblock(
            _guild(interaction), member.id, by=interaction.user.id
        )
        mention = f"<@{member.id}>"
        await send_ephemeral(
            interaction,
            Text("{member} may use the image bot again.", member=mention)
            if removed
            else Text("{member} wasn't blocked.", member=mention),
        )

    @app_commands.command(name="reset-quota", description="Reset a member's credits for today")
    @app_commands.describe(member="The member whose daily credits start over")
    async def reset_quota(self, interaction: Interaction, member: discord.User) -> None:
        await self.bot.moderation.reset_quota(_guild(interaction), member.id)
        await send_ephemeral(interaction, Text(RESET, member=f"<@{member.id}>"))

    @app_commands.command(name="credits", description="The bot's remaining KIE credits")
    async def credits(self, interaction: Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            balance = await self.bot.moderation.credits()
        except KieError as exc:
            log.warning("credit balance read failed: %s", type(exc).__name__)
            await send_ephemeral(interaction, Text(BALANCE_UNREAD, why=Text(exc.user_message)))
            return
        threshold = self.bot.settings.low_credit_threshold
        answer = BALANCE_LOW if balance < threshold else BALANCE
        await send_ephemeral(
            interaction,
            Text(answer, balance=fmt_credits(balance), threshold=fmt_credits(threshold)),
        )


def _images_today(images: int, requests: int) -> Message:
    """'Today: 6 images in 2 requests' (a set of 4 is one request of 4 images)."""
    in_requests = Plural("in {n} request", "in {n} requests", requests)
    return Plural(
        "Today: {n} image {requests}.",
        "Today: {n} images {requests}.",
        images,
        requests=in_requests,
    )


def _member_usage(summary: UsageSummary, in_server: bool) -> Message:
    used = fmt_credits(summary.member_used)
    if summary.member_allowance is None:
        mine: Message = Text(
            "You've used **{used}** credits today; there's no daily limit for members.",
            used=used,
        )
    else:
        mine = Text(
            "You've used **{used}** of your **{allowance}** daily credits; **{left}** left.",
            used=used,
            allowance=fmt_credits(summary.member_allowance),
            left=fmt_credits(max(0.0, summary.member_allowance - summary.member_used)),
        )
    return mine if in_server else Text("Outside servers: {usage}", usage=mine)


def _server_usage(summary: UsageSummary) -> Message:
    if summary.server_budget is None:
        return Text(
            "The server has used {used} credits today.", used=fmt_credits(summary.server_used)
        )
    return Text(
        "The server has used {used} of its {budget} daily credits; {left} left.",
        used=fmt_credits(summary.server_used),
        budget=fmt_credits(summary.server_budget),
        left=fmt_credits(max(0.0, summary.server_budget - summary.server_used)),
    )


class Usage(commands.Cog):
    def __init__(self, bot: KontextBot) -> None:
        self.bot = bot

    @app_commands.command(name="usage", description="Your image credits today")
    async def usage(self, interaction: Interaction) -> None:
        """In a server, or (ALLOW_DMS) outside servers under the operator's DM_DAILY_CREDITS."""
        guild_id = server_id_of(interaction)
        summary = await self.bot.moderation.usage(guild_id, interaction.user.id)
        lines: list[Message] = [
            _member_usage(summary, guild_id is not None),
            *([_server_usage(summary)] if guild_id is not None else []),
            _images_today(summary.images_today, summary.requests_today),
            Text("Images in progress: {count}.", count=summary.open_tasks),
            Text("Credits reset {when} (00:00 UTC).", when=relative(summary.resets_at)),
        ]
        block = await self.bot.moderation.get_block(guild_id, interaction.user.id)
        if block is not None:
            lines.append(
                Text("You're blocked from the image bot in this server.")
                if block.until is None
                else Text("You're paused until {when}.", when=relative(block.until))
            )
        operator_block = await self.bot.moderation.operator.blocked(interaction.user.id)
        if operator_block is not None:
            lines.append(operator_block.message)
        await send_ephemeral(interaction, join("\n", lines))


async def setup(bot: KontextBot) -> None:
    await bot.add_cog(Admin(bot))
    await bot.add_cog(Usage(bot))
    bot.add_dynamic_items(*DYNAMIC_ITEMS)


async def teardown(bot: KontextBot) -> None:
    bot.remove_dynamic_items(*DYNAMIC_ITEMS)
