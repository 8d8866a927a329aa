"""The books close: counters = ledger, checked at start and daily, drift logged, counted and kept for reports."""

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from bot.billing.bookkeeping import Bookkeeping, checked_since, first_ledger_id_since, verify_counters
from bot.billing.ledger import Ledger, Limit, Metric, ReserveTerms, Scope
from bot.config import Period

GUILD = 10
PRICE = 40_000
LIMITS = [
    Limit(Scope.MEMBER, Metric.USD, Period.DAY, 10**9, "test"),
    Limit(Scope.SERVER, Metric.USD, Period.DAY, 10**10, "test"),
    Limit(Scope.BOT, Metric.USD, Period.MONTH, 10**11, "test"),
]


class Recorder:
    """The observer a test reads: every check, and an event per check."""

    def __init__(self):
        self.checks = []
        self._checked = asyncio.Event()

    def books_checked(self, check):
        self.checks.append(check)
        self._checked.set()

    async def wait_for(self, count, timeout=10):
        async with asyncio.timeout(timeout):
            while True:
                self._checked.clear()
                if len(self.checks) >= count:
                    return
                await self._checked.wait()


async def cycle(ledger, job_id, user=1, cost=PRICE, settle=PRICE):
    await ledger.reserve(
        job_id=job_id,
        guild_id=GUILD,
        user_id=user,
        model="flux-pro-1.1",
        estimated_micros=cost,
        terms=ReserveTerms(LIMITS, 10**6),
    )
    if settle is not None:
        await ledger.settle(job_id, settle)


async def test_clean_books_report_nothing(db, clock):
    ledger = Ledger(db, clock)
    for job in range(5):
        await cycle(ledger, job, user=job % 2, settle=None if job == 4 else 30_000)
    await ledger.grant(guild_id=GUILD, user_id=1, micros=5, actor_id=9)
    recorder = Recorder()
    check = await Bookkeeping(db, clock=clock, observer=recorder).run()
    assert check.problems == () and check.error is None and check.drift == 0
    assert recorder.checks == [check]


async def test_drift_in_a_counter_is_found_logged_and_observed(db, clock, caplog):
    ledger = Ledger(db, clock)
    await cycle(ledger, 1)
    await db.execute("UPDATE usage SET micros = micros + 7 WHERE scope = ? AND period LIKE 'd:%'", (f"s:{GUILD}",))
    recorder = Recorder()
    with caplog.at_level(logging.ERROR, logger="bot.billing.bookkeeping"):
        check = await Bookkeeping(db, clock=clock, observer=recorder).run()
    assert check.drift == 1 and f"s:{GUILD}" in check.problems[0] and "d:2026-11-18" in check.problems[0]
    assert recorder.checks == [check]
    assert any("disagree with the ledger" in r.getMessage() and f"s:{GUILD}" in r.getMessage() for r in caplog.records)


async def test_a_pending_count_that_drifted_is_found(db, clock):
    ledger = Ledger(db, clock)
    await cycle(ledger, 1, settle=None)
    await db.execute("UPDATE member_activity SET pending_jobs = 3")
    [problem] = await verify_counters(db)
    assert "pending 3 != open 1" in problem


async def test_the_check_sees_one_moment_while_writes_run(db, clock):
    """Reservations and settlements committing during a check never show up as drift."""
    ledger = Ledger(db, clock)
    stop = asyncio.Event()

    async def writer(first):
        job = first
        while not stop.is_set():
            await cycle(ledger, job, user=job % 7, settle=PRICE - job % 3)
            job += 100

    writers = [asyncio.create_task(writer(n)) for n in range(20)]
    try:
        for _ in range(15):
            assert await verify_counters(db) == []
            await asyncio.sleep(0)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'") > 20


