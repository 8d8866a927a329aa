"""Who holds a job: process identities, and telling a dead holder from a live one.

Several bot processes (``python -m bot`` and ``python -m bot worker``) share one database. Each job
records the process that holds it (``jobs.claimed_by``) and each process renews a lease row
(``processes``). A job whose holder is gone is taken over by another process:

* a holder whose lease expired (it stopped renewing: killed, frozen, cut off) is gone;
* a holder that stopped cleanly deleted its lease row, so it is gone at once;
* a holder on *this* machine whose process no longer exists is gone at once, without waiting for
  its lease: a crashed bot restarted on the same machine resumes its jobs immediately, as before.

The last rule is only used when the holder's machine is provably this one: the same host name, the
same boot and the same PID namespace. Two containers with one host name (``network_mode: host``) but
separate PID namespaces never judge each other's processes by PID; they wait for the lease.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

# One random value per OS process: tells this process's own engines apart from another process that
# happens to have the same PID on another machine or in another container.
PROCESS_NONCE = secrets.token_hex(4)

# The engine tokens of this process that are running now (an engine stopped in-process releases its
# jobs: the next engine in the same process may take them at once).
_live_tokens: set[str] = set()


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _machine() -> str:
    """Name the machine and PID namespace: host name, boot id, PID-namespace inode (short)."""
    boot = _read("/proc/sys/kernel/random/boot_id")[:8]
    try:
        pid_namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pid_namespace = ""
    host = socket.gethostname().replace(":", "_")
    return f"{host}/{boot}/{pid_namespace}" if boot and pid_namespace else host


@dataclass(frozen=True)
class ProcessIdentity:
    """One running job engine: its machine, PID, process nonce and engine token."""

    role: str = "bot"  # "bot" (gateway + engine) or "worker" (engine only)
    machine: str = field(default_factory=_machine)
    pid: int = field(default_factory=os.getpid)
    nonce: str = PROCESS_NONCE
    token: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def id(self) -> str:
        """The value written to ``jobs.claimed_by`` and ``processes.id``."""
        return f"{self.machine}:{self.pid}:{self.nonce}:{self.token}"

    def started(self) -> None:
        """Mark this engine running: its jobs are not to be taken over by another engine of this process."""
        _live_tokens.add(self.token)

    def stopped(self) -> bool:
        """Mark this engine stopped (another engine of this process may take its jobs at once).

        True if it was running.
        """
        running = self.token in _live_tokens
        _live_tokens.discard(self.token)
        return running


@dataclass(frozen=True)
class Holder:
    """A parsed ``claimed_by`` value."""

    machine: str
    pid: int
    nonce: str
    token: str

    @classmethod
    def parse(cls, value: str) -> Holder | None:
        """The holder written by :attr:`ProcessIdentity.id`, or None for anything else."""
        parts = value.rsplit(":", 3)
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])


def provably_gone(claimed_by: str, me: ProcessIdentity) -> bool:
    """True when ``claimed_by`` certainly no longer runs, judged from this machine alone.

    False means "cannot tell here": the caller then goes by the holder's lease.
    """
    holder = Holder.parse(claimed_by)
    if holder is None or holder.machine != me.machine or "/" not in me.machine:
        return False  # another machine (or one we cannot identify precisely): only the lease tells
    if holder.pid == me.pid and holder.nonce == me.nonce:
        return holder.token not in _live_tokens  # this very process: an engine that has stopped
    return not _pid_alive(holder.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
