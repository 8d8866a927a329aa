import asyncio
import contextlib
import sqlite3

import asyncpg
import pytest

from bot.storage.database import BACKENDS, Database, Migration, load_migrations, redact_url
from bot.storage.postgres import PostgresDatabase, translate


def test_migrations_are_numbered_contiguously_and_the_same_on_both_backends():
    sets = {backend: load_migrations(backend) for backend in BACKENDS}
    for migrations in sets.values():
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
        assert all(m.sql.lstrip().startswith("-- Reason:") for m in migrations)
    assert [m.name for m in sets["sqlite"]] == [m.name for m in sets["postgresql"]]


def test_a_migration_missing_on_one_backend_is_refused(tmp_path, monkeypatch):
    from bot.storage import database

    real = database._read_migrations

    def fake(backend):
        found = real(backend)
        return found if backend == "sqlite" else found[:-1]

    monkeypatch.setattr(database, "_read_migrations", fake)
    with pytest.raises(RuntimeError, match="the migration sets differ: only SQLite has"):
        load_migrations("sqlite")


@pytest.mark.sqlite_only
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


async def test_postgres_database_is_fully_migrated_and_reconnecting_is_a_no_op(postgres_server):
    url = await postgres_server.new_database(migrated=False)
    db = await Database.connect(url)
    assert await db.schema_version() == len(load_migrations("postgresql"))
    await db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("k", "v"))
    await db.close()
    db = await Database.connect(url)
    assert await db.fetch_value("SELECT value FROM meta WHERE key = ?", ("k",)) == "v"
    versions = await db.fetch_all("SELECT version, name FROM schema_version ORDER BY version")
    assert [(r[0], r["name"]) for r in versions] == [(m.version, m.name) for m in load_migrations("postgresql")]
    await db.close()


async def test_processes_starting_together_migrate_once(postgres_server):
    """Four pools connect at once to an empty database: one migrates, the others wait and see it done."""
    url = await postgres_server.new_database(migrated=False)
    dbs = await asyncio.gather(*(PostgresDatabase.connect(url, pool_size=1) for _ in range(4)))
    try:
        assert {await db.schema_version() for db in dbs} == {len(load_migrations("postgresql"))}
        assert await dbs[0].fetch_value("SELECT COUNT(*) FROM schema_version") == len(load_migrations("postgresql"))
    finally:
        for db in dbs:
            await db.close()


async def test_a_failing_migration_changes_nothing(db):
    version = await db.schema_version()
    tables = await db.tables()
    broken = Migration(version + 1, "9999_broken.sql", "CREATE TABLE half_done (x INTEGER);\nNOT SQL;")
    with pytest.raises((sqlite3.OperationalError, asyncpg.PostgresSyntaxError)):
        await db.migrate([broken])
    assert await db.schema_version() == version
    assert await db.tables() == tables
    assert "half_done" not in tables


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


async def test_rows_answer_by_name_and_by_position_and_rowcounts_count(db):
    assert await db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("a", "1")) == 1
    assert (
        await db.execute("INSERT INTO meta (key, value) VALUES (:k, :v) ON CONFLICT DO NOTHING", {"k": "a", "v": "2"})
        == 0
    )
    assert await db.execute("UPDATE meta SET value = ? WHERE key = ?", ("3", "a")) == 1
    row = await db.fetch_one("SELECT key, value, 'it''s ?' AS text FROM meta WHERE key = :key", {"key": "a"})
    assert (row["key"], row[1], row["text"]) == ("a", "3", "it's ?")
    assert await db.fetch_value("SELECT value FROM meta WHERE key = ?", ("missing",), default="none") == "none"
    big = 2**62 + 7  # a Discord snowflake or a micro-dollar sum past 32 bits
    await db.execute(
        "INSERT INTO guild_settings (guild_id, paused, moderator_role_id) VALUES (?, 0, ?)", (big, big - 1)
    )
    assert await db.fetch_value("SELECT moderator_role_id FROM guild_settings WHERE guild_id = ?", (big,)) == big - 1


def test_placeholders_are_translated_outside_literals_names_and_comments():
    assert translate("SELECT ? , '?', \"a?\" -- ?\n, ?") == ("SELECT $1 , '?', \"a?\" -- ?\n, $2", None)
    assert translate("UPDATE t SET a = :now WHERE b = :x AND c = :now AND d = x::bigint AND e = ':y'") == (
        "UPDATE t SET a = $1 WHERE b = $2 AND c = $1 AND d = x::bigint AND e = ':y'",
        ("now", "x"),
    )
    assert translate("SELECT 'it''s :x', /* ? */ ?") == ("SELECT 'it''s :x', /* ? */ $1", None)
    with pytest.raises(ValueError, match="mixes"):
        translate("SELECT ?, :x")


def test_a_url_password_never_shows():
    assert (
        redact_url("postgresql://bot:s3cret@db.example:5433/fluxcord")
        == "postgresql://bot:***@db.example:5433/fluxcord"
    )
    assert redact_url("postgres://db.example/fluxcord") == "postgres://db.example/fluxcord"
    assert "s3cret" not in redact_url("postgresql://bot:s3cret@[::1]/x")


async def test_a_target_names_its_backend(tmp_path, postgres_server):
    sqlite_db = await Database.at(str(tmp_path / "at.sqlite3"))
    pg_db = await Database.at(await postgres_server.new_database(), pool_size=1)
    try:
        assert (sqlite_db.backend, pg_db.backend) == ("sqlite", "postgresql")
    finally:
        await sqlite_db.close()
        await pg_db.close()


@pytest.mark.sqlite_only
async def test_processes_starting_together_on_a_new_file_migrate_it_once(tmp_path):
    """Shard clusters and workers start side by side: each migration is applied by exactly one of them."""
    path = tmp_path / "shared.sqlite3"
    opened = await asyncio.gather(*(Database.open(path) for _ in range(4)), return_exceptions=True)
    try:
        assert [repr(o) for o in opened if isinstance(o, BaseException)] == []
        latest = load_migrations("sqlite")[-1].version
        assert [await db.schema_version() for db in opened] == [latest] * 4
    finally:
        for db in opened:
            if not isinstance(db, BaseException):
                await db.close()


@pytest.mark.sqlite_only
async def test_a_transaction_cancelled_while_it_begins_leaves_the_connection_usable(db):
    """Cancelled during BEGIN (which still runs on aiosqlite's thread): no transaction is left open."""
    import asyncio

    for n in range(50):

        async def write(n=n):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO meta (key, value) VALUES (?, 'v')", (f"k{n}",))

        task = asyncio.ensure_future(write())
        await asyncio.sleep(0)  # let it reach the BEGIN, then cancel it there
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with db.transaction() as tx:  # failed with "cannot start a transaction within a transaction"
            await tx.execute("INSERT INTO meta (key, value) VALUES (?, 'after')", (f"after{n}",))
    assert await db.fetch_value("SELECT COUNT(*) FROM meta WHERE value = 'after'") == 50


async def test_close_cuts_a_transaction_that_never_ends_after_its_grace(db):
    """A coroutine stuck inside a transaction cannot hold a shutdown forever (CI once hung in teardown)."""
    inside = asyncio.Event()

    async def stuck():
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta (key, value) VALUES ('stuck', 'never committed')")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await asyncio.wait_for(inside.wait(), 5)
    try:
        await asyncio.wait_for(db.close(grace=0.2), 5)
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    await db.close()  # closing twice is harmless (the fixture closes it again)
