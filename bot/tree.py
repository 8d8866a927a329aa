"""The one app-command error path: domain errors become friendly replies, the rest is logged."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands

from bot.errors import FluxcordError
from bot.log import bind_log_fields
from bot.text import strip_bidi

if TYPE_CHECKING:
    from bot.app import FluxcordBot

log = logging.getLogger(__name__)

GENERIC_FAILURE = "Something went wrong on our side. The error was logged; please try again later."


_CLICK_ANSWERS = (
    discord.InteractionResponseType.deferred_message_update,
    discord.InteractionResponseType.message_update,
)


class FluxcordTree(app_commands.CommandTree["FluxcordBot"]):
    """A command tree whose ``on_error`` always answers the member."""

    async def interaction_check(self, interaction: discord.Interaction[FluxcordBot], /) -> bool:
        """Tag this command's log records with the server and member (JSON logs); never refuses."""
        bind_log_fields(guild_id=interaction.guild_id, user_id=interaction.user.id)  # this task only
        return True

    async def on_error(self, interaction: discord.Interaction[FluxcordBot], error: Exception, /) -> None:
        """Map an error to a reply (ephemeral where it concerns only the member).

        Also the error path of the buttons (any exception, not only an ``AppCommandError``).
        """
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, FluxcordError):
            # A refusal may carry buttons (the fallback offer, cogs/_fallback.py; Ask for more, cogs/_asks.py).
            await reply(
                interaction,
                interaction.client.error_text(cause),
                ephemeral=cause.ephemeral,
                view=getattr(cause, "view", None) or interaction.client.refusal_view(cause),
            )
        elif isinstance(cause, app_commands.TransformerError):
            await reply(interaction, f"`{cause.value}` is not a valid value for this option.", ephemeral=True)
        elif isinstance(cause, app_commands.CommandNotFound):
            await reply(interaction, "This command is not available right now.", ephemeral=True)
        elif isinstance(cause, app_commands.NoPrivateMessage):
            await reply(interaction, "This command only works in a server.", ephemeral=True)
        elif isinstance(cause, app_commands.CheckFailure):
            # Our own checks explain themselves; discord.py's generic ones get a generic line.
            text = str(cause) if type(cause) is app_commands.CheckFailure and str(cause) else None
            await reply(interaction, text or "You are not allowed to use this command.", ephemeral=True)
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("Unhandled error in /%s (interaction %s)", command, interaction.id, exc_info=cause)
            await reply(interaction, GENERIC_FAILURE, ephemeral=True)


async def reply(
    interaction: discord.Interaction, text: str, *, ephemeral: bool, view: discord.ui.View | None = None
) -> None:
    """Answer whatever state the interaction is in: unanswered, deferred, or already answered."""
    text = strip_bidi(text)  # replies may quote what the member typed
    extra: dict[str, Any] = {"view": view} if view is not None else {}  # no `view=None`: not every call takes it
    if interaction.is_expired():
        log.warning("Interaction %s expired before we could answer: %s", interaction.id, text)
        return
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=ephemeral, **extra)
        elif interaction.response.type in _CLICK_ANSWERS:
            # A click acknowledged without a message of its own: its "original" is the message the
            # button is on (a job's, a gallery), never touched here; a follow-up answers instead.
            await interaction.followup.send(text, ephemeral=ephemeral, **extra)
        elif ephemeral:
            # The public "thinking…" message would show the refusal to everyone: remove it first (a
            # follow-up sent while it is still loading would become it), then answer privately.
            await interaction.delete_original_response()
            await interaction.followup.send(text, ephemeral=True, **extra)
        else:
            await interaction.edit_original_response(content=text, embed=None, attachments=[], **extra)
    except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:  # Discord unreachable too
        log.warning("Could not answer interaction %s: %s: %s", interaction.id, type(exc).__name__, exc)
