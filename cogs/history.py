"""`/history`: the member's last 10 jobs in this server, privately."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.billing.money import format_usd
from bot.engine.sources import HISTORY_LENGTH, HistoryEntry
from bot.engine.states import JobStatus
from bot.text import strip_bidi
from cogs._context import require_guild
from cogs._presenter import model_label
from cogs._render import when

log = logging.getLogger(__name__)

PROMPT_PREVIEW = 80
_STATUS_TEXT = {
    JobStatus.DELIVERED: "✅ delivered",
    JobStatus.CANCELLED: "✖️ cancelled",
    JobStatus.FAILED: "⚠️ failed",
    JobStatus.UNKNOWN: "❔ unknown outcome",
}


def history_line(entry: HistoryEntry, guild_id: int) -> str:
    """One job: when, prompt, model, cost, status, and a link to the result."""
    prompt = strip_bidi(entry.prompt).replace("\n", " ")
    if len(prompt) > PROMPT_PREVIEW:
        prompt = prompt[: PROMPT_PREVIEW - 1] + "…"
    prompt = discord.utils.escape_mentions(discord.utils.escape_markdown(prompt)) or "*(prompt erased)*"
    status = _STATUS_TEXT.get(entry.status, f"⏳ {entry.status.value}")
    cost = format_usd(entry.cost_micros) if entry.status.is_open is False else f"≤ {format_usd(entry.cost_micros)}"
    line = f"{when(entry.created_at)} · {model_label(entry.model)} · {cost} · {status}\n> {prompt}"
    if entry.deleted:
        line += "\n(result deleted)"
    elif entry.channel_id and entry.message_id:
        line += f"\n[result](https://discord.com/channels/{guild_id}/{entry.channel_id}/{entry.message_id})"
    return line


class History(commands.Cog):
    """A member's own recent images."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.sources = bot.services.members.sources

    @app_commands.command(name="history")
    @app_commands.guild_only()
    async def history(self, interaction: discord.Interaction) -> None:
        """Your last 10 images in this server: prompt, model, cost, status and a link (only you see it)."""
        guild_id = require_guild(interaction)
        entries = await self.sources.history(guild_id, interaction.user.id, HISTORY_LENGTH)
        if not entries:
            await interaction.response.send_message("You haven't made any images in this server yet.", ephemeral=True)
            return
        embed = discord.Embed(title=f"Your last {len(entries)} images here", colour=discord.Colour.blurple())
        embed.description = "\n\n".join(history_line(entry, guild_id) for entry in entries)[:4096]
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: FluxcordBot) -> None:
    """Load the cog."""
    await bot.add_cog(History(bot))
