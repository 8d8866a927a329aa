"""`/safety`: moderators block words, members and channels, set the safety level, models, grounding and video.

Thin: parse, check the moderator, call :class:`bot.safety.service.SafetyService`, answer privately,
then announce the audited change in the mod-log (never delaying or failing the answer).
"""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands

from bot.app import FluxcordBot
from bot.errors import InvalidOptions
from bot.models import MODELS
from bot.safety.levels import SafetyLevel, tolerance_for
from bot.safety.matching import parse_rules
from bot.safety.service import known_models
from bot.text import strip_bidi
from cogs._context import ModeratorGroup, age_restricted, require_guild
from cogs._render import block_end
from cogs._render import channel as channel_mention

log = logging.getLogger(__name__)

LevelName = Literal["strict", "standard", "relaxed"]
MAX_BLOCK_HOURS = 8760


def _quoted(rules: list[str]) -> str:
    return ", ".join(f"“{discord.utils.escape_markdown(rule)}”" for rule in rules)


def _rules(text: str) -> list[str]:
    try:
        rules = parse_rules(text)
    except ValueError as exc:
        raise InvalidOptions(f"Invalid word list: {exc}.") from None
    if not rules:
        raise InvalidOptions("Give one or more words or phrases, separated by commas.")
    return rules


