import asyncio
import sqlite3

import pytest

from bot.storage.database import Database, Migration, load_migrations


def test_migrations_are_numbered_contiguously():
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.sql.lstrip().startswith("-- Reason:") for m in migrations)


async def test_fresh_database_is_fully_migrated_and_reopening_is_a_no_op(tmp_path):
    path = tmp_path / "db.sqlite3"
    db = await Database.open(path)
    assert await db.schema_version() == len(load_migrations())
    await db.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
    await db.close()
    db = await Database.open(path)
    assert await db.fetch_value("SELECT value FROM meta WHERE key = 'k'") == "v"
    assert await db.fetch_value("PRAGMA journal_mode") == "wal"
    await db.close()


async def test_a_failing_migration_changes_nothing(db):
    version = await db.schema_version()
    broken = Migration(version + 1, "9999_broken.sql", "CREATE TABLE half_done (x INTEGER);\nNOT SQL;")
    with pytest.raises(sqlite3.OperationalError):
        await db.migrate([broken])
    assert await db.schema_version() == version
    assert await db.fetch_value("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'") == 0


async def test_one_coroutines_rollback_never_erases_anothers_write(db):
    """The measured aiosqlite pitfall: a transaction belongs to the connection, not the coroutine."""
    inside = asyncio.Event()
    release = asyncio.Event()

    async def failing_transaction():
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO meta (key, value) VALUES ('a', 'rolled back')")
                inside.set()
                await release.wait()
                raise RuntimeError("something failed mid-transaction")

    async def independent_write():
        await inside.wait()
        # Scheduled before the transaction resumes: without the write lock it would run inside it.
        write = asyncio.create_task(db.execute("INSERT INTO meta (key, value) VALUES ('b', 'kept')"))
        release.set()
        await write

    await asyncio.gather(failing_transaction(), independent_write())
    rows = {tuple(r) for r in await db.fetch_all("SELECT key, value FROM meta")}
    assert rows == {("b", "kept")}
