"""A size-bounded on-disk cache of generated images, keyed by :meth:`GenerationRequest.cache_key`.

Layout: one ``<key>.img`` file (the bytes) and one ``<key>.json`` sidecar (metadata) per entry in a
single directory. Writes go to a temporary file first and are moved into place with ``os.replace``,
so a crash never leaves a half-written entry under a real name. Recency is the image file's mtime
(touched on every hit), so least-recently-used eviction survives restarts: the in-memory index is
rebuilt from the directory on first use.

All filesystem work runs in a worker thread; an :class:`asyncio.Lock` serialises index changes.
One process per directory: two bots sharing a cache directory would each evict blind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["CachedImage", "ImageCache", "InvalidCacheKey"]

_KEY_RE = re.compile(r"[0-9a-f]{16,128}")
_DATA_SUFFIX = ".img"
_META_SUFFIX = ".json"
_TEMP_PREFIX = ".tmp-"


class InvalidCacheKey(ValueError):
    """A key that is not lowercase hex (keys become file names, so nothing else is allowed)."""


@dataclass(frozen=True)
class CachedImage:
    """A cache hit: the image bytes and the metadata stored with them."""

    key: str
    data: bytes
    metadata: dict[str, Any]


@dataclass
class _Entry:
    size: int  # bytes on disk: image + sidecar
    used_ns: int  # last use, as the image file's mtime


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise InvalidCacheKey("cache keys are 16-128 lowercase hex characters")
    return key


class ImageCache:
    """Images by key, at most ``max_bytes`` on disk; ``max_bytes == 0`` disables the cache."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes cannot be negative")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = asyncio.Lock()
        # Least recently used first; None until the directory has been scanned.
        self._index: OrderedDict[str, _Entry] | None = None
        self._total = 0
        self._last_ns = 0

    @property
    def enabled(self) -> bool:
        """Whether the cache stores anything at all."""
        return self.max_bytes > 0

    @property
    def total_bytes(self) -> int:
        """Bytes the cache currently holds on disk (0 before first use)."""
        return self._total

    # -- public API -------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The image stored under ``key``, or ``None``; a hit makes it the most recently used."""
        entry = await self.get_entry(key)
        return None if entry is None else entry.data

    async def contains(self, key: str) -> bool:
        """Whether ``key`` is cached, without reading the image (admission only needs to know)."""
        _check_key(key)
        if not self.enabled:
            return False
        async with self._lock:
            return key in await self._ensure_index()

    async def get_entry(self, key: str) -> CachedImage | None:
        """The image and its metadata under ``key``, or ``None``; a hit counts as a use."""
        _check_key(key)
        if not self.enabled:
            return None
        async with self._lock:
            index = await self._ensure_index()
            if key not in index:
                return None
            now = self._next_ns()
            try:
                data, metadata = await asyncio.to_thread(self._read_and_touch, key, now)
            except (OSError, ValueError):
                # Deleted or damaged behind our back: forget it rather than fail the command.
                log.warning("dropping unreadable cache entry %s", key, exc_info=True)
                await asyncio.to_thread(self._unlink_entry, key)
                self._forget(key)
                return None
            index[key].used_ns = now
            index.move_to_end(key)
            return CachedImage(key=key, data=data, metadata=metadata)

    async def put(self, key: str, data: bytes, *, metadata: dict[str, Any]) -> None:
        """Store ``data`` (and JSON-serialisable ``metadata``) under ``key``, evicting LRU entries to fit.

        An entry larger than the whole cache is not stored. Replacing an existing key is allowed.
        """
        _check_key(key)
        sidecar = json.dumps(metadata, sort_keys=True, ensure_ascii=False).encode("utf-8")
        if not self.enabled:
            return
        size = len(data) + len(sidecar)
        if size > self.max_bytes:
            log.info("not caching %s: %d bytes exceed the cache size %d", key, size, self.max_bytes)
            return
        async with self._lock:
            index = await self._ensure_index()
            now = self._next_ns()
            try:
                await asyncio.to_thread(self._write_entry, key, data, sidecar, now)
            except OSError:
                # A full or read-only disk must not fail the generation that was being cached.
                log.warning("could not cache %s", key, exc_info=True)
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(self._unlink_entry, key)
                self._forget(key)
                return
            self._forget(key)
            index[key] = _Entry(size=size, used_ns=now)
            self._total += size
            await self._evict_locked(keep=key)

    async def delete(self, key: str) -> bool:
        """Remove ``key`` (e.g. on a member's deletion request); ``True`` if it was cached."""
        _check_key(key)
        if not self.enabled:
            return False
        async with self._lock:
            index = await self._ensure_index()
            present = key in index
            await asyncio.to_thread(self._unlink_entry, key)
            self._forget(key)
            return present

    # -- index ------------------------------------------------------------------------------------

    async def _ensure_index(self) -> OrderedDict[str, _Entry]:
        if self._index is None:
            entries = await asyncio.to_thread(self._scan)
            self._index = OrderedDict(sorted(entries.items(), key=lambda item: item[1].used_ns))
            self._total = sum(entry.size for entry in entries.values())
            self._last_ns = max((entry.used_ns for entry in entries.values()), default=0)
            log.info("image cache: %d entries, %d bytes in %s", len(entries), self._total, self.directory)
            # The limit may have shrunk since the last run.
            await self._evict_locked(keep=None)
        return self._index

    def _forget(self, key: str) -> None:
        assert self._index is not None
        entry = self._index.pop(key, None)
        if entry is not None:
            self._total -= entry.size

    async def _evict_locked(self, keep: str | None) -> None:
        assert self._index is not None
        victims: list[str] = []
        total = self._total
        for key, entry in self._index.items():  # oldest first
            if total <= self.max_bytes:
                break
            if key == keep:
                continue
            victims.append(key)
            total -= entry.size
        if not victims:
            return
        await asyncio.to_thread(self._unlink_many, victims)
        for key in victims:
            self._forget(key)
        log.debug("evicted %d cache entries", len(victims))

    def _next_ns(self) -> int:
        # Strictly increasing, so two uses within one clock tick still have an order after a restart.
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return self._last_ns

    # -- filesystem (worker thread only) ----------------------------------------------------------

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}{_DATA_SUFFIX}", self.directory / f"{key}{_META_SUFFIX}"

    def _scan(self) -> dict[str, _Entry]:
        self.directory.mkdir(parents=True, exist_ok=True)
        found: dict[str, dict[str, os.stat_result]] = {}
        for child in self.directory.iterdir():
            name = child.name
            if name.startswith(_TEMP_PREFIX):
                # Left over from a crash mid-write.
                with contextlib.suppress(OSError):
                    child.unlink()
                continue
            stem, suffix = os.path.splitext(name)
            if suffix not in (_DATA_SUFFIX, _META_SUFFIX) or not _KEY_RE.fullmatch(stem):
                continue  # not ours: leave it alone
            with contextlib.suppress(OSError):
                found.setdefault(stem, {})[suffix] = child.stat()
        entries: dict[str, _Entry] = {}
        for key, stats in found.items():
            if len(stats) != 2:
                self._unlink_entry(key)  # half an entry is no entry
                continue
            data_stat = stats[_DATA_SUFFIX]
            entries[key] = _Entry(size=data_stat.st_size + stats[_META_SUFFIX].st_size, used_ns=data_stat.st_mtime_ns)
        return entries

    def _read_and_touch(self, key: str, now_ns: int) -> tuple[bytes, dict[str, Any]]:
        data_path, meta_path = self._paths(key)
        data = data_path.read_bytes()
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not an object")
        os.utime(data_path, ns=(now_ns, now_ns))
        return data, metadata

    def _write_entry(self, key: str, data: bytes, sidecar: bytes, now_ns: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data_path, meta_path = self._paths(key)
        # Sidecar first: an image file without its sidecar is dropped at the next scan.
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

    def _unlink_entry(self, key: str) -> None:
        for path in self._paths(key):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _unlink_many(self, keys: list[str]) -> None:
        for key in keys:
            self._unlink_entry(key)
