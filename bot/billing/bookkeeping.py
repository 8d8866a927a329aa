"""The books close: the spend counters are checked against the ledger at start and every day.

The counters (``usage``, ``member_activity``) are sums over ledger rows kept by triggers, and every
limit check reads them; :func:`verify_counters` rebuilds them from the rows and lists every
difference. :class:`Bookkeeping` runs it in every gateway process (started by ``bot.app``), logs
any drift, hands each result to an observer (the Prometheus metrics) and keeps the last one for
``/budget report``.

Cheap on a large database, and off the hot path:

* **bounded by what can still change.** A ledger row counts in the periods of its job's reservation,
  and jobs end within hours, so only the current and the previous month's counters (and the days and
  weeks inside them) can still move. The daily check rebuilds exactly those: it reads the ledger
  rows from the first one written a day before the previous month began (found by a binary search
  on the primary key, :func:`first_ledger_id_since`) and the counters of those periods (the
  ``usage_by_period`` index). A full check (``since=None``) is there for tests and operators.
* **one consistent moment, no locks.** Everything is read in :meth:`Database.snapshot` (SQLite: a
  second, read-only connection; PostgreSQL: ``REPEATABLE READ READ ONLY``), so reservations and
  settlements committing meanwhile neither wait for the check nor show up as drift.
* **the database does the work.** One pass over the rows (grouped per member and period first),
  compared with the counters in SQL; only the differences come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.billing.periods import period_start
from bot.clock import Clock, to_millis, utc_now
from bot.config import Period
from bot.storage.database import Database, Snapshot

log = logging.getLogger(__name__)

DAY_SECONDS = 24 * 3600
# Rows are found by id, and ids follow time only roughly (clocks of several processes, transactions
# that commit out of order): the window starts this long before the periods it checks.
WINDOW_SLACK = timedelta(days=1)
_SHOWN_IN_LOG = 20


@dataclass(frozen=True)
class BooksCheck:
    """One comparison of the counters with the ledger."""

    at: datetime
    since: datetime | None  # the first period start checked (None: every period)
    problems: tuple[str, ...]  # one line per counter that disagrees
    error: str | None = None  # the check itself failed (the database was unreachable, …)

    @property
    def drift(self) -> int:
        """How many counters disagree with the ledger."""
        return len(self.problems)


class BooksObserver(Protocol):
    """Told about every check (the Prometheus metrics)."""

    def books_checked(self, check: BooksCheck) -> None:
        """Record one check."""


def checked_since(now: datetime) -> datetime:
    """The first period the daily check covers: the start of the month before ``now``'s."""
    this_month = period_start(Period.MONTH, now)
    return period_start(Period.MONTH, this_month - timedelta(days=1))


