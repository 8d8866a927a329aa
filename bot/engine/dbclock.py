"""The database's clock: every time that decides ownership is read from it, not from this machine.

Several processes share one database; if each judged leases, takeovers, acknowledgement deadlines and
timers by its own clock, a machine 40 s ahead would declare another's live lease expired and take an
in-flight job from it. So the engine's store reads time from a :class:`DbClock`:

* **PostgreSQL**: the server's ``clock_timestamp()``. Reading it on every decision would add a round
  trip to each, so the clock measures the offset between the server and this process's clock once
  (at start, and again every :data:`RESYNC_SECONDS`), halving the round trip, and applies it: a skew
  of any size between machines is cancelled; the error is at most half a round trip.
* **SQLite**: the database is one file on one host, and every process using it runs on that host, so
  the host's clock *is* the database's clock (SQLite's own ``'now'`` reads it too): the offset is 0.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from bot.clock import Clock, to_millis, utc_now
from bot.storage.database import Database

log = logging.getLogger(__name__)

RESYNC_SECONDS = 3600.0
SAMPLES = 3  # round trips per measurement; the quickest one is used
SKEW_WARNING = timedelta(seconds=5)
_SERVER_NOW_MS = "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"


class DbClock:
    """A clock (a callable returning an aware UTC datetime) that agrees with the database server's."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock
        self._offset = timedelta(0)
        self._synced_at: float | None = None

    def __call__(self) -> datetime:
        """Now, by the database's clock."""
        return self._clock() + self._offset

    @property
    def offset(self) -> timedelta:
        """How far the database's clock is ahead of this process's."""
        return self._offset

    async def sync(self, *, force: bool = False) -> None:
        """Measure the offset (PostgreSQL), at most every :data:`RESYNC_SECONDS` unless ``force``."""
        if self._db.backend != "postgresql":
            return
        if not force and self._synced_at is not None and time.monotonic() - self._synced_at < RESYNC_SECONDS:
            return
        best: tuple[float, timedelta] | None = None
        for _sample in range(SAMPLES):  # the quickest round trip bounds the error best (as NTP does)
            sent = time.monotonic()
            before = self._clock()
            server_ms = int(await self._db.fetch_value(_SERVER_NOW_MS))
            trip = time.monotonic() - sent
            offset = timedelta(milliseconds=server_ms - to_millis(before + timedelta(seconds=trip / 2)))
            if best is None or trip < best[0]:
                best = (trip, offset)
        assert best is not None
        offset = best[1]
        if abs(offset - self._offset) > SKEW_WARNING:
            shown = -offset.total_seconds()
            log.warning("This machine's clock is %.1f s off the database server's; using the server's", shown)
        self._offset = offset
        self._synced_at = time.monotonic()
