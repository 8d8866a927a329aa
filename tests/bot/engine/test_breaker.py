"""The per-model circuit breaker: opens on repeated provider errors, refuses at once, half-opens, closes."""

import pytest

from bot.bfl.errors import (
    BflAuthError,
    BflModerated,
    BflServerError,
    BflSubmitOutcomeUnknown,
    BflTaskFailed,
    BflTaskNotFound,
    BflTimeout,
)
from bot.engine.breaker import BreakerState, CircuitBreakers, is_provider_error
from bot.engine.engine import ProviderTrouble
from bot.engine.states import JobStatus
from tests.bot.engine.conftest import request, who
from tests.fakes.fake_bfl import Behaviour


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_opens_after_repeated_failures_within_the_window_only():
    clock = Clock()
    breakers = CircuitBreakers(failures=3, window=60, cooldown=30, clock=clock)
    breakers.failed("m")
    clock.now += 61  # the first one falls out of the window
    breakers.failed("m")
    breakers.failed("m")
    assert breakers.allow("m") and breakers.state("m") is BreakerState.CLOSED
    breakers.failed("m")
    assert breakers.state("m") is BreakerState.OPEN and not breakers.allow("m")
    assert breakers.allow("other")  # per model
    assert breakers.retry_in("m") == pytest.approx(30)


def test_half_open_lets_one_trial_through_and_its_outcome_decides():
    clock = Clock()
    breakers = CircuitBreakers(failures=1, window=60, cooldown=30, clock=clock)
    breakers.failed("m")
    clock.now += 30
    assert breakers.state("m") is BreakerState.HALF_OPEN
    assert breakers.allow("m")  # the trial
    assert not breakers.allow("m")  # only one at a time
    breakers.failed("m")  # the trial failed: another cool-down
    assert breakers.state("m") is BreakerState.OPEN and not breakers.allow("m")
    clock.now += 30
    assert breakers.allow("m")
    breakers.released("m")  # the trial never reached BFL (e.g. the member was over budget)
    assert breakers.allow("m")
    breakers.succeeded("m")
    assert breakers.state("m") is BreakerState.CLOSED and breakers.open_models() == {}


def test_only_provider_trouble_counts():
    assert is_provider_error(BflServerError("x", status=502))
    assert is_provider_error(BflSubmitOutcomeUnknown("x", endpoint="flux-dev"))
    assert is_provider_error(BflTimeout("x"))
    assert is_provider_error(BflTaskFailed("x", status="Error"))  # an accepted task BFL could not make
    assert is_provider_error(BflTaskFailed("x", status="HTTP 503"))  # its polls kept failing
    assert not is_provider_error(BflAuthError("x", status=403))
    assert not is_provider_error(BflModerated("x", stage="request", reasons=[]))
    assert not is_provider_error(BflModerated("x", stage="content", reasons=[]))
    assert not is_provider_error(BflTaskNotFound("x"))


async def test_a_failing_model_is_refused_at_once_without_a_reservation_then_recovers(make_engine, fake_bfl, db):
    clock = Clock()
    breakers = CircuitBreakers(failures=3, window=60, cooldown=30, clock=clock)
    h = await make_engine(engine_options={"breakers": breakers})
    fake_bfl.script(Behaviour(submit_status_after_create=502), times=3)
    for job_id in (1, 2, 3):
        await h.generate(job_id, req=request(seed=job_id))
    assert [(await h.store.get(j)).status for j in (1, 2, 3)] == [JobStatus.UNKNOWN] * 3
    rows_before = await db.fetch_value("SELECT COUNT(*) FROM ledger")

    with pytest.raises(ProviderTrouble, match="having trouble right now"):
        await h.engine.admit(request(seed=4), who(4), acked=True)
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == rows_before  # nothing reserved
    assert await h.store.get(4) is None and len(fake_bfl.submits) == 3  # nothing queued or sent
    other = await h.generate(5, req=request(seed=5, model="flux-dev"))  # other models are unaffected
    assert other.cost_micros > 0

    clock.now += 30  # the cool-down is over: one trial goes through, and its success closes the breaker
    result = await h.generate(6, req=request(seed=6))
    assert result.cost_micros == 40_000
    assert h.engine.breakers.state("flux-pro-1.1") is BreakerState.CLOSED
    await h.generate(7, req=request(seed=7))


def test_the_status_line_names_models_the_breaker_refuses():
    from bot.ops.status import BotStatus

    line = BotStatus(None, 0, 0, None, 5.0, troubled_models=("flux-3-image",)).line()
    assert "refusing (BFL keeps failing): flux-3-image" in line
    assert "refusing" not in BotStatus(None, 0, 0, None, 5.0).line()


async def test_metrics_show_which_models_the_breaker_refuses(db):
    from bot.billing.ledger import Ledger
    from bot.config import Settings
    from bot.engine.store import JobStore
    from bot.ops.metrics import Metrics

    metrics = Metrics()
    settings = Settings(_env_file=None, discord_token="x" * 10, bfl_api_key="y" * 10)
    await metrics.refresh(JobStore(db, Ledger(db)), Ledger(db), settings, ["flux-3-image"])
    assert b'fluxcord_model_breaker_open{model="flux-3-image"} 1.0' in metrics.render()
    await metrics.refresh(JobStore(db, Ledger(db)), Ledger(db), settings, [])
    assert b'model="flux-3-image"' not in metrics.render()
