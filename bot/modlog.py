"""The mod-log: where moderator changes and spend alerts are announced, if a server set a channel.

Announcing never waits on Discord: :meth:`ModLog.announce` only looks up the channel and queues the
text; one background sender posts the queue in order, retrying transient failures (5xx, 429, network
errors) with exponential backoff. A command that changed something has already saved the change
and answered the moderator; a slow or broken mod-log can only delay or lose the announcement, never
fail the command or make it run twice. Refusals (a deleted channel, missing permissions) are not
retried, and neither is a post that timed out, since it may have been posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.aio import cancel_and_wait, within
from bot.server_settings import ServerSettings
from bot.text import strip_bidi

log = logging.getLogger(__name__)

MAX_QUEUED = 1000  # beyond this, new announcements are dropped (and logged) rather than piling up
PERMANENT_STATUSES = frozenset({400, 401, 403, 404})


class ChannelPoster(Protocol):
    """Posts plain text to a channel (implemented by the Discord client; never pings anyone)."""

    async def post_to_channel(self, channel_id: int, text: str) -> None:
        """Send ``text`` to ``channel_id``."""


@dataclass(frozen=True)
class _Post:
    guild_id: int
    channel_id: int
    text: str


class ModLog:
    """Announces to a server's configured mod-log channel; silently does nothing without one."""

    def __init__(
        self,
        server: ServerSettings,
        *,
        poster: ChannelPoster | None = None,
        render: Callable[[object], str] = str,
        attempts: int = 6,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        post_timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._server = server
        self._render = render  # words the core's notes (a safety note, …) for Discord: cogs/_render.py
        self.poster = poster  # the Discord client (None: announcements are logged and dropped)
        self._attempts = attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._post_timeout = post_timeout
        self._sleep = sleep
        self._queue: asyncio.Queue[_Post] = asyncio.Queue(MAX_QUEUED)
        self._sender: asyncio.Task[None] | None = None

    async def announce(self, guild_id: int, note: object) -> bool:
        """Queue ``note`` (text, or a core note to render) for the server's mod-log; True if it has one.

        Returns without waiting on Discord.
        """
        channel_id = (await self._server.guild_settings(guild_id)).modlog_channel_id
        if channel_id is None:
            return False
        text = note if isinstance(note, str) else self._render(note)
        try:
            self._queue.put_nowait(_Post(guild_id, channel_id, strip_bidi(text)))
        except asyncio.QueueFull:
            log.warning("Mod-log queue full; dropping an announcement for guild %s", guild_id)
            return False
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_forever(), name="fluxcord-modlog")
        return True

    async def drain(self) -> None:
        """Wait until every queued announcement was posted or given up on (tests, shutdown)."""
        await self._queue.join()

    async def close(self, grace: float = 1.0) -> None:
        """Give queued announcements ``grace`` seconds to go out, then stop the sender."""
        if self._sender is None:
            return
        with contextlib.suppress(TimeoutError):
            await within(grace, self._queue.join())
        await cancel_and_wait(self._sender)
        self._sender = None
        if not self._queue.empty():
            log.warning("Stopping with %d mod-log announcements not posted", self._queue.qsize())

    async def _send_forever(self) -> None:
        while True:
            post = await self._queue.get()
            try:
                await self._deliver(post)
            except Exception:
                log.exception("Mod-log sender failed on an announcement for guild %s", post.guild_id)
            finally:
                self._queue.task_done()

    async def _deliver(self, post: _Post) -> None:
        for attempt in range(1, self._attempts + 1):
            if self.poster is None:
                log.warning("No Discord client to post the mod-log of guild %s", post.guild_id)
                return
            try:
                async with asyncio.timeout(self._post_timeout):
                    await self.poster.post_to_channel(post.channel_id, post.text)
            except TimeoutError:
                # It may have been posted after all: posting again could show the change twice.
                log.warning("Mod-log post to channel %s timed out; not retrying", post.channel_id)
                return
            except Exception as exc:
                status = getattr(exc, "status", None)
                if status in PERMANENT_STATUSES:
                    log.warning("Could not post to the mod-log of guild %s: %s", post.guild_id, exc)
                    return
                if attempt == self._attempts:
                    log.warning(
                        "Giving up on a mod-log post to guild %s after %d tries: %s", post.guild_id, attempt, exc
                    )
                    return
                delay = random.uniform(0, min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1)))
                log.info("Mod-log post to guild %s failed (%s); retrying in %.1f s", post.guild_id, exc, delay)
                await self._sleep(delay)
            else:
                return
