"""The storage interface: one :class:`Database` API, two backends, one set of numbered migrations.

SQLite (``bot.storage.sqlite``, the default: one file at ``DATABASE_PATH``) or PostgreSQL
(``bot.storage.postgres``, when ``DATABASE_URL`` is set). Application SQL is written once, with
``?`` or ``:name`` placeholders and portable forms (``INSERT … ON CONFLICT DO NOTHING``, ``COALESCE``,
``CASE``, ``CAST(SUM(…) AS BIGINT)``); the PostgreSQL backend turns the placeholders into ``$n``.
Rows support ``row["column"]`` and ``row[0]`` on both.

Migrations are numbered files with the same names per backend: ``migrations/NNNN_reason.sql`` for
SQLite and ``migrations/postgres/NNNN_reason.sql`` for PostgreSQL (types, triggers as plpgsql).

Where the two engines differ in how they serialise writers, the :class:`Transaction` says so:
SQLite runs every transaction alone (``BEGIN IMMEDIATE`` under one write lock), so
:attr:`Transaction.for_update` is empty and :meth:`Transaction.lock` does nothing; PostgreSQL runs
transactions side by side from many processes, so a check-then-write locks the rows it checks
(``… FOR UPDATE``) or takes a named advisory lock.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

CLOSE_GRACE = 5.0  # seconds a shutdown waits for a transaction in progress before cutting it

Params = Sequence[Any] | dict[str, Any]
RowCounter = Callable[[], Awaitable[dict[str, int]]]
Synchronous = Literal["FULL", "NORMAL"]
Backend = Literal["sqlite", "postgresql"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgresql")
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_FOLDERS = {"sqlite": ("migrations",), "postgresql": ("migrations", "postgres")}


@dataclass(frozen=True)
class Migration:
    """One numbered schema change: ``migrations/[postgres/]NNNN_reason.sql``."""

    version: int
    name: str
    sql: str


def _read_migrations(backend: Backend) -> list[Migration]:
    folder = resources.files("bot.storage")
    for part in _FOLDERS[backend]:
        folder = folder / part
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {migration.name} is out of sequence (expected {expected:04d})")
    return found


def load_migrations(backend: Backend = "sqlite") -> list[Migration]:
    """The packaged migrations of ``backend`` in version order.

    Both sets must be numbered contiguously from 1 and carry the same file names, so a database
    on either backend at version N has had the same changes.
    """
    sets = {name: _read_migrations(name) for name in BACKENDS}
    names = {name: [m.name for m in found] for name, found in sets.items()}
    if names["sqlite"] != names["postgresql"]:
        only_sqlite = sorted(set(names["sqlite"]) - set(names["postgresql"]))
        only_pg = sorted(set(names["postgresql"]) - set(names["sqlite"]))
        raise RuntimeError(f"the migration sets differ: only SQLite has {only_sqlite}, only PostgreSQL has {only_pg}")
    return sets[backend]


class Transaction(ABC):
    """Statements inside :meth:`Database.transaction`; committed at the end, rolled back on error."""

    #: Appended to a ``SELECT`` whose rows the transaction will change: ``" FOR UPDATE"`` where
    #: transactions run concurrently (PostgreSQL), empty where they run one at a time (SQLite).
    for_update: str = ""

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        """The first row of a query inside the transaction."""

    @abstractmethod
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        """Every row of a query inside the transaction."""

    async def lock(self, name: str) -> None:  # noqa: B027 - SQLite's transactions already run alone
        """Hold the named lock until the transaction ends (PostgreSQL: an advisory lock; SQLite: held already)."""


class Reader(ABC):
    """Queries: what a :class:`Database` and a :class:`Snapshot` both answer."""

    @abstractmethod
    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        """The first row of a query, or None."""

    @abstractmethod
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        """Every row of a query."""

    async def fetch_value(self, sql: str, params: Params = (), default: Any = None) -> Any:
        """The first column of the first row, or ``default``."""
        row = await self.fetch_one(sql, params)
        return default if row is None or row[0] is None else row[0]


class Snapshot(Reader):
    """Reads inside :meth:`Database.snapshot`: every query sees the same committed moment."""


class Database(Reader):
    """The bot's store. Open it with :func:`bot.startup.open_database` (or :meth:`open` / :meth:`connect`)."""

    backend: Backend
    #: Where the data lives, for people: the SQLite file, or the PostgreSQL URL without its password.
    location: str

    @classmethod
    async def open(cls, path: Path, *, synchronous: Synchronous = "NORMAL") -> Database:
        """Open (creating if needed) the SQLite database at ``path`` and apply pending migrations."""
        from bot.storage.sqlite import SqliteDatabase

        return await SqliteDatabase.open(path, synchronous=synchronous)

    @classmethod
    async def connect(
        cls, url: str, *, pool_size: int = 10, migrate: bool = True, connect_timeout: float = 10.0
    ) -> Database:
        """Connect to the PostgreSQL database at ``url`` (a pool) and apply pending migrations.

        The same parameters and defaults as ``PostgresDatabase.connect`` (``bot/storage/postgres.py``),
        which overrides this.
        """
        from bot.storage.postgres import PostgresDatabase

        return await PostgresDatabase.connect(
            url, pool_size=pool_size, migrate=migrate, connect_timeout=connect_timeout
        )

    @classmethod
    async def at(cls, target: str, *, pool_size: int = 4) -> Database:
        """A ``postgresql://`` URL connects to PostgreSQL; anything else is a SQLite file path."""
        if target.startswith(("postgresql://", "postgres://")):
            return await cls.connect(target, pool_size=pool_size)
        return await cls.open(Path(target))

    @abstractmethod
    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Close the connection(s): work in progress gets ``grace`` seconds, then is cut (and rolls back)."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The number of the last migration applied."""

    @abstractmethod
    async def migrate(self, migrations: Iterable[Migration]) -> None:
        """Apply every migration newer than the database, each atomically with its version bump."""

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement atomically; return the number of rows it changed."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction: commits at the end of the block, or rolls back on error."""

    @abstractmethod
    def snapshot(self) -> AbstractAsyncContextManager[Snapshot]:
        """Read-only queries that all see one committed moment, off the write path.

        For long reads (the ledger check): writers are neither blocked nor waited for. SQLite: a
        second, read-only connection in one read transaction (WAL keeps its view while the bot
        writes); PostgreSQL: a ``REPEATABLE READ READ ONLY`` transaction on a pooled connection.
        """

    @abstractmethod
    async def checkpoint(self) -> None:
        """Make erased data leave the files the database keeps (SQLite: truncate the write-ahead log)."""

    @abstractmethod
    async def tables(self) -> list[str]:
        """The application's tables (for copies and checks), sorted."""

    async def row_counts(self) -> dict[str, int]:
        """Rows per application table (upgrade progress, checks)."""
        return {table: int(await self.fetch_value(f'SELECT COUNT(*) FROM "{table}"')) for table in await self.tables()}


