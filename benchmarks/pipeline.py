"""The generation pipeline against the fake BFL API, in-process on loopback (no Discord).

Run: python -m benchmarks.pipeline [--runs 3] [--latencies 1,3,5,8,15] [--jobs 12] [--sections polling]
Quick: python -m benchmarks.pipeline --runs 1 --latencies 1,3 --jobs 4

Sections (each prints its own table; add one by writing ``async def my_section(args) -> list[str]``
and listing it in ``SECTIONS``; ``fake_bfl_session``, ``make_client``, ``LoopLagProbe`` and
``percentile`` are there to share):

polling
    For each BFL latency L, the fake runs time-based tasks (``Behaviour(run_seconds=L,
    run_jitter=±5 %)``). First a :class:`LatencyModel` is warmed with ``--warmup`` completed tasks,
    recorded the way the bot records them (seconds from the submit answer to the moment
    ``wait_for_result`` returned Ready): half polled with the cold plan, half with the plan learned
    from those. The warm-up happens once per latency; the measured runs do not feed the model.
    Then, per run, ``--jobs`` concurrent jobs with the adaptive plan and ``--jobs`` with a fixed
    0.5 s loop (``REFERENCE_PLAN``, the client's default plan before back-off) run side
    by side: submit → poll → download. Measured at the fake, per job: polls, and detection
    delay = the download request − the moment the task became ready. Reported: the median over
    ``--runs`` runs of each run's polls per job, mean and p95 delay, and the event-loop lag p99
    (a 10 ms ticker's oversleep) while the jobs ran. Targets: at L ≥ 3 s, adaptive ≤ 0.6× the polls
    and ≤ 0.6× the mean delay of the 0.5 s loop; loop lag p99 ≤ 20 ms.

The fake BFL (validation, image rendering) runs in the same process and on the same event loop as
the client, so the lag figure includes its work: it is an upper bound for the bot alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import SecretStr

from benchmarks.backlog import backlog_section, rss_section
from bot.bfl.client import BflClient
from bot.bfl.polling import LatencyModel, PollPlan, cold_plan
from tests.fakes.fake_bfl import Behaviour, FakeBfl

MODEL = "flux-pro-1.1"
PAYLOAD = {"prompt": "a lighthouse at dusk", "width": 256, "height": 256}  # small: rendering is not measured
REFERENCE_PLAN = PollPlan(first_poll=0.0, interval=0.5, tail_start=1e9, max_interval=0.5)  # a fixed 0.5 s loop
TARGET_RATIO = 0.6
TARGET_FROM_LATENCY = 3.0  # the ratio targets apply from this latency up
TARGET_LAG_MS = 20.0


# -- shared helpers ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0–1) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@contextlib.asynccontextmanager
async def fake_bfl_session(*, seed: int | None = None) -> AsyncIterator[tuple[FakeBfl, aiohttp.ClientSession]]:
    """A started fake BFL (24-task cap, like BFL) and a plain client session (no default headers)."""
    async with FakeBfl(seed=seed) as fake, aiohttp.ClientSession() as session:
        yield fake, session


def make_client(fake: FakeBfl, session: aiohttp.ClientSession, **options: Any) -> BflClient:
    """A BflClient on the fake with production defaults unless overridden (``policy``, ``sleep``...)."""
    return BflClient(session=session, api_key=SecretStr(fake.api_key), base_url=fake.url, **options)


class LoopLagProbe:
    """Measures event-loop lag: a ticker sleeps ``tick`` seconds and records how much longer it took."""

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.tick)
            self.lags.append(max(0.0, loop.time() - before - self.tick))

    async def __aenter__(self) -> LoopLagProbe:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def p99_ms(self) -> float:
        """The 99th percentile of the recorded lags, in milliseconds."""
        return percentile(self.lags, 0.99) * 1000


# -- polling section ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobMeasure:
    """One job as the fake saw it."""

    polls: int
    delay: float  # download request − ready moment, seconds


@dataclass
class StrategyRun:
    """One strategy in one run."""

    jobs: list[JobMeasure]

    @property
    def polls_per_job(self) -> float:
        return statistics.fmean(j.polls for j in self.jobs)

    @property
    def mean_delay(self) -> float:
        return statistics.fmean(j.delay for j in self.jobs)

    @property
    def p95_delay(self) -> float:
        return percentile([j.delay for j in self.jobs], 0.95)


@dataclass
class LatencyResult:
    """Every run of both strategies at one BFL latency."""

    latency: float
    plan: PollPlan
    adaptive: list[StrategyRun] = field(default_factory=list)
    reference: list[StrategyRun] = field(default_factory=list)
    lag_p99_ms: list[float] = field(default_factory=list)

    @staticmethod
    def _median(runs: list[StrategyRun], metric: str) -> float:
        return statistics.median(getattr(run, metric) for run in runs)

    def median(self, strategy: str, metric: str) -> float:
        """The median over runs of ``metric`` (polls_per_job, mean_delay, p95_delay) for a strategy."""
        return self._median(getattr(self, strategy), metric)

    def ratio(self, metric: str) -> float:
        """adaptive / reference of the medians."""
        return self.median("adaptive", metric) / self.median("reference", metric)

    def meets_targets(self) -> bool | None:
        """Whether the ratio targets hold; None below the latency they apply from."""
        if self.latency < TARGET_FROM_LATENCY:
            return None
        return self.ratio("polls_per_job") <= TARGET_RATIO and self.ratio("mean_delay") <= TARGET_RATIO


async def run_job(client: BflClient, *, poll_timeout: float, plan: PollPlan | None = None) -> tuple[str, float, float]:
    """Submit → poll → download, as the bot does. Returns (task id, submit answered, Ready seen)."""
    loop = asyncio.get_running_loop()
    task = await client.submit(MODEL, PAYLOAD)
    accepted = loop.time()
    result = await client.wait_for_result(task, timeout=poll_timeout, plan=plan)
    seen = loop.time()
    await client.download(result.sample_url)
    return task.id, accepted, seen


def measure(fake: FakeBfl, task_ids: Sequence[str]) -> list[JobMeasure]:
    """Polls and detection delay of each task, from the fake's records."""
    measures = []
    for task_id in task_ids:
        task = fake.tasks[task_id]
        assert task.ready_at is not None and task.downloaded_at is not None, "a job did not download its image"
        measures.append(JobMeasure(polls=task.polls, delay=task.downloaded_at - task.ready_at))
    return measures


