"""`python -m bot backup PATH`: a consistent copy of the database, safe while the bot writes to it.

SQLite's online backup API copies the database page by page under a read transaction, so the copy
is one committed state (in WAL mode the bot's writers are never blocked). The copy is written beside
``PATH`` first, checked (``PRAGMA integrity_check``), switched out of WAL mode so it is one
self-contained file, and only then renamed into place: a failed backup never leaves a half copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


class BackupError(Exception):
    """The backup could not be made; the message is one line naming the cause."""


@dataclass(frozen=True)
class BackupResult:
    """What was written."""

    path: Path
    size_bytes: int
    jobs: int
    ledger_rows: int


def backup_target(destination: Path, now: datetime | None = None) -> Path:
    """``destination`` itself, or a time-stamped file in it if it is a folder."""
    if destination.is_dir():
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
        return destination / f"fluxcord-{stamp}.sqlite3"
    return destination


def backup_database(source: Path, destination: Path) -> BackupResult:
    """Copy ``source`` to ``destination`` consistently (blocking: run it in a thread)."""
    if not source.is_file():
        raise BackupError(f"there is no database at {source} (check DATABASE_PATH)")
    target = backup_target(destination)
    if target.resolve() == source.resolve():
        raise BackupError("the backup path is the database itself; choose another file")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        src = sqlite3.connect(source, timeout=30)  # only read; a read-only open cannot join WAL everywhere
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # all pages in one step: one consistent snapshot, never restarted
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
                check = dst.execute("PRAGMA integrity_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"the copy failed its integrity check: {check}")
                jobs = _count(dst, "jobs")
                ledger_rows = _count(dst, "ledger")
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite could not copy {source}: {exc}") from None
    except OSError as exc:
        raise BackupError(f"could not write {target}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return BackupResult(target, target.stat().st_size, jobs, ledger_rows)


def _count(db: sqlite3.Connection, table: str) -> int:
    try:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # a database from before that table existed


async def backup(source: Path, destination: Path) -> BackupResult:
    """:func:`backup_database` off the event loop."""
    return await asyncio.to_thread(backup_database, source, destination)
