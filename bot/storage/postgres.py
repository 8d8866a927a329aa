"""The PostgreSQL backend: an asyncpg pool, a transaction per call, the same numbered migrations.

Application SQL uses ``?`` or ``:name`` placeholders; :func:`translate` turns them into ``$1 …``
(outside string literals, quoted names and comments) once per statement text. Transactions run
side by side, from this process and others: what SQLite gets from running one writer at a time,
code gets here from row locks (:attr:`PostgresTransaction.for_update`) and advisory locks
(:meth:`PostgresTransaction.lock`). Migrations run one at a time across every process starting at
once (``pg_advisory_xact_lock``), each in one transaction with its row in ``schema_version``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from bot.storage.database import (
    CLOSE_GRACE,
    Database,
    Migration,
    Params,
    Snapshot,
    Transaction,
    UpgradeProgress,
    check_read,
    load_migrations,
    redact_url,
)

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x466C7578_6D696772  # "Fluxmigr": one migrating process at a time
DEFAULT_POOL_SIZE = 10


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, tuple[str, ...] | None]:
    """``sql`` with ``?`` / ``:name`` placeholders as ``$n``; the names in ``$n`` order (None: positional)."""
    out: list[str] = []
    names: list[str] = []
    positional = 0
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":  # a string literal or a quoted name: copied as is ('' and "" escapes included)
            end = sql.find(ch, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == ch:
                end = sql.find(ch, end + 2)
            end = n if end == -1 else end + 1
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end == -1 else end + 2
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            positional += 1
            out.append(f"${positional}")
            i += 1
        elif sql.startswith("::", i):
            out.append("::")
            i += 2
        elif ch == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            name = sql[i + 1 : j]
            if name not in names:
                names.append(name)
            out.append(f"${names.index(name) + 1}")
            i = j
        else:
            out.append(ch)
            i += 1
    if positional and names:
        raise ValueError("a statement mixes ? and :name placeholders")
    return "".join(out), (tuple(names) if names else None)


def _prepare(sql: str, params: Params) -> tuple[str, list[Any]]:
    text, names = translate(sql)
    if names is None:
        return text, list(params.values() if isinstance(params, dict) else params)
    if not isinstance(params, dict):
        raise TypeError("a statement with :name placeholders needs a dict of parameters")
    return text, [params[name] for name in names]


_INT8 = struct.Struct("!q")
_INT4 = struct.Struct("!i")


def _integer_codec(packer: struct.Struct, name: str) -> tuple[Any, Any]:
    def encode(value: Any) -> bytes:
        # asyncpg would truncate 0.5 to 0 without a word; money is integers, so a float is a bug.
        if not isinstance(value, int):
            raise TypeError(f"{name} parameters must be int, not {type(value).__name__}")
        return packer.pack(value)

    def decode(data: bytes) -> int:
        return packer.unpack(data)[0]

    return encode, decode


async def _setup_connection(conn: asyncpg.Connection) -> None:
    for type_name, packer in (("int8", _INT8), ("int4", _INT4)):
        encode, decode = _integer_codec(packer, type_name)
        await conn.set_type_codec(type_name, schema="pg_catalog", encoder=encode, decoder=decode, format="binary")


_TABLES = (
    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename != 'schema_version'"
    " ORDER BY tablename"
)


async def _version(conn: asyncpg.Connection) -> int:
    """The last migration applied on ``conn``'s database (0 for an empty database)."""
    if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


