"""What the member sees while a job waits or runs: single jobs' progress, groups' one line, queue places.

The engine only *sets* progress here (never awaiting Discord); the :class:`ProgressPainter` edits the
messages in the background, throttled. Queue places are recomputed (at most every
:data:`QUEUE_REFRESH_SECONDS`) while the queue moves, by replaying the claim's fairness rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bot.bfl.polling import LatencyModel
from bot.clock import Clock
from bot.engine.config import EngineConfig
from bot.engine.fairness import positions
from bot.engine.fairness import queued_progress as place_progress
from bot.engine.groups import GroupStore, counts
from bot.engine.jobs import Job
from bot.engine.paint_fence import PaintFence
from bot.engine.progress import Presenter, Progress, ProgressPainter
from bot.engine.states import JobStatus
from bot.engine.store import JobStore

log = logging.getLogger(__name__)

QUEUE_REFRESH_SECONDS = 1.0


class Painting:
    """Progress of jobs and groups, painted by one :class:`ProgressPainter` once the presenter is known."""

    def __init__(
        self,
        store: JobStore,
        groups: GroupStore,
        config: EngineConfig,
        latency: Callable[[], LatencyModel],
        clock: Clock,
        holder: str,
        group_posting: Callable[[int], bool] = lambda _group_id: False,
    ) -> None:
        self._store = store
        self._fence = PaintFence(store.db, store.now_ms)
        self._holder = holder  # queued jobs admitted here are painted here (another process paints its own)
        self._groups = groups
        self._config = config
        self._latency = latency
        self._clock = clock
        self.painter: ProgressPainter | None = None
        self._group_posting = group_posting  # a group being posted: its line stays still
        self._group_seen: dict[int, JobStatus] = {}  # a group image's last status shown in its group's line
        self._queue_changed = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()

    def start(self, presenter: Presenter) -> list[asyncio.Task[None]]:
        """Start painting through ``presenter``; the background tasks (the engine cancels them at stop)."""
        self.painter = ProgressPainter(
            presenter, min_interval=self._config.progress_interval, clock=self._clock, fence=self._fence
        )
        return [
            asyncio.create_task(self.painter.run(), name="fluxcord-painter"),
            asyncio.create_task(self._watch_queue(), name="fluxcord-queue"),
        ]

    async def close(self) -> None:
        """Let edits in flight finish briefly; drop the rest."""
        if self.painter is not None:
            await self.painter.close()
        for task in list(self._background):
            task.cancel()

    def shown(self, job_id: int, text: str) -> None:
        """The member already sees ``text`` (the first answer): do not send it again."""
        if self.painter is not None:
            self.painter.shown(job_id, text)

    def show(self, job: Job, progress: Progress) -> None:
        """A job's newest visible state (a group's image: its group's line)."""
        if job.group_id is not None:
            self.member_moved(job, progress.status)
        elif self.painter is not None and job.interaction_token is not None:
            self.painter.set(job, progress)

    async def quiet(self, job_id: int) -> None:
        """No more progress for this job (or group), and no edit of it still in flight, from any process.

        Called once its progress is over in the database (terminal, being delivered, its group's post
        claimed): its last message is posted next.
        """
        self._group_seen.pop(job_id, None)
        if self.painter is not None:
            await self.painter.quiet(job_id)
        await self._fence.wait(job_id)  # nor one sent by another process

    def queue_changed(self) -> None:
        """The queue moved: recompute the places shown (throttled)."""
        self._queue_changed.set()

    # -- queued jobs -------------------------------------------------------------------------------

    def queued_progress(self, job: Job, place: int | None) -> Progress:
        """A queued job's visible state (place or paused), with a wait estimate once its latency is known."""
        median = self._latency().quantile(job.model, 0.5)
        cap = self._config.max_active_tasks
        return place_progress(job.model, place, median_seconds=median, org_cap=cap, priority=job.priority)

    async def initial_progress(self, job: Job) -> Progress:
        """What the first answer to the member shows for a just-admitted job."""
        if job.status is not JobStatus.QUEUED:
            return Progress(job.status, job.model)
        places = positions(await self._store.queue_snapshot())
        return self.queued_progress(job, places.get(job.id, len(places) + 1))

    async def initial_group_progress(self, members: Sequence[Job]) -> Progress:
        """What the first answer shows for a just-admitted group."""
        first = members[0]
        places = positions(await self._store.queue_snapshot())
        place = places.get(first.id, len(places) + 1)
        return replace(self.queued_progress(first, place), count=len(members), queued=len(members))

    async def _watch_queue(self) -> None:
        """Keep queued jobs' places up to date while the queue moves (throttled)."""
        while True:
            await self._queue_changed.wait()
            self._queue_changed.clear()
            try:
                await self._refresh_positions()
            except Exception as exc:  # the database out of reach: the next change tries again
                log.warning("Could not refresh queue places: %s", exc)
            await asyncio.sleep(QUEUE_REFRESH_SECONDS)

    async def _refresh_positions(self) -> None:
        if self.painter is None:
            return
        places = positions(await self._store.queue_snapshot())
        if not places:
            return
        jobs = {
            job.id: job
            for job in await self._store.open_jobs()
            if job.status is JobStatus.QUEUED and job.claimed_by == self._holder
        }
        for job_id, place in places.items():
            job = jobs.get(job_id)
            if job is not None and job.interaction_token is not None:
                self.painter.set(job, self.queued_progress(job, place))

    # -- groups ------------------------------------------------------------------------------------

    def member_moved(self, job: Job, status: JobStatus | None = None) -> None:
        """A group's image changed state: refresh the group's single line (when its status changed)."""
        status = status or job.status
        if job.group_id is None or self.painter is None or self._group_seen.get(job.id) is status:
            return
        self._group_seen[job.id] = status
        task = asyncio.create_task(self._paint_group(job.group_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _paint_group(self, group_id: int) -> None:
        with contextlib.suppress(Exception):  # a missed repaint is never worth a job
            group = await self._groups.get(group_id)
            if group is None or group.poster is not None or group.posted_at is not None:
                return
            members = await self._groups.members(group_id)
            if not members or group.interaction_token is None:
                return
            ready, queued = counts(members)
            first = members[0]
            if queued == len(members):  # none has started: the group's place in the queue
                places = positions(await self._store.queue_snapshot())
                progress = replace(self.queued_progress(first, places.get(first.id)), count=len(members), queued=queued)
            else:
                cancelled = sum(1 for job in members if job.status is JobStatus.CANCELLED)
                progress = Progress(
                    JobStatus.GENERATING,
                    first.model,
                    count=len(members),
                    ready=ready,
                    queued=queued,
                    cancelled=cancelled,
                )
            shown = replace(
                first,
                id=group.id,
                interaction_token=group.interaction_token,
                application_id=group.application_id,
                created_at=group.created_at,
            )
            if self.painter is not None and not self._group_posting(group_id):  # no await since the check
                self.painter.set(shown, progress)
