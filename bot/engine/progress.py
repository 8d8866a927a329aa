"""What the member sees while a job runs, and the painter that shows it without ever blocking a job.

The engine only *sets* a job's :class:`Progress` (a synchronous dict write). A single painter task
edits Discord messages from those values: only when the rendered text changes, at most once every
``min_interval`` seconds per job, never once the interaction token is about to expire, and never two
edits of one message at a time. A slow or failing Discord therefore cannot hold a BFL slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from bot.aio import wait_event
from bot.clock import Clock, utc_now
from bot.engine.paint_fence import EDIT_TIMEOUT_SECONDS, PaintFence
from bot.engine.states import JobStatus
from bot.engine.store import Job

if TYPE_CHECKING:
    from bot.engine.groups import GroupResult

log = logging.getLogger(__name__)

TOKEN_LIFETIME = timedelta(minutes=15)
EDIT_CUTOFF = timedelta(minutes=14)  # stop editing a little before Discord invalidates the token
CLOSED_KEPT = 10_000  # ended jobs remembered so a late progress update for one is ignored


@dataclass(frozen=True)
class Progress:
    """A job's visible state: its place in the queue, or the stage it is at."""

    status: JobStatus
    model: str
    position: int | None = None  # 1-based place in the queue, across the bot
    eta_seconds: float | None = None  # estimated wait, from measured latency
    bfl_stage: str | None = None  # what BFL reports: Pending, Reasoning, Generating, …
    elapsed_seconds: float = 0.0  # since BFL accepted the task
    count: int = 1  # a group (/imagine count:N): how many images in all
    ready: int = 0  # a group: how many of them are ready
    queued: int = 0  # a group: how many still wait in the queue (Cancel cancels those)
    cancelled: int = 0  # a group: how many were cancelled (the rest is still posted together)
    paused: bool = False  # queued in a server whose moderators paused generation: it waits for /budget resume
    priority: bool = False  # queued in its server's priority lane (`/budget priority`): shown as "⚡ priority"

    @property
    def cancellable(self) -> bool:
        """A job can be cancelled until it is handed to BFL; a group while any of its images still waits."""
        return self.status is JobStatus.QUEUED or self.queued > 0


class Undeliverable(Exception):
    """The result cannot be shown to the member anywhere, so retrying is pointless.

    E.g. a private result whose interaction expired, sent by DM to a member whose DMs are closed.
    """


@dataclass(frozen=True)
class Result:
    """A finished image, ready to post."""

    job: Job
    data: bytes
    cost_micros: int
    elapsed_seconds: float
    from_cache: bool


ORIGINAL_FILE = "original"
REENCODED_PREFIX = "reencoded: "


@dataclass(frozen=True)
class Posted:
    """Where a result was posted, and whether the posted file is BFL's original (recorded on the job)."""

    channel_id: int
    message_id: int
    reencoded: str | None = None  # why the posted file is a re-encoded copy (its provenance lost); None: the original

    @property
    def result_file(self) -> str:
        """What ``jobs.result_file`` records: ``original``, or ``reencoded: <why>``."""
        return result_file(self.reencoded)


@dataclass(frozen=True)
class GroupPosted:
    """Where a group's message was posted; per member job, why its file was re-encoded (None: the original)."""

    channel_id: int
    message_id: int
    reencoded: dict[int, str | None] = field(default_factory=dict)

    def result_files(self) -> dict[int, str]:
        """``jobs.result_file`` of each member job shown in the message."""
        return {job_id: result_file(why) for job_id, why in self.reencoded.items()}


def result_file(reencoded: str | None) -> str:
    """``original``, or ``reencoded: <why>`` (``jobs.result_file``)."""
    return ORIGINAL_FILE if reencoded is None else REENCODED_PREFIX + reencoded


def reencoded_reason(recorded: str | None) -> str | None:
    """Why a recorded result file is a re-encoded copy; None for the original (or nothing recorded)."""
    if recorded is None or not recorded.startswith(REENCODED_PREFIX):
        return None
    return recorded[len(REENCODED_PREFIX) :]


class Presenter(Protocol):
    """The Discord side of a job, implemented by the cogs (the core never builds Discord markup)."""

    def progress_text(self, progress: Progress) -> str:
        """The message text for ``progress`` (pure; the painter compares it to what is shown)."""

    async def show_progress(self, job: Job, progress: Progress, text: str) -> None:
        """Edit the job's message to ``text`` (with a Cancel button while it is cancellable)."""

    async def deliver(self, result: Result) -> Posted:
        """Post the image (BFL's original bytes unless they do not fit the upload limit); where, and how.

        Posting the same result again shows the same message; raise :class:`Undeliverable` if it never can be.
        """

    async def notify(self, job: Job, text: str) -> None:
        """Tell the member how the job ended when there is no image (failed, cancelled, unknown)."""

    async def deliver_group(self, result: GroupResult) -> GroupPosted:
        """Post a finished group's images in ONE message (or say that none made it); where, and each file."""


