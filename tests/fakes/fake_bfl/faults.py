"""Random faults for the fake BFL, reproducible from a seed: a ``behaviour_source`` for :class:`FakeBfl`.

``bfl.behaviour_source = RandomBflFaults(seed, BflFaultRates(...))`` gives every submit a
:class:`Behaviour`: a normal time-based task, or at most one fault drawn with the given
probabilities. The RNG of each submit is keyed by the seed, the request (model, prompt, seed) and
how many times that request was submitted before, so the same request meets the same fault
whatever order the submits of concurrent jobs arrive in, and a resubmit after a 429 draws again.
Set ``enabled = False`` to stop injecting (the tasks keep their drawn run times).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, fields, replace
from typing import Any

from tests.fakes.fake_bfl.behaviour import Behaviour


@dataclass(frozen=True)
class BflFaultRates:
    """The probability of each fault per submit (exclusive: at most one per submit; they must sum to ≤ 1)."""

    rate_limited: float = 0.05  # 429 with Retry-After: no task, the client may resubmit
    error_before: float = 0.02  # 500/502/503 BEFORE creating the task: nothing billed
    error_after: float = 0.02  # the task is created and billed, then a gateway 502/504
    not_found: float = 0.04  # "Task not found" for the first 1-2 polls of a task that exists
    poll_errors: float = 0.05  # 1-3 polls answered 500/503 with a {"detail"} body (transient)
    poll_error_status: float = 0.02  # a poll answered 503 with {"status": "Error"}: the task failed
    request_moderated: float = 0.02  # the prompt is refused (the task is billed, as created)
    content_moderated: float = 0.03  # the output is filtered (still billed, as BFL does)
    error_status: float = 0.02  # the task ends with status Error
    slow: float = 0.05  # the task takes slow_seconds instead of run_seconds

    run_seconds: tuple[float, float] = (0.3, 1.0)  # a normal task's run time (uniform)
    slow_seconds: tuple[float, float] = (3.0, 6.0)
    retry_after: str = "0.5"  # the 429's Retry-After header

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """The fault names, in the order they are drawn."""
        return tuple(f.name for f in fields(cls) if f.type == "float")

    def __post_init__(self) -> None:
        total = sum(getattr(self, kind) for kind in self.kinds())
        if not 0 <= total <= 1 or any(getattr(self, kind) < 0 for kind in self.kinds()):
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1 (they sum to {total})")

    @classmethod
    def only(cls, **rates: float) -> BflFaultRates:
        """No fault but the ones named: ``BflFaultRates.only(error_before=1.0)``; ``only()``: none at all."""
        return cls(**dict.fromkeys(cls.kinds(), 0.0) | rates)

    def scaled(self, factor: float) -> BflFaultRates:
        """The same mix with every rate multiplied by ``factor``."""
        return replace(self, **{kind: getattr(self, kind) * factor for kind in self.kinds()})


def request_key(model: str, body: Any) -> str:
    """What identifies one request across resubmits: its model, prompt and seed."""
    if not isinstance(body, dict):
        return f"{model}|{body!r}"
    return f"{model}|{body.get('prompt')}|{body.get('seed')}"


class RandomBflFaults:
    """A seeded ``behaviour_source``: normal tasks, with the faults of :class:`BflFaultRates` mixed in."""

    def __init__(self, seed: int, rates: BflFaultRates | None = None, *, enabled: bool = True) -> None:
        self.seed = seed
        self.rates = rates or BflFaultRates()
        self.enabled = enabled
        #: Faults injected so far, by kind (see :meth:`BflFaultRates.kinds`).
        self.injected: Counter[str] = Counter()
        #: The fault each request key met, per attempt (for explaining outcomes).
        self.log: list[tuple[str, int, str | None]] = []
        self._attempts: Counter[str] = Counter()

    def __call__(self, model: str, body: Any) -> Behaviour:
        key = request_key(model, body)
        attempt = self._attempts[key]
        self._attempts[key] += 1
        rng = random.Random(f"{self.seed}|{key}|{attempt}")
        base = Behaviour(run_seconds=rng.uniform(*self.rates.run_seconds), stages=("Pending", "Generating"))
        kind = self._draw(rng.random()) if self.enabled else None
        self.log.append((key, attempt, kind))
        if kind is None:
            return base
        self.injected[kind] += 1
        return self._behaviour(kind, rng, base)

    def _draw(self, x: float) -> str | None:
        for kind in self.rates.kinds():
            x -= getattr(self.rates, kind)
            if x < 0:
                return kind
        return None

    def _behaviour(self, kind: str, rng: random.Random, base: Behaviour) -> Behaviour:
        if kind == "rate_limited":
            return Behaviour(submit_status=429, retry_after=self.rates.retry_after)
        if kind == "error_before":
            return Behaviour(submit_status=rng.choice((500, 502, 503)))
        if kind == "error_after":
            return replace(base, submit_status_after_create=rng.choice((502, 504)))
        if kind == "not_found":
            return replace(base, not_found_polls=rng.randint(1, 2))
        if kind == "poll_errors":
            return replace(base, poll_errors=tuple(rng.choice((500, 503)) for _ in range(rng.randint(1, 3))))
        if kind == "poll_error_status":
            return replace(base, poll_errors=(503,), poll_error_body={"status": "Error"})
        if kind == "request_moderated":
            return replace(base, final_status="Request Moderated")
        if kind == "content_moderated":
            return replace(base, final_status="Content Moderated")
        if kind == "error_status":
            return replace(base, final_status="Error")
        assert kind == "slow", kind
        return replace(base, run_seconds=rng.uniform(*self.rates.slow_seconds))
