"""The books close: the spend counters are checked against the ledger at start and every day.

The counters (``usage``, ``member_activity``) are sums over ledger rows kept by triggers, and every
limit check reads them; :func:`verify_counters` rebuilds them from the rows and lists every
difference. :class:`Bookkeeping` runs it in every gateway process (started by ``bot.app``), logs
any drift, hands each result to an observer (the Prometheus metrics) and keeps the last one for
``/budget report``.

Cheap on a large database, and off the hot path:

* **bounded by what can still change.** A ledger row counts in the periods of its job's reservation,
  and jobs end within hours, so only the counters of the month and the week still running (or closed
  less than two days ago), and of the days inside them, can still move. The daily check rebuilds
  exactly those (:func:`checked_since`): it reads the ledger rows from the first one written a day
  before that window (a binary search on the primary key, :func:`first_ledger_id_since`) and the
  counters of those periods (the ``usage_by_period`` index) — at most about five weeks of activity,
  however long the history. A full check (``since=None``) is there for tests and operators.
* **one consistent moment, no locks.** Everything is read in :meth:`Database.snapshot` (SQLite: a
  second, read-only connection; PostgreSQL: ``REPEATABLE READ READ ONLY``), so reservations and
  settlements committing meanwhile neither wait for the check nor show up as drift.
* **the database does the work.** One pass over the rows (grouped per member and period first),
  compared with the counters in SQL; only the differences come back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.aio import cancel_and_wait
from bot.billing.periods import Period, period_end, period_key, period_start
from bot.clock import Clock, to_millis, utc_now
from bot.storage.database import Database, Snapshot

log = logging.getLogger(__name__)

DAY_SECONDS = 24 * 3600
# Rows are found by id, and ids follow time only roughly (clocks of several processes, transactions
# that commit out of order): the window starts this long before the periods it checks.
WINDOW_SLACK = timedelta(days=1)
# Jobs end within hours (a timeout, then a bounded delivery): after this, a period's counters no
# longer move, and the daily check leaves it.
CLOSING = timedelta(days=2)
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
    """The first period start the daily check covers: that of the month and of the week still open.

    A period is checked every day while it runs and for ``CLOSING`` after it ends (late settlements
    of its jobs land in it), so every month and week is checked whole once it has closed.
    """
    settled = now - CLOSING
    return min(period_start(Period.MONTH, settled), period_start(Period.WEEK, settled))


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
            await cancel_and_wait(task)

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
            bounds = {"day": _first_key(Period.DAY, since), "week": _first_key(Period.WEEK, since)}
            bounds["month"] = _first_key(Period.MONTH, since)
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
    # Two subqueries: SQLite reads MIN and MAX from the index only when each stands alone.
    bounds = await snap.fetch_one("SELECT (SELECT MIN(id) FROM ledger) AS low, (SELECT MAX(id) FROM ledger) AS high")
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


def _first_key(period: Period, since: datetime) -> str:
    """The key of the first ``period`` that starts on or after ``since`` (one begun earlier is not whole)."""
    start = period_start(period, since)
    if start < since:
        start = period_end(period, since)
    return period_key(period, start)


# Per member and period, what the ledger rows add up to; then the nine counters each group feeds
# (the counting triggers of migration 0002, as sums) beside the counters' own rows (on PostgreSQL a
# counter is spread over shards, migration 0016), summed per counter: only the counters whose two
# sides differ come back. No join: one aggregation over both sides. Period keys have a fixed width,
# so ranges such as [:day, 'd:9999') hold under any collation and use the usage_by_period index.
_COUNTERS_SQL = """
WITH grouped AS MATERIALIZED (
    SELECT guild_id, user_id, day, week, month,
        SUM(CASE WHEN kind = 'grant' THEN 0 ELSE member_micros END) AS member_spend,
        SUM(CASE WHEN kind = 'grant' THEN member_micros ELSE 0 END) AS granted,
        SUM(CASE WHEN kind = 'grant' THEN 0 ELSE server_micros END) AS server_spend,
        SUM(CASE WHEN kind = 'grant' THEN 0 ELSE member_images END) AS images
    FROM ledger WHERE id >= :first GROUP BY guild_id, user_id, day, week, month
), sides (scope, period, want_micros, want_images, want_granted, have_micros, have_images, have_granted) AS (
    SELECT 'm:' || guild_id || ':' || user_id, day, member_spend, images, granted, 0, 0, 0
        FROM grouped WHERE day >= :day
    UNION ALL SELECT 'm:' || guild_id || ':' || user_id, week, member_spend, images, granted, 0, 0, 0
        FROM grouped WHERE week >= :week
    UNION ALL SELECT 'm:' || guild_id || ':' || user_id, month, member_spend, images, granted, 0, 0, 0
        FROM grouped WHERE month >= :month
    UNION ALL SELECT 's:' || guild_id, day, server_spend, images, 0, 0, 0, 0 FROM grouped WHERE day >= :day
    UNION ALL SELECT 's:' || guild_id, week, server_spend, images, 0, 0, 0, 0 FROM grouped WHERE week >= :week
    UNION ALL SELECT 's:' || guild_id, month, server_spend, images, 0, 0, 0, 0 FROM grouped WHERE month >= :month
    UNION ALL SELECT 'bot', day, server_spend, images, 0, 0, 0, 0 FROM grouped WHERE day >= :day
    UNION ALL SELECT 'bot', week, server_spend, images, 0, 0, 0, 0 FROM grouped WHERE week >= :week
    UNION ALL SELECT 'bot', month, server_spend, images, 0, 0, 0, 0 FROM grouped WHERE month >= :month
    UNION ALL SELECT scope, period, 0, 0, 0, micros, images, granted_micros FROM usage
        WHERE period >= :day AND period < 'd:9999'
    UNION ALL SELECT scope, period, 0, 0, 0, micros, images, granted_micros FROM usage
        WHERE period >= :week AND period < 'w:9999'
    UNION ALL SELECT scope, period, 0, 0, 0, micros, images, granted_micros FROM usage
        WHERE period >= :month AND period < 'm:9999'
)
SELECT scope, period,
    CAST(SUM(have_micros) AS BIGINT) AS have_micros, CAST(SUM(have_images) AS BIGINT) AS have_images,
    CAST(SUM(have_granted) AS BIGINT) AS have_granted, CAST(SUM(want_micros) AS BIGINT) AS want_micros,
    CAST(SUM(want_images) AS BIGINT) AS want_images, CAST(SUM(want_granted) AS BIGINT) AS want_granted
