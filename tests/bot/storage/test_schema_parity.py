"""SQLite and PostgreSQL end up with the same schema after every migration (but the differences meant).

The schema is read from both databases (tests/bot/storage/schema.py), never listed here, so a table or
column a migration adds to one backend only fails this test.
"""

from __future__ import annotations

import pytest

from tests.bot.storage.schema import Column, Index, Schema, Table, diff, family, read_postgres, read_sqlite

# Intended differences, each with its reason. A stale entry (no longer a difference) fails the test too.
_SHARDS = "PostgreSQL's counters are 64 shards with escrow allowances (postgres/0019_counter_shards.sql)"
_ROWID = "SQLite's implicit rowid, made an explicit identity key on PostgreSQL (postgres/0001_jobs.sql)"
INTENDED = {
    "table:schema_version": "PostgreSQL records applied migrations in a table; SQLite in PRAGMA user_version",
    "column:job_events.rowid": _ROWID,
    "key:job_events": _ROWID,
    "column:usage.shard": _SHARDS,
    "key:usage": _SHARDS + ": the shard is part of the key",
    "column:usage.escrow_micros": _SHARDS,
    "column:usage.escrow_images": _SHARDS,
    "column:usage.escrow_cap_micros": _SHARDS,
    "column:usage.escrow_cap_images": _SHARDS,
}


async def _read_both(tmp_path, postgres_server, *, sqlite_only_sql: str = "") -> tuple[Schema, Schema]:
    """Both backends migrated (a SQLite file, a throwaway PostgreSQL database), read; ``sqlite_only_sql`` first."""
    from bot.storage.database import Database

    lite = await Database.open(tmp_path / "fluxcord.sqlite3")
    pg = await Database.connect(await postgres_server.new_database(), pool_size=1)
    try:
        if sqlite_only_sql:
            await lite.execute(sqlite_only_sql)
        return await read_sqlite(lite), await read_postgres(pg)
    finally:
        await lite.close()
        await pg.close()


async def test_both_backends_have_the_same_schema_after_all_migrations(tmp_path, postgres_server):
    sqlite_schema, postgres_schema = await _read_both(tmp_path, postgres_server)
    assert "jobs" in sqlite_schema.tables and "jobs" in postgres_schema.tables  # both were read
    assert sqlite_schema.indexes and postgres_schema.indexes
    found = diff(sqlite_schema, postgres_schema)
    unexpected = {key: what for key, what in found.items() if key not in INTENDED}
    assert unexpected == {}, "\n".join(f"{key}: {what}" for key, what in unexpected.items())
    stale = sorted(INTENDED.keys() - found.keys())
    assert stale == [], f"allowed differences that are gone (remove them from INTENDED): {stale}"


async def test_a_column_a_migration_adds_to_one_backend_only_is_found(tmp_path, postgres_server):
    sqlite_schema, postgres_schema = await _read_both(
        tmp_path, postgres_server, sqlite_only_sql="ALTER TABLE jobs ADD COLUMN forgotten TEXT"
    )
    assert diff(sqlite_schema, postgres_schema)["column:jobs.forgotten"] == "only in sqlite"


def _schema(**extra_jobs_columns: Column) -> Schema:
    """A hand-made schema: one jobs table and one index."""
    columns = {"id": Column("integer", True), "status": Column("text", True)} | extra_jobs_columns
    return Schema(
        tables={"jobs": Table(columns, ("id",))},
        indexes={"jobs_open": Index("jobs", ("status",), partial=True)},
    )


def test_the_diff_finds_a_column_added_to_one_backend_only():
    assert diff(_schema(), _schema()) == {}
    assert diff(_schema(told=Column("integer", True)), _schema()) == {"column:jobs.told": "only in sqlite"}
    assert diff(_schema(), _schema(told=Column("integer", True))) == {"column:jobs.told": "only in postgresql"}


def test_the_diff_finds_types_nulls_keys_tables_and_indexes():
    sqlite = _schema(told=Column("integer", True), note=Column("text", False))
    postgres = _schema(told=Column("boolean", True), note=Column("text", True))
    postgres.tables["jobs"].primary_key = ("id", "status")
    postgres.tables["meta"] = Table({"key": Column("text", True)}, ("key",))
    postgres.indexes["jobs_open"] = Index("jobs", ("status",), partial=False)
    sqlite.indexes["jobs_by_note"] = Index("jobs", ("note",))
    assert set(diff(sqlite, postgres)) == {
        "type:jobs.told",
        "null:jobs.note",
        "key:jobs",
        "table:meta",
        "index:jobs_open",
        "index:jobs_by_note",
    }


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("INTEGER", "integer"),
        ("bigint", "integer"),
        ("smallint", "integer"),
        ("TEXT", "text"),
        ("character varying", "text"),
        ("REAL", "real"),
        ("double precision", "real"),
        ("BLOB", "blob"),
        ("bytea", "blob"),
        ("timestamp with time zone", "timestamp"),
        ("boolean", "boolean"),
        ("", "untyped"),
    ],
)
def test_types_are_compared_by_family(declared, expected):
    assert family(declared) == expected
