"""The SQLite → PostgreSQL copy: all or nothing, and one clear line when it cannot be made.

The whole journey (a running bot's history copied, the bot carrying on on PostgreSQL) is in
tests/e2e/test_migrate_to_postgres.py; these check the edges on real files and a real server.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from bot.ops.to_postgres import TransferError, migrate_to_postgres
from bot.storage.database import Database
from tests.e2e.processes import clean_environment


async def _sqlite_with_rows(path, jobs: int = 3):
    db = await Database.open(path)
    for n in range(1, jobs + 1):
        await db.execute(
            "INSERT INTO jobs (id, guild_id, channel_id, user_id, model, prompt, params, seed, width, height,"
            " cache_key, status, estimated_micros, created_at, updated_at)"
            " VALUES (?, 1, 2, 3, 'flux-2-pro', 'p', '{}', 7, 1024, 1024, 'k', 'delivered', 30000, ?, ?)",
            (n, n, n),
        )
    await db.close()


async def test_a_copy_that_fails_midway_leaves_postgresql_empty(tmp_path, pg_url):
    source = tmp_path / "bot.sqlite3"
    await _sqlite_with_rows(source)
    raw = sqlite3.connect(source)
    # A NUL in a text: SQLite keeps it, PostgreSQL refuses it. job_events is copied after jobs (its
    # foreign key), so the jobs are already in when the copy fails.
    raw.execute("UPDATE job_events SET detail = 'a' || char(0) || 'b' WHERE job_id = 3")
    raw.commit()
    raw.close()
    with pytest.raises(TransferError, match="nothing was written") as caught:
        await migrate_to_postgres(source, pg_url)
    assert "\n" not in str(caught.value)
    target = await Database.at(pg_url)
    try:
        counts = {t: await target.fetch_value(f'SELECT COUNT(*) FROM "{t}"') for t in await target.tables()}
    finally:
        await target.close()
    assert set(counts.values()) == {0}, counts  # the jobs and their events before the bad row rolled back too


async def test_the_copy_refuses_without_a_database_and_copies_identically(tmp_path, pg_url):
    with pytest.raises(TransferError, match="there is no database at"):
        await migrate_to_postgres(tmp_path / "missing.sqlite3", pg_url)
    source = tmp_path / "bot.sqlite3"
    await _sqlite_with_rows(source)
    result = await migrate_to_postgres(source, pg_url)
    assert (result.jobs, result.open_jobs) == (3, 0)
    target = await Database.at(pg_url)
    try:
        events = await target.fetch_all("SELECT rowid, job_id, status FROM job_events ORDER BY rowid")
        await target.execute(
            "INSERT INTO job_events (job_id, status, at) VALUES (1, 'delivered', 9)"
        )  # a new row gets an id past the copied ones
        newest = await target.fetch_value("SELECT MAX(rowid) FROM job_events")
    finally:
        await target.close()
    assert [(r["job_id"], r["status"]) for r in events] == [(1, "delivered"), (2, "delivered"), (3, "delivered")]
    assert newest == max(r["rowid"] for r in events) + 1


@pytest.mark.parametrize("url", [None, "/srv/fluxcord.sqlite3"])
def test_the_command_needs_a_postgresql_url(tmp_path, url):
    env = clean_environment(DISCORD_TOKEN="unused-token", BFL_API_KEY="unused-key", DATABASE_PATH="db.sqlite3")
    args = [sys.executable, "-m", "bot", "migrate-to-postgres", *([url] if url else [])]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "postgresql://user:password@host/dbname" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing written
