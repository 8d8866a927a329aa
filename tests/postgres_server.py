"""A throwaway PostgreSQL server for the tests, on loopback, from the machine's own binaries.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user (or
``nobody``) and the commands run through ``runuser``. The data folder and the socket folder are in
one temporary folder, the port is a free one on 127.0.0.1, durability is off (``fsync=off``: a
crash loses a test database, nothing else). Every test gets its own database, cloned from a
migrated template (``CREATE DATABASE … TEMPLATE``), so tests never see each other's rows.

``FLUXCORD_TEST_DATABASE_URL`` points the tests at an existing server instead (the role needs
CREATEDB); the databases the run creates there are dropped at the end.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import asyncpg

TEMPLATE = f"fluxcord_template_{os.getpid()}"
_names = itertools.count(1)


def find_bindir() -> Path | None:
    """The folder with initdb and pg_ctl: the newest /usr/lib/postgresql/*/bin, else the PATH's."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_blocking(coro) -> object:
    """Run a coroutine to completion on a private event loop (callable from inside a running loop)."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


class PostgresServer:
    """A started server (or an existing one): :meth:`new_database` gives each test a migrated database."""

    def __init__(self) -> None:
        self.admin_url = ""
        self._folder: Path | None = None
        self._prefix: list[str] = []
        self._pg_ctl: Path | None = None
        self._created: list[str] = []
        self.external = False

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, bindir: Path, *, durable: bool = False) -> None:
        """initdb + pg_ctl start on a free loopback port; then the migrated template.

        ``durable`` keeps PostgreSQL's default fsync and synchronous commits (for benchmarks).
        """
        folder = Path(tempfile.mkdtemp(prefix="fluxcord-pg-"))
        self._folder = folder
        if os.geteuid() == 0:
            user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            self._prefix = ["runuser", "-u", user, "--"]
        data, log = folder / "data", folder / "server.log"
        subprocess.run(
            [*self._prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            check=True, capture_output=True, cwd=folder,
        )  # fmt: skip
        port = _free_port()
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=64MB"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._pg_ctl = bindir / "pg_ctl"
        subprocess.run(
            [*self._prefix, str(self._pg_ctl), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options,
             "start"],
            check=True, capture_output=True, cwd=folder,
        )  # fmt: skip
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._make_template()

    def use_existing(self, url: str) -> None:
        """Use the server at ``url`` (creating and dropping databases there)."""
        self.admin_url = url
        self.external = True
        self._make_template()

    def stop(self) -> None:
        """Stop the server and delete its folder (or drop the databases made on an existing server)."""
        if self.external:
            _run_blocking(self._drop([*self._created, TEMPLATE]))
            return
        if self._pg_ctl is not None and self._folder is not None:
            subprocess.run(
                [*self._prefix, str(self._pg_ctl), "-D", str(self._folder / "data"), "-m", "immediate", "-w", "stop"],
                capture_output=True, cwd=self._folder,
            )  # fmt: skip
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    # -- databases --------------------------------------------------------------------------------

    def url_of(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{name}"

    async def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database (a copy of the migrated template, or empty); its URL."""
        name = f"fluxcord_test_{os.getpid()}_{next(_names)}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            template = TEMPLATE if migrated else "template0"
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await conn.close()
        self._created.append(name)
        return self.url_of(name)

    def _make_template(self) -> None:
        from bot.storage.postgres import PostgresDatabase

        async def make() -> None:
            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
                await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
            finally:
                await conn.close()
            db = await PostgresDatabase.connect(self.url_of(TEMPLATE))
            await db.close()

        _run_blocking(make())

    async def _drop(self, names: list[str]) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
