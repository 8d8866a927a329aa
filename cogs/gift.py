"""`/gift`: a member gives part of their own remaining budget for the current period to another member.

The money side (one transaction, checked under the write's locks, audited) is :mod:`bot.billing.gifts`;
here: the options, the answer to the giver, the receiver told (by DM, else in the channel), the mod-log.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.billing.gifts import MAX_NOTE, Gift, GiftMade
from bot.billing.money import InvalidAmount, format_usd, parse_usd
from bot.errors import InvalidOptions
from bot.text import strip_bidi
from cogs._context import require_guild, role_ids
from cogs._render import audit_line

log = logging.getLogger(__name__)


def _micros(amount: str) -> int:
    try:
        return parse_usd(amount, allow_zero=False)
    except InvalidAmount as exc:
        raise InvalidOptions(f"Invalid amount: {exc}") from None


def _note(note: str | None) -> str | None:
    if note is None or not note.strip():
        return None
    if len(note) > MAX_NOTE:
        raise InvalidOptions(f"A gift's note can be at most {MAX_NOTE} characters.")
    return strip_bidi(note.strip())


class Gifting(commands.Cog):
    """Members give each other part of their budget."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.services = bot.services

    @app_commands.command(name="gift")
    @app_commands.guild_only()
    @app_commands.describe(
        member="Who gets it", amount="Dollars of your remaining budget, e.g. 0.50", note="A few words for them"
    )
    async def gift(
        self, interaction: discord.Interaction, member: discord.Member, amount: str, note: str | None = None
    ) -> None:
        """Give another member part of your remaining budget for this period."""
        guild_id = require_guild(interaction)
        if member.bot:
            raise InvalidOptions("Bots can't generate images, so they can't receive a gift.")
        giver = interaction.user
        gift = Gift(guild_id, giver.id, member.id, _micros(amount), _note(note))
        limits = await self.services.server.limits.limits_for(guild_id, giver.id, role_ids(interaction))
        made = await self.services.server.gifts.give(gift, limits)
        await interaction.response.send_message(_giver_text(gift, made), ephemeral=True)
        await self.services.server.modlog.announce(guild_id, f"🎁 {audit_line(made.entry)}")
        await self._tell_receiver(gift, interaction.channel_id)

    async def _tell_receiver(self, gift: Gift, channel_id: int | None) -> None:
        """By DM; if their DMs are closed, in the channel the gift was made in (pinging only them)."""
        text = f"🎁 <@{gift.giver_id}> gave you {format_usd(gift.micros)} of their budget for this period."
        if gift.note:
            text += f"\n> {gift.note}"
        try:
            dm = await self.bot.create_dm(discord.Object(gift.receiver_id))
            await dm.send(text, allowed_mentions=discord.AllowedMentions.none())
            return
        except discord.HTTPException as exc:
            log.info(
                "Gift in guild %s: DM to %s refused (%s); telling them in the channel",
                gift.guild_id,
                gift.receiver_id,
                exc,
            )
        if channel_id is None:
            return
        try:
            await self.bot.get_partial_messageable(channel_id).send(
                f"<@{gift.receiver_id}> {text}",
                allowed_mentions=discord.AllowedMentions(users=[discord.Object(gift.receiver_id)]),
            )
        except discord.HTTPException as exc:
            log.warning("Gift in guild %s: the receiver could not be told: %s", gift.guild_id, exc)


def _giver_text(gift: Gift, made: GiftMade) -> str:
    return (
        f"🎁 You gave <@{gift.receiver_id}> {format_usd(gift.micros)}. You have {format_usd(made.left_micros)}"
        f" left this period, and may give {format_usd(made.cap_left_micros)} more today."
    )


async def setup(bot: FluxcordBot) -> None:
    """Load the cog."""
    await bot.add_cog(Gifting(bot))
