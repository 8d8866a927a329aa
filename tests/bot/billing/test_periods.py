from datetime import UTC, datetime

from bot.billing.periods import PeriodKeys, period_end, period_key, period_start
from bot.config import Period

WEDNESDAY = datetime(2026, 11, 18, 12, 30, tzinfo=UTC)


def test_day_week_month_boundaries():
    assert period_start(Period.DAY, WEDNESDAY) == datetime(2026, 11, 18, tzinfo=UTC)
    assert period_start(Period.WEEK, WEDNESDAY) == datetime(2026, 11, 16, tzinfo=UTC)  # Monday
    assert period_start(Period.MONTH, WEDNESDAY) == datetime(2026, 11, 1, tzinfo=UTC)
    assert period_end(Period.DAY, WEDNESDAY) == datetime(2026, 11, 19, tzinfo=UTC)
    assert period_end(Period.WEEK, WEDNESDAY) == datetime(2026, 11, 23, tzinfo=UTC)
    assert period_end(Period.MONTH, datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_keys_change_exactly_at_the_boundary():
    last = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)
    first = datetime(2026, 12, 1, tzinfo=UTC)
    assert PeriodKeys.at(last) == PeriodKeys("d:2026-11-30", "w:2026-11-30", "m:2026-11")
    assert PeriodKeys.at(first) == PeriodKeys("d:2026-12-01", "w:2026-11-30", "m:2026-12")


def test_other_timezones_are_converted_to_utc():
    from datetime import timedelta, timezone

    tokyo = datetime(2026, 11, 19, 8, 0, tzinfo=timezone(timedelta(hours=9)))  # 23:00 UTC on the 18th
    assert period_key(Period.DAY, tokyo) == "d:2026-11-18"
