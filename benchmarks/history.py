"""Does the bot stay fast as history grows? Operations × database sizes, on SQLite and PostgreSQL.

Run: python -m benchmarks.history [--sizes 10k,100k,1M] [--database postgresql://…] [--runs 5]

For each size, :func:`benchmarks.history_data.build` writes a year of history (1,000 servers, 50,000
members; a probe server whose own rows are the same at every size) into a fresh SQLite file and, with
``--database``, into a scratch PostgreSQL database created beside the one named (the role needs
CREATEDB; dropped afterwards). Then every operation in :data:`OPERATIONS` runs through the bot's own
services (``build_services``, a fixed clock at the history's end) on the probe server and its busiest
member, the sizes taking turns run by run so that they share whatever else the machine is doing: one
warm-up each, then at least ``--runs`` runs (an operation faster than :data:`MIN_SECONDS` per size
is repeated until that much time has passed), and the fastest run counts. The table gives
milliseconds per operation and size and the growth factor (largest size ÷ smallest); the target is
≤ 1.5×. Each size also prints the report and the export of the big server (11.7 % of the jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.history_data import LIVE_PROCESS, NOW, Shape, build
from bot.app import Services, build_services
from bot.billing.export import LedgerExport
from bot.billing.reports import spend_report
from bot.config import Period, Settings
from bot.engine.fairness import positions
from bot.engine.groups import GroupStore
from bot.engine.leases import ProcessIdentity
from bot.engine.sources import JobSources
from bot.engine.states import JobStatus
from bot.engine.store import Job, JobStore
from bot.ops.metrics import Metrics
from bot.storage.database import Database

TARGET_GROWTH = 1.5
MIN_SECONDS = 0.5  # per operation: fast ones run more than --runs times
MAX_RUNS = 1000
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}


@dataclass
class Context:
    """What the operations work on: the services over one database, and the probe's ids."""

    services: Services
    shape: Shape
    identity: ProcessIdentity
    probe_job: int
    folder: Path
    run: int = 0

    @property
    def guild(self) -> int:
        return self.shape.probe_guild

    @property
    def user(self) -> int:
        return self.shape.probe_member(0)


async def claim_one(jobs: JobStore) -> Job | None:
    """The dispatcher's claim with the default caps (24 slots, 6 for FLUX.1 Kontext [max], 2 per member)."""
    return await jobs.claim(max_active=24, member_cap=2, holder=LIVE_PROCESS)


async def _claim(ctx: Context) -> None:
    job = await claim_one(ctx.services.jobs)
    assert job is not None
    await ctx.services.db.execute("UPDATE jobs SET status = 'queued' WHERE id = ?", (job.id,))  # put it back


async def _snapshot(ctx: Context) -> None:
    assert positions(await ctx.services.jobs.queue_snapshot())


async def _open_jobs(ctx: Context) -> None:
    assert await ctx.services.jobs.open_jobs()


async def _orphans(ctx: Context) -> None:
    assert await ctx.services.jobs.orphaned(ctx.identity)


async def _counts(ctx: Context) -> None:
    assert await ctx.services.jobs.count(JobStatus.QUEUED) > 0
    assert await ctx.services.jobs.count(JobStatus.SUBMITTING, JobStatus.GENERATING) > 0


async def _metrics(ctx: Context) -> None:
    await Metrics().refresh(ctx.services.jobs, ctx.services.ledger, ctx.services.settings)


async def _recovery(ctx: Context) -> None:
    """The reads one reconciliation pass makes at start-up (``JobEngine.reconcile``), without acting on them."""
    jobs = ctx.services.jobs
    open_ids = await ctx.services.ledger.open_job_ids()
    assert open_ids and all([await jobs.get(job_id) is not None for job_id in open_ids])
    assert await jobs.needing_a_driver(ctx.identity, driving=set())
    now = jobs.now_ms()
    await jobs.untold(created_after=now - 15 * 60 * 1000)
    await jobs.expiring_private(created_before=now - 10 * 60 * 1000)
    await GroupStore(ctx.services.db, ctx.services.ledger).finished_unposted()


async def _quota(ctx: Context) -> None:
    services = ctx.services
    limits = await services.server.limits.limits_for(ctx.guild, ctx.user, [])
    assert await services.ledger.statuses(ctx.guild, ctx.user, limits)
    await services.server.settings.guild_settings(ctx.guild)
    await services.server.safety.allowed_models(ctx.guild)


async def _history(ctx: Context) -> None:
    assert len(await JobSources(ctx.services.db).history(ctx.guild, ctx.user)) == 10


