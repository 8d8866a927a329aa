"""The soak's flaky database (benchmarks/soak_db.py) on both backends: faults before, inside and after."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from benchmarks.soak_db import FaultSwitch, FlakyDatabase
from bot.storage.database import Database

ERRORS = (sqlite3.OperationalError, asyncpg.exceptions.ConnectionDoesNotExistError)


@pytest.fixture(params=["sqlite", "postgresql"])
async def real(request, tmp_path):
    if request.param == "sqlite":
        database = await Database.open(tmp_path / "soak.sqlite3")
    else:
        database = await Database.connect(await request.getfixturevalue("postgres_server").new_database(), pool_size=2)
    yield database
    await database.close()


def flaky(real: Database, switch: FaultSwitch, **rates: float) -> FlakyDatabase:
    return FlakyDatabase(real, rate=rates.get("rate", 0.0), after_rate=rates.get("after", 0.0), seed="t", switch=switch)


async def count(db: Database) -> int:
    return await db.fetch_value("SELECT COUNT(*) FROM meta WHERE key LIKE 'soak%'", default=0)


async def test_faults_strike_before_the_database_only_while_switched_on(real, tmp_path):
    on = tmp_path / "on"
    db = flaky(real, FaultSwitch(on), rate=1.0)
    await db.execute("INSERT INTO meta (key, value) VALUES ('soak1', 'x')")  # switched off: no fault
    on.touch()
    with pytest.raises(ERRORS):
        await db.execute("INSERT INTO meta (key, value) VALUES ('soak2', 'x')")
    with pytest.raises(ERRORS):
        await db.fetch_all("SELECT 1")
    with pytest.raises(ERRORS):
        async with db.transaction():
            pytest.fail("a transaction whose BEGIN failed never runs")
    assert await count(real) == 1  # the failed write never reached the database
    assert sum(db.injected.values()) == 3 and db.backend == real.backend


async def test_a_fault_inside_a_transaction_rolls_it_back(real, tmp_path):
    on = tmp_path / "on"
    db = flaky(real, FaultSwitch(on), rate=1.0)
    with pytest.raises(ERRORS):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta (key, value) VALUES ('soak3', 'x')")
            on.touch()  # the next statement of the same transaction fails
            await tx.execute("INSERT INTO meta (key, value) VALUES ('soak4', 'x')")
    assert await count(real) == 0


async def test_after_faults_happen_once_the_write_took_effect_on_postgresql_only(real, tmp_path):
    on = tmp_path / "on"
    on.touch()
    db = flaky(real, FaultSwitch(on), after=1.0)
    if real.backend == "sqlite":  # a local commit cannot lose its answer
        await db.execute("INSERT INTO meta (key, value) VALUES ('soak5', 'x')")
        assert await count(real) == 1 and not db.injected
        return
    with pytest.raises(ERRORS):
        await db.execute("INSERT INTO meta (key, value) VALUES ('soak5', 'x')")
    with pytest.raises(ERRORS):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta (key, value) VALUES ('soak6', 'x')")
    assert await count(real) == 2  # both writes happened; the caller was told they failed
