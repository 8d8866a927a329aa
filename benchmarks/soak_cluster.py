"""The soak's bot processes: a gateway (``python -m bot``) and a worker (``python -m bot worker``).

Each runs :mod:`benchmarks.soak_child` with its stderr in a log file per incarnation. The soak
SIGKILLs one at random and starts it again; a process that exits by itself (e.g. a start that failed
on an injected database fault) is restarted too, as a supervisor (Docker's ``restart:
unless-stopped``) would, and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROLES = {"gateway": (), "worker": ("worker",)}


@dataclass
class BotProcess:
    """One role's process across its incarnations."""

    role: str
    env: dict[str, str]
    folder: Path
    incarnation: int = 0
    process: asyncio.subprocess.Process | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        """Start the next incarnation."""
        self.incarnation += 1
        log_path = self.folder / f"{self.role}-{self.incarnation}.log"
        self.logs.append(log_path)
        env = {
            **self.env,
            "SOAK_SEED": f"{self.env.get('SOAK_SEED', '0')}:{self.role}:{self.incarnation}",
            "CACHE_DIR": str(self.folder / f"cache-{self.role}"),
            "PYTHONPATH": str(REPO),
        }
        with log_path.open("wb") as sink:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.soak_child", *ROLES[self.role],
                cwd=self.folder, env=env, stdout=sink, stderr=sink,
            )  # fmt: skip

    async def kill(self) -> None:
        """SIGKILL: no clean-up runs, as in a crash or an OOM kill."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self, grace: float = 30.0) -> int | None:
        """SIGINT (graceful stop), SIGKILL if it does not exit in time; its exit status."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.dump_tasks()
                await asyncio.sleep(1.0)  # let it write the stacks before it dies
                await self.kill()
        return self.process.returncode

    def dump_tasks(self) -> None:
        """Ask the process to log every asyncio task's stack (see ``soak_child``)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGUSR2)

    def log_text(self) -> str:
        """Every incarnation's log, concatenated."""
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


class Cluster:
    """The gateway and the worker, kept running until :meth:`stop`."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.members = {role: BotProcess(role, env, folder) for role in ROLES}
        self.kills: Counter[str] = Counter()
        self.crashes: Counter[str] = Counter()  # exits nobody asked for
        self.deaths: list[int] = []  # when a process was SIGKILLed or found crashed (unix ms)
        self._stopping = False
        self._guard: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for member in self.members.values():
            await member.start()
        self._guard = asyncio.create_task(self._restart_crashed(), name="soak-supervisor")

    async def kill_and_restart(self, role: str, down_for: float) -> None:
        """SIGKILL ``role``, leave it down ``down_for`` seconds (a crash-looping container), start it again."""
        member = self.members[role]
        if not member.alive:
            return
        self.kills[role] += 1
        self.deaths.append(int(time.time() * 1000))
        await member.kill()
        await asyncio.sleep(down_for)  # the outage itself, not synchronisation
        if not self._stopping:
            await member.start()

    async def ensure_running(self) -> None:
        """Start any role that is down."""
        for member in self.members.values():
            if not member.alive:
                await member.start()

    async def _restart_crashed(self) -> None:
        while not self._stopping:
            for member in self.members.values():
                if member.process is not None and member.process.returncode not in (None, -signal.SIGKILL):
                    self.crashes[member.role] += 1
                    self.deaths.append(int(time.time() * 1000))
                    await member.start()
            await asyncio.sleep(0.5)  # a supervisor's polling period

    async def stop(self) -> dict[str, int | None]:
        """Stop every process gracefully; their exit statuses."""
        self._stopping = True
        if self._guard is not None:
            self._guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._guard
        return {role: await member.stop() for role, member in self.members.items()}

    def faults(self) -> Counter[str]:
        """The SIGKILLs sent and the exits nobody asked for, by role."""
        found: Counter[str] = Counter({f"SIGKILL {role}": n for role, n in self.kills.items()})
        found.update({f"crashed {role}": n for role, n in self.crashes.items()})
        return found

    def injected_db_faults(self) -> int:
        """How many database faults the processes logged (``SOAK-DB-FAULT``)."""
        return sum(member.log_text().count("SOAK-DB-FAULT") for member in self.members.values())

    def tracebacks(self) -> int:
        """How many tracebacks the processes logged."""
        return sum(member.log_text().count("Traceback") for member in self.members.values())


def child_environment(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any bot setting, plus ``settings``."""
    from bot.config import env_names

    names = set(env_names())
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(settings)
    return env
