"""The ledger export streams: pages in, CSV parts of bounded size out, every row once and in order."""

from __future__ import annotations

import csv
import io

import pytest

from bot.billing.export import LEDGER_CSV_COLUMNS, LedgerExport
from bot.billing.ledger import Ledger
from tests.bot.billing.test_ledger import GUILD, reserve
from tests.bot.storage.query_plans import RecordingDatabase

OTHER_GUILD = GUILD + 1


async def read_all(export: LedgerExport) -> list[tuple[str, bytes]]:
    parts = []
    async for part in export.parts():
        with part.file:
            data = part.file.read()
        assert len(data) == part.size
        parts.append((f"{part.number}:{part.rows}", data))
    return parts


async def test_parts_fit_the_size_and_hold_every_row_of_the_server_once_in_order(db, clock, tmp_path):
    ledger = Ledger(db, clock)
    for n in range(80):  # 160 rows of this server, and some of another between them
        await reserve(ledger, n + 1, [], user=1000 + n, cost=10_000 + n)
        await ledger.settle(n + 1, 9_000 + n, refund_member=n % 3 == 0)
        if n % 10 == 0:
            await reserve(ledger, 10_000 + n, [], guild=OTHER_GUILD)
    counting = RecordingDatabase(db)
    export = LedgerExport(counting, GUILD, max_bytes=4_096, directory=tmp_path, page_rows=17)
    assert await export.total() == 160
    parts = await read_all(export)
    assert len(parts) >= 3 and all(len(data) <= 4_096 for _, data in parts)
    assert [name.split(":")[0] for name, _ in parts] == [str(n) for n in range(1, len(parts) + 1)]
    rows = []
    for _, data in parts:
        table = list(csv.reader(io.StringIO(data.decode())))
        assert tuple(table[0]) == LEDGER_CSV_COLUMNS  # every part has the header
        rows += table[1:]
    expected = await db.fetch_all(
        "SELECT id, kind, job_id, server_micros FROM ledger WHERE guild_id = ? ORDER BY id", (GUILD,)
    )
    assert [(int(r[0]), r[2], int(r[3])) for r in rows] == [(e["id"], e["kind"], e["job_id"]) for e in expected]
    assert [r[6] for r in rows[:2]] == ["0.010000", "-0.001000"]  # exact decimal dollars
    assert rows[0][1].endswith("Z") and rows[0][1].startswith("2026-11-18T12:00:00")
    assert export.rows_done == 160
    assert counting.largest_fetch <= 17  # never more than a page in memory


async def test_an_empty_ledger_has_no_parts(db, tmp_path):
    export = LedgerExport(db, GUILD, max_bytes=10_000, directory=tmp_path)
    assert await export.total() == 0
    assert await read_all(export) == []


async def test_a_part_must_have_room_for_a_row(db, tmp_path):
    with pytest.raises(ValueError, match="at least"):
        LedgerExport(db, GUILD, max_bytes=100, directory=tmp_path)


async def test_a_row_written_during_the_export_comes_after_the_rest(db, clock, tmp_path):
    ledger = Ledger(db, clock)
    for n in range(60):  # two parts of about 45 and 15 rows
        await reserve(ledger, n + 1, [])
    export = LedgerExport(db, GUILD, max_bytes=4_096, directory=tmp_path, page_rows=10)
    seen: list[str] = []
    async for part in export.parts():
        with part.file:
            seen += [row["job_id"] for row in csv.DictReader(io.StringIO(part.file.read().decode()))]
        if part.number == 1:
            assert len(seen) < 60
            await ledger.settle(1, 40_000)  # written while the export runs: the ledger only appends
    assert seen == [str(n + 1) for n in range(60)] + ["1"]
