"""Faults of the fake Discord: scripted per request, or drawn at random from a seed.

Every REST call passes through :meth:`FaultPlan.take` before its handler. A :class:`Fault` can be

* ``rate_limited``: HTTP 429 with ``retry_after``; without ``via`` it lacks the proxy header
  (``Via``) that discord.py requires before it honours a 429, so discord.py raises at once (what a
  Cloudflare ban or a proxy in between looks like); with ``via`` discord.py waits and retries;
* ``server_error``: 500/502/503/504 (discord.py retries 500/502/504 on REST routes and every 5xx on
  webhooks, after 1, 3, 5 … s, and gives up after five tries);
* ``dead_token``: on interaction webhook routes only, the interaction's token dies for good: this
  and every later webhook call answers 401/50027 or 404/10015, as for a token past its 15 minutes;
* ``slow``: the answer comes ``seconds`` later (or, :meth:`Fault.held`, once the test sets an event:
  the request takes effect only then, so a test orders what the bot does meanwhile);
* ``refused`` (scripted only): a 4xx error, by default 403/50013 Missing Permissions, though the
  bot had the permission when it asked (Discord's rules are not all visible to a bot);
* ``disconnect``: the connection drops without an answer, before the request took effect or, with
  ``after``, once it did (the bot cannot tell which: its answer is lost).

``fake.faults.script("create_message", Fault.rate_limited(), times=2)`` queues faults for the next
matching calls of one operation; ``fake.faults.source = RandomDiscordFaults(seed, DiscordFaultRates())``
draws the rest. The draw of a call is keyed by the seed, the operation, the interaction token (or
the path) and how many calls that key made before, so concurrent requests do not change each
other's faults. Injected faults are counted in ``fake.faults.injected`` and marked on the
:class:`~tests.e2e.fake_discord.records.RecordedCall` (``fault``); they are not violations.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tests.e2e.fake_discord.records import RecordedCall

FaultKind = Literal["rate_limited", "server_error", "dead_token", "slow", "disconnect", "refused"]

#: The interaction webhook routes (a dead token applies to these).
WEBHOOK_OPERATIONS = frozenset(
    {
        "execute_webhook",
        "get_webhook_message",
        "get_original_webhook_message",
        "update_webhook_message",
        "update_original_webhook_message",
        "delete_webhook_message",
        "delete_original_webhook_message",
    }
)
#: What a bot does with a member's request: answer it, edit it, post in a channel, open a DM.
REQUEST_OPERATIONS = WEBHOOK_OPERATIONS | {"create_interaction_response", "create_message", "create_dm"}


@dataclass(frozen=True)
class Fault:
    """One injected fault (see the module docstring)."""

    kind: FaultKind
    status: int = 0
    code: int = 0
    retry_after: float = 0.5
    via: bool = False
    seconds: float = 0.0
    after: bool = False
    release: asyncio.Event | None = field(default=None, compare=False)
    reached: asyncio.Event | None = field(default=None, compare=False)

    @classmethod
    def rate_limited(cls, retry_after: float = 0.5, *, via: bool = False) -> Fault:
        """429; without ``via`` discord.py does not retry it."""
        return cls("rate_limited", status=429, retry_after=retry_after, via=via)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx answer."""
        return cls("server_error", status=status)

    @classmethod
    def refused(cls, status: int = 403, code: int = 50013) -> Fault:
        """Discord refuses the request (scripted only): 403 Missing Permissions by default."""
        return cls("refused", status=status, code=code)

    @classmethod
    def dead_token(cls, code: Literal[50027, 10015] = 50027) -> Fault:
        """The interaction's token dies (webhook routes only): 401/50027 or 404/10015 from now on."""
        return cls("dead_token", status=401 if code == 50027 else 404, code=code)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """The answer is ``seconds`` late."""
        return cls("slow", seconds=seconds)

    @classmethod
    def held(cls, release: asyncio.Event, reached: asyncio.Event | None = None) -> Fault:
        """The request takes effect, and is answered, only once ``release`` is set (``reached``: set on arrival)."""
        return cls("slow", release=release, reached=reached)

    @classmethod
    def disconnect(cls, *, after: bool = False) -> Fault:
        """The connection drops; with ``after``, once the request took effect."""
        return cls("disconnect", after=after)


