"""The backlog as a member sees it: the real bot (`python -m bot`) with the fake Discord and the fake BFL.

Run: python -m benchmarks.backlog_discord [--jobs 200] [--latency 1.0] [--runs 3]

``--jobs`` `/imagine` commands from 50 members are sent through the fake Discord's gateway at once; the
bot runs as its own process (as users run it), so its event loop carries Discord's work (answers,
queue places, progress edits, result posts) and the fakes' work does not count against it. Sampled
every 20 ms at the fake BFL: how many tasks it is *generating* (accepted, not yet ready), from the
moment every slot was taken once until no request waits; against the 24 slots. Target: ≥ 22.5.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.backlog import SLOTS, generating
from tests.e2e.fake_discord import FakeDiscord
from tests.e2e.processes import clean_environment, fake_endpoints
from tests.fakes.fake_bfl import Behaviour, FakeBfl

TARGET = 22.5
MEMBERS = 50
REPO = Path(__file__).resolve().parents[1]


async def run_once(jobs: int, latency: float) -> float:
    """One run: the mean number of tasks generating while requests wait."""
    with tempfile.TemporaryDirectory() as folder:
        async with FakeDiscord() as fake, FakeBfl(credits=10**7) as bfl:
            fake.assert_clean_at_teardown = False
            bfl.default = Behaviour(run_seconds=latency, run_jitter=0.05)
            members = [fake.add_member(name=f"member{n}") for n in range(MEMBERS)]
            env = clean_environment(
                **fake_endpoints(fake, bfl),
                DATABASE_PATH=str(Path(folder) / "bot.sqlite3"),
                BOT_BUDGET_USD="100000",
                DEFAULT_SERVER_DAILY_USD="100000",
                DEFAULT_MEMBER_DAILY_USD="1000",
                DEFAULT_MEMBER_DAILY_IMAGES="1000",
                MEMBER_MAX_PENDING_JOBS="100",
                CONFIRM_ABOVE_USD="1000",
                LOG_LEVEL="WARNING",
            )
            bot = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=folder, env=env, stderr=asyncio.subprocess.DEVNULL
            )
            try:
                await fake.wait_until_connected(timeout=60)
                await asyncio.gather(
                    *(fake.slash("imagine", {"prompt": f"job {n}"}, user=members[n % MEMBERS]) for n in range(jobs))
                )
                await bfl.wait_for(lambda: len(bfl.tasks) >= min(jobs, SLOTS), timeout=60)
                samples: list[int] = []
                loop = asyncio.get_running_loop()
                while len(bfl.tasks) < jobs:  # requests still wait for a slot
                    samples.append(generating(bfl, loop.time()))
                    await asyncio.sleep(0.02)  # a sampling period, not a synchronisation
                return statistics.fmean(samples) if samples else float("nan")
            finally:
                bot.terminate()
                await asyncio.wait_for(bot.wait(), timeout=30)


async def main(argv: list[str] | None = None) -> None:
    """Measure ``--runs`` times; print each run and the median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    figures = []
    for run in range(args.runs):
        figure = await run_once(args.jobs, args.latency)
        figures.append(figure)
        print(f"run {run + 1}: {figure:.2f} of {SLOTS} tasks generating", flush=True)
    median = statistics.median(figures)
    verdict = "meets" if median >= TARGET else "misses"
    print(f"median of {args.runs}: {median:.2f} of {SLOTS} generating ({verdict} the target of {TARGET})")


if __name__ == "__main__":
    asyncio.run(main())
