"""The job engine under a backlog, against the fake BFL in-process (no Discord): slot use, throughput, RSS.

Sections ``backlog`` and ``rss`` of ``python -m benchmarks.pipeline`` (flags ``--backlog-jobs``,
``--backlog-latency``, ``--runs``); also runnable alone: ``python -m benchmarks.backlog``.

backlog
    ``--jobs`` jobs from 50 members in 10 servers are admitted at once into the real engine (SQLite
    file, fair claim, adaptive polling learned as it goes, download, probe, cache, settle, a presenter
    that answers at once). BFL tasks take ``--latency`` s (±5 %). Sampled every 20 ms at the fake:
    how many tasks BFL is *generating* (accepted, not yet ready) from the moment the backlog is in and
    every slot was taken once until the queue is empty, against
    the 24 slots; throughput against the theoretical 24 / latency; event-loop lag p99.

rss
    In a fresh process: 24 jobs in flight whose results are 4 MP images (FLUX1.1 [pro] Ultra); peak
    RSS of the process. The fake renders the images in that process too, so the figure is an upper
    bound for the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import build_services
from bot.config import Settings
from bot.engine.engine import Requester
from bot.engine.progress import Posted, Progress, Result
from bot.engine.states import JobStatus
from bot.models import build_request
from bot.storage.database import Database
from tests.fakes.fake_bfl import Behaviour, FakeBfl

SLOTS = 24
TARGET_GENERATING = 23.0
TARGET_RSS_MIB = 150


class InstantPresenter:
    """Posts nothing: answers at once, so the benchmark measures the engine, not Discord."""

    def __init__(self) -> None:
        self.delivered = 0
        self.done = asyncio.Event()
        self.expected = 0

    def progress_text(self, progress: Progress) -> str:
        return progress.status.value

    async def show_progress(self, job: Any, progress: Progress, text: str) -> None:
        return None

    async def deliver(self, result: Result) -> Posted:
        self.delivered += 1
        if self.delivered >= self.expected:
            self.done.set()
        return Posted(1, result.job.id)

    async def notify(self, job: Any, text: str) -> None:
        self.delivered += 1
        if self.delivered >= self.expected:
            self.done.set()


def _settings(fake: FakeBfl, folder: Path) -> Settings:
    return Settings(
        _env_file=None,
        discord_token="benchmark-token",
        bfl_api_key=fake.api_key,
        bfl_api_url=fake.url,
        database_path=folder / "bench.sqlite3",
        cache_dir=folder / "cache",
        cache_max_mb=0,  # every request distinct anyway; keep the disk out of it
        bot_budget_usd="100000",
        default_member_daily_usd="10000",
        default_member_daily_images=100000,
        default_server_daily_usd="100000",
        member_max_pending_jobs=100,
        member_max_concurrent_jobs=24,
    )


def generating(fake: FakeBfl, now: float) -> int:
    """Tasks BFL is working on at ``now``: accepted and not yet ready."""
    return sum(1 for task in fake.tasks.values() if task.created_at <= now and (task.ready_at or 1e18) > now)


async def run_backlog(jobs: int, latency: float, *, model: str = "flux-pro-1.1") -> dict[str, float]:
    """One run: ``jobs`` admitted at once; returns the measured figures."""
    with tempfile.TemporaryDirectory() as folder:
        async with FakeBfl(credits=10**7) as fake, aiohttp.ClientSession() as session:
            fake.default = Behaviour(run_seconds=latency, run_jitter=0.05)
            db = await Database.open(Path(folder) / "bench.sqlite3")
            services = build_services(_settings(fake, Path(folder)), db=db, session=session)
            presenter = InstantPresenter()
            presenter.expected = jobs
            services.engine.presenter.fill(presenter)
            await services.engine.start()
            loop = asyncio.get_running_loop()
            lags: list[float] = []
            samples: list[int] = []
            stop = asyncio.Event()

            async def sample() -> None:
                tick = 0.02
                while not stop.is_set():
                    before = loop.time()
                    await asyncio.sleep(tick)
                    now = loop.time()
                    lags.append(max(0.0, now - before - tick))
                    if await_queue[0]:
                        samples.append(generating(fake, now))

            await_queue = [False]
            sampler = asyncio.create_task(sample())
            started = loop.time()
            for n in range(jobs):
                request = build_request(model=model, prompt=f"job {n}", aspect_ratio="1:1", seed=n)
                who = Requester(job_id=n + 1, guild_id=n % 10 + 1, channel_id=1, user_id=n % 50 + 1)
                await services.engine.admit(request, who, acked=True)
            # Steady state: the backlog is in and every slot has been taken once.
            await fake.wait_for(lambda: len(fake.tasks) >= min(jobs, SLOTS), timeout=60)
            await_queue[0] = True

            async def queue_empty() -> bool:
                return await services.jobs.count(JobStatus.QUEUED) == 0

            while not await queue_empty():  # noqa: ASYNC110 - a benchmark samples; the bot never polls its queue
                await asyncio.sleep(0.05)
            await_queue[0] = False
            await asyncio.wait_for(presenter.done.wait(), timeout=jobs * latency + 120)
            elapsed = loop.time() - started
            stop.set()
            await sampler
            await services.engine.stop()
            await db.close()
            lags.sort()
            return {
                "generating": statistics.fmean(samples) if samples else 0.0,
                "throughput": jobs / elapsed,
                "theoretical": SLOTS / latency,
                "lag_p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else 0.0,
                "submits": len(fake.submits),
                "max_active": fake.max_active_seen,
            }


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def backlog_section(args: argparse.Namespace) -> list[str]:
    """The 500-job backlog table."""
    runs = [await run_backlog(args.backlog_jobs, args.backlog_latency) for _ in range(args.runs)]
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    return [
        f"backlog: {args.backlog_jobs} jobs, BFL latency {args.backlog_latency:g} s, {SLOTS} slots, "
        f"median of {args.runs} run(s)",
        "| measure | value | target |",
        "|---|---|---|",
        f"| BFL tasks generating (mean, while jobs queue) | {median['generating']:.1f} of {SLOTS} "
        f"| ≥ {TARGET_GENERATING:g} |",
        f"| throughput | {median['throughput']:.1f} jobs/s of {median['theoretical']:.1f} "
        f"({median['throughput'] / median['theoretical']:.0%}) | |",
        f"| event-loop lag p99 | {median['lag_p99_ms']:.1f} ms | ≤ 20 ms |",
        f"| submits / max active at BFL | {median['submits']:.0f} / {median['max_active']:.0f} | = jobs / ≤ {SLOTS} |",
    ]


async def rss_section(args: argparse.Namespace) -> list[str]:
    """Peak RSS with 24 jobs in flight whose results are 4 MP images, in a fresh process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.backlog", "--rss-child", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    baseline, peak = (float(x) for x in out.decode().split())
    return [
        "rss: 24 jobs in flight with 4 MP results (FLUX1.1 [pro] Ultra), fake BFL in the same process",
        "| measure | value | target |",
        "|---|---|---|",
        f"| peak RSS | {peak:.0f} MiB (the process at rest, imports loaded: {baseline:.0f} MiB) "
        f"| ≤ {TARGET_RSS_MIB} MiB |",
    ]


def _rss_child() -> None:
    baseline = peak_rss_mib()
    asyncio.run(run_backlog(SLOTS, 1.0, model="flux-pro-1.1-ultra"))  # Ultra: 4 MP results
    print(f"{baseline:.1f} {peak_rss_mib():.1f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backlog-jobs", "--jobs", dest="backlog_jobs", type=int, default=500)
    parser.add_argument("--backlog-latency", "--latency", dest="backlog_latency", type=float, default=1.0)
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.rss_child:
        _rss_child()
        return

    async def both() -> list[str]:
        return [*await backlog_section(args), "", *await rss_section(args)]

    print("\n".join(asyncio.run(both())))


if __name__ == "__main__":
    main()
