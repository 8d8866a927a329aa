"""Who asked, and where: read from the interaction itself, never from discord.py's cache.

(A module starting with ``_`` is a helper, not an extension: see ``bot.app.extension_names``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

import discord
from discord import app_commands

from bot.audit import AuditEntry
from bot.engine.engine import Requester
from bot.server_settings import ServerSettings
from cogs._render import audit_line

if TYPE_CHECKING:
    from bot.app import FluxcordBot

if TYPE_CHECKING:
    from bot.app import FluxcordBot


def ours(interaction: discord.Interaction) -> discord.Interaction[FluxcordBot]:
    """``interaction`` typed with this bot's client, for discord.py's UI callbacks (typed for any client).

    Every interaction this process receives comes from its one :class:`~bot.app.FluxcordBot`; commands
    declare ``discord.Interaction[FluxcordBot]`` themselves, but an overridden ``callback`` may not
    narrow discord.py's parameter type.
    """
    return cast("discord.Interaction[FluxcordBot]", interaction)


def require_guild(interaction: discord.Interaction) -> int:
    """The server the command was used in; refuses DMs (``guild_only`` is only a hint to Discord's client)."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


def role_ids(interaction: discord.Interaction) -> tuple[int, ...]:
    """The member's role ids exactly as the interaction payload lists them (``member.roles``).

    :attr:`discord.Member.roles` keeps only roles found in the bot's cache, so with a cold cache (just
    after a start, or a role created while the gateway was away) a role's limits would silently not
    apply. The payload's ids are what discord.py stores in ``Member._roles``; ``@everyone`` is added by
    the limits service itself.
    """
    member = interaction.user
    if not isinstance(member, discord.Member):
        return ()
    # The one private discord.py attribute read: no public API exposes the payload's role ids.
    return tuple(int(role_id) for role_id in member._roles)


async def is_moderator(interaction: discord.Interaction, server: ServerSettings) -> bool:
    """Manage Server, Administrator, or the server's moderator role (from the payload's role ids)."""
    permissions = interaction.permissions
    if permissions.manage_guild or permissions.administrator:
        return True
    if interaction.guild_id is None:
        return False
    settings = await server.guild_settings(interaction.guild_id)
    return settings.moderator_role_id is not None and settings.moderator_role_id in set(role_ids(interaction))


async def require_moderator(interaction: discord.Interaction, server: ServerSettings, refusal: str) -> bool:
    """A moderator-only group's check: server only, then :func:`is_moderator`, else ``refusal`` privately.

    Raises rather than returning False: only an ``AppCommandError`` reaches the tree's error handler.
    """
    require_guild(interaction)
    if await is_moderator(interaction, server):  # roles from the payload, not the cache
        return True
    raise app_commands.CheckFailure(refusal)


def age_restricted(channel: object) -> bool:
    """Whether a channel (or a thread's parent) is age-restricted."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    if callable(is_nsfw):
        return bool(is_nsfw())
    return bool(getattr(channel, "nsfw", False))


def requester(interaction: discord.Interaction, *, private: bool) -> Requester:
    """Who asks, where, and how to answer them: the interaction's ids, roles, token and upload limit."""
    return Requester(
        job_id=interaction.id,
        guild_id=require_guild(interaction),
        channel_id=interaction.channel_id or 0,
        user_id=interaction.user.id,
        role_ids=role_ids(interaction),
        application_id=interaction.application_id,
        interaction_token=interaction.token,
        upload_limit=interaction.filesize_limit,
        private=private,
        age_restricted=age_restricted(interaction.channel),
    )


class ModeratorGroup(app_commands.Group):
    """A moderators' command group (``/budget``, ``/safety``): checked in code on every call, changes announced."""

    refusal: ClassVar[str] = "Only moderators can do this (Manage Server permission or the moderator role)."
    mark: ClassVar[str] = "🛠️"  # the mod-log line's emoji

    def __init__(self, bot: FluxcordBot) -> None:
        super().__init__()
        self.bot = bot
        self.services = bot.services

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Server only; moderators only: Manage Server, Administrator, or the configured moderator role."""
        return await require_moderator(interaction, self.services.server.settings, self.refusal)

    async def announce(self, interaction: discord.Interaction, entry: AuditEntry | None, text: str) -> None:
        """Answer the moderator first; the mod-log post is queued and never delays or fails the reply."""
        await interaction.response.send_message(text, ephemeral=True)
        if entry is not None:
            await self.services.server.modlog.announce(entry.guild_id, f"{self.mark} {audit_line(entry)}")