@pytest.mark.parametrize(
    ("today", "since"),
    [
        (datetime(2026, 11, 18, 12, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),  # this month
        (datetime(2026, 12, 2, 12, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),  # November, just closed
        (datetime(2026, 12, 3, 12, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)),  # the week still open
        (datetime(2026, 12, 9, 12, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_the_daily_window_covers_the_periods_still_open_or_just_closed(today, since):
    assert checked_since(today) == since


async def test_the_daily_check_reads_the_periods_that_can_still_change(db, clock):
    """Counters of the periods still open (or just closed) are checked daily; older ones by a full check."""
    ledger = Ledger(db, clock)
    clock.now = datetime(2026, 8, 10, 12, tzinfo=UTC)
    await cycle(ledger, 1)
    clock.now = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    await cycle(ledger, 2)
    clock.now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    await cycle(ledger, 3)
    await db.execute("UPDATE usage SET images = images + 1 WHERE scope = 'bot' AND period = 'm:2026-08'")
    await db.execute("UPDATE usage SET images = images + 1 WHERE scope = 'bot' AND period = 'd:2026-11-30'")
    daily = await Bookkeeping(db, clock=clock).run()
    assert daily.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert len(daily.problems) == 1 and "('bot', 'd:2026-11-30')" in daily.problems[0]
    full = await verify_counters(db)
    assert sorted(p.split("'")[3] for p in full) == ["d:2026-11-30", "m:2026-08"]


async def test_a_window_that_starts_inside_a_month_leaves_that_month_out(db, clock):
    """On 3 December the window starts with the week of 30 November: November is not whole in it."""
    ledger = Ledger(db, clock)
    for job, day in enumerate((2, 20, 29, 30)):
        clock.now = datetime(2026, 11, day, 12, tzinfo=UTC)
        await cycle(ledger, job)
    clock.now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    await cycle(ledger, 9)
    check = await Bookkeeping(db, clock=clock).run()
    assert check.since == datetime(2026, 11, 30, tzinfo=UTC) and check.problems == ()
    await db.execute("UPDATE usage SET micros = micros + 1 WHERE scope = 'bot' AND period = 'w:2026-11-30'")
    assert [p.split("'")[3] for p in (await Bookkeeping(db, clock=clock).run()).problems] == ["w:2026-11-30"]


async def test_the_window_starts_at_the_first_ledger_row_of_its_day(db, clock):
    ledger = Ledger(db, clock)
    for day, job in ((1, 1), (5, 2), (5, 3), (9, 4)):
        clock.now = datetime(2026, 11, day, 12, tzinfo=UTC)
        await cycle(ledger, job)  # two rows per job: reserve, settle
    ids = [r["id"] for r in await db.fetch_all("SELECT id FROM ledger ORDER BY id")]
    async with db.snapshot() as snap:
        assert await first_ledger_id_since(snap, datetime(2026, 11, 5, tzinfo=UTC)) == ids[2]
        assert await first_ledger_id_since(snap, datetime(2026, 11, 1, tzinfo=UTC)) == ids[0]
        assert await first_ledger_id_since(snap, datetime(2026, 12, 1, tzinfo=UTC)) > ids[-1]


async def test_the_service_checks_at_start_and_then_every_interval(db, clock):
    ledger = Ledger(db, clock)
    await cycle(ledger, 1)
    recorder = Recorder()
    books = Bookkeeping(db, clock=clock, observer=recorder, interval_seconds=0.01)
    books.start()
    try:
        await recorder.wait_for(1)
        assert recorder.checks[0].drift == 0
        await db.execute("UPDATE usage SET micros = micros + 1 WHERE scope LIKE 'm:%' AND period LIKE 'w:%'")
        await recorder.wait_for(3)
        assert recorder.checks[-1].drift == 1 and books.last is recorder.checks[-1]
    finally:
        await books.stop()


async def test_a_check_that_cannot_run_is_reported_as_an_error(db, clock):
    await db.execute("DROP TABLE member_activity")
    recorder = Recorder()
    check = await Bookkeeping(db, clock=clock, observer=recorder).run()
    assert check.error and check.problems == ()
    assert recorder.checks == [check]
