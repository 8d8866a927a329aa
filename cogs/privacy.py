"""`/privacy`: what the bot keeps about you, and forgetting it (after a confirmation)."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.audit import Subject, SubjectKind
from bot.safety.privacy import END_USER_ID_TEXT
from cogs._context import require_guild
from cogs._render import when

log = logging.getLogger(__name__)

CONFIRM_SECONDS = 120.0
FORGET_ID = "fluxcord:privacy:forget"
KEEP_ID = "fluxcord:privacy:keep"


def _when(value: datetime) -> str:
    return f"{when(value, 'd')} ({when(value)})"


class ForgetConfirmation(discord.ui.View):
    """Two buttons under the ephemeral confirmation; only the member who asked can press them."""

    def __init__(self, cog: Privacy, user_id: int) -> None:
        super().__init__(timeout=CONFIRM_SECONDS)
        self.cog = cog
        self.user_id = user_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the member whose data this is."""
        return interaction.user.id == self.user_id

    @discord.ui.button(label="Forget it all", style=discord.ButtonStyle.danger, custom_id=FORGET_ID)
    async def forget(self, interaction: discord.Interaction, _button: discord.ui.Button[ForgetConfirmation]) -> None:
        """Erase the member's data in this server."""
        self.stop()
        await interaction.response.edit_message(content="🧹 Forgetting…", view=None)
        text = await self.cog.forget(require_guild(interaction), interaction.user.id)
        await interaction.edit_original_response(content=text)

    @discord.ui.button(label="Keep it", style=discord.ButtonStyle.secondary, custom_id=KEEP_ID)
    async def keep(self, interaction: discord.Interaction, _button: discord.ui.Button[ForgetConfirmation]) -> None:
        """Change nothing."""
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


class Privacy(commands.Cog):
    """What is stored about members, and removing it."""

    group = app_commands.Group(name="privacy", description="What the bot keeps about you", guild_only=True)

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.services = bot.services

    @group.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show what the bot stores about you in this server."""
        guild_id = require_guild(interaction)
        kept = await self.services.members.privacy.kept(guild_id, interaction.user.id)
        retention = (
            f"Prompts and cached images are erased after **{kept.retention_days} days**."
            if kept.retention_days
            else "Prompts and cached images are kept until you use `/privacy forget`."
        )
        lines = [
            "**What the bot keeps about you in this server**",
            f"• Requests: **{kept.requests}** (model, size, seed, cost and times)",
            f"• Prompts and options still kept: **{kept.prompts}**"
            + (f", the oldest from {_when(kept.oldest_prompt)}" if kept.oldest_prompt else ""),
            f"• Cached images (served free for identical requests in this server only): **{kept.cached_images}**",
            f"• Ledger entries (amounts, models, times; never a prompt): **{kept.ledger_rows}**",
            f"• Moderated results counted: **{kept.strikes}**",
            f"• Your `/prefs` defaults: **{'saved' if kept.defaults else 'none'}**",
            retention,
            "`/privacy forget` erases your prompts, options, defaults, cached images and result links here; the ledger"
            " keeps amounts, models and times so budgets still add up.",
            END_USER_ID_TEXT,
        ]
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @group.command(name="forget")
    async def forget_command(self, interaction: discord.Interaction) -> None:
        """Delete your prompts, options, cached images and result links in this server."""
        require_guild(interaction)
        await interaction.response.send_message(
            "This erases your prompts, options, defaults, cached images and result links in this server, and deletes"
            " the images the bot posted for you. 🎲 Reroll will no longer work on them. It can't be undone.",
            view=ForgetConfirmation(self, interaction.user.id),
            ephemeral=True,
        )

    async def forget(self, guild_id: int, user_id: int) -> str:
        """Erase, delete the posted results (best effort), and say what was done."""
        done = await self.services.members.privacy.forget(guild_id, user_id)
        deleted = 0
        for channel_id, message_id in done.messages:
            with contextlib.suppress(discord.HTTPException):
                await self.bot.get_partial_messageable(channel_id).get_partial_message(message_id).delete()
                deleted += 1
        await self.services.server.audit.record(
            guild_id,
            user_id,
            "privacy.forget",
            Subject(SubjectKind.MEMBER, user_id),
            None,
            f"{done.prompts} requests erased",
        )
        text = (
            f"✅ Forgotten: **{done.prompts}** prompts, **{done.cached_images}** cached images,"
            f" **{deleted}** posted results deleted."
        )
        if done.in_progress:
            text += f" {done.in_progress} request(s) still in progress were kept; run this again when they finish."
        return text


async def setup(bot: FluxcordBot) -> None:
    """Load the cog."""
    await bot.add_cog(Privacy(bot))