FROM sides GROUP BY scope, period
HAVING SUM(have_micros) != SUM(want_micros) OR SUM(have_images) != SUM(want_images)
    OR SUM(have_granted) != SUM(want_granted)
"""

# A member's pending count against their open reservations, reserved since the window began (an
# older one still open is itself worth reporting). Members with nothing pending and nothing open in
# the window are not read twice: one aggregation over both sides again.
_PENDING_SQL = """
SELECT guild_id, user_id, CAST(SUM(pending) AS BIGINT) AS pending_jobs, CAST(SUM(opened) AS BIGINT) AS open_jobs
FROM (
    SELECT guild_id, user_id, pending_jobs AS pending, 0 AS opened FROM member_activity WHERE pending_jobs != 0
    UNION ALL
    SELECT r.guild_id, r.user_id, 0, 1 FROM ledger r
    WHERE r.id >= :first AND r.kind = 'reserve'
        AND NOT EXISTS (SELECT 1 FROM ledger x WHERE x.job_id = r.job_id AND x.kind IN ('settle', 'release'))
) sides
GROUP BY guild_id, user_id
HAVING SUM(pending) != SUM(opened)
"""


async def read_counter(db: Database, scope: str, period: str) -> tuple[int, int, int]:
    """One spend counter: (micro-dollars, images, granted micro-dollars), zeros when nothing was counted.

    Every limit check's and report's figure for a scope (``scope_key``) and period comes from here. A
    sum over the counter's rows: one row today, and still right for a counter kept in several rows.
    """
    row = await db.fetch_one(
        "SELECT CAST(COALESCE(SUM(micros), 0) AS BIGINT) AS micros, CAST(COALESCE(SUM(images), 0) AS BIGINT)"
        " AS images, CAST(COALESCE(SUM(granted_micros), 0) AS BIGINT) AS granted FROM usage"
        " WHERE scope = ? AND period = ?",
        (scope, period),
    )
    assert row is not None  # an aggregate always has its row
    return row["micros"], row["images"], row["granted"]


async def verify_open(db: Database) -> list[str]:
    """``ledger_open`` (kept by triggers) compared with the reservations the ledger rows leave open."""
    kept = {(r["job_id"], r["reserve_id"]) for r in await db.fetch_all("SELECT * FROM ledger_open")}
    rebuilt = {(r["job_id"], r["id"]) for r in await db.fetch_all(_OPEN_RESERVATIONS_SQL)}
    problems = [f"open reservation of job {job} (row {row}) missing" for job, row in sorted(rebuilt - kept)]
    return problems + [f"job {job} (row {row}) listed open but resolved" for job, row in sorted(kept - rebuilt)]


_OPEN_RESERVATIONS_SQL = (
    "SELECT r.job_id, r.id FROM ledger r WHERE r.kind = 'reserve' AND NOT EXISTS"
    " (SELECT 1 FROM ledger o WHERE o.job_id = r.job_id AND o.kind IN ('settle', 'release'))"
)

# Every counter rebuilt from the ledger rows alone (the benchmarks' reference for the counting triggers).
_REBUILD_USAGE_SQL = """
WITH contributions (scope, period, micros, images, granted) AS (
    SELECT 'm:' || guild_id || ':' || user_id, day,   member_micros, member_images, 0
        FROM ledger WHERE kind != 'grant'
    UNION ALL SELECT 'm:' || guild_id || ':' || user_id, week,  member_micros, member_images, 0
        FROM ledger WHERE kind != 'grant'
    UNION ALL SELECT 'm:' || guild_id || ':' || user_id, month, member_micros, member_images, 0
        FROM ledger WHERE kind != 'grant'
    UNION ALL SELECT 'm:' || guild_id || ':' || user_id, day,   0, 0, member_micros FROM ledger WHERE kind = 'grant'
    UNION ALL SELECT 'm:' || guild_id || ':' || user_id, week,  0, 0, member_micros FROM ledger WHERE kind = 'grant'
    UNION ALL SELECT 'm:' || guild_id || ':' || user_id, month, 0, 0, member_micros FROM ledger WHERE kind = 'grant'
    UNION ALL SELECT 's:' || guild_id, day,   server_micros, member_images, 0 FROM ledger WHERE kind != 'grant'
    UNION ALL SELECT 's:' || guild_id, week,  server_micros, member_images, 0 FROM ledger WHERE kind != 'grant'
    UNION ALL SELECT 's:' || guild_id, month, server_micros, member_images, 0 FROM ledger WHERE kind != 'grant'
    UNION ALL SELECT 'bot', day,   server_micros, member_images, 0 FROM ledger WHERE kind != 'grant'
    UNION ALL SELECT 'bot', week,  server_micros, member_images, 0 FROM ledger WHERE kind != 'grant'
    UNION ALL SELECT 'bot', month, server_micros, member_images, 0 FROM ledger WHERE kind != 'grant'
)
SELECT scope, period, CAST(SUM(micros) AS BIGINT) AS micros, CAST(SUM(images) AS BIGINT) AS images,
    CAST(SUM(granted) AS BIGINT) AS granted
FROM contributions GROUP BY scope, period
"""
