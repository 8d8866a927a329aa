"""The job engine: admits jobs, hands out BFL slots fairly, and drives every open job to its end.

A job's whole life is in its row (:mod:`bot.engine.store`); the engine is a reconciler over those rows:

1. :mod:`bot.engine.admission` writes the job and its reservation in one transaction (or refuses with
   no side effect). The cog acknowledges the interaction and calls :meth:`JobEngine.acknowledged`; if
   that fails it calls :meth:`JobEngine.abandon`, and if the cog itself dies first, the reconciler
   releases the job once the acknowledgement budget has passed.
2. :mod:`bot.engine.dispatch` claims queued jobs (one atomic statement each) while a slot is free.
3. :mod:`bot.engine.drive` runs each job's step (:mod:`bot.engine.steps`) and applies its outcome
   through the one money decision, until the job ends or waits on a timer.
4. :mod:`bot.engine.reconcile`, at start and on every heartbeat, drives every open job that no live
   attempt in any process is driving: there is no separate recovery path.
5. :meth:`JobEngine.stop` stops admitting, lets POSTs in flight get their answer, and leaves every job
   in a state any process resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.aio import cancel_and_wait
from bot.bfl.errors import BflError
from bot.bfl.polling import LatencyModel
from bot.engine import outcomes
from bot.engine.admission import ProviderTrouble, Requester, Restarting
from bot.engine.assembly import assemble
from bot.engine.config import EngineConfig
from bot.engine.jobs import Job
from bot.engine.parts import EngineHooks, EngineParts, PresenterSlot
from bot.engine.progress import Progress, ProgressPainter
from bot.engine.states import Event, JobStatus
from bot.errors import FluxcordError
from bot.images.cache import ImageCache
from bot.models import GenerationRequest

__all__ = [
    "CancelResult",
    "EngineHooks",
    "EngineParts",
    "JobEngine",
    "PresenterSlot",
    "ProviderTrouble",
    "Requester",
    "Restarting",
]

log = logging.getLogger(__name__)
CANCEL_ANSWER_SECONDS = 120.0  # a Cancel click's answer waits up to a minute for progress edits to land


@dataclass(frozen=True)
class CancelResult:
    """What a click on Cancel did."""

    cancelled: bool
    reason: str  # "cancelled", "not_allowed", "too_late", "unknown"
    count: int = 1  # a group: how many of its queued images were cancelled
    left: int = 0  # a group: how many of its images are still being made
    job: Job | None = None  # a single job as it was cancelled, with its interaction token (to tell the member)


class JobEngine:
    """Runs image jobs against BFL with the money under control."""

    def __init__(self, parts: EngineParts, config: EngineConfig, hooks: EngineHooks | None = None) -> None:
        hooks = hooks or EngineHooks()
        self.store, self.groups, self.identity = parts.store, parts.groups, parts.identity
        self.config = config
        self.clock = parts.clock
        self.presenter = hooks.presenter  # the Discord side: filled once its cog loads (PresenterSlot)
        #: The circuit breakers, one per model (shared with other processes through the database).
        self.breakers = parts.provider.breakers
        #: Each model's recent latencies (the poll plans and queue estimates come from them; loaded at start).
        self.latency = LatencyModel()
        self.last_error: str | None = None
        self._provider, self._ledger, self._observer = parts.provider, parts.ledger, hooks.observer
        self._checkpoint = hooks.checkpoint
        self._loops: list[asyncio.Task[Any]] = []
        machinery = assemble(parts, config, hooks, self)
        self.painting, self.effects, self.steps, self.driver = (
            machinery.painting,
            machinery.effects,
            machinery.steps,
            machinery.driver,
        )
        self.delivery, self.reconciler, self.dispatcher, self.admission = (
            machinery.delivery,
            machinery.reconciler,
            machinery.dispatcher,
            machinery.admission,
        )

    # -- state -------------------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """Whether new requests are admitted (False while starting and once stopping)."""
        return self.admission.accepting

    def stop_admitting(self) -> None:
        """Refuse new requests from now on (a shutdown signal arrived; :meth:`stop` follows)."""
        self.admission.accepting = False

    @property
    def painter(self) -> ProgressPainter | None:
        """The progress painter, once the engine runs with a presenter."""
        return self.painting.painter

    @property
    def running_jobs(self) -> int:
        """Jobs this process is driving (or waiting to drive) right now."""
        return len(self.driver.live)

    @property
    def cache(self) -> ImageCache:
        """The image cache (the Delete button removes a result's bytes from it)."""
        return self._provider.cache

    # -- admission and the member's clicks ---------------------------------------------------------

    async def admit(self, request: GenerationRequest, who: Requester, *, acked: bool = False) -> Job:
        """Reserve and queue ``request`` (or take it from the cache), or raise a member-facing refusal.

        Nothing is written on a refusal. With ``acked=False`` the job waits for :meth:`acknowledged`.
        Any other failure (the database, midway or after its commit) releases whatever was written.
        """
        async with self._released_if_failed(who.job_id, group=False):
            job = await self.admission.admit(request, who, acked=acked)
        if acked:
            self._after_ack(job)
        return job

    async def admit_group(self, requests: Sequence[GenerationRequest], who: Requester, **draft: Any) -> list[Job]:
        """Reserve and queue N images of one prompt all-or-nothing; they wait for :meth:`acknowledged_group`.

        ``draft``: the draft options, as :meth:`bot.engine.admission.Admission.admit_group` takes them.
        """
        async with self._released_if_failed(who.job_id, group=True):
            return await self.admission.admit_group(requests, who, **draft)

    @contextlib.asynccontextmanager
    async def _released_if_failed(self, job_id: int, *, group: bool) -> AsyncIterator[None]:
        """An admission that fails with an error of ours (maybe after its commit) is released now, told.

        The cog tells the member it failed; marking the job told here means no other process later
        tells a second story ("the bot restarted…") if this one dies before its reconciler would release
        it. If the database is still out of reach, the reconciler does it (silently, in this process).
        """
        try:
            yield
        except FluxcordError:
            raise
        except Exception:
            try:
                await (self.abandon_group(job_id) if group else self.abandon(job_id))
            except Exception as exc:
                log.warning("Job %s: could not release a failed admission yet (the reconciler will): %s", job_id, exc)
            raise

    async def acknowledged(self, job_id: int, *, message_id: int | None = None) -> Job | None:
        """The member saw the acknowledgement (in ``message_id``): the job may run now. None if it no longer waited."""
        job = await self.store.acknowledge(job_id, message_id=message_id)
        if job is not None:
            self._observer.job_changed(job_id, "acknowledged")
            self._after_ack(job)
        return job

    def _after_ack(self, job: Job) -> None:
        if job.status is JobStatus.CACHED:
            self.driver.drive(job)
        else:
            self.painting.queue_changed()
            self.wake()

    async def acknowledged_group(self, group_id: int, *, message_id: int | None = None) -> bool:
        """The member saw the group's acknowledgement (in ``message_id``): its images may run now."""
        if await self.groups.acknowledge(group_id, message_id=message_id):
            self._observer.job_changed(group_id, "acknowledged")
            self.point("after_ack", group_id)
            self.painting.queue_changed()
            self.wake()
            return True
        return False

    async def abandon(self, job_id: int, *, answered: bool = False) -> None:
        """The acknowledgement failed: cancel the job and release its money at once.

        ``answered``: the member already sees an answer (e.g. its queue place) that must now say what
        happened; otherwise Discord itself shows them the request failed.
        """
        applied = await self.store.apply(job_id, Event.ACK_FAILED, self.config.refund_policy, acked=False)
        if applied is not None:
            await self.effects.after(applied)
            if answered:
                self.tell(applied.reachable_job, outcomes.NOT_STARTED_TEXT)
            else:
                await self.effects.mark_told(job_id)
            self.breakers.released(applied.job.model)  # if it was the half-open trial, free it
            log.warning("Job %s: acknowledgement failed; cancelled and released", job_id)

    async def abandon_group(self, group_id: int, *, answered: bool = False) -> None:
        """The group's acknowledgement failed: cancel its images and release their money at once.

        ``answered``: the member sees an answer, which the group's last message replaces ("cancelled").
        """
        for job in await self.groups.members(group_id):
            applied = await self.store.apply(
                job.id, Event.ACK_FAILED, self.config.refund_policy, expected=JobStatus.QUEUED, acked=False
            )
            if applied is not None:
                self.effects.observe(applied)
        log.warning("Group %s: acknowledgement failed; cancelled and released", group_id)
        await self.delivery.member_done(group_id, silent=not answered)

    async def cancel(self, job_id: int, *, actor_id: int, is_moderator: bool) -> CancelResult:
        """Cancel a queued job for its requester or a moderator; its money is released at once."""
        job = await self.store.get(job_id)
        if job is None:
            return CancelResult(False, "unknown")
        if actor_id != job.user_id and not is_moderator:
            return CancelResult(False, "not_allowed")
        applied = await self._cancel_one(job, actor_id)
        if applied is None:
            return CancelResult(False, "too_late")
        log.info("Job %s cancelled by %s", job_id, actor_id)
        return CancelResult(True, "cancelled", job=applied.reachable_job)

    async def cancel_group(self, group_id: int, *, actor_id: int, is_moderator: bool) -> CancelResult:
        """Cancel a group's still-queued images (its requester or a moderator); their money is released."""
        group = await self.groups.get(group_id)
        if group is None:
            return CancelResult(False, "unknown")
        if actor_id != group.user_id and not is_moderator:
            return CancelResult(False, "not_allowed")
        cancelled = 0
        for job in await self.groups.members(group_id):
            if job.status is JobStatus.QUEUED and await self._cancel_one(job, actor_id, post_group=False) is not None:
                cancelled += 1
        if not cancelled:
            return CancelResult(False, "too_late")
        log.info("Group %s: %d queued images cancelled by %s", group_id, cancelled, actor_id)
        left = sum(1 for job in await self.groups.members(group_id) if job.status.is_open)
        if not left:  # the group's line is over: no progress edit of it may land after the answer
            await self.painting.quiet(group_id)
            # The click's answer is its last message: closed with no post of its own (else the images still
            # running post it). A post here, its token dead, would tell the member twice, in the channel.
            await self.delivery.member_done(group_id, silent=True)
        return CancelResult(True, "cancelled", count=cancelled, left=left)

    async def _cancel_one(self, job: Job, actor_id: int, *, post_group: bool = True) -> Any:
        applied = await self.store.apply(
            job.id, Event.CANCELLED, self.config.refund_policy, expected=JobStatus.QUEUED, note=f"by {actor_id}"
        )
        if applied is not None:
            if job.group_id is None:  # the click's answer tells it (after progress edits land): no one else
                await self.effects.answering(job.id, CANCEL_ANSWER_SECONDS)
            await self.effects.after(applied, post_group=post_group)  # a group's post, the queue places, metrics
            self.breakers.released(job.model)  # if it was the half-open trial, free it for the next request
            self.wake()  # a cancel can unblock the claim (a member's cap, a route's cap)
        return applied

    async def told(self, job_id: int) -> None:
        """The member saw how the job ended (e.g. the answer to their Cancel click): recorded, retried.

        Recorded in the background while the database is away: a record that failed would have the
        reconciler say the same thing again (in the channel, once the token is gone).
        """
        self.effects.spawn(self.effects.durably(lambda: self.effects.mark_told(job_id), f"Job {job_id}'s last message"))

    def tell(self, job: Job, text: str) -> None:
        """Show ``text`` as the job's last message in the background, retried; the reconciler's if it fails."""
        self.effects.spawn(self.effects.say(job, text))

    # -- what the member sees first ----------------------------------------------------------------

    async def initial_progress(self, job: Job) -> Progress:
        """What the first answer to the member shows for a just-admitted job."""
        return await self.painting.initial_progress(job)

    async def initial_group_progress(self, members: Sequence[Job]) -> Progress:
        """What the first answer shows for a just-admitted group."""
        return await self.painting.initial_group_progress(members)

    def queued_progress(self, job: Job, place: int | None) -> Progress:
        """A queued job's visible state, with a wait estimate once its model's latency is known."""
        return self.painting.queued_progress(job, place)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> int:
        """Reconcile what is open (a previous run's, a dead process's), then run; how many jobs it picked up."""
        self.latency.restore(await self.store.latency_samples())
        await self._provider.end_users.load(self.store.db)
        self.identity.started()
        await self.clock.sync(force=True)
        self.driver.accepting = True
        picked_up = await self.reconcile()
        presenter = self.presenter.current
        if presenter is not None and self.identity.role != "worker":
            # Progress is painted by the processes that answer interactions: a worker's paint, from a
            # snapshot read a moment earlier, could land over the gateway's last word (a Cancel, a gallery).
            self._loops += self.painting.start(presenter)
        self._loops.append(asyncio.create_task(self.dispatcher.run(), name="fluxcord-dispatcher"))
        self._loops.append(asyncio.create_task(self.reconciler.run(), name="fluxcord-reconciler"))
        self.admission.accepting = True
        return picked_up

    async def reconcile(self) -> int:
        """One reconciliation pass now (start-up, tests): how many open jobs it picked up or ended."""
        orphans = 0
        for job_id in await self._ledger.open_job_ids():  # a reservation with no job row
            if await self.store.get(job_id) is None:  # (written by a version that reserved first)
                await self._ledger.release(job_id, note="recovered: no job")
                orphans += 1
        picked_up = await self.reconciler.beat()
        self.wake()
        return picked_up + orphans

    async def stop(self, grace: float = 5.0) -> None:
        """Stop admitting and claiming; let POSTs in flight get their answer; leave every job resumable."""
        self.admission.accepting = False
        await cancel_and_wait(*self._loops)
        self._loops.clear()
        await self.driver.stop(grace=grace)
        await self.effects.close()
        await self.painting.close()
        if self.identity.stopped():
            try:
                await self.store.release_lease(self.identity)  # every job left is resumable by others now
            except Exception as exc:  # unreachable database: the lease simply expires
                log.warning("Could not release this process's lease: %s", exc)

    def wake(self, *, queue_changed: bool = False) -> None:
        """A slot may be free or a job may be waiting: let the dispatcher look (and repaint queue places)."""
        if queue_changed:  # e.g. /budget pause or resume: queued jobs' messages change
            self.painting.queue_changed()
        self.dispatcher.wake()

    async def wait_job(self, job_id: int) -> None:
        """Wait until this process is no longer driving ``job_id`` (tests, benchmarks)."""
        await self.driver.wait_job(job_id)

    async def wait_idle(self) -> None:
        """Wait until this process drives no job and posts no group (tests, benchmarks, draining)."""
        while True:
            await self.driver.wait_idle()
            await self.effects.wait_background()
            if not self.driver.live:
                return

    # -- callbacks the parts use (bot.engine.assembly.EngineCallbacks) -----------------------------

    async def share_breakers(self) -> None:
        """Share the breakers' news with other processes and read theirs (a failure keeps the local view)."""
        try:
            await self.breakers.sync()
        except Exception as exc:
            log.warning("Could not share the circuit breakers' state: %s", exc)

    def breakers_changed(self) -> None:
        """A step counted a success or a failure: share the breakers' news in the background."""
        self.effects.spawn(self.share_breakers())

    def claimed(self, job: Job) -> None:
        """The dispatcher claimed ``job``: queue places move."""
        self._observer.job_changed(job.id, job.status.value)
        self.painting.queue_changed()
        self.point("after_claim", job.id)

    def record_latency(self, model: str, seconds: float) -> None:
        """Remember how long ``model`` took (the poll plans and queue estimates use it)."""
        self.latency.add(model, seconds)
        self._observer.bfl_latency(model, seconds)
        self.effects.spawn(self.store.record_latency(model, seconds))

    def note_bfl_error(self, exc: BflError) -> None:
        """Keep the last BFL error for /status."""
        self.last_error = f"{datetime.now().astimezone():%Y-%m-%d %H:%M} {type(exc).__name__}: {str(exc)[:150]}"

    def point(self, name: str, job_id: int) -> None:
        """A crash-test checkpoint (does nothing outside the crash tests)."""
        if self._checkpoint is not None:
            self._checkpoint(name, job_id)
