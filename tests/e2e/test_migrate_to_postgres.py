"""`python -m bot migrate-to-postgres`: a bot's SQLite history moves to PostgreSQL and carries on there.

Real processes throughout: the bot on a SQLite file makes one image and leaves one generating, the
copy runs as `python -m bot migrate-to-postgres URL`, and the bot started on ``DATABASE_URL`` finishes
the open job (polled, never submitted again) and keeps the ledger whole.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.billing.ledger import Ledger
from bot.storage.database import Database
from tests.e2e.processes import Running, clean_environment, fake_endpoints, run
from tests.fakes.fake_bfl import Behaviour

pytestmark = pytest.mark.subprocess


async def _until(db, query, holds, timeout=30.0):
    """Re-read ``query`` until ``holds(rows)`` (the bot process writes the database)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not holds(rows := [tuple(r) for r in await db.fetch_all(query)]):
        assert loop.time() < deadline, f"timed out: {rows}"
        await asyncio.sleep(0.05)


def _attachments(interaction):
    return (interaction.original_message or {}).get("attachments")


async def test_a_sqlite_history_moves_to_postgresql_and_the_open_job_finishes_there(
    tmp_path, fake_discord, fake_bfl, pg_url
):
    fake = fake_discord
    sqlite_env = clean_environment(
        **fake_endpoints(fake, fake_bfl),
        DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
        CACHE_DIR=str(tmp_path / "cache"),
        CONFIRM_ABOVE_USD="100",
    )
    bot = await Running.start(env=sqlite_env, cwd=tmp_path)
    try:
        await fake.wait_until_connected(timeout=30)
        await fake.wait_for(lambda: fake.command_syncs, timeout=30)
        done = await fake.slash("imagine", {"prompt": "a paper boat"})
        await done.wait_for(lambda: _attachments(done), timeout=30)
        gate = asyncio.Event()
        fake_bfl.default = Behaviour(release=gate)  # BFL keeps working on the next one across the move
        open_job = await fake.slash("imagine", {"prompt": "a paper lantern"})
        await fake_bfl.wait_for(lambda: len(fake_bfl.tasks) == 2, timeout=30)

        busy = await run("migrate-to-postgres", pg_url, env=sqlite_env, cwd=tmp_path)
        assert busy.returncode == 1
        assert "is still running on" in busy.error_line and "stop every bot process first" in busy.error_line
    finally:
        assert await bot.stop() == 0

    copied = await run("migrate-to-postgres", pg_url, env=sqlite_env, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert "2 jobs, 1 still open" in copied.stdout and "equal sums" in copied.stdout
    again = await run("migrate-to-postgres", pg_url, env=sqlite_env, cwd=tmp_path)
    assert again.returncode == 1 and "already holds data" in again.error_line  # never copied twice

    pg_env = clean_environment(
        **fake_endpoints(fake, fake_bfl),
        DATABASE_URL=pg_url,
        DATABASE_PATH=str(tmp_path / "unused.sqlite3"),
        CACHE_DIR=str(tmp_path / "cache"),
        CONFIRM_ABOVE_USD="100",
    )
    moved = await Running.start(env=pg_env, cwd=tmp_path)
    try:
        gate.set()
        await open_job.wait_for(lambda: _attachments(open_job), timeout=30)
        fake_bfl.default = Behaviour()
        fresh = await fake.slash("imagine", {"prompt": "a paper crane"})
        await fresh.wait_for(lambda: _attachments(fresh), timeout=30)
        db = await Database.at(pg_url)
        expected = [(int(i.id), "delivered") for i in sorted((done, open_job, fresh), key=lambda i: int(i.id))]
        await _until(db, "SELECT id, status FROM jobs ORDER BY id", lambda rows: rows == expected)  # posted, recorded
    finally:
        assert await moved.stop() == 0
    assert "Traceback" not in moved.text, moved.text[-3000:]
    assert len(fake_bfl.submits) == 3  # the open job was polled on PostgreSQL, never submitted again

    try:
        ledger = await db.fetch_all("SELECT id, job_id, kind FROM ledger ORDER BY id")
        assert [r["kind"] for r in ledger] == ["reserve", "settle", "reserve", "settle", "reserve", "settle"]
        assert len({r["id"] for r in ledger}) == 6  # new rows got fresh ids after the copied ones
        assert await Ledger(db).verify_counters() == []  # the copied counters agree with the ledger
        events = await db.fetch_value("SELECT COUNT(*) FROM job_events WHERE job_id = ?", (int(done.id),))
        assert events >= 5  # the copied job's history came along, once (queued … delivered)
    finally:
        await db.close()
