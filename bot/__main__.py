"""Composition root: `python -m bot` runs the bot; `python -m bot sync` pushes its slash commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from bot.app import run_bot, sync_only
from bot.config import SettingsError, load_settings
from bot.log import setup_logging

log = logging.getLogger("bot")

USAGE = "usage: python -m bot [sync]"


def main(argv: list[str]) -> int:
    """Parse the command line, load settings (one clear line on error), and run."""
    if argv not in ([], ["sync"]):
        print(USAGE, file=sys.stderr)  # noqa: T201
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"fluxcord: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    setup_logging(
        settings.log_level,
        [settings.discord_token.get_secret_value(), settings.bfl_api_key.get_secret_value()],
    )
    runner = sync_only if argv == ["sync"] else run_bot
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runner(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
