"""Upgrades keep every row: a database at every older schema version, full of data, opened by today's bot.

For each version k below the newest (derived from ``load_migrations()``, never written down), on both
backends: migrations 1..k are applied, every table that exists at k gets rows (jobs in every status,
every ledger kind, rows that triggers write, rows pointing at jobs), each table's row count and
checksum are taken, and the database is opened the normal way, which upgrades it. Every row must
still be there with the same values in the columns it had, except where a migration changes a value on
purpose (:data:`INTENDED`). Before the fix, 0005's table rebuild ran with foreign keys on and deleted
every ``job_events`` row of a database older than 0005.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from typing import Any

import pytest

from bot.storage.database import Database, load_migrations
from bot.storage.postgres import PostgresDatabase
from bot.storage.sqlite import MigrationCheckFailed, SqliteDatabase

NEWEST = len(load_migrations())
ROWS = 12
JOB_IDS = [1_000 + n for n in range(ROWS)]

#: Values a column's CHECK constraint allows (valid at every version where the column exists).
CHOICES: dict[tuple[str, str], list[Any]] = {
    ("jobs", "status"): [
        "queued", "submitting", "generating", "downloading", "delivering", "delivered", "failed", "cached", "unknown",
    ],
    ("ledger", "kind"): ["reserve", "settle", "release", "grant", "adjustment"],
    ("limits", "target_kind"): ["member", "role", "server"],
    ("limits", "metric"): ["usd", "images"],
    ("limits", "period"): ["day", "week", "month"],
    ("safety_levels", "level"): ["strict", "standard", "relaxed"],
    ("processes", "role"): ["bot", "worker"],
    ("job_sources", "kind"): ["edit", "vary", "reroll"],
    ("breaker_events", "kind"): ["failure", "success"],
    ("usage", "shard"): list(range(12)),  # PostgreSQL: a counter's shard (SMALLINT), 0-63
    ("server_styles", "lora_strength"): [0.0, 0.25, 1.0, 2.0],  # finetune_strength, CHECK 0-2
    ("budget_asks", "state"): ["open", "approved", "denied", "expired"],
}  # fmt: skip
FLAGS = {"paused", "grounding", "private", "acked", "draft", "video", "priority"}  # CHECK (x IN (0, 1))
ONE_TO_FOUR = {
    ("job_groups", "size"), ("member_prefs", "count"), ("fallback_offers", "images"), ("channel_defaults", "count"),
}  # fmt: skip
POINTS_AT_JOBS = {("job_events", "job_id"), ("job_deletions", "job_id")}  # foreign keys to jobs(id)

#: What migrations change on purpose: (version, table, column) → {old value: new value}.
INTENDED: dict[tuple[int, str, str], dict[Any, Any]] = {
    (5, "jobs", "status"): {"cached": "delivered"},  # 'cached' became an open state; old ones had ended
}
#: Tables a migration moves into another on purpose: (version, table) → (the table its rows join, their kind).
#: Their rows are checked where they land (tests/bot/storage/test_offers_upgrade.py checks that they work).
MOVED: dict[tuple[int, str], tuple[str, str]] = {
    (24, "fallback_offers"): ("offers", "fallback"),  # one table for every pending offer, with a kind
}


def intended_additions(backend: str, version: int, before: dict[str, dict[str, Any]]) -> dict[str, list[dict]]:
    """Rows migrations add on purpose, per table, as the column values that identify them.

    PostgreSQL's 0005 changes old 'cached' jobs with an UPDATE, which its status trigger records as
    one 'delivered' event per such job (SQLite's 0005 rebuilds the table, which fires no trigger).
    A table moved into another (:data:`MOVED`) adds its rows there, under their kind.
    """
    additions = moved_rows(version, before)
    if backend != "postgresql" or version >= 5:
        return additions
    jobs = before["jobs"]
    at = {c: jobs["columns"].index(c) for c in ("id", "status")}
    cached = [row for row in jobs["rows"] if row[at["status"]] == _canonical("cached")]
    return {**additions, "job_events": [{"job_id": row[at["id"]], "status": _canonical("delivered")} for row in cached]}


def moved_rows(version: int, before: dict[str, dict[str, Any]]) -> dict[str, list[dict]]:
    """The rows of tables moved after ``version`` that the upgrade adds to the tables they join."""
    additions: dict[str, list[dict]] = {}
    for (at, table), (into, kind) in MOVED.items():
        if at > version and table in before and into in before:
            ids = [row[before[table]["columns"].index("id")] for row in before[table]["rows"]]
            additions.setdefault(into, []).extend({"id": i, "kind": _canonical(kind)} for i in ids)
    return additions


def moved_away(version: int) -> set[str]:
    """The tables a migration after ``version`` moves into another (:data:`MOVED`)."""
    return {table for (at, table) in MOVED if at > version}


def without_additions(after: dict[str, dict[str, Any]], expected: dict, additions: dict[str, list[dict]]) -> dict:
    """``after`` less the rows in ``additions``, each found exactly once among the rows not expected."""
    result = {}
    for table, data in after.items():
        rows = list(data["rows"])
        for wanted in additions.get(table, []):
            at = {c: data["columns"].index(c) for c in wanted}
            old = expected[table]["rows"]
            match = [r for r in rows if r not in old and all(r[at[c]] == v for c, v in wanted.items())]
            assert match, f"{table}: no added row like {wanted}"
            rows.remove(match[0])
        result[table] = {"columns": data["columns"], "rows": rows}
    return result


def _value(table: str, column: str, kind: str, n: int) -> Any:
    """Row ``n``'s value for a column: allowed by its constraints, distinct per row and per column."""
    if (table, column) in CHOICES:
        choices = CHOICES[(table, column)]
        return choices[n % len(choices)]
    if (table, column) in POINTS_AT_JOBS:
        return JOB_IDS[n]
    if table == "jobs" and column == "id":
        return JOB_IDS[n]
    if column in FLAGS:
        return n % 2
    if (table, column) in ONE_TO_FOUR:
        return n % 4 + 1
    salt = zlib.crc32(f"{table}.{column}".encode()) % 100_000
    if kind == "integer":
        return salt * 1_000 + n  # below 2**31: fits PostgreSQL's INTEGER columns too
    if kind == "real":
        return salt + n / 4
    return f"{table}.{column}.{n} ✓"  # text, with a character outside ASCII


async def _columns(db: Database, table: str) -> dict[str, str]:
    """The table's columns and their kind (integer, real, text), in order."""
    if db.backend == "sqlite":
        rows = await db.fetch_all(f'PRAGMA table_info("{table}")')
        declared = {r["name"]: r["type"].upper() for r in rows}
    else:
        rows = await db.fetch_all(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        declared = {r[0]: r[1].upper() for r in rows}
    return {
        name: "integer" if "INT" in kind else "real" if kind in {"REAL", "DOUBLE PRECISION"} else "text"
        for name, kind in declared.items()
    }


async def fill(db: Database) -> None:
    """ROWS rows in every table of the database (jobs first: other tables point at them)."""
    tables = await db.tables()
    for table in sorted(tables, key=lambda t: (t != "jobs", t)):
        columns = await _columns(db, table)
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        for n in range(ROWS):
            values = [_value(table, column, kind, n) for column, kind in columns.items()]
            await db.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', values)


def _canonical(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else repr(value)


async def snapshot(db: Database, columns_of: dict[str, list[str]] | None = None) -> dict[str, dict[str, Any]]:
    """Per table: its columns, its row count, and a checksum of its rows (order-independent)."""
    tables = await db.tables() if columns_of is None else list(columns_of)
    result: dict[str, dict[str, Any]] = {}
    for table in tables:
        columns = list(await _columns(db, table)) if columns_of is None else columns_of[table]
        names = ", ".join(f'"{c}"' for c in columns)
        rows = await db.fetch_all(f'SELECT {names} FROM "{table}"')
        result[table] = {"columns": columns, "rows": sorted(tuple(_canonical(v) for v in row) for row in rows)}
    return result


def expected_after(old: dict[str, dict[str, Any]], version: int) -> dict[str, dict[str, Any]]:
    """The old snapshot with the changes the migrations after ``version`` make on purpose."""
    expected = {}
    for table, data in old.items():
        rows = [list(row) for row in data["rows"]]
        for (at, changed_table, column), mapping in INTENDED.items():
            if at > version and changed_table == table and column in data["columns"]:
                i = data["columns"].index(column)
                canonical = {_canonical(k): _canonical(v) for k, v in mapping.items()}
                for row in rows:
                    row[i] = canonical.get(row[i], row[i])
        expected[table] = {"columns": data["columns"], "rows": sorted(tuple(row) for row in rows)}
    return expected


def summary(snap: dict[str, dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """Per table: (row count, SHA-256 of its sorted rows)."""
    return {
        table: (len(data["rows"]), hashlib.sha256(repr(data["rows"]).encode()).hexdigest()[:16])
        for table, data in snap.items()
    }


async def at_version(backend: str, version: int, tmp_path, request) -> tuple[Database, str]:
    """A new database of ``backend`` migrated to ``version`` exactly; and how to reach it again."""
    if backend == "sqlite":
        target = str(tmp_path / f"v{version}.sqlite3")
        db: Database = await SqliteDatabase.open(tmp_path / f"v{version}.sqlite3", migrate=False)
    else:
        server = request.getfixturevalue("postgres_server")
        target = await server.new_database(migrated=False)
        db = await PostgresDatabase.connect(target, pool_size=2, migrate=False)
    await db.migrate(load_migrations(db.backend)[:version])
    assert await db.schema_version() == version
    return db, target


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("version", range(1, NEWEST))
async def test_an_old_database_upgrades_with_every_row(backend, version, tmp_path, request):
    db, target = await at_version(backend, version, tmp_path, request)
    try:
        await fill(db)
        before = await snapshot(db)
    finally:
        await db.close()
    assert all(len(data["rows"]) >= ROWS for data in before.values())  # every table has data
    moved = {table: before.pop(table) for table in moved_away(version) if table in before}

    upgraded = await Database.at(target)
    try:
        assert await upgraded.schema_version() == NEWEST
        new_tables = set(await upgraded.tables())
        assert set(before) <= new_tables, f"tables lost: {set(before) - new_tables}"
        for table, data in before.items():
            columns = await _columns(upgraded, table)
            missing = set(data["columns"]) - set(columns)
            assert not missing, f"{table} lost columns {missing}"
        after = await snapshot(upgraded, {table: data["columns"] for table, data in before.items()})
        if backend == "sqlite":
            assert await upgraded.fetch_value("PRAGMA foreign_keys") == 1  # back on after the rebuild
            assert await upgraded.fetch_all("PRAGMA foreign_key_check") == []
    finally:
        await upgraded.close()
    expected = expected_after(before, version)
    after = without_additions(after, expected, intended_additions(backend, version, {**before, **moved}))
    assert summary(after) == summary(expected)
    assert after == expected


async def test_an_upgrade_logs_its_progress_with_row_counts(tmp_path, caplog):
    """Each migration of an upgrade logs its time; the row counts show that nothing was lost."""
    version = 4  # before 0005's rebuild of jobs and job_events
    db = await SqliteDatabase.open(tmp_path / "old.sqlite3", migrate=False)
    await db.migrate(load_migrations()[:version])
    await fill(db)
    events = await db.fetch_value("SELECT COUNT(*) FROM job_events")
    await db.close()

    caplog.set_level(logging.INFO, logger="bot.storage")
    upgraded = await Database.open(tmp_path / "old.sqlite3")
    await upgraded.close()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.storage")]
    start = next(line for line in lines if line.startswith("Upgrading the sqlite database"))
    assert f"from schema version {version} to {NEWEST} ({NEWEST - version} migrations)" in start
    assert f"job_events {events:,}" in start
    applied = [line for line in lines if line.startswith("Applied migration")]
    assert [line.split()[2] for line in applied] == [m.name for m in load_migrations()[version:]]
    assert all(" s; " in line for line in applied)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("bot.storage")]


async def test_a_new_database_is_migrated_without_counting_rows(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bot.storage")
    db = await Database.open(tmp_path / "new.sqlite3")
    await db.close()
    assert not [r for r in caplog.records if r.getMessage().startswith(("Upgrading", "Applied migration"))]


async def test_a_migration_that_loses_rows_is_logged_as_a_warning(tmp_path, caplog):
    from bot.storage.database import Migration

    db = await Database.open(tmp_path / "db.sqlite3")
    try:
        await db.execute("INSERT INTO meta (key, value) VALUES ('a', '1'), ('b', '2')")
        caplog.set_level(logging.INFO, logger="bot.storage")
        await db.migrate([Migration(NEWEST + 1, "9999_drop_meta_rows.sql", "DELETE FROM meta WHERE key = 'a';")])
    finally:
        await db.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "9999_drop_meta_rows.sql" in warnings[0] and "meta 2 → 1" in warnings[0]


# --- the SQLite runner: table rebuilds with foreign keys off, checked before commit --------------------

PARENT_AND_CHILD = """-- Reason: test tables.
CREATE TABLE parent (id INTEGER PRIMARY KEY, label TEXT NOT NULL CHECK (label != ''));
CREATE TABLE child (parent_id INTEGER NOT NULL REFERENCES parent (id) ON DELETE CASCADE, note TEXT);
CREATE INDEX child_by_parent ON child (parent_id);
INSERT INTO parent (id, label) VALUES (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO child (parent_id, note) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (3, 'd');
"""

# SQLite's way to change a constraint: build the new table, copy, drop the old one, rename.
REBUILD_PARENT = """-- Reason: a rebuild of the parent table ({keep}).
CREATE TABLE parent_new (id INTEGER PRIMARY KEY, label TEXT NOT NULL);
INSERT INTO parent_new (id, label) SELECT id, label FROM parent WHERE {keep};
DROP TABLE parent;
ALTER TABLE parent_new RENAME TO parent;
"""


@pytest.mark.sqlite_only
async def test_a_table_rebuild_keeps_the_rows_that_point_at_it(tmp_path):
    from bot.storage.database import Migration

    db = await Database.open(tmp_path / "db.sqlite3")
    try:
        await db.migrate([Migration(NEWEST + 1, "9998_parent.sql", PARENT_AND_CHILD)])
        await db.migrate([Migration(NEWEST + 2, "9999_rebuild.sql", REBUILD_PARENT.format(keep="1 = 1"))])
        assert await db.schema_version() == NEWEST + 2
        assert await db.fetch_value("SELECT COUNT(*) FROM child") == 4  # with foreign keys on: 0 (cascade)
        assert await db.fetch_value("PRAGMA foreign_keys") == 1
        await db.execute("DELETE FROM parent WHERE id = 3")  # and the rebuilt parent still cascades
        assert await db.fetch_value("SELECT COUNT(*) FROM child") == 2
    finally:
        await db.close()


@pytest.mark.sqlite_only
async def test_a_rebuild_that_would_orphan_rows_is_rolled_back(tmp_path):
    from bot.storage.database import Migration

    db = await Database.open(tmp_path / "db.sqlite3")
    try:
        await db.migrate([Migration(NEWEST + 1, "9998_parent.sql", PARENT_AND_CHILD)])
        lossy = Migration(NEWEST + 2, "9999_rebuild.sql", REBUILD_PARENT.format(keep="id != 3"))
        with pytest.raises(MigrationCheckFailed, match=r"9999_rebuild.sql .* 2 in child \(→ parent\)"):
            await db.migrate([lossy])
        assert await db.schema_version() == NEWEST + 1
        assert await db.fetch_value("SELECT COUNT(*) FROM parent") == 3
        assert await db.fetch_value("SELECT COUNT(*) FROM child") == 4
        assert "parent_new" not in await db.tables()
        assert await db.fetch_value("PRAGMA foreign_keys") == 1
    finally:
        await db.close()


def test_rebuilding_migrations_are_recognised():
    from bot.storage.sqlite import rebuilds_tables

    migrations = {m.name: m for m in load_migrations()}
    assert rebuilds_tables(migrations["0005_job_engine.sql"].sql)
    assert not rebuilds_tables(migrations["0004_job_aspect_ratio.sql"].sql)
    assert rebuilds_tables("alter table x_new rename to x;")
    assert not rebuilds_tables("ALTER TABLE jobs ADD COLUMN style TEXT;\n-- DROP TABLE in a comment only\n")
    assert not rebuilds_tables("ALTER TABLE jobs RENAME COLUMN a TO b;")


@pytest.mark.sqlite_only
async def test_rows_that_already_dangled_do_not_stop_an_upgrade(tmp_path, caplog):
    """Jobs deleted by hand in the sqlite3 shell (foreign keys off there) left events behind: kept, logged."""
    path = tmp_path / "a folder" / "old #1?.sqlite3"  # the old state is read through a file: URI
    db = await SqliteDatabase.open(path, migrate=False)
    await db.migrate(load_migrations()[:4])
    await fill(db)
    await db.execute("PRAGMA foreign_keys=OFF")
    await db.execute("DELETE FROM jobs WHERE id = ?", (JOB_IDS[0],))
    await db.execute("PRAGMA foreign_keys=ON")
    events = await db.fetch_value("SELECT COUNT(*) FROM job_events")
    await db.close()

    caplog.set_level(logging.INFO, logger="bot.storage")
    upgraded = await Database.open(path)
    try:
        assert await upgraded.schema_version() == NEWEST
        assert await upgraded.fetch_value("SELECT COUNT(*) FROM job_events") == events
    finally:
        await upgraded.close()
    assert any("already pointed at missing rows" in r.getMessage() for r in caplog.records)
