"""The open reservations are kept as the ledger is written (``ledger_open``), so recovery reads them alone."""

from __future__ import annotations

import pytest

from bot.billing.ledger import Ledger
from bot.storage.database import BACKENDS, Database, load_migrations
from tests.bot.billing.test_ledger import GUILD, reserve


@pytest.fixture
def ledger(db, clock):
    return Ledger(db, clock)


async def test_open_job_ids_are_the_reservations_without_an_outcome_in_order(ledger, db):
    for job_id in (5, 3, 9, 1, 7):
        await reserve(ledger, job_id, [])
    await ledger.settle(3, 30_000)
    await ledger.release(1)
    await ledger.settle(3, 30_000)  # repeated: nothing changes
    await ledger.grant(guild_id=GUILD, user_id=2, micros=500_000, actor_id=1)  # no reservation
    assert await ledger.open_job_ids() == [5, 9, 7]  # the order they were reserved in
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger_open") == 3
    assert await ledger.verify_counters() == []
    for job_id in (5, 9, 7):
        await ledger.settle(job_id, 40_000, refund_member=job_id == 9)
    assert await ledger.open_job_ids() == []
    assert await ledger.verify_counters() == []


async def test_verify_counters_notices_an_open_list_that_disagrees_with_the_rows(ledger, db):
    await reserve(ledger, 1, [])
    await reserve(ledger, 2, [])
    await ledger.settle(2, 40_000)
    await db.execute("DELETE FROM ledger_open WHERE job_id = 1")
    await db.execute("INSERT INTO ledger_open (job_id, reserve_id) VALUES (2, 2)")
    problems = await ledger.verify_counters()
    assert any("open reservation of job 1" in p for p in problems)
    assert any("job 2" in p and "resolved" in p for p in problems)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrading_lists_the_reservations_that_were_already_open(backend, tmp_path, monkeypatch, clock, request):
    """A database from before the migration: its open reservations are found by the first recovery."""
    from bot.storage import postgres, sqlite

    every = load_migrations(backend)
    ours = next(m.version for m in every if m.name.endswith("_history_indexes.sql"))
    if backend == "sqlite":
        target, module = str(tmp_path / "old.sqlite3"), sqlite
    else:
        target, module = await request.getfixturevalue("postgres_server").new_database(migrated=False), postgres
    with monkeypatch.context() as patch:
        patch.setattr(module, "load_migrations", lambda _backend: [m for m in every if m.version < ours])
        db = await Database.at(target)
        assert await db.schema_version() == ours - 1
        old = Ledger(db, clock)
        for job_id in (1, 2, 3, 4):
            await reserve(old, job_id, [])
        await old.settle(2, 40_000)
        await old.release(3)
        await db.close()
    db = await Database.at(target)
    try:
        assert await db.schema_version() == every[-1].version
        ledger = Ledger(db, clock)
        assert await ledger.open_job_ids() == [1, 4]
        assert await ledger.verify_counters() == []
        await ledger.settle(4, 40_000)  # and the triggers keep it from now on
        assert await ledger.open_job_ids() == [1]
    finally:
        await db.close()
