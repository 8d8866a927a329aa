"""The harness is strict: a deliberately broken bot makes these checks fail.

Each test breaks the real bot in one way and asserts the fake Discord caught it — the same checks
that every other e2e test relies on (`fake.assert_clean()` at teardown fails on any of these).
"""

import discord
import pytest

import cogs._admission
from tests.e2e.support import hold_admissions


async def test_an_acknowledgement_after_the_deadline_is_caught(harness, monkeypatch):
    fake = harness.fake
    # Broken: a slow admission, and no early acknowledgement to cover it.
    released = hold_admissions(monkeypatch)
    monkeypatch.setattr(cogs._admission, "ACK_BUDGET_SECONDS", 3600)
    interaction = await harness.imagine(wait=False)
    await fake.wait_for(lambda: fake.connected)
    fake.clock.advance(3.5)  # Discord's 3 s pass without an answer
    released.set()
    violations = await fake.wait_for(lambda: fake.take_violations(10062))
    assert violations and not interaction.acked
    fake.assert_clean_at_teardown = False  # the bot's later calls on the dead token are expected failures


async def test_a_payload_discord_rejects_is_caught(harness, monkeypatch):
    fake = harness.fake
    import cogs._presenter as module

    real_render = module.render_embed

    def oversized_embed(*args, **kwargs):
        embed = real_render(*args, **kwargs)
        for index in range(30):  # Broken: Discord allows 25 fields
            embed.add_field(name=f"extra {index}", value="x")
        return embed

    monkeypatch.setattr(module, "render_embed", oversized_embed)
    await harness.imagine(wait=False)
    violations = await fake.wait_for(lambda: fake.take_violations(50035))
    assert "25" in str(violations[0]) or "field" in str(violations[0]).lower()
    fake.assert_clean_at_teardown = False


async def test_a_double_acknowledgement_is_caught(harness, monkeypatch):
    fake = harness.fake
    original_send = discord.InteractionResponse.send_message

    async def send_twice(self, *args, **kwargs):
        await original_send(self, *args, **kwargs)
        self._response_type = None  # Broken: forgets it already answered, so answers again
        await original_send(self, *args, **kwargs)

    monkeypatch.setattr(discord.InteractionResponse, "send_message", send_twice)
    await harness.imagine(wait=False)
    violations = await fake.wait_for(lambda: fake.take_violations(40060))
    assert violations
    fake.assert_clean_at_teardown = False


@pytest.mark.parametrize("fake_discord_options", [{"attachment_size_limit": 1000}])
async def test_an_upload_over_the_limit_is_caught(harness, monkeypatch):
    async def no_reencoding(data, limit_bytes, *, basename="fluxcord"):
        from bot.images.codec import fit_to_limit

        return fit_to_limit(data, 10**9, basename=basename)  # Broken: ignores Discord's limit

    import cogs._presenter

    monkeypatch.setattr(cogs._presenter, "fit_for_upload", no_reencoding)
    await harness.imagine(wait=False)
    assert await harness.fake.wait_for(lambda: harness.fake.take_violations(40005))
    harness.fake.assert_clean_at_teardown = False
