"""`/budget channel`: a channel's defaults for `/imagine` (moderators), and how they are shown.

The command lives in :class:`ChannelDefaultsCommand`, a mixin of the `/budget` group (`cogs/budget.py`
names it in its body: discord.py collects a group's commands from the class's own namespace). The
store is :class:`bot.channel_defaults.ChannelDefaultsStore`; the order of defaults is
:meth:`bot.prefs.PrefsService.resolve`'s (explicit > member > channel > bot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.audit import AuditEntry
from bot.channel_defaults import ChannelDefaults, ChannelDefaultsStore
from bot.prefs import MAX_COUNT
from cogs._choices import aspect_ratio_choices, model_choices
from cogs._presenter import model_label
from cogs._styles import style_choices

if TYPE_CHECKING:
    from bot.services import Services


def defaults_channel(interaction: discord.Interaction) -> int | None:
    """The channel whose defaults apply where the command was used: a thread's parent, else the channel."""
    if isinstance(interaction.channel, discord.Thread):
        return interaction.channel.parent_id
    return interaction.channel_id


def summary(defaults: ChannelDefaults) -> list[str]:
    """The options a channel sets, one ``• Name: value`` line each (unset ones left out)."""
    lines = []
    if defaults.model:
        lines.append(f"• Model: {model_label(defaults.model)} (`{defaults.model}`)")
    if defaults.aspect_ratio:
        lines.append(f"• Aspect ratio: {defaults.aspect_ratio}")
    if defaults.count:
        lines.append(f"• Count: {defaults.count}")
    if defaults.private is not None:
        lines.append(f"• Private: {'yes' if defaults.private else 'no'}")
    if defaults.style:
        lines.append(f"• Style: “{discord.utils.escape_markdown(defaults.style)}”")
    return lines


def channel_text(channel_id: int, defaults: ChannelDefaults) -> str:
    """What `/budget channel` answers: the channel's defaults, and where they stand."""
    lines = summary(defaults) or ["• none (members' own defaults, then the bot's, apply)"]
    return "\n".join(
        [
            f"**Defaults in <#{channel_id}>**",
            *lines,
            "Order: options given to `/imagine` > the member's `/prefs` > these > the bot's defaults.",
        ]
    )


async def channel_lines(store: ChannelDefaultsStore | None, guild_id: int) -> str:
    """Every channel with defaults, one line each (`/budget show`); empty if none."""
    shown: list[str] = []
    for channel_id, defaults in await store.all(guild_id) if store is not None else []:
        parts = [line.removeprefix("• ") for line in summary(defaults)]
        if parts:
            shown.append(f"<#{channel_id}>: {' · '.join(parts)}")
    return "\n".join(shown)


class ChannelDefaultsCommand:
    """The `/budget channel` command, mixed into the `/budget` group (which checks for moderators first)."""

    services: Services

    if TYPE_CHECKING:

        async def announce(self, interaction: discord.Interaction, entry: AuditEntry | None, text: str) -> None: ...

    @app_commands.command(name="channel")  # type: ignore[type-var]  # bound to the /budget group (a mixin of it)
    @app_commands.describe(
        channel="The channel whose defaults to show or set",
        model="Default model in this channel",
        aspect_ratio="Default shape in this channel (used when the model supports it)",
        style="Default server style in this channel (/style list); `none` for no style",
        count=f"How many images per request by default in this channel (1-{MAX_COUNT})",
        private="Whether requests in this channel are private by default",
        clear="Clear all the channel's defaults (with other options: keep only those)",
    )
    @app_commands.choices(model=model_choices(), aspect_ratio=aspect_ratio_choices())
    async def channel_defaults(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        model: str | None = None,
        aspect_ratio: str | None = None,
        style: app_commands.Range[str, 1, 100] | None = None,
        count: app_commands.Range[int, 1, MAX_COUNT] | None = None,
        private: bool | None = None,
        clear: bool | None = None,
    ) -> None:
        """Show or set a channel's defaults for /imagine (between members' /prefs and the bot's)."""
        guild_id, store = interaction.guild_id or 0, self.services.members.prefs.channels
        assert store is not None  # always wired by bot.services
        given = ChannelDefaults(model=model, aspect_ratio=aspect_ratio, count=count, private=private, style=style)
        if not given.empty:  # everything checked first: a bad value changes nothing
            chosen, entry = await store.set(
                guild_id, channel.id, given, actor_id=interaction.user.id, replace=bool(clear)
            )
            note = "✅ Saved (the others cleared).\n" if clear else "✅ Saved.\n"
            await self.announce(interaction, entry, note + channel_text(channel.id, chosen))
        elif clear:
            cleared = await store.clear(guild_id, channel.id, actor_id=interaction.user.id)
            note = "🧹 The channel's defaults were cleared.\n" if cleared else "The channel had no defaults.\n"
            await self.announce(interaction, cleared, note + channel_text(channel.id, ChannelDefaults()))
        else:
            current = await store.get(guild_id, channel.id)
            await interaction.response.send_message(channel_text(channel.id, current), ephemeral=True)

    @channel_defaults.autocomplete("style")
    async def _style_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await style_choices(self.services.members.styles, interaction, current)
