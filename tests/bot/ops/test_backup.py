"""The online backup: a consistent copy while another connection keeps writing."""

import sqlite3
import threading

import pytest

from bot.ops.backup import BackupError, backup_database, backup_target


def _writer_db(path):
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, note TEXT)")
    db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL)")
    return db


def test_copy_taken_while_writes_continue_holds_whole_transactions_only(tmp_path):
    source = tmp_path / "live.sqlite3"
    db = _writer_db(source)
    stop = threading.Event()
    written = threading.Semaphore(0)

    def write():
        n = 0
        while not stop.is_set():
            n += 1
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO jobs (id, note) VALUES (?, ?)", (n, "x" * 2000))  # pages grow the file
            db.execute("INSERT INTO ledger (job_id) VALUES (?)", (n,))
            db.execute("COMMIT")
            written.release()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(200):  # the database is busy before the copy starts
            assert written.acquire(timeout=10)
        results = [backup_database(source, tmp_path / f"copy{i}.sqlite3") for i in range(3)]
    finally:
        stop.set()
        writer.join()
    total = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    db.close()
    for result in results:
        copy = sqlite3.connect(result.path)
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        jobs = copy.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        # each transaction wrote a job and its ledger row: a consistent copy has both or neither
        orphans = copy.execute(
            "SELECT COUNT(*) FROM jobs WHERE id NOT IN (SELECT job_id FROM ledger)"
            " UNION ALL SELECT COUNT(*) FROM ledger WHERE job_id NOT IN (SELECT id FROM jobs)"
        ).fetchall()
        copy.close()
        assert 200 <= jobs <= total and result.jobs == jobs == result.ledger_rows
        assert orphans == [(0,), (0,)]
    assert not list(tmp_path.glob(".*partial"))


def test_a_folder_gets_a_time_stamped_file(tmp_path):
    source = tmp_path / "db.sqlite3"
    _writer_db(source).close()
    folder = tmp_path / "backups"
    folder.mkdir()
    result = backup_database(source, folder)
    assert result.path.parent == folder and result.path.name.startswith("fluxcord-")
    assert backup_target(tmp_path / "x.sqlite3") == tmp_path / "x.sqlite3"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: (tmp / "missing.sqlite3", tmp / "copy.sqlite3"), "there is no database"),
        (lambda tmp: (tmp / "db.sqlite3", tmp / "db.sqlite3"), "the database itself"),
        (lambda tmp: (tmp / "db.sqlite3", tmp / "nowhere" / "copy.sqlite3"), "does not exist"),
    ],
)
def test_bad_paths_are_one_line_errors_and_write_nothing(tmp_path, make, message):
    _writer_db(tmp_path / "db.sqlite3").close()
    source, destination = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BackupError, match=message):
        backup_database(source, destination)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("args", "status", "line"),
    [
        (["backup"], 2, "usage: python -m bot ["),
        (["backup", "nowhere/copy.sqlite3"], 1, "fluxcord: backup failed: there is no database at "),
    ],
)
def test_the_command_line_fails_in_one_line(tmp_path, args, status, line):
    import subprocess
    import sys

    from tests.e2e.processes import clean_environment

    env = clean_environment(DISCORD_TOKEN="unused-token", BFL_API_KEY="unused-key", DATABASE_PATH="missing.sqlite3")
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == status
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith(line)
    assert done.stdout == "" and not list(tmp_path.iterdir())
