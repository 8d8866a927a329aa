"""`/prefs`: a member shows, sets or clears their own defaults in this server (always privately).

Thin: parse, call :class:`bot.prefs.PrefsService` (which checks everything before writing), render.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.models import DEFAULT_ASPECT_RATIO
from bot.prefs import MAX_COUNT, MemberDefaults
from cogs._choices import aspect_ratio_choices, model_choices
from cogs._context import require_guild
from cogs._presenter import model_label
from cogs._styles import style_choices

log = logging.getLogger(__name__)


def describe_defaults(defaults: MemberDefaults, *, bot_model: str) -> str:
    """The member's defaults as shown by `/prefs` (what is not set says what applies instead)."""

    def unset(fallback: str) -> str:
        return f"not set ({fallback})"

    model = f"{model_label(defaults.model)} (`{defaults.model}`)" if defaults.model else unset(model_label(bot_model))
    private = {None: unset("no"), True: "yes", False: "no"}[defaults.private]
    style = f"“{discord.utils.escape_markdown(defaults.style)}”" if defaults.style else "none"
    return "\n".join(
        [
            "**Your defaults in this server**",
            f"• Model: {model}",
            f"• Aspect ratio: {defaults.aspect_ratio or unset(DEFAULT_ASPECT_RATIO)}",
            f"• Count: {defaults.count or unset('1')}",
            f"• Private: {private}",
            f"• Style: {style}",
            "Options you give `/imagine` always win over these. `/prefs clear:true` clears them all.",
        ]
    )


class Prefs(commands.Cog):
    """Member defaults."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.services = bot.services

    @app_commands.command(name="prefs")
    @app_commands.guild_only()
    @app_commands.describe(
        model="Your default model",
        aspect_ratio="Your default shape (used when your model supports it)",
        count=f"How many images per request by default (1-{MAX_COUNT})",
        private="Whether your requests are private by default",
        style="Your default server style (/style list); `none` for no style",
        clear="Clear all your defaults (with other options: keep only those)",
    )
    @app_commands.choices(model=model_choices(), aspect_ratio=aspect_ratio_choices())
    async def prefs(
        self,
        interaction: discord.Interaction,
        model: str | None = None,
        aspect_ratio: str | None = None,
        count: app_commands.Range[int, 1, MAX_COUNT] | None = None,
        private: bool | None = None,
        style: app_commands.Range[str, 1, 100] | None = None,
        clear: bool | None = None,
    ) -> None:
        """Show or set your defaults for /imagine in this server."""
        guild_id = require_guild(interaction)
        user_id = interaction.user.id
        prefs = self.services.members.prefs
        given: dict[str, Any] = {
            "model": model,
            "aspect_ratio": aspect_ratio,
            "count": count,
            "private": private,
            "style": style,
        }
        if any(value is not None for value in given.values()):  # checked first: a bad one changes nothing
            defaults = await prefs.set(guild_id, user_id, **given, replace=bool(clear))
            note = "✅ Saved (the others cleared).\n" if clear else "✅ Saved.\n"
        elif clear:
            had = await prefs.clear(guild_id, user_id)
            note = "🧹 Your defaults were cleared.\n" if had else "You had no defaults.\n"
            defaults = MemberDefaults()
        else:
            note, defaults = "", await prefs.get(guild_id, user_id)
        text = note + describe_defaults(defaults, bot_model=self.services.settings.default_model)
        await interaction.response.send_message(text, ephemeral=True)

    @prefs.autocomplete("style")
    async def _style_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await style_choices(self.services.members.styles, interaction, current)


async def setup(bot: FluxcordBot) -> None:
    """Load the cog."""
    await bot.add_cog(Prefs(bot))
