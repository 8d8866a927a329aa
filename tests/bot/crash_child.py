"""Child process for the crash tests: runs one job and SIGKILLs itself at a chosen stage.

Usage: python -m tests.bot.crash_child DB_PATH CACHE_DIR BFL_URL BFL_KEY STAGE
"""

import asyncio
import os
import signal
import sys

import aiohttp

from bot.app import build_services
from bot.bfl.client import PollSchedule
from bot.config import Settings
from bot.generation import Requester
from bot.models import build_request
from bot.storage.database import Database


async def main(db_path, cache_dir, bfl_url, bfl_key, stage):
    settings = Settings(
        _env_file=None,
        discord_token="discord-test-token",
        bfl_api_key=bfl_key,
        bfl_api_url=bfl_url,
        database_path=db_path,
        cache_dir=cache_dir,
    )
    db = await Database.open(settings.database_path)
    async with aiohttp.ClientSession() as session:
        services = build_services(settings, db=db, session=session, poll_schedule=PollSchedule(first_interval=0.01))
        request = build_request(model=None, prompt="a lighthouse at dusk", aspect_ratio="1:1", seed=7)
        ticket = await services.generator.admit(request, Requester(job_id=1, guild_id=1, channel_id=2, user_id=3))

        async def progress(update):
            if update.stage.value == stage:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: like a power cut to the process

        await services.generator.run(ticket, on_progress=progress)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
