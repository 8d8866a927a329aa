"""The dispatcher: while a BFL slot is free, claim the next job by the fairness rule and drive it.

The claim is one statement whose condition is the caps, counted in the database across every process
(:meth:`bot.engine.store.JobStore.claim`). A slot freed here wakes the dispatcher at once; with other
processes on the database it also looks every :data:`POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from bot.aio import wait_event
from bot.clock import to_millis
from bot.engine.config import EngineConfig
from bot.engine.drive import Driver
from bot.engine.jobs import Job
from bot.engine.leases import ProcessIdentity
from bot.engine.progress import TOKEN_LIFETIME
from bot.engine.store import JobStore

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5
POLL_SECONDS = 1.0  # with other processes on the database, also look for work this often
PRIVATE_MARGIN = timedelta(seconds=60)  # after BFL's deadline: download and post a private result in time


def private_deadline(config: EngineConfig) -> timedelta:
    """How old a private job may be when it is claimed: its result must be shown before its token dies."""
    return TOKEN_LIFETIME - timedelta(seconds=config.job_timeout_seconds) - PRIVATE_MARGIN


class Dispatcher:
    """Claims queued jobs while slots are free."""

    def __init__(
        self,
        store: JobStore,
        driver: Driver,
        config: EngineConfig,
        identity: ProcessIdentity,
        *,
        claimed: Callable[[Job], None],
        shared: Callable[[], bool],
    ) -> None:
        self._store = store
        self._driver = driver
        self._config = config
        self._identity = identity
        self._claimed = claimed
        self._shared = shared
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A slot may be free or a job may be waiting: look now."""
        self._wake.set()

    async def run(self) -> None:
        """Claim until cancelled."""
        while True:
            self._wake.clear()
            try:
                while await self.claim_one():
                    pass
            except Exception:
                # A failed claim changed nothing (one statement); try again shortly, never stop the queue.
                log.exception("Could not claim the next job; retrying")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            # Polls while another process may queue a job or free a slot (wait_event keeps a stop's cancel).
            await wait_event(self._wake, POLL_SECONDS if self._shared() else None)

    async def claim_one(self) -> bool:
        """Claim one job and start driving it; False when none can go now."""
        if not self._driver.accepting:
            return False
        job = await self._store.claim(
            max_active=self._config.max_active_tasks,  # each route's cap: the model table's
            member_cap=self._config.member_max_concurrent_jobs,
            holder=self._identity.id,
            private_after=to_millis(self._store.clock() - private_deadline(self._config)),
        )
        if job is None:
            return False
        self._claimed(job)
        self._driver.drive(job)
        return True
