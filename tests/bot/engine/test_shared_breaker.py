"""The circuit breakers shared through the database: the replay (pure) and two processes' views (both backends)."""

from __future__ import annotations

import pytest

from bot.engine.breaker import BreakerState, CircuitBreakers
from bot.engine.shared_breaker import BreakerLog, SharedBreakers


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the replay: the pure logic over events ---------------------------------------------------------


def test_replay_opens_on_enough_failures_within_the_window_only():
    clock = Clock(100.0)
    breakers = CircuitBreakers(failures=3, window=60, cooldown=30, clock=clock)
    breakers.replay([("m", "failure", 0.0), ("m", "failure", 10.0), ("m", "failure", 75.0)])  # the first is stale
    assert breakers.state("m") is BreakerState.CLOSED
    breakers.replay([("m", "failure", 80.0), ("m", "failure", 85.0), ("m", "failure", 90.0), ("x", "failure", 90.0)])
    assert breakers.state("m") is BreakerState.OPEN and breakers.retry_in("m") == pytest.approx(20.0)
    assert breakers.state("x") is BreakerState.CLOSED and not breakers.allow("m")


def test_replay_a_trials_failure_opens_again_and_a_success_closes():
    clock = Clock(160.0)
    breakers = CircuitBreakers(failures=2, window=60, cooldown=30, clock=clock)
    opened = [("m", "failure", 100.0), ("m", "failure", 101.0)]
    breakers.replay([*opened, ("m", "failure", 120.0)])  # a straggler inside the cool-down changes nothing
    assert breakers.state("m") is BreakerState.HALF_OPEN  # 59 s after it opened
    breakers.replay([*opened, ("m", "failure", 150.0)])  # past the cool-down: the trial failed
    assert breakers.state("m") is BreakerState.OPEN and breakers.retry_in("m") == pytest.approx(20.0)
    breakers.replay([*opened, ("m", "failure", 150.0), ("m", "success", 190.0)])
    assert breakers.state("m") is BreakerState.CLOSED and breakers.statuses() == []


def test_replay_keeps_the_trial_this_process_holds():
    clock = Clock(200.0)
    breakers = CircuitBreakers(failures=1, window=60, cooldown=30, clock=clock)
    events = [("m", "failure", 100.0)]
    breakers.replay(events)
    assert breakers.allow("m")  # the half-open trial
    breakers.replay(events)  # another process's news arrives while the trial runs
    assert not breakers.allow("m")  # still only one trial here
    breakers.released("m")
    assert breakers.allow("m")


# -- two processes on one database ------------------------------------------------------------------


def process(db, clock, **options):
    return SharedBreakers(BreakerLog(db), failures=2, window=60, cooldown=30, clock=clock, **options)


async def test_failures_seen_by_one_process_open_the_breaker_in_another(db):
    clock = Clock()
    worker, gateway = process(db, clock), process(db, clock)
    await gateway.sync()  # the gateway's view is fresh: it reads again only after REFRESH_SECONDS
    worker.failed("flux-pro-1.1")
    worker.failed("flux-pro-1.1")
    assert worker.state("flux-pro-1.1") is BreakerState.OPEN  # at once, locally
    await worker.sync()  # the worker shares its news
    assert await db.fetch_value("SELECT COUNT(*) FROM breaker_events WHERE kind = 'failure'") == 2
    await gateway.sync()
    assert gateway.allow("flux-pro-1.1")  # cached: admission does not read the database every time
    clock.now += 2.0
    await gateway.sync()
    assert not gateway.allow("flux-pro-1.1") and gateway.retry_in("flux-pro-1.1") == pytest.approx(28.0)
    assert [(s.model, s.state) for s in gateway.statuses()] == [("flux-pro-1.1", BreakerState.OPEN)]
    await worker.sync(force=True)
    await gateway.sync(force=True)
    assert await db.fetch_value("SELECT COUNT(*) FROM breaker_events") == 2  # reading never writes them again

    clock.now += 28.0  # the cool-down is over: the gateway lets a trial through; a worker's success closes it
    await gateway.sync()
    assert gateway.allow("flux-pro-1.1") and not gateway.allow("flux-pro-1.1")
    other = process(db, clock)
    await other.sync()
    other.succeeded("flux-pro-1.1")
    await other.sync()
    await gateway.sync(force=True)
    assert gateway.state("flux-pro-1.1") is BreakerState.CLOSED and gateway.allow("flux-pro-1.1")


async def test_a_success_is_written_only_where_it_can_close_a_breaker_and_old_events_are_pruned(db):
    clock = Clock()
    breakers = process(db, clock)
    breakers.succeeded("flux-dev")  # nobody saw flux-dev fail: nothing to share
    await breakers.sync()
    assert await db.fetch_value("SELECT COUNT(*) FROM breaker_events") == 0
    breakers.failed("flux-dev")
    breakers.succeeded("flux-dev")
    await breakers.sync()
    assert await db.fetch_value("SELECT COUNT(*) FROM breaker_events") == 2
    clock.now += 3600
    later = process(db, clock)
    await later.sync()
    assert await db.fetch_value("SELECT COUNT(*) FROM breaker_events") == 0


async def test_events_not_written_are_kept_for_the_next_sync(db, monkeypatch):
    clock = Clock()
    breakers = process(db, clock)
    breakers.failed("m")

    async def down(events):
        raise ConnectionError("the database is out of reach")

    log = breakers._events
    real = log.record
    monkeypatch.setattr(log, "record", down)
    with pytest.raises(ConnectionError):
        await breakers.sync()
    assert breakers.state("m") is BreakerState.CLOSED  # the local count stands
    monkeypatch.setattr(log, "record", real)
    breakers.failed("m")
    await breakers.sync()
    assert await db.fetch_value("SELECT COUNT(*) FROM breaker_events") == 2
    assert breakers.state("m") is BreakerState.OPEN
