"""`/status`: one line for moderators on what the bot is doing (BFL balance, queue, last error, uptime)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.errors import NotAllowed
from bot.ops.status import bot_status
from cogs._context import is_moderator, require_guild


class Status(commands.Cog):
    """The bot's operational status for moderators."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.services = bot.services

    @app_commands.command(name="status")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def status(self, interaction: discord.Interaction) -> None:
        """Show BFL's balance, tasks in flight, the queue, the last BFL error and uptime (moderators)."""
        require_guild(interaction)
        if not await is_moderator(interaction, self.services.server.settings):
            raise NotAllowed("Only moderators can see the bot's status (Manage Server or the moderator role).")
        await interaction.response.defer(ephemeral=True, thinking=True)  # BFL's balance is a network call
        status = await bot_status(self.services)
        await interaction.followup.send(f"🩺 {status.line()}", ephemeral=True)


async def setup(bot: FluxcordBot) -> None:
    """Register the cog."""
    await bot.add_cog(Status(bot))
