"""The server's safety rules: read at admission, changed by moderators (every change audited).

:meth:`SafetyService.screen` runs before any reservation (see :meth:`bot.engine.engine.JobEngine.admit`):
a blocked member, a channel or model the server does not allow, or a blocked word refuses the request
with a :class:`bot.safety.errors.SafetyRefusal` and no side effect but a mod-log note. Otherwise it
returns the request with the server's ``safety_tolerance`` (and grounding switch) applied.
:meth:`SafetyService.moderated` counts a strike for every moderated result and blocks a member who
collects ``MODERATION_STRIKES`` of them within an hour.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.audit import SERVER, AuditEntry, AuditLog, Subject, SubjectKind
from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.config import Settings
from bot.models import MODELS, GenerationRequest
from bot.safety.errors import (
    BlockedPrompt,
    ChannelNotAllowed,
    GroundingNotAllowed,
    MemberBlocked,
    ModelNotAllowed,
    VideoNotAllowed,
)
from bot.safety.levels import SafetyLevel, tolerance_for
from bot.safety.matching import find_rule
from bot.safety.notices import Block, ChannelsOnly, PromptRefused, ResultModerated, StrikeBlocked, StrikeNotice
from bot.storage.database import Database

log = logging.getLogger(__name__)

Notice = Callable[[int, object], Coroutine[Any, Any, object]]  # (guild id, note) → a mod-log post
BOT_ACTOR = 0  # the actor id of changes the bot makes itself (strike blocks)
STRIKE_WINDOW = timedelta(hours=1)
MAX_WORDS = 500


VIDEO_OFF = (
    "Video (Animate) is off in this server: it is the most expensive thing the bot makes, so a moderator must"
    " switch it on with `/safety video allowed:True`. Nothing was generated or charged."
)


@dataclass(frozen=True)
class ServerRules:
    """A server's safety rules at a glance (for moderators and /quota)."""

    words: list[str]
    allowed_channels: list[int]
    models: list[str] | None  # None: every model
    grounding: bool
    levels: dict[int, SafetyLevel]  # channel id (0: the server) → level
    video: bool = False  # FLUX 3 video (Animate, /animate) switched on


