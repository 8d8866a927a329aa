"""The SQLite backend: one aiosqlite connection, WAL, numbered migrations, one write lock.

aiosqlite runs every statement on one worker thread, and a transaction belongs to the connection,
not to the coroutine that opened it: a statement from coroutine B issued while A holds an open
transaction runs inside A's transaction, and A's rollback erases it (measured, and pinned by
``tests/bot/storage``). So every write goes through
:meth:`SqliteDatabase.execute` or :meth:`SqliteDatabase.transaction`, which share one
``asyncio.Lock``; every transaction is ``BEGIN IMMEDIATE``, so it runs alone even against other
processes using the same file (they wait up to ``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.storage.database import (
    CLOSE_GRACE,
    Database,
    Migration,
    Params,
    Snapshot,
    Synchronous,
    Transaction,
    UpgradeProgress,
    check_read,
    load_migrations,
)

log = logging.getLogger(__name__)


class MigrationCheckFailed(sqlite3.IntegrityError):
    """A migration that rebuilt tables would have left rows pointing at missing rows; it was rolled back."""


class SqliteTransaction(Transaction):
    """Statements inside :meth:`SqliteDatabase.transaction` (the write lock is already held)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def fetch_one(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        """The first row of a query inside the transaction."""
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        """Every row of a query inside the transaction."""
        return list(await self._conn.execute_fetchall(sql, params))


class SqliteSnapshot(Snapshot):
    """Reads on a read-only connection inside one read transaction."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch_one(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        """The first row of a query, or None."""
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        """Every row of a query."""
        return list(await self._conn.execute_fetchall(sql, params))


class SqliteDatabase(Database):
    """The bot's SQLite store. Build it with :meth:`open`; close it with :meth:`close`."""

    backend = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.location = str(path)
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, *, synchronous: Synchronous = "NORMAL", migrate: bool = True) -> SqliteDatabase:
        """Open (creating if needed) the database at ``path`` and apply pending migrations (unless not ``migrate``)."""
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        # isolation_level=None: no implicit BEGINs; transactions are explicit and lock-guarded.
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        try:
            await _enable_wal(conn)
            # WAL + NORMAL: commits survive a process crash; FULL adds OS-crash/power-loss durability.
            await conn.execute(f"PRAGMA synchronous={synchronous}")
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA foreign_keys=ON")
            # Deleted or overwritten content is zeroed, not just unlinked: erased prompts leave the file.
            await conn.execute("PRAGMA secure_delete=ON")
            database = cls(conn, path)
            if migrate:
                await database.migrate(await asyncio.to_thread(load_migrations, "sqlite"))
        except BaseException:
            await conn.close()
            raise
        return database

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Close the connection: a write in progress gets ``grace`` seconds, then is cut (it rolls back)."""
        try:
            async with asyncio.timeout(grace):
                await self._write_lock.acquire()
        except TimeoutError:
            log.warning("A database write was still in progress %.1f s into shutdown; cutting it", grace)
            await self._conn.close()
            return
        try:
            await self._conn.close()
        finally:
            self._write_lock.release()

    async def schema_version(self) -> int:
        """The number of the last migration applied."""
        return int(await self.fetch_value("PRAGMA user_version"))

    async def migrate(self, migrations: Iterable[Migration]) -> None:
        """Apply every migration newer than the database, each atomically with its version bump.

        Each one runs under ``BEGIN IMMEDIATE`` and re-reads the version inside it, so processes that
        open a new file at the same moment (a shard cluster, workers) apply each migration once. A
        migration that rebuilds tables (:func:`rebuilds_tables`) runs with foreign keys off, as SQLite
        prescribes for schema changes, and is checked with ``PRAGMA foreign_key_check`` before it
        commits: with them on, dropping the old parent table would delete every child row (cascade).
        An upgrade of a database that holds data logs its progress (:class:`UpgradeProgress`).
        """
        start = await self.schema_version()
        pending = [m for m in migrations if m.version > start]
        if not pending:
            return
        progress = await UpgradeProgress.begin(self, start, pending)
        for migration in pending:
            started = time.perf_counter()
            if await self._apply(migration):
                await progress.applied(migration, time.perf_counter() - started)

    async def _apply(self, migration: Migration) -> bool:
        """Apply one migration in one transaction; False if another process applied it first."""
        rebuild = rebuilds_tables(migration.sql)
        async with self._write_lock:
            foreign_keys = bool(next(iter(await self._conn.execute_fetchall("PRAGMA foreign_keys")))[0])
            if rebuild and foreign_keys:
                # A no-op inside a transaction: it must be switched before BEGIN, and back after COMMIT.
                await self._conn.execute("PRAGMA foreign_keys=OFF")
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    current = next(iter(await self._conn.execute_fetchall("PRAGMA user_version")))[0]
                    if migration.version <= current:
                        await self._conn.execute("ROLLBACK")
                        return False
                    log.info(
                        "Applying database migration %s%s",
                        migration.name,
                        " (it rebuilds tables: foreign keys off, checked before commit)" if rebuild else "",
                    )
                    for statement in _statements(migration.sql):
                        await self._conn.execute(statement)
                    if rebuild:
                        await _check_foreign_keys(self._conn, self.path, migration)
                    await self._conn.execute(f"PRAGMA user_version = {migration.version}")
                except BaseException:
                    if self._conn.in_transaction:
                        await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")
                return True
            finally:
                if rebuild and foreign_keys:
                    if self._conn.in_transaction:  # a failed COMMIT: nothing of it may stay
                        await self._conn.execute("ROLLBACK")
                    await self._conn.execute("PRAGMA foreign_keys=ON")

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement atomically; return the number of rows it changed."""
        async with self._write_lock:
            cursor = await self._conn.execute(sql, params)
            return cursor.rowcount

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """A ``BEGIN IMMEDIATE`` transaction under the write lock; commits, or rolls back on error."""
        async with self._write_lock:
            await self._begin()
            try:
                yield SqliteTransaction(self._conn)
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                await self._conn.execute("COMMIT")

    async def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, undone if the caller is cancelled while it runs.

        The BEGIN runs on aiosqlite's thread regardless of the cancellation: it is let finish and rolled
        back, so the shared connection is never left inside a transaction nobody owns (every later BEGIN
        would fail with "cannot start a transaction within a transaction").
        """
        begin = asyncio.ensure_future(self._conn.execute("BEGIN IMMEDIATE"))
        try:
            await asyncio.shield(begin)
        except BaseException:
            with contextlib.suppress(BaseException):
                await begin
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
            raise

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SqliteSnapshot]:
        """Reads on a second, read-only connection in one read transaction (WAL: the writer goes on).

        The bot's own connection, its write lock and aiosqlite's thread are not used, so a long
        read never delays a reservation.
        """
        conn = await aiosqlite.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        try:
            await conn.execute("PRAGMA busy_timeout=5000")
            # Long reads: a page cache and sorts in memory for this connection, gone when it closes.
            await conn.execute("PRAGMA cache_size=-32768")
            await conn.execute("PRAGMA temp_store=MEMORY")
            await conn.execute("BEGIN")  # deferred: the first read fixes the snapshot
            await conn.execute_fetchall("SELECT COUNT(*) FROM sqlite_master")
            yield SqliteSnapshot(conn)
        finally:
            await conn.close()  # ends the read transaction

    async def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and truncate it (after erasing data)."""
        async with self._write_lock:
            await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def fetch_one(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        """The first row of a query, or None.

        Read and closed in ONE call on aiosqlite's thread: between a cursor's execute and its fetch,
        another coroutine's ``BEGIN IMMEDIATE`` can run on the connection while the half-read
        statement holds a read snapshot, and if another process wrote since, SQLite refuses it at
        once with "database is locked" (measured with four processes on one file).
        """
        check_read(sql)
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        """Every row of a query (a read: writes go through :meth:`execute` or :meth:`transaction`)."""
        check_read(sql)
        return list(await self._conn.execute_fetchall(sql, params))

    async def tables(self) -> list[str]:
        """The application's tables, sorted."""
        rows = await self.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        return [r[0] for r in rows]


_REBUILD = re.compile(r"\bDROP\s+TABLE\b|\bALTER\s+TABLE\s+\S+\s+RENAME\s+TO\b", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")


def rebuilds_tables(sql: str) -> bool:
    """Whether a migration drops or renames a table: SQLite's way to change a table's constraints.

    Such a migration must run with foreign keys off (``DROP TABLE`` of a parent would otherwise
    delete, through ``ON DELETE CASCADE``, every row of the rebuilt child that already points at the
    old name) and be checked with ``PRAGMA foreign_key_check`` before it commits.
    """
    return bool(_REBUILD.search(_COMMENT.sub("", sql)))


def _count_dangling(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for row in rows:  # PRAGMA foreign_key_check: (table, rowid, parent, key index)
        found[(row[0], row[2])] = found.get((row[0], row[2]), 0) + 1
    return found


def _dangling_before(path: Path) -> dict[tuple[str, str], int]:
    """What dangled in the file's last committed state, before the migration still open on the main connection.

    A second, read-only connection: with WAL it reads the database as it was before that transaction.
    """
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return _count_dangling(conn.execute("PRAGMA foreign_key_check").fetchall())
    finally:
        conn.close()


async def _check_foreign_keys(conn: aiosqlite.Connection, path: Path, migration: Migration) -> None:
    """Raise :class:`MigrationCheckFailed` (the caller rolls back) if the migration left rows pointing at nothing.

    Rows that already pointed at nothing before it (deleted by hand with foreign keys off, for example)
    were not its doing: they stay as they were and are logged. Only then is the old state checked too.
    """
    after = _count_dangling(await conn.execute_fetchall("PRAGMA foreign_key_check"))
    if not after:
        return
    before = await asyncio.to_thread(_dangling_before, path)
    worse = {where: n for where, n in after.items() if n > before.get(where, 0)}
    if worse:
        found = ", ".join(f"{n - before.get((t, p), 0)} in {t} (→ {p})" for (t, p), n in sorted(worse.items()))
        raise MigrationCheckFailed(
            f"migration {migration.name} would leave rows pointing at missing rows: {found}; nothing was changed"
        )
    found = ", ".join(f"{n} in {t} (→ {p})" for (t, p), n in sorted(after.items()))
    log.warning("Rows that already pointed at missing rows before %s are kept as they were: %s", migration.name, found)


def _statements(script: str) -> list[str]:
    """``script`` split into its statements (a trigger's ``BEGIN … END;`` body stays whole)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    if pending.strip():
        statements.append(pending)  # an unterminated last statement, or trailing comments
    return statements


async def _enable_wal(conn: aiosqlite.Connection, attempts: int = 50) -> None:
    """Switch the database to WAL, trying again briefly while another connection is switching it.

    On a new file opened by several processes at once, the switch needs a moment alone and SQLite
    answers "database is locked" at once instead of waiting for its busy timeout.
    """
    for attempt in range(attempts):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 + 0.05 * attempt)
