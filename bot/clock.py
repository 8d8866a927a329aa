"""Time, injected: production uses the wall clock, tests pass their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def to_millis(moment: datetime) -> int:
    """A UTC datetime as integer milliseconds since the epoch (how the database stores times)."""
    return int(moment.timestamp() * 1000)


def from_millis(millis: int) -> datetime:
    """The inverse of :func:`to_millis`."""
    return datetime.fromtimestamp(millis / 1000, UTC)
