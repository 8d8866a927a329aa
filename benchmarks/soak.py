"""A randomized fault soak of the job engine (issue 20): two real bot processes, faults everywhere.

    python -m benchmarks.soak --seed 1 [--backend sqlite|postgresql|both] [--jobs 300]

A gateway (``python -m bot``) and a worker (``python -m bot worker``) share one database (a SQLite
file, or PostgreSQL: a throwaway server from this machine's binaries, or ``--database-url``). Members
of three servers send at least ``--jobs`` jobs (`/imagine` singles and ``count:2-4`` groups) through
the fake Discord, click Cancel, and moderators pause and resume their servers, while

* the fake BFL answers 429s, 5xx before and after creating the task, "Task not found", poll errors,
  moderation, ``Error`` and slow tasks (:class:`~tests.fakes.fake_bfl.RandomBflFaults`);
* the fake Discord answers 429s without the proxy headers, 5xx, dead tokens, slow edits and dropped
  connections (:class:`~tests.e2e.fake_discord.RandomDiscordFaults`);
* each process's database fails a fraction of its calls (:mod:`benchmarks.soak_db`), and on
  PostgreSQL random server backends of the bot are terminated;
* one process at a time is SIGKILLed at random and started again.

Then every fault stops, the soak waits (on the database) until no job is open for a few seconds, stops
the processes, and checks the invariants of :mod:`benchmarks.soak_checks`. Every random choice comes
from the seed; timing does not, so a seed replays the same requests and faults, not the same history.
Exit status 0 when every invariant holds. Logs stay in ``--folder`` (a temporary folder otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.soak_checks import Facts, Invariant, check_all
from benchmarks.soak_cluster import Cluster, child_environment
from benchmarks.soak_report import SoakReport
from benchmarks.soak_world import Driver, build_world
from bot.storage.database import Database
from tests.e2e.fake_discord import DiscordFaultRates, FakeDiscord, RandomDiscordFaults
from tests.fakes.fake_bfl import BflFaultRates, FakeBfl, RandomBflFaults

OPEN = "('queued', 'submitting', 'generating', 'downloading', 'delivering', 'cached')"


@dataclass(frozen=True)
class SoakOptions:
    """One soak run."""

    seed: int
    backend: str = "sqlite"
    jobs: int = 300  # at least this many jobs are admitted
    max_requests: int = 1200
    bfl: BflFaultRates = field(default_factory=BflFaultRates)
    discord: DiscordFaultRates = field(default_factory=DiscordFaultRates)
    db_rate: float = 0.003  # database calls failing before they reach the database
    db_after_rate: float = 0.002  # PostgreSQL: writes and commits failing after they took effect
    kills: int = 4  # SIGKILLs, spread evenly over the jobs admitted, the gateway and the worker in turn
    down_for: tuple[float, float] = (0.2, 1.5)  # how long a killed process stays down
    terminate_every: tuple[float, float] = (2.0, 6.0)  # PostgreSQL: seconds between backend terminations
    pace: tuple[float, float] = (0.01, 0.06)  # seconds between a member's actions (uniform)
    quiet_for: float = 3.0  # quiescence: no open job for this long once the faults stopped
    stuck_after: float = 15.0  # open jobs that do not move for this long are stuck: stop waiting
    quiet_timeout: float = 120.0


def bot_settings(fake: FakeDiscord, bfl: FakeBfl, database: dict[str, str], options: SoakOptions) -> dict[str, str]:
    """The processes' settings: the fakes, the shared database, limits wide enough for the load."""
    return {
        "DISCORD_TOKEN": fake.token,
        "BFL_API_KEY": bfl.api_key,
        "BFL_API_URL": bfl.url,
        "DISCORD_API_URL": fake.api_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        **database,
        "DATABASE_POOL_SIZE": "4",
        "JOB_LEASE_SECONDS": "2",  # a killed process's jobs are taken over within seconds
        "JOB_TIMEOUT_SECONDS": "60",
        "CONFIRM_ABOVE_USD": "100",
        "DEFAULT_MEMBER_DAILY_USD": "1000",
        "DEFAULT_MEMBER_DAILY_IMAGES": "100000",
        "DEFAULT_SERVER_DAILY_USD": "100000",
        "BOT_BUDGET_USD": "100000",
        "MEMBER_MAX_PENDING_JOBS": "20",
        "MODERATION_STRIKES": "100",  # moderation faults would otherwise block the members
        "LOG_LEVEL": "INFO",
        "SOAK_SEED": str(options.seed),
        "SOAK_DB_FAULT_RATE": str(options.db_rate),
        "SOAK_DB_AFTER_RATE": str(options.db_after_rate),
    }


