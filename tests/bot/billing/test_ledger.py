import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.billing.ledger import Ledger, Limit, Metric, ReserveTerms, Scope
from bot.billing.refusals import CoolingDown, LimitRefused, OverLimit, TooManyPending
from bot.config import Period
from bot.errors import GenerationPaused, LimitReached

GUILD, ALICE, BOB = 10, 1, 2
PRICE = 40_000  # $0.04


def member_usd(value, period=Period.DAY):
    return Limit(Scope.MEMBER, Metric.USD, period, value, "test")


def member_images(value, period=Period.DAY):
    return Limit(Scope.MEMBER, Metric.IMAGES, period, value, "test")


def server_usd(value, period=Period.MONTH):
    return Limit(Scope.SERVER, Metric.USD, period, value, "test")


def bot_usd(value, period=Period.MONTH):
    return Limit(Scope.BOT, Metric.USD, period, value, "test")


@pytest.fixture
def ledger(db, clock):
    return Ledger(db, clock)


async def reserve(ledger, job_id, limits, user=ALICE, guild=GUILD, cost=PRICE, pending=1000, cooldown=0):
    return await ledger.reserve(
        job_id=job_id,
        guild_id=guild,
        user_id=user,
        model="flux-pro-1.1",
        estimated_micros=cost,
        terms=ReserveTerms(limits, pending, cooldown),
    )


async def try_reserve(*args, **kwargs):
    try:
        await reserve(*args, **kwargs)
    except LimitReached:
        return False
    return True


async def test_reserve_then_settle_records_rows_and_counters(ledger, db):
    await reserve(ledger, 1, [member_usd(1_000_000)])
    assert await ledger.settle(1, 35_000)
    rows = await db.fetch_all("SELECT kind, server_micros, member_micros, member_images FROM ledger ORDER BY id")
    assert [tuple(r) for r in rows] == [("reserve", 40_000, 40_000, 1), ("settle", -5_000, -5_000, 0)]
    [status] = await ledger.statuses(GUILD, ALICE, [member_usd(1_000_000)])
    assert status.used == 35_000 and status.remaining == 965_000
    assert await ledger.verify_counters() == []


async def test_every_step_is_idempotent(ledger, db):
    first = await reserve(ledger, 7, [member_usd(1_000_000)])
    again = await reserve(ledger, 7, [member_usd(1_000_000)])
    assert again.job_id == first.job_id
    assert await ledger.settle(7, 40_000)
    assert not await ledger.settle(7, 40_000)
    assert not await ledger.release(7)  # a settled job cannot also be released
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE job_id = 7") == 2
    [status] = await ledger.statuses(GUILD, ALICE, [member_usd(1_000_000)])
    assert status.used == 40_000


async def test_release_gives_everything_back(ledger):
    limits = [member_usd(PRICE), member_images(1)]
    await reserve(ledger, 1, limits)
    assert not await try_reserve(ledger, 2, limits)
    assert await ledger.release(1)
    assert await try_reserve(ledger, 3, limits)
    assert await ledger.verify_counters() == []


async def test_refund_to_member_keeps_the_server_charge(ledger):
    limits = [member_usd(1_000_000), server_usd(10_000_000), bot_usd(10_000_000)]
    await reserve(ledger, 1, limits)
    await ledger.settle(1, 40_000, refund_member=True)
    member, server, bot = await ledger.statuses(GUILD, ALICE, limits)
    assert member.used == 0
    assert server.used == 40_000 and bot.used == 40_000  # the money did leave the BFL account


async def test_refusal_names_the_limit_what_is_left_and_the_reset(ledger):
    await reserve(ledger, 1, [member_usd(50_000)])
    with pytest.raises(LimitReached) as info:
        await reserve(ledger, 2, [member_usd(50_000)])
    refusal = info.value.notice
    assert isinstance(refusal, OverLimit) and (refusal.needed, refusal.images) == (PRICE, 1)
    assert refusal.status.limit == member_usd(50_000) and refusal.status.remaining == 10_000
    assert refusal.status.resets_at == datetime(2026, 11, 19, tzinfo=UTC)  # what is left, and when it resets


async def test_image_quota_refusal(ledger):
    await reserve(ledger, 1, [member_images(1, Period.WEEK)])
    with pytest.raises(LimitRefused) as info:
        await reserve(ledger, 2, [member_images(1, Period.WEEK)])
    assert info.value.notice.status.limit.metric is Metric.IMAGES
    assert (info.value.notice.status.used, info.value.notice.status.allowance) == (1, 1)


async def test_a_refusal_leaves_no_trace(ledger, db):
    with pytest.raises(LimitReached):
        await reserve(ledger, 1, [member_usd(PRICE - 1)])
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == 0
    assert await db.fetch_value("SELECT COUNT(*) FROM usage") == 0


async def test_paused_server_refuses(ledger, db):
    await db.execute("INSERT INTO guild_settings (guild_id, paused) VALUES (?, 1)", (GUILD,))
    with pytest.raises(GenerationPaused):
        await reserve(ledger, 1, [])


