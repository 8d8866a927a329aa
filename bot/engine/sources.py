"""Where a job's input came from, which results were deleted, and a member's recent jobs.

The job row itself (:mod:`bot.engine.store`) holds everything a job needs to run, its input images
included (base64 in ``params``). This module keeps what only the Discord side shows: an edit's source
image URL (the result card's thumbnail and link), the earlier job a button works on, whether a result
was removed with Delete, and the member's history. No money moves here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.engine.states import JobStatus
from bot.storage.database import Database

log = logging.getLogger(__name__)

SourceKind = Literal[
    "edit",
    "vary",
    "reroll",
    "detail",
    "sharpen",
    "zoom15",
    "zoom2",
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
    "animate",
]
HISTORY_LENGTH = 10


@dataclass(frozen=True)
class JobSource:
    """What an edit, a variation or a reroll works on."""

    job_id: int
    kind: SourceKind
    source_url: str | None
    source_job_id: int | None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of ``/history``."""

    job_id: int
    model: str
    prompt: str
    status: JobStatus
    cost_micros: int
    created_at: datetime
    channel_id: int | None
    message_id: int | None
    deleted: bool


class JobSources:
    """Reads and writes ``job_sources`` and ``job_deletions``; lists a member's recent jobs."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self, job_id: int, kind: SourceKind, *, source_url: str | None, source_job_id: int | None = None
    ) -> None:
        """Remember what ``job_id`` works on (once: admitting the same job twice keeps the first)."""
        await self._db.execute(
            "INSERT INTO job_sources (job_id, kind, source_url, source_job_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job_id) DO NOTHING",
            (job_id, kind, source_url, source_job_id),
        )

    async def forget(self, job_id: int) -> None:
        """Drop the row of a request that was never admitted (no job row carries that id)."""
        await self._db.execute(
            "DELETE FROM job_sources WHERE job_id = ? AND NOT EXISTS (SELECT 1 FROM jobs WHERE id = ?)",
            (job_id, job_id),
        )

    async def get(self, job_id: int) -> JobSource | None:
        """What ``job_id`` works on, or None for a plain text-to-image job."""
        row = await self._db.fetch_one(
            "SELECT job_id, kind, source_url, source_job_id FROM job_sources WHERE job_id = ?", (job_id,)
        )
        if row is None:
            return None
        return JobSource(row["job_id"], row["kind"], row["source_url"], row["source_job_id"])

    async def source_url(self, job_id: int) -> str | None:
        """The source image's URL of an edit or variation (for the result card)."""
        source = await self.get(job_id)
        return source.source_url if source is not None and source.kind != "reroll" else None

    async def mark_deleted(self, job_id: int, by_user: int) -> bool:
        """Record that ``job_id``'s result was deleted; False if it already was."""
        changed = await self._db.execute(
            "INSERT INTO job_deletions (job_id, deleted_by, deleted_at) VALUES (?, ?, ?)"
            " ON CONFLICT (job_id) DO NOTHING",
            (job_id, by_user, to_millis(self._clock())),
        )
        return changed > 0

    async def is_deleted(self, job_id: int) -> bool:
        """Whether ``job_id``'s result was removed with Delete."""
        row = await self._db.fetch_one("SELECT 1 FROM job_deletions WHERE job_id = ?", (job_id,))
        return row is not None

    async def history(self, guild_id: int, user_id: int, limit: int = HISTORY_LENGTH) -> list[HistoryEntry]:
        """The member's last ``limit`` jobs in this server, newest first."""
        rows = await self._db.fetch_all(
            "SELECT j.id, j.model, j.prompt, j.status, j.cost_micros, j.estimated_micros, j.created_at,"
            " j.result_channel_id, j.result_message_id, d.job_id IS NOT NULL AS deleted"
            " FROM jobs j LEFT JOIN job_deletions d ON d.job_id = j.id"
            " WHERE j.guild_id = ? AND j.user_id = ? ORDER BY j.created_at DESC, j.id DESC LIMIT ?",
            (guild_id, user_id, limit),
        )
        entries = []
        for row in rows:
            status = JobStatus(row["status"])
            cost = row["cost_micros"]
            if cost is None:
                cost = 0 if status in (JobStatus.CANCELLED, JobStatus.FAILED) else row["estimated_micros"]
            entries.append(
                HistoryEntry(
                    job_id=row["id"],
                    model=row["model"],
                    prompt=row["prompt"],
                    status=status,
                    cost_micros=cost,
                    created_at=from_millis(row["created_at"]),
                    channel_id=row["result_channel_id"],
                    message_id=row["result_message_id"],
                    deleted=bool(row["deleted"]),
                )
            )
        return entries
