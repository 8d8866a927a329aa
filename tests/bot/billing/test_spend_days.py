"""The report chart's data: each day of the period, by model, by the job's channel and by its member's top role."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.billing.caps import Limit, Metric, Scope, Source
from bot.billing.ledger import Ledger
from bot.billing.spend_days import Grouping, budget_line, daily_spend, top_role
from bot.config import Period
from bot.engine.jobs import NewJob, insert_job
from tests.bot.billing.test_ledger import GUILD, reserve

NOV_3 = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
NOV_5 = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
CHANNEL_A, CHANNEL_B = 501, 502


async def job(db, job_id, channel, roles, now):
    row = NewJob(
        id=job_id,
        guild_id=GUILD,
        channel_id=channel,
        user_id=1,
        model="flux-pro-1.1",
        prompt="a fox",
        params={"prompt": "a fox"},
        seed=1,
        width=1024,
        height=1024,
        cache_key=f"k{job_id}",
        aspect_ratio=None,
        estimated_micros=40_000,
        role_ids=roles,
    )
    async with db.transaction() as tx:
        await insert_job(tx, row, now=now, cached=False, acked=True, holder=None, group=None)


async def test_spend_per_day_by_model_channel_and_role(db, clock):
    ledger = Ledger(db, clock)
    clock.now = NOV_3
    await job(db, 1, CHANNEL_A, "7 8", NOV_3)
    await reserve(ledger, 1, [])
    await ledger.settle(1, 40_000)
    clock.now = NOV_5
    await job(db, 2, CHANNEL_B, "", NOV_5)
    await reserve(ledger, 2, [])
    await job(db, 3, CHANNEL_A, None, NOV_5)  # admitted before roles were recorded
    await reserve(ledger, 3, [])
    await ledger.grant(guild_id=GUILD, user_id=1, micros=900_000, actor_id=9)  # money given, not spent

    by_model = await daily_spend(db, GUILD, Period.MONTH, NOV_5, Grouping.MODEL)
    assert len(by_model.days) == 30 and by_model.days[0] == datetime(2026, 11, 1, tzinfo=UTC)
    [(name, values)] = by_model.series(str)
    assert name == "flux-pro-1.1" and values[2] == 40_000 and values[4] == 80_000 and sum(values) == 120_000

    by_channel = await daily_spend(db, GUILD, Period.MONTH, NOV_5, Grouping.CHANNEL)
    assert [(name, sum(values)) for name, values in by_channel.series(str)] == [("501", 80_000), ("502", 40_000)]

    by_role = await daily_spend(db, GUILD, Period.WEEK, NOV_5, Grouping.ROLE)
    assert len(by_role.days) == 7
    positions = {7: 1, 8: 5}  # role 8 is above role 7

    def name(group):
        if group is None:
            return "not recorded"
        return str(top_role(group, positions) or "@everyone")

    assert sorted((n, sum(v)) for n, v in by_role.series(name)) == [
        ("8", 40_000),
        ("@everyone", 40_000),
        ("not recorded", 40_000),
    ]
    assert (await daily_spend(db, GUILD, Period.DAY, NOV_3, Grouping.MODEL)).series(str)[0][1] == (40_000,)


def test_the_budget_line_is_the_tightest_daily_pace_of_the_server_budgets():
    def server(period, micros):
        return Limit(Scope.SERVER, Metric.USD, period, micros, Source.MODERATORS)

    member = Limit(Scope.MEMBER, Metric.USD, Period.DAY, 1, Source.PERSONAL)
    assert budget_line([member], NOV_5) is None
    assert budget_line([server(Period.DAY, 5_000_000)], NOV_5) == ("Server budget $5.00/day", 5_000_000)
    month = budget_line([server(Period.MONTH, 30_000_000), server(Period.DAY, 5_000_000)], NOV_5)
    assert month == ("Server budget $30.00/month ÷ 30 days", 1_000_000)


def test_top_role_skips_deleted_roles():
    assert top_role("1 2 3", {1: 4, 3: 2}) == 1
    assert top_role("9", {1: 4}) is None and top_role("", {}) is None and top_role(None, {}) is None
