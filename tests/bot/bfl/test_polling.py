"""PollPlan and LatencyModel: pure logic, no I/O."""

from __future__ import annotations

import itertools
import math

import pytest

from bot.bfl.polling import LatencyModel, PollPlan, cold_plan, warm_plan


def poll_times(plan: PollPlan, until: float, *, start: float = 0.0) -> list[float]:
    """The moments (seconds since acceptance) a client following ``plan`` would poll, up to ``until``."""
    times: list[float] = []
    now = start
    while True:
        now += plan.delay(now, len(times))
        if now > until:
            return times
        times.append(now)


def detection_delays(plan: PollPlan, finishes: list[float]) -> list[float]:
    """For each finish time, how long until the next poll at or after it."""
    times = poll_times(plan, max(finishes) + 10)
    return [min(t for t in times if t >= finish) - finish for finish in finishes]


# -- LatencyModel ----------------------------------------------------------------------------------


def test_latency_model_keeps_a_rolling_window_per_model() -> None:
    """Only the newest ``window`` samples are kept, per model, oldest first."""
    model = LatencyModel(window=3)
    for seconds in (1, 2, 3, 4):
        model.add("flux-2-pro", seconds)
    model.add("flux-dev", 9.5)
    assert model.samples("flux-2-pro") == [2.0, 3.0, 4.0]
    assert model.samples("flux-dev") == [9.5]
    assert model.samples("never-seen") == []


def test_latency_model_restores_and_snapshots_samples() -> None:
    """Constructed from saved samples (trimmed to the window), snapshot() gives them back."""
    saved = {"flux-2-pro": [float(i) for i in range(60)], "flux-dev": [3.0, 4.0]}
    model = LatencyModel(saved)
    assert model.samples("flux-2-pro") == [float(i) for i in range(10, 60)]  # default window 50
    assert LatencyModel(model.snapshot()).snapshot() == model.snapshot()
    assert model.snapshot()["flux-dev"] == [3.0, 4.0]


def test_quantile_interpolates_linearly() -> None:
    """Quantiles interpolate between order statistics; None without samples."""
    model = LatencyModel({"m": [4.0, 1.0, 3.0, 2.0, 5.0]})
    assert model.quantile("m", 0.0) == 1.0
    assert model.quantile("m", 0.5) == 3.0
    assert model.quantile("m", 1.0) == 5.0
    assert model.quantile("m", 0.05) == pytest.approx(1.2)
    assert model.quantile("m", 0.95) == pytest.approx(4.8)
    assert model.quantile("other", 0.5) is None
    with pytest.raises(ValueError):
        model.quantile("m", 1.5)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_latency_model_rejects_impossible_latencies(bad: float) -> None:
    """A negative or non-finite latency is a bug upstream, not a sample."""
    with pytest.raises(ValueError):
        LatencyModel().add("m", bad)


# -- cold plan -------------------------------------------------------------------------------------


def test_cold_model_polls_every_half_second_then_backs_off_to_3s() -> None:
    """Fewer than 5 samples: 0.5 s polls for 10 s, then growing intervals capped at 3 s."""
    model = LatencyModel({"m": [2.0, 2.1, 2.2, 2.3]})
    assert not model.is_warm("m")
    plan = model.plan("m")
    assert plan == cold_plan()
    times = poll_times(plan, 60)
    assert times[:3] == pytest.approx([0.5, 1.0, 1.5])
    early = [b - a for a, b in itertools.pairwise(times) if b <= 10]
    assert early == pytest.approx([0.5] * len(early))
    late = [b - a for a, b in itertools.pairwise(times) if a >= 10]
    assert all(b >= a for a, b in itertools.pairwise(late))  # never speeds up again
    assert max(late) == pytest.approx(3.0)
    assert 2.0 <= late[-1] <= 3.0
    model.add("m", 2.4)
    assert model.is_warm("m")
    assert model.plan("m") != cold_plan()


# -- warm plan -------------------------------------------------------------------------------------


def warm_model(center: float, spread: float = 0.05, n: int = 20) -> LatencyModel:
    """n latencies spread evenly over center·(1 ± spread)."""
    return LatencyModel({"m": [center * (1 - spread + 2 * spread * i / (n - 1)) for i in range(n)]})


@pytest.mark.parametrize("center", [1.0, 3.0, 8.0, 15.0])
def test_warm_plan_never_polls_before_the_early_quantile(center: float) -> None:
    """The first poll comes at q05 minus one interval or 5 %, whichever is more, and no earlier."""
    model = warm_model(center)
    plan = model.plan("m")
    q05 = model.quantile("m", 0.05)
    assert q05 is not None
    assert plan.first_poll == pytest.approx(q05 - max(plan.interval, 0.05 * q05))
    assert plan.delay(0.0, 0) == pytest.approx(plan.first_poll)
    assert plan.delay(plan.first_poll * 0.5, 0) == pytest.approx(plan.first_poll * 0.5)
    assert poll_times(plan, 100)[0] == pytest.approx(plan.first_poll)
    assert plan.first_poll >= q05 * 0.95 - plan.interval - 1e-9


