"""The job engine: admits jobs, hands out BFL slots fairly, runs each job to the end, survives restarts.

A job's whole life is in its row (:mod:`bot.engine.store`); this module only moves it along:

1. :meth:`JobEngine.admit` writes the job and its reservation in one transaction (or refuses with no
   side effect). The cog then acknowledges the interaction and calls :meth:`JobEngine.acknowledged`;
   if that fails, :meth:`JobEngine.abandon` releases the money at once.
2. The dispatcher claims queued jobs one atomic statement at a time while a slot is free
   (:meth:`bot.engine.store.JobStore.claim`), and starts a task per claimed job.
3. That task submits (never resending a submit that may have created a task), polls with a plan
   learned from the model's recent latencies, frees the slot the moment BFL reports a terminal
   status, downloads, checks and caches the image, settles, and hands it to the presenter.
4. Every event goes through :meth:`JobStore.apply`, i.e. through the one money decision.
5. :meth:`JobEngine.start` resumes whatever a previous run left open; :meth:`JobEngine.stop` stops
   admitting and leaves every job in a state the next start resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from bot.bfl.client import BflClient, SubmittedTask, TaskResult
from bot.bfl.errors import BflDownloadError, BflError
from bot.bfl.polling import LatencyModel
from bot.billing.ledger import BUSY_TEXT, Ledger, Limit
from bot.billing.limits import LimitsService
from bot.billing.money import format_usd
from bot.clock import Clock, to_millis, utc_now
from bot.config import Settings
from bot.engine import outcomes
from bot.engine.breaker import BreakerState, CircuitBreakers, is_provider_error
from bot.engine.fairness import positions
from bot.engine.group_delivery import GroupDelivery
from bot.engine.groups import GroupStore, NewGroup, counts
from bot.engine.leases import ProcessIdentity
from bot.engine.observer import JobObserver, NullObserver
from bot.engine.progress import Presenter, Progress, ProgressPainter, Result
from bot.engine.states import Event, JobStatus
from bot.engine.store import KONTEXT_MAX_MODEL, AdmissionRefused, Applied, Job, JobStore, NewJob
from bot.errors import FluxcordError, GenerationPaused, LimitReached
from bot.images.cache import ImageCache
from bot.images.codec import InvalidImage, probe
from bot.log import bind_log_fields
from bot.models import GenerationRequest, ModelSpec
from bot.safety.privacy import server_cache_key
from bot.safety.service import SafetyService

log = logging.getLogger(__name__)

T = TypeVar("T")

DOWNLOAD_LIMIT_BYTES = 40 * 1024 * 1024
KONTEXT_MAX_ACTIVE_TASKS = 6
RESUME_MIN_TIMEOUT = 30.0  # a resumed job gets at least this long to finish, whatever its deadline
QUEUE_REFRESH_SECONDS = 1.0  # how often queue positions are recomputed while the queue moves
DISPATCH_RETRY_SECONDS = 0.5
DISPATCH_POLL_SECONDS = 1.0  # with other processes on the database, also look for work this often

Checkpoint = Callable[[str, int], None]
Notice = Callable[[int, str], Coroutine[Any, Any, object]]  # (guild id, text) → a mod-log post


class ProviderTrouble(FluxcordError):
    """The model's circuit breaker is open: BFL kept failing for it, so nothing is queued into it."""

    def __init__(self, label: str, retry_in: float) -> None:
        wait = f"about {max(10, round(retry_in / 10) * 10):.0f} s" if retry_in > 0 else "a moment"
        super().__init__(
            f"{label} is having trouble right now (the image provider keeps failing). Nothing was charged;"
            f" please try again in {wait}, or choose another model."
        )


class Restarting(FluxcordError):
    """The bot is shutting down: new work is refused until it is back."""

    def __init__(self) -> None:
        super().__init__("The bot is restarting. Please try again in a minute.")


@dataclass(frozen=True)
class Requester:
    """Who asked, where, and the interaction that identifies the job."""

    job_id: int
    guild_id: int
    channel_id: int
    user_id: int
    role_ids: tuple[int, ...] = ()
    application_id: int | None = None
    interaction_token: str | None = None
    upload_limit: int = 10 * 1024 * 1024
    private: bool = False  # answer and result visible only to the member (ephemeral)
    age_restricted: bool = False  # the channel is age-restricted (the `relaxed` safety level applies only there)


@dataclass(frozen=True)
class CancelResult:
    """What a click on Cancel did."""

    cancelled: bool
    reason: str  # "cancelled", "not_allowed", "too_late", "unknown"
    count: int = 1  # a group: how many of its queued images were cancelled
    left: int = 0  # a group: how many of its images are still being made


