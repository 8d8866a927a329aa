"""The CSV export of a server's ledger, streamed: pages of rows in, files of bounded size out.

A server with a year of history has hundreds of thousands of ledger rows (tens of MB of CSV), more
than one Discord upload takes and more than should sit in memory. :class:`LedgerExport` reads the
rows a page at a time (``WHERE guild_id = ? AND id > <last id> ORDER BY id LIMIT n``: the
``ledger_by_guild`` index, each page one short read, no transaction held across pages), formats each
page off the event loop, and writes the CSV into parts of at most ``max_bytes`` each, every part with
the header row; each part is handed over as soon as it is complete, as an unnamed temporary file (it
disappears when closed, or with the process). The ledger only grows by appending rows, so the pages
together are the rows as they were when the export began, plus any added meanwhile.
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.storage.database import Database

PAGE_ROWS = 5_000
LEDGER_CSV_COLUMNS = (
    "id", "at_utc", "kind", "job_id", "user_id", "model", "server_usd", "member_usd", "member_images",
    "actor_id", "note",
)  # fmt: skip
_PAGE_SQL = (
    "SELECT id, at, kind, job_id, user_id, model, server_micros, member_micros, member_images, actor_id, note"
    " FROM ledger l WHERE guild_id = ? AND id > ?{where} ORDER BY id LIMIT ?"
)
_COUNT_SQL = "SELECT COUNT(*) FROM ledger l WHERE guild_id = ?{where}"
_MIN_PART_BYTES = 4_096  # room for the header and the longest row


@dataclass
class ExportPart:
    """One CSV file of the export: an open temporary file at its start; close it when done with it."""

    number: int  # from 1
    file: io.BufferedRandom
    rows: int
    size: int  # bytes


class LedgerExport:
    """One server's ledger as CSV parts; :attr:`rows_done` counts the rows written so far (progress)."""

    def __init__(
        self,
        db: Database,
        guild_id: int,
        *,
        max_bytes: int,
        directory: Path,
        page_rows: int = PAGE_ROWS,
        only: tuple[str, tuple[str, ...]] = ("", ()),
    ) -> None:
        """``only``: extra ``AND …`` SQL on the ledger (alias ``l``) and its params (a period's rows)."""
        if max_bytes < _MIN_PART_BYTES:
            raise ValueError(f"a part must be allowed at least {_MIN_PART_BYTES} bytes")
        self._where, self._params = only
        self._db = db
        self._guild_id = guild_id
        self._max_bytes = max_bytes
        self._directory = directory
        self._page_rows = page_rows
        self.rows_done = 0

    async def total(self) -> int:
        """How many rows the server's ledger holds now (index only: no row is read)."""
        sql = _COUNT_SQL.format(where=self._where)
        return int(await self._db.fetch_value(sql, (self._guild_id, *self._params), default=0))

    async def parts(self) -> AsyncIterator[ExportPart]:
        """The CSV parts in order, each yielded once complete (none for an empty ledger)."""
        header = _encode([LEDGER_CSV_COLUMNS])
        part: ExportPart | None = None
        count = 0
        try:
            async for page in self._pages():
                pending: list[bytes] = []  # this page's lines for the current part, written at once
                for line in await asyncio.to_thread(_encode_rows, page):
                    if part is not None and part.size + len(line) > self._max_bytes:
                        await _write(part, pending)
                        finished, part, pending = part, None, []
                        yield await _rewound(finished)
                    if part is None:
                        count += 1
                        part = ExportPart(count, await self._open(), 0, len(header))
                        pending.append(header)
                    pending.append(line)
                    part.size += len(line)
                    part.rows += 1
                    self.rows_done += 1
                if part is not None:
                    await _write(part, pending)
            if part is not None:
                finished, part = part, None
                yield await _rewound(finished)
        finally:
            if part is not None:  # abandoned midway: nobody else will close it
                part.file.close()

    async def _pages(self) -> AsyncIterator[list[tuple[Any, ...]]]:  # a ledger row's columns, as stored
        after = -1
        while True:
            sql = _PAGE_SQL.format(where=self._where)
            rows = await self._db.fetch_all(sql, (self._guild_id, after, *self._params, self._page_rows))
            if not rows:
                return
            page = [tuple(row) for row in rows]
            yield page
            if len(page) < self._page_rows:
                return
            after = int(page[-1][0])

    async def _open(self) -> io.BufferedRandom:
        return await asyncio.to_thread(tempfile.TemporaryFile, dir=self._directory)


async def _write(part: ExportPart, lines: list[bytes]) -> None:
    if lines:
        await asyncio.to_thread(part.file.write, b"".join(lines))


async def _rewound(part: ExportPart) -> ExportPart:
    await asyncio.to_thread(part.file.seek, 0)
    return part


class _Lines(list[bytes]):
    """A csv.writer's file that keeps each row it writes as one encoded line."""

    def write(self, text: str) -> None:
        self.append(text.encode("utf-8"))


def _encode(rows: Sequence[Sequence[object]]) -> bytes:
    return b"".join(_csv_lines(rows))


def _csv_lines(rows: Sequence[Sequence[object]]) -> list[bytes]:
    lines = _Lines()
    csv.writer(lines).writerows(rows)
    return lines


def _encode_rows(rows: list[tuple[Any, ...]]) -> list[bytes]:
    """Each ledger row as one encoded CSV line (times in ISO UTC, amounts in exact decimal dollars)."""
    shown = []
    for row in rows:
        values = ["" if v is None else v for v in row]
        values[1] = _iso_utc(row[1])
        values[6] = _micros_as_usd(row[6])
        values[7] = _micros_as_usd(row[7])
        shown.append(tuple(values))
    return _csv_lines(shown)


def _iso_utc(at_ms: int) -> str:
    """Unix milliseconds as ``2026-11-18T12:00:00.250Z``."""
    stamp = datetime.fromtimestamp(at_ms // 1000, UTC)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{at_ms % 1000:03d}Z"


def _micros_as_usd(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}.{fraction:06d}"
