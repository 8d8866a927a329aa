"""Progress edits and a job's last message never cross, even between processes.

A job's message is edited by whichever process paints its progress (the one that admitted it, while it
is queued) and, at the end, by whichever process posts its result or says how it ended. Discord has no
conditional edit, so an in-process ``quiet`` is not enough: a queue-place edit sent by the gateway can
land after the worker's "failed" text and leave the member looking at a queue place forever.

The fence is a time in the database (``painting_until``, by the database's clock) on the job's row, or
its group's row for a group's one line: a painter stamps it, only while the row is still showing
progress, before each edit, and clears it after. The side that posts the last message first ends the
progress (a terminal status, ``delivering``/``cached``, or a group's ``poster``), then waits until no
stamp is current. Either the painter stamped first (the poster waits for its edit to land) or it finds
the progress over (and sends nothing). A painter that dies leaves a stamp that lapses by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bot.engine.jobs import Job
from bot.storage.database import Database

log = logging.getLogger(__name__)

PAINT_BUDGET_SECONDS = 10.0  # a stamp's life: one progress edit, 429 waits included, must end within it
EDIT_TIMEOUT_SECONDS = PAINT_BUDGET_SECONDS - 2.0  # the painter gives up on an edit well before its stamp lapses
_WAIT_STEP_SECONDS = 0.05
# The states whose message still shows progress: from `delivering` (and `cached`) on, the result is posted.
_PAINTED = "status IN ('queued', 'submitting', 'generating', 'downloading')"


def is_group_line(job: Job) -> bool:
    """A painted "job" that stands for its group's one line (its id is the group's)."""
    return job.group_id is not None and job.group_id == job.id


class PaintFence:
    """Stamps and waits on ``painting_until`` (see the module docstring)."""

    def __init__(self, db: Database, now_ms: Callable[[], int], budget_seconds: float = PAINT_BUDGET_SECONDS) -> None:
        self._db = db
        self._now_ms = now_ms
        self._budget_ms = int(budget_seconds * 1000)

    async def enter(self, job: Job) -> int | None:
        """Stamp the row before a progress edit; None when its progress is over (send nothing)."""
        stamp = self._now_ms() + self._budget_ms
        if is_group_line(job):
            sql = "UPDATE job_groups SET painting_until = ? WHERE id = ? AND poster IS NULL AND posted_at IS NULL"
        else:
            sql = f"UPDATE jobs SET painting_until = ? WHERE id = ? AND {_PAINTED}"
        return stamp if await self._db.execute(sql, (stamp, job.id)) == 1 else None

    async def leave(self, job: Job, stamp: int) -> None:
        """The edit landed (or failed): clear this painter's stamp (a newer one stays)."""
        table = "job_groups" if is_group_line(job) else "jobs"
        await self._db.execute(
            f"UPDATE {table} SET painting_until = NULL WHERE id = ? AND painting_until = ?", (job.id, stamp)
        )

    async def wait(self, owner_id: int) -> None:
        """Wait until no progress edit of a job or group ``owner_id`` may still be on its way (bounded)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._budget_ms / 1000 + 1.0
        while loop.time() < give_up:
            row = await self._db.fetch_one(
                "SELECT (SELECT painting_until FROM jobs WHERE id = ?) AS job,"
                " (SELECT painting_until FROM job_groups WHERE id = ?) AS grp",
                (owner_id, owner_id),
            )
            stamps = [s for s in (row["job"], row["grp"]) if s is not None] if row is not None else []
            left_ms = max(stamps, default=0) - self._now_ms()
            if left_ms <= 0:
                return
            await asyncio.sleep(min(_WAIT_STEP_SECONDS, left_ms / 1000))
        log.warning("%s: a progress edit's stamp outlived its budget; posting anyway", owner_id)
