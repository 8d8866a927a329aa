"""Spend reports and the CSV export of a server's ledger."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.billing.periods import period_key
from bot.config import Period
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
    """Spend by member and by model for the period containing ``now``."""
    column = _PERIOD_COLUMN[period]
    key = period_key(period, now)
    where = f"guild_id = ? AND {column} = ? AND kind != 'grant'"  # column is from a fixed table
    totals = await db.fetch_one(
        f"SELECT CAST(COALESCE(SUM(server_micros), 0) AS BIGINT) AS micros,"
        f" CAST(COALESCE(SUM(member_images), 0) AS BIGINT) AS images"
        f" FROM ledger WHERE {where}",
        (guild_id, key),
    )
    members = await db.fetch_all(
        f"SELECT user_id, CAST(SUM(server_micros) AS BIGINT) AS micros, CAST(SUM(member_images) AS BIGINT) AS images"
        f" FROM ledger WHERE {where} GROUP BY user_id HAVING SUM(server_micros) != 0 OR SUM(member_images) != 0"
        " ORDER BY micros DESC LIMIT 10",
        (guild_id, key),
    )
    models = await db.fetch_all(
        f"SELECT model, CAST(SUM(server_micros) AS BIGINT) AS micros, CAST(SUM(member_images) AS BIGINT) AS images"
        " FROM ledger"
        f" WHERE {where} AND model IS NOT NULL GROUP BY model ORDER BY micros DESC",
        (guild_id, key),
    )
    bot_total = await db.fetch_value(
        f"SELECT CAST(SUM(server_micros) AS BIGINT) FROM ledger WHERE {column} = ? AND kind != 'grant'",
        (key,),
        default=0,
    )
    unknown = await db.fetch_value(
        "SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND status = 'unknown'", (guild_id,), default=0
    )
    # A settle row holds (cost - reserved estimate): positive means BFL charged more than estimated.
    over = await db.fetch_value(
        f"SELECT COUNT(*) FROM ledger WHERE {where} AND kind = 'settle' AND server_micros > 0",
        (guild_id, key),
        default=0,
    )
    undeliverable = await db.fetch_value(
        f"SELECT COUNT(*) FROM ledger WHERE {where} AND kind = 'settle' AND note = ?",
        (guild_id, key, UNDELIVERABLE_NOTE),
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


LEDGER_CSV_COLUMNS = (
    "id", "at_utc", "kind", "job_id", "user_id", "model", "server_usd", "member_usd", "member_images",
    "actor_id", "note",
)  # fmt: skip


async def ledger_csv(db: Database, guild_id: int) -> bytes:
    """The server's whole ledger as CSV (amounts in exact decimal dollars)."""
    rows = await db.fetch_all(
        "SELECT id, at, kind, job_id, user_id, model, server_micros, member_micros, member_images, actor_id, note"
        " FROM ledger WHERE guild_id = ?"
        " ORDER BY id",
        (guild_id,),
    )
    return await asyncio.to_thread(_to_csv, [tuple(r) for r in rows])


def _to_csv(rows: list[tuple[object, ...]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(LEDGER_CSV_COLUMNS)
    for row in rows:
        values = list(row)
        values[1] = _iso_utc(values[1])  # type: ignore[arg-type]
        values[6] = _micros_as_usd(values[6])  # type: ignore[arg-type]
        values[7] = _micros_as_usd(values[7])  # type: ignore[arg-type]
        writer.writerow(["" if v is None else v for v in values])
    return buffer.getvalue().encode("utf-8")


def _iso_utc(at_ms: int) -> str:
    """Unix milliseconds as ``2026-11-18T12:00:00.250Z``."""
    stamp = datetime.fromtimestamp(at_ms // 1000, UTC)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{at_ms % 1000:03d}Z"


def _micros_as_usd(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}.{fraction:06d}"
