"""Keeps benchmarks/queue_positions.py from rotting (tiny sizes)."""

from __future__ import annotations

from benchmarks.queue_positions import main, snapshot
from bot.engine.fairness import positions


def test_it_runs_and_places_every_job(capsys):
    main(["--sizes", "50", "--repeat", "1"])
    assert capsys.readouterr().out.count("queued") == 3
    assert sorted(positions(snapshot(50, 5, 20)).values()) == list(range(1, 51))
