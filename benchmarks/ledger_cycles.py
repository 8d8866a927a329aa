"""Reserve + settle cycles per second: the bot's Ledger on aiosqlite vs raw sqlite3, and vs PostgreSQL.

Run: python -m benchmarks.ledger_cycles [--cycles 4000] [--concurrency 200] [--members 50]
     python -m benchmarks.ledger_cycles --database postgresql://user@host/db [--processes 1,4]

With ``--database``: the same cycles on SQLite (one file) and on PostgreSQL, from 1 and from 4 OS
processes sharing the database (the concurrency split between them), all cores in use. The
PostgreSQL runs use a fresh scratch database created beside the one named (the role needs
CREATEDB) and dropped afterwards; nothing in the named database is touched.

Both variants execute the very same statements (the real `Ledger` class builds them), against a fresh
WAL database file with the production schema and triggers, with four limits per reservation (member
dollars, member images, server dollars, bot dollars) like a real `/imagine`:

- "aiosqlite": the production `Database` (one aiosqlite connection, write lock), N concurrent
  coroutines, each doing reserve → settle;
- "raw sqlite3": a stdlib `sqlite3` connection called inline on the one thread, cycles one after the
  other (no worker thread, no event-loop hops): the floor the async version is compared with.

The process is pinned to one CPU core (where the OS allows), so the aiosqlite worker thread and the
event loop share it, as the target ("on one core") says.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from queue import Empty
from typing import Any

from bot.billing.ledger import Ledger, Limit, Metric, ReserveTerms, Scope
from bot.config import Period
from bot.storage.database import Database, load_migrations

LIMITS = [
    Limit(Scope.MEMBER, Metric.USD, Period.DAY, 10**12, "bench"),
    Limit(Scope.MEMBER, Metric.IMAGES, Period.DAY, 10**9, "bench"),
    Limit(Scope.SERVER, Metric.USD, Period.MONTH, 10**12, "bench"),
    Limit(Scope.BOT, Metric.USD, Period.MONTH, 10**12, "bench"),
]


class InlineTransaction:
    """The subset of `Transaction` the Ledger uses, inline on plain sqlite3."""

    for_update = ""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, sql, params=()):
        return self.conn.execute(sql, params).rowcount

    async def fetch_one(self, sql, params=()):
        return self.conn.execute(sql, params).fetchone()

    async def fetch_all(self, sql, params=()):
        return self.conn.execute(sql, params).fetchall()

    async def lock(self, name):
        """Nothing to do: one connection, one transaction at a time."""


class InlineSqlite:
    """The subset of `Database` the Ledger uses, on plain sqlite3, executed inline (no thread)."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        for migration in load_migrations():
            self.conn.executescript(f"BEGIN;\n{migration.sql}\nCOMMIT;")

    async def execute(self, sql, params=()):
        return self.conn.execute(sql, params).rowcount

    async def fetch_one(self, sql, params=()):
        return self.conn.execute(sql, params).fetchone()

    async def fetch_value(self, sql, params=(), default=None):
        row = self.conn.execute(sql, params).fetchone()
        return default if row is None or row[0] is None else row[0]

    async def fetch_all(self, sql, params=()):
        return self.conn.execute(sql, params).fetchall()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[InlineTransaction]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield InlineTransaction(self.conn)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")


async def cycle(ledger: Ledger, job_id: int, members: int) -> None:
    await ledger.reserve(
        job_id=job_id,
        guild_id=1,
        user_id=job_id % members,
        model="flux-pro-1.1",
        estimated_micros=40_000,
        terms=ReserveTerms(LIMITS, max_pending_jobs=10**6),
    )
    await ledger.settle(job_id, 40_000)


async def run_aiosqlite(path: Path, cycles: int, concurrency: int, members: int, synchronous: str) -> float:
    db = await Database.open(path, synchronous=synchronous)  # type: ignore[arg-type]
    ledger = Ledger(db)
    queue = iter(range(cycles))

    async def worker() -> None:
        for job_id in queue:
            await cycle(ledger, job_id, members)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    assert await ledger.verify_counters() == []
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == 2 * cycles
    await db.close()
    return cycles / elapsed


async def run_raw(path: Path, cycles: int, members: int, synchronous: str) -> float:
    db = InlineSqlite(path, synchronous)
    ledger = Ledger(db)  # type: ignore[arg-type]
    start = time.perf_counter()
    for job_id in range(cycles):
        await cycle(ledger, job_id, members)
    elapsed = time.perf_counter() - start
    assert db.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 2 * cycles
    db.conn.close()
    return cycles / elapsed


# --- SQLite beside PostgreSQL, from several processes ------------------------------------------------


async def _process_cycles(
    target: str, first: int, count: int, concurrency: int, members: int, barrier: object
) -> tuple[float, float]:
    db = await Database.at(target, pool_size=min(concurrency, 20))
    ledger = Ledger(db)
    queue = iter(range(first, first + count))

    async def worker() -> None:
        for job_id in queue:
            await cycle(ledger, job_id, members)

    try:
        barrier.wait()  # type: ignore[attr-defined]  # every process connected: start together
        start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        end = time.monotonic()
    finally:
        await db.close()  # also on an error: an open connection's thread would keep the process alive
    return start, end


def _process_main(args: tuple, barrier: object, results: object) -> None:
    try:
        results.put(asyncio.run(_process_cycles(*args, barrier)))  # type: ignore[attr-defined]
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]  # the parent fails at once
        raise


async def _migrated(target: str) -> None:
    await (await Database.at(target, pool_size=1)).close()


