"""The reconciler: every heartbeat, every open job that no live attempt in any process drives is driven.

Recovery is not a special case. At start and then every third of ``JOB_LEASE_SECONDS`` each engine:

1. reads the database's clock and renews its own lease;
2. looks at every open job that needs a driver: its *own* jobs that no attempt of this process is
   driving (a failed acknowledgement, a step that died with its error handling), and the jobs of
   processes whose lease expired or who stopped (:meth:`JobStore.needing_a_driver`); it takes the
   latter over with one conditional update (of several processes, exactly one wins);
3. decides from the row alone: an admitted job not acknowledged within the acknowledgement budget is
   released and the member told; a claimed job whose POST never left goes back to the queue (nothing
   charged); one whose POST may have left and has no answer is ``unknown`` once its submit window has
   passed (charged the estimate to the server, refunded to the member); anything else is driven from
   its state (:mod:`bot.engine.drive`), its timer honoured;
4. releases private jobs that waited so long their interaction would expire before their result could
   be shown, telling the member while it still can;
5. posts the finished groups nobody is posting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from bot.clock import to_millis
from bot.engine import outcomes
from bot.engine.config import EngineConfig
from bot.engine.dbclock import DbClock
from bot.engine.dispatch import private_deadline
from bot.engine.drive import Driver
from bot.engine.effects import Effects
from bot.engine.group_delivery import GroupDelivery
from bot.engine.jobs import Job
from bot.engine.leases import ProcessIdentity, provably_gone
from bot.engine.progress import TOKEN_LIFETIME
from bot.engine.states import Event, JobStatus
from bot.engine.steps import Outcome
from bot.engine.store import JobStore

log = logging.getLogger(__name__)


class Reconciler:
    """Finds every open job nobody drives and drives it; keeps this process's lease."""

    def __init__(
        self,
        *,
        store: JobStore,
        driver: Driver,
        effects: Effects,
        delivery: GroupDelivery,
        clock: DbClock,
        config: EngineConfig,
        identity: ProcessIdentity,
    ) -> None:
        self._store = store
        self._driver = driver
        self._effects = effects
        self._delivery = delivery
        self._clock = clock
        self._config = config
        self._identity = identity
        self.shared = identity.role == "worker"  # other processes use the database: the dispatcher polls too
        self.lease_expires_at: datetime | None = None
        self._idle_senders: set[int] = set()  # jobs taken over from a process known not to be sending them

    async def run(self) -> None:
        """Beat every heartbeat until cancelled; a failed beat is tried again at the next."""
        while True:
            await asyncio.sleep(self._config.heartbeat_seconds)
            try:
                await self.beat()
            except Exception as exc:  # the database out of reach: the next beat tries again
                log.warning("Reconciliation failed (will retry): %s", exc)

    async def renew(self) -> None:
        """Read the database's clock, renew this process's lease, and note whether others share the database."""
        await self._clock.sync()
        self.lease_expires_at = await self._store.renew_lease(self._identity, seconds=self._config.lease_seconds)
        others = [pid for pid in await self._store.live_processes() if pid != self._identity.id]
        self.shared = self._identity.role == "worker" or bool(others)

    async def beat(self) -> int:
        """One reconciliation pass; how many jobs it picked up or ended."""
        await self.renew()
        handled = 0
        for job in await self._store.needing_a_driver(self._identity, driving=self._driver.driving()):
            if job.id in self._driver.live:
                continue  # started while the list was read (a claim): it has its driver
            try:
                handled += await self._reconcile(job)
            except Exception as exc:
                log.warning("Job %s: could not reconcile it (will retry): %s", job.id, exc)
        handled += await self._release_expiring()
        await self._delivery.post_finished()
        await self._tell_untold()
        if handled:
            log.info("Reconciled %d open jobs", handled)
        return handled

    async def _reconcile(self, seen: Job) -> int:
        mine = seen.claimed_by == self._identity.id
        job = seen if mine else await self._store.take(seen, self._identity)
        if job is None:
            return 0  # another process took it first
        if not mine and seen.claimed_by is not None:
            log.warning("Job %s: its process %s is gone; taking it over", job.id, seen.claimed_by)
        now = self._clock()
        if job.status in (JobStatus.QUEUED, JobStatus.CACHED) and not job.acked:
            deadline = job.created_at + timedelta(seconds=self._config.ack_deadline_seconds)
            if mine and now < deadline:
                return 0  # its cog is still acknowledging it
            text = None if mine else outcomes.RESTARTED_TEXT  # its process died before the acknowledgement
            return await self._end(job, Event.ACK_FAILED, "ack_failed", acked=False, text=text)
        if job.status is JobStatus.SUBMITTING and job.bfl_task_id is None:
            may_be_sending = await self._may_be_sending(seen)
            if not mine and not may_be_sending:
                self._idle_senders.add(job.id)  # remembered: a failed record of the decision is retried as it was
            return await self._unanswered_submit(job, now=now, may_be_sending=may_be_sending)
        return 1 if self._driver.drive(job) else 0

    async def _may_be_sending(self, seen: Job) -> bool:
        """Whether the process that marked ``seen``'s POST might still be sending it.

        Not this process once it no longer drives the job, not one that stopped (it deleted its lease
        row; a stop waits for its POSTs and takes the rest with it), not one provably dead on this
        machine; but one whose lease merely expired may be stalled with its POST on the wire.
        """
        if seen.claimed_by is None or seen.claimed_by == self._identity.id:
            if seen.id in self._idle_senders:
                return False  # taken over from a process that was not sending it: still not
            return not self._driver.marked_here(seen.id) and seen.claimed_by is not None
        if provably_gone(seen.claimed_by, self._identity):
            return False
        return await self._store.has_lease(seen.claimed_by)

    async def _unanswered_submit(self, job: Job, *, now: datetime, may_be_sending: bool) -> int:
        """A claimed job with no task id: back to the queue if its POST never left, else unknown (in time).

        A POST whose sender might still be at it (a stalled process whose lease expired) is given its
        submit window first: an answer that process records in time wins.
        """
        if job.submit_started_at is not None and self._driver.never_posted(job.id):
            # Marked by this process, which knows its POST never left: not sent after all.
            if not await self._store.not_sent(job.id, self._identity, retry_at=now):
                return 0
            job = replace(job, submit_started_at=None)
        if job.submit_started_at is None:  # only if still unsent when applied: a POST may be leaving now
            return await self._end(job, Event.REQUEUED, None, unsent=True)
        window = timedelta(seconds=self._config.submit_window_seconds)
        if may_be_sending and now < job.submit_started_at + window:
            return 0  # its old holder may still be sending it: wait for the window, then decide
        log.warning("Job %s: its POST may have left and no answer was recorded: outcome unknown", job.id)
        return await self._end(job, Event.SUBMIT_UNKNOWN, "submit_unknown")

    async def _end(
        self,
        job: Job,
        event: Event,
        code: str | None,
        *,
        acked: bool | None = None,
        text: str | None = None,
        unsent: bool = False,
    ) -> int:
        if job.id in self._driver.live:
            return 0  # this process started driving it meanwhile (a claim): its driver decides
        fields = {"error": code} if code is not None else {}
        applied = await self._store.apply(
            job.id,
            event,
            self._config.refund_policy,
            expected=job.status,
            holder=self._identity.id,
            acked=acked,
            unsent=unsent,
            note=code or "recovered",
            **fields,
        )
        if applied is None:
            return 0
        self._idle_senders.discard(job.id)
        log.info("Job %s: %s → %s (reconciled)", job.id, job.status.value, applied.job.status.value)
        await self._effects.after(applied, Outcome(event, code=code, text=text))
        return 1

    async def _tell_untold(self) -> None:
        """Ended jobs whose member was never told (a refused or interrupted message): told now, from the row.

        Not while someone may still tell it: this process (telling it now, or a click's answer on its way),
        another process holding a current "told" claim (:meth:`JobStore.claim_telling`) unless provably
        dead, or a live holder (it tells on its own heartbeat); nor within a heartbeat of the job's end
        (its ender is about to claim it). The claim itself decides between retellers.
        """
        live = set(await self._store.live_processes())
        now = self._clock()
        token_life = to_millis(now - TOKEN_LIFETIME)
        just_ended = now - timedelta(seconds=self._config.heartbeat_seconds)
        me = self._identity.id
        for job in await self._store.untold(created_after=token_life):
            if job.group_id is not None:
                await self._store.mark_told(job.id)  # a group's image: the group's message tells
                continue
            holder = job.claimed_by
            dead = holder is not None and holder != me and provably_gone(holder, self._identity)
            claimed = job.next_attempt_at is not None and job.next_attempt_at > now
            if holder == me and self._effects.busy(job.id):
                continue  # this process is telling it
            if not dead and holder != me and (claimed or holder in live):
                continue  # another process is telling it (or will, on its own heartbeat)
            if not dead and job.updated_at > just_ended:
                continue  # just ended: its ender is about to tell it
            self._effects.spawn(self._effects.retell(job, dead_holder=holder if dead else None))

    async def _release_expiring(self) -> int:
        """Queued private jobs whose result could no longer be shown in time: released, member told."""
        cutoff = to_millis(self._clock() - private_deadline(self._config))
        released = 0
        for job in await self._store.expiring_private(created_before=cutoff):
            applied = await self._store.apply(
                job.id, Event.EXPIRED, self._config.refund_policy, expected=JobStatus.QUEUED, error="expired"
            )
            if applied is not None:
                released += 1
                await self._effects.after(applied, Outcome(Event.EXPIRED, code="expired"))
        return released
