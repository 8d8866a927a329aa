"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.fake_bfl import FakeBfl


# --- fake BFL API (tests/fakes/fake_bfl/) -----------------------------------------------------------
@pytest.fixture
async def fake_bfl() -> AsyncIterator[FakeBfl]:
    """A started :class:`FakeBfl` on loopback (key ``test-bfl-key``), closed after the test."""
    async with FakeBfl() as fake:
        yield fake


# --- the database, on a real file per test -------------------------------------------------------
@pytest.fixture
async def db(tmp_path):
    """A migrated SQLite database in a temporary file."""
    from bot.storage.database import Database

    database = await Database.open(tmp_path / "fluxcord.sqlite3")
    yield database
    await database.close()


class ManualClock:
    """A clock tests move by hand (UTC)."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, **delta):
        from datetime import timedelta

        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    """A manual clock starting on Wednesday 2026-11-18 12:00 UTC."""
    from datetime import UTC, datetime

    return ManualClock(datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
