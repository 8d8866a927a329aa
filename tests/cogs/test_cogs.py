"""Every cog loads, its commands are well formed, and the result card stays within Discord's limits."""

import aiohttp
import discord
import pytest

from bot.app import FluxcordBot, build_services, extension_names
from bot.generation import GeneratedImage
from bot.models import build_request
from tests.bot.test_generation import make_settings


@pytest.fixture
async def bot(db, fake_bfl, tmp_path):
    async with aiohttp.ClientSession() as session:
        services = build_services(make_settings(fake_bfl, tmp_path), db=db, session=session)
        client = FluxcordBot(services)
        for name in extension_names():
            await client.load_extension(name)
        yield client
        await client.close()


def test_every_module_in_cogs_is_an_extension():
    assert extension_names() == ["cogs.budget", "cogs.imagine", "cogs.quota"]


def walk(command):
    yield command
    for child in getattr(command, "commands", ()):
        yield from walk(child)


async def test_commands_are_unique_and_fully_described(bot):
    names = [command.name for command in bot.tree.get_commands()]
    assert sorted(names) == ["budget", "imagine", "quota"]
    for top in bot.tree.get_commands():
        for command in walk(top):
            assert command.description and command.description != "…", command.qualified_name
            for parameter in getattr(command, "parameters", ()):
                assert parameter.description and parameter.description != "…", (command.qualified_name, parameter.name)
    payload = [command.to_dict(bot.tree) for command in bot.tree.get_commands()]
    assert all(len(str(command)) < 8000 for command in payload)  # Discord's per-command size cap


async def test_result_card_of_the_longest_prompt_fits_discords_embed_limits(bot):
    from cogs.imagine import render_embed

    request = build_request(model=None, prompt="@everyone " + "x" * 5990, aspect_ratio="21:9", seed=1,
                            max_prompt_length=6000)  # fmt: skip
    image = GeneratedImage(1, request, b"", 40_000, 12.3, from_cache=False)
    user = discord.Object(5)
    user.display_name = "y" * 300
    embed = render_embed(image, "fluxcord-1.jpg", 1408, 608, user)
    assert len(embed) <= 6000
    assert len(embed.description) <= 4096 and len(embed.author.name) <= 256
    assert "@\u200beveryone" in embed.description
