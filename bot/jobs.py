"""Job records: one row per `/imagine`, with every status change timed (see migration 0001)."""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.storage.database import Database

log = logging.getLogger(__name__)


class JobStatus(enum.StrEnum):
    """Where a job is. The first five are unfinished; a restart picks them up."""

    QUEUED = "queued"
    SUBMITTING = "submitting"  # written BEFORE the POST: a crash here means "outcome unknown"
    GENERATING = "generating"
    DOWNLOADING = "downloading"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
    CACHED = "cached"
    UNKNOWN = "unknown"  # BFL may or may not have run it; charged conservatively, flagged in reports


UNFINISHED = (
    JobStatus.QUEUED,
    JobStatus.SUBMITTING,
    JobStatus.GENERATING,
    JobStatus.DOWNLOADING,
    JobStatus.DELIVERING,
)


@dataclass(frozen=True)
class Job:
    """A job row."""

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    model: str
    prompt: str
    params: dict[str, Any]
    seed: int
    width: int
    height: int
    cache_key: str
    status: JobStatus
    estimated_micros: int
    cost_micros: int | None
    bfl_task_id: str | None
    polling_url: str | None
    error: str | None
    result_message_id: int | None
    created_at: datetime
    updated_at: datetime
    aspect_ratio: str | None = None


_UPDATABLE = {"cost_micros", "bfl_task_id", "polling_url", "error", "result_channel_id", "result_message_id"}


class JobStore:
    """Creates jobs and records their transitions."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    async def create(
        self,
        *,
        job_id: int,
        guild_id: int,
        channel_id: int,
        user_id: int,
        model: str,
        prompt: str,
        params: dict[str, Any],
        seed: int,
        width: int,
        height: int,
        cache_key: str,
        estimated_micros: int,
        status: JobStatus = JobStatus.QUEUED,
        aspect_ratio: str | None = None,
    ) -> None:
        """Insert a job (a repeated insert of the same interaction is ignored)."""
        now = to_millis(self._clock())
        await self._db.execute(
            "INSERT OR IGNORE INTO jobs (id, guild_id, channel_id, user_id, model, prompt, params, seed, width,"
            " height, cache_key, status, estimated_micros, created_at, updated_at, aspect_ratio)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                guild_id,
                channel_id,
                user_id,
                model,
                prompt,
                json.dumps(params, sort_keys=True),
                seed,
                width,
                height,
                cache_key,
                status.value,
                estimated_micros,
                now,
                now,
                aspect_ratio,
            ),
        )

    async def transition(self, job_id: int, status: JobStatus, **fields: Any) -> None:
        """Move a job to ``status`` and record any of: cost, task id, polling URL, error, result."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update job fields {sorted(unknown)}")
        assignments = "".join(f", {name} = ?" for name in fields)
        await self._db.execute(
            f"UPDATE jobs SET status = ?, updated_at = ?{assignments} WHERE id = ?",
            (status.value, to_millis(self._clock()), *fields.values(), job_id),
        )

    async def get(self, job_id: int) -> Job | None:
        """One job, or None."""
        row = await self._db.fetch_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    async def unfinished(self) -> list[Job]:
        """Jobs a restart must pick up, oldest first."""
        marks = ",".join("?" * len(UNFINISHED))
        rows = await self._db.fetch_all(
            f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at",
            [s.value for s in UNFINISHED],
        )
        return [_job(row) for row in rows]

    async def events(self, job_id: int) -> list[tuple[JobStatus, datetime]]:
        """The job's status history with times."""
        rows = await self._db.fetch_all(
            "SELECT status, at FROM job_events WHERE job_id = ? ORDER BY at, rowid", (job_id,)
        )
        return [(JobStatus(r["status"]), from_millis(r["at"])) for r in rows]


def _job(row: Any) -> Job:
    return Job(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        model=row["model"],
        prompt=row["prompt"],
        params=json.loads(row["params"]),
        seed=row["seed"],
        width=row["width"],
        height=row["height"],
        cache_key=row["cache_key"],
        status=JobStatus(row["status"]),
        estimated_micros=row["estimated_micros"],
        cost_micros=row["cost_micros"],
        bfl_task_id=row["bfl_task_id"],
        polling_url=row["polling_url"],
        error=row["error"],
        result_message_id=row["result_message_id"],
        created_at=from_millis(row["created_at"]),
        updated_at=from_millis(row["updated_at"]),
        aspect_ratio=row["aspect_ratio"],
    )
