"""The opaque end-user id sent to BFL as ``user``: a keyed hash, never a Discord id, never stored.

BFL's 2026 API takes ``user`` on nearly every route: "an opaque identifier for the end user supplied
by the calling platform", which BFL uses for abuse handling. Fluxcord sends
``HMAC-SHA256(install key, "<server id>:<member id>")`` in hex (64 characters, within BFL's 1–256):
the same member in the same server always gets the same id, another server another one, and nobody
without the key can tell whose it is or link a member across servers.

The key is random, made once per install and kept in the database's ``meta`` table (so every process
on the database, and the bot after a restart, use the same one). The mapping from ids back to members
is never stored: after ``/privacy forget`` nothing the bot keeps ties BFL's records to the member.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bot.storage.database import Database

log = logging.getLogger(__name__)

KEY_BYTES = 32


class EndUserIds:
    """Computes members' end-user ids once :meth:`load` has read (or made) the install's key."""

    META_KEY: ClassVar[str] = "bfl_end_user_key"

    def __init__(self) -> None:
        self._key: bytes | None = None

    @classmethod
    def from_key(cls, key_hex: str) -> EndUserIds:
        """Ids under a given key (hex), without a database."""
        ids = cls()
        ids._key = bytes.fromhex(key_hex)
        return ids

    async def load(self, db: Database) -> None:
        """Read the install's key, creating it on first use; safe when several processes start at once.

        Every process offers a fresh random key with ``INSERT … ON CONFLICT DO NOTHING``; the first
        one stored wins, and all of them read that one back.
        """
        offered = secrets.token_hex(KEY_BYTES)
        await db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (self.META_KEY, offered)
        )
        stored = await db.fetch_value("SELECT value FROM meta WHERE key = ?", (self.META_KEY,))
        if not isinstance(stored, str) or len(stored) != 2 * KEY_BYTES:
            raise RuntimeError(f"the meta table's {self.META_KEY!r} is not a {KEY_BYTES}-byte hex key")
        self._key = bytes.fromhex(stored)
        if stored == offered:
            log.info("Made this install's key for the end-user ids sent to BFL")

    def of(self, guild_id: int, user_id: int) -> str:
        """The end-user id of member ``user_id`` in server ``guild_id`` (64 hex characters)."""
        if self._key is None:
            raise RuntimeError("EndUserIds.load() has not run: no key to derive end-user ids with")
        return hmac.new(self._key, f"{guild_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
