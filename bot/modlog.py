"""The mod-log: where moderator changes and spend alerts are announced, if a server set a channel."""

from __future__ import annotations

import logging
from typing import Protocol

from bot.limits import LimitsService

log = logging.getLogger(__name__)


class ChannelPoster(Protocol):
    """Posts plain text to a channel (implemented by the Discord client; never pings anyone)."""

    async def post_to_channel(self, channel_id: int, text: str) -> None:
        """Send ``text`` to ``channel_id``."""


class ModLog:
    """Announces to a server's configured mod-log channel; silently does nothing without one."""

    def __init__(self, limits: LimitsService) -> None:
        self._limits = limits
        self.poster: ChannelPoster | None = None  # attached by the bot once it exists

    async def announce(self, guild_id: int, text: str) -> bool:
        """Post ``text`` to the server's mod-log; True if it was posted."""
        channel_id = (await self._limits.guild_settings(guild_id)).modlog_channel_id
        if channel_id is None or self.poster is None:
            return False
        try:
            await self.poster.post_to_channel(channel_id, text)
        except Exception as exc:
            # The change itself succeeded and is in the audit log; a missing channel must not undo it.
            log.warning("Could not post to the mod-log of guild %s: %s", guild_id, exc)
            return False
        return True
