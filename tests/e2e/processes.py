"""Running the real `python -m bot` in a child process: clean environments, read-only folders, output.

Read-only folders are made read-only for real. Root ignores permission bits, so as root the child runs
in a private mount namespace where each folder is a read-only bind mount of itself (writes fail with
EROFS, exactly as on a read-only container volume); as another user, the folders lose their write bits
for the duration. Where neither works, tests that need it are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.config import env_names

REPO = Path(__file__).resolve().parents[2]
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING) +[\w.]+: ")


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without any bot setting, running this checkout, plus ``settings``."""
    names = set(env_names())
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing may be written beside the code or in the working dir
    env.update(settings)
    return env


def fake_endpoints(fake_discord, fake_bfl) -> dict[str, str]:
    """The settings that point the bot at the two local fakes."""
    return {
        "DISCORD_TOKEN": fake_discord.token,
        "BFL_API_KEY": fake_bfl.api_key,
        "BFL_API_URL": fake_bfl.url,
        "DISCORD_API_URL": fake_discord.api_url,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
    }


@dataclass
class Finished:
    """A child process that has exited."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """The one-line start-up error: stderr must end with it, with nothing but log records before it."""
        lines = self.stderr.strip().splitlines()
        assert lines, "nothing on stderr"
        assert "Traceback" not in self.stderr, self.stderr
        *before, last = lines
        assert last.startswith("fluxcord: "), self.stderr
        strays = [line for line in before if not LOG_RECORD.match(line)]
        assert strays == [], f"lines that are neither the error nor log records: {strays}"
        return last


async def run(*args: str, env: dict[str, str], cwd: Path, prefix: list[str] | None = None, timeout: float = 60):
    """Run ``python -m bot *args`` to completion."""
    process = await asyncio.create_subprocess_exec(
        *(prefix or []), sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    return Finished(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


@dataclass
class Running:
    """A `python -m bot` that keeps running until :meth:`stop`; stderr is collected as it comes."""

    process: asyncio.subprocess.Process
    logs: bytearray = field(default_factory=bytearray)
    collector: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], cwd: Path, prefix: list[str] | None = None) -> Running:
        """Start ``python -m bot *args``."""
        process = await asyncio.create_subprocess_exec(
            *(prefix or []), sys.executable, "-m", "bot", *args, cwd=cwd, env=env, stderr=asyncio.subprocess.PIPE
        )
        running = cls(process)
        running.collector = asyncio.create_task(running._collect())
        return running

    async def _collect(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self.logs.extend(chunk)

    @property
    def text(self) -> str:
        """Everything logged so far."""
        return self.logs.decode(errors="replace")

    async def kill(self) -> int:
        """SIGKILL, as a crash or the OOM killer would: no clean-up runs; the exit status."""
        if self.process.returncode is None:
            self.process.kill()
        await asyncio.wait_for(self.process.wait(), timeout=30)
        if self.collector is not None:
            await self.collector
        return self.process.returncode

    async def stop(self) -> int:
        """SIGINT, as Ctrl+C would; the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        await asyncio.wait_for(self.process.wait(), timeout=30)
        if self.collector is not None:
            await self.collector
        return self.process.returncode


@functools.cache
def _bind_mounts_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = subprocess.run(
            [*_bind_prefix([Path(folder)]), "sh", "-c", f"! touch {shlex.quote(folder)}/x 2>/dev/null"],
            capture_output=True,
            check=False,
        )
        return probe.returncode == 0 and not Path(folder, "x").exists()


def _bind_prefix(folders: list[Path]) -> list[str]:
    mounts = " && ".join(
        f"mount --bind {q} {q} && mount -o remount,bind,ro {q} {q}" for q in (shlex.quote(str(f)) for f in folders)
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh"]


@contextlib.contextmanager
def read_only(*folders: Path) -> Iterator[list[str]]:
    """Yield the command prefix under which ``folders`` are read-only for the child (see the module doc)."""
    if _bind_mounts_work():
        yield _bind_prefix(list(folders))
        return
    if os.geteuid() == 0:
        pytest.skip("running as root without mount namespaces: a read-only folder cannot be made for real")
    modes = {folder: folder.stat().st_mode for folder in folders}
    for folder in folders:
        folder.chmod(0o555)
    try:
        yield []
    finally:
        for folder, mode in modes.items():
            folder.chmod(mode)
