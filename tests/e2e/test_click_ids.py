"""Every click is answered: a custom id that does not parse, or names an id out of range, gets a private note.

Reproduced bugs: a 30-digit job id raised ``OverflowError`` in the store (a long traceback per click),
and ``fluxcord:reroll:-1`` matched no button at all, so it was never acknowledged ("This interaction
failed"). Both now get "This button is no longer available." privately, with no call to BFL.
"""

from __future__ import annotations

import logging

import pytest

from cogs._components import UNAVAILABLE_TEXT

BROKEN_IDS = [
    "fluxcord:reroll:-1",
    "fluxcord:reroll:" + "9" * 30,
    "fluxcord:cancel:" + "1" * 30,
    "fluxcord:vary:abc",
    "fluxcord:details:",
    "fluxcord:use:" + "9" * 30 + ":1",
    "fluxcord:final:12:9",
    "fluxcord:go:nothex!!",
    "fluxcord:fallback:12",
    "fluxcord:save:12",
    "fluxcord:discard:nothex!!",
    "fluxcord:nonsense:1",
    "fluxcord:reroll",
]


@pytest.mark.parametrize("custom_id", BROKEN_IDS)
async def test_a_click_on_an_id_that_does_not_parse_is_answered_privately(harness, caplog, custom_id):
    fake = harness.fake
    mine = await harness.imagine(prompt="a harbour")
    submits = len(harness.bfl.submits)
    caplog.set_level(logging.WARNING)
    caplog.clear()
    click = await fake.forge_click(mine.original_message["id"], custom_id)
    await click.wait_acked()
    assert click.ephemeral and click.original_message["content"] == UNAVAILABLE_TEXT
    assert len(harness.bfl.submits) == submits
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