async def run_soak(options: SoakOptions, folder: Path, *, database_url: str | None = None) -> SoakReport:
    """One soak run against ``database_url`` (PostgreSQL) or a SQLite file in ``folder``."""
    if options.backend == "postgresql":
        assert database_url, "the PostgreSQL soak needs a database URL"
        database = {"DATABASE_URL": database_url, "DATABASE_PATH": str(folder / "unused.sqlite3")}
        target = database_url
    else:
        target = str(folder / "soak.sqlite3")
        database = {"DATABASE_PATH": target}
    async with FakeDiscord() as fake, FakeBfl(seed=options.seed, credits=Decimal(10**7)) as bfl:
        run = SoakRun(options, folder, fake, bfl)
        env = child_environment(bot_settings(fake, bfl, database, options) | {"SOAK_FAULT_SWITCH": str(run.switch)})
        run.cluster = Cluster(env, folder)
        await run.cluster.start()
        try:
            await run.started(target)
            await run.under_faults(target)
            await run.settle()
            facts, invariants = await check_all(run.view, fake, bfl, run.driver.requests, run.cluster.deaths)
        finally:
            exits = await run.cluster.stop()
            if run.view is not None:
                await run.view.close()
        invariants.append(_protocol(fake, bfl, exits))
        return run.report(facts, invariants)


class SoakRun:
    """The state of one run: the fakes, the processes, the members, and what was injected."""

    def __init__(self, options: SoakOptions, folder: Path, fake: FakeDiscord, bfl: FakeBfl) -> None:
        self.options = options
        self.folder = folder
        self.fake = fake
        self.bfl = bfl
        self.switch = folder / "faults-on"  # database faults are on while it exists
        self.started_at = time.monotonic()
        rng = random.Random(options.seed)
        self.driver = Driver(fake, build_world(fake, rng), rng, options.seed)
        self.bfl_faults = RandomBflFaults(options.seed, options.bfl)
        bfl.behaviour_source = self.bfl_faults
        self.cluster: Cluster
        self.view: Database | None = None
        self.terminated: Counter[str] = Counter()
        self.fault_seconds = 0.0
        self.stuck: list[str] = []

    async def started(self, target: str) -> None:
        """Wait until the gateway is connected and synced and the worker holds a lease."""
        await self.fake.wait_until_connected(timeout=120)
        await self.fake.wait_for(lambda: self.fake.command_syncs, timeout=120)
        self.view = await Database.at(_as_driver(target))
        await _wait_rows(self.view, "SELECT id FROM processes WHERE role = 'worker'", within=120)

    async def under_faults(self, target: str) -> None:
        """The members' actions with every fault on; then every fault stops."""
        assert self.view is not None
        self.switch.touch()
        self.fake.faults.source = RandomDiscordFaults(self.options.seed, self.options.discord)
        chaos: list[asyncio.Task[None]] = []
        if self.options.backend == "postgresql":
            chaos.append(asyncio.create_task(_terminate_backends(target, self.options, self.terminated)))
        killer = Killer(self.cluster, random.Random(f"{self.options.seed}:kills"), self.options)
        began = time.monotonic()
        try:
            await _drive(self.driver, self.view, self.options, on_progress=killer.progress)
        finally:
            for task in chaos:
                task.cancel()
            await asyncio.gather(*chaos, *killer.tasks, return_exceptions=True)  # a kill in progress restarts
            self.switch.unlink(missing_ok=True)
            self.fake.faults.clear()
            self.bfl_faults.enabled = False
            self.fault_seconds = time.monotonic() - began

    async def settle(self) -> None:
        """Both processes up, every server resumed, then wait for quiescence (or open jobs that stopped moving)."""
        assert self.view is not None
        await self.cluster.ensure_running()
        await self.fake.wait_until_connected(timeout=120)
        await self.driver.resume_all()
        self.stuck = await _quiescence(self.view, self.options)
        if self.stuck:  # what the processes are doing, in their logs
            for member in self.cluster.members.values():
                member.dump_tasks()
            await asyncio.sleep(1.0)  # let them write it

    def report(self, facts: Facts, invariants: list[Invariant]) -> SoakReport:
        return SoakReport(
            seed=self.options.seed,
            backend=self.options.backend,
            elapsed=time.monotonic() - self.started_at,
            fault_seconds=self.fault_seconds,
            jobs=Counter(job["status"] for job in facts.jobs.values()),
            singles=sum(1 for job in facts.jobs.values() if not job["group_id"]),
            actions=self.driver.actions,
            bfl_faults=self.bfl_faults.injected,
            discord_faults=self.fake.faults.injected,
            process_faults=self.cluster.faults(),
            db_faults=self.cluster.injected_db_faults(),
            pg_terminated=sum(self.terminated.values()),
            stuck=self.stuck,
            invariants=invariants,
            folder=self.folder,
        )