class SafetyService:
    """Reads and changes the safety rules; every moderator change lands in the audit log."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        settings: Settings,
        *,
        render: Callable[[object], str],
        clock: Clock = utc_now,
        notice: Notice | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._settings = settings
        self._clock = clock
        self._notice = notice
        self._render = render  # words the member's strike notice (the engine shows text): cogs/_render.py

    # -- admission ---------------------------------------------------------------------------------

    async def screen(
        self,
        request: GenerationRequest,
        *,
        guild_id: int,
        channel_id: int,
        user_id: int,
        age_restricted: bool = False,
    ) -> GenerationRequest:
        """Refuse what the server's rules forbid; return ``request`` with its safety settings applied."""
        block = await self.block_of(guild_id, user_id)
        if block is not None:
            raise MemberBlocked(f"blocked: {block!r}", notice=block)  # worded by cogs/_render.py
        channels = await self.allowed_channels(guild_id)
        if channels and channel_id not in channels:
            raise ChannelNotAllowed(f"channels: {channels!r}", notice=ChannelsOnly(channels))
        if request.model.body == "video" and not await self.video_allowed(guild_id):
            raise VideoNotAllowed(VIDEO_OFF)
        models = await self.allowed_models(guild_id)
        if models is not None and request.model.key not in models:
            shown = ", ".join(f"`{m}`" for m in models) or "none"
            raise ModelNotAllowed(f"{request.model.label} isn't allowed in this server. Allowed models: {shown}.")
        rule = find_rule(request.prompt, await self.words(guild_id))
        if rule is not None:
            await self._note(guild_id, PromptRefused(user_id, channel_id, rule))
            raise BlockedPrompt(
                f"Your prompt contains “{rule}”, which this server's moderators blocked. Nothing was generated"
                " or charged."
            )
        level = await self.level_for(guild_id, channel_id)
        if level is SafetyLevel.RELAXED and not age_restricted:
            level = SafetyLevel.STANDARD  # relaxed only ever applies in an age-restricted channel
        if getattr(request, "grounding", None) and not await self.grounding_allowed(guild_id):
            raise GroundingNotAllowed(
                "Grounding sends your prompt to web search, and this server's moderators have not allowed it."
            )
        tolerance = tolerance_for(request.model.family, level)
        low, high = getattr(request.model, "safety_range", (0, 6))
        return dataclasses.replace(request, safety_tolerance=max(low, min(high, tolerance)))

    # -- moderated outcomes ------------------------------------------------------------------------

    async def moderated(
        self, *, guild_id: int, channel_id: int, user_id: int, job_id: int, model: str, prompt: str, stage: str
    ) -> str | None:
        """Post a moderated result to the mod-log and count a strike; return the block notice if it blocks."""
        await self._note(guild_id, ResultModerated(user_id, channel_id, stage, model, job_id, prompt))
        strikes = self._settings.moderation_strikes
        hours = self._settings.moderation_block_hours
        now = self._clock()
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO safety_strikes (guild_id, user_id, job_id, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, user_id, job_id, to_millis(now)),
            )
            count = await tx.fetch_one(
                "SELECT COUNT(*) FROM safety_strikes WHERE guild_id = ? AND user_id = ? AND at > ?",
                (guild_id, user_id, to_millis(now - STRIKE_WINDOW)),
            )
            recent = int(count[0]) if count else 0
            if recent < strikes:
                return None
            current = await tx.fetch_one(
                "SELECT until FROM safety_blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            if current is not None and (current["until"] is None or current["until"] > to_millis(now)):
                return None  # already blocked
            until = now + timedelta(hours=hours)
            reason = f"{recent} moderated results within an hour"
            await tx.execute(
                "INSERT INTO safety_blocks (guild_id, user_id, until, reason, blocked_by, at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, user_id) DO UPDATE SET until = excluded.until, reason = excluded.reason,"
                " blocked_by = excluded.blocked_by, at = excluded.at",
                (guild_id, user_id, to_millis(until), reason, BOT_ACTOR, to_millis(now)),
            )
        block = Block(user_id, until, reason, BOT_ACTOR)
        member = Subject(SubjectKind.MEMBER, user_id)
        await self._audit.record(guild_id, BOT_ACTOR, "safety.block", member, None, f"{block.audit_text()}: {reason}")
        await self._note(guild_id, StrikeBlocked(block))
        log.info("Guild %s: member %s blocked for %d h after %d moderated results", guild_id, user_id, hours, recent)
        return self._render(StrikeNotice(recent, block))

    # -- reads -------------------------------------------------------------------------------------

    async def block_of(self, guild_id: int, user_id: int) -> Block | None:
        """The member's block if it is in force now."""
        row = await self._db.fetch_one(
            "SELECT user_id, until, reason, blocked_by FROM safety_blocks WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        if row is None:
            return None
        until = None if row["until"] is None else from_millis(row["until"])
        if until is not None and until <= self._clock():
            return None
        return Block(row["user_id"], until, row["reason"], row["blocked_by"])

    async def words(self, guild_id: int) -> list[str]:
        """The server's blocked words and phrases (normalized), alphabetically."""
        rows = await self._db.fetch_all("SELECT rule FROM safety_words WHERE guild_id = ? ORDER BY rule", (guild_id,))
        return [r["rule"] for r in rows]

    async def allowed_channels(self, guild_id: int) -> list[int]:
        """Channels generation is limited to (empty: every channel)."""
        rows = await self._db.fetch_all(
            "SELECT channel_id FROM safety_channels WHERE guild_id = ? ORDER BY channel_id", (guild_id,)
        )
        return [r["channel_id"] for r in rows]

    async def allowed_models(self, guild_id: int) -> list[str] | None:
        """The models the server allows (None: every model)."""
        raw = await self._db.fetch_value("SELECT models FROM safety_settings WHERE guild_id = ?", (guild_id,))
        return None if raw is None else list(json.loads(raw))

    async def grounding_allowed(self, guild_id: int) -> bool:
        """Whether prompts may be sent to web search (default off)."""
        return bool(
            await self._db.fetch_value("SELECT grounding FROM safety_settings WHERE guild_id = ?", (guild_id,), 0)
        )

    async def video_allowed(self, guild_id: int) -> bool:
        """Whether FLUX 3 video (Animate) may be made here (default off: the most expensive thing the bot does)."""
        return bool(await self._db.fetch_value("SELECT video FROM safety_settings WHERE guild_id = ?", (guild_id,), 0))

    async def level_for(self, guild_id: int, channel_id: int) -> SafetyLevel:
        """The channel's level, else the server's, else ``standard``."""
        row = await self._db.fetch_one(
            "SELECT level FROM safety_levels WHERE guild_id = ? AND channel_id IN (?, 0)"
            " ORDER BY channel_id = 0 LIMIT 1",
            (guild_id, channel_id),
        )
        return SafetyLevel.STANDARD if row is None else SafetyLevel(row["level"])

    async def rules(self, guild_id: int) -> ServerRules:
        """Everything set for the server."""
        levels = await self._db.fetch_all("SELECT channel_id, level FROM safety_levels WHERE guild_id = ?", (guild_id,))
        return ServerRules(
            words=await self.words(guild_id),
            allowed_channels=await self.allowed_channels(guild_id),
            models=await self.allowed_models(guild_id),
            grounding=await self.grounding_allowed(guild_id),
            levels={r["channel_id"]: SafetyLevel(r["level"]) for r in levels},
            video=await self.video_allowed(guild_id),
        )

    # -- moderator changes (each audited) ----------------------------------------------------------

    async def add_words(
        self, guild_id: int, rules: Sequence[str], *, actor_id: int
    ) -> tuple[list[str], AuditEntry | None]:
        """Add rules; return those that were new and the audit entry (None if nothing changed)."""
        existing = set(await self.words(guild_id))
        new = [r for r in rules if r not in existing]
        if len(existing) + len(new) > MAX_WORDS:
            raise ValueError(f"a server can block at most {MAX_WORDS} words and phrases")
        if not new:
            return [], None
        now = to_millis(self._clock())
        async with self._db.transaction() as tx:
            for rule in new:
                await tx.execute(
                    "INSERT INTO safety_words (guild_id, rule, added_by, added_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (guild_id, rule, actor_id, now),
                )
        entry = await self._audit.record(guild_id, actor_id, "safety.words.add", "blocked words", None, ", ".join(new))
        return new, entry

    async def remove_words(
        self, guild_id: int, rules: Sequence[str], *, actor_id: int
    ) -> tuple[list[str], AuditEntry | None]:
        """Remove rules; return those that were there and the audit entry (None if nothing changed)."""
        removed: list[str] = []
        async with self._db.transaction() as tx:
            for rule in rules:
                if await tx.execute("DELETE FROM safety_words WHERE guild_id = ? AND rule = ?", (guild_id, rule)):
                    removed.append(rule)
        if not removed:
            return [], None
        entry = await self._audit.record(
            guild_id, actor_id, "safety.words.remove", "blocked words", ", ".join(removed), None
        )
        return removed, entry

    async def block(
        self, guild_id: int, user_id: int, *, hours: int | None, reason: str | None, actor_id: int
    ) -> tuple[Block, AuditEntry]:
        """Block a member (for ``hours``, or until unblocked)."""
        now = self._clock()
        until = None if hours is None else now + timedelta(hours=hours)
        old = await self.block_of(guild_id, user_id)
        await self._db.execute(
            "INSERT INTO safety_blocks (guild_id, user_id, until, reason, blocked_by, at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (guild_id, user_id) DO UPDATE SET until = excluded.until, reason = excluded.reason,"
            " blocked_by = excluded.blocked_by, at = excluded.at",
            (guild_id, user_id, None if until is None else to_millis(until), reason, actor_id, to_millis(now)),
        )
        block = Block(user_id, until, reason, actor_id)
        shown = block.audit_text() + (f": {reason}" if reason else "")
        member = Subject(SubjectKind.MEMBER, user_id)
        entry = await self._audit.record(
            guild_id, actor_id, "safety.block", member, old.audit_text() if old else None, shown
        )
        return block, entry

    async def unblock(self, guild_id: int, user_id: int, *, actor_id: int) -> AuditEntry | None:
        """Lift a member's block; None if they were not blocked."""
        old = await self.block_of(guild_id, user_id)
        await self._db.execute("DELETE FROM safety_blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
        if old is None:
            return None
        member = Subject(SubjectKind.MEMBER, user_id)
        return await self._audit.record(guild_id, actor_id, "safety.unblock", member, old.audit_text(), None)

    async def set_level(
        self, guild_id: int, channel_id: int | None, level: SafetyLevel, *, actor_id: int
    ) -> AuditEntry:
        """Set the server's level (``channel_id`` None) or a channel's."""
        key = channel_id or 0
        old = await self._db.fetch_value(
            "SELECT level FROM safety_levels WHERE guild_id = ? AND channel_id = ?", (guild_id, key)
        )
        await self._db.execute(
            "INSERT INTO safety_levels (guild_id, channel_id, level) VALUES (?, ?, ?)"
            " ON CONFLICT (guild_id, channel_id) DO UPDATE SET level = excluded.level",
            (guild_id, key, level.value),
        )
        target = Subject(SubjectKind.CHANNEL, channel_id) if channel_id else SERVER
        return await self._audit.record(guild_id, actor_id, "safety.level", target, old, level.value)

    async def set_channel(self, guild_id: int, channel_id: int, allowed: bool, *, actor_id: int) -> AuditEntry:
        """Allow or stop allowing generation in a channel."""
        if allowed:
            await self._db.execute(
                "INSERT INTO safety_channels (guild_id, channel_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (guild_id, channel_id),
            )
        else:
            await self._db.execute(
                "DELETE FROM safety_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
            )
        channel = Subject(SubjectKind.CHANNEL, channel_id)
        return await self._audit.record(
            guild_id, actor_id, "safety.channel", channel, None, "allowed" if allowed else "not allowed"
        )

    async def set_models(self, guild_id: int, models: list[str] | None, *, actor_id: int) -> AuditEntry:
        """Limit the server to ``models`` (None: every model)."""
        old = await self.allowed_models(guild_id)
        value = None if models is None else json.dumps(models)
        await self._db.execute(
            "INSERT INTO safety_settings (guild_id, models) VALUES (?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET models = excluded.models",
            (guild_id, value),
        )
        shown = ", ".join(models) if models is not None else "all"
        return await self._audit.record(
            guild_id, actor_id, "safety.models", SERVER, "all" if old is None else ", ".join(old), shown
        )

    async def set_grounding(self, guild_id: int, allowed: bool, *, actor_id: int) -> AuditEntry:
        """Allow or forbid sending prompts to web search."""
        old = await self.grounding_allowed(guild_id)
        await self._db.execute(
            "INSERT INTO safety_settings (guild_id, grounding) VALUES (?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET grounding = excluded.grounding",
            (guild_id, int(allowed)),
        )
        return await self._audit.record(
            guild_id, actor_id, "safety.grounding", SERVER, "on" if old else "off", "on" if allowed else "off"
        )

    async def set_video(self, guild_id: int, allowed: bool, *, actor_id: int) -> AuditEntry:
        """Switch FLUX 3 video (Animate, ``/animate``) on or off for the server."""
        old = await self.video_allowed(guild_id)
        await self._db.execute(
            "INSERT INTO safety_settings (guild_id, video) VALUES (?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET video = excluded.video",
            (guild_id, int(allowed)),
        )
        return await self._audit.record(
            guild_id, actor_id, "safety.video", SERVER, "on" if old else "off", "on" if allowed else "off"
        )

    # -- helpers -----------------------------------------------------------------------------------

    async def _note(self, guild_id: int, note: object) -> None:
        """Queue a mod-log post (never waits on Discord; a failure only loses the note)."""
        if self._notice is None:
            return
        try:
            await self._notice(guild_id, note)
        except Exception as exc:
            log.warning("Could not queue a mod-log note for guild %s: %s", guild_id, exc)


def known_models(keys: Sequence[str]) -> list[str]:
    """``keys`` checked against the model table; raises :class:`ValueError` naming an unknown one."""
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        raise ValueError(f"unknown model `{unknown[0][:40]}`")
    return list(dict.fromkeys(keys))