@dataclass(frozen=True)
class DiscordFaultRates:
    """The probability of each fault per call (exclusive; they must sum to ≤ 1), on ``operations`` only."""

    rate_limited: float = 0.02
    server_error: float = 0.02
    dead_token: float = 0.01
    slow: float = 0.03
    disconnect: float = 0.01

    slow_seconds: tuple[float, float] = (0.5, 2.0)
    operations: frozenset[str] = field(default=REQUEST_OPERATIONS)

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """The fault names, in the order they are drawn."""
        return tuple(f.name for f in fields(cls) if f.type == "float")

    @classmethod
    def only(cls, **rates: float) -> DiscordFaultRates:
        """No fault but the ones named."""
        return cls(**dict.fromkeys(cls.kinds(), 0.0) | rates)

    def __post_init__(self) -> None:
        total = sum(getattr(self, kind) for kind in self.kinds())
        if not 0 <= total <= 1 or any(getattr(self, kind) < 0 for kind in self.kinds()):
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1 (they sum to {total})")

    def scaled(self, factor: float) -> DiscordFaultRates:
        """The same mix with every rate multiplied by ``factor``."""
        return replace(self, **{kind: getattr(self, kind) * factor for kind in self.kinds()})


class RandomDiscordFaults:
    """A seeded fault source for :class:`FaultPlan` (see the module docstring)."""

    def __init__(self, seed: int, rates: DiscordFaultRates | None = None, *, enabled: bool = True) -> None:
        self.seed = seed
        self.rates = rates or DiscordFaultRates()
        self.enabled = enabled
        self._calls: Counter[str] = Counter()

    def __call__(self, call: RecordedCall) -> Fault | None:
        operation = call.operation or ""
        if not self.enabled or operation not in self.rates.operations:
            return None
        key = f"{operation}|{call.token or call.path}"
        index = self._calls[key]
        self._calls[key] += 1
        rng = random.Random(f"{self.seed}|{key}|{index}")
        x = rng.random()
        for kind in self.rates.kinds():
            x -= getattr(self.rates, kind)
            if x < 0:
                return self._fault(kind, operation, rng)
        return None

    def _fault(self, kind: str, operation: str, rng: random.Random) -> Fault | None:
        if kind == "rate_limited":
            return Fault.rate_limited(round(rng.uniform(0.1, 1.0), 2))
        if kind == "server_error":
            return Fault.server_error(rng.choice((500, 502, 503, 504)))
        if kind == "dead_token":
            return Fault.dead_token(rng.choice((50027, 10015))) if operation in WEBHOOK_OPERATIONS else None
        if kind == "slow":
            return Fault.slow(round(rng.uniform(*self.rates.slow_seconds), 2))
        return Fault.disconnect(after=rng.random() < 0.5)


@dataclass
class InjectedFault:
    """A fault the fake applied: when, to which call."""

    time: float
    operation: str | None
    method: str
    path: str
    token: str | None
    fault: Fault


class FaultPlan:
    """The faults the fake Discord injects: scripted ones first (per operation, in order), then ``source``."""

    def __init__(self) -> None:
        self.source: Callable[[RecordedCall], Fault | None] | None = None
        #: Every fault applied, in order.
        self.log: list[InjectedFault] = []
        self._script: dict[str, deque[tuple[Fault, Callable[[RecordedCall], bool] | None]]] = {}

    def script(
        self, operation: str, fault: Fault, *, times: int = 1, match: Callable[[RecordedCall], bool] | None = None
    ) -> None:
        """Inject ``fault`` into the next ``times`` calls of ``operation`` (that ``match``, if given)."""
        self._script.setdefault(operation, deque()).extend([(fault, match)] * times)

    def clear(self) -> None:
        """Forget every scripted fault and stop the random source."""
        self._script.clear()
        self.source = None

    def take(self, call: RecordedCall) -> Fault | None:
        """The fault for this call, if any (consumed)."""
        queue = self._script.get(call.operation or "")
        if queue:
            for index, (fault, match) in enumerate(queue):
                if match is None or match(call):
                    del queue[index]
                    return fault
        return self.source(call) if self.source is not None else None

    def record(self, call: RecordedCall, fault: Fault) -> None:
        """Note an applied fault."""
        self.log.append(InjectedFault(call.time, call.operation, call.method, call.path, call.token, fault))

    @property
    def injected(self) -> Counter[str]:
        """How many faults of each kind were applied."""
        return Counter(entry.fault.kind for entry in self.log)