class UpgradeProgress:
    """Logs an upgrade of a database that holds data, so a long one shows that it moves and loses nothing.

    Before the first pending migration: the versions and the rows per table. After each migration: its
    time and every table whose row count changed (a warning for a table that lost rows: no migration
    deletes rows on purpose; a table dropped once its rows moved to another, as 0024 does, loses none).
    A new, empty database (version 0) is migrated without counting.
    """

    def __init__(self, count: RowCounter | None, counts: dict[str, int]) -> None:
        self._count = count
        self._counts = counts

    @classmethod
    async def begin(
        cls, database: Database, start: int, pending: Sequence[Migration], count: RowCounter | None = None
    ) -> UpgradeProgress:
        """Count the rows (with ``count``, default :meth:`Database.row_counts`) and log the upgrade about to run."""
        if start == 0:
            return cls(None, {})
        count = count or database.row_counts
        counts = await count()
        rows = ", ".join(f"{table} {n:,}" for table, n in counts.items() if n) or "no rows"
        log.info(
            "Upgrading the %s database %s from schema version %d to %d (%d migrations); rows: %s",
            database.backend,
            database.location,
            start,
            pending[-1].version,
            len(pending),
            rows,
        )
        return cls(count, counts)

    async def applied(self, migration: Migration, seconds: float) -> None:
        """Log one applied migration: its time and the tables whose row count changed."""
        if self._count is None:
            return
        counts = await self._count()
        changed = {t: (self._counts.get(t, 0), n) for t, n in counts.items() if self._counts.get(t, 0) != n}
        changed.update({t: (n, 0) for t, n in self._counts.items() if t not in counts and n})
        dropped = sum(n for t, n in self._counts.items() if t not in counts)  # tables gone: moved, or lost
        moved = sum(n - self._counts.get(t, 0) for t, n in counts.items() if n > self._counts.get(t, 0))
        lost = any(after < before for t, (before, after) in changed.items() if t in counts) or moved < dropped
        described = ", ".join(f"{t} {before:,} → {after:,}" for t, (before, after) in sorted(changed.items()))
        log.log(
            logging.WARNING if lost else logging.INFO,
            "Applied migration %s in %.2f s; %s",
            migration.name,
            seconds,
            f"rows: {described}" if changed else "rows unchanged",
        )
        self._counts = counts


_READ_START = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(\w+)", re.S)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_ANALYZE = re.compile(r"^\s*EXPLAIN\s*(?:\(\s*)?ANALY[SZ]E\b", re.I)
_READ_KEYWORDS = frozenset({"SELECT", "WITH", "PRAGMA", "EXPLAIN", "VALUES", "SHOW"})


class WriteThroughRead(ValueError):
    """A write statement was given to a read helper (it must go through the write path)."""


def check_read(sql: str) -> None:
    """Refuse a statement that writes (``INSERT``/``UPDATE``/``DELETE``/… or ``RETURNING``) in a read helper.

    On SQLite a read helper runs outside the write lock, inside whatever transaction another coroutine
    has open on the shared connection, and that transaction's rollback would silently undo the write.
    Writes go through :meth:`Database.execute` or :meth:`Database.transaction` on every backend.
    """
    match = _READ_START.match(sql)
    keyword = match.group(1).upper() if match else ""
    if keyword == "EXPLAIN" and not _ANALYZE.match(sql):
        return  # a plan, not a run (EXPLAIN ANALYZE would run the statement)
    if keyword not in _READ_KEYWORDS or (keyword != "PRAGMA" and _RETURNING.search(sql)):
        raise WriteThroughRead(f"a write statement went through a read helper: {sql.strip()[:80]!r}")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database (or the network under it) failing for now, not a bug of ours.

    A step that fails this way is simply tried again later; nothing is decided from it.
    """
    import sqlite3

    if isinstance(exc, OSError | TimeoutError | sqlite3.OperationalError):  # e.g. "database is locked", I/O
        return True
    from asyncpg import exceptions as pg

    return isinstance(
        exc,
        pg.PostgresConnectionError
        | pg.InterfaceError
        | pg.TransactionRollbackError  # deadlock, serialization failure
        | pg.OperatorInterventionError  # the server is shutting down, a statement was cancelled
        | pg.QueryCanceledError
        | pg.InsufficientResourcesError,
    )


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for logs and messages."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<a DATABASE_URL that cannot be parsed>"


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return url.split("://", 1)[0].lower() in {"postgresql", "postgres"}
