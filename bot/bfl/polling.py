"""Adaptive polling: when to poll a BFL task, learned from how long the model's tasks took so far.

Pure logic, no I/O and no clock: :class:`LatencyModel` keeps the recent latencies per model (seconds
from the submit answer to the poll that saw ``Ready``), and :meth:`LatencyModel.plan` turns them
into a :class:`PollPlan`, which :meth:`bot.bfl.client.BflClient.wait_for_result` asks before every
poll how long to wait.

A plan has three phases, in seconds since BFL accepted the task:

1. **Quiet** until ``first_poll``: a warm model almost never finishes before its 5 % quantile, so
   polling earlier only costs requests. (A resumed job that is already past it polls at once.)
   The recorded latencies run late, though: each ends at the poll that saw ``Ready``, up to one poll
   interval after the task finished, and that interval may have been the cold plan's 0.5–3 s. So
   the quiet phase ends one dense interval or 5 % of the quantile before it, whichever is more;
   tasks found ``Ready`` at the first poll then record an earlier latency, and the plan follows.
2. **Dense** from ``first_poll`` to ``tail_start`` (the 95 % quantile): every ``interval`` seconds,
   on a grid anchored at ``first_poll`` (the time a poll takes is not added to each step), where
   the task most likely finishes. If a task's finish time is spread evenly over a window of
   ``W`` seconds, polling every ``Δ`` costs about ``W / 2Δ`` polls and ``Δ / 2`` of detection delay;
   minimising ``polls + λ·delay`` gives ``Δ = √(W / λ)``. With λ = 50 polls per second of delay,
   clamped to 0.1–0.2 s, the mean detection delay stays at or under ~0.1 s. A very wide window (over
   8 s) would need more than 40 polls at 0.2 s; there the interval grows to ``W / 40`` (at most 1 s).
3. **Tail** past ``tail_start``: the interval grows with the time spent in the tail
   (``growth`` × seconds past it), i.e. geometrically, by ``1 + growth`` per poll, up to
   ``max_interval``.

A cold model (fewer than ``min_samples`` latencies) gets :func:`cold_plan`: a poll every 0.5 s for
10 s (BFL's own examples poll every 0.5 s and most tasks finish within 10 s), then backing off to 3 s.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_WINDOW = 50  # latencies kept per model
DEFAULT_MIN_SAMPLES = 5  # below this a model is "cold"
EARLY_QUANTILE = 0.05
LATE_QUANTILE = 0.95
POLLS_PER_SECOND_OF_DELAY = 50.0  # λ: how many polls one second of detection delay is worth
EARLY_MARGIN = 0.05  # the quiet phase ends at least this fraction before the early quantile
MIN_DENSE_INTERVAL = 0.1
# Short tasks get a finer grid: below ~3 s, a 0.1 s grid's detection delay is a visible share of the
# whole job (and of the time a BFL slot is held), while the extra polls stay few.
SHORT_TASK_MIN_INTERVAL = 0.05
SHORT_TASK_INTERVAL_FRACTION = 1 / 30  # the floor is early / 30 between those two bounds
MAX_DENSE_INTERVAL = 0.2
MAX_WINDOW_POLLS = 40  # per task across the dense window, before the interval stretches
MAX_STRETCHED_INTERVAL = 1.0
TAIL_MAX_INTERVAL = 3.0
TAIL_GROWTH = 0.5


@dataclass(frozen=True)
class PollPlan:
    """When to poll one task; all times in seconds since BFL accepted it (see the module docstring).

    ``delay(elapsed, polls)`` is the wait before the next poll, ``elapsed`` seconds after acceptance
    with ``polls`` polls already made (0: the wait before the first one).
    """

    first_poll: float
    interval: float
    tail_start: float
    max_interval: float = TAIL_MAX_INTERVAL
    growth: float = TAIL_GROWTH

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.first_poll, self.interval, self.tail_start, self.max_interval)):
            raise ValueError("poll plan times must be finite")
        if self.first_poll < 0 or self.interval <= 0 or self.max_interval < self.interval:
            raise ValueError("need first_poll >= 0 and 0 < interval <= max_interval")
        if self.growth < 0:
            raise ValueError("growth must be >= 0")

    def delay(self, elapsed: float, polls: int) -> float:
        """Seconds to wait before the next poll."""
        elapsed = max(0.0, elapsed)
        if elapsed < self.first_poll:
            return self.first_poll - elapsed
        if polls == 0:
            return 0.0  # already past the quiet phase (a job resumed late): look at once
        if elapsed < self.tail_start:
            # Back onto the grid first_poll + k·interval; never closer than half an interval.
            wait = self.interval - (elapsed - self.first_poll) % self.interval
            return wait if wait >= self.interval / 2 else wait + self.interval
        return min(self.max_interval, max(self.interval, self.growth * (elapsed - self.tail_start)))


def cold_plan() -> PollPlan:
    """The plan for a model without enough history: every 0.5 s for 10 s, then back off to 3 s."""
    return PollPlan(first_poll=0.5, interval=0.5, tail_start=10.0)


def warm_plan(early: float, late: float) -> PollPlan:
    """The plan for a model whose tasks usually finish between ``early`` and ``late`` seconds."""
    if not (math.isfinite(early) and math.isfinite(late)) or early < 0 or late < early:
        raise ValueError("need 0 <= early <= late")
    width = late - early
    floor = max(SHORT_TASK_MIN_INTERVAL, min(MIN_DENSE_INTERVAL, early * SHORT_TASK_INTERVAL_FRACTION))
    interval = min(MAX_DENSE_INTERVAL, max(floor, math.sqrt(width / POLLS_PER_SECOND_OF_DELAY)))
    interval = max(interval, min(MAX_STRETCHED_INTERVAL, width / MAX_WINDOW_POLLS))
    margin = max(interval, EARLY_MARGIN * early)  # recorded latencies run late: see the module docstring
    return PollPlan(first_poll=max(0.0, early - margin), interval=interval, tail_start=late)


class LatencyModel:
    """A rolling window of observed task latencies per model, and the poll plans they imply.

    ``LatencyModel({"flux-2-pro": [4.1, 3.9, ...]})`` restores saved samples (oldest first; only
    the newest ``window`` are kept). :meth:`snapshot` gives them back for storing.
    """

    def __init__(
        self,
        samples: Mapping[str, Iterable[float]] | None = None,
        *,
        window: int = DEFAULT_WINDOW,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> None:
        if window < 1 or min_samples < 1:
            raise ValueError("window and min_samples must be >= 1")
        self.window = window
        self.min_samples = min_samples
        self._samples: dict[str, deque[float]] = {}
        self.restore(samples or {})

    def restore(self, samples: Mapping[str, Iterable[float]]) -> None:
        """Replace every model's samples with ``samples`` (as saved by :meth:`snapshot`, oldest first)."""
        self._samples.clear()
        for model, values in samples.items():
            for value in values:
                self.add(model, value)

    def add(self, model: str, seconds: float) -> None:
        """Record that a task of ``model`` took ``seconds`` from the submit answer to ``Ready``."""
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a latency must be a finite number of seconds >= 0, not {seconds!r}")
        self._samples.setdefault(model, deque(maxlen=self.window)).append(seconds)

    def samples(self, model: str) -> list[float]:
        """The kept latencies of ``model``, oldest first."""
        return list(self._samples.get(model, ()))

    def snapshot(self) -> dict[str, list[float]]:
        """Every model's kept latencies, oldest first (what the constructor accepts)."""
        return {model: list(values) for model, values in self._samples.items()}

    def quantile(self, model: str, q: float) -> float | None:
        """The ``q`` quantile (0–1, linear interpolation) of ``model``'s latencies; None without any."""
        if not 0 <= q <= 1:
            raise ValueError("q must be in [0, 1]")
        values = sorted(self._samples.get(model, ()))
        if not values:
            return None
        position = q * (len(values) - 1)
        low = math.floor(position)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (position - low)

    def is_warm(self, model: str) -> bool:
        """True once ``model`` has at least ``min_samples`` latencies."""
        return len(self._samples.get(model, ())) >= self.min_samples

    def plan(self, model: str) -> PollPlan:
        """The poll plan for the next task of ``model``."""
        if not self.is_warm(model):
            return cold_plan()
        early = self.quantile(model, EARLY_QUANTILE)
        late = self.quantile(model, LATE_QUANTILE)
        assert early is not None and late is not None
        return warm_plan(early, late)
