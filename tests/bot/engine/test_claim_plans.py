"""The claim and the queue snapshot read the queue, not the history: their plans use an index, both backends.

On a database with a long history of finished jobs (and fresh statistics), each statement's plan must
not scan ``jobs`` whole: every access to ``jobs`` is a primary-key lookup, an index search with a
condition, or a scan of a partial index restricted to open statuses (``jobs_queued``,
``jobs_running``). SQLite uses a partial index only when the query repeats its ``WHERE`` term for
term, which is what this catches. ``explain``/``jobs_accesses`` are written to fold into a general
query-plan test.
"""

from __future__ import annotations

import json
import re

from bot.engine.claim import SNAPSHOT_SQL, claim_statement

HISTORY = 20_000  # finished jobs
_SQLITE_ACCESS = re.compile(r"^(SCAN|SEARCH) (\w+)(?: USING (?:COVERING )?INDEX (\w+)| USING (INTEGER PRIMARY KEY))?")
_PG_SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Index Scan"}
JOBS_ALIASES = {"jobs", "j"}


async def fill_history(db, finished=HISTORY):
    """``finished`` delivered jobs over 50 servers, then a small queue, a few running, and statistics."""
    columns = (
        "id, guild_id, channel_id, user_id, model, prompt, params, seed, width, height, cache_key, status,"
        " estimated_micros, created_at, updated_at"
    )
    await db.execute(
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {finished + 40})"
        f" INSERT INTO jobs ({columns})"
        " SELECT i, i % 50, 1, i % 997, 'flux-pro-1.1', 'p', '{}', i, 1024, 1024, 'k',"
        f" CASE WHEN i <= {finished} THEN 'delivered' WHEN i <= {finished + 5} THEN 'generating' ELSE 'queued' END,"
        " 40000, i, i FROM n"
    )
    await db.execute("ANALYZE")


async def explain(db, sql, params):
    """Every access to a table in ``sql``'s plan: (kind, table or alias, index or None, has a condition)."""
    if db.backend == "sqlite":
        accesses = []
        for row in await db.fetch_all(f"EXPLAIN QUERY PLAN {sql}", params):
            match = _SQLITE_ACCESS.match(row["detail"])
            if match:
                kind, table, index, pk = match.groups()
                accesses.append((kind, table, index or pk, kind == "SEARCH"))
        return accesses
    [row] = await db.fetch_all(f"EXPLAIN (FORMAT JSON) {sql}", params)
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    accesses = []

    def walk(node):
        if node["Node Type"] in _PG_SCANS:  # a Bitmap Heap Scan is checked through its Bitmap Index Scan
            cond = "Index Cond" in node
            accesses.append(
                (node["Node Type"], node.get("Alias", node.get("Relation Name")), node.get("Index Name"), cond)
            )
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return accesses


async def queue_indexes(db):
    """The jobs indexes restricted to some statuses (a scan of one reads only those jobs)."""
    if db.backend == "sqlite":
        rows = await db.fetch_all("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'")
    else:
        rows = await db.fetch_all("SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE tablename = 'jobs'")
    return {r["name"] for r in rows if r["sql"] and re.search(r"\bWHERE\b.*\bstatus\b", r["sql"], re.S | re.I)}


async def jobs_accesses(db, sql, params):
    """The accesses to ``jobs`` in the plan that read more than the queue (empty when the plan is good)."""
    allowed = await queue_indexes(db)
    jobs_index_names = await _jobs_index_names(db)
    bad = []
    for kind, table, index, cond in await explain(db, sql, params):
        on_jobs = table in JOBS_ALIASES or (index is not None and index in jobs_index_names)
        if on_jobs and not cond and index not in allowed and index != "INTEGER PRIMARY KEY":
            bad.append((kind, table, index))
    return bad


async def _jobs_index_names(db):
    if db.backend == "sqlite":
        rows = await db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'")
    else:
        rows = await db.fetch_all("SELECT indexname AS name FROM pg_indexes WHERE tablename = 'jobs'")
    return {r["name"] for r in rows}


def claim_statements(db):
    """The claim as the engine runs it (the model table's route caps), and with no tight route."""
    common = {"now_ms": 1, "member_cap": 2, "holder": "p"}
    yield claim_statement(db.backend, max_active=24, **common)
    yield claim_statement(db.backend, max_active=24, caps={}, **common)


async def test_the_claim_and_the_snapshot_read_only_the_queue(db):
    await fill_history(db)
    for sql, params in [*claim_statements(db), (SNAPSHOT_SQL, ())]:
        assert await jobs_accesses(db, sql, params) == [], sql
    # The statements still do their job on this database.
    sql, params = next(claim_statements(db))
    async with db.transaction() as tx:  # a write: through the write path
        claimed = await tx.fetch_all(sql, params)
    assert [r["id"] for r in claimed] == [HISTORY + 6]
    assert len(await db.fetch_all(SNAPSHOT_SQL)) == 34


async def test_the_check_catches_a_full_scan(db):
    """The detector itself: a query no index serves scans jobs, and is caught."""
    await fill_history(db, finished=2_000)
    bad = await jobs_accesses(db, "SELECT id FROM jobs WHERE acked = 1", ())
    assert bad and bad[0][0] in {"SCAN", "Seq Scan"}
