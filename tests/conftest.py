"""Shared pytest fixtures."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator

import pytest

from tests.fakes.fake_bfl import FakeBfl

# A test still running after this long prints where every asyncio task waits; pytest-timeout (its
# `timeout` in pyproject.toml) then ends the run with the threads' stacks, so a hang fails CI in
# minutes, with its cause, instead of using up CI's whole time.
HANG_REPORT_SECONDS = 300


@pytest.fixture(autouse=True)
async def _report_a_hang() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    timer = threading.Timer(HANG_REPORT_SECONDS, loop.call_soon_threadsafe, (_print_tasks, loop))
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


def _print_tasks(loop: asyncio.AbstractEventLoop) -> None:
    sys.stderr.write(f"--- still running after {HANG_REPORT_SECONDS} s: where each asyncio task waits ---\n")
    for task in asyncio.all_tasks(loop):
        task.print_stack(limit=12, file=sys.stderr)


# --- fake BFL API (tests/fakes/fake_bfl/) -----------------------------------------------------------
@pytest.fixture
async def fake_bfl() -> AsyncIterator[FakeBfl]:
    """A started :class:`FakeBfl` on loopback (key ``test-bfl-key``), closed after the test."""
    async with FakeBfl() as fake:
        yield fake


# --- the database, on a real file per test -------------------------------------------------------
@pytest.fixture
async def db(tmp_path):
    """A migrated SQLite database in a temporary file (tests/bot/conftest.py adds PostgreSQL there)."""
    from bot.storage.database import Database

    database = await Database.open(tmp_path / "fluxcord.sqlite3")
    yield database
    await database.close()


# --- PostgreSQL: one throwaway server per run, one database per test (tests/postgres_server.py) -----
@pytest.fixture(scope="session")
def postgres_server():
    """The test PostgreSQL server; skipped (failed under CI) when there is none to be had."""
    import os

    from tests.postgres_server import PostgresServer, find_bindir

    server = PostgresServer()
    url = os.environ.get("FLUXCORD_TEST_DATABASE_URL")
    if url:
        server.use_existing(url)
    else:
        bindir = find_bindir()
        if bindir is None:
            reason = "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
            if os.environ.get("CI"):
                pytest.fail(f"CI must test PostgreSQL too: {reason}")
            pytest.skip(reason)
        server.start(bindir)
    yield server
    server.stop()


@pytest.fixture
async def pg_url(postgres_server) -> str:
    """The URL of a fresh, migrated PostgreSQL database of its own for this test."""
    return await postgres_server.new_database()


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
