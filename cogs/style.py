"""`/style`: moderators add and remove the server's styles; everyone can list them (privately).

A LoRA style (``lora:``) names a LoRA on the server owner's BFL account: its ``finetune_id`` is shown to the
moderator who adds it and in the mod-log; `/style list` shows everyone that a style is a LoRA style, its model
and strength, not the id (not a secret, but nothing members need).

Thin: parse, check the moderator (add / remove), call :class:`bot.styles.StyleService`, answer privately,
then announce the audited change in the mod-log (never delaying or failing the answer).
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.app import FluxcordBot
from bot.audit import AuditEntry
from bot.models import MODELS
from bot.models.lora import LORA_ROUTES, MAX_FINETUNE_ID_LENGTH
from bot.styles import MAX_NAME_LENGTH, MAX_STYLES, MAX_TEMPLATE_LENGTH, PLACEHOLDER, Style
from cogs._context import require_guild, require_moderator
from cogs._render import audit_line
from cogs._styles import style_choices

log = logging.getLogger(__name__)

MODERATORS_ONLY = "Only moderators can add or remove styles (Manage Server permission or the moderator role)."


def _shown(style: Style, width: int = 1900) -> str:
    """``**name**: template`` with markdown escaped, the template cut so the line is at most ``width``.

    A LoRA style's line says so: ``**name** (🧬 LoRA style: FLUX.2 [klein] 9B + LoRA, strength 1): template``.
    """
    lora = f" (🧬 LoRA style: {style.lora_label})" if style.lora_label else ""
    head = f"**{discord.utils.escape_markdown(style.name)}**{lora}: "
    template, text = style.template, discord.utils.escape_markdown(style.template)
    while template and len(head) + len(text) > width:  # escaping can double a character: cut, escape, measure again
        template = template[: max(0, len(template) - max(1, (len(head) + len(text) - width) // 2))]
        text = discord.utils.escape_markdown(template).rstrip("\\") + "…"
    return head + text


class StyleGroup(app_commands.Group, name="style", guild_only=True):
    """The server's styles: prompt templates members pick with /imagine style."""

    def __init__(self, bot: FluxcordBot) -> None:
        super().__init__()
        self.services = bot.services

    async def _done(self, interaction: discord.Interaction, entry: AuditEntry, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True)
        await self.services.server.modlog.announce(entry.guild_id, f"🎨 {audit_line(entry)}"[:1900])

    @app_commands.command(name="add")
    @app_commands.describe(
        name=f"A short name (up to {MAX_NAME_LENGTH} characters); an existing style of that name is replaced",
        template=f"The prompt around the member's: must contain {PLACEHOLDER} once, e.g. {{prompt}}, watercolor",
        lora="A LoRA's finetune_id from the server owner's BFL dashboard (Customization → Finetunes)",
        strength="How strongly the LoRA applies, 0-2 (default 1: as trained)",
        base="The FLUX.2 [klein] model the LoRA was trained for (default 9B)",
    )
    @app_commands.choices(
        base=[app_commands.Choice(name=MODELS[route].label, value=route) for route in LORA_ROUTES],
    )
    async def add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 100],
        template: app_commands.Range[str, 1, MAX_TEMPLATE_LENGTH + 100] | None = None,
        lora: app_commands.Range[str, 1, MAX_FINETUNE_ID_LENGTH + 20] | None = None,
        strength: app_commands.Range[float, 0.0, 2.0] | None = None,
        base: str | None = None,
    ) -> None:
        """Add a style (moderators): a template, a LoRA from the BFL dashboard, or both."""
        await require_moderator(interaction, self.services.server.settings, MODERATORS_ONLY)
        guild_id = require_guild(interaction)
        style, entry, replaced = await self.services.members.styles.add(
            guild_id, name, template, actor_id=interaction.user.id, lora=lora, strength=strength, base=base
        )
        verb = "Updated" if replaced else "Added"
        text = f"✅ {verb} the style {_shown(style)}"
        if style.lora is not None and style.route is not None:
            price = MODELS[style.route].describe_price()
            text += f"\nLoRA `{style.lora.finetune_id}`; each image costs {price}, settled at what BFL charges."
        await self._done(interaction, entry, text[:2000])

    @app_commands.command(name="remove")
    @app_commands.describe(name="The style to remove")
    async def remove(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        """Remove a style (moderators)."""
        await require_moderator(interaction, self.services.server.settings, MODERATORS_ONLY)
        guild_id = require_guild(interaction)
        style, entry = await self.services.members.styles.remove(guild_id, name, actor_id=interaction.user.id)
        shown = discord.utils.escape_markdown(style.name)
        await self._done(interaction, entry, f"✅ Removed the style **{shown}** (and from members' defaults).")

    @remove.autocomplete("name")
    async def _remove_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await style_choices(self.services.members.styles, interaction, current, offer_none=False)

    @app_commands.command(name="list")
    async def list_styles(self, interaction: discord.Interaction) -> None:
        """Show this server's styles."""
        styles = await self.services.members.styles.styles(require_guild(interaction))
        if not styles:
            text = "This server has no styles yet. Moderators add them with `/style add`."
            await interaction.response.send_message(text, ephemeral=True)
            return
        lines = [f"• {_shown(style, width=150)}" for style in styles]  # 25 of them fit an embed
        embed = discord.Embed(
            title=f"Styles here ({len(styles)} of {MAX_STYLES})",
            description="\n".join(lines)[:4000],
            colour=discord.Colour.blurple(),
        )
        embed.set_footer(text="Use one with /imagine style:, or make it your default with /prefs style:")
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: FluxcordBot) -> None:
    """Load the command group."""
    bot.tree.add_command(StyleGroup(bot))


async def teardown(bot: FluxcordBot) -> None:
    """Remove the command group."""
    bot.tree.remove_command("style")