async def _check(target: str, cycles: int) -> None:
    db = await Database.at(target, pool_size=1)
    try:
        assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == 2 * cycles
        assert await Ledger(db).verify_counters() == []
    finally:
        await db.close()


def _result(results: Any, children: list[Any], timeout: float = 600.0) -> tuple[float, float]:
    """The next child's (start, end); a child that failed fails the run at once (not after ``timeout``)."""
    give_up = time.monotonic() + timeout
    failure = f"gave no result in {timeout:.0f} s"
    while time.monotonic() < give_up:
        with contextlib.suppress(Empty):
            result = results.get(timeout=0.5)
            if not isinstance(result, str):
                return result
            failure = result  # what the child raised
            break
        dead = [child for child in children if child.exitcode not in (None, 0)]
        if dead:
            failure = f"exit {dead[0].exitcode}"
            break
    for child in children:
        child.kill()
    raise RuntimeError(f"a benchmark process failed: {failure}")


def run_processes(target: str, cycles: int, concurrency: int, members: int, processes: int) -> float:
    """Cycles per second of ``processes`` OS processes sharing ``target`` (a fresh, migrated database)."""
    asyncio.run(_migrated(target))
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    share, extra = divmod(cycles, processes)
    children, first, per = [], 0, max(1, concurrency // processes)
    for n in range(processes):
        count = share + (1 if n < extra else 0)
        child = context.Process(target=_process_main, args=((target, first, count, per, members), barrier, results))
        child.start()
        children.append(child)
        first += count
    spans = [_result(results, children) for _ in children]
    for child in children:
        child.join(timeout=60)
        if child.exitcode != 0:
            raise RuntimeError(f"a benchmark process failed (exit {child.exitcode})")
    asyncio.run(_check(target, cycles))
    return cycles / (max(end for _, end in spans) - min(start for start, _ in spans))


async def create_scratch(url: str) -> str:
    """A fresh database on the server at ``url``; its URL (drop it with :func:`drop_scratch`)."""
    import asyncpg

    name = f"fluxcord_bench_{os.getpid()}_{time.monotonic_ns()}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, rest = url.partition("://")
    authority, _, tail = rest.partition("/")
    query = tail.partition("?")[2]
    return f"{base}://{authority}/{name}" + (f"?{query}" if query else "")


async def drop_scratch(url: str, scratch: str) -> None:
    """Drop the scratch database made by :func:`create_scratch`."""
    import asyncpg

    name = scratch.partition("://")[2].partition("/")[2].partition("?")[0]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def compare_backends(url: str, cycles: int, concurrency: int, members: int, counts: list[int], repeat: int) -> None:
    """The SQLite and PostgreSQL figures, one line per backend and process count."""
    from bot.storage.database import redact_url

    print(
        f"{cycles} reserve+settle cycles, {members} members, 4 limits each; {concurrency} concurrent coroutines"
        f" split over the processes; {os.cpu_count()} CPU cores; PostgreSQL at {redact_url(url)}"
    )
    for processes in counts:
        for backend in ("sqlite", "postgresql"):
            figures = []
            for _ in range(repeat):
                if backend == "sqlite":
                    with tempfile.TemporaryDirectory() as folder:
                        target = str(Path(folder) / "bench.sqlite3")
                        figures.append(run_processes(target, cycles, concurrency, members, processes))
                else:
                    figures.append(_run_on_scratch(url, cycles, concurrency, members, processes))
            median = sorted(figures)[len(figures) // 2]
            print(f"{backend:10} {processes} process{'es' if processes > 1 else '  '} {median:7.0f} cycles/s")


def _run_on_scratch(url: str, cycles: int, concurrency: int, members: int, processes: int) -> float:
    target = asyncio.run(create_scratch(url))
    try:
        return run_processes(target, cycles, concurrency, members, processes)
    finally:
        asyncio.run(drop_scratch(url, target))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the median is reported")
    parser.add_argument("--database", help="a postgresql:// URL: compare SQLite with PostgreSQL there")
    parser.add_argument("--processes", default="1,4", help="process counts for --database (default 1,4)")
    args = parser.parse_args(argv)
    args.processes = [int(n) for n in args.processes.split(",")]
    if any(n < 1 for n in args.processes) or args.cycles < 1 or args.repeat < 1:
        parser.error("--cycles, --repeat and --processes must be positive")
    return args


def main() -> None:
    args = parse_args()
    if args.database:
        compare_backends(args.database, args.cycles, args.concurrency, args.members, args.processes, args.repeat)
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(
        f"{args.cycles} reserve+settle cycles, {args.members} members, 4 limits each; "
        f"aiosqlite with {args.concurrency} concurrent coroutines; 1 CPU core"
    )
    for synchronous in ("FULL", "NORMAL"):
        results: dict[str, list[float]] = {"aiosqlite": [], "raw sqlite3": []}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:
                results["aiosqlite"].append(
                    asyncio.run(
                        run_aiosqlite(Path(folder) / "a.db", args.cycles, args.concurrency, args.members, synchronous)
                    )
                )
                results["raw sqlite3"].append(
                    asyncio.run(run_raw(Path(folder) / "r.db", args.cycles, args.members, synchronous))
                )
        median = {name: sorted(values)[len(values) // 2] for name, values in results.items()}
        ratio = median["raw sqlite3"] / median["aiosqlite"]
        print(
            f"synchronous={synchronous:6} aiosqlite {median['aiosqlite']:7.0f} cycles/s | "
            f"raw sqlite3 {median['raw sqlite3']:7.0f} cycles/s | raw is {ratio:.2f}x faster"
        )


if __name__ == "__main__":
    main()
