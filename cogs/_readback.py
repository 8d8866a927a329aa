"""Where a presenter's edit may have landed unanswered, and how it reads the message back (:mod:`cogs._presenter`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord

log = logging.getLogger(__name__)

# Discord's answers when the interaction's message cannot be edited: its token is past its life or gone
# (50027, 10015), or the message itself is gone (10008: deleted, or never shown): the channel instead.
GONE_CODES = {50027, 10015, 10008}
# No answer from Discord at all: the edit may have taken effect before the connection broke.
UNANSWERED: tuple[type[Exception], ...] = (aiohttp.ClientError, TimeoutError)
READ_BACK_WAITS = (0.5, 1.0)  # seconds between reads of a message whose edit was left unanswered


@dataclass(frozen=True)
class Original:
    """Where the interaction's message can be read back: its webhook (while the token lives), or its id."""

    webhook: discord.Webhook | None
    channel_id: int
    message_id: int | None  # a public message's id (the bot's token reads it); None: private or not known


async def read_back(what: str, read: Callable[[], Awaitable[discord.Message]]) -> discord.Message | None:
    """``read()``, asked again after short back-offs while refused (a 429, a 5xx, a dropped connection).

    None once it cannot be read: the token or the message is gone, or it kept failing.
    """
    unreadable: tuple[type[Exception], ...] = (discord.HTTPException, *UNANSWERED)
    for wait in (*READ_BACK_WAITS, None):
        try:
            return await read()
        except unreadable as exc:
            code = exc.code if isinstance(exc, discord.HTTPException) else type(exc).__name__
            log.info("Could not read %s back after an unanswered edit (%s)", what, code)
            gone = isinstance(exc, discord.HTTPException) and (exc.code in GONE_CODES or exc.status in (403, 404))
            if wait is None or gone:
                return None
            await asyncio.sleep(wait)  # a back-off before asking again, not a synchronisation
    return None


def has_files(names: list[str]) -> Callable[[discord.Message], bool]:
    """The message carries these attachments (a result's edit landed)."""
    return lambda message: set(names) <= {a.filename for a in message.attachments}


def says(text: str) -> Callable[[discord.Message], bool]:
    """The message reads ``text`` (a notice's edit landed)."""
    return lambda message: message.content == text


def text_only(text: str) -> dict[str, Any]:
    """An original message edited down to ``text``: no embed, files or buttons, and no pings."""
    return {
        "content": text,
        "embed": None,
        "attachments": [],
        "view": None,
        "allowed_mentions": discord.AllowedMentions.none(),
    }
