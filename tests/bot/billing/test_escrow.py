"""Caps across counter shards (PostgreSQL: escrow, bot.billing.escrow); the same promises hold on SQLite.

The tests that look inside the shards run on PostgreSQL only; the caps are checked on both backends.
"""

import asyncio

import pytest

from bot.billing.ledger import Ledger, Limit, Metric, ReserveTerms, Scope
from bot.config import Period
from bot.errors import LimitReached

GUILD = 10
PRICE = 40_000


def bot_usd(value):
    return Limit(Scope.BOT, Metric.USD, Period.MONTH, value, "test")


def server_usd(value, period=Period.DAY):
    return Limit(Scope.SERVER, Metric.USD, period, value, "test")


@pytest.fixture
def ledger(db, clock):
    return Ledger(db, clock)


async def reserve(ledger, job_id, limits, user, cost=PRICE):
    try:
        await ledger.reserve(
            job_id=job_id,
            guild_id=GUILD,
            user_id=user,
            model="flux-pro-1.1",
            estimated_micros=cost,
            terms=ReserveTerms(limits, 10**6),
        )
    except LimitReached:
        return False
    return True


async def members_in_different_shards(db, count):
    """``count`` user ids whose server and bot counters land in different shards (any ids on SQLite)."""
    if db.backend == "sqlite":
        return list(range(1, count + 1))
    chosen, shards = [], set()
    for user in range(1, 1000):
        shard = await db.fetch_value("SELECT ledger_shard(?, ?)", (GUILD, user))
        if shard not in shards:
            shards.add(shard)
            chosen.append(user)
            if len(chosen) == count:
                return chosen
    raise AssertionError("not enough shards")


async def spent(ledger, limit):
    [status] = await ledger.statuses(GUILD, 0, [limit])
    return status.used


async def test_a_settle_above_its_estimate_never_lets_a_later_reservation_past_the_cap(ledger, db):
    alice, bob = await members_in_different_shards(db, 2)
    cap = bot_usd(12_800_000)  # each shard gets an allowance of 100,000 at a time: more than one image
    assert await reserve(ledger, 1, [cap], alice)
    assert await reserve(ledger, 2, [cap], bob)  # bob's shard keeps 60,000 of its allowance
    await ledger.settle(1, 12_760_000)  # BFL charged far more than estimated: spent is now 12.8 M
    assert await spent(ledger, cap) == 12_800_000
    assert not await reserve(ledger, 3, [cap], bob)  # bob's allowance does not outlive the overspend
    assert not await reserve(ledger, 4, [cap], alice, cost=1)
    assert await spent(ledger, cap) == 12_800_000
    await ledger.release(2)  # 40,000 back under the cap
    assert await reserve(ledger, 5, [cap], bob)
    assert not await reserve(ledger, 6, [cap], alice, cost=1)
    assert await ledger.verify_counters() == []


async def test_a_lowered_cap_holds_at_once(ledger, db):
    alice, bob = await members_in_different_shards(db, 2)
    assert await reserve(ledger, 1, [server_usd(12_800_000)], alice)  # allowances granted under $12.80
    assert await reserve(ledger, 2, [server_usd(12_800_000)], bob)
    lowered = [server_usd(100_000)]  # a moderator lowers the server's daily budget to $0.10
    assert not await reserve(ledger, 3, lowered, alice)
    assert not await reserve(ledger, 4, lowered, bob)
    assert await reserve(ledger, 5, lowered, bob, cost=20_000)  # 80,000 + 20,000: exactly the new cap
    assert not await reserve(ledger, 6, lowered, alice, cost=1)
    assert await spent(ledger, server_usd(0)) == 100_000
    raised = [server_usd(12_800_000)]
    assert await reserve(ledger, 7, raised, alice)
    assert await ledger.verify_counters() == []


async def test_the_whole_cap_is_usable_wherever_its_allowances_lie(ledger, db):
    """Allowances spread over many shards still add up to exactly the cap: the last ones move."""
    members = await members_in_different_shards(db, 40)
    cap = bot_usd(320 * PRICE + 39_999)  # exactly 320 images fit

    async def attempt(job_id):
        return await reserve(ledger, job_id, [cap], members[job_id % len(members)])

    results = await asyncio.gather(*(attempt(job) for job in range(400)))
    assert sum(results) == 320
    assert await spent(ledger, cap) == 320 * PRICE
    assert await ledger.verify_counters() == []


