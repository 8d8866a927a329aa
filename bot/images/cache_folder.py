"""The files of the image cache (:mod:`bot.images.cache`): one folder, shared by processes, locked with ``flock``.

Synchronous: :class:`ImageCache` calls these in a worker thread. Layout: ``<key>.img`` (the image) and
``<key>.json`` (its metadata) per entry, written through temporary files (``.tmp-…``) and
``os.replace``, sidecar first; recency is the image file's mtime; ``.lock`` is locked shared to use
entries and exclusive to write or remove them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: one process per folder
    fcntl = None  # type: ignore[assignment]  # the module, or None: callers test it before locking

log = logging.getLogger(__name__)

KEY_RE = re.compile(r"[0-9a-f]{16,128}")
_DATA_SUFFIX = ".img"
_META_SUFFIX = ".json"
_TEMP_PREFIX = ".tmp-"
_LOCK_NAME = ".lock"

#: Temporary files and half entries younger than this may be another process's write in progress.
STALE_SECONDS = 3600.0


@dataclass
class Entry:
    """What a process knows of one entry."""

    size: int  # bytes on disk: image + sidecar
    used_ns: int  # last use seen (the image file's mtime)


class CacheFolder:
    """The cache's folder: every method is blocking file work (call it from a worker thread)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def paths(self, key: str) -> tuple[Path, Path]:
        """The image file and the sidecar of ``key``."""
        return self.directory / f"{key}{_DATA_SUFFIX}", self.directory / f"{key}{_META_SUFFIX}"

    @contextlib.contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        """``flock`` of the folder's ``.lock``: shared to use entries, exclusive to write or remove them.

        A new open file each time, so two threads of one process exclude each other like processes.
        """
        if fcntl is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    def scan(self) -> dict[str, Entry]:
        """Every complete entry in the folder; old crash leftovers are removed, young ones left alone."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stale_ns = time.time_ns() - int(STALE_SECONDS * 1e9)
        found: dict[str, dict[str, os.stat_result]] = {}
        leftovers: list[Path] = []
        for child in self.directory.iterdir():
            name = child.name
            try:
                stat = child.stat()
            except FileNotFoundError:
                continue  # removed by another process meanwhile
            if name.startswith(_TEMP_PREFIX):
                if stat.st_mtime_ns < stale_ns:
                    leftovers.append(child)  # a crash mid-write; a younger one may be a write in progress
                continue
            stem, suffix = os.path.splitext(name)
            if suffix not in (_DATA_SUFFIX, _META_SUFFIX) or not KEY_RE.fullmatch(stem):
                continue  # not ours (the lock file included): leave it alone
            found.setdefault(stem, {})[suffix] = stat
        entries: dict[str, Entry] = {}
        for key, stats in found.items():
            if len(stats) == 2:
                data_stat = stats[_DATA_SUFFIX]
                entries[key] = Entry(data_stat.st_size + stats[_META_SUFFIX].st_size, data_stat.st_mtime_ns)
            elif all(stat.st_mtime_ns < stale_ns for stat in stats.values()):
                leftovers.extend(self.paths(key))  # half an entry is no entry
        if leftovers:
            with self.locked(exclusive=True):
                for path in leftovers:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        return entries

    def mtime(self, key: str) -> int | None:
        """When ``key`` was last used (its image file's mtime; in the future while held), or None if gone."""
        try:
            return self.paths(key)[0].stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def touch(self, key: str, until_ns: int) -> bool:
        """Whether ``key`` is there; if so it is held until ``until_ns`` (its mtime, never moved back)."""
        data_path, meta_path = self.paths(key)
        with self.locked(exclusive=False):
            try:
                if not meta_path.exists():
                    return False
                _use(data_path, until_ns)
            except FileNotFoundError:
                return False
            return True

    def read(self, key: str, now_ns: int) -> tuple[bytes, dict[str, Any]] | None:
        """The image and metadata of ``key`` (its use recorded), or None."""
        data_path, meta_path = self.paths(key)
        with self.locked(exclusive=False):
            try:
                data = data_path.read_bytes()
                metadata = json.loads(meta_path.read_text(encoding="utf-8"))
                if not isinstance(metadata, dict):
                    raise ValueError("metadata is not an object")
            except FileNotFoundError:
                return None  # never cached, evicted, or deleted: a miss
            except ValueError:
                # Damaged behind our back: a miss, and the entry goes rather than fail every request.
                log.warning("dropping unreadable cache entry %s", key, exc_info=True)
                self.unlink(key)
                return None
            except OSError:
                log.warning("cannot read cache entry %s", key, exc_info=True)
                return None
            with contextlib.suppress(OSError):
                _use(data_path, now_ns)
        return data, metadata

    def write(self, key: str, data: bytes, sidecar: bytes, now_ns: int) -> None:
        """Store an entry, replacing any under ``key``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data_path, meta_path = self.paths(key)
        with self.locked(exclusive=True):  # a reader sees both files of one write, never a mix
            # Sidecar first: an image file always has its sidecar.
            self._atomic_write(meta_path, sidecar)
            self._atomic_write(data_path, data)
            os.utime(data_path, ns=(now_ns, now_ns))

    def _atomic_write(self, path: Path, content: bytes) -> None:
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise

    def remove(self, key: str) -> bool:
        """Remove ``key``'s files; whether it was there."""
        with self.locked(exclusive=True):
            present = self.paths(key)[0].exists()
            self.unlink(key)
        return present

    def unlink(self, key: str) -> None:
        """Delete ``key``'s files (the caller holds the lock)."""
        for path in self.paths(key):  # the image first: without it the entry is gone at once
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _use(path: Path, at_ns: int) -> None:
    """Record a use of an entry at ``at_ns`` (a time in the future holds it); never moves a hold back."""
    if path.stat().st_mtime_ns < at_ns:
        with contextlib.suppress(PermissionError):  # another user's file: still there, use not recorded
            os.utime(path, ns=(at_ns, at_ns))
