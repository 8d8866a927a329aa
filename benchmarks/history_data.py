"""Months of history in the bot's own schema, fast: the data behind ``python -m benchmarks.history``.

:func:`build` runs the bot's migrations on an empty database (a SQLite file or a PostgreSQL URL), then
bulk-inserts a year of jobs: ``executemany`` on SQLite, ``COPY`` on PostgreSQL, with the insert
triggers off while loading. What those triggers would have written is written too: each job's status
events, and afterwards the usage counters, member activity, server turns (and whatever else
:data:`DERIVED` lists) rebuilt from the rows, so the result is a database the bot could have written
itself (``Ledger.verify_counters()`` finds nothing wrong). PostgreSQL then gets ``VACUUM ANALYZE``,
as autovacuum would have done; SQLite is left as the bot leaves it (no ``ANALYZE``).

The shape (:class:`Shape`): ``servers`` servers, ``members`` members, ``months`` months of jobs ending
at :data:`NOW`. One **probe server** has the same rows at every size (jobs, members, times, statuses,
money; only ledger row ids differ), so an operation on it that slows down as the database grows is
slowed by the *total* history, not by its own. One **big server** holds ``big_share`` of the other
jobs (11.7 % at 1M: a 117k-job server); the rest are spread evenly. Every size has the same open jobs
(:data:`OPEN_JOBS`), so the queue does not grow with history either. Prompts older than
:data:`RETENTION_DAYS` are erased, as the retention sweep leaves them. Seeded generators: the same
size gives the same rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.billing.periods import PeriodKeys
from bot.clock import from_millis, to_millis
from bot.storage.database import Database

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
RETENTION_DAYS = 30
GUILD_BASE = 100_000_000_000_000_000  # ids shaped like Discord snowflakes
USER_BASE = 200_000_000_000_000_000
CHANNEL_BASE = 300_000_000_000_000_000
LIVE_PROCESS = "bench-host:1:live:0"
DEAD_PROCESS = "bench-host:2:dead:0"  # no lease row: its jobs are orphans
# (model, estimate in µ$, weight)
MODELS = (("flux-pro-1.1", 40_000, 50), ("flux-2-pro", 30_000, 20), ("flux-dev", 25_000, 15),
          ("flux-kontext-pro", 40_000, 10), ("flux-pro-1.1-ultra", 60_000, 5))  # fmt: skip
# (ending, weight per thousand, the statuses the job went through)
ENDINGS = (
    ("delivered", 950, ("queued", "submitting", "generating", "downloading", "delivering", "delivered")),
    ("failed", 15, ("queued", "submitting", "generating", "failed")),  # accepted, then failed: member refunded
    ("refused", 10, ("queued", "submitting", "failed")),  # BFL refused the submit: released
    ("cancelled", 20, ("queued", "cancelled")),
    ("unknown", 5, ("queued", "submitting", "unknown")),  # charged at the estimate, member refunded
)
# (status, how many bot-wide, of which in the probe server): the same at every size.
OPEN_JOBS = (("queued", 60, 6), ("submitting", 4, 1), ("generating", 12, 2), ("downloading", 2, 0),
             ("delivering", 2, 0), ("cached", 1, 0))  # fmt: skip
_OPEN_PATHS = {
    "queued": ("queued",),
    "submitting": ("queued", "submitting"),
    "generating": ("queued", "submitting", "generating"),
    "downloading": ("queued", "submitting", "generating", "downloading"),
    "delivering": ("queued", "submitting", "generating", "downloading", "delivering"),
    "cached": ("cached",),
}
UNACKED = 2  # queued jobs whose interaction was never answered, held by a dead process
ORPHANED = 3  # generating jobs whose process is gone
CHUNK = 5_000
COLUMNS = {
    "jobs": ("id", "guild_id", "channel_id", "user_id", "model", "prompt", "params", "seed", "width", "height",
             "cache_key", "status", "estimated_micros", "cost_micros", "bfl_task_id", "polling_url", "error",
             "result_channel_id", "result_message_id", "created_at", "updated_at", "aspect_ratio", "acked",
             "application_id", "interaction_token", "submitted_at", "ready_at", "sample_url", "bfl_stage", "private",
             "erased_at", "claimed_by", "group_id", "group_index"),
    "job_events": ("job_id", "status", "at", "detail"),
    "ledger": ("kind", "job_id", "guild_id", "user_id", "model", "server_micros", "member_micros", "member_images",
               "day", "week", "month", "actor_id", "note", "at"),
    "job_sources": ("job_id", "kind", "source_url", "source_job_id"),
    "job_groups": ("id", "guild_id", "channel_id", "user_id", "size", "draft", "application_id", "private",
                   "poster", "posted_at", "result_channel_id", "result_message_id", "created_at"),
    "job_deletions": ("job_id", "deleted_by", "deleted_at"),
}  # fmt: skip
TRIGGERED = ("jobs", "ledger")  # tables whose insert triggers are off while loading
# Tables the triggers keep, rebuilt from the loaded rows (a table the schema lacks is skipped).
DERIVED = {
    "usage": "INSERT INTO usage (scope, period, micros, images, granted_micros)"
    " SELECT scope, period, micros, images, granted FROM ({rebuild}) AS rebuilt",
    "member_activity": "INSERT INTO member_activity (guild_id, user_id, pending_jobs, last_reserved_at)"
    " SELECT guild_id, user_id, SUM(CASE kind WHEN 'reserve' THEN 1 ELSE -1 END),"
    " MAX(CASE kind WHEN 'reserve' THEN at ELSE 0 END) FROM ledger"
    " WHERE kind IN ('reserve', 'settle', 'release') GROUP BY guild_id, user_id",
    "ledger_open": "INSERT INTO ledger_open (job_id, reserve_id) SELECT r.job_id, r.id FROM ledger r"
    " WHERE r.kind = 'reserve' AND NOT EXISTS"
    " (SELECT 1 FROM ledger o WHERE o.job_id = r.job_id AND o.kind IN ('settle', 'release'))",
    "guild_turns": "INSERT INTO guild_turns (guild_id, turn) SELECT guild_id,"
    " ROW_NUMBER() OVER (ORDER BY MAX(created_at), guild_id) FROM jobs WHERE status != 'cancelled' GROUP BY guild_id",
}


@dataclass(frozen=True)
class Shape:
    """How the history is spread; the probe server's part is fixed whatever the size."""

    servers: int = 1_000
    members: int = 50_000
    months: int = 12
    probe_jobs: int = 1_200
    probe_members: int = 20
    big_share: float = 0.117

    @property
    def probe_guild(self) -> int:
        """The probe server's id."""
        return GUILD_BASE

    @property
    def big_guild(self) -> int:
        """The big server's id."""
        return GUILD_BASE + 1

    def probe_member(self, n: int = 0) -> int:
        """The probe server's ``n``-th member; member 0 made a tenth of its jobs."""
        return USER_BASE + n % self.probe_members

    def member_of(self, guild_index: int, pick: int) -> int:
        """A member of the ``guild_index``-th server (not the probe): members are split evenly."""
        per = max(1, (self.members - self.probe_members) // max(1, self.servers - 1))
        return USER_BASE + self.probe_members + (guild_index - 1) * per + pick % per


@dataclass
class _Job:
    id: int
    guild: int
    user: int
    created: int  # unix ms
    path: tuple[str, ...]  # the statuses it went through; the last is its status
    model: str
    estimate: int
    rng: random.Random
    acked: bool = True
    holder: str | None = LIVE_PROCESS

    @property
    def status(self) -> str:
        return self.path[-1]


def _weighted(rng: random.Random, table: tuple, weight_at: int) -> tuple:
    roll = rng.randrange(sum(row[weight_at] for row in table))
    for row in table:
        roll -= row[weight_at]
        if roll < 0:
            return row
    raise AssertionError("unreachable")


def _finished(guild: int, user: int, created: int, job_id: int, rng: random.Random) -> _Job:
    model, estimate, _ = _weighted(rng, MODELS, 2)
    _, _, path = _weighted(rng, ENDINGS, 1)
    return _Job(job_id, guild, user, created, path, model, estimate, rng)


def jobs_in_history(shape: Shape, size: int) -> Iterator[_Job]:
    """Every job, oldest first: the probe's fixed ones merged into the rest, then the open ones."""
    span = shape.months * 30 * 86_400_000
    start = to_millis(NOW) - span - 3_600_000  # the newest finished job is an hour old
    probe = []
    for n in range(shape.probe_jobs):
        rng = random.Random(n)  # per job: the probe's rows do not depend on the size
        at = start + n * span // shape.probe_jobs + rng.randrange(60_000)
        user = shape.probe_member(0 if n % 10 == 0 else 1 + n % (shape.probe_members - 1))
        probe.append(_finished(shape.probe_guild, user, at, at * 100 + n % 49, rng))
    rest = max(0, size - shape.probe_jobs - sum(count for _, count, _ in OPEN_JOBS))
    rng = random.Random(size)
    waiting = iter(probe)
    next_probe = next(waiting, None)
    for i in range(rest):
        created = start + i * span // max(1, rest)
        while next_probe is not None and next_probe.created <= created:
            yield next_probe
            next_probe = next(waiting, None)
        index = 1 if rng.random() < shape.big_share else 2 + rng.randrange(max(1, shape.servers - 2))
        user = shape.member_of(index, rng.randrange(1 << 30))
        yield _finished(GUILD_BASE + index, user, created, created * 100 + 50 + i % 49, rng)
    while next_probe is not None:
        yield next_probe
        next_probe = next(waiting, None)
    yield from _open_jobs(shape)


def _open_jobs(shape: Shape) -> Iterator[_Job]:
    rng = random.Random(99)
    now, n = to_millis(NOW), 0
    for status, count, in_probe in OPEN_JOBS:
        for k in range(count):
            n += 1
            if k < in_probe:
                guild, user = shape.probe_guild, shape.probe_member(k)
            else:
                index = 1 + rng.randrange(max(1, shape.servers - 1))
                guild, user = GUILD_BASE + index, shape.member_of(index, rng.randrange(1 << 30))
            created = now - 600_000 + n * 5_000
            job = _Job(created * 100 + 99, guild, user, created, _OPEN_PATHS[status], "flux-pro-1.1",
                       0 if status == "cached" else 40_000, rng)  # fmt: skip
            if status == "queued" and k >= count - UNACKED:
                job.acked, job.holder = False, DEAD_PROCESS
            elif status == "generating" and k >= count - ORPHANED:
                job.holder = DEAD_PROCESS
            yield job


def rows_of(job: _Job) -> dict[str, list[tuple[object, ...]]]:
    """The rows a job leaves in each table (see :data:`COLUMNS`)."""
    rng, status = job.rng, job.status
    times = {name: job.created + step * 1_500 for step, name in enumerate(job.path)}
    updated = times[status]
    is_open = status in _OPEN_PATHS
    erased = not is_open and job.created < to_millis(NOW) - RETENTION_DAYS * 86_400_000
    seed = rng.randrange(1 << 31)
    accepted = "generating" in job.path
    task = f"{rng.getrandbits(128):032x}" if accepted else None
    prompt = "" if erased else f"a {('red', 'quiet', 'golden')[seed % 3]} lighthouse at dusk, oil painting #{seed}"
    params = "{}" if erased else json.dumps({"prompt": prompt, "seed": seed, "width": 1024, "height": 1024})
    delivered = status == "delivered"
    channel = CHANNEL_BASE + (job.guild - GUILD_BASE) * 10 + seed % 3
    error = {"failed": "task_failed" if accepted else "submit_refused", "unknown": "submit_unknown"}.get(status)
    group = (job.id, 0) if not is_open and rng.random() < 0.02 else None
    rows: dict[str, list[tuple[object, ...]]] = {name: [] for name in COLUMNS}
    rows["jobs"].append((
        job.id, job.guild, channel, job.user, job.model, prompt, params, seed, 1024, 1024,
        f"{rng.getrandbits(256):064x}", status, job.estimate,
        job.estimate if accepted and status != "unknown" else None, task,
        None if erased or not accepted else f"https://api.bfl.ai/v1/get_result?id={task}", error,
        channel if delivered and not erased else None, job.id + 7 if delivered and not erased else None,
        job.created, updated, "1:1", 1 if job.acked else 0, 1, None if not is_open else f"token-{job.id}",
        times.get("generating"), times.get("downloading"),
        None if erased or not delivered else f"https://delivery.bfl.ai/{task}/sample.png",
        "Ready" if "downloading" in job.path else None, 1 if rng.random() < 0.01 else 0,
        times[status] + RETENTION_DAYS * 86_400_000 if erased else None, job.holder,
        *(group or (None, None)),
    ))  # fmt: skip
    rows["job_events"] = [(job.id, name, at, error if name == status else None) for name, at in times.items()]
    keys = PeriodKeys.at(from_millis(job.created))
    money = (job.guild, job.user, job.model)
    reserve = ("reserve", job.id, *money, job.estimate, job.estimate, 1, keys.day, keys.week, keys.month, None, None)
    rows["ledger"].append((*reserve, job.created))
    outcome = None
    if status in ("delivered", "delivering"):
        outcome = ("settle", 0, 0, 0, "downloaded")
    elif (status in ("failed", "unknown") and accepted) or status == "unknown":
        outcome = ("settle", 0, -job.estimate, -1, error)
    elif status in ("failed", "cancelled"):
        outcome = ("release", -job.estimate, -job.estimate, -1, status)
    if outcome is not None:
        kind, server, member, images, note = outcome
        period = (keys.day, keys.week, keys.month)
        rows["ledger"].append((kind, job.id, *money, server, member, images, *period, None, note, updated))
    if not is_open and rng.random() < 0.002:  # a moderator's grant to the member
        now_keys = PeriodKeys.at(from_millis(updated))
        grant = ("grant", None, job.guild, job.user, None, 0, 500_000, 0, now_keys.day, now_keys.week)
        rows["ledger"].append((*grant, now_keys.month, USER_BASE - 1, "bench grant", updated + 1))
    roll = rng.random()
    if roll < 0.10:
        url = None if erased else f"https://cdn.discordapp.com/attachments/{channel}/{job.id}/in.png"
        rows["job_sources"].append((job.id, "edit", url, None))
    elif roll < 0.13:
        rows["job_sources"].append((job.id, "reroll", None, job.id - 100))
    if group is not None:
        posted = updated + 2_000
        rows["job_groups"].append((job.id, job.guild, channel, job.user, 1, 0, 1, 0, LIVE_PROCESS, posted,
                                   channel, job.id + 9, job.created))  # fmt: skip
    if delivered and rng.random() < 0.005:
        rows["job_deletions"].append((job.id, job.user, updated + 86_400_000))
    return rows


def chunks(jobs: Iterable[_Job], size: int = CHUNK) -> Iterator[dict[str, list[tuple[object, ...]]]]:
    """The rows of ``size`` jobs at a time, per table."""
    batch: dict[str, list[tuple[object, ...]]] = {name: [] for name in COLUMNS}
    count = 0
    for job in jobs:
        for name, rows in rows_of(job).items():
            batch[name].extend(rows)
        count += 1
        if count == size:
            yield batch
            batch, count = {name: [] for name in COLUMNS}, 0
    if count:
        yield batch


def _extras() -> dict[str, tuple[tuple[str, ...], list[tuple[object, ...]]]]:
    """The lease of the live process and each model's recent latencies."""
    now = to_millis(NOW)
    latencies = [(model, 3.0 + (i % 7) * 0.4, now - i * 60_000) for model, _, _ in MODELS for i in range(50)]
    return {
        "processes": (("id", "role", "host", "pid", "started_at", "lease_expires_at"),
                      [(LIVE_PROCESS, "bot", "bench-host", 1, now - 86_400_000, now + 10 * 365 * 86_400_000)]),
        "model_latency": (("model", "seconds", "at"), latencies),
    }  # fmt: skip


def _derived_sql(table: str) -> str:
    from bot.billing.bookkeeping import _REBUILD_USAGE_SQL  # the bot's own definition of the counters

    return DERIVED[table].format(rebuild=_REBUILD_USAGE_SQL)


# -- loading ----------------------------------------------------------------------------------------


async def build(target: str, size: int, shape: Shape = Shape(), *, statistics_target: int | None = None) -> None:
    """Write ``size`` jobs of history into the empty database at ``target`` (a file path or a PostgreSQL URL).

    ``statistics_target`` (PostgreSQL): ``ANALYZE`` with this ``default_statistics_target`` instead of
    the server's; 300 × it rows are sampled per table, so a target above a table's rows / 300 makes
    ``ANALYZE`` read every row: exact, repeatable statistics (the query-plan test needs the same plans
    on every run).
    """
    db = await Database.at(target, pool_size=1)  # migrates
    await db.close()
    if target.startswith(("postgresql://", "postgres://")):
        await _load_postgres(target, shape, size, statistics_target)
    else:
        _load_sqlite(Path(target), shape, size)


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _load_sqlite(path: Path, shape: Shape, size: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (?, ?)", TRIGGERED
        ).fetchall()
        conn.execute("BEGIN")
        for name, _ in triggers:
            conn.execute(f"DROP TRIGGER {name}")
        for batch in chunks(jobs_in_history(shape, size)):
            for table, rows in batch.items():
                conn.executemany(_insert_sql(table, COLUMNS[table]), rows)
        for table, (columns, rows) in _extras().items():
            conn.executemany(_insert_sql(table, columns), rows)
        present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in DERIVED:
            if table in present:
                conn.execute(_derived_sql(table))
        for _, sql in triggers:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    with path.open("rb+") as written:  # loaded without syncs: on disk now, not flushed during a measurement
        os.fsync(written.fileno())


async def _load_postgres(url: str, shape: Shape, size: int, statistics_target: int | None) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for table in TRIGGERED:
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for batch in chunks(jobs_in_history(shape, size)):
                for table, rows in batch.items():
                    if rows:
                        await conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table])
            for table, (columns, rows) in _extras().items():
                await conn.copy_records_to_table(table, records=rows, columns=columns)
            present = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            for table in DERIVED:
                if table in present:
                    await conn.execute(_derived_sql(table))
            for table in TRIGGERED:
                await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        if statistics_target is not None:
            await conn.execute(f"SET default_statistics_target = {int(statistics_target)}")
        await conn.execute("VACUUM ANALYZE")
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")  # written out now, not during a measurement
    finally:
        await conn.close()