def _as_driver(target: str) -> str:
    """The soak's own database connection, named so the backend terminator spares it."""
    if target.startswith(("postgresql://", "postgres://")):
        return target + ("&" if "?" in target else "?") + "application_name=soak-driver"
    return target


async def _wait_rows(db: Database, query: str, *, within: float) -> None:
    async with asyncio.timeout(within):
        while True:
            if await db.fetch_all(query):
                return
            await asyncio.sleep(0.1)  # re-read the database the processes write


async def _drive(driver: Driver, view: Database, options: SoakOptions, *, on_progress: Callable[[int], None]) -> None:
    """The members' actions until ``options.jobs`` jobs were admitted (or the request cap)."""
    jobs = 0
    while jobs < options.jobs and len(driver.requests) < options.max_requests:
        await driver.step()
        await asyncio.sleep(driver.rng.uniform(*options.pace))  # members' pace, not synchronisation
        if len(driver.requests) % 10 == 0:
            with contextlib.suppress(Exception):  # the database may be busy: count next time
                jobs = await view.fetch_value("SELECT COUNT(*) FROM jobs", default=0)
                on_progress(jobs)


class Killer:
    """SIGKILLs ``options.kills`` times as the jobs come in (evenly), the gateway and the worker in turn."""

    def __init__(self, cluster: Cluster, rng: random.Random, options: SoakOptions) -> None:
        self.cluster = cluster
        self.rng = rng
        self.options = options
        self.roles = sorted(cluster.members)
        self.turn = rng.randrange(len(self.roles))  # who goes first
        self.thresholds = [options.jobs * (n + 1) // (options.kills + 1) for n in range(options.kills)]
        self.tasks: list[asyncio.Task[None]] = []

    def progress(self, jobs: int) -> None:
        """``jobs`` have been admitted: kill the next process if its threshold is passed."""
        while self.thresholds and jobs >= self.thresholds[0]:
            self.thresholds.pop(0)
            role = self.roles[self.turn % len(self.roles)]
            self.turn += 1
            down_for = self.rng.uniform(*self.options.down_for)
            self.tasks.append(asyncio.create_task(self.cluster.kill_and_restart(role, down_for)))


async def _terminate_backends(url: str, options: SoakOptions, terminated: Counter[str]) -> None:
    """PostgreSQL: now and then terminate one of the bot's server backends (its connection drops mid-use)."""
    import asyncpg

    rng = random.Random(f"{options.seed}:postgres")
    conn = await asyncpg.connect(url)
    try:
        while True:
            await asyncio.sleep(rng.uniform(*options.terminate_every))
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend' AND application_name <> 'soak-driver' ORDER BY pid"
            )
            if rows:
                await conn.execute("SELECT pg_terminate_backend($1)", rng.choice(rows)["pid"])
                terminated["backend"] += 1
    finally:
        await conn.close()