async def warm_up(client: BflClient, latency: float, tasks: int, wave: int) -> LatencyModel:
    """Complete ``tasks`` tasks in waves, recording latencies like the bot; each wave uses the plan so far."""
    model = LatencyModel()
    timeout = latency * 3 + 30
    while len(model.samples(MODEL)) < tasks:
        plan = model.plan(MODEL)
        count = min(wave, tasks - len(model.samples(MODEL)))
        done = await asyncio.gather(*(run_job(client, poll_timeout=timeout, plan=plan) for _ in range(count)))
        for _, accepted, seen in done:
            model.add(MODEL, seen - accepted)
    return model


async def polling_at(latency: float, *, runs: int, jobs: int, warmup: int, jitter: float, seed: int) -> LatencyResult:
    """Warm a model at one latency, then ``runs`` rounds of adaptive vs reference jobs side by side."""
    async with fake_bfl_session(seed=seed) as (fake, session):
        fake.default = Behaviour(run_seconds=latency, run_jitter=jitter)
        adaptive = make_client(fake, session)
        reference = make_client(fake, session)
        model = await warm_up(adaptive, latency, warmup, wave=max(1, warmup // 2))
        plan = model.plan(MODEL)
        result = LatencyResult(latency=latency, plan=plan)
        timeout = latency * 3 + 30
        for _ in range(runs):
            async with LoopLagProbe() as probe:
                # Interleaved, so neither strategy always submits first.
                done = await asyncio.gather(
                    *(
                        run_job(adaptive, poll_timeout=timeout, plan=plan)
                        if i % 2 == 0
                        else run_job(reference, poll_timeout=timeout, plan=REFERENCE_PLAN)
                        for i in range(2 * jobs)
                    )
                )
            ids = [task_id for task_id, _, _ in done]
            result.adaptive.append(StrategyRun(measure(fake, ids[0::2])))
            result.reference.append(StrategyRun(measure(fake, ids[1::2])))
            result.lag_p99_ms.append(probe.p99_ms())
        assert fake.schema_errors == [], fake.schema_errors
        assert max(fake.submit_statuses()) == 200, "a submit was refused (429?)"
    return result


async def polling_results(
    latencies: Sequence[float], *, runs: int, jobs: int, warmup: int, jitter: float = 0.05, seed: int = 1
) -> list[LatencyResult]:
    """The polling section's measurements, one latency after the other (2 × jobs must fit in 24 slots)."""
    if 2 * jobs > 24:
        raise ValueError("--jobs must be at most 12: both strategies together stay within BFL's 24 active tasks")
    return [
        await polling_at(latency, runs=runs, jobs=jobs, warmup=warmup, jitter=jitter, seed=seed + i)
        for i, latency in enumerate(latencies)
    ]


def format_polling(results: Sequence[LatencyResult], *, runs: int, jobs: int, jitter: float) -> list[str]:
    """The polling table."""
    lines = [
        f"Polling: adaptive plan vs fixed 0.5 s loop; {jobs}+{jobs} concurrent jobs, BFL latency ±{jitter:.0%}, "
        f"median of {runs} run(s)",
        "",
        f"{'latency':>7} | {'polls/job':^22} | {'mean delay (s)':^24} | {'p95 delay (s)':^15} | "
        f"{'plan (first/every/tail s)':^25} | target",
        f"{'':>7} | {'adapt':>6} {'0.5 s':>6} {'ratio':>7} | {'adapt':>7} {'0.5 s':>7} {'ratio':>7} | "
        f"{'adapt':>7} {'0.5 s':>7} | {'':25} |",
    ]
    for r in results:
        verdict = {None: "-", True: "ok", False: "MISSED"}[r.meets_targets()]
        plan = f"{r.plan.first_poll:.2f} / {r.plan.interval:.2f} / {r.plan.tail_start:.2f}"
        if r.plan == cold_plan():
            plan += " (cold)"
        polls = (r.median("adaptive", "polls_per_job"), r.median("reference", "polls_per_job"))
        mean = (r.median("adaptive", "mean_delay"), r.median("reference", "mean_delay"))
        p95 = (r.median("adaptive", "p95_delay"), r.median("reference", "p95_delay"))
        lines.append(
            f"{r.latency:>6g}s | {polls[0]:6.1f} {polls[1]:6.1f} {r.ratio('polls_per_job'):6.2f}x | "
            f"{mean[0]:7.3f} {mean[1]:7.3f} {r.ratio('mean_delay'):6.2f}x | {p95[0]:7.3f} {p95[1]:7.3f} | "
            f"{plan:25} | {verdict}"
        )
    lag = statistics.median(lag for r in results for lag in r.lag_p99_ms)
    worst = max(lag for r in results for lag in r.lag_p99_ms)
    lines += [
        "",
        f"event-loop lag p99 while jobs ran: median {lag:.1f} ms, worst {worst:.1f} ms "
        f"(target <= {TARGET_LAG_MS:g} ms; includes the in-process fake)",
        f"targets (L >= {TARGET_FROM_LATENCY:g} s): adaptive <= {TARGET_RATIO}x the polls and the mean delay",
    ]
    return lines


async def polling_section(args: argparse.Namespace) -> list[str]:
    """Adaptive poll plan vs the fixed 0.5 s loop."""
    results = await polling_results(
        args.latencies, runs=args.runs, jobs=args.jobs, warmup=args.warmup, jitter=args.jitter, seed=args.seed
    )
    return format_polling(results, runs=args.runs, jobs=args.jobs, jitter=args.jitter)


# -- main --------------------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[argparse.Namespace], Awaitable[list[str]]]] = {
    "polling": polling_section,
    "backlog": backlog_section,
    "rss": rss_section,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported")
    parser.add_argument(
        "--latencies",
        type=lambda text: [float(part) for part in text.split(",") if part.strip()],
        default=[1.0, 3.0, 5.0, 8.0, 15.0],
        help="BFL task latencies in seconds, comma-separated",
    )
    parser.add_argument("--jobs", type=int, default=12, help="concurrent jobs per strategy (at most 12)")
    parser.add_argument("--warmup", type=int, default=20, help="completed tasks that warm the latency model")
    parser.add_argument("--jitter", type=float, default=0.05, help="BFL latency spread, as a fraction (±)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the fake's latency jitter")
    parser.add_argument("--backlog-jobs", type=int, default=500, help="jobs admitted at once (backlog section)")
    parser.add_argument("--backlog-latency", type=float, default=1.0, help="BFL latency in the backlog section")
    parser.add_argument(
        "--sections",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=list(SECTIONS),
        help=f"comma-separated, from: {', '.join(SECTIONS)}",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    if args.runs < 1 or args.jobs < 1 or args.warmup < 1:
        parser.error("--runs, --jobs and --warmup must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    for index, name in enumerate(args.sections):
        if index:
            print()
        for line in asyncio.run(SECTIONS[name](args)):
            print(line)


if __name__ == "__main__":
    main()
