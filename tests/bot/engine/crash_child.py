"""Child process for the crash tests: runs one job through the real engine and dies at a chosen point.

Usage: python -m tests.bot.engine.crash_child DB_PATH CACHE_DIR BFL_URL BFL_KEY POINT

POINT is an engine checkpoint (``after_reserve``, ``after_claim``, ``after_submit``, …) at which the
process SIGKILLs itself — no cleanup, no ``finally``, like a power cut to the process — or
``before_reserve`` (dies before admission), or ``none`` (runs to the end; the parent kills it).
"""

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from bot.storage.database import Database
from tests.bot.engine.conftest import RecordingPresenter, build_engine, make_settings, request, who
from tests.conftest import ManualClock


class _Bfl:
    def __init__(self, url, api_key):
        self.url, self.api_key = url, api_key


def die(point, job_id=0):
    if point == sys.argv[5]:
        os.kill(os.getpid(), signal.SIGKILL)


async def main(db_path, cache_dir, bfl_url, bfl_key, point):
    from datetime import UTC, datetime

    folder = Path(db_path).parent
    settings = make_settings(_Bfl(bfl_url, bfl_key), folder)
    db = await Database.open(Path(db_path))
    clock = ManualClock(datetime.now(UTC))
    async with aiohttp.ClientSession() as session:
        presenter = RecordingPresenter()
        engine, _bfl, _limits = build_engine(db, session, settings, clock, presenter, checkpoint=die)
        await engine.start()
        die("before_reserve")
        await engine.admit(request(seed=7), who(1), acked=True)
        await presenter.ended(1, timeout=60)
        await engine.wait_job(1)
        die("end")
    await db.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
