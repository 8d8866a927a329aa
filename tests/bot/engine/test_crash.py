"""A process killed at every step boundary of a job, then restarted, ends consistent.

After the restart: no reservation is left open, no job was submitted twice, and the ledger's total
equals what the fake BFL billed. A death after the claim but before "the POST is about to leave" was
recorded is known never to have been sent: the job goes back to the queue and is made once. Only a
death after that record (``submit_marked``), which cannot be told apart from one just after the POST
left, is charged the estimate and flagged ``unknown``.
"""

import asyncio
import signal
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from bot.engine.states import JobStatus
from bot.storage.database import Database
from tests.bot.engine.conftest import RecordingPresenter, build_engine, make_settings
from tests.conftest import ManualClock
from tests.fakes.fake_bfl import Behaviour

REPO = Path(__file__).parents[3]
ESTIMATE = 40_000  # FLUX1.1 [pro], flat $0.04


async def run_child(tmp_path, fake_bfl, point, *, kill_when=None):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bot.engine.crash_child", str(tmp_path / "db.sqlite3"), str(tmp_path / "cache"),
        fake_bfl.url, fake_bfl.api_key, point,
        cwd=REPO, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    if kill_when is not None:
        await fake_bfl.wait_for(lambda: kill_when(fake_bfl), timeout=30)
        process.kill()
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == -signal.SIGKILL, stderr.decode()


async def restart_and_finish(tmp_path, fake_bfl, clock):
    """Restart on the same host clock as the child (its rows' times and timers are on it)."""
    clock = ManualClock(datetime.now(UTC))
    db = await Database.open(tmp_path / "db.sqlite3")
    session = aiohttp.ClientSession()
    presenter = RecordingPresenter()
    engine, _, _ = build_engine(db, session, make_settings(fake_bfl, tmp_path), clock, presenter)
    try:
        await engine.start()
        job = await engine.store.get(1)
        if job is not None and job.status.is_open:
            await presenter.ended(1, timeout=20)
        await engine.wait_idle()
        return await engine.store.get(1), presenter, engine, db
    finally:
        await engine.stop(grace=0.1)
        await session.close()


def billed_micros(fake_bfl):
    return int((Decimal(1000) - fake_bfl.credits) * 10_000)


POINTS = [
    # (point, how the child dies, final status, image delivered after restart)
    ("before_reserve", None, None, False),
    ("after_reserve", None, JobStatus.DELIVERED, True),
    ("after_claim", None, JobStatus.DELIVERED, True),
    ("submit_marked", None, JobStatus.UNKNOWN, False),
    ("submit_sent", lambda f: f.tasks, JobStatus.UNKNOWN, False),
    ("after_submit", None, JobStatus.UNKNOWN, False),
    ("after_task_stored", None, JobStatus.DELIVERED, True),
    ("mid_poll", lambda f: sum(p.task_id is not None for p in f.polls) >= 2, JobStatus.DELIVERED, True),
    ("after_download", None, JobStatus.DELIVERED, True),
    ("after_cached", None, JobStatus.DELIVERED, True),
    ("after_post", None, JobStatus.DELIVERED, True),
    ("after_delivered", None, JobStatus.DELIVERED, False),
]


@pytest.mark.subprocess
@pytest.mark.parametrize(("point", "kill_when", "final", "redelivered"), POINTS, ids=[p[0] for p in POINTS])
async def test_killed_at_every_step_then_restarted(tmp_path, fake_bfl, clock, point, kill_when, final, redelivered):
    gate = asyncio.Event()
    if point == "submit_sent":
        fake_bfl.script(Behaviour(hang=True))  # BFL creates the task; the answer never comes
    elif point == "mid_poll":
        fake_bfl.script(Behaviour(release=gate))
    await run_child(tmp_path, fake_bfl, point if kill_when is None else "none", kill_when=kill_when)
    gate.set()  # BFL finishes the task while the bot is down

    job, presenter, _engine, db = await restart_and_finish(tmp_path, fake_bfl, clock)
    db_check = await Database.open(tmp_path / "db.sqlite3")
    try:
        from bot.billing.ledger import Ledger

        ledger = Ledger(db_check)
        assert await ledger.open_job_ids() == []  # nothing held forever
        assert await ledger.verify_counters() == []
        assert len(fake_bfl.submits) <= 1  # never submitted twice
        if final is None:
            assert job is None
            return
        assert job.status is final
        total = await db_check.fetch_value("SELECT COALESCE(SUM(server_micros), 0) FROM ledger")
        if point == "submit_marked":
            assert fake_bfl.submits == [] and total == ESTIMATE  # charged conservatively, flagged unknown
        else:
            assert total == billed_micros(fake_bfl)  # the ledger reconciles with BFL to the micro-dollar
        assert (1 in presenter.delivered) is redelivered
        if final is JobStatus.DELIVERED:
            settles = await db_check.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'")
            assert settles == 1
    finally:
        await db_check.close()
        await db.close()
