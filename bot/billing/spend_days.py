"""The data behind ``/budget report``'s chart: a period's spend per day, by model, channel or role.

Reads the same ledger rows as :func:`bot.billing.reports.spend_report` (the server's rows of the
period, grants excluded, each row in the period of its job's reservation) through the
``ledger_by_guild_day`` index, joined to each row's job (its primary key) for the channel the job was
asked in (``jobs.channel_id``) and the member's roles when they asked (``jobs.role_ids``, migration
0031). Rows without a job (adjustments) have neither: they fall under "no channel" / "roles not recorded".

By role, each job's spend counts under one role, the highest (in the server's role order) of those its
member had when they asked, so the stacks add up to the server's total like the other groupings; a
member with no role counts under @everyone. The naming is the cog's (it has the guild's roles).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.billing.caps import Limit, Metric, Scope
from bot.billing.money import format_usd
from bot.billing.periods import Period, day_keys, period_end, period_key, period_start
from bot.storage.database import Database

_PERIOD_COLUMN = {Period.DAY: "day", Period.WEEK: "week", Period.MONTH: "month"}


class Grouping(enum.StrEnum):
    """What the report's daily bars are stacked by (``/budget report by:``)."""

    MODEL = "model"
    CHANNEL = "channel"
    ROLE = "role"


_GROUP_COLUMN = {Grouping.MODEL: "l.model", Grouping.CHANNEL: "j.channel_id", Grouping.ROLE: "j.role_ids"}
Group = str | int | None  # a model key, a channel id, a job's role ids ("" none; None: not recorded)


@dataclass(frozen=True)
class DailySpend:
    """A period's spend per day and group."""

    grouping: Grouping
    days: tuple[datetime, ...]  # the first instant of each day of the period
    cells: tuple[tuple[int, Group, int], ...]  # (day index, group, micro-dollars)

    def series(self, name: Callable[[Group], str]) -> list[tuple[str, tuple[int, ...]]]:
        """Per group (named by ``name``; groups with one name are summed), its spend on each day, biggest first."""
        named: dict[str, list[int]] = {}
        for day, group, micros in self.cells:
            named.setdefault(name(group), [0] * len(self.days))[day] += micros
        ranked = sorted(named.items(), key=lambda item: (-sum(item[1]), item[0]))
        return [(label, tuple(values)) for label, values in ranked if any(values)]


async def daily_spend(db: Database, guild_id: int, period: Period, now: datetime, by: Grouping) -> DailySpend:
    """The server's spend on each day of the period containing ``now``, grouped ``by`` model, channel or role."""
    column, group = _PERIOD_COLUMN[period], _GROUP_COLUMN[by]
    first_day, last_day = day_keys(period, now)
    rows = await db.fetch_all(
        f"SELECT l.day AS day, {group} AS grp, CAST(SUM(l.server_micros) AS BIGINT) AS micros"
        " FROM ledger l LEFT JOIN jobs j ON j.id = l.job_id"
        f" WHERE l.guild_id = ? AND l.day BETWEEN ? AND ? AND l.{column} = ? AND l.kind != 'grant'"
        f" GROUP BY l.day, {group}",
        (guild_id, first_day, last_day, period_key(period, now)),
    )
    days = period_days(period, now)
    index = {period_key(Period.DAY, day): n for n, day in enumerate(days)}
    cells = tuple((index[r["day"]], r["grp"], r["micros"]) for r in rows if r["micros"])
    return DailySpend(by, days, cells)


def period_days(period: Period, now: datetime) -> tuple[datetime, ...]:
    """The first instant of each day of the period containing ``now``."""
    start, end = period_start(period, now), period_end(period, now)
    return tuple(start + timedelta(days=n) for n in range((end - start).days))


def budget_line(limits: Sequence[Limit], now: datetime) -> tuple[str, int] | None:
    """The server's dollar budget per day, for the chart's line, or None when it has none.

    A daily budget is drawn as it is; a weekly or monthly one as its pace (the budget spread over the
    period's days). With several, the tightest per day.
    """
    paces = []
    for limit in limits:
        if limit.scope is not Scope.SERVER or limit.metric is not Metric.USD:
            continue
        if limit.period is Period.DAY:
            paces.append((limit.value, f"Server budget {format_usd(limit.value)}/day"))
        else:
            days = len(period_days(limit.period, now))
            label = f"Server budget {format_usd(limit.value)}/{limit.period.value} ÷ {days} days"
            paces.append((limit.value // days, label))
    if not paces:
        return None
    micros, label = min(paces)
    return label, micros


def top_role(role_ids: str | None, positions: dict[int, int]) -> int | None:
    """The highest of a job's recorded roles that still exists (``positions``: role id → position), if any."""
    present = [int(role) for role in (role_ids or "").split() if int(role) in positions]
    return max(present, key=lambda role: (positions[role], role)) if present else None
