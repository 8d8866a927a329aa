"""Every claim of the README that code can check: the Quick start, CI, the settings, commands and invite."""

import re
import shlex
from pathlib import Path

import aiohttp
import discord
import pytest

from bot.app import FluxcordBot, build_services, extension_names
from bot.billing.money import parse_usd
from bot.config import Settings, _env_name
from bot.startup import INVITE_PERMISSIONS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")

RUN = "python -m pip install -e . && python -m bot"
TEST = 'python -m pip install -e ".[test]" && python -m pytest'


def section(title):
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def table(title, first_column):
    """The rows of the first Markdown table in a section whose header starts with ``first_column``."""
    lines = section(title).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_quick_start_is_exactly_install_and_run_install_and_test_copy_env_check():
    blocks = re.findall(r"```sh\n(.*?)```", section("Quick start"), flags=re.DOTALL)
    assert [block.strip() for block in blocks] == [RUN, TEST, "cp .env.example .env", "python -m bot check"]


def test_ci_runs_exactly_the_readmes_test_command():
    script = (REPO / ".ci" / "run").read_text().splitlines()
    commands = [line for line in script if line.startswith("python ")]
    quiet = {"--disable-pip-version-check", "--quiet", "-q"}  # output flags only
    ran = " && ".join(" ".join(word for word in shlex.split(c) if word not in quiet) for c in commands)
    assert ran == " ".join(shlex.split(TEST))


def test_settings_table_lists_every_setting_with_its_default():
    rows = {row[0].strip("`"): row[1] for row in table("Settings", "variable")}
    fields = {_env_name(name): info for name, info in Settings.model_fields.items()}
    assert list(rows) == list(fields)
    for name, info in fields.items():
        if info.is_required():
            assert rows[name] == "— (required)", name
        elif info.default is None:
            assert rows[name] == "empty", name
        elif name.endswith("_USD"):
            assert parse_usd(rows[name].strip("`")) == info.default, name
        else:
            default = getattr(info.default, "value", info.default)
            assert rows[name] == f"`{default}`", name


def test_invite_url_and_permission_integer():
    value = INVITE_PERMISSIONS.value
    text = section("Creating the Discord application")
    assert f"permission\n   integer `{value}`" in text or f"permission integer `{value}`" in text
    assert f"&scope=bot+applications.commands&permissions={value}`" in text
    assert "Send Messages in Threads" in text


@pytest.fixture
async def tree(db, tmp_path):
    settings = Settings(
        _env_file=None, discord_token="t" * 12, bfl_api_key="k" * 12, database_path=tmp_path / "db.sqlite3"
    )
    async with aiohttp.ClientSession() as session:
        client = FluxcordBot(lambda poster: build_services(settings, db=db, session=session, poster=poster))
        for name in extension_names():
            await client.load_extension(name)
        yield client.tree
        await client.close()


def _leaves(command):
    """The commands under a group, nested groups included (``/safety words add``)."""
    children = getattr(command, "commands", None)
    if not children:
        return [command]
    return [leaf for child in children for leaf in _leaves(child)]


def _usage(command):
    options = [p.name if p.required else f"[{p.name}]" for p in command.parameters]
    return " ".join([f"/{command.qualified_name}", *options])


async def test_commands_table_matches_the_command_tree(tree):
    """Every command, subcommand and option in the table exists (required ones bare, optional in brackets)."""
    documented = {}
    for cell, who, _what in table("Commands", "command"):
        for usage in re.findall(r"`(/[^`]+)`", cell):  # `/budget pause` / `/budget resume` share a row
            documented[usage] = who
    actual = {}
    for top in tree.get_commands(type=discord.AppCommandType.chat_input):  # the message menu has no usage
        for command in _leaves(top):
            actual[_usage(command)] = command
    assert set(documented) == set(actual), set(documented) ^ set(actual)
    for usage, command in actual.items():
        root = command.root_parent or command
        if root.name == "style" and command.name != "list":  # moderators only, checked in code: list is for all
            assert documented[usage] == "moderators", usage
            assert root.default_permissions is None
        elif root.name in ("budget", "status", "safety"):  # the moderator commands
            assert documented[usage] == ("administrators" if command.name == "modrole" else "moderators"), usage
            assert root.default_permissions is not None and root.default_permissions.manage_guild
        else:
            assert documented[usage].startswith("everyone"), usage
            assert root.default_permissions is None
