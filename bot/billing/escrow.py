"""Reservations on PostgreSQL: counter shards and escrow, so that no row is locked by every writer.

On SQLite a reservation is one conditional insert and transactions run one at a time, so the
counters can simply be read and written (:mod:`bot.billing.ledger`). On PostgreSQL, many processes
reserve at once; if every reservation locked the bot-wide and server-wide counter rows, all of them
would queue on those few rows. Instead (migration ``postgres/0019_counter_shards.sql``):

**Shards.** The server and bot counters are split into 64 rows per period (``usage.shard``); a
member's spend always lands in the shard ``ledger_shard(guild, user)``, and a counter's value is the
sum of its shards. Member counters stay in shard 0 (only that member's requests touch them, and they
already queue on the member's activity row). Two writers meet on a row only when their members share
a shard; a member's own reservations and settlements always did.

**Escrow.** A cap (server or bot-wide; dollars or images; per day, week or month) cannot be checked
against one shard's spend. Each shard row of a capped counter therefore holds an *allowance*: part
of the cap, granted in escrow (``escrow_micros`` / ``escrow_images``, under ``escrow_cap_*``). Then:

* a reservation checks only its own shard: "this shard's allowance covers my cost", under that
  row's lock, and every spend that raises a counter draws the same amount from its shard's
  allowance (the counting trigger, in the same statement). So ``spent + allowances``, summed over
  the shards, never grows by a reservation;
* allowances are granted by ``ledger_refill``, one grant at a time per counter (an advisory lock),
  and only up to ``cap - (spent + allowances)`` read in one snapshot. That bound can only grow
  while the grant is being made: reservations turn allowance into spend, settlements and releases
  lower spend, other grants wait for the lock. So ``spent + allowances <= cap`` always holds, and
  with every allowance non-negative, ``spent <= cap``;
* a settlement above its estimate (the one spend no reservation checked) draws the difference from
  its shard's allowance, possibly below zero: a *debt*. Reservations refuse to spend while any shard
  of the counter is in debt, and the next refill rebalances: it locks every shard row (in shard
  order), counts the spend exactly, clears the debts and allowances granted under another cap (a
  moderator changed the budget), hands this shard what it needs and leaves the rest where it was;
* when the cap's remaining headroom is spread over other shards' allowances, the same exact path
  moves it: a reservation is refused only when ``spent + cost > cap`` by an exact count, as before.

Allowances belong to the shard rows, not to processes: a process that dies (even SIGKILLed in the
middle of a refill) leaves nothing stranded — its transaction rolls back, and whatever it had been
granted stays in the shard for the next reservation by anyone. There is nothing to reclaim, so
the ``processes`` lease table is not involved. Grants are small (``headroom / 128`` at least the
cost), so a shard rarely holds much that others might need; near the cap the exact path takes it.

**One call.** A reservation is one statement, ``SELECT ledger_reserve(…)``: it locks the member's
activity row and its nine counter rows (in the counting trigger's order, so writers never
deadlock), checks every limit, takes an allowance if one can be had without waiting
(``pg_try_advisory_xact_lock``), and writes the ledger row. Its locks are held for one statement
instead of several round trips. A refusal raises (SQLSTATE ``FX001``) so nothing it wrote survives;
``FX002`` says an allowance is needed that would mean waiting: the caller refills with
:func:`refill` — which waits for the counter's lock while holding nothing else — and tries again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from bot.billing.caps import Demand, Limit, ReserveRequest, Scope, scope_key
from bot.billing.periods import PeriodKeys
from bot.clock import to_millis

REFUSED = "FX001"  # a limit, the pending cap, the cooldown or a pause refuses; or the job is reserved already
NEEDS_ALLOWANCE = "FX002"  # the member's shard needs an allowance that means waiting: refill, then retry

_RESERVE_SQL = "SELECT ledger_reserve(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_REFILL_SQL = "SELECT ledger_refill(?, ?, ?, ledger_shard(?, ?), ?, ?, TRUE)"


class Executor(Protocol):
    """The :class:`~bot.storage.database.Database` (its own transaction) or a transaction it opened."""

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run ``sql``."""


class Caller(Protocol):
    """What :func:`refill` needs of the database."""

    async def fetch_value(self, sql: str, params: Sequence[object] = (), default: Any = None) -> Any:
        """The first column of the first row."""


def is_escrowed(limit: Limit) -> bool:
    """Whether ``limit`` is checked against the member's shard's allowance (server and bot caps)."""
    return limit.scope is not Scope.MEMBER


def _counters(
    limits: Sequence[Limit], guild_id: int, user_id: int, keys: PeriodKeys
) -> list[tuple[str, str, str, Limit]]:
    """Each limit as (counter scope key, period key, metric, limit), ordered by counter.

    Two caps on one escrowed counter would keep taking the allowance from each other: only the
    smaller one (the one that binds) is kept. Member limits are plain checks and all stay.
    """
    plain: list[tuple[str, str, str, Limit]] = []
    escrowed: dict[tuple[str, str, str], Limit] = {}
    for limit in limits:
        counter = (scope_key(limit.scope, guild_id, user_id), keys.of(limit.period), limit.metric.value)
        if not is_escrowed(limit):
            plain.append((*counter, limit))
        elif counter not in escrowed or limit.value < escrowed[counter].value:
            escrowed[counter] = limit
    return plain + [(*counter, limit) for counter, limit in sorted(escrowed.items(), key=lambda item: item[0])]


async def reserve(executor: Executor, request: ReserveRequest) -> bool:
    """Reserve through ``ledger_reserve``; True if written, False if refused or an allowance is needed.

    With a transaction as ``executor``, a False leaves that transaction aborted: roll it back.
    """
    r, terms = request, request.terms
    keys = PeriodKeys.at(r.now)
    now_ms = to_millis(r.now)
    ready_before = now_ms - terms.cooldown_seconds * 1000 if terms.cooldown_seconds > 0 else None
    params = [r.job_id, r.guild_id, r.user_id, r.model, r.estimated_micros, keys.day, keys.week, keys.month, now_ms]
    counters = _counters(terms.limits, r.guild_id, r.user_id, keys)
    params += [terms.max_pending_jobs, ready_before, [c[0] for c in counters], [c[1] for c in counters]]
    params += [[c[2] for c in counters], [c[3].value for c in counters]]
    try:
        await executor.execute(_RESERVE_SQL, params)
    except Exception as exc:
        if getattr(exc, "sqlstate", None) in (REFUSED, NEEDS_ALLOWANCE):
            return False
        raise
    return True


async def refill(db: Caller, demand: Demand, limits: Sequence[Limit], now: datetime) -> Limit | None:
    """Give the member's shard allowances for ``demand`` under every escrowed cap of ``limits``.

    Each refill is its own short transaction that holds nothing else while it waits for the
    counter's lock. Returns the first limit whose cap cannot hold that much more (by an exact
    count), or None when every allowance is in place.
    """
    escrowed = [limit for limit in limits if is_escrowed(limit)]
    guild_id, user_id = demand.guild_id, demand.user_id
    for scope, period, metric, limit in _counters(escrowed, guild_id, user_id, PeriodKeys.at(now)):
        needed = demand.needed(limit.metric)
        held = await db.fetch_value(_REFILL_SQL, (scope, period, metric, guild_id, user_id, needed, limit.value))
        if held == 0:
            return limit
    return None