class Safety(
    ModeratorGroup,
    name="safety",
    guild_only=True,
    default_permissions=discord.Permissions(manage_guild=True),
):
    """Safety rules for this server (moderators)."""

    words = app_commands.Group(name="words", description="Words and phrases prompts may not contain")

    refusal = "Only moderators can change the safety rules (Manage Server permission or the moderator role)."
    mark = "🛡️"

    # -- words -------------------------------------------------------------------------------------

    @words.command(name="add")
    @app_commands.describe(words="Words or phrases, separated by commas")
    async def words_add(self, interaction: discord.Interaction, words: app_commands.Range[str, 1, 1000]) -> None:
        """Block words or phrases in prompts."""
        guild_id = require_guild(interaction)
        try:
            added, entry = await self.services.server.safety.add_words(
                guild_id, _rules(words), actor_id=interaction.user.id
            )
        except ValueError as exc:
            raise InvalidOptions(f"Not added: {exc}.") from None
        text = f"✅ Blocked {_quoted(added)}." if added else "Those words were already blocked."
        await self.announce(interaction, entry, text)

    @words.command(name="remove")
    @app_commands.describe(words="Words or phrases, separated by commas")
    async def words_remove(self, interaction: discord.Interaction, words: app_commands.Range[str, 1, 1000]) -> None:
        """Stop blocking words or phrases."""
        guild_id = require_guild(interaction)
        removed, entry = await self.services.server.safety.remove_words(
            guild_id, _rules(words), actor_id=interaction.user.id
        )
        text = f"✅ No longer blocked: {_quoted(removed)}." if removed else "None of those words were blocked."
        await self.announce(interaction, entry, text)

    @words.command(name="list")
    async def words_list(self, interaction: discord.Interaction) -> None:
        """Show the blocked words and phrases."""
        rules = await self.services.server.safety.words(require_guild(interaction))
        text = f"Blocked words and phrases ({len(rules)}): {_quoted(rules)}" if rules else "No words are blocked."
        await interaction.response.send_message(text[:1990], ephemeral=True)

    # -- members -----------------------------------------------------------------------------------

    @app_commands.command(name="block")
    @app_commands.describe(
        member="The member to block from generating images",
        hours="How long (empty: until unblocked)",
        reason="Shown to the member when they are refused",
    )
    async def block(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        hours: app_commands.Range[int, 1, MAX_BLOCK_HOURS] | None = None,
        reason: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        """Block a member from generating images here."""
        guild_id = require_guild(interaction)
        if member.bot:
            raise InvalidOptions("Bots can't generate images, so they can't be blocked.")
        if hours is not None and not 1 <= hours <= MAX_BLOCK_HOURS:
            raise InvalidOptions(f"`hours` must be between 1 and {MAX_BLOCK_HOURS}.")
        shown_reason = strip_bidi(reason).strip() if reason else None
        block, entry = await self.services.server.safety.block(
            guild_id, member.id, hours=hours, reason=shown_reason or None, actor_id=interaction.user.id
        )
        await self.announce(interaction, entry, f"⛔ {member.mention} is blocked {block_end(block)}.")

    @app_commands.command(name="unblock")
    @app_commands.describe(member="The member to unblock")
    async def unblock(self, interaction: discord.Interaction, member: discord.Member) -> None:
        """Lift a member's block."""
        entry = await self.services.server.safety.unblock(
            require_guild(interaction), member.id, actor_id=interaction.user.id
        )
        text = f"✅ {member.mention} may generate images again." if entry else f"{member.mention} was not blocked."
        await self.announce(interaction, entry, text)

    # -- the dial, channels, models, grounding -----------------------------------------------------

    @app_commands.command(name="level")
    @app_commands.describe(
        level="strict, standard (BFL's default) or relaxed (age-restricted channels only)",
        channel="Set it for one channel (empty: the whole server)",
    )
    async def level(
        self, interaction: discord.Interaction, level: LevelName, channel: discord.TextChannel | None = None
    ) -> None:
        """Set how strict the image provider's filter is."""
        guild_id = require_guild(interaction)
        try:
            chosen = SafetyLevel(level)
        except ValueError:
            raise InvalidOptions("The level must be strict, standard or relaxed.") from None
        if chosen is SafetyLevel.RELAXED and (channel is None or not age_restricted(channel)):
            raise InvalidOptions("`relaxed` is only allowed for an age-restricted channel: pick one with `channel`.")
        entry = await self.services.server.safety.set_level(
            guild_id, channel.id if channel else None, chosen, actor_id=interaction.user.id
        )
        where = channel.mention if channel else "this server"
        families = (("flux1", "FLUX.1"), ("flux2", "FLUX.2"), ("flux3", "FLUX 3"))
        values = ", ".join(f"{name} {tolerance_for(family, chosen)}" for family, name in families)
        await self.announce(
            interaction, entry, f"✅ Safety level for {where}: **{chosen.value}** (safety_tolerance {values})."
        )

    @app_commands.command(name="channel")
    @app_commands.describe(channel="The channel", allowed="Whether images may be generated there")
    async def channel(self, interaction: discord.Interaction, channel: discord.TextChannel, allowed: bool) -> None:
        """Limit generation to some channels (once any is allowed, others are refused)."""
        guild_id = require_guild(interaction)
        entry = await self.services.server.safety.set_channel(
            guild_id, channel.id, allowed, actor_id=interaction.user.id
        )
        channels = await self.services.server.safety.allowed_channels(guild_id)
        where = ", ".join(channel_mention(c) for c in channels) if channels else "every channel"
        await self.announce(interaction, entry, f"✅ Images can now be generated in: {where}.")

    @app_commands.command(name="models")
    @app_commands.describe(models="Model names separated by commas, or `all`")
    async def models(self, interaction: discord.Interaction, models: app_commands.Range[str, 1, 500]) -> None:
        """Choose the models this server may use."""
        guild_id = require_guild(interaction)
        keys = [part.strip().lower() for part in models.split(",") if part.strip()]
        if not keys:
            raise InvalidOptions("Name one or more models, or `all`.")
        chosen: list[str] | None
        if keys == ["all"]:
            chosen = None
        else:
            try:
                chosen = known_models(keys)
            except ValueError as exc:
                names = ", ".join(f"`{k}`" for k in MODELS)
                raise InvalidOptions(f"Not changed: {strip_bidi(str(exc))}. Models: {names}, or `all`.") from None
        entry = await self.services.server.safety.set_models(guild_id, chosen, actor_id=interaction.user.id)
        shown = "all models" if chosen is None else ", ".join(f"`{k}`" for k in chosen)
        await self.announce(interaction, entry, f"✅ This server may use: {shown}.")

    @app_commands.command(name="grounding")
    @app_commands.describe(allowed="Whether prompts may be sent to web search (FLUX 3, FLUX.2 [max])")
    async def grounding(self, interaction: discord.Interaction, allowed: bool) -> None:
        """Allow or forbid sending prompts to web search."""
        entry = await self.services.server.safety.set_grounding(
            require_guild(interaction), allowed, actor_id=interaction.user.id
        )
        text = "✅ Grounding (web search) is allowed." if allowed else "✅ Grounding (web search) is off."
        await self.announce(interaction, entry, text)

    @app_commands.command(name="video")
    @app_commands.describe(allowed="Whether members may animate images into FLUX 3 videos (the most expensive job)")
    async def video(self, interaction: discord.Interaction, allowed: bool) -> None:
        """Allow or forbid FLUX 3 video (Animate, /animate): off by default."""
        entry = await self.services.server.safety.set_video(
            require_guild(interaction), allowed, actor_id=interaction.user.id
        )
        text = "✅ Video (Animate) is allowed." if allowed else "✅ Video (Animate) is off."
        await self.announce(interaction, entry, text)


async def setup(bot: FluxcordBot) -> None:
    """Load the command group."""
    bot.tree.add_command(Safety(bot))


async def teardown(bot: FluxcordBot) -> None:
    """Remove the command group."""
    bot.tree.remove_command("safety")
