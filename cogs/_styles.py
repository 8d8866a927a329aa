"""Autocomplete for a `style` option (`/imagine`, `/prefs`, `/style remove`): this server's styles."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.styles import MAX_STYLES, NO_STYLE, StyleService


async def style_choices(
    styles: StyleService, interaction: discord.Interaction, current: str, *, offer_none: bool = True
) -> list[app_commands.Choice[str]]:
    """The server's styles whose name contains what was typed (then ``none``, where it fits and matches)."""
    if interaction.guild_id is None:
        return []
    found = await styles.matching(interaction.guild_id, current)
    choices = [app_commands.Choice(name=style.name, value=style.name) for style in found]
    typed = current.strip().casefold()
    if offer_none and len(choices) < MAX_STYLES and typed in NO_STYLE:
        choices.append(app_commands.Choice(name=f"{NO_STYLE} (no style)", value=NO_STYLE))
    return choices