def _rowcount(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _ConnectionReads:
    """Queries on one pooled connection (inside a transaction or a snapshot)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch_one(self, sql: str, params: Params = ()) -> asyncpg.Record | None:
        """The first row of a query, or None."""
        text, args = _prepare(sql, params)
        return await self._conn.fetchrow(text, *args)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        """Every row of a query."""
        text, args = _prepare(sql, params)
        return list(await self._conn.fetch(text, *args))


class PostgresTransaction(_ConnectionReads, Transaction):
    """Statements on one pooled connection inside one transaction."""

    for_update = " FOR UPDATE"

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        text, args = _prepare(sql, params)
        return _rowcount(await self._conn.execute(text, *args))

    async def lock(self, name: str) -> None:
        """Hold the advisory lock ``name`` until the transaction ends (other holders wait)."""
        await self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", name)


class PostgresSnapshot(_ConnectionReads, Snapshot):
    """Reads in one ``REPEATABLE READ READ ONLY`` transaction."""


class PostgresDatabase(Database):
    """The bot's PostgreSQL store. Build it with :meth:`connect`; close it with :meth:`close`."""

    backend = "postgresql"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self.url = url  # holds the password: never log it; `location` is the printable form
        self.location = redact_url(url)

    @classmethod
    async def connect(
        cls, url: str, *, pool_size: int = DEFAULT_POOL_SIZE, migrate: bool = True, connect_timeout: float = 10.0
    ) -> PostgresDatabase:
        """Open a pool of up to ``pool_size`` connections to ``url`` and apply pending migrations."""
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=pool_size, timeout=connect_timeout, command_timeout=60, init=_setup_connection
        )
        database = cls(pool, url)
        try:
            if migrate:
                await database.migrate(load_migrations("postgresql"))
        except BaseException:
            await pool.close()
            raise
        return database

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Close the pool: connections in use get ``grace`` seconds to be released, then are cut."""
        try:
            async with asyncio.timeout(grace):
                await self._pool.close()
        except TimeoutError:
            log.warning("A database connection was still in use %.1f s into shutdown; cutting it", grace)
            self._pool.terminate()

    async def schema_version(self) -> int:
        """The number of the last migration applied (0 for an empty database)."""
        async with self._pool.acquire() as conn:
            return await _version(conn)

    async def migrate(self, migrations: Iterable[Migration]) -> None:
        """Apply each pending migration in its own transaction with its ``schema_version`` row.

        Every transaction first takes the migration advisory lock, so processes starting together
        migrate one after another and each sees what the others did. An upgrade of a database that
        holds data logs its progress (:class:`UpgradeProgress`).
        """
        migrations = list(migrations)
        async with self._pool.acquire() as conn:
            start = await _version(conn)
            pending = [m for m in migrations if m.version > start]
            if not pending:
                return

            async def count() -> dict[str, int]:
                tables = await conn.fetch(_TABLES)
                return {r[0]: int(await conn.fetchval(f'SELECT COUNT(*) FROM "{r[0]}"')) for r in tables}

            progress = await UpgradeProgress.begin(self, start, pending, count)
            for migration in pending:
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                        " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    )
                    current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                    if migration.version <= current:
                        continue
                    log.info("Applying database migration %s (PostgreSQL)", migration.name)
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_version (version, name) VALUES ($1, $2)", migration.version, migration.name
                    )
                await progress.applied(migration, time.perf_counter() - started)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement (its own transaction); return the number of rows it changed."""
        text, args = _prepare(sql, params)
        return _rowcount(await self._pool.execute(text, *args))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        """A READ COMMITTED transaction on one pooled connection; commits, or rolls back on error."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield PostgresTransaction(conn)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PostgresSnapshot]:
        """Reads that all see one moment (``REPEATABLE READ READ ONLY``); writers are not blocked."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield PostgresSnapshot(conn)

    async def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL recycles its write-ahead log itself (VACUUM reclaims erased rows)."""

    async def fetch_one(self, sql: str, params: Params = ()) -> asyncpg.Record | None:
        """The first row of a query, or None."""
        check_read(sql)
        text, args = _prepare(sql, params)
        return await self._pool.fetchrow(text, *args)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        """Every row of a query (a read: writes go through :meth:`execute` or :meth:`transaction`)."""
        check_read(sql)
        text, args = _prepare(sql, params)
        return list(await self._pool.fetch(text, *args))

    async def tables(self) -> list[str]:
        """The application's tables (``schema_version`` excluded), sorted."""
        return [r[0] for r in await self._pool.fetch(_TABLES)]

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """One pooled connection, for tools that need asyncpg itself (the SQLite → PostgreSQL copy)."""
        async with self._pool.acquire() as conn:
            yield conn
