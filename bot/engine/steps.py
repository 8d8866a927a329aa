"""The step table: for each open state, the one step that performs its side effect and reports one outcome.

========================  ==========================================================  ======================
state                     step (its side effect)                                      outcomes (events)
========================  ==========================================================  ======================
``queued``                none: the dispatcher claims it (``claimed``)                —
``submitting``            mark "sent", then POST to BFL                               accepted, submit_refused,
                                                                                      submit_unknown,
                                                                                      not_sent; a wait (429)
``generating``            one poll                                                    finished, task_failed,
                                                                                      *_moderated, timed_out;
                                                                                      a wait (the poll plan)
``downloading``           download, check, cache                                      downloaded, task_failed
``delivering``/``cached`` post the result (a group's image: the group posts it)       delivered,
                                                                                      delivery_failed; a wait
                                                                                      (back-off)
========================  ==========================================================  ======================

A step never writes the job's state: it returns an :class:`Outcome` and the driver
(:mod:`bot.engine.drive`) applies it through the one money decision. The exception is the submit's
own fence: "the POST is about to leave" is recorded, and committed, *before* the request is sent
(:meth:`JobStore.start_sending`), and cleared when BFL provably created nothing (a 429).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.bfl.client import SubmittedTask
from bot.bfl.errors import (
    BflDownloadError,
    BflError,
    BflRateLimited,
    BflServerError,
    BflTimeout,
)
from bot.engine import outcomes
from bot.engine.breaker import is_provider_error
from bot.engine.config import MAX_CLAIMS_BEFORE_GIVING_UP, EngineConfig
from bot.engine.jobs import Job
from bot.engine.painting import Painting
from bot.engine.parts import EngineCallbacks, EngineParts, PresenterSlot
from bot.engine.progress import Progress, Result, Undeliverable
from bot.engine.states import Event, JobStatus
from bot.images.codec import InvalidImage, probe
from bot.models.video import is_mp4, is_video_model

log = logging.getLogger(__name__)

DOWNLOAD_LIMIT_BYTES = 40 * 1024 * 1024
RESUME_MIN_TIMEOUT = 30.0  # a job resumed late still gets this long to finish, whatever its deadline
PERSIST_WAIT_SECONDS = 2.0  # a poll's next time is written to the row only when it is at least this far
SUBMIT_RETRIES = 4  # 429s (or refused connections) in a row before a submit is given up


@dataclass(frozen=True)
class Outcome:
    """What one step did: an event for the money decision, or a wait (and fields to record either way)."""

    event: Event | None = None  # None: no state change; try again after ``wait``
    fields: dict[str, Any] = field(default_factory=dict)
    wait: float | None = None  # seconds until the step should run again (with or after the event)
    error: BaseException | None = None  # what ended the job: the row's error code, the member's text
    code: str | None = None  # the row's error code when there is no ``error``
    text: str | None = None  # what to tell the member instead of the text derived from ``error``
    stop: bool = False  # the job is not this process's to drive any more: stop, change nothing
    persist: bool = True  # write the wait's time to the row (False for short poll waits)
    reread: bool = False  # the step failed midway: read the row again before trying it again


Show = Callable[[Job, Progress], None]
Checkpoint = Callable[[str, int], None]


@dataclass(frozen=True)
class StepParts:
    """What the steps act on (built by :func:`bot.engine.assembly.assemble`)."""

    services: EngineParts
    config: EngineConfig
    presenter: PresenterSlot  # the Discord side a result is delivered through
    painting: Painting  # the progress shown, and none after the post
    engine: EngineCallbacks  # latencies, the last BFL error, checkpoints, the breakers' news
    group_done: Callable[[int], Awaitable[None]] = field(kw_only=True)  # a group's image is ready: post it if due


class Steps:
    """The step of each open state, and the per-process memory steps keep between runs (counters, bytes)."""

    def __init__(self, parts: StepParts) -> None:
        self.parts = parts
        self.sending: set[int] = set()  # POSTs in flight or their answer not yet recorded (a stop waits)
        self.marked_here: set[int] = set()  # jobs this process marked "about to be sent" (or tried to)
        self._posted: set[int] = set()  # jobs this process sent a POST for (until they end)
        self._not_sent: dict[int, int] = {}  # job → 429s / refused connections in a row
        self._polls: dict[int, int] = {}  # job → polls made by this process
        self._poll_failures: dict[int, int] = {}  # job → failed polls in a row
        self._first_seen: dict[int, tuple[float, float]] = {}  # job → (loop time, elapsed) at first sight
        self._submitted_here: set[int] = set()  # jobs this process submitted (their latency is BFL's)
        self._bytes: dict[int, bytes] = {}  # a result just downloaded here, for its delivery step

    def for_job(self, job: Job) -> Callable[[Job], Any] | None:
        """The step ``job``'s state calls for, or None (queued: the claim's; a group's image: the group's)."""
        if job.status is JobStatus.SUBMITTING:
            return self.submit
        if job.status is JobStatus.GENERATING:
            return self.poll
        if job.status is JobStatus.DOWNLOADING:
            return self.download
        if job.status in (JobStatus.DELIVERING, JobStatus.CACHED):
            return self.deliver if job.group_id is None else self.post_group
        return None

    def forget(self, job_id: int, *, ended: bool = True) -> None:
        """Drop what was kept about a job this process stopped driving.

        Unless it ``ended``, whether this process marked or sent its POST is kept: the reconciler decides
        from it whether a marked job's POST can have left.
        """
        for memory in (self._not_sent, self._polls, self._poll_failures, self._first_seen):
            memory.pop(job_id, None)
        self._submitted_here.discard(job_id)
        self._bytes.pop(job_id, None)
        if ended:
            self.marked_here.discard(job_id)
            self._posted.discard(job_id)

    def never_posted(self, job_id: int) -> bool:
        """Whether this process marked the job's POST as leaving and knows it never sent it."""
        return job_id in self.marked_here and job_id not in self._posted

    def _now(self) -> datetime:
        return self.parts.services.store.clock()

    # -- submitting --------------------------------------------------------------------------------

    async def submit(self, job: Job) -> Outcome:
        """Record that the POST is about to leave, send it, and report BFL's answer."""
        p = self.parts
        if job.sent:  # an earlier attempt of this process marked it and ended without an answer
            if not self.never_posted(job.id):
                return Outcome(Event.SUBMIT_UNKNOWN, code="submit_interrupted")
            # Its POST never left (the mark's write failed after committing, an error before the POST):
            # this process knows it, so the mark is cleared and the job sent now, nothing charged twice.
            if not await p.services.store.not_sent(job.id, p.services.identity, retry_at=self._now()):
                return Outcome(stop=True)
        if job.attempts > MAX_CLAIMS_BEFORE_GIVING_UP:
            return Outcome(Event.NOT_SENT, code="not_sent")
        p.painting.show(job, Progress(JobStatus.SUBMITTING, job.model))
        self.sending.add(job.id)  # from the mark until the answer is recorded (the driver clears it): a stop waits
        self.marked_here.add(job.id)  # before the write: it may commit and still raise
        if await p.services.store.start_sending(job.id, p.services.identity) is None:
            log.warning("Job %s: this process no longer holds it (lease lost?); not submitting", job.id)
            return Outcome(stop=True)
        p.engine.point("submit_marked", job.id)
        try:
            user = p.services.provider.end_users.of(job.guild_id, job.user_id)  # a keyed hash, never the Discord id
            log.info("Job %s: sending to BFL (claim %d)", job.id, job.attempts)
            self._posted.add(job.id)
            task = await p.services.provider.bfl.submit(job.model, job.params, user=user, retries=0)
        except (BflRateLimited, BflServerError) as exc:  # from a submit, both prove BFL created nothing
            return await self._not_created(job, exc)
        except BflError as exc:
            p.engine.note_bfl_error(exc)
            self._verdict(job.model, exc)
            return Outcome(outcomes.submit_event(exc), error=exc)
        p.engine.point("after_submit", job.id)
        self._not_sent.pop(job.id, None)
        self._submitted_here.add(job.id)
        fields = {
            "bfl_task_id": task.id,
            "polling_url": task.polling_url,
            "cost_micros": task.cost_micros,
            "submitted_at": self._now(),
        }
        return Outcome(Event.ACCEPTED, fields, wait=p.engine.latency.plan(job.model).delay(0.0, 0), persist=False)

    async def _not_created(self, job: Job, exc: BflError) -> Outcome:
        """A 429 or a refused connection: nothing exists at BFL. Clear the mark and try again later."""
        p = self.parts
        self._posted.discard(job.id)  # BFL answered that nothing was created: as if never sent
        tries = self._not_sent[job.id] = self._not_sent.get(job.id, 0) + 1
        if tries > SUBMIT_RETRIES:
            p.engine.note_bfl_error(exc)
            self._verdict(job.model, exc)
            return Outcome(Event.SUBMIT_REFUSED, error=exc)
        retry_after = exc.retry_after if isinstance(exc, BflRateLimited) else None
        delay = p.services.provider.bfl.poll_backoff(tries, retry_after)
        if not await p.services.store.not_sent(
            job.id, p.services.identity, retry_at=self._now() + timedelta(seconds=delay)
        ):
            return Outcome(stop=True)
        log.info("Job %s: BFL created nothing (%s); trying again in %.1f s", job.id, type(exc).__name__, delay)
        p.engine.point("not_sent", job.id)
        return Outcome(wait=delay, persist=False)  # not_sent recorded the timer already

    # -- generating --------------------------------------------------------------------------------

    async def poll(self, job: Job) -> Outcome:
        """Poll the task once: finished (the slot frees at once), failed, or when to look again."""
        p = self.parts
        now = self._now()
        since, deadline = self._elapsed(job, now)
        if since >= deadline:
            exc = BflTimeout(f"task not finished after {since:.0f}s", task_id=job.bfl_task_id)
            return Outcome(Event.TIMED_OUT, error=exc)
        task = SubmittedTask(job.bfl_task_id or "", job.polling_url or "", None)
        failures = self._poll_failures.get(job.id, 0)
        try:
            reading = await p.services.provider.bfl.poll(task, since_submit=since, failures=failures)
        except BflError as exc:
            p.engine.note_bfl_error(exc)
            self._verdict(job.model, exc)
            return Outcome(outcomes.task_event(exc), error=exc)
        polls = self._polls[job.id] = self._polls.get(job.id, 0) + 1
        if reading.failed:
            self._poll_failures[job.id] = failures + 1
            wait = min(
                p.services.provider.bfl.poll_backoff(failures + 1, reading.retry_after), max(0.0, deadline - since)
            )
            return Outcome(wait=wait, persist=wait >= PERSIST_WAIT_SECONDS)
        self._poll_failures.pop(job.id, None)
        if reading.result is None:
            p.painting.show(
                job, Progress(JobStatus.GENERATING, job.model, bfl_stage=reading.status, elapsed_seconds=since)
            )
            wait = min(p.engine.latency.plan(job.model).delay(since, polls), max(0.0, deadline - since))
            fields: dict[str, Any] = {"bfl_stage": reading.status} if reading.status != job.bfl_stage else {}
            return Outcome(fields=fields, wait=wait, persist=bool(fields) or wait >= PERSIST_WAIT_SECONDS)
        p.services.provider.breakers.succeeded(job.model)
        p.engine.breakers_changed()
        if job.id in self._submitted_here:  # a resumed job would record downtime, not BFL's latency
            p.engine.record_latency(job.model, since)
        result = reading.result
        fields = {"ready_at": now, "sample_url": result.sample_url, "bfl_stage": reading.status}
        if result.cost_micros is not None:
            fields["cost_micros"] = result.cost_micros  # the Ready poll's cost wins over the submit's
        if result.expanded_prompt:
            fields["expanded_prompt"] = str(result.expanded_prompt)[:20_000]
        return Outcome(Event.FINISHED, fields)

    def _elapsed(self, job: Job, now: datetime) -> tuple[float, float]:
        """Seconds since BFL accepted the task, and the deadline on the same scale.

        The first time this process sees the task it reads the elapsed time from the row (the
        database's clock); from then on it counts with the event loop's monotonic clock, so a jump of
        the wall clock never ends a task early. A task resumed late still gets RESUME_MIN_TIMEOUT.
        """
        loop_now = asyncio.get_running_loop().time()
        at_first_sight = max(0.0, (now - (job.submitted_at or now)).total_seconds())
        seen_at, seen_elapsed = self._first_seen.setdefault(job.id, (loop_now, at_first_sight))
        since = seen_elapsed + (loop_now - seen_at)
        return since, max(self.parts.config.job_timeout_seconds, seen_elapsed + RESUME_MIN_TIMEOUT)

    # -- downloading -------------------------------------------------------------------------------

    async def download(self, job: Job) -> Outcome:
        """Fetch, check and cache the result (no money moves until it is posted)."""
        p = self.parts
        p.painting.show(job, Progress(JobStatus.DOWNLOADING, job.model, elapsed_seconds=job.generation_seconds))
        try:
            if not job.sample_url:
                raise BflDownloadError("the task has no result URL", task_id=job.bfl_task_id)
            data = await p.services.provider.bfl.download(job.sample_url, max_bytes=DOWNLOAD_LIMIT_BYTES)
            video = is_video_model(job.model)
            if video and not is_mp4(data):  # a video is kept as BFL made it: never decoded or re-encoded
                raise BflDownloadError("the result is not an MP4 video", task_id=job.bfl_task_id)
            if not video:
                try:
                    await asyncio.to_thread(probe, data)  # the header only: no full decode here
                except InvalidImage as exc:
                    msg = f"the result is not a usable image: {exc}"
                    raise BflDownloadError(msg, task_id=job.bfl_task_id) from exc
        except BflError as exc:
            p.engine.note_bfl_error(exc)
            return Outcome(Event.TASK_FAILED, error=exc)
        p.engine.point("after_download", job.id)
        if not video:  # videos are not cached (never repeated: no seed; too large): bot/models/video.py
            metadata = {"model": job.model, "cost_micros": job.settled_cost_micros, "job_id": job.id}
            await p.services.provider.cache.put(job.cache_key, data, metadata=metadata)
        self._bytes[job.id] = data
        return Outcome(Event.DOWNLOADED)

    # -- delivering --------------------------------------------------------------------------------

    async def deliver(self, job: Job) -> Outcome:
        """Post the result (settled once posted); retried with back-off, refunded if it never can be."""
        p, presenter = self.parts, self.parts.presenter.current
        if presenter is None:
            return Outcome(stop=True)  # no Discord in this process (a bare worker): another process posts it
        data = self._bytes.pop(job.id, None) or await self._result_bytes(job)
        if data is None:
            return Outcome(Event.DELIVERY_FAILED, code="lost", text=outcomes.LOST_TEXT)
        made = job.ready_at or job.created_at
        if (self._now() - made).total_seconds() > p.config.undeliverable_after_seconds:
            return Outcome(Event.DELIVERY_FAILED, code="undeliverable")
        if not await p.services.store.holds(job.id, p.services.identity, job.status):
            return Outcome(stop=True)  # the fence before the post: another process has it now
        await p.painting.quiet(job.id)
        cached = job.status is JobStatus.CACHED
        result = Result(job, data, 0 if cached else job.settled_cost_micros, job.generation_seconds, cached)
        try:
            posted = await presenter.deliver(result)
        except Undeliverable as exc:
            log.warning("Job %s: the result cannot be shown anywhere: %s", job.id, exc)
            return Outcome(Event.DELIVERY_FAILED, code="undeliverable", text=str(exc) or None)
        except Exception as exc:  # Discord refused or is out of reach: keep the image, try again later
            tries = job.delivery_attempts + 1
            wait = p.config.delivery_backoff(tries)
            log.warning("Job %s: could not post the image (%s); try %d again in %.0f s", job.id, exc, tries, wait)
            self._bytes[job.id] = data
            return Outcome(fields={"delivery_attempts": tries}, wait=wait)
        p.engine.point("after_post", job.id)
        fields = {
            "result_channel_id": posted.channel_id,
            "result_message_id": posted.message_id,
            "result_file": posted.result_file,  # BFL's original (provenance kept) or a re-encoded copy, and why
        }
        return Outcome(Event.DELIVERED, fields)

    async def post_group(self, job: Job) -> Outcome:
        """A group's image is made: the group is posted once all its images are (by whichever process wins it).

        The post settles each image (or refunds it); this image's drive ends here either way, and the
        reconciler drives it again while the group is not posted (e.g. Discord refused the post).
        """
        if job.group_id is not None:
            await self.parts.group_done(job.group_id)
        return Outcome(stop=True)

    async def _result_bytes(self, job: Job) -> bytes | None:
        """The result from the cache, else from BFL's URL while it lives."""
        p = self.parts
        entry = await p.services.provider.cache.get_entry(job.cache_key)
        if entry is not None:
            return entry.data
        if job.sample_url and job.status is JobStatus.DELIVERING:
            try:
                return await p.services.provider.bfl.download(job.sample_url, max_bytes=DOWNLOAD_LIMIT_BYTES)
            except BflError:
                return None
        return None

    def _verdict(self, model: str, exc: BflError) -> None:
        """Feed the model's circuit breaker: provider trouble counts; any proper answer closes it."""
        if is_provider_error(exc):
            self.parts.services.provider.breakers.failed(model)
        else:
            self.parts.services.provider.breakers.succeeded(model)  # a refusal or moderation: BFL is up and answering
        self.parts.engine.breakers_changed()