async def _report(ctx: Context) -> None:
    report = await spend_report(ctx.services.db, ctx.guild, Period.MONTH, NOW)
    assert report.total_micros > 0 and report.bot_total_micros >= report.total_micros


async def export_all(db: Database, guild_id: int, folder: Path) -> tuple[int, int]:
    """Stream the server's ledger into CSV parts of at most 10 MiB (Discord's default upload limit): (rows, parts)."""
    export = LedgerExport(db, guild_id, max_bytes=10 * 1024 * 1024, directory=folder)
    parts = 0
    async for part in export.parts():
        part.file.close()
        parts += 1
    return export.rows_done, parts


async def _export(ctx: Context) -> None:
    rows, _ = await export_all(ctx.services.db, ctx.guild, ctx.folder)
    assert rows >= 2 * ctx.shape.probe_jobs


async def _privacy_show(ctx: Context) -> None:
    assert (await ctx.services.members.privacy.kept(ctx.guild, ctx.user)).requests > 0


async def _forget(ctx: Context) -> None:
    await ctx.services.members.privacy.forget(ctx.guild, ctx.shape.probe_member(1 + ctx.run))  # a new member each run


async def _sweep(ctx: Context) -> None:
    assert await ctx.services.members.privacy.sweep() == 0  # the history is swept already: the search alone


async def _events(ctx: Context) -> None:
    assert await ctx.services.jobs.events(ctx.probe_job)


OPERATIONS: dict[str, Callable[[Context], Awaitable[None]]] = {
    "claim (fair, one job)": _claim,
    "queue snapshot + positions": _snapshot,
    "open jobs": _open_jobs,
    "orphan check (heartbeat)": _orphans,
    "counts (queue, in flight)": _counts,
    "metrics scrape": _metrics,
    "start-up recovery reads": _recovery,
    "/quota": _quota,
    "/history": _history,
    "/budget report (month)": _report,
    "/budget export (probe server)": _export,
    "/privacy show": _privacy_show,
    "/privacy forget": _forget,
    "retention sweep": _sweep,
    "job events": _events,
}


CHANGES_DATA = {"/privacy forget"}  # a different member each run: one run per member


async def _context(db: Database, session: aiohttp.ClientSession, folder: Path, shape: Shape) -> Context:
    settings = Settings(
        _env_file=None,
        discord_token="bench",
        bfl_api_key="bench",
        bfl_api_url="http://127.0.0.1:9",
        database_path=folder / "unused.sqlite3",
        cache_dir=folder / "cache",
        cache_max_mb=0,
    )
    services = build_services(settings, db=db, session=session, clock=lambda: NOW)
    probe_job = await db.fetch_value(
        "SELECT MAX(id) FROM jobs WHERE guild_id = ? AND user_id = ? AND status = 'delivered'",
        (shape.probe_guild, shape.probe_member(0)),
    )
    return Context(services, shape, ProcessIdentity("bot"), probe_job, folder)


async def _time_interleaved(name: str, contexts: dict[str, Context], runs: int) -> dict[str, float]:
    """The fastest of at least ``runs`` runs per size, after one warm-up each, sizes taking turns.

    Taking turns, every size sees the same load on the machine; the fastest run is the least
    disturbed one. Unless the operation changes the data (:data:`CHANGES_DATA`: one run per probe
    member), rounds go on until :data:`MIN_SECONDS` per size have passed: short timings are noisy.
    """
    operation = OPERATIONS[name]
    figures: dict[str, list[float]] = {size: [] for size in contexts}
    if name in CHANGES_DATA:  # one run per probe member but the busiest (run 0 warms up on member 1)
        runs = max(runs, next(iter(contexts.values())).shape.probe_members - 2)
    started = time.perf_counter()
    for run in range(MAX_RUNS + 1):
        enough = time.perf_counter() - started >= MIN_SECONDS * len(contexts)
        if run > runs and (name in CHANGES_DATA or enough):
            break
        for size, ctx in contexts.items():
            ctx.run = run
            start = time.perf_counter()
            await operation(ctx)
            if run:  # run 0 warms the caches
                figures[size].append((time.perf_counter() - start) * 1000)
    return {size: min(values) for size, values in figures.items()}


