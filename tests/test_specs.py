"""The tests are self-contained: the API schemas they validate against are vendored, unmodified, in tests/specs."""

import hashlib
import re
from pathlib import Path

import pytest

from tests.e2e import fake_discord
from tests.fakes import fake_bfl

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "tests" / "specs"
VENDORED = (
    "bfl-openapi-2026.json",
    "bfl-openapi.json",
    "discord-openapi.json",
    "bfl-flux3-image.json",
    "bfl-flux-tools-deblur-v1.json",
    "bfl-flux-3-video.json",
    "bfl-flux-tools-outpainting-v1.json",
    "bfl-flux-2-klein-4b-finetuned.json",
    "bfl-flux-2-klein-9b-finetuned.json",
)


def recorded_checksums():
    table = (SPECS / "README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `([\w.-]+\.json)` \|.*\| `([0-9a-f]{64})` \|$", table, flags=re.MULTILINE))


@pytest.mark.parametrize("name", VENDORED)
def test_each_vendored_spec_is_unmodified(name):
    """The README records each file's source, licence and checksum; an edit to a file fails here."""
    assert hashlib.sha256((SPECS / name).read_bytes()).hexdigest() == recorded_checksums()[name]


def test_the_readme_names_source_commit_and_licence_of_each_file():
    table = (SPECS / "README.md").read_text(encoding="utf-8")
    assert set(recorded_checksums()) == set(VENDORED)
    assert "bdbcd9adb9801eb0cd8ac8dacfc5abc22bd13fff" in table and "74fda0fad044407ea280043a03ffc9bc64c4e49e" in table
    assert "3ecde7ee20a31e67462e139d686c03ac069a407d" in table  # bfl-openapi-2026.json
    assert table.count("MIT") >= 3 and "reconstructed" in table


def test_the_fakes_validate_against_the_vendored_specs_by_default(monkeypatch):
    monkeypatch.delenv("BFL_OPENAPI_SPEC", raising=False)
    monkeypatch.delenv("DISCORD_OPENAPI_SPEC", raising=False)
    assert fake_bfl.spec_path() == SPECS / "bfl-openapi-2026.json"
    assert fake_discord.default_spec_path() == SPECS / "discord-openapi.json"
    assert fake_discord.load_spec() is not None  # a missing spec would silently turn validation off


def _text_files():
    skip = {".git", ".pytest_cache", ".ruff_cache", "__pycache__", ".venv", "build"}
    suffixes = {".py", ".md", ".toml", ".cfg", ".ini", ".txt", ".example", ".sql", ""}
    for path in REPO.rglob("*"):
        parts = set(path.relative_to(REPO).parts)
        generated = parts & skip or any(part.endswith(".egg-info") for part in parts)
        if path.is_file() and not generated and path.suffix in suffixes:
            yield path


def test_nothing_in_the_repository_reaches_outside_it_for_test_data():
    outside = re.compile("|".join(map(re.escape, ["../" + "shared", '"shared" /', "/work/" + "shared"])))
    offenders = [
        str(path.relative_to(REPO))
        for path in _text_files()
        if path != Path(__file__) and outside.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []
