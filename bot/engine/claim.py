"""The fair claim: which queued job gets the next BFL slot, and the snapshot queue positions replay.

The rule (:mod:`bot.engine.fairness` replays exactly this one to show queue places):

* **Who may go**: a queued, acknowledged job of a server that is not paused (``/budget pause``),
  while fewer than ``BFL_MAX_ACTIVE_TASKS`` tasks run in all, fewer than its route's cap run on its
  model (``ModelSpec.max_active_tasks`` in :data:`bot.models.MODELS`: a new route with its own cap
  is one table entry), and fewer than the member's concurrency cap run for its member; a private job
  only while its result can still be shown before its interaction expires (``:private_after``).
* **Who goes first**: the server with the fewest running tasks, then the server served longest ago
  (``guild_turns``); within it, a job in the server's **priority lane** (``jobs.priority``: its member
  had the server's priority role at admission, ``/budget priority``) before any other; then the
  member whose last claim is oldest (``member_turns``; a member never served before any member
  already served); then the oldest request. The lane is read only once the server is chosen, so the
  order between servers is unchanged by it.

A turn is one number counted up on every claim by the ``jobs_claim_turn`` trigger, which records it
as the server's and the member's last turn (migration ``0017_fair_claim``).

The claim is ONE statement, ``UPDATE … WHERE id = (SELECT … ORDER BY <rule> LIMIT 1) RETURNING *``.
Its caps are counts across rows, so claimers must not run side by side: on SQLite every transaction
runs alone already; on PostgreSQL claimers take one advisory lock (``jobs.claim``) for the length of
the claim. Row locks alone (``FOR UPDATE SKIP LOCKED``) cannot keep a count: two claimers that skip
each other's locked rows would both see 23 tasks running and both take the 24th slot. Under the
lock, PostgreSQL's subquery first reads ``FOR UPDATE OF j SKIP LOCKED``: a queued row that another
transaction holds (a cancel deciding its fate, a painter stamping its progress) is passed over
instead of waited for, so the claim does not block behind it while other jobs could go. Only when
that finds nothing does the claim ask again, waiting (at most :data:`HELD_ROW_WAIT_MS`) for the held
row: rows are held for one short write, and coming back empty would leave a lone process's
dispatcher asleep with a job it could have started.

Both statements here read only the queue: the partial indexes ``jobs_queued`` (``status =
'queued'``) and ``jobs_running`` (``status IN`` :data:`RUNNING`) serve them on both backends, however
long the history of finished jobs grows (``tests/bot/engine/test_claim_plans.py`` checks the plans).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.engine.states import SLOT_HOLDERS
from bot.models import MODELS, ModelSpec
from bot.storage.database import Backend, Database

CLAIM_LOCK = "jobs.claim"
HELD_ROW_WAIT_MS = 2000  # a job row is held for one short write; longer is a fault (the claim fails, is retried)
#: The running statuses, written exactly as the ``jobs_running`` index's ``WHERE`` (SQLite uses a
#: partial index only when the query repeats its condition term for term).
RUNNING = "('" + "', '".join(sorted(s.value for s in SLOT_HOLDERS)) + "')"


def route_caps(models: Mapping[str, ModelSpec] | None = None) -> dict[str, int]:
    """Each route's active-task cap, from the model table (read when called)."""
    return {key: spec.max_active_tasks for key, spec in (MODELS if models is None else models).items()}


def route_slots(model: str, org_cap: int, caps: Mapping[str, int] | None = None) -> int:
    """How many tasks of ``model`` may run at once: its route's cap inside the organisation's."""
    caps = route_caps() if caps is None else caps
    return max(1, min(org_cap, caps.get(model, org_cap)))


@functools.lru_cache(maxsize=64)
def claim_sql(backend: Backend, tight_routes: int, *, wait: bool = False) -> str:
    """The claim statement, with ``tight_routes`` routes whose cap is tighter than the organisation's.

    Their names and caps are parameters ``:route0``/``:cap0``, …; every other route is bound only by
    ``:max_active``. On PostgreSQL a held row is skipped, or with ``wait`` waited for (see above).
    """
    cases = "".join(f" WHEN :route{n} THEN CAST(:cap{n} AS INTEGER)" for n in range(tight_routes))
    route_cap = f"\n      AND COALESCE(r.n, 0) < CASE j.model{cases} ELSE :max_active END" if tight_routes else ""
    skip_locked = (" FOR UPDATE OF j" + ("" if wait else " SKIP LOCKED")) if backend == "postgresql" else ""
    return f"""
UPDATE jobs SET status = 'submitting', updated_at = :now, claimed_by = :holder, attempts = attempts + 1,
    submit_started_at = NULL, next_attempt_at = NULL
WHERE status = 'queued' AND id = (
    WITH running AS (SELECT guild_id, user_id, model FROM jobs WHERE status IN {RUNNING}),
    by_guild AS (SELECT guild_id, COUNT(*) AS n FROM running GROUP BY guild_id),
    by_member AS (SELECT guild_id, user_id, COUNT(*) AS n FROM running GROUP BY guild_id, user_id),
    by_route AS (SELECT model, COUNT(*) AS n FROM running GROUP BY model)
    SELECT j.id FROM jobs j
    LEFT JOIN by_guild g ON g.guild_id = j.guild_id
    LEFT JOIN by_member m ON m.guild_id = j.guild_id AND m.user_id = j.user_id
    LEFT JOIN by_route r ON r.model = j.model
    LEFT JOIN guild_turns t ON t.guild_id = j.guild_id
    LEFT JOIN member_turns mt ON mt.guild_id = j.guild_id AND mt.user_id = j.user_id
    WHERE j.status = 'queued' AND j.acked = 1
      AND (SELECT COUNT(*) FROM running) < :max_active
      AND COALESCE(m.n, 0) < :member_cap{route_cap}
      AND NOT EXISTS (SELECT 1 FROM guild_settings s WHERE s.guild_id = j.guild_id AND s.paused = 1)
      AND (j.private = 0 OR j.created_at > :private_after)
    ORDER BY COALESCE(g.n, 0), COALESCE(t.turn, 0), j.priority DESC, COALESCE(mt.turn, 0), j.created_at, j.id
    LIMIT 1{skip_locked}
)
RETURNING *
"""


def claim_statement(
    backend: Backend,
    *,
    now_ms: int,
    max_active: int,
    member_cap: int,
    holder: str | None,
    caps: Mapping[str, int] | None = None,
    private_after: int = 0,
    wait: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The claim's SQL and parameters (only routes tighter than ``max_active`` need a condition)."""
    caps = route_caps() if caps is None else caps
    tight = sorted((model, cap) for model, cap in caps.items() if cap < max_active)
    params: dict[str, Any] = {
        "now": now_ms,
        "max_active": max_active,
        "member_cap": member_cap,
        "holder": holder,
        "private_after": private_after,
    }
    for n, (model, cap) in enumerate(tight):
        params[f"route{n}"] = model
        params[f"cap{n}"] = cap
    return claim_sql(backend, len(tight), wait=wait), params


async def claim_next(
    db: Database,
    *,
    now_ms: Callable[[], int],
    max_active: int,
    member_cap: int,
    holder: str | None,
    caps: Mapping[str, int] | None = None,
    private_after: int = 0,
) -> Any | None:
    """Move the next job by the rule from ``queued`` to ``submitting``; its row, or None if none may go.

    ``caps``: each route's cap (default: the model table's, :func:`route_caps`). The running
    counts are read across every process sharing the database, so the caps hold for all of them.
    ``now_ms`` is read once the claim holds its lock: the claim's recorded time is when it happened.
    """
    async with db.transaction() as tx:
        await tx.lock(CLAIM_LOCK)  # the caps are counts across rows: one claimer at a time (see above)
        statement = functools.partial(
            claim_statement,
            db.backend,
            now_ms=now_ms(),
            max_active=max_active,
            member_cap=member_cap,
            holder=holder,
            caps=caps,
            private_after=private_after,
        )
        row = await tx.fetch_one(*statement())
        if row is None and db.backend == "postgresql":  # nothing free: wait for a held row, if one could go
            await tx.fetch_one("SELECT set_config('lock_timeout', ?, true)", (str(HELD_ROW_WAIT_MS),))  # SET LOCAL
            row = await tx.fetch_one(*statement(wait=True))
        return row


@dataclass(frozen=True)
class QueueSnapshot:
    """The queue as the claim sees it, for queue positions (:func:`bot.engine.fairness.queue_order`)."""

    queued: list[tuple[int, int, int, str, int]]  # (job id, guild, user, model, created ms), oldest first
    running_by_guild: dict[int, int]  # the servers of queued jobs → their running tasks
    turns: dict[int, int]  # the servers of queued jobs → their last turn (absent: never served)
    member_turns: dict[tuple[int, int], int]  # (guild, user) of queued jobs → their last turn (absent: never)
    paused: frozenset[int] = frozenset()  # servers of queued jobs whose generation is paused
    priority: frozenset[int] = frozenset()  # queued jobs in their server's priority lane
    last_turn: int = 0  # the newest turn given so far


SNAPSHOT_SQL = f"""
WITH running AS (SELECT guild_id, COUNT(*) AS n FROM jobs WHERE status IN {RUNNING} GROUP BY guild_id)
SELECT j.id, j.guild_id, j.user_id, j.model, j.created_at, j.priority,
    COALESCE(r.n, 0) AS guild_running, t.turn AS guild_turn, mt.turn AS member_turn,
    COALESCE(s.paused, 0) AS paused, (SELECT MAX(turn) FROM guild_turns) AS last_turn
FROM jobs j
LEFT JOIN running r ON r.guild_id = j.guild_id
LEFT JOIN guild_turns t ON t.guild_id = j.guild_id
LEFT JOIN member_turns mt ON mt.guild_id = j.guild_id AND mt.user_id = j.user_id
LEFT JOIN guild_settings s ON s.guild_id = j.guild_id
WHERE j.status = 'queued' AND j.acked = 1
ORDER BY j.created_at, j.id
"""


async def read_snapshot(db: Database) -> QueueSnapshot:
    """The queued jobs with their servers' and members' standing, read in one statement."""
    rows = await db.fetch_all(SNAPSHOT_SQL)
    running: dict[int, int] = {}
    turns: dict[int, int] = {}
    member_turns: dict[tuple[int, int], int] = {}
    paused: set[int] = set()
    for row in rows:
        guild, user = row["guild_id"], row["user_id"]
        running[guild] = row["guild_running"]
        if row["guild_turn"] is not None:
            turns[guild] = row["guild_turn"]
        if row["member_turn"] is not None:
            member_turns[(guild, user)] = row["member_turn"]
        if row["paused"]:
            paused.add(guild)
    return QueueSnapshot(
        queued=[(r["id"], r["guild_id"], r["user_id"], r["model"], r["created_at"]) for r in rows],
        running_by_guild=running,
        turns=turns,
        member_turns=member_turns,
        paused=frozenset(paused),
        priority=frozenset(r["id"] for r in rows if r["priority"]),
        last_turn=(rows[0]["last_turn"] or 0) if rows else 0,
    )
