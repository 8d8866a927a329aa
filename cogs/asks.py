"""Ask for more: a member refused by their budget asks the moderators, who approve or deny in the mod-log.

The click on **Ask for more** opens a modal (amount, optional reason); the request is stored
(:class:`bot.billing.asks.AskStore`: one open per member, a day to live) and posted in the mod-log with
**Approve** / **Deny**. Only moderators decide, never on their own request; amounts above the server's
threshold (``/budget asks``) need an administrator. The member is told by DM, or in the channel they
asked from if their DMs are closed. The buttons and the modal: :mod:`cogs._asks`.
"""

from __future__ import annotations

import logging

import discord

from bot.app import FluxcordBot
from bot.audit import Actor
from bot.billing.asks import Ask, Decision, Outcome
from bot.billing.money import InvalidAmount, format_usd, parse_usd
from bot.errors import InvalidOptions, NotAllowed
from cogs._asks import AskButton, AskModal, DecideButton, decide_view
from cogs._components import register, unregister
from cogs._context import is_moderator, require_guild, role_ids
from cogs._render import escaped
from cogs._render import member as mention

log = logging.getLogger(__name__)

NO_MODLOG_TEXT = "This server has no mod-log channel, so there is nobody to ask here: ask a moderator directly."
NOT_MODERATOR_TEXT = "Only moderators can answer requests for more (Manage Server permission or the moderator role)."
UNREACHABLE_TEXT = "The request could not be posted in the mod-log; nothing was asked. Please tell a moderator."
HANDLED_TEXT = "This request was already handled{by}."
EXPIRED_TEXT = "This request expired (requests last a day); nothing was granted."


class Asks:
    """Handles the clicks of Ask for more, its modal, and the moderators' Approve / Deny."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.services = bot.services

    async def _modlog_channel(self, guild_id: int) -> int:
        channel_id = (await self.services.server.settings.guild_settings(guild_id)).modlog_channel_id
        if channel_id is None:
            raise InvalidOptions(NO_MODLOG_TEXT)
        return channel_id

    async def open_modal(self, interaction: discord.Interaction) -> None:
        """Show the modal (refused at once when the server has no mod-log)."""
        await self._modlog_channel(require_guild(interaction))
        await interaction.response.send_modal(AskModal(self))

    async def submit(self, interaction: discord.Interaction, amount: str, reason: str) -> None:
        """Check the amount, store the request, post it in the mod-log, and tell the member."""
        guild_id = require_guild(interaction)
        try:
            micros = parse_usd(amount, allow_zero=False)
        except InvalidAmount as exc:
            raise InvalidOptions(f"Invalid amount: {exc}") from None
        channel_id = await self._modlog_channel(guild_id)
        user_id = interaction.user.id
        ask = await self.services.server.asks.open(
            guild_id=guild_id, user_id=user_id, channel_id=interaction.channel_id or 0, micros=micros, reason=reason
        )
        try:
            await self.bot.get_partial_messageable(channel_id).send(
                _request_text(ask), view=decide_view(ask.id), allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.HTTPException as exc:
            log.warning("Could not post an ask for more to the mod-log of guild %s: %s", guild_id, exc)
            await self.services.server.asks.withdraw(ask.id)
            raise InvalidOptions(UNREACHABLE_TEXT) from exc
        await interaction.response.send_message(
            f"✅ You asked the moderators for {format_usd(micros)}. You'll be told by DM (or here if your DMs are"
            " closed); the request lasts a day.",
            ephemeral=True,
        )

    async def decide(self, interaction: discord.Interaction, ask_id: str, *, approve: bool) -> None:
        """Approve or deny, once: moderators only, never their own request."""
        guild_id = require_guild(interaction)
        server = self.services.server
        if not await is_moderator(interaction, server.settings):
            raise NotAllowed(NOT_MODERATOR_TEXT)
        actor = Actor(interaction.user.id, interaction.permissions.administrator, role_ids(interaction))
        threshold = (await server.settings.guild_settings(guild_id)).ask_admin_above_micros
        decision = await server.asks.decide(
            ask_id, guild_id=guild_id, actor=actor, approve=approve, admin_above_micros=threshold
        )
        content = interaction.message.content if interaction.message is not None else _request_text(decision.ask)
        if decision.outcome is Outcome.HANDLED:
            by = f" by {mention(decision.ask.decided_by)}" if decision.ask.decided_by else ""
            await interaction.response.send_message(HANDLED_TEXT.format(by=by), ephemeral=True)
            return
        if decision.outcome is Outcome.EXPIRED:
            await interaction.response.send_message(EXPIRED_TEXT, ephemeral=True)
            await self._close(interaction, f"{content}\n⌛ Expired: nothing was granted.")
            return
        await interaction.response.edit_message(content=_decided_line(content, decision, actor.id), view=None)
        await self._tell(decision.ask, _member_text(decision))

    async def _close(self, interaction: discord.Interaction, content: str) -> None:
        """Take the buttons off the request's message (a courtesy: a failure is only logged)."""
        if interaction.message is None:
            return
        try:
            await interaction.message.edit(content=content, view=None)
        except discord.HTTPException as exc:
            log.info("Could not close an expired request's message: %s", exc)

    async def _tell(self, ask: Ask, text: str) -> None:
        """Tell the member privately: by DM, or in the channel they asked from if their DMs are closed."""
        try:
            dm = await self.bot.create_dm(discord.Object(ask.user_id))
            await dm.send(text, allowed_mentions=discord.AllowedMentions.none())
            return
        except discord.HTTPException as exc:  # DMs closed (403, 50007)
            log.info("Could not DM member %s about their request (%s); telling them in the channel", ask.user_id, exc)
        try:
            await self.bot.get_partial_messageable(ask.channel_id).send(
                f"{mention(ask.user_id)} {text}",
                allowed_mentions=discord.AllowedMentions(users=[discord.Object(ask.user_id)]),
            )
        except discord.HTTPException as exc:
            log.warning("Could not tell member %s about their request: %s", ask.user_id, exc)


def _request_text(ask: Ask) -> str:
    why = f"\n> {escaped(ask.reason)}" if ask.reason else ""
    return f"🙋 {mention(ask.user_id)} asks for {format_usd(ask.micros)} more this period.{why}"


def _decided_line(content: str, decision: Decision, actor_id: int) -> str:
    if decision.outcome is Outcome.APPROVED:
        return f"{content}\n✅ Approved by {mention(actor_id)}: +{format_usd(decision.ask.micros)} this period."
    return f"{content}\n❌ Denied by {mention(actor_id)}."


def _member_text(decision: Decision) -> str:
    amount = format_usd(decision.ask.micros)
    if decision.outcome is Outcome.APPROVED:
        return f"✅ A moderator approved your request: you have an extra {amount} to spend this period."
    return f"❌ A moderator denied your request for {amount}."


async def setup(bot: FluxcordBot) -> None:
    """Register the persistent buttons of Ask for more."""
    handler = Asks(bot)
    register(bot, {AskButton: handler, DecideButton: handler})


async def teardown(bot: FluxcordBot) -> None:
    """Unregister them."""
    unregister(bot, AskButton, DecideButton)
