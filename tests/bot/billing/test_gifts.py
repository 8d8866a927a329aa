"""Gifts move a member's remaining budget to another member: atomic, audited, never overdrawn (both backends)."""

import asyncio
import contextlib

import pytest

from bot.audit import AuditLog
from bot.billing.caps import Limit, Metric, Scope, Source
from bot.billing.gifts import Gift, GiftRefused, Gifts
from bot.billing.ledger import Ledger, ReserveTerms
from bot.billing.periods import Period
from bot.server_settings import ServerSettings

GUILD, ALICE, BOB, MOD = 100, 1, 2, 9
DOLLAR = 1_000_000
DAILY = [Limit(Scope.MEMBER, Metric.USD, Period.DAY, DOLLAR, Source.BOT_DEFAULT)]


@pytest.fixture
def gifts(db, clock):
    return Gifts(db, Ledger(db, clock), AuditLog(db, clock), clock)


@pytest.fixture
async def cap(db, clock):
    """Turns gifts on with a daily cap (µ$)."""

    async def set_cap(micros: int) -> None:
        await ServerSettings(db, AuditLog(db, clock)).update(
            GUILD, "gift_cap_micros", micros, actor_id=MOD, action="gifts.cap", shown=str(micros)
        )

    return set_cap


async def allowance(db, clock, user_id):
    """What a member has left today under a $1 daily limit."""
    [status] = await Ledger(db, clock).statuses(GUILD, user_id, DAILY)
    return status.allowance - status.used


async def state(db):
    """Everything a gift could change."""
    return (
        await db.fetch_all("SELECT kind, user_id, member_micros FROM ledger ORDER BY id"),
        await db.fetch_all("SELECT scope, period, micros, granted_micros FROM usage ORDER BY scope, period"),
        await db.fetch_all("SELECT * FROM gifts"),
        await db.fetch_all("SELECT action FROM audit_log WHERE action = 'gift'"),
    )


async def test_a_gift_moves_budget_from_giver_to_receiver_in_one_audited_step(db, clock, gifts, cap):
    await cap(DOLLAR)
    made = await gifts.give(Gift(GUILD, ALICE, BOB, 300_000, note="for the poster"), DAILY)
    assert made.left_micros == 700_000 and made.cap_left_micros == 700_000
    assert await allowance(db, clock, ALICE) == 700_000
    assert await allowance(db, clock, BOB) == 1_300_000
    assert made.entry.action == "gift" and made.entry.actor_id == ALICE and made.entry.target == f"member:{BOB}"
    assert await db.fetch_value("SELECT SUM(member_micros) FROM ledger WHERE kind = 'grant'") == 0
    assert await db.fetch_value("SELECT note FROM gifts") == "for the poster"
    assert await Ledger(db, clock).verify_counters() == []


async def test_a_gift_counts_what_the_giver_has_reserved_and_spent(db, clock, gifts, cap):
    await cap(DOLLAR)
    await Ledger(db, clock).reserve(
        job_id=7, guild_id=GUILD, user_id=ALICE, model="flux-dev", estimated_micros=900_000,
        terms=ReserveTerms(DAILY, 5),
    )  # fmt: skip
    before = await state(db)
    with pytest.raises(GiftRefused, match=r"You have \$0.10 left"):
        await gifts.give(Gift(GUILD, ALICE, BOB, 200_000), DAILY)
    assert await state(db) == before
    await gifts.give(Gift(GUILD, ALICE, BOB, 100_000), DAILY)
    assert await allowance(db, clock, ALICE) == 0


