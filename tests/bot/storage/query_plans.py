"""Capture the statements the bot runs, and ask each backend how it would run them.

:class:`RecordingDatabase` wraps a real :class:`Database`: every statement the code under test sends
(outside or inside a transaction) is run as usual and remembered with its parameters and the label
of the operation running at the time. :func:`full_scans` then asks the backend for each statement's
plan (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN (FORMAT JSON)`` on PostgreSQL, with the same
parameters, so PostgreSQL plans for the real values) and names every full scan of a watched table:
on SQLite a ``SCAN <table>`` step (with or without an index: scanning a whole index is no better),
on PostgreSQL a ``Seq Scan`` or an index scan without an index condition.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.engine.states import OPEN
from bot.storage.database import Database, Migration, Params, Transaction

WATCHED = frozenset({"jobs", "ledger", "job_events", "job_sources"})
_NAMED = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(\w+)(?:\s+(?:AS\s+)?(\w+))?", re.IGNORECASE)
_NOT_ALIASES = {
    "where", "on", "set", "join", "left", "inner", "cross", "group", "order", "limit", "using", "values",
    "select", "as", "returning", "union", "having", "default", "natural", "full", "right", "outer",
}  # fmt: skip
_SQLITE_SCAN = re.compile(r"^SCAN (\w+)")
_SQLITE_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\w+)")


@dataclass(frozen=True)
class Statement:
    """One statement the code ran: the operation's label, the SQL and its parameters."""

    label: str
    sql: str
    params: Params


class _RecordingTransaction(Transaction):
    def __init__(self, inner: Transaction, record: RecordingDatabase) -> None:
        self._inner = inner
        self._record = record
        self.for_update = inner.for_update

    async def execute(self, sql: str, params: Params = ()) -> int:
        self._record.remember(sql, params)
        return await self._inner.execute(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        self._record.remember(sql, params)
        return await self._inner.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        self._record.remember(sql, params)
        return await self._inner.fetch_all(sql, params)

    async def lock(self, name: str) -> None:
        await self._inner.lock(name)


class RecordingDatabase(Database):
    """A real database that remembers every statement sent through it, under the current :attr:`label`."""

    def __init__(self, inner: Database) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.location = inner.location
        self.label = "unlabelled"
        self.statements: list[Statement] = []
        self.largest_fetch = 0  # the most rows one query handed back

    def __getattr__(self, name: str) -> Any:  # backend-specific extras (path, connection)
        return getattr(self.inner, name)

    def remember(self, sql: str, params: Params) -> None:
        """Note one statement under the current label."""
        self.statements.append(Statement(self.label, sql, params))

    async def close(self) -> None:
        await self.inner.close()

    async def schema_version(self) -> int:
        return await self.inner.schema_version()

    async def migrate(self, migrations: Iterable[Migration]) -> None:
        await self.inner.migrate(migrations)

    async def execute(self, sql: str, params: Params = ()) -> int:
        self.remember(sql, params)
        return await self.inner.execute(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.inner.transaction() as tx:
            yield _RecordingTransaction(tx, self)

    def snapshot(self) -> Any:
        return self.inner.snapshot()  # the ledger check's read-only view (its statements are not recorded)

    async def checkpoint(self) -> None:
        await self.inner.checkpoint()

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        self.remember(sql, params)
        return await self.inner.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        self.remember(sql, params)
        rows = await self.inner.fetch_all(sql, params)
        self.largest_fetch = max(self.largest_fetch, len(rows))
        return rows

    async def tables(self) -> list[str]:
        return await self.inner.tables()


def _names(sql: str) -> dict[str, str]:
    """Table names and aliases in ``sql`` → the table they stand for."""
    names: dict[str, str] = {}
    for table, alias in _NAMED.findall(sql):
        names[table.lower()] = table.lower()
        if alias and alias.lower() not in _NOT_ALIASES:
            names[alias.lower()] = table.lower()
    return names


async def plan(db: Database, statement: Statement) -> list[str]:
    """The backend's plan for ``statement``, one line per step."""
    if db.backend == "sqlite":
        rows = await db.fetch_all(f"EXPLAIN QUERY PLAN {statement.sql}", statement.params)
        return [row["detail"] for row in rows]
    rows = await db.fetch_all(f"EXPLAIN (FORMAT JSON) {statement.sql}", statement.params)
    raw = rows[0][0]
    nodes = []
    stack = [(json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return [json.dumps(node_summary(node)) for node in nodes]


def node_summary(node: dict[str, Any]) -> dict[str, Any]:
    """The parts of a PostgreSQL plan node that say how a table is read."""
    keys = ("Node Type", "Relation Name", "Alias", "Index Name", "Index Cond", "Filter")
    return {key: node[key] for key in keys if key in node}


async def open_job_indexes(db: Database) -> set[str]:
    """Partial indexes that hold open jobs only (their WHERE clause allows open statuses alone).

    Reading the whole of one is reading the queue and what is running, never history: allowed.
    """
    if db.backend == "sqlite":
        rows = await db.fetch_all("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    else:
        rows = await db.fetch_all("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()")
    found = set()
    for name, definition in rows:
        _, where, predicate = definition.rpartition(" WHERE ")
        statuses = set(re.findall(r"'(\w+)'", predicate))
        if where and "status" in predicate and statuses and statuses <= {status.value for status in OPEN}:
            found.add(name)
    return found


async def full_scans(db: Database, statement: Statement, allowed: set[str] = frozenset()) -> list[str]:
    """The steps of ``statement``'s plan that read a whole watched table (empty: it uses indexes).

    A whole index counts as the whole table, except the ``allowed`` ones (see :func:`open_job_indexes`).
    """
    steps = await plan(db, statement)
    found = []
    if db.backend == "sqlite":
        names = _names(statement.sql)
        for step in steps:
            match = _SQLITE_SCAN.match(step)
            index = _SQLITE_INDEX.search(step)
            if index and index.group(1) in allowed:
                continue
            if match and names.get(match.group(1).lower(), match.group(1).lower()) in WATCHED:
                found.append(step)
        return found
    for step in steps:
        node = json.loads(step)
        if node.get("Relation Name") not in WATCHED or node.get("Index Name") in allowed:
            continue
        kind = node["Node Type"]
        if kind == "Seq Scan" or (kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in node):
            found.append(step)
    return found


def distinct(statements: Iterable[Statement]) -> list[Statement]:
    """One statement per distinct SQL text (the first one run), in the order they ran."""
    seen: dict[str, Statement] = {}
    for statement in statements:
        seen.setdefault(statement.sql, statement)
    return list(seen.values())
