"""What the safety rules report, as data: refusals' details and mod-log notes (``cogs/_render.py`` words them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Block:
    """A member's block in one server (``until`` None: until a moderator lifts it)."""

    user_id: int
    until: datetime | None
    reason: str | None
    blocked_by: int

    def audit_text(self) -> str:
        """How an audit row stores the block's end: plain UTC time, no markup."""
        if self.until is None:
            return "until a moderator lifts it"
        return f"until {self.until:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class ChannelsOnly:
    """Generation is limited to ``channel_ids`` in this server."""

    channel_ids: list[int]


@dataclass(frozen=True)
class PromptRefused:
    """Mod-log note: a member's prompt matched a blocked rule."""

    user_id: int
    channel_id: int
    rule: str


@dataclass(frozen=True)
class ResultModerated:
    """Mod-log note: BFL's filter blocked a member's prompt (``stage`` ``request``) or image (``content``)."""

    user_id: int
    channel_id: int
    stage: str
    model: str
    job_id: int
    prompt: str


@dataclass(frozen=True)
class StrikeNotice:
    """The member's own note: ``recent`` moderated results within an hour blocked them (``block``)."""

    recent: int
    block: Block


@dataclass(frozen=True)
class StrikeBlocked:
    """Mod-log note: a member collected enough strikes to be blocked."""

    block: Block
