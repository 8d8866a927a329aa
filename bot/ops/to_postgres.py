"""`python -m bot migrate-to-postgres [URL]`: copy the SQLite database into a new PostgreSQL database.

A server moving to PostgreSQL (docs/operations.md) keeps its whole history: limits, budgets, the
ledger and its counters, jobs (open ones resume on the new database), safety rules, audit log. The
copy is all or nothing:

* the SQLite file at ``DATABASE_PATH`` is first brought to this version's schema (as a start would);
  it must not be in use: a bot process that still renews its lease there is named and the copy refused;
* the PostgreSQL database is migrated to the same schema version and must hold no data yet;
* every table is copied in ONE PostgreSQL transaction with ``COPY``; the tables' own triggers are
  switched off inside it (the copy brings the counters and events those triggers would derive, as
  they were), identity sequences are moved past the copied ids, and before the commit each table's
  row count and the ledger's micro-dollar sums are compared with the source. Any difference rolls
  everything back, so a failed copy leaves an empty database that can simply be tried again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.clock import to_millis, utc_now
from bot.engine.states import OPEN
from bot.storage.database import Database, redact_url

log = logging.getLogger(__name__)

# Sums that must come out equal to the micro-dollar, per table.
_CHECKSUMS = {
    "ledger": "SELECT COUNT(*), COALESCE(SUM(server_micros), 0), COALESCE(SUM(member_micros), 0),"
    " COALESCE(SUM(member_images), 0) FROM ledger",
    "usage": "SELECT COUNT(*), COALESCE(SUM(micros), 0), COALESCE(SUM(images), 0),"
    " COALESCE(SUM(granted_micros), 0) FROM usage",
}
_INTEGER_TYPES = {"smallint", "integer", "bigint"}
_FLOAT_TYPES = {"double precision", "real"}


class TransferError(Exception):
    """The copy could not be made (nothing was written); the message is one line naming the cause."""


@dataclass(frozen=True)
class TransferResult:
    """What was copied."""

    target: str  # the PostgreSQL URL, password redacted
    tables: int
    rows: int
    jobs: int
    ledger_rows: int
    open_jobs: int


async def migrate_to_postgres(source: Path, url: str, *, pool_size: int = 2) -> TransferResult:
    """Copy the SQLite database at ``source`` into the empty PostgreSQL database at ``url``."""
    if not await asyncio.to_thread(source.is_file):
        raise TransferError(f"there is no database at {source} (check DATABASE_PATH)")
    try:
        sqlite = await Database.open(source)
    except Exception as exc:
        raise TransferError(f"could not open {source}: {exc}") from exc
    try:
        await _refuse_running_bots(sqlite, source)
        try:
            postgres = await Database.connect(url, pool_size=pool_size)
        except Exception as exc:
            raise TransferError(f"could not connect to {redact_url(url)}: {_one_line(exc)}") from exc
        try:
            return await _copy(sqlite, postgres, url)
        except TransferError:
            raise
        except Exception as exc:  # the transaction rolled back: the database is as empty as before
            raise TransferError(f"the copy stopped and nothing was written: {_one_line(exc)}") from exc
        finally:
            await postgres.close()
    finally:
        await sqlite.close()


async def _refuse_running_bots(sqlite: Database, source: Path) -> None:
    """A process still renewing its lease on the SQLite file would write after the copy: refuse."""
    now = to_millis(utc_now())
    row = await sqlite.fetch_one(
        "SELECT id, role FROM processes WHERE lease_expires_at > ? ORDER BY id LIMIT 1", (now,)
    )
    if row is not None:
        raise TransferError(
            f"a bot process ({row['role']} {row['id']}) is still running on {source}; stop every bot process first"
        )


async def _copy(sqlite: Database, postgres: Any, url: str) -> TransferResult:
    source_version = await sqlite.schema_version()
    target_version = await postgres.schema_version()
    if source_version != target_version:
        raise TransferError(
            f"the schemas differ (SQLite at version {source_version}, PostgreSQL at {target_version}); "
            "run the same Fluxcord version for both"
        )
    async with postgres.connection() as conn:
        tables = await _in_dependency_order(conn, await sqlite.tables())
        existing = await postgres.tables()
        occupied = [t for t in existing if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{t}")')]
        if occupied:
            raise TransferError(
                f"the PostgreSQL database already holds data (in {', '.join(occupied[:3])}); "
                "copy into a new, empty database"
            )
        missing = sorted(set(tables) - set(existing))
        if missing:
            raise TransferError(f"PostgreSQL has no table {missing[0]}; run the same Fluxcord version for both")
        rows = 0
        async with conn.transaction():
            for table in tables:
                await conn.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
            for table in tables:
                rows += await _copy_table(sqlite, conn, table)
            for table in tables:
                await conn.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')
            await _advance_identities(conn)
            await _compare(sqlite, conn, tables)
    jobs = await sqlite.fetch_value("SELECT COUNT(*) FROM jobs", default=0)
    ledger_rows = await sqlite.fetch_value("SELECT COUNT(*) FROM ledger", default=0)
    open_jobs = await sqlite.fetch_value(
        f"SELECT COUNT(*) FROM jobs WHERE status IN ({', '.join('?' * len(OPEN))})",
        [status.value for status in OPEN],
        default=0,
    )
    log.info("Copied %d rows in %d tables to %s", rows, len(tables), redact_url(url))
    return TransferResult(redact_url(url), len(tables), rows, jobs, ledger_rows, open_jobs)


async def _in_dependency_order(conn: Any, tables: list[str]) -> list[str]:
    """``tables`` ordered so that a table comes after every table its foreign keys point to."""
    edges = await conn.fetch(
        "SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent"
        " FROM pg_constraint c WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace"
    )
    parents: dict[str, set[str]] = {table: set() for table in tables}
    for edge in edges:
        child, parent = edge["child"].strip('"'), edge["parent"].strip('"')
        if child in parents and parent in parents and child != parent:
            parents[child].add(parent)
    ordered: list[str] = []
    while parents:
        ready = sorted(t for t, needs in parents.items() if not needs - set(ordered))
        if not ready:
            raise TransferError(f"the foreign keys between {', '.join(sorted(parents))} form a cycle")
        ordered += ready
        for table in ready:
            del parents[table]
    return ordered


async def _columns(conn: Any, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return {row["column_name"]: row["data_type"] for row in rows}


async def _copy_table(sqlite: Database, conn: Any, table: str) -> int:
    """COPY one table's rows (values converted to the PostgreSQL column types); how many."""
    target = await _columns(conn, table)
    source = [row["name"] for row in await sqlite.fetch_all(f'SELECT name FROM pragma_table_info("{table}")')]
    extra = [name for name in source if name not in target]
    if extra:
        raise TransferError(f"PostgreSQL's {table} has no column {extra[0]}; run the same Fluxcord version for both")
    columns = list(source)
    select = [f'"{name}"' for name in source]
    if "rowid" in target and "rowid" not in source:  # SQLite's implicit rowid is an explicit column there
        columns.append("rowid")
        select.append("rowid")
    records = [
        tuple(_convert(row[i], target[name]) for i, name in enumerate(columns))
        for row in await sqlite.fetch_all(f'SELECT {", ".join(select)} FROM "{table}"')
    ]
    if records:
        await conn.copy_records_to_table(table, records=records, columns=columns)
    return len(records)


