"""Keeps benchmarks/pipeline.py from rotting: its polling section, tiny and fast."""

from __future__ import annotations

import pytest

from benchmarks.pipeline import SECTIONS, format_polling, parse_args, percentile, polling_results
from bot.bfl.polling import cold_plan


async def test_polling_section_runs_and_measures_every_job() -> None:
    """0.2 s tasks, 1 run, 3 jobs per strategy: every job is measured and the table renders."""
    results = await polling_results([0.2], runs=1, jobs=3, warmup=6)

    assert [r.latency for r in results] == [0.2]
    result = results[0]
    assert result.plan != cold_plan()  # 6 warm-up samples make the model warm
    for runs in (result.adaptive, result.reference):
        assert len(runs) == 1
        assert len(runs[0].jobs) == 3
        for job in runs[0].jobs:
            assert job.polls >= 1
            assert 0 <= job.delay < 1.0
    assert len(result.lag_p99_ms) == 1 and result.lag_p99_ms[0] >= 0
    assert result.meets_targets() is None  # below the latency the targets apply from

    lines = format_polling(results, runs=1, jobs=3, jitter=0.05)
    assert any(line.lstrip().startswith("0.2s") for line in lines)
    assert any("event-loop lag p99" in line for line in lines)


def test_command_line() -> None:
    """The quick-run flags parse; unknown sections and oversized job counts are refused."""
    args = parse_args(["--runs", "1", "--latencies", "1,3", "--jobs", "4"])
    assert (args.runs, args.latencies, args.jobs, args.sections) == (1, [1.0, 3.0], 4, list(SECTIONS))
    with pytest.raises(SystemExit):
        parse_args(["--sections", "nope"])
    with pytest.raises(SystemExit):
        parse_args(["--runs", "0"])


async def test_too_many_jobs_for_bfl_slots_is_refused() -> None:
    """Both strategies together must fit in BFL's 24 active tasks."""
    with pytest.raises(ValueError, match="at most 12"):
        await polling_results([0.2], runs=1, jobs=13, warmup=6)


def test_percentile() -> None:
    """Linear interpolation between order statistics."""
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN


async def test_backlog_section_runs_the_real_engine() -> None:
    """A small backlog through the real engine: every job delivered, BFL's cap never exceeded."""
    from benchmarks.backlog import run_backlog

    figures = await run_backlog(30, 0.2)
    assert figures["submits"] == 30
    assert figures["max_active"] <= 24
    assert figures["generating"] > 0