async def _quiescence(view: Database, options: SoakOptions) -> list[str]:
    """Wait until no job is open for ``quiet_for`` seconds; the open jobs if they stopped moving (stuck).

    Open jobs are stuck when none of them changed status for ``stuck_after`` seconds and none waits on
    a timer of its own (a ``next_attempt_at`` in the future, once the engine stores one), so a job that
    waits out a retry backoff is not mistaken for a stuck one.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.quiet_timeout
    quiet_since = moved_at = loop.time()
    seen: list[tuple[int, str]] = []
    found: list[Any] = []
    timed = [True]  # whether the schema has next_attempt_at (found out on the first read)
    while loop.time() < deadline:
        found, timers = await _open_jobs(view, timed)
        rows = [(r["id"], r["status"]) for r in found]
        now = loop.time()
        if rows != seen or any(at > time.time() * 1000 for at in timers):
            seen, moved_at = rows, now
        if rows:
            quiet_since = now
            if now - moved_at > options.stuck_after:
                break
        elif now - quiet_since >= options.quiet_for:
            return []
        await asyncio.sleep(0.1)  # re-read the database the processes write
    return [f"{r['id']} {r['status']} held by {r['claimed_by']}" for r in found] or ["(timed out)"]


async def _open_jobs(view: Database, timed: list[bool]) -> tuple[list[Any], list[int]]:
    """The open jobs, and their ``next_attempt_at`` timers (unix ms) if the schema has that column."""
    query = f"SELECT id, status, claimed_by{{}} FROM jobs WHERE status IN {OPEN} ORDER BY id"
    if timed[0]:
        try:
            rows = await view.fetch_all(query.format(", next_attempt_at"))
            return rows, [r["next_attempt_at"] for r in rows if r["next_attempt_at"] is not None]
        except Exception:  # no such column (today's schema): stop asking
            timed[0] = False
    return await view.fetch_all(query.format("")), []


def _protocol(fake: FakeDiscord, bfl: FakeBfl, exits: dict[str, int | None]) -> Invariant:
    invariant = Invariant("requests match the APIs' schemas; both processes stop cleanly")
    for error in fake.schema_errors[:5]:
        invariant.failures.append(f"Discord schema: {error.operation}: {error.errors[:2]}")
    for error in bfl.schema_errors[:5]:
        invariant.failures.append(f"BFL schema: {error.model}: {error.detail[:2]}")
    for problem in fake.internal_errors[:5] + [str(e) for e in fake.response_schema_errors[:5]]:
        invariant.failures.append(f"the fake Discord itself: {problem}")
    invariant.failures += [f"{role} exited {code} on SIGINT" for role, code in exits.items() if code != 0]
    return invariant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--database-url", help="a PostgreSQL server to create the soak's database on")
    parser.add_argument("--folder", type=Path, help="keep the logs and the SQLite file here")
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    ok = True
    for backend in backends:
        folder = args.folder / backend if args.folder else Path(tempfile.mkdtemp(prefix=f"soak-{backend}-"))
        folder.mkdir(parents=True, exist_ok=True)
        options = SoakOptions(seed=args.seed, backend=backend, jobs=args.jobs)
        with _postgres(backend, args.database_url) as url:
            report = asyncio.run(run_soak(options, folder, database_url=url))
        (folder / "report.txt").write_text(report.table() + "\n")
        print(report.table(), flush=True)
        ok = ok and report.ok
    return 0 if ok else 1


@contextlib.contextmanager
def _postgres(backend: str, url: str | None):  # type: ignore[no-untyped-def]
    """A fresh PostgreSQL database for the run: on ``url``'s server, or a throwaway local server."""
    if backend != "postgresql":
        yield None
        return
    from tests.postgres_server import PostgresServer, _run_blocking, find_bindir

    server = PostgresServer()
    if url:
        server.use_existing(url)
    else:
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL server binaries (initdb, pg_ctl); give --database-url")
        server.start(bindir)
    try:
        yield _run_blocking(server.new_database())
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