def _convert(value: Any, data_type: str) -> Any:
    """A SQLite value (loosely typed) as the PostgreSQL column's type expects it."""
    if value is None:
        return None
    if data_type in _INTEGER_TYPES:
        return int(value)
    if data_type in _FLOAT_TYPES:
        return float(value)
    if data_type == "text" and not isinstance(value, str):
        return value.decode() if isinstance(value, bytes) else str(value)
    return value


async def _advance_identities(conn: Any) -> None:
    """Move every identity sequence past the ids the copy brought, so new rows get fresh ids."""
    identities = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    for row in identities:
        table, column = row["table_name"], row["column_name"]
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'),"
            f' COALESCE((SELECT MAX("{column}") FROM "{table}"), 0) + 1, false)'
        )


async def _compare(sqlite: Database, conn: Any, tables: list[str]) -> None:
    """Row counts per table and the money sums, equal on both sides, or the transaction rolls back."""
    for table in tables:
        want = await sqlite.fetch_value(f'SELECT COUNT(*) FROM "{table}"', default=0)
        got = await conn.fetchval(f'SELECT COUNT(*) FROM "{table}"')
        if want != got:
            raise TransferError(f"{table}: {got} rows arrived of {want}; nothing was copied")
    for table, query in _CHECKSUMS.items():
        if table in tables:
            want_sums = tuple(await sqlite.fetch_one(query) or ())  # an aggregate: always one row
            got_sums = tuple(await conn.fetchrow(query))
            if want_sums != got_sums:
                raise TransferError(f"{table}: the sums differ after the copy ({got_sums} != {want_sums})")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
