"""The randomized fault soak (issue 20) in CI: fixed seeds, both databases, two real bot processes.

Each case runs ``benchmarks.soak`` (also ``python -m benchmarks.soak --seed N``): a gateway and a
worker, at least 300 jobs with BFL, Discord and database faults, pauses, cancels and SIGKILLs, then
the invariants at quiescence. The report is printed (``-s`` or a failure shows it); logs are kept
in the test's ``tmp_path``.

The money and the jobs' lives are a gate: every job terminal, no reservation open, counters equal to
the ledger, the ledger equal to what BFL billed, `unknown` only when the POST may have created a task
(a process that died between recording that its POST is leaving and recording BFL's answer counts
as that),
nothing submitted twice, no posted image replaced, nothing claimed while its server is paused, clean
stops, and every request got exactly one final message saying truthfully whether the member paid
(gated since the "told" claim, the read-back of a message through the bot's token and of a dropped
deferral; every invariant held in 24 runs, seeds 1-6 on both databases, twice; see the README).
"""

from __future__ import annotations

import pytest

from benchmarks.soak import SoakOptions, run_soak


class InvariantsBroken(AssertionError):
    """The soak ran as it should and an invariant of the engine did not hold."""


CASES = [(1, "sqlite"), (1, "postgresql")]  # 50-70 s for both on the 2-core development machine


@pytest.fixture
def database_url(request, backend: str) -> str | None:
    """A fresh PostgreSQL database for the PostgreSQL case (the soak makes its SQLite file itself)."""
    return request.getfixturevalue("pg_url") if backend == "postgresql" else None


@pytest.mark.subprocess
@pytest.mark.parametrize(("seed", "backend"), CASES, ids=[f"seed{s}-{b}" for s, b in CASES])
async def test_randomized_fault_soak(seed: int, backend: str, database_url: str | None, tmp_path) -> None:
    report = await run_soak(SoakOptions(seed=seed, backend=backend), tmp_path, database_url=database_url)
    print(report.table())  # noqa: T201 - the summary table is the point of the soak
    assert sum(report.jobs.values()) >= 300
    assert report.bfl_faults and report.discord_faults and report.db_faults and report.process_faults
    if not all(inv.ok for inv in report.invariants):
        raise InvariantsBroken(report.table())
