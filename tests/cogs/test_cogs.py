"""Every cog loads, its commands are well formed, and the result card stays within Discord's limits."""

import aiohttp
import discord
import pytest

from bot.app import FluxcordBot, build_services, extension_names
from bot.billing.ledger import ReserveTerms
from bot.models import build_request
from tests.bot.engine.conftest import make_settings


@pytest.fixture
async def bot(db, fake_bfl, tmp_path):
    async with aiohttp.ClientSession() as session:
        settings = make_settings(fake_bfl, tmp_path)
        client = FluxcordBot(lambda poster: build_services(settings, db=db, session=session, poster=poster))
        for name in extension_names():
            await client.load_extension(name)
        yield client
        await client.close()


def test_every_module_in_cogs_is_an_extension():
    assert extension_names() == [
        "cogs.animate", "cogs.asks", "cogs.budget", "cogs.edit", "cogs.gift", "cogs.history", "cogs.imagine",
        "cogs.prefs", "cogs.privacy",
        "cogs.quota", "cogs.safety", "cogs.status", "cogs.style",
    ]  # fmt: skip


def walk(command):
    yield command
    for child in getattr(command, "commands", ()):
        yield from walk(child)


async def test_commands_are_unique_and_fully_described(bot):
    names = [command.name for command in bot.tree.get_commands(type=discord.AppCommandType.chat_input)]
    assert sorted(names) == [
        "animate", "budget", "edit", "gift", "history", "imagine", "prefs", "privacy", "quota", "safety", "status",
        "style",
    ]  # fmt: skip
    menus = bot.tree.get_commands(type=discord.AppCommandType.message)
    assert [menu.name for menu in menus] == ["Edit with FLUX"] and menus[0].guild_only
    for top in bot.tree.get_commands(type=discord.AppCommandType.chat_input):
        for command in walk(top):
            assert command.description and command.description != "…", command.qualified_name
            for parameter in getattr(command, "parameters", ()):
                assert parameter.description and parameter.description != "…", (command.qualified_name, parameter.name)
    for command in bot.tree.get_commands():
        assert discord_size(command.to_dict(bot.tree)) <= 8000, command.name  # Discord's per-command cap


def discord_size(part: dict) -> int:
    """Discord's measure of a command: the characters of every name, description and value, nested.

    (application-commands.mdx: "the combined sum of characters in name, description, and value
    properties"; with localisations, each field's longest counts.)
    """

    def longest(key: str) -> int:
        texts = [str(part.get(key) or ""), *(part.get(f"{key}_localizations") or {}).values()]
        return max(len(text) for text in texts)

    size = longest("name") + longest("description") + len(str(part.get("value", "")))
    return size + sum(discord_size(child) for key in ("options", "choices") for child in part.get(key) or ())


def test_the_size_of_a_command_is_measured_as_discord_does():
    command = {"name": "budget", "description": "Money", "options": [
        {"name": "set", "description": "Set it", "name_localizations": {"de": "festlegen"},
         "choices": [{"name": "Day", "value": "day"}]},
    ]}  # fmt: skip
    assert discord_size(command) == len("budget") + len("Money") + len("festlegen") + len("Set it") + 3 + 3


async def test_result_card_of_the_longest_prompt_fits_discords_embed_limits(bot):
    from bot.engine.progress import Result
    from bot.engine.store import NewJob
    from cogs._presenter import render_embed

    request = build_request(model=None, prompt="@everyone " + "x" * 5990, aspect_ratio="21:9", seed=1,
                            max_prompt_length=6000)  # fmt: skip
    new = NewJob(
        id=1, guild_id=1, channel_id=2, user_id=3, model=request.model.key, prompt=request.prompt,
        params=request.bfl_payload(), seed=1, width=request.width, height=request.height,
        cache_key=request.cache_key(), aspect_ratio="21:9", estimated_micros=40_000,
    )  # fmt: skip
    job = await bot.services.jobs.admit(new, ReserveTerms([], 10), cached=False, acked=True)
    embed = render_embed(Result(job, b"", 40_000, 12.3, from_cache=False), "fluxcord-1.jpg", 1408, 608, "y" * 300)
    assert len(embed) <= 6000
    assert len(embed.description) <= 4096 and len(embed.author.name) <= 256
    assert "@\u200beveryone" in embed.description


async def test_imagine_and_edit_offer_the_same_priced_resolution_tiers(bot):
    from bot.billing.money import format_usd
    from bot.models import FLUX3_RESOLUTIONS, MODELS

    def resolution_choices(name):
        command = bot.tree.get_command(name)
        (parameter,) = [p for p in command.parameters if p.name == "resolution"]
        return [(choice.name, choice.value) for choice in parameter.choices]

    imagine, edit = resolution_choices("imagine"), resolution_choices("edit")
    assert imagine == edit
    assert [value for _, value in imagine] == list(FLUX3_RESOLUTIONS)
    flux3 = MODELS["flux-3-image"]
    for label, tier in imagine:
        assert label == f"{tier} · {format_usd(flux3.estimate_cost_micros(1, 1, (), tier))}"
    assert ("4k · $0.607", "4k") in imagine  # the dearest tier is priced, not just named


async def test_option_descriptions_name_the_models_the_table_says_take_them(bot, monkeypatch):
    from bot.models import models_supporting
    from cogs._choices import only

    def described(name):
        return {p.name: p.description for p in bot.tree.get_command(name).parameters}

    imagine, edit = described("imagine"), described("edit")
    assert imagine["steps"] == "Sampling steps (FLUX.1 [dev], FLUX.2 [flex] only)"
    assert imagine["resolution"] == edit["resolution"] and imagine["grounding"] == edit["grounding"]
    assert edit["resolution"].startswith("FLUX 3 Image only:") and "FLUX 3 Image" in edit["seed"]
    monkeypatch.setattr("cogs._choices.models_supporting", lambda option: models_supporting(option)[:1])
    assert only("steps") == "FLUX.1 [dev] only"  # made from the table, not written out


def test_every_button_action_is_one_the_catch_all_leaves_alone():
    """A new button's action must be in ALL_ACTIONS, or the "no longer available" catch-all would take its clicks."""
    from cogs._buttons import LOOKS, RESULT_ROWS
    from cogs._components import ALL_ACTIONS

    assert set(LOOKS) <= set(ALL_ACTIONS)
    assert {action for row in RESULT_ROWS for action in row} <= set(LOOKS)
    assert len(RESULT_ROWS) <= 5 and all(len(row) <= 5 for row in RESULT_ROWS)  # Discord: 5 rows of 5 buttons
