"""UTC calendar periods for budgets: day, ISO week (Monday start) and month.

No cron: a period's counters are keyed by its start, so a new period simply starts from zero.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class Period(enum.StrEnum):
    """A budget period: a UTC calendar day, ISO week (Monday to Sunday) or month."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def adjective(self) -> str:
        """``daily``, ``weekly`` or ``monthly``."""
        return {"day": "daily", "week": "weekly", "month": "monthly"}[self.value]


def period_start(period: Period, at: datetime) -> datetime:
    """The first instant of the period that contains ``at``."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(period: Period, at: datetime) -> datetime:
    """The first instant after the period that contains ``at`` (when it resets)."""
    start = period_start(period, at)
    if period is Period.DAY:
        return start + timedelta(days=1)
    if period is Period.WEEK:
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def period_key(period: Period, at: datetime) -> str:
    """A stable key for the period containing ``at``: ``d:2026-11-23``, ``w:2026-11-23``, ``m:2026-11``."""
    start = period_start(period, at)
    if period is Period.MONTH:
        return f"m:{start:%Y-%m}"
    return f"{period.value[0]}:{start:%Y-%m-%d}"


def day_keys(period: Period, at: datetime) -> tuple[str, str]:
    """The first and last day keys of the period containing ``at``: a period is a range of days.

    A ledger row's day, week and month keys are those of one moment, so the rows of a week or a
    month are exactly the rows whose day key lies in this range (day keys sort by date).
    """
    last = period_end(period, at) - timedelta(days=1)
    return period_key(Period.DAY, period_start(period, at)), period_key(Period.DAY, last)


@dataclass(frozen=True)
class PeriodKeys:
    """The day, week and month keys of one moment."""

    day: str
    week: str
    month: str

    @classmethod
    def at(cls, moment: datetime) -> PeriodKeys:
        """The keys of the periods containing ``moment``."""
        return cls(period_key(Period.DAY, moment), period_key(Period.WEEK, moment), period_key(Period.MONTH, moment))

    def of(self, period: Period) -> str:
        """The key for ``period``."""
        return {Period.DAY: self.day, Period.WEEK: self.week, Period.MONTH: self.month}[period]
