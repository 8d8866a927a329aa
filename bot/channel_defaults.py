"""Per-channel defaults (`/budget channel`): a channel's model, aspect ratio, count, privacy and style.

They sit between a member's `/prefs` and the bot's defaults: explicit > member > channel > bot, option
by option (:meth:`bot.prefs.PrefsService.resolve`). Values are checked exactly as `/prefs` checks them
(:func:`bot.prefs.checked`: a bad one changes nothing); every change is audited in the transaction that
makes it, as ``channel-defaults.set`` / ``channel-defaults.clear`` on ``channel:<id>``.
"""

from __future__ import annotations

from bot.audit import AuditEntry, AuditLog, Subject, SubjectKind
from bot.clock import Clock, to_millis, utc_now
from bot.prefs import MemberDefaults, checked
from bot.storage.database import Database, Transaction
from bot.styles import StyleService, style_key

ChannelDefaults = MemberDefaults  # the same five options; None: not set (the bot's default applies)

_SELECT = (
    "SELECT c.channel_id, c.model, c.aspect_ratio, c.count, c.private, s.name AS style FROM channel_defaults c"
    " LEFT JOIN server_styles s ON s.guild_id = c.guild_id AND s.name_key = c.style_key WHERE c.guild_id = ?"
)


class ChannelDefaultsStore:
    """Reads and changes the ``channel_defaults`` table."""

    def __init__(
        self, db: Database, styles: StyleService, audit: AuditLog, *, default_model: str, clock: Clock = utc_now
    ):
        self._db = db
        self._styles = styles
        self._audit = audit
        self._default_model = default_model
        self._clock = clock

    async def get(self, guild_id: int, channel_id: int) -> ChannelDefaults:
        """The channel's defaults (all ``None`` if none are set)."""
        row = await self._db.fetch_one(f"{_SELECT} AND c.channel_id = ?", (guild_id, channel_id))
        return ChannelDefaults() if row is None else ChannelDefaults.from_row(row)

    async def all(self, guild_id: int) -> list[tuple[int, ChannelDefaults]]:
        """Every channel of the server with defaults, by channel id (`/budget show`)."""
        rows = await self._db.fetch_all(f"{_SELECT} ORDER BY c.channel_id", (guild_id,))
        return [(row["channel_id"], ChannelDefaults.from_row(row)) for row in rows]

    async def set(
        self, guild_id: int, channel_id: int, given: ChannelDefaults, *, actor_id: int, replace: bool = False
    ) -> tuple[ChannelDefaults, AuditEntry]:
        """Set the ``given`` options (``None``: keep; ``style="none"``: no style); ``replace``: clear the others.

        Everything is checked before anything is written; the change and its audit row commit together.
        """
        current = await self.get(guild_id, channel_id)
        base = ChannelDefaults() if replace else current
        chosen = await checked(base, given, self._styles, guild_id, default_model=self._default_model)
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO channel_defaults (guild_id, channel_id, model, aspect_ratio, count, private, style_key,"
                " updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, channel_id)"
                " DO UPDATE SET model = excluded.model, aspect_ratio = excluded.aspect_ratio, count = excluded.count,"
                " private = excluded.private, style_key = excluded.style_key, updated_by = excluded.updated_by,"
                " updated_at = excluded.updated_at",
                (
                    guild_id,
                    channel_id,
                    chosen.model,
                    chosen.aspect_ratio,
                    chosen.count,
                    None if chosen.private is None else int(chosen.private),
                    None if chosen.style is None else style_key(chosen.style),
                    actor_id,
                    to_millis(self._clock()),
                ),
            )
            entry = await self._write(tx, guild_id, channel_id, actor_id, "set", (current, chosen))
        return chosen, entry

    async def clear(self, guild_id: int, channel_id: int, *, actor_id: int) -> AuditEntry | None:
        """Forget all the channel's defaults; the audit entry, or None if it had none."""
        current = await self.get(guild_id, channel_id)
        async with self._db.transaction() as tx:
            deleted = await tx.execute(
                "DELETE FROM channel_defaults WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
            )
            if not deleted:
                return None
            return await self._write(tx, guild_id, channel_id, actor_id, "clear", (current, ChannelDefaults()))

    async def _write(
        self,
        tx: Transaction,
        guild_id: int,
        channel_id: int,
        actor_id: int,
        verb: str,
        change: tuple[ChannelDefaults, ChannelDefaults],
    ) -> AuditEntry:
        old, new = (defaults.describe() for defaults in change)
        target = Subject(SubjectKind.CHANNEL, channel_id)
        return await self._audit.write(tx, guild_id, actor_id, f"channel-defaults.{verb}", target, (old, new))
