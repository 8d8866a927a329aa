"""Upgrading an old SQLite database: time and rows kept, by job count.

Run: python -m benchmarks.upgrade [--jobs 5000,20000,100000] [--from-version 4] [--events-per-job 5.8]

For each size, a database at schema version ``--from-version`` (before 0005's rebuild of ``jobs`` and
``job_events`` by default) is built with the migration files themselves and plain ``sqlite3`` (so the
same database can be given to any version of the bot): ``--jobs`` jobs in 1,000 servers, each with
about ``--events-per-job`` status events, as a year of history has. Then the bot opens it the normal
way (``Database.open``), which applies every newer migration, and the table shows the time the
upgrade took and whether every job and event is still there.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bot.storage.database import Database, load_migrations

STATUSES = ("delivered", "delivered", "delivered", "failed", "cached", "cancelled", "unknown")


def build(path: Path, jobs: int, version: int, events_per_job: float, seed: int = 1) -> tuple[int, int]:
    """A database at ``version`` with ``jobs`` jobs and their events; (jobs, events) written."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        for migration in load_migrations()[:version]:
            conn.executescript(f"BEGIN;\n{migration.sql}\nPRAGMA user_version = {migration.version};\nCOMMIT;")
        statuses = [s for s in STATUSES if version >= 5 or s != "cancelled"]
        start = 1_700_000_000_000
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO jobs (id, guild_id, channel_id, user_id, model, prompt, params, seed, width, height,"
            " cache_key, status, estimated_micros, cost_micros, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'flux-pro-1.1', ?, '{}', ?, 1024, 1024, ?, ?, 40000, 40000, ?, ?)",
            (
                (n, n % 1000, n % 1000, n % 50_000, f"prompt {n}", n, f"{n:032x}", rng.choice(statuses),
                 start + n * 600, start + n * 600 + 9000)
                for n in range(1, jobs + 1)
            ),
        )  # fmt: skip
        extra = max(0, round(jobs * (events_per_job - 1)))  # the insert trigger wrote one per job
        conn.executemany(
            "INSERT INTO job_events (job_id, status, at, detail) VALUES (?, ?, ?, NULL)",
            ((rng.randint(1, jobs), rng.choice(STATUSES), start + n) for n in range(extra)),
        )
        conn.execute("COMMIT")
        return (
            conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM job_events").fetchone()[0],
        )
    finally:
        conn.close()


async def upgrade(path: Path) -> tuple[float, int, int]:
    """Open (and so upgrade) the database; (seconds, jobs, events) after."""
    started = time.perf_counter()
    db = await Database.open(path)
    seconds = time.perf_counter() - started
    try:
        return (
            seconds,
            await db.fetch_value("SELECT COUNT(*) FROM jobs"),
            await db.fetch_value("SELECT COUNT(*) FROM job_events"),
        )
    finally:
        await db.close()


def run(sizes: Sequence[int], version: int, events_per_job: float) -> list[str]:
    """The table: one row per size."""
    lines = [
        f"upgrade of a SQLite database from schema version {version} to {len(load_migrations())}",
        "| jobs | events | upgrade | jobs kept | events kept |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "old.sqlite3"
            jobs, events = build(path, size, version, events_per_job)
            seconds, jobs_after, events_after = asyncio.run(upgrade(path))
            lines.append(f"| {jobs:,} | {events:,} | {seconds:.2f} s | {jobs_after:,} | {events_after:,} |")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=lambda s: [int(x) for x in s.split(",")], default=[5000, 20000, 100000])
    parser.add_argument("--from-version", type=int, default=4)
    parser.add_argument("--events-per-job", type=float, default=5.8)
    args = parser.parse_args(argv)
    if not 1 <= args.from_version < len(load_migrations()):
        parser.error(f"--from-version must be between 1 and {len(load_migrations()) - 1}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print("\n".join(run(args.jobs, args.from_version, args.events_per_job)))


if __name__ == "__main__":
    main()