@pytest.mark.parametrize(
    ("gift", "cap_micros", "text"),
    [
        (Gift(GUILD, ALICE, ALICE, 100_000), DOLLAR, "yourself"),
        (Gift(GUILD, ALICE, BOB, 0), DOLLAR, r"more than \$0"),
        (Gift(GUILD, ALICE, BOB, -5), DOLLAR, r"more than \$0"),
        (Gift(GUILD, ALICE, BOB, 100_000), 0, "Gifts are off"),
        (Gift(GUILD, ALICE, BOB, 600_000), 500_000, r"\$0.50 more today"),
        (Gift(GUILD, ALICE, BOB, 1_000_001), 2 * DOLLAR, "can't be more than that"),
    ],
)
async def test_a_refused_gift_changes_nothing_on_either_side(db, gifts, cap, gift, cap_micros, text):
    if cap_micros:
        await cap(cap_micros)
    before = await state(db)
    with pytest.raises(GiftRefused, match=text):
        await gifts.give(gift, DAILY)
    assert await state(db) == before


async def test_the_daily_cap_counts_every_gift_of_the_day_and_resets_the_next(db, clock, gifts, cap):
    await cap(400_000)
    await gifts.give(Gift(GUILD, ALICE, BOB, 250_000), DAILY)
    with pytest.raises(GiftRefused, match=r"\$0.15 more today"):
        await gifts.give(Gift(GUILD, ALICE, 3, 200_000), DAILY)
    await gifts.give(Gift(GUILD, ALICE, 3, 150_000), DAILY)
    with pytest.raises(GiftRefused, match="given all you may today"):
        await gifts.give(Gift(GUILD, ALICE, BOB, 1), DAILY)
    assert await gifts.given_today(GUILD, ALICE) == 400_000
    clock.advance(days=1)
    await gifts.give(Gift(GUILD, ALICE, BOB, 100_000), DAILY)  # a new day: a new cap, a new budget


async def test_fifty_concurrent_gifts_never_overdraw_and_conserve_the_sum(db, clock, gifts, cap):
    """$1 left, 50 gifts of $0.03 at once to five members: exactly 33 go through, the rest are refused."""
    await cap(100 * DOLLAR)

    async def one(n: int) -> bool:
        try:
            await gifts.give(Gift(GUILD, ALICE, 10 + n % 5, 30_000), DAILY)
        except GiftRefused:
            return False
        return True

    made = await asyncio.gather(*(one(n) for n in range(50)))
    assert sum(made) == 33
    assert await allowance(db, clock, ALICE) == 10_000
    received = [await allowance(db, clock, 10 + n) - DOLLAR for n in range(5)]
    assert sum(received) == 33 * 30_000
    assert await db.fetch_value("SELECT SUM(member_micros) FROM ledger WHERE kind = 'grant'") == 0
    assert await db.fetch_value("SELECT COUNT(*) FROM gifts") == 33
    assert await Ledger(db, clock).verify_counters() == []


async def test_gifts_both_ways_and_reservations_at_once_never_deadlock_or_overdraw(db, clock, gifts, cap):
    """Alice and Bob give to each other while both reserve: every side stays at or above zero."""
    await cap(100 * DOLLAR)
    ledger = Ledger(db, clock)

    async def give(giver: int, receiver: int) -> None:
        with contextlib.suppress(GiftRefused):
            await gifts.give(Gift(GUILD, giver, receiver, 70_000), DAILY)

    async def reserve(job_id: int, user_id: int) -> None:
        try:
            await ledger.reserve(
                job_id=job_id, guild_id=GUILD, user_id=user_id, model="flux-dev", estimated_micros=90_000,
                terms=ReserveTerms(DAILY, 100),
            )  # fmt: skip
        except Exception as exc:  # refused: over the limit
            assert "budget" in str(exc).lower() or exc.__class__.__name__ == "LimitRefused", exc

    calls = [give(ALICE, BOB) if n % 2 else give(BOB, ALICE) for n in range(30)]
    calls += [reserve(1000 + n, ALICE if n % 2 else BOB) for n in range(20)]
    await asyncio.gather(*calls)
    assert await allowance(db, clock, ALICE) >= 0 and await allowance(db, clock, BOB) >= 0
    statuses = [await ledger.statuses(GUILD, user, DAILY) for user in (ALICE, BOB)]
    assert all(s.used <= s.allowance for [s] in statuses)
    assert await db.fetch_value("SELECT SUM(member_micros) FROM ledger WHERE kind = 'grant'") in (0, None)
    assert await ledger.verify_counters() == []