@pytest.mark.parametrize("center", [3.0, 5.0, 8.0, 15.0])
def test_warm_plan_is_cheap_and_quick_where_tasks_finish(center: float) -> None:
    """Finishes spread over the window: mean detection delay well under 0.15 s, far fewer polls than 0.5 s."""
    model = warm_model(center)
    plan = model.plan("m")
    finishes = [center * (0.95 + 0.1 * i / 99) for i in range(100)]
    delays = detection_delays(plan, finishes)
    assert sum(delays) / len(delays) < 0.11
    assert max(delays) <= plan.interval + 1e-9
    polls = [len([t for t in poll_times(plan, f + 10) if t < f]) + 1 for f in finishes]
    reference_polls = [math.floor(f / 0.5) + 2 for f in finishes]  # at 0, 0.5, ... up to and past f
    assert sum(polls) / len(polls) <= 0.6 * sum(reference_polls) / len(reference_polls)


def test_warm_plan_polls_densely_in_the_window_and_backs_off_in_the_tail() -> None:
    """Constant intervals from q05 to q95, then geometric growth capped at max_interval."""
    model = warm_model(10.0)
    plan = model.plan("m")
    q95 = model.quantile("m", 0.95)
    assert q95 is not None
    assert plan.tail_start == pytest.approx(q95)
    times = poll_times(plan, 120)
    dense = [b - a for a, b in itertools.pairwise(times) if b <= q95]
    assert dense and all(gap == pytest.approx(plan.interval) for gap in dense)
    assert 0.1 <= plan.interval <= 0.2
    tail = [b - a for a, b in itertools.pairwise(times) if a >= q95 + 1]
    assert all(b == pytest.approx(a * 1.5) or b == pytest.approx(3.0) for a, b in itertools.pairwise(tail))
    assert tail[-1] == pytest.approx(3.0)
    assert max(tail) == pytest.approx(3.0)


def test_identical_samples_give_the_tightest_plan() -> None:
    """A model that always takes exactly 3 s: first poll at 2.85 s, every 0.1 s, tail from 3 s;
    a 1.5 s one polls on a finer grid (every 0.05 s), its detection delay being a bigger share of it."""
    plan = LatencyModel({"m": [3.0] * 10}).plan("m")
    assert (plan.first_poll, plan.interval, plan.tail_start) == (pytest.approx(2.85), 0.1, 3.0)
    short = LatencyModel({"m": [1.5] * 10}).plan("m")
    assert (short.first_poll, short.interval, short.tail_start) == (pytest.approx(1.425), 0.05, 1.5)


def test_dense_polls_stay_on_their_grid_when_polls_take_time() -> None:
    """A poll that took 12 ms does not push the next one later; an overrun skips to the next slot."""
    plan = PollPlan(first_poll=1.0, interval=0.2, tail_start=3.0)
    assert plan.delay(1.0, 1) == pytest.approx(0.2)
    assert plan.delay(1.212, 2) == pytest.approx(0.188)  # next poll at 1.4, not 1.412
    assert plan.delay(1.39, 3) == pytest.approx(0.21)  # 1.4 is too close: 1.6
    assert plan.delay(2.95, 9) == pytest.approx(0.25)  # the grid runs on to 3.2, past tail_start


def test_very_wide_window_caps_the_polls_in_it() -> None:
    """A window of 60 s is not polled every 0.2 s: about 40 polls across it, 1 s apart at most."""
    plan = warm_plan(5.0, 65.0)
    assert plan.interval == pytest.approx(1.0)
    assert 50 <= len([t for t in poll_times(plan, 65) if t >= plan.first_poll]) <= 62
    medium = warm_plan(5.0, 17.0)
    assert medium.interval == pytest.approx(12 / 40)


def test_resumed_job_past_the_quiet_phase_polls_at_once() -> None:
    """polls=0 and already past first_poll: no wait; later polls follow the phase they are in."""
    plan = PollPlan(first_poll=2.0, interval=0.2, tail_start=4.0)
    assert plan.delay(30.0, 0) == 0.0
    assert plan.delay(3.0, 0) == 0.0
    assert plan.delay(1.5, 0) == pytest.approx(0.5)
    assert plan.delay(3.0, 5) == pytest.approx(0.2)
    assert plan.delay(30.0, 5) == pytest.approx(3.0)
    assert plan.delay(-1.0, 0) == pytest.approx(2.0)  # a clock that stepped back counts as 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_poll": -1.0, "interval": 0.1, "tail_start": 1.0},
        {"first_poll": 0.0, "interval": 0.0, "tail_start": 1.0},
        {"first_poll": 0.0, "interval": 5.0, "tail_start": 1.0, "max_interval": 3.0},
        {"first_poll": math.nan, "interval": 0.1, "tail_start": 1.0},
        {"first_poll": 0.0, "interval": 0.1, "tail_start": 1.0, "growth": -1.0},
    ],
)
def test_invalid_plans_are_refused(kwargs: dict[str, float]) -> None:
    """Plans that would poll in a hot loop, never, or at NaN are refused."""
    with pytest.raises(ValueError):
        PollPlan(**kwargs)
