"""A process killed in the middle of a group (`/imagine count:2`), then restarted, ends consistent.

Killed after the acknowledgement but before any claim, or after the gallery was posted but before the
post was recorded: after the restart every image is made once, the group is shown (the same message:
a repost edits the interaction's message, or Discord's nonce returns the first channel post), each
image is settled once, and no reservation is left open.
"""

import asyncio
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.billing.ledger import Ledger
from bot.engine.states import JobStatus
from bot.storage.database import Database
from tests.bot.engine.conftest import RecordingPresenter, build_engine, make_settings
from tests.bot.engine.test_crash import billed_micros
from tests.conftest import ManualClock

REPO = Path(__file__).parents[3]
GROUP = 1


@pytest.mark.subprocess
@pytest.mark.parametrize("point", ["after_ack", "after_group_post"])
async def test_a_group_killed_midway_is_finished_once_after_the_restart(tmp_path, fake_bfl, point):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bot.engine.crash_group_child", str(tmp_path / "db.sqlite3"),
        str(tmp_path / "cache"), fake_bfl.url, fake_bfl.api_key, point, cwd=REPO, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    submitted_before = len(fake_bfl.tasks)

    db = await Database.open(tmp_path / "db.sqlite3")
    presenter = RecordingPresenter()
    async with aiohttp.ClientSession() as session:
        settings = make_settings(fake_bfl, tmp_path)
        engine, _, _ = build_engine(db, session, settings, ManualClock(datetime.now(UTC)), presenter)
        try:
            await engine.start()
            await presenter.wait_for(lambda: GROUP in presenter.groups, timeout=30)
            await engine.wait_idle()
            members = await engine.groups.members(GROUP)
            assert [job.status for job in members] == [JobStatus.DELIVERED] * 2
            ledger = Ledger(db)
            assert await ledger.open_job_ids() == [] and await ledger.verify_counters() == []
            settles = await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'")
            assert settles == 2 and len(fake_bfl.tasks) == 2  # each image made once, settled once
            assert await db.fetch_value("SELECT SUM(server_micros) FROM ledger") == billed_micros(fake_bfl)
            if point == "after_ack":
                assert submitted_before == 0  # the restart claimed and ran them
            [posted] = presenter.groups[GROUP]
            assert len(posted.results) == 2
            group = await engine.groups.get(GROUP)
            assert group.posted_at is not None and group.result_message_id == 20_000 + GROUP
        finally:
            await engine.stop(grace=0.1)
            await db.close()
