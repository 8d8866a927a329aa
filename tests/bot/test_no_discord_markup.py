"""The core returns data and never writes Discord markup (docs/architecture.md): ``cogs/_render.py`` does."""

import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "bot"
# A timestamp, a member / role / channel mention, or discord.py's timestamp helper.
MARKUP = re.compile(r"<t:|<@|<#|format_dt")


def core_modules():
    return sorted(CORE.rglob("*.py"))


def test_the_core_has_modules_to_check():
    assert len(core_modules()) > 50


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(CORE)))
def test_no_core_module_writes_discord_markup(path):
    found = [
        f"{path.relative_to(CORE)}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if MARKUP.search(line)
    ]
    assert not found, "Discord markup belongs in cogs/_render.py:\n" + "\n".join(found)


def test_the_check_catches_markup(tmp_path):
    assert MARKUP.search('f"resets <t:{stamp}:R>"') and MARKUP.search('f"<@{user_id}>"')
    assert MARKUP.search("discord.utils.format_dt(when)") and MARKUP.search('f"<#{channel_id}>"')