async def test_pending_cap_and_cooldown(ledger, clock):
    await reserve(ledger, 1, [], pending=1)
    with pytest.raises(LimitRefused) as info:
        await reserve(ledger, 2, [], pending=1)
    assert info.value.notice == TooManyPending(pending=1, max_pending=1)
    await ledger.settle(1, PRICE)
    with pytest.raises(LimitRefused) as info:
        await reserve(ledger, 3, [], pending=1, cooldown=30)
    assert isinstance(info.value.notice, CoolingDown)
    assert timedelta(seconds=29) < info.value.notice.ready_at - clock() <= timedelta(seconds=30)
    clock.advance(seconds=30)
    await reserve(ledger, 3, [], pending=1, cooldown=30)


async def test_grant_raises_the_allowance_for_the_current_period_only(ledger, clock):
    limits = [member_usd(PRICE)]
    await reserve(ledger, 1, limits)
    assert not await try_reserve(ledger, 2, limits)
    await ledger.grant(guild_id=GUILD, user_id=ALICE, micros=PRICE, actor_id=99)
    assert await try_reserve(ledger, 2, limits)
    assert not await try_reserve(ledger, 3, limits)
    clock.advance(days=1)  # the grant was for yesterday; a new day starts from the plain limit
    [status] = await ledger.statuses(GUILD, ALICE, limits)
    assert status.used == 0 and status.granted == 0
    assert await ledger.verify_counters() == []


async def test_period_roll_over_resets_without_any_cron(ledger, clock):
    limits = [member_images(2), member_usd(10_000_000, Period.MONTH)]
    assert await try_reserve(ledger, 1, limits)
    assert await try_reserve(ledger, 2, limits)
    assert not await try_reserve(ledger, 3, limits)
    clock.advance(hours=12)  # 2026-11-19 00:00 UTC
    assert await try_reserve(ledger, 4, limits)
    _, month = await ledger.statuses(GUILD, ALICE, limits)
    assert month.used == 3 * PRICE  # the month keeps counting across days


async def test_late_settle_counts_in_the_period_of_the_reservation(ledger, clock):
    clock.now = clock.now.replace(hour=23, minute=59)
    await reserve(ledger, 1, [member_usd(1_000_000)])
    clock.advance(minutes=5)  # settles after midnight
    await ledger.settle(1, 30_000)
    [today] = await ledger.statuses(GUILD, ALICE, [member_usd(1_000_000)])
    assert today.used == 0
    assert await ledger.verify_counters() == []


async def test_members_and_servers_are_separate(ledger):
    await reserve(ledger, 1, [member_usd(PRICE)], user=ALICE)
    assert await try_reserve(ledger, 2, [member_usd(PRICE)], user=BOB)
    assert await try_reserve(ledger, 3, [member_usd(PRICE)], user=ALICE, guild=GUILD + 1)


async def test_200_concurrent_reservations_never_exceed_any_limit(ledger, db):
    limits = [member_usd(1_000_000), member_images(20), server_usd(3_000_000), bot_usd(5_000_000)]
    members = list(range(1, 11))

    async def attempt(job_id):
        return await try_reserve(ledger, job_id, limits, user=members[job_id % 10], guild=GUILD + job_id % 2)

    results = await asyncio.gather(*(attempt(job) for job in range(200)))
    # The bot-wide $5.00 allows exactly 125 images at $0.04, whatever the interleaving.
    assert sum(results) == 125
    for member in members:
        for guild in (GUILD, GUILD + 1):
            statuses = await ledger.statuses(guild, member, limits)
            for status in statuses:
                assert status.used <= status.allowance
    assert await ledger.verify_counters() == []


async def test_concurrent_reserve_and_settle_totals_match_the_ledger(ledger, db):
    limits = [server_usd(2_000_000)]

    async def job(job_id):
        if await try_reserve(ledger, job_id, limits, user=job_id % 7):
            await asyncio.sleep(0)
            if job_id % 3 == 0:
                await ledger.release(job_id)
            else:
                await ledger.settle(job_id, 30_000 + job_id % 5 * 1_000, refund_member=job_id % 4 == 0)

    await asyncio.gather(*(job(i) for i in range(300)))
    settled = await db.fetch_value(
        "SELECT SUM(r.server_micros + s.server_micros) FROM ledger r JOIN ledger s"
        " ON s.job_id = r.job_id AND s.kind = 'settle' WHERE r.kind = 'reserve'"
    )
    [server] = await ledger.statuses(GUILD, 0, limits)
    assert server.used == settled
    assert server.used <= 2_000_000
    assert await ledger.open_job_ids() == []
    assert await ledger.verify_counters() == []


async def test_counters_can_be_rebuilt_from_rows(ledger, db):
    await reserve(ledger, 1, [])
    await db.execute("UPDATE usage SET micros = micros + 1 WHERE scope = 'bot'")  # corrupt a counter
    problems = await ledger.verify_counters()
    assert problems and all("bot" in problem for problem in problems)


async def test_money_columns_refuse_floats(db):
    import sqlite3

    import asyncpg

    # SQLite's STRICT tables refuse the REAL; asyncpg refuses a float for a BIGINT parameter.
    with pytest.raises((sqlite3.IntegrityError, asyncpg.DataError)):
        await db.execute(
            "INSERT INTO ledger (kind, guild_id, user_id, server_micros, member_micros, member_images,"
            " day, week, month, at) VALUES ('adjustment', 1, 1, ?, 0, 0, 'd', 'w', 'm', 0)",
            (0.5,),
        )
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == 0