class Bookkeeping:
    """Checks the counters against the ledger at start and then every ``interval_seconds``."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock = utc_now,
        observer: BooksObserver | None = None,
        interval_seconds: float = DAY_SECONDS,
    ) -> None:
        self._db = db
        self._clock = clock
        self._observer = observer
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self.last: BooksCheck | None = None

    async def run(self) -> BooksCheck:
        """Check the periods that can still change; log, observe and keep the result."""
        now = self._clock()
        since = checked_since(now)
        try:
            problems = tuple(await verify_counters(self._db, since=since))
        except Exception as exc:  # a check that cannot run is itself worth an alert, never a crash
            log.exception("Could not check the spend counters against the ledger")
            check = BooksCheck(now, since, (), error=f"{type(exc).__name__}: {exc}")
        else:
            check = BooksCheck(now, since, problems)
            if problems:
                shown = "; ".join(problems[:_SHOWN_IN_LOG])
                more = f" (and {len(problems) - _SHOWN_IN_LOG} more)" if len(problems) > _SHOWN_IN_LOG else ""
                log.error("%d spend counters disagree with the ledger: %s%s", len(problems), shown, more)
            else:
                log.info("Spend counters match the ledger (periods since %s)", f"{since:%Y-%m-%d}")
        self.last = check
        if self._observer is not None:
            self._observer.books_checked(check)
        return check

    def start(self) -> None:
        """Check now (in the background), then every interval, until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="fluxcord-bookkeeping")

    async def stop(self) -> None:
        """Stop checking (waits for the check in progress to be cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await self.run()
            await asyncio.sleep(self._interval)


async def verify_counters(db: Database, *, since: datetime | None = None) -> list[str]:
    """Rebuild the counters from the ledger rows; return the mismatches (empty when the books close).

    ``since``: only the counters of periods starting at or after it (and only the ledger rows that
    can count in them); None checks every period.
    """
    async with db.snapshot() as snap:
        if since is None:
            first, bounds = 0, {"day": "d:0000", "week": "w:0000", "month": "m:0000"}
        else:
            first = await first_ledger_id_since(snap, since - WINDOW_SLACK)
            bounds = {"day": f"d:{since:%Y-%m-%d}", "week": _first_week_key(since), "month": f"m:{since:%Y-%m}"}
        params: dict[str, Any] = {"first": first, **bounds}
        counters = await snap.fetch_all(_COUNTERS_SQL, params)
        pending = await snap.fetch_all(_PENDING_SQL, {"first": first})
    problems = [
        f"{(r['scope'], r['period'])}: counters {(r['have_micros'], r['have_images'], r['have_granted'])}"
        f" != ledger {(r['want_micros'], r['want_images'], r['want_granted'])}"
        for r in sorted(counters, key=lambda r: (r["scope"], r["period"]))
    ]
    problems += [
        f"member {r['guild_id']}:{r['user_id']}: pending {r['pending_jobs']} != open {r['open_jobs']}"
        for r in sorted(pending, key=lambda r: (r["guild_id"], r["user_id"]))
    ]
    return problems


async def first_ledger_id_since(snap: Snapshot, moment: datetime) -> int:
    """The id of the first ledger row written at or after ``moment`` (past the last id if none).

    A binary search on the primary key (ids grow with time), so a few index lookups however long
    the ledger is.
    """
    target = to_millis(moment)
    bounds = await snap.fetch_one("SELECT MIN(id) AS low, MAX(id) AS high FROM ledger")
    if bounds is None or bounds["low"] is None:
        return 0
    low, high = bounds["low"], bounds["high"] + 1
    while low < high:
        middle = (low + high) // 2
        row = await snap.fetch_one("SELECT id, at FROM ledger WHERE id >= ? ORDER BY id LIMIT 1", (middle,))
        if row is None or row["at"] >= target:
            high = middle
        else:
            low = row["id"] + 1
    return low


def _first_week_key(since: datetime) -> str:
    """The key of the first week that starts on or after ``since`` (a week begun earlier is not whole)."""
    start = period_start(Period.WEEK, since)
    if start < since:
        start += timedelta(days=7)
    return f"w:{start:%Y-%m-%d}"


# Per member and period, what the ledger rows add up to; then the nine counters each group feeds
# (the counting triggers of migration 0002, as sums), compared with the counters' own sums (on
# PostgreSQL a counter is spread over shards, migration 0016). Period keys have a fixed width, so
# ranges such as [:day, 'd:9999') hold under any collation and use the usage_by_period index.
_COUNTERS_SQL = """
WITH grouped AS MATERIALIZED (
    SELECT guild_id, user_id, day, week, month,
        SUM(CASE WHEN kind = 'grant' THEN 0 ELSE member_micros END) AS member_spend,
        SUM(CASE WHEN kind = 'grant' THEN member_micros ELSE 0 END) AS granted,
        SUM(CASE WHEN kind = 'grant' THEN 0 ELSE server_micros END) AS server_spend,
        SUM(CASE WHEN kind = 'grant' THEN 0 ELSE member_images END) AS images
    FROM ledger WHERE id >= :first GROUP BY guild_id, user_id, day, week, month
), contributions (scope, period, micros, images, granted) AS (
    SELECT 'm:' || guild_id || ':' || user_id, day, member_spend, images, granted FROM grouped WHERE day >= :day
    UNION ALL SELECT 'm:' || guild_id || ':' || user_id, week, member_spend, images, granted
        FROM grouped WHERE week >= :week
    UNION ALL SELECT 'm:' || guild_id || ':' || user_id, month, member_spend, images, granted
        FROM grouped WHERE month >= :month
    UNION ALL SELECT 's:' || guild_id, day, server_spend, images, 0 FROM grouped WHERE day >= :day
    UNION ALL SELECT 's:' || guild_id, week, server_spend, images, 0 FROM grouped WHERE week >= :week
    UNION ALL SELECT 's:' || guild_id, month, server_spend, images, 0 FROM grouped WHERE month >= :month
    UNION ALL SELECT 'bot', day, server_spend, images, 0 FROM grouped WHERE day >= :day
    UNION ALL SELECT 'bot', week, server_spend, images, 0 FROM grouped WHERE week >= :week
    UNION ALL SELECT 'bot', month, server_spend, images, 0 FROM grouped WHERE month >= :month
), want AS (
    SELECT scope, period, SUM(micros) AS micros, SUM(images) AS images, SUM(granted) AS granted
    FROM contributions GROUP BY scope, period
), have AS (
    SELECT scope, period, SUM(micros) AS micros, SUM(images) AS images, SUM(granted_micros) AS granted
    FROM usage
    WHERE (period >= :day AND period < 'd:9999') OR (period >= :week AND period < 'w:9999')
        OR (period >= :month AND period < 'm:9999')
    GROUP BY scope, period
), counter_keys AS (
    SELECT scope, period FROM want UNION SELECT scope, period FROM have
)
SELECT k.scope, k.period,
    CAST(COALESCE(h.micros, 0) AS BIGINT) AS have_micros, CAST(COALESCE(h.images, 0) AS BIGINT) AS have_images,
    CAST(COALESCE(h.granted, 0) AS BIGINT) AS have_granted,
    CAST(COALESCE(w.micros, 0) AS BIGINT) AS want_micros, CAST(COALESCE(w.images, 0) AS BIGINT) AS want_images,
    CAST(COALESCE(w.granted, 0) AS BIGINT) AS want_granted
FROM counter_keys k
LEFT JOIN have h ON h.scope = k.scope AND h.period = k.period
LEFT JOIN want w ON w.scope = k.scope AND w.period = k.period
WHERE COALESCE(h.micros, 0) != COALESCE(w.micros, 0) OR COALESCE(h.images, 0) != COALESCE(w.images, 0)
    OR COALESCE(h.granted, 0) != COALESCE(w.granted, 0)
"""

# A member's pending count against their open reservations (reserved since the window began: an
# older one still open is itself worth reporting).
_PENDING_SQL = """
SELECT a.guild_id, a.user_id, a.pending_jobs, CAST(COALESCE(o.open_jobs, 0) AS BIGINT) AS open_jobs
FROM member_activity a
LEFT JOIN (
    SELECT r.guild_id, r.user_id, COUNT(*) AS open_jobs FROM ledger r
    WHERE r.id >= :first AND r.kind = 'reserve'
        AND NOT EXISTS (SELECT 1 FROM ledger x WHERE x.job_id = r.job_id AND x.kind IN ('settle', 'release'))
    GROUP BY r.guild_id, r.user_id
) o ON o.guild_id = a.guild_id AND o.user_id = a.user_id
WHERE a.pending_jobs != COALESCE(o.open_jobs, 0)
"""
