"""Keeps benchmarks/history.py from rotting: the generator is consistent, the probe fixed, the run works tiny."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.history import OPERATIONS, main, parse_args
from benchmarks.history_data import Shape, build
from benchmarks.ledger_cycles import create_scratch, drop_scratch
from bot.billing.ledger import Ledger
from bot.storage.database import Database

TINY = Shape(servers=20, members=400, probe_jobs=120, probe_members=5)
PROBE_ROWS = (
    "SELECT id, user_id, status, model, prompt, created_at, erased_at, cost_micros FROM jobs WHERE guild_id = ?"
    " ORDER BY id",
    "SELECT kind, job_id, user_id, server_micros, member_micros, member_images, day, at FROM ledger"
    " WHERE guild_id = ? ORDER BY job_id, kind, at",
    "SELECT e.job_id, e.status, e.at FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.guild_id = ?"
    " ORDER BY e.job_id, e.at, e.status",
)


async def _probe_and_check(target: str, size: int) -> list[list[tuple]]:
    await build(target, size, TINY)
    db = await Database.at(target, pool_size=1)
    try:
        assert await db.fetch_value("SELECT COUNT(*) FROM jobs") == size
        assert await Ledger(db).verify_counters() == []  # the derived tables agree with the rows
        return [[tuple(r) for r in await db.fetch_all(sql, (TINY.probe_guild,))] for sql in PROBE_ROWS]
    finally:
        await db.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_probe_server_is_the_same_whatever_the_size(backend, tmp_path, request):
    async def run() -> list[list[list[tuple]]]:
        probes = []
        for size in (500, 2_000):
            if backend == "sqlite":
                probes.append(await _probe_and_check(str(tmp_path / f"{size}.sqlite3"), size))
                continue
            admin = request.getfixturevalue("postgres_server").admin_url
            scratch = await create_scratch(admin)
            try:
                probes.append(await _probe_and_check(scratch, size))
            finally:
                await drop_scratch(admin, scratch)
        return probes

    small, large = asyncio.run(run())
    assert small == large and all(small)


def test_the_benchmark_runs_at_10k_and_100k_on_both_backends(postgres_server):
    """CI runs the benchmark at the two smaller sizes (a small probe server: the sizes are the history's)."""
    argv = ["--sizes", "10k,100k", "--runs", "1", "--database", postgres_server.admin_url]
    results = asyncio.run(main(argv, shape=TINY))
    for size in ("10k", "100k"):
        for backend in ("sqlite", "postgresql"):
            assert set(results[size][backend]) == set(OPERATIONS)
            assert all(ms > 0 for ms in results[size][backend].values())


def test_command_line():
    args = parse_args(["--sizes", "10k,1M,2500", "--database", "postgresql://u@h/db", "--runs", "3"])
    assert (args.sizes, args.database, args.runs) == (["10k", "1M", "2500"], "postgresql://u@h/db", 3)
    with pytest.raises(SystemExit):
        parse_args(["--sizes", "ten"])
