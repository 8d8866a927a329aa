"""A spend report counts the rows of the period asked for, by the moment of each job's reservation."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.billing.ledger import Ledger
from bot.billing.reports import spend_report
from bot.config import Period
from tests.bot.billing.test_ledger import GUILD, reserve

OTHER = GUILD + 1
NOV_30 = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)  # a Monday: its week runs into December
DEC_1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


async def test_each_period_has_the_rows_reserved_in_it_and_the_bot_total_is_every_servers(db, clock):
    ledger = Ledger(db, clock)
    clock.now = NOV_30
    await reserve(ledger, 1, [], user=1)
    await reserve(ledger, 3, [], user=3, guild=OTHER)
    await ledger.grant(guild_id=GUILD, user_id=1, micros=900_000, actor_id=9)  # money given, not spent
    clock.now = DEC_1
    await ledger.settle(1, 50_000)  # settled in December above its estimate: still November's
    await reserve(ledger, 2, [], user=2)
    await ledger.settle(2, 40_000)

    november = await spend_report(db, GUILD, Period.MONTH, NOV_30)
    assert (november.period_key, november.total_micros, november.images) == ("m:2026-11", 50_000, 1)
    assert november.by_member == [(1, 50_000, 1)] and november.over_estimate_jobs == 1
    assert november.bot_total_micros == 90_000  # this server's 50,000 and the other's 40,000
    december = await spend_report(db, GUILD, Period.MONTH, DEC_1)
    assert (december.total_micros, december.bot_total_micros, december.by_member) == (40_000, 40_000, [(2, 40_000, 1)])
    week = await spend_report(db, GUILD, Period.WEEK, DEC_1)  # Monday 30 November to Sunday 6 December
    assert (week.period_key, week.total_micros, week.images, week.bot_total_micros) == (
        "w:2026-11-30",
        90_000,
        2,
        130_000,
    )
    assert [model for model, _, _ in week.by_model] == ["flux-pro-1.1"]
    assert (await spend_report(db, GUILD, Period.DAY, NOV_30)).total_micros == 50_000
    assert (await spend_report(db, GUILD, Period.DAY, DEC_1)).total_micros == 40_000
    assert (await spend_report(db, OTHER, Period.DAY, DEC_1)).total_micros == 0
