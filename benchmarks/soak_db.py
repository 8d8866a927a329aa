"""A flaky database for the soak: the bot's real :class:`Database`, failing a seeded fraction of calls.

Nothing in ``bot/`` knows about it: :mod:`benchmarks.soak_child` wraps whatever ``open_storage``
returns. While the fault switch is on (a file exists), each statement, query and transaction fails
with probability ``rate`` BEFORE it reaches the database, with the error the backend really raises
in that situation (SQLite: ``database is locked``, as with several processes on one file;
PostgreSQL: the connection closed under the statement). On PostgreSQL a write or a commit also
fails AFTER it took effect with probability ``after_rate`` (the connection dropped before the answer
came back) — the case where the caller cannot know whether its write happened. SQLite commits
locally, so it gets no "after" faults.

Each injected fault is logged as a ``SOAK-DB-FAULT`` warning, so the soak can count them per process.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from bot.storage.database import Database, Migration, Params, Transaction

log = logging.getLogger("benchmarks.soak")
MARKER = "SOAK-DB-FAULT"


class FaultSwitch:
    """Faults are on while ``path`` exists: the soak deletes it to stop every process's faults at once."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def on(self) -> bool:
        """Whether to inject now."""
        return self.path is not None and self.path.exists()


class _Dice:
    """The seeded draws and the error a backend raises."""

    def __init__(self, backend: str, *, rate: float, after_rate: float, seed: str, switch: FaultSwitch) -> None:
        self.backend = backend
        self.rate = rate
        self.after_rate = after_rate if backend == "postgresql" else 0.0
        self.switch = switch
        self.random = random.Random(seed)
        self.injected: Counter[str] = Counter()

    def before(self, where: str) -> None:
        if self.rate and self.switch.on() and self.random.random() < self.rate:
            self._raise("before", where)

    def after(self, where: str) -> None:
        if self.after_rate and self.switch.on() and self.random.random() < self.after_rate:
            self._raise("after", where)

    def _raise(self, when: str, where: str) -> None:
        self.injected[f"{when} {where}"] += 1
        log.warning("%s %s %s", MARKER, when, where)
        if self.backend == "postgresql":
            raise asyncpg.exceptions.ConnectionDoesNotExistError(
                "connection was closed in the middle of operation (injected by the soak)"
            )
        raise sqlite3.OperationalError("database is locked (injected by the soak)")


class _FlakyTransaction(Transaction):
    def __init__(self, real: Transaction, dice: _Dice) -> None:
        self._real = real
        self._dice = dice
        self.for_update = real.for_update

    async def execute(self, sql: str, params: Params = ()) -> int:
        self._dice.before("tx.execute")
        return await self._real.execute(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        self._dice.before("tx.fetch_one")
        return await self._real.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        self._dice.before("tx.fetch_all")
        return await self._real.fetch_all(sql, params)

    async def lock(self, name: str) -> None:
        await self._real.lock(name)


class FlakyDatabase(Database):
    """``real`` with faults injected (see the module docstring); everything else is delegated."""

    def __init__(self, real: Database, *, rate: float, after_rate: float = 0.0, seed: str, switch: FaultSwitch) -> None:
        self._real = real
        self.backend = real.backend
        self.location = real.location
        self._dice = _Dice(real.backend, rate=rate, after_rate=after_rate, seed=seed, switch=switch)

    @property
    def injected(self) -> Counter[str]:
        """Faults injected so far, by where."""
        return self._dice.injected

    def __getattr__(self, name: str) -> Any:  # backend extras (e.g. PostgreSQL's connection())
        return getattr(self._real, name)

    async def close(self) -> None:
        await self._real.close()

    async def schema_version(self) -> int:
        return await self._real.schema_version()

    async def migrate(self, migrations: Iterable[Migration]) -> None:
        await self._real.migrate(migrations)

    async def execute(self, sql: str, params: Params = ()) -> int:
        self._dice.before("execute")
        changed = await self._real.execute(sql, params)
        self._dice.after("execute")
        return changed

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        self._dice.before("begin")
        async with self._real.transaction() as tx:
            yield _FlakyTransaction(tx, self._dice)
        self._dice.after("commit")

    def snapshot(self) -> AbstractAsyncContextManager[Any]:
        return self._real.snapshot()  # the ledger check's read-only view: no faults (it writes nothing)

    async def checkpoint(self) -> None:
        await self._real.checkpoint()

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        self._dice.before("fetch_one")
        return await self._real.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        self._dice.before("fetch_all")
        return await self._real.fetch_all(sql, params)

    async def tables(self) -> list[str]:
        return await self._real.tables()