async def measure(targets: dict[str, str], folder: Path, runs: int, shape: Shape) -> dict[str, dict[str, float]]:
    """{size: {operation: ms}} on the databases at ``targets`` (one per size, already built)."""
    dbs = {size: await Database.at(target, pool_size=2) for size, target in targets.items()}
    try:
        async with aiohttp.ClientSession() as session:
            contexts = {size: await _context(db, session, folder, shape) for size, db in dbs.items()}
            times: dict[str, dict[str, float]] = {size: {} for size in targets}
            for name in OPERATIONS:
                for size, ms in (await _time_interleaved(name, contexts, runs)).items():
                    times[size][name] = ms
            for size, ctx in contexts.items():
                print(f"  {size}: " + await _big_server(ctx), flush=True)
    finally:
        for db in dbs.values():
            await db.close()
    return times


async def _big_server(ctx: Context) -> str:
    """The report and the export of the big server (a 117k-job server at 1M jobs)."""
    db, guild = ctx.services.db, ctx.shape.big_guild
    jobs = await db.fetch_value("SELECT COUNT(*) FROM jobs WHERE guild_id = ?", (guild,))
    start = time.perf_counter()
    await spend_report(db, guild, Period.MONTH, NOW)
    report = time.perf_counter() - start
    start = time.perf_counter()
    rows, parts = await export_all(db, guild, ctx.folder)
    export = time.perf_counter() - start
    return (
        f"big server ({jobs:,} jobs): report {report * 1000:,.0f} ms, export {export:,.2f} s"
        f" ({rows:,} rows in {parts} file{'s' if parts > 1 else ''})"
    )


async def run_backend(backend: str, sizes: Sequence[str], database: str | None, runs: int, shape: Shape) -> dict:
    """Build every size on ``backend``, then time the operations; {size: {operation: ms}}."""
    from benchmarks.ledger_cycles import create_scratch, drop_scratch

    with tempfile.TemporaryDirectory(prefix="fluxcord-history-") as tmp:
        folder = Path(tmp)
        targets: dict[str, str] = {}
        try:
            for size in sizes:
                target = await create_scratch(database) if database else str(folder / f"{size}.sqlite3")
                targets[size] = target
                start = time.perf_counter()
                await build(target, jobs_of(size), shape)
                print(f"{backend} {size}: built in {time.perf_counter() - start:,.0f} s", flush=True)
            return await measure(targets, folder, runs, shape)
        finally:
            if database:
                for target in targets.values():
                    await drop_scratch(database, target)


def jobs_of(size: str) -> int:
    """``10k`` → 10,000 jobs (or a plain number)."""
    return SIZES.get(size) or int(size)


def table(results: dict[str, dict[str, dict[str, float]]], sizes: Sequence[str]) -> list[str]:
    """A Markdown table per backend: operations × sizes (ms) and the growth factor."""
    lines: list[str] = []
    for backend in ("sqlite", "postgresql"):
        if not all(backend in results[size] for size in sizes):
            continue
        lines += ["", f"{backend}: milliseconds (the fastest run of each size, sizes taking turns)", ""]
        lines.append("| operation | " + " | ".join(sizes) + f" | {sizes[-1]} ÷ {sizes[0]} |")
        lines.append("|---" * (len(sizes) + 2) + "|")
        for name in OPERATIONS:
            figures = [results[size][backend][name] for size in sizes]
            growth = figures[-1] / figures[0] if figures[0] else float("inf")
            mark = "" if growth <= TARGET_GROWTH else " ✗"
            cells = " | ".join(f"{value:,.2f}" for value in figures)
            lines.append(f"| {name} | {cells} | {growth:.2f}×{mark} |")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k", help="comma-separated: 10k, 100k, 1M or a number of jobs")
    parser.add_argument("--database", help="a PostgreSQL URL: also measure PostgreSQL (scratch databases beside it)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per operation (median)")
    args = parser.parse_args(argv)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for size in args.sizes:
        if size not in SIZES and not size.isdigit():
            parser.error(f"unknown size {size!r}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


async def main(argv: Sequence[str] | None = None, shape: Shape | None = None) -> dict[str, Any]:
    """Run the benchmark; print and return the figures ({size: {backend: {operation: ms}}})."""
    args = parse_args(argv)
    shape = shape or Shape()
    results: dict[str, dict[str, dict[str, float]]] = {size: {} for size in args.sizes}
    backends = {"sqlite": None, **({"postgresql": args.database} if args.database else {})}
    for backend, database in backends.items():
        for size, times in (await run_backend(backend, args.sizes, database, args.runs, shape)).items():
            results[size][backend] = times
    print("\n".join(table(results, args.sizes)))
    return results


if __name__ == "__main__":
    asyncio.run(main())
