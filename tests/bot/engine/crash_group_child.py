"""Child process for the group crash tests: one `/imagine count:2` group through the real engine, dying at a point.

Usage: python -m tests.bot.engine.crash_group_child DB_PATH CACHE_DIR BFL_URL BFL_KEY POINT

POINT is an engine checkpoint (``after_ack``: acknowledged, not yet claimed; ``after_group_post``: the
gallery is in Discord, not yet recorded) at which the process SIGKILLs itself.
"""

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bot.storage.database import Database
from tests.bot.engine.conftest import RecordingPresenter, build_engine, make_settings, request, who
from tests.conftest import ManualClock

GROUP = 1


class _Bfl:
    def __init__(self, url, api_key):
        self.url, self.api_key = url, api_key


def die(point, _id=0):
    if point == sys.argv[5]:
        os.kill(os.getpid(), signal.SIGKILL)


async def main(db_path, cache_dir, bfl_url, bfl_key, point):
    settings = make_settings(_Bfl(bfl_url, bfl_key), Path(db_path).parent)
    db = await Database.open(Path(db_path))
    async with aiohttp.ClientSession() as session:
        presenter = RecordingPresenter()
        engine, _bfl, _limits = build_engine(
            db, session, settings, ManualClock(datetime.now(UTC)), presenter, checkpoint=die
        )
        await engine.start()
        await engine.admit_group([request(seed=1), request(seed=2)], who(GROUP))
        await engine.acknowledged_group(GROUP)
        await presenter.wait_for(lambda: GROUP in presenter.groups, timeout=60)
        await engine.wait_idle()
        die("end")
    await db.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
