"""Spend reports: where a server's money went in a day, week or month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.billing.ledger import Scope, read_counter, scope_key
from bot.billing.periods import Period, day_keys, period_key
from bot.storage.database import Database

_PERIOD_COLUMN = {Period.DAY: "day", Period.WEEK: "week", Period.MONTH: "month"}


@dataclass(frozen=True)
class SpendReport:
    """Where a server's money went in one period."""

    period: Period
    period_key: str
    total_micros: int
    images: int
    by_member: list[tuple[int, int, int]]  # (user id, micro-dollars, images), biggest first
    by_model: list[tuple[str, int, int]]  # (model, micro-dollars, images)
    bot_total_micros: int  # every server, same period: compare with BFL's credit balance
    unknown_jobs: int  # submits whose outcome was unknown (charged conservatively)
    over_estimate_jobs: int = 0  # jobs BFL charged more than their estimate (the estimate was no upper bound)
    undeliverable_jobs: int = 0  # images made and paid to BFL that Discord never let the bot post (refunded)


UNDELIVERABLE_NOTE = "delivery_failed: undeliverable"  # the ledger note of a made image never posted


async def spend_report(db: Database, guild_id: int, period: Period, now: datetime) -> SpendReport:
    """Spend by member and by model for the period containing ``now``.

    Reads the server's rows of that period alone (the ``ledger_by_guild_day`` index: a period is a
    range of days) and the bot-wide total from its counter, so it costs the same in a bot with a year of
    history as in a new one.
    """
    column = _PERIOD_COLUMN[period]
    key = period_key(period, now)
    first_day, last_day = day_keys(period, now)
    # The day range finds the rows through the index; the period's own key keeps the answer exact.
    where = f"guild_id = ? AND day BETWEEN ? AND ? AND {column} = ? AND kind != 'grant'"  # column: fixed table
    params = (guild_id, first_day, last_day, key)
    totals = await db.fetch_one(
        f"SELECT CAST(COALESCE(SUM(server_micros), 0) AS BIGINT) AS micros,"
        f" CAST(COALESCE(SUM(member_images), 0) AS BIGINT) AS images"
        f" FROM ledger WHERE {where}",
        params,
    )
    members = await db.fetch_all(
        f"SELECT user_id, CAST(SUM(server_micros) AS BIGINT) AS micros, CAST(SUM(member_images) AS BIGINT) AS images"
        f" FROM ledger WHERE {where} GROUP BY user_id HAVING SUM(server_micros) != 0 OR SUM(member_images) != 0"
        " ORDER BY micros DESC LIMIT 10",
        params,
    )
    models = await db.fetch_all(
        f"SELECT model, CAST(SUM(server_micros) AS BIGINT) AS micros, CAST(SUM(member_images) AS BIGINT) AS images"
        " FROM ledger"
        f" WHERE {where} AND model IS NOT NULL GROUP BY model ORDER BY micros DESC",
        params,
    )
    bot_total, _, _ = await read_counter(db, scope_key(Scope.BOT, 0), key)  # the sum the counters keep
    unknown = await db.fetch_value(
        "SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND status = 'unknown'", (guild_id,), default=0
    )
    # A settle row holds (cost - reserved estimate): positive means BFL charged more than estimated.
    over = await db.fetch_value(
        f"SELECT COUNT(*) FROM ledger WHERE {where} AND kind = 'settle' AND server_micros > 0", params, default=0
    )
    undeliverable = await db.fetch_value(
        f"SELECT COUNT(*) FROM ledger WHERE {where} AND kind = 'settle' AND note = ?",
        (*params, UNDELIVERABLE_NOTE),
        default=0,
    )
    return SpendReport(
        period,
        key,
        totals["micros"] if totals else 0,
        totals["images"] if totals else 0,
        [(r["user_id"], r["micros"], r["images"]) for r in members],
        [(r["model"], r["micros"], r["images"]) for r in models],
        bot_total,
        unknown,
        over,
        undeliverable,
    )
