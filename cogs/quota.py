"""`/quota`: what a member has left, when it resets, and what each model costs, with a bar chart of it."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.billing.ledger import Scope
from bot.models import MODELS
from cogs._budget_channel import defaults_channel, summary
from cogs._context import require_guild, role_ids
from cogs._render import quota_line
from cogs._report_chart import quota_chart


class Quota(commands.Cog):
    """Self-service budget information."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.limits = bot.services.server.limits
        self.server = bot.services.server.settings
        self.ledger = bot.services.ledger
        self.settings = bot.services.settings
        self.safety = bot.services.server.safety
        self.channels = bot.services.members.prefs.channels

    @app_commands.command(name="quota")
    @app_commands.guild_only()
    async def quota(self, interaction: discord.Interaction) -> None:
        """Show your images and dollars left, when they reset, and model prices."""
        guild_id = require_guild(interaction)
        member = interaction.user
        limits = await self.limits.limits_for(guild_id, member.id, role_ids(interaction))
        statuses = await self.ledger.statuses(guild_id, member.id, limits)
        paused = (await self.server.guild_settings(guild_id)).paused
        embed = discord.Embed(title="Your image quota", colour=discord.Colour.green())
        if paused:
            embed.description = "⏸️ Generation is currently paused in this server by its moderators."
        yours = [quota_line(s) for s in statuses if s.limit.scope is Scope.MEMBER]
        embed.add_field(name="You", value="\n".join(yours) or "No personal limits.", inline=False)
        shared = [quota_line(s) for s in statuses if s.limit.scope is not Scope.MEMBER]
        embed.add_field(name="Shared budgets", value="\n".join(shared), inline=False)
        default = self.settings.default_model
        prices = [
            f"**{spec.label}** (`{key}`): {spec.describe_price()}" + (" · default" if key == default else "")
            for key, spec in MODELS.items()
        ]
        embed.add_field(name="Prices", value="\n".join(prices)[:1024], inline=False)
        channel_id = defaults_channel(interaction)
        if self.channels is not None and channel_id is not None:  # /budget channel
            here = summary(await self.channels.get(guild_id, channel_id))
            if here:
                lines = "\n".join([*here, "Your `/prefs` and the options you give win over these."])
                embed.add_field(name="Defaults in this channel", value=lines[:1024], inline=False)
        allowed = await self.safety.allowed_models(guild_id)  # /safety models
        if allowed is not None:
            shown = ", ".join(f"`{key}`" for key in allowed) or "none"
            embed.add_field(name="Models allowed here", value=shown[:1024], inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)  # at once; the chart follows
        chart = await quota_chart(statuses)
        if chart is not None:
            await interaction.edit_original_response(attachments=[chart])


async def setup(bot: FluxcordBot) -> None:
    """Load the cog."""
    await bot.add_cog(Quota(bot))
