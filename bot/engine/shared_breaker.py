"""The circuit breakers shared by every process on one database.

Admission happens in the gateway process, but BFL's failures are seen by whichever process runs the
job (``python -m bot worker``). So each process records the provider errors (and, when they matter,
the successes) it sees in ``breaker_events``, and rebuilds every model's breaker from the recent
events there (:meth:`bot.engine.breaker.CircuitBreakers.replay`), at most every
:data:`REFRESH_SECONDS` so admission stays in memory almost always. Its own verdicts apply locally at
once. The half-open trial is held per process: with several processes, each may let one trial through.
Times are wall-clock seconds, the one clock processes share.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.engine.breaker import CircuitBreakers
from bot.storage.database import Database

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0  # how stale a process's view of the other processes' failures may be
PRUNE_SECONDS = 600.0  # how often old events are deleted


@dataclass(frozen=True)
class BreakerEvent:
    """A provider error (``failure``) or a proper answer (``success``) for a model, at wall-clock seconds."""

    model: str
    kind: str
    at: float


class BreakerLog:
    """The ``breaker_events`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, events: Sequence[BreakerEvent]) -> None:
        """Append events (one transaction)."""
        async with self._db.transaction() as tx:
            for event in events:
                await tx.execute(
                    "INSERT INTO breaker_events (model, kind, at) VALUES (?, ?, ?)",
                    (event.model, event.kind, round(event.at * 1000)),
                )

    async def since(self, moment: float) -> list[tuple[str, str, float]]:
        """Every event from ``moment`` on, oldest first, as ``(model, kind, seconds)``."""
        rows = await self._db.fetch_all(
            "SELECT model, kind, at FROM breaker_events WHERE at >= ? ORDER BY at, id", (round(moment * 1000),)
        )
        return [(r["model"], r["kind"], r["at"] / 1000) for r in rows]

    async def prune(self, before: float) -> int:
        """Delete events older than ``before``; how many."""
        return await self._db.execute("DELETE FROM breaker_events WHERE at < ?", (round(before * 1000),))


class SharedBreakers(CircuitBreakers):
    """:class:`CircuitBreakers` whose failures and successes every process shares through the database."""

    def __init__(
        self,
        events: BreakerLog,
        *,
        failures: int = 5,
        window: float = 60.0,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.time,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        super().__init__(failures=failures, window=window, cooldown=cooldown, clock=clock)
        self._events = events
        self._refresh = refresh_seconds
        # Older events cannot change a state any more, except an open breaker nobody tried since: it
        # reads as closed once its events are this old.
        self._horizon = max(PRUNE_SECONDS, 2 * (window + cooldown))
        self._pending: list[BreakerEvent] = []
        self._loaded_at: float | None = None
        self._pruned_at: float | None = None

    def failed(self, model: str) -> None:
        """A provider error: counted here at once, and shared at the next :meth:`sync`."""
        super().failed(model)
        self._pending.append(BreakerEvent(model, "failure", self._clock()))

    def succeeded(self, model: str) -> None:
        """A proper answer: closes the breaker here at once; shared if it can close one elsewhere."""
        entry = self._models.get(model)
        if entry is not None:  # nothing to share for a model nobody saw fail (the common case)
            self._pending.append(BreakerEvent(model, "success", self._clock()))
        super().succeeded(model)

    async def sync(self, *, force: bool = False) -> None:
        """Write this process's new events, and read everyone's when the view is stale (or ``force``)."""
        pending, self._pending = self._pending, []
        if pending:
            try:
                await self._events.record(pending)
            except BaseException:
                self._pending[:0] = pending  # try again next time
                raise
        now = self._clock()
        if not force and not pending and self._loaded_at is not None and now - self._loaded_at < self._refresh:
            return
        self.replay(await self._events.since(now - self._horizon))
        self._loaded_at = now
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_SECONDS:
            self._pruned_at = now
            pruned = await self._events.prune(now - self._horizon)
            if pruned:
                log.debug("Pruned %d old circuit-breaker events", pruned)
