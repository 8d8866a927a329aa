"""Keeps benchmarks/ledger_cycles.py from rotting: its SQLite-beside-PostgreSQL section, tiny."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.ledger_cycles import create_scratch, drop_scratch, parse_args, run_processes


def test_two_processes_on_one_sqlite_file_run_every_cycle(tmp_path):
    """run_processes itself checks the ledger row count and the counters afterwards."""
    assert run_processes(str(tmp_path / "bench.sqlite3"), 40, 8, 5, 2) > 0


def test_two_processes_on_a_scratch_postgresql_database(postgres_server):
    scratch = asyncio.run(create_scratch(postgres_server.admin_url))
    try:
        assert run_processes(scratch, 40, 8, 5, 2) > 0
    finally:
        asyncio.run(drop_scratch(postgres_server.admin_url, scratch))


def test_command_line():
    args = parse_args(["--database", "postgresql://u@h/db", "--processes", "1,4", "--cycles", "10"])
    assert (args.database, args.processes, args.cycles) == ("postgresql://u@h/db", [1, 4], 10)
    with pytest.raises(SystemExit):
        parse_args(["--processes", "0"])


def test_a_benchmark_process_that_dies_fails_the_run_at_once(tmp_path):
    """A child that crashes (here: no members to spread the cycles over) is an error at once.

    Before, the parent waited 10 minutes for each dead child's result (CI: an API the benchmark calls moved).
    """
    import time

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="benchmark process"):
        run_processes(str(tmp_path / "bench.sqlite3"), 40, 8, 0, 2)
    assert time.monotonic() - started < 60
