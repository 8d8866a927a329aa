"""`/history`: the member's own last 10 jobs in this server, privately, with links."""

from __future__ import annotations

from tests.fakes.fake_bfl import Behaviour


async def test_history_lists_the_members_last_ten_jobs_privately_with_links(harness):
    fake = harness.fake
    other = fake.add_member(name="other")
    await harness.imagine(prompt="someone else's secret", user=other)
    harness.bfl.script(Behaviour(submit_status=422))
    failed = await harness.imagine(prompt="prompt number 0")
    delivered = []
    for n in range(1, 11):
        delivered.append(await harness.imagine(prompt=f"prompt number {n}", seed=n))
    asked = await fake.slash("history", {})
    await asked.wait_acked()
    assert asked.ephemeral
    [embed] = asked.original_message["embeds"]
    text = embed["description"]
    assert "Your last 10 images" in embed["title"]
    assert "someone else" not in text and "prompt number 0" not in text  # others' jobs; the 11th-newest
    for interaction in delivered:
        message = interaction.original_message
        assert f"https://discord.com/channels/{fake.guild_id}/{message['channel_id']}/{message['id']}" in text
    assert "prompt number 10" in text.split("\n\n")[0]  # newest first
    assert "$0.04" in text and "FLUX1.1 [pro]" in text and "delivered" in text
    assert failed.ephemeral or failed.original_message  # the failed one is older than the ten shown


async def test_history_when_empty_says_so(harness):
    asked = await harness.fake.slash("history", {})
    await asked.wait_acked()
    assert asked.ephemeral and "haven't made any images" in asked.original_message["content"]
