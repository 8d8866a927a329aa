"""Migrations 0008-0010 are empty placeholders, renamed from names that looked like real changes.

They were released as ``0008_multiprocess.sql``, ``0009_job_groups.sql`` and ``0010_prefs_styles.sql``
(each ``SELECT 1;``) while the changes those names announced landed as 0011-0013. A database stores only
its schema version, so one migrated by that old set must upgrade to exactly today's schema.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.storage.database import BACKENDS, Backend, Database, Migration, load_migrations
from bot.storage.postgres import PostgresDatabase
from bot.storage.sqlite import SqliteDatabase

PLACEHOLDERS = {8: "0008_multiprocess.sql", 9: "0009_job_groups.sql", 10: "0010_prefs_styles.sql"}
OLD_TEXT = (
    "-- Reason: intentionally empty. This number landed as a placeholder, so databases already record it\n"
    "-- as applied; it stays a no-op, and the changes it was reserved for are in later migrations.\n"
    "SELECT 1;\n"
)
OLD_NEWEST = 13  # the old set ended with 0013_prefs_styles.sql


def old_migrations(backend: Backend) -> list[Migration]:
    """The migration set as released with the misleading names, up to its last migration."""
    return [
        Migration(m.version, PLACEHOLDERS[m.version], OLD_TEXT) if m.version in PLACEHOLDERS else m
        for m in load_migrations(backend)[:OLD_NEWEST]
    ]


async def schema(db: Database) -> list[tuple[Any, ...]]:
    """Every table, column, index and trigger definition, comparable between two databases."""
    if db.backend == "sqlite":
        rows = await db.fetch_all(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        )
    else:
        rows = await db.fetch_all(
            "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, column_name"
        )
        rows += await db.fetch_all(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname"
        )
        rows += await db.fetch_all(
            "SELECT event_object_table, trigger_name, event_manipulation, action_statement"
            " FROM information_schema.triggers WHERE trigger_schema = current_schema() ORDER BY 1, 2, 3"
        )
    return [tuple(row) for row in rows]


async def empty_database(backend: Backend, name: str, tmp_path, request) -> tuple[Database, str]:
    """A new, unmigrated database of ``backend`` and its target (a path or URL) to open it again."""
    if backend == "sqlite":
        path = tmp_path / f"{name}.sqlite3"
        return await SqliteDatabase.open(path, migrate=False), str(path)
    url = await request.getfixturevalue("postgres_server").new_database(migrated=False)
    return await PostgresDatabase.connect(url, pool_size=2, migrate=False), url


def test_the_placeholders_are_no_ops_named_as_such() -> None:
    for backend in BACKENDS:
        for migration in load_migrations(backend)[7:10]:
            assert migration.name == f"{migration.version:04d}_placeholder.sql"
            code = [line for line in migration.sql.splitlines() if line and not line.startswith("--")]
            assert code == ["SELECT 1;"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_database_of_the_old_migration_set_upgrades_to_todays_schema(
    backend: Backend, tmp_path, request
) -> None:
    old, target = await empty_database(backend, "old", tmp_path, request)
    try:
        await old.migrate(old_migrations(backend))
        assert await old.schema_version() == OLD_NEWEST
    finally:
        await old.close()
    new, new_target = await empty_database(backend, "new", tmp_path, request)
    await new.close()
    fresh = await Database.at(new_target)  # migrated by today's set
    upgraded = await Database.at(target)
    try:
        assert await upgraded.schema_version() == await fresh.schema_version() == len(load_migrations(backend))
        today = await schema(fresh)
        assert len(today) > 50  # tables, columns, indexes and triggers were all read
        assert await schema(upgraded) == today
    finally:
        await upgraded.close()
        await fresh.close()
