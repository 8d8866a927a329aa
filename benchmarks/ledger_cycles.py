"""Reserve + settle cycles per second: the bot's Ledger on aiosqlite vs the same SQL on raw sqlite3.

Run: python -m benchmarks.ledger_cycles [--cycles 4000] [--concurrency 200] [--members 50]

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
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from bot.billing.ledger import Ledger, Limit, Metric, Scope
from bot.config import Period
from bot.storage.database import Database, load_migrations

LIMITS = [
    Limit(Scope.MEMBER, Metric.USD, Period.DAY, 10**12, "bench"),
    Limit(Scope.MEMBER, Metric.IMAGES, Period.DAY, 10**9, "bench"),
    Limit(Scope.SERVER, Metric.USD, Period.MONTH, 10**12, "bench"),
    Limit(Scope.BOT, Metric.USD, Period.MONTH, 10**12, "bench"),
]


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


async def cycle(ledger: Ledger, job_id: int, members: int) -> None:
    await ledger.reserve(
        job_id=job_id,
        guild_id=1,
        user_id=job_id % members,
        model="flux-pro-1.1",
        estimated_micros=40_000,
        limits=LIMITS,
        max_pending_jobs=10**6,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the median is reported")
    args = parser.parse_args()
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
