"""The backend suite runs on both databases: every test using ``db`` runs on SQLite and PostgreSQL.

A test that checks something only one engine has (PRAGMAs, the SQLite file) is marked
``@pytest.mark.sqlite_only``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request, tmp_path):
    """A migrated database of its own: a SQLite file, or a fresh PostgreSQL database."""
    from bot.storage.database import Database

    if request.param == "sqlite":
        database = await Database.open(tmp_path / "fluxcord.sqlite3")
    else:
        if request.node.get_closest_marker("sqlite_only"):
            pytest.skip("checks SQLite itself")
        server = request.getfixturevalue("postgres_server")
        database = await Database.connect(await server.new_database(), pool_size=4)
    yield database
    await database.close()