async def test_an_image_quota_on_the_server_holds_across_shards(ledger, db):
    members = await members_in_different_shards(db, 6)
    quota = Limit(Scope.SERVER, Metric.IMAGES, Period.WEEK, 5, "test")
    results = await asyncio.gather(*(reserve(ledger, job, [quota], members[job % 6], cost=0) for job in range(12)))
    assert sum(results) == 5
    [status] = await ledger.statuses(GUILD, 0, [quota])
    assert status.used == 5
    await ledger.release(next(job for job, ok in enumerate(results) if ok))
    assert await reserve(ledger, 20, [quota], members[0], cost=0)
    assert not await reserve(ledger, 21, [quota], members[1], cost=0)
    assert await ledger.verify_counters() == []


@pytest.mark.sqlite_only
async def test_sqlite_keeps_one_row_per_counter(ledger, db):
    for user in range(1, 6):
        assert await reserve(ledger, user, [bot_usd(10**9)], user)
    assert await db.fetch_value("SELECT COUNT(*) FROM usage WHERE scope = 'bot'") == 3  # day, week, month


async def pg_only(db):
    if db.backend != "postgresql":
        pytest.skip("looks inside PostgreSQL's counter shards")


async def test_spend_spreads_over_shards_and_the_check_stays_exact(ledger, db):
    await pg_only(db)
    members = await members_in_different_shards(db, 12)
    for job, user in enumerate(members):
        assert await reserve(ledger, job, [bot_usd(10**9), server_usd(10**9)], user)
        await ledger.settle(job, 30_000)
    rows = await db.fetch_value("SELECT COUNT(*) FROM usage WHERE scope = 'bot' AND period LIKE 'm:%'")
    assert rows == 12  # one row per shard in use
    assert await spent(ledger, bot_usd(0)) == 12 * 30_000
    assert await ledger.verify_counters() == []
    await db.execute(
        "UPDATE usage SET micros = micros + 1 WHERE scope = ? AND period LIKE 'd:%' AND shard = ledger_shard(?, ?)",
        (f"s:{GUILD}", GUILD, members[5]),
    )
    [problem] = await ledger.verify_counters()
    assert f"('s:{GUILD}', 'd:2026-11-18')" in problem and "360001" in problem


async def test_allowances_and_spend_never_add_up_past_the_cap(ledger, db):
    await pg_only(db)
    members = await members_in_different_shards(db, 30)
    cap = 3_000_000

    async def attempt(job_id):
        user = members[job_id % len(members)]
        if await reserve(ledger, job_id, [bot_usd(cap), server_usd(cap * 2)], user, cost=10_000 + job_id % 7):
            await ledger.settle(job_id, 9_000 + job_id % 5 * 250)  # at most the estimate

    await asyncio.gather(*(attempt(job) for job in range(500)))
    for scope in ("bot", f"s:{GUILD}"):
        row = await db.fetch_one(
            "SELECT CAST(SUM(micros) AS BIGINT) AS spent, CAST(SUM(escrow_micros) AS BIGINT) AS held,"
            " MIN(escrow_micros) AS lowest FROM usage WHERE scope = ? AND period = ?",
            (scope, "m:2026-11" if scope == "bot" else "d:2026-11-18"),
        )
        assert row["lowest"] >= 0  # no shard in debt: every settlement cost at most its estimate
        assert row["spent"] + row["held"] <= (cap if scope == "bot" else cap * 2)
    assert await ledger.verify_counters() == []


async def test_a_reservation_that_waits_for_a_refill_holds_no_lock_meanwhile(ledger, db, clock):
    """While another refill holds the counter, a reservation needing one waits holding nothing."""
    await pg_only(db)
    import asyncpg

    [alice] = await members_in_different_shards(db, 1)
    cap = bot_usd(100 * PRICE)  # a grant is just the cost here: each reservation needs a refill
    assert await reserve(ledger, 1, [cap], alice)
    holder = await asyncpg.connect(db.url)
    try:
        key = "fluxcord escrow bot m:2026-11 usd"
        await holder.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)  # a refill in progress
        waiting = asyncio.create_task(reserve(ledger, 2, [cap], alice))
        async with asyncio.timeout(10):
            while not await holder.fetchval(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ):
                await asyncio.sleep(0)  # the reservation has not reached the lock yet
                assert not waiting.done()
        await ledger.settle(1, PRICE)  # alice's own rows are free: the settlement does not wait
        await holder.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
        assert await asyncio.wait_for(waiting, 10)
    finally:
        await holder.close()
    assert await spent(ledger, cap) == 2 * PRICE
    assert await ledger.verify_counters() == []