class JobEngine:
    """Runs image jobs against BFL with the money under control."""

    def __init__(
        self,
        *,
        store: JobStore,
        ledger: Ledger,
        limits: LimitsService,
        bfl: BflClient,
        cache: ImageCache,
        settings: Settings,
        clock: Clock = utc_now,
        presenter: Presenter | None = None,
        on_admitted: Callable[[int], Coroutine[Any, Any, object]] | None = None,
        notice: Notice | None = None,
        checkpoint: Checkpoint | None = None,
        progress_interval: float = 3.0,
        observer: JobObserver | None = None,
        breakers: CircuitBreakers | None = None,
        safety: SafetyService | None = None,
        identity: ProcessIdentity | None = None,
        groups: GroupStore | None = None,
    ) -> None:
        self.store = store
        self.groups = groups or GroupStore(store.db, ledger, clock)
        self._ledger = ledger
        self._limits = limits
        self._bfl = bfl
        self._cache = cache
        self._settings = settings
        self._clock = clock
        self._presenter = presenter
        self._on_admitted = on_admitted
        self._notice = notice
        self._checkpoint = checkpoint
        self._progress_interval = progress_interval
        self._observer: JobObserver = observer or NullObserver()
        self._safety = safety
        self.latency = LatencyModel()
        self.breakers = breakers or CircuitBreakers()
        self.painter: ProgressPainter | None = None
        self.accepting = False
        self._wake = asyncio.Event()
        self._queue_changed = asyncio.Event()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._submitting: set[int] = set()
        self._submits_idle = asyncio.Event()
        self._submits_idle.set()
        self._background: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.last_error: str | None = None
        self.identity = identity or ProcessIdentity()  # this process, as recorded on the jobs it holds
        self._lease_seconds = float(settings.job_lease_seconds)
        self._shared = self.identity.role == "worker"  # other processes use the database: poll for work too
        self.delivery = GroupDelivery(  # a finished group is posted once, by one process
            store=store,
            groups=self.groups,
            cache=cache,
            bfl=bfl,
            identity=self.identity,
            policy=settings.refund_policy,
            observe=self._observe,
            forget_progress=self._forget_progress,
            checkpoint=self._point,
            download_limit=DOWNLOAD_LIMIT_BYTES,
        )
        self.delivery.presenter = presenter
        self._group_seen: dict[int, JobStatus] = {}  # a group member's last status shown in its group's line

    # -- wiring ------------------------------------------------------------------------------------

    def attach(self, presenter: Presenter) -> None:
        """Set the Discord side (the bot exists after the engine)."""
        self._presenter = presenter
        self.delivery.presenter = presenter

    @property
    def running_jobs(self) -> int:
        """Jobs this process is working on right now."""
        return len(self._tasks)

    @property
    def cache(self) -> ImageCache:
        """The image cache (the Delete button removes a result's bytes from it)."""
        return self._cache

    # -- admission ---------------------------------------------------------------------------------

    async def admit(self, request: GenerationRequest, who: Requester, *, acked: bool = False) -> Job:
        """Reserve and queue ``request`` (or take it from the cache), or raise a member-facing refusal.

        Raises :class:`Restarting`, :class:`GenerationPaused` or :class:`LimitReached`; nothing is
        written then. With ``acked=False`` the job waits for :meth:`acknowledged` before it can run.
        """
        try:
            return await self._admit(request, who, acked=acked)
        except FluxcordError as exc:
            self._refused(exc)
            raise

    def _refused(self, exc: FluxcordError) -> None:
        if isinstance(exc, ProviderTrouble):
            reason = "provider"
        elif isinstance(exc, Restarting | GenerationPaused):
            reason = "restarting" if isinstance(exc, Restarting) else "paused"
        else:
            reason = "busy" if exc.user_message == BUSY_TEXT else "limit"
        self._observer.refused(reason)

    async def _gate(self, request: GenerationRequest, who: Requester) -> GenerationRequest:
        """The refusals before any reservation (restarting, paused, the server's safety rules); the screened request."""
        if not self.accepting:
            raise Restarting
        if (await self._limits.guild_settings(who.guild_id)).paused:
            raise GenerationPaused  # also stops free cache hits; the reservation re-checks it atomically
        if self._safety is None:
            return request
        # The server's rules; a refusal writes nothing (a mod-log note at most).
        return await self._safety.screen(
            request,
            guild_id=who.guild_id,
            channel_id=who.channel_id,
            user_id=who.user_id,
            age_restricted=who.age_restricted,
        )

    async def _admit(self, request: GenerationRequest, who: Requester, *, acked: bool) -> Job:
        request = await self._gate(request, who)
        cache_key = server_cache_key(who.guild_id, request.cache_key())  # a hit only serves this server's images
        cached = await self._cache.contains(cache_key)
        # A cache hit needs no BFL, so an open breaker does not refuse it.
        trial = False if cached else await self._pass_breaker(request.model)
        try:
            return await self._reserve_and_queue(request, who, cache_key=cache_key, cached=cached, acked=acked)
        except BaseException:
            if trial:
                self.breakers.released(request.model.key)  # the trial never reached BFL: it tells nothing
            raise

    async def _pass_breaker(self, model: ModelSpec) -> bool:
        """Refuse at once (:class:`ProviderTrouble`) while BFL keeps failing for ``model``.

        Reads the failures other processes shared first. True when this request is the half-open
        breaker's trial (its caller frees the trial if the request never reaches BFL).
        """
        await self.share_breakers()  # cached: usually no I/O
        if not self.breakers.allow(model.key):
            self._observer.breaker_refused(model.key)
            raise ProviderTrouble(model.label, self.breakers.retry_in(model.key))
        return self.breakers.state(model.key) is not BreakerState.CLOSED

    async def _reserve_and_queue(
        self, request: GenerationRequest, who: Requester, *, cache_key: str, cached: bool, acked: bool
    ) -> Job:
        new = _new_job(request, who, cache_key)
        job = await self._reserve(
            who,
            estimated_micros=0 if cached else new.estimated_micros,
            write=lambda limits: self.store.admit(
                new,
                limits=limits,
                max_pending_jobs=self._settings.member_max_pending_jobs,
                cooldown_seconds=self._settings.member_cooldown_seconds,
                cached=cached,
                acked=acked,
                holder=self.identity.id,
            ),
        )
        if acked:
            self._after_ack(job)
        return job

    async def _reserve(
        self,
        who: Requester,
        *,
        estimated_micros: int,
        write: Callable[[list[Limit]], Awaitable[T]],
        images: int = 1,
    ) -> T:
        """Run ``write`` (one admission transaction under the member's limits), explaining a refusal.

        A refusal that no limit explains on a second look (a concurrent job ended in between) is tried
        again, up to three times in all.
        """
        limits = await self._limits.limits_for(who.guild_id, who.user_id, who.role_ids)
        for _attempt in range(3):
            now = self._clock()
            try:
                admitted = await write(limits)
            except AdmissionRefused:
                await self._ledger.explain_refusal(
                    guild_id=who.guild_id,
                    user_id=who.user_id,
                    estimated_micros=estimated_micros,
                    limits=limits,
                    max_pending_jobs=self._settings.member_max_pending_jobs,
                    cooldown_seconds=self._settings.member_cooldown_seconds,
                    now=now,
                    images=images,
                )
                continue
            self._point("after_reserve", who.job_id)
            if self._on_admitted is not None:
                self._spawn(self._on_admitted(who.guild_id))  # spend alerts: never on the request's path
            return admitted
        raise LimitReached(BUSY_TEXT)

    async def acknowledged(self, job_id: int) -> None:
        """The member saw the acknowledgement: the job may run now."""
        job = await self.store.acknowledge(job_id)
        if job is not None:  # None: unknown, already acknowledged, or no longer waiting for it
            self._after_ack(job)

    def _after_ack(self, job: Job) -> None:
        if job.status is JobStatus.CACHED:
            self._start(job, self._deliver_cached(job))
        else:
            self._queue_changed.set()
            self.wake()

    async def abandon(self, job_id: int) -> None:
        """The acknowledgement failed: cancel the job and release its money at once."""
        applied = await self.store.apply(job_id, Event.ACK_FAILED, self._settings.refund_policy)
        self._observe(applied)
        if applied is not None:
            self.breakers.released(applied.job.model)  # if it was the half-open trial, free it
            log.warning("Job %s: acknowledgement failed; cancelled and released", job_id)

    async def cancel(self, job_id: int, *, actor_id: int, is_moderator: bool) -> CancelResult:
        """Cancel a queued job for its requester or a moderator; its money is released at once."""
        job = await self.store.get(job_id)
        if job is None:
            return CancelResult(False, "unknown")
        if actor_id != job.user_id and not is_moderator:
            return CancelResult(False, "not_allowed")
        applied = await self.store.apply(
            job_id, Event.CANCELLED, self._settings.refund_policy, expected=JobStatus.QUEUED, note=f"by {actor_id}"
        )
        if applied is None:
            return CancelResult(False, "too_late")
        self._observe(applied)
        log.info("Job %s cancelled by %s", job_id, actor_id)
        self.breakers.released(job.model)  # if it was the half-open trial, free it for the next request
        self._forget_progress(job_id)
        self._queue_changed.set()
        if job.group_id is not None:
            await self.delivery.member_done(job.group_id)
        return CancelResult(True, "cancelled")

    # -- groups: /imagine count:N and draft (bot.engine.groups) ------------------------------------

    async def admit_group(
        self,
        requests: Sequence[GenerationRequest],
        who: Requester,
        *,
        draft: bool = False,
        final_model: str | None = None,
        final_options: dict[str, Any] | None = None,
    ) -> list[Job]:
        """Reserve and queue N images of one prompt all-or-nothing (``who.job_id`` is the group's id).

        The same refusals as :meth:`admit`, with nothing written; the members wait for
        :meth:`acknowledged_group`. No cache lookup: every member is a new image.
        """
        try:
            return await self._admit_group(
                list(requests), who, draft=draft, final_model=final_model, final_options=final_options
            )
        except FluxcordError as exc:
            self._refused(exc)
            raise

    async def _admit_group(
        self,
        requests: list[GenerationRequest],
        who: Requester,
        *,
        draft: bool,
        final_model: str | None,
        final_options: dict[str, Any] | None,
    ) -> list[Job]:
        screened = await self._gate(requests[0], who)  # one prompt, one screening; each member gets its settings
        requests = [replace(r, safety_tolerance=screened.safety_tolerance) for r in requests]
        model = requests[0].model
        trial = await self._pass_breaker(model)
        group = NewGroup(
            id=who.job_id,
            guild_id=who.guild_id,
            channel_id=who.channel_id,
            user_id=who.user_id,
            size=len(requests),
            draft=draft,
            final_model=final_model,
            final_options=final_options,
            application_id=who.application_id,
            interaction_token=who.interaction_token,
            private=who.private,
        )
        jobs = [_new_job(r, who, server_cache_key(who.guild_id, r.cache_key())) for r in requests]
        try:
            return await self._reserve(
                who,
                estimated_micros=sum(job.estimated_micros for job in jobs),
                images=len(jobs),
                write=lambda limits: self.groups.admit(
                    group,
                    jobs,
                    limits=limits,
                    max_pending_jobs=self._settings.member_max_pending_jobs,
                    cooldown_seconds=self._settings.member_cooldown_seconds,
                    holder=self.identity.id,
                ),
            )
        except BaseException:
            if trial:
                self.breakers.released(model.key)
            raise

    async def acknowledged_group(self, group_id: int) -> None:
        """The member saw the group's acknowledgement: its images may run now."""
        if await self.groups.acknowledge(group_id):
            self._queue_changed.set()
            self.wake()

    async def abandon_group(self, group_id: int) -> None:
        """The group's acknowledgement failed: cancel its images and release their money at once."""
        for job in await self.groups.members(group_id):
            applied = await self.store.apply(
                job.id, Event.ACK_FAILED, self._settings.refund_policy, expected=JobStatus.QUEUED
            )
            self._observe(applied)
        log.warning("Group %s: acknowledgement failed; cancelled and released", group_id)
        await self.delivery.member_done(group_id)

    async def cancel_group(self, group_id: int, *, actor_id: int, is_moderator: bool) -> CancelResult:
        """Cancel a group's still-queued images (its requester or a moderator); their money is released."""
        group = await self.groups.get(group_id)
        if group is None:
            return CancelResult(False, "unknown")
        if actor_id != group.user_id and not is_moderator:
            return CancelResult(False, "not_allowed")
        cancelled = 0
        for job in await self.groups.members(group_id):
            if job.status is not JobStatus.QUEUED:
                continue
            applied = await self.store.apply(
                job.id, Event.CANCELLED, self._settings.refund_policy, expected=JobStatus.QUEUED, note=f"by {actor_id}"
            )
            if applied is not None:
                cancelled += 1
                self._observe(applied)
                self.breakers.released(job.model)
        if not cancelled:
            return CancelResult(False, "too_late")
        log.info("Group %s: %d queued images cancelled by %s", group_id, cancelled, actor_id)
        self._queue_changed.set()
        left = sum(1 for job in await self.groups.members(group_id) if job.status.is_open)
        await self.delivery.member_done(group_id)
        return CancelResult(True, "cancelled", count=cancelled, left=left)

    async def initial_group_progress(self, members: Sequence[Job]) -> Progress:
        """What the first answer shows for a just-admitted group."""
        first = members[0]
        places = positions(await self.store.queue_snapshot())
        place = places.get(first.id, len(places) + 1)
        return replace(self.queued_progress(first, place), count=len(members), queued=len(members))

    def _group_progress(self, job: Job, progress: Progress) -> None:
        """A member moved on: refresh its group's single progress line (when its status changed)."""
        if job.group_id is None or self.painter is None or self._group_seen.get(job.id) is progress.status:
            return
        self._group_seen[job.id] = progress.status
        self._spawn(self._paint_group(job.group_id))

    async def _paint_group(self, group_id: int) -> None:
        group = await self.groups.get(group_id)
        if group is None or group.poster is not None or group.posted_at is not None:
            return
        members = await self.groups.members(group_id)
        if not members or group.interaction_token is None:
            return
        ready, queued = counts(members)
        first = members[0]
        if queued == len(members):  # none has started: the group's place in the queue
            places = positions(await self.store.queue_snapshot())
            progress = replace(self.queued_progress(first, places.get(first.id)), count=len(members), queued=queued)
        else:
            progress = Progress(JobStatus.GENERATING, first.model, count=len(members), ready=ready, queued=queued)
        shown = replace(
            first,
            id=group.id,
            interaction_token=group.interaction_token,
            application_id=group.application_id,
            created_at=group.created_at,
        )
        if self.painter is not None and not self.delivery.posting(group_id):  # no await since the check
            self.painter.set(shown, progress)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> int:
        """Resume what a previous run left open, then start scheduling; return how many jobs resumed."""
        self.latency = LatencyModel(await self.store.latency_samples())
        self.identity.started()
        await self._renew_lease()
        resumed = await self._recover()
        if self._presenter is not None:
            self.painter = ProgressPainter(self._presenter, min_interval=self._progress_interval, clock=self._clock)
            self._loops.append(asyncio.create_task(self.painter.run(), name="fluxcord-painter"))
            self._loops.append(asyncio.create_task(self._watch_queue(), name="fluxcord-queue"))
        self._loops.append(asyncio.create_task(self._dispatch(), name="fluxcord-dispatcher"))
        self._loops.append(asyncio.create_task(self._heartbeat(), name="fluxcord-heartbeat"))
        self.accepting = True
        return resumed

    async def stop(self, grace: float = 5.0) -> None:
        """Stop admitting and scheduling; let submits in flight get their answer, then stop the rest.

        Every job keeps its state in the database, so the next :meth:`start` resumes it.
        """
        self.accepting = False
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        # A submit cut off mid-request would be an unknown outcome; give it a moment to be answered.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._submits_idle.wait(), timeout=grace)
        tasks = [*self._tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.painter is not None:
            await self.painter.close()
        if self.identity.stopped():
            try:
                await self.store.release_lease(self.identity)  # every job left is resumable by others now
            except Exception as exc:  # unreachable database: the lease simply expires
                log.warning("Could not release this process's lease: %s", exc)

    def wake(self) -> None:
        """A slot may be free or a job may be waiting: let the dispatcher look."""
        self._wake.set()

    # -- scheduling --------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self._claim_one():
                    pass
            except Exception:
                # A failed claim changed nothing (one statement); try again shortly, never stop the queue.
                log.exception("Could not claim the next job; retrying")
                await asyncio.sleep(DISPATCH_RETRY_SECONDS)
                continue
            if self._shared:  # another process may have queued a job or freed a slot
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=DISPATCH_POLL_SECONDS)
            else:
                await self._wake.wait()

    async def _claim_one(self) -> bool:
        max_active = self._settings.bfl_max_active_tasks
        job = await self.store.claim(
            max_active=max_active,
            kontext_max=min(KONTEXT_MAX_ACTIVE_TASKS, max_active),
            member_cap=self._settings.member_max_concurrent_jobs,
            holder=self.identity.id,
        )
        if job is None:
            return False
        self._queue_changed.set()
        self._point("after_claim", job.id)
        self._start(job, self._run(job))
        return True

    async def wait_job(self, job_id: int) -> None:
        """Wait until this process has finished its current work on ``job_id`` (tests, benchmarks)."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until this process has no job in progress (tests, benchmarks, draining)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    def _start(self, job: Job, work: Coroutine[Any, Any, None]) -> None:
        context = contextvars.copy_context()  # the job's log records carry its ids (LOG_FORMAT=json)
        context.run(bind_log_fields, job_id=job.id, guild_id=job.guild_id, user_id=job.user_id)
        task = asyncio.create_task(self._guarded(job.id, work), name=f"fluxcord-job-{job.id}", context=context)
        self._tasks[job.id] = task
        task.add_done_callback(lambda _t, job_id=job.id: self._tasks.pop(job_id, None))

    async def _guarded(self, job_id: int, work: Coroutine[Any, Any, None]) -> None:
        """Run a job's work; a bug of ours must never hold the member's money."""
        try:
            await work
        except asyncio.CancelledError:
            raise  # shutdown: the job stays in its state and the next start resumes it
        except Exception as exc:
            log.exception("Job %s failed unexpectedly", job_id)
            await self._end(job_id, Event.INTERNAL_ERROR, exc)
        finally:
            self.wake()

    async def _watch_queue(self) -> None:
        """Keep queued jobs' positions up to date while the queue moves (throttled)."""
        while True:
            await self._queue_changed.wait()
            self._queue_changed.clear()
            await self._refresh_positions()
            await asyncio.sleep(QUEUE_REFRESH_SECONDS)

    async def _refresh_positions(self) -> None:
        if self.painter is None:
            return
        snapshot = await self.store.queue_snapshot()
        places = positions(snapshot)
        if not places:
            return
        jobs = {job.id: job for job in await self.store.open_jobs() if job.status is JobStatus.QUEUED}
        for job_id, place in places.items():
            job = jobs.get(job_id)
            if job is not None and job.interaction_token is not None:
                self.painter.set(job, self.queued_progress(job, place))

    def queued_progress(self, job: Job, place: int | None) -> Progress:
        """A queued job's visible state, with a wait estimate once its model's latency is known."""
        eta = None
        median = self.latency.quantile(job.model, 0.5)
        if place is not None and median is not None:
            slots = self._settings.bfl_max_active_tasks
            if job.model == KONTEXT_MAX_MODEL:
                slots = min(slots, KONTEXT_MAX_ACTIVE_TASKS)
            eta = (math.ceil(place / slots) + 1) * median
        return Progress(JobStatus.QUEUED, job.model, position=place, eta_seconds=eta)

    async def initial_progress(self, job: Job) -> Progress:
        """What the first answer to the member shows for a just-admitted job."""
        if job.status is not JobStatus.QUEUED:
            return Progress(job.status, job.model)
        places = positions(await self.store.queue_snapshot())
        place = places.get(job.id, len(places) + 1)
        return self.queued_progress(job, place)

    # -- one job -----------------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        """Submit a claimed job (state ``submitting``) and see it through."""
        self._show(job, Progress(JobStatus.SUBMITTING, job.model))
        # From the POST until its answer is recorded, a shutdown waits for this job (see `stop`): cut off
        # here, the submit's outcome would be unknown.
        self._submitting.add(job.id)
        self._submits_idle.clear()
        try:
            if not await self.store.holds(job.id, self.identity):
                # Our lease lapsed (a stall, the database out of reach): another process may be taking
                # the job over. We know we never POSTed it, so it goes back to the queue, still reserved.
                log.warning("Job %s: this process no longer holds it; not submitting", job.id)
                await self.store.apply(job.id, Event.REQUEUED, self._settings.refund_policy, expected=job.status)
                await self._renew_lease()  # hold a lease again before claiming anything else
                return
            try:
                task = await self._bfl.submit(job.model, job.params)
            except BflError as exc:
                self._note_bfl_error(exc)
                self._breaker_verdict(job.model, exc)
                await self._end(job.id, outcomes.submit_event(exc), exc)
                return
            self._point("after_submit", job.id)
            applied = await self.store.apply(
                job.id,
                Event.ACCEPTED,
                self._settings.refund_policy,
                expected=JobStatus.SUBMITTING,
                bfl_task_id=task.id,
                polling_url=task.polling_url,
                cost_micros=task.cost_micros,
                submitted_at=to_millis(self._clock()),
            )
        finally:
            self._submitting.discard(job.id)
            if not self._submitting:
                self._submits_idle.set()
        if applied is None:
            return
        self._point("after_task_stored", job.id)
        await self._poll(applied.job, task)

    async def _poll(self, job: Job, task: SubmittedTask) -> None:
        """Wait for BFL's verdict (the job holds a slot until then), then free the slot at once."""
        loop = asyncio.get_running_loop()
        submitted = job.submitted_at or self._clock()
        already = max(0.0, (self._clock() - submitted).total_seconds())
        started = loop.time() - already
        timeout = max(self._settings.job_timeout_seconds - already, RESUME_MIN_TIMEOUT)

        async def on_status(status: str, _progress: float | None) -> None:
            self._show(
                job, Progress(JobStatus.GENERATING, job.model, bfl_stage=status, elapsed_seconds=loop.time() - started)
            )

        self._show(job, Progress(JobStatus.GENERATING, job.model, elapsed_seconds=already))
        try:
            result = await self._bfl.wait_for_result(
                task, timeout=timeout, on_status=on_status, plan=self.latency.plan(job.model), elapsed_offset=already
            )
        except BflError as exc:
            self._note_bfl_error(exc)
            self._breaker_verdict(job.model, exc)
            await self._end(job.id, outcomes.task_event(exc), exc)
            return
        self.breakers.succeeded(job.model)
        self._spawn(self.share_breakers())
        latency = loop.time() - started
        applied = await self._finished(job, result)
        if applied is None:
            return
        self.wake()  # the slot is free: the next job can go while this one downloads
        if already < 1.0:  # a job resumed after a restart would record the downtime, not BFL's latency
            self.latency.add(job.model, latency)
            self._observer.bfl_latency(job.model, latency)
            self._spawn(self.store.record_latency(job.model, latency))
        await self._download(applied.job, elapsed=latency)

    async def _finished(self, job: Job, result: TaskResult) -> Applied | None:
        fields: dict[str, Any] = {"ready_at": to_millis(self._clock()), "sample_url": result.sample_url}
        reported = getattr(result, "cost_micros", None)
        if reported is not None:
            fields["cost_micros"] = reported  # the Ready poll's cost wins over the submit's
        expanded = getattr(result, "expanded_prompt", None)
        if expanded:
            fields["expanded_prompt"] = str(expanded)[:20_000]
        return await self.store.apply(
            job.id, Event.FINISHED, self._settings.refund_policy, expected=JobStatus.GENERATING, **fields
        )

    async def _download(self, job: Job, *, elapsed: float) -> None:
        """Fetch, check and cache the result; settle; post it."""
        self._show(job, Progress(JobStatus.DOWNLOADING, job.model, elapsed_seconds=elapsed))
        try:
            if not job.sample_url:
                raise BflDownloadError("the task has no result URL", task_id=job.bfl_task_id)
            data = await self._bfl.download(job.sample_url, max_bytes=DOWNLOAD_LIMIT_BYTES)
            try:
                await asyncio.to_thread(probe, data)  # the header only: no full decode here
            except InvalidImage as exc:
                raise BflDownloadError(f"the result is not a usable image: {exc}", task_id=job.bfl_task_id) from exc
        except BflError as exc:
            self._note_bfl_error(exc)
            await self._end(job.id, Event.TASK_FAILED, exc)
            return
        self._point("after_download", job.id)
        await self._cache.put(
            job.cache_key, data, metadata={"model": job.model, "cost_micros": job.settled_cost_micros, "job_id": job.id}
        )
        applied = await self.store.apply(
            job.id, Event.DOWNLOADED, self._settings.refund_policy, expected=JobStatus.DOWNLOADING
        )
        if applied is None:
            return
        self._point("after_settle", job.id)
        self._observe(applied)
        cost = applied.settled_micros or 0
        if cost > job.estimated_micros:
            self._over_estimate(job, cost)
        log.info("Job %s generated by %s in %.1f s for %d µ$", job.id, job.model, elapsed, cost)
        await self._post(Result(applied.job, data, cost, elapsed, from_cache=False))

    async def _deliver_cached(self, job: Job) -> None:
        entry = await self._cache.get_entry(job.cache_key)
        if entry is None:
            await self._end(
                job.id, Event.DELIVERY_FAILED, None, text=outcomes.LOST_TEXT + " You have not been charged."
            )
            return
        await self._post(Result(job, entry.data, 0, 0.0, from_cache=True))

    async def _post(self, result: Result) -> None:
        job = result.job
        self._forget_progress(job.id)
        if job.group_id is not None:  # one image of a group: the group is posted once, all together
            self._group_progress(job, Progress(JobStatus.DELIVERING, job.model))
            self._group_seen.pop(job.id, None)  # its last change
            await self.delivery.member_done(job.group_id)
            return
        if self._presenter is None:
            return  # no Discord (a worker without a presenter): the job waits in `delivering`
        try:
            posted = await self._presenter.deliver(result)
        except Exception as exc:
            log.warning("Job %s: could not post the image: %s", job.id, exc)
            await self._end(job.id, Event.DELIVERY_FAILED, exc, quiet=True)
            return
        self._point("after_post", job.id)
        delivered = await self.store.apply(
            job.id,
            Event.DELIVERED,
            self._settings.refund_policy,
            expected=job.status,
            result_channel_id=posted.channel_id,
            result_message_id=posted.message_id,
            result_file=posted.result_file,  # BFL's original (provenance kept) or a re-encoded copy, and why
        )
        self._observe(delivered, outcome="cached" if result.from_cache else None)
        self._point("after_delivered", job.id)

    async def _end(
        self,
        job_id: int,
        event: Event,
        exc: BaseException | None,
        *,
        text: str | None = None,
        quiet: bool = False,
    ) -> None:
        """Apply a failure event and tell the member."""
        code = outcomes.error_code(exc) if exc is not None else event.value
        applied = await self.store.apply(job_id, event, self._settings.refund_policy, error=code, note=code)
        if applied is None:
            return
        self._observe(applied)
        if isinstance(exc, BflError):
            log.warning("Job %s failed: %s", job_id, exc)
        self._forget_progress(job_id)
        blocked = await self._moderated(applied, event)
        if applied.job.group_id is not None:  # the group's message says how many failed
            await self.delivery.member_done(applied.job.group_id)
            return
        if quiet or self._presenter is None:
            return
        message = text or outcomes.failure_text(exc, charged=applied.decision.member_charged)
        if blocked:
            message += f"\n{blocked}"
        try:
            await self._presenter.notify(applied.reachable_job, message)
        except Exception as notify_exc:
            log.warning("Job %s: could not tell the member: %s", job_id, notify_exc)

    async def _moderated(self, applied: Applied, event: Event) -> str | None:
        """A moderated result: mod-log post and a strike (which may block the member); the block notice."""
        if self._safety is None or event not in (Event.REQUEST_MODERATED, Event.CONTENT_MODERATED):
            return None
        job = applied.before
        try:
            return await self._safety.moderated(
                guild_id=job.guild_id,
                channel_id=job.channel_id,
                user_id=job.user_id,
                job_id=job.id,
                model=job.model,
                prompt=job.prompt,
                stage="request" if event is Event.REQUEST_MODERATED else "content",
            )
        except Exception:
            log.exception("Job %s: could not record the moderated result", job.id)
            return None

    # -- recovery ----------------------------------------------------------------------------------

    async def _recover(self) -> int:
        """At start: resolve or resume every job a previous run (or a dead process) left open."""
        orphans = [job_id for job_id in await self._ledger.open_job_ids() if await self.store.get(job_id) is None]
        for job_id in orphans:  # written by a version that reserved before creating the job row
            await self._ledger.release(job_id, note="recovered: no job")
        taken = await self._take_over()
        await self.delivery.post_finished()
        if taken or orphans:
            log.info("Resumed %d unfinished jobs from the previous run", taken + len(orphans))
        return taken + len(orphans)

    async def _take_over(self) -> int:
        """Become the holder of every open job whose process is gone, and resume each; how many.

        Runs at start and on every heartbeat. Taking a job is one conditional update (the holder it
        was seen with), so of several processes looking at once exactly one resumes it. A job that was
        mid-submit is never submitted again: its outcome is unknown (see :mod:`bot.engine.decision`).
        """
        policy = self._settings.refund_policy
        taken = 0
        for seen in await self.store.orphaned(self.identity):
            if seen.id in self._tasks:
                continue
            job = await self.store.take(seen, self.identity)
            if job is None:
                continue  # another process took it first
            taken += 1
            if seen.claimed_by is not None:
                log.warning("Job %s: its process %s is gone; taking it over", job.id, seen.claimed_by)
            if job.status in (JobStatus.QUEUED, JobStatus.CACHED) and not job.acked:
                # The process died between admission and recording the acknowledgement: the member may
                # be looking at a queue message, so say what happened (if the token still works).
                ended = await self.store.apply(job.id, Event.ACK_FAILED, policy, note="recovered")
                self._observe(ended)
                if job.group_id is not None:
                    self._spawn(self.delivery.member_done(job.group_id))
                elif ended is not None and self._presenter is not None:
                    self._spawn(self._presenter.notify(ended.reachable_job, outcomes.RESTARTED_TEXT))
                continue
            applied = await self.store.apply(job.id, Event.RECOVERED, policy, expected=job.status)
            if applied is None:
                continue
            self._observe(applied)
            self._resume(applied)
        return taken

    def _resume(self, applied: Applied) -> None:
        """Carry on with a recovered job from the state it was found in."""
        resumed = applied.job
        if resumed.status is JobStatus.UNKNOWN:
            log.warning("Job %s was being submitted when its process stopped: outcome unknown", resumed.id)
            if resumed.group_id is not None:
                self._spawn(self.delivery.member_done(resumed.group_id))
            elif self._presenter is not None:
                self._spawn(self._presenter.notify(applied.reachable_job, outcomes.failure_text(None, charged=False)))
        elif resumed.status is JobStatus.GENERATING:
            task = SubmittedTask(resumed.bfl_task_id or "", resumed.polling_url or "", None)
            self._start(resumed, self._poll(resumed, task))
        elif resumed.status is JobStatus.DOWNLOADING:
            self._start(resumed, self._download(resumed, elapsed=0.0))
        elif resumed.status is JobStatus.DELIVERING:
            self._start(resumed, self._redeliver(resumed))
        elif resumed.status is JobStatus.CACHED:
            self._start(resumed, self._deliver_cached(resumed))

    async def _renew_lease(self) -> None:
        """Keep this process's lease, and note whether other processes share the database."""
        await self.store.renew_lease(self.identity, seconds=self._lease_seconds)
        others = [pid for pid in await self.store.live_processes() if pid != self.identity.id]
        self._shared = self.identity.role == "worker" or bool(others)

    async def _heartbeat(self) -> None:
        """Every third of JOB_LEASE_SECONDS: renew the lease, then take over jobs of processes gone."""
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                await self._renew_lease()
                if await self._take_over():
                    self.wake()
                await self.delivery.post_finished()
            except Exception as exc:  # the database is out of reach: try again next beat
                log.warning("Could not renew this process's lease: %s", exc)

    async def _redeliver(self, job: Job) -> None:
        """Post a job that was paid for but not posted before the restart (from the cache)."""
        entry = await self._cache.get_entry(job.cache_key)
        data = entry.data if entry is not None else None
        if data is None and job.sample_url:
            with contextlib.suppress(BflError):
                data = await self._bfl.download(job.sample_url, max_bytes=DOWNLOAD_LIMIT_BYTES)
        if data is None:
            await self._end(job.id, Event.DELIVERY_FAILED, None, text=outcomes.LOST_TEXT)
            return
        await self._post(Result(job, data, job.settled_cost_micros, 0.0, from_cache=False))

    # -- helpers -----------------------------------------------------------------------------------

    def _show(self, job: Job, progress: Progress) -> None:
        if job.group_id is not None:
            self._group_progress(job, progress)
        elif self.painter is not None and job.interaction_token is not None:
            self.painter.set(job, progress)

    def _forget_progress(self, job_id: int) -> None:
        self._group_seen.pop(job_id, None)
        if self.painter is not None:
            self.painter.drop(job_id)

    def _observe(self, applied: Applied | None, *, outcome: str | None = None) -> None:
        """Tell the observer what an applied event settled and whether it ended the job."""
        if applied is None:
            return
        if applied.settled_micros:
            self._observer.spent(applied.job.model, applied.settled_micros)
        if not applied.job.status.is_open:
            self._observer.job_ended(applied.job.model, outcome or applied.job.status.value)

    def _point(self, name: str, job_id: int) -> None:
        if self._checkpoint is not None:
            self._checkpoint(name, job_id)

    def _breaker_verdict(self, model: str, exc: BflError) -> None:
        """Feed the model's circuit breaker: provider trouble counts; any proper answer closes it."""
        if is_provider_error(exc):
            self.breakers.failed(model)
        else:
            self.breakers.succeeded(model)  # a refusal or moderation: BFL is up and answering
        self._spawn(self.share_breakers())

    async def share_breakers(self) -> None:
        """Share the breakers' news with other processes and read theirs (a failure keeps the local view)."""
        try:
            await self.breakers.sync()
        except Exception as exc:
            log.warning("Could not share the circuit breakers' state: %s", exc)

    def _note_bfl_error(self, exc: BflError) -> None:
        self.last_error = f"{datetime.now().astimezone():%Y-%m-%d %H:%M} {type(exc).__name__}: {str(exc)[:150]}"

    def _over_estimate(self, job: Job, cost: int) -> None:
        log.warning(
            "Job %s cost %d µ$, above its estimate of %d µ$: the estimate for %s is not an upper bound",
            job.id,
            cost,
            job.estimated_micros,
            job.model,
        )
        if self._notice is not None:
            text = (
                f"⚠️ A {job.model} image cost {format_usd(cost)}, more than its estimate of "
                f"{format_usd(job.estimated_micros)} (job {job.id})."
            )
            self._spawn(self._notice(job.guild_id, text))

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("Background step failed: %s", task.exception())


def _new_job(request: GenerationRequest, who: Requester, cache_key: str) -> NewJob:
    """What admission writes about ``request`` asked by ``who``."""
    return NewJob(
        id=who.job_id,
        guild_id=who.guild_id,
        channel_id=who.channel_id,
        user_id=who.user_id,
        model=request.model.key,
        prompt=request.prompt,
        params=request.bfl_payload(),
        seed=request.seed,
        width=request.width,
        height=request.height,
        cache_key=cache_key,
        aspect_ratio=request.aspect_ratio,
        estimated_micros=request.estimated_cost_micros,
        application_id=who.application_id,
        interaction_token=who.interaction_token,
        upload_limit=who.upload_limit,
        private=who.private,
        style=request.style,
    )