def token_usable(job: Job, now: datetime, margin: timedelta = TOKEN_LIFETIME - EDIT_CUTOFF) -> bool:
    """True while the job's interaction token can still edit its message."""
    return job.interaction_token is not None and now < job.created_at + TOKEN_LIFETIME - margin


# How long the last word waits for a progress edit in flight: discord.py retries an edit Discord refused
# (5xx, a dropped connection) up to five times, 1 to 9 s apart, and waits out a 429's Retry-After, so
# one edit can take tens of seconds; the last word must come after it, or the stale edit wins.
QUIET_TIMEOUT = 60.0


class ProgressPainter:
    """Edits job messages from the latest :class:`Progress`, throttled per job."""

    def __init__(
        self,
        presenter: Presenter,
        *,
        min_interval: float = 3.0,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] | None = None,
        fence: PaintFence | None = None,
    ) -> None:
        self._presenter = presenter
        self._fence = fence  # between processes: no edit lands after the job's last message (paint_fence)
        self._min_interval = min_interval
        self._clock = clock
        self._monotonic = monotonic
        self._latest: dict[int, tuple[Job, Progress]] = {}
        self._closed: dict[int, None] = {}  # jobs whose last message is shown: never painted again (bounded)
        self._shown: dict[int, str] = {}
        self._last_edit: dict[int, float] = {}
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self.edits = 0  # for tests and metrics

    def _now(self) -> float:
        return (self._monotonic or asyncio.get_running_loop().time)()

    def shown(self, job_id: int, text: str) -> None:
        """Record text the member already sees (the first answer), so it is not sent again."""
        self._shown[job_id] = text
        self._last_edit[job_id] = self._now()

    def set(self, job: Job, progress: Progress) -> None:
        """The job's newest visible state (never blocks, never awaits Discord); ignored once it ended."""
        if job.id in self._closed:
            return  # e.g. a queue place computed from a snapshot read before its Cancel
        self._latest[job.id] = (job, progress)
        self._wake.set()

    def drop(self, job_id: int) -> None:
        """The job is over: no more progress edits for it (an edit in flight finishes on its own)."""
        self._latest.pop(job_id, None)
        self._shown.pop(job_id, None)
        self._last_edit.pop(job_id, None)

    async def quiet(self, job_id: int, timeout: float = QUIET_TIMEOUT) -> None:  # noqa: ASYNC109
        """Stop painting ``job_id`` and let an edit in flight land first: the result (or the end) comes next.

        Without this, a progress edit sent just before the result could land after it and put a stale
        progress text over the image (or over a Cancel's answer).
        """
        self.drop(job_id)
        self._closed[job_id] = None
        while len(self._closed) > CLOSED_KEPT:
            del self._closed[next(iter(self._closed))]
        task = self._in_flight.get(job_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)

    async def run(self) -> None:
        """Paint until cancelled."""
        while True:
            wait = self._paint_due()
            self._wake.clear()
            await wait_event(self._wake, wait)

    async def close(self) -> None:
        """Wait briefly for edits in flight, then drop them."""
        tasks = list(self._in_flight.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=2.0)
            for task in pending:
                task.cancel()

    def _paint_due(self) -> float | None:
        """Start every edit that is due; return how long until the next one may be (None: nothing to do)."""
        now = self._now()
        wall = self._clock()
        next_due: float | None = None
        for job_id, (job, progress) in list(self._latest.items()):
            if not token_usable(job, wall):
                self.drop(job_id)
                continue
            text = self._presenter.progress_text(progress)
            if text == self._shown.get(job_id) or job_id in self._in_flight:
                continue
            due = self._last_edit.get(job_id, -1e9) + self._min_interval
            if due > now:
                next_due = due - now if next_due is None else min(next_due, due - now)
                continue
            self._shown[job_id] = text
            self._last_edit[job_id] = now
            task = asyncio.create_task(self._edit(job, progress, text), name=f"fluxcord-progress-{job_id}")
            self._in_flight[job_id] = task
        return next_due

    async def _edit(self, job: Job, progress: Progress, text: str) -> None:
        stamp = None
        try:
            if self._fence is not None:
                stamp = await self._fence.enter(job)
                if stamp is None:  # its last message is being posted (maybe by another process)
                    self.drop(job.id)
                    return
            async with asyncio.timeout(EDIT_TIMEOUT_SECONDS):  # within the stamp's life
                await self._presenter.show_progress(job, progress, text)
            self.edits += 1
        except Exception as exc:
            # A failed edit (rate limit, deleted message) never affects the job itself.
            log.debug("Progress edit for job %s failed: %s", job.id, exc)
        finally:
            if stamp is not None and self._fence is not None:
                await _leave(self._fence, job, stamp)
            self._in_flight.pop(job.id, None)
            self._wake.set()  # a newer text may be waiting for this edit to finish


async def _leave(fence: PaintFence, job: Job, stamp: int) -> None:
    """Clear a progress edit's paint stamp (best effort: it lapses by itself)."""
    try:
        await fence.leave(job, stamp)
    except Exception as exc:
        log.debug("Job %s: could not clear its paint stamp: %s", job.id, exc)
