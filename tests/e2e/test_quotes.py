"""A price is offered only when it can be paid (issue 21 item 6), through the real bot.

Before any confirmation (CONFIRM_ABOVE_USD), a gallery quote, a Final or a fallback offer, the same
check the reservation will make decides: when the member's (or the server's) budget or image quota
cannot cover the estimate, the answer is the budget refusal (what is left, when it resets, whom to
ask) and there is no Generate (or Use) button. Nothing is reserved, nothing reaches BFL.
"""

from __future__ import annotations

from tests.e2e.gallery import custom_ids, labels, posted
from tests.e2e.support import rows, text_of, uid
from tests.e2e.test_budget import budget
from tests.e2e.test_fallback import break_model, buttons, clock, engine_options  # noqa: F401 - fixtures


async def asked(harness, user, **options):
    """Run `/imagine` and wait for its first (private) answer."""
    interaction = await harness.fake.slash("imagine", options, user=user)
    await interaction.wait_acked()
    await harness.fake.wait_for(lambda: interaction.original_message is not None or interaction.followups)
    return interaction


def offered_buttons(interaction):
    messages = [m for m in [interaction.original_message, *interaction.followups] if m]
    return [c for m in messages for c in custom_ids(m) if c.startswith(("fluxcord:go:", "fluxcord:fallback:"))]


async def assert_nothing_spent(harness, interaction, *, submits=0, ledger=0):
    assert offered_buttons(interaction) == []
    assert len(harness.bfl.submits) == submits
    assert await harness.services.db.fetch_value("SELECT COUNT(*) FROM ledger", default=0) == ledger
    assert await harness.services.jobs.get(int(interaction.id)) is None


async def test_no_generate_button_for_a_single_request_over_the_members_budget(harness, people):
    """$0.50 left, a $0.607 FLUX 3 4k request: the budget refusal, not a price with Generate."""
    refused = await asked(harness, people["member"], prompt="a cathedral", model="flux-3-image", resolution="4k")
    text = text_of(refused)
    assert refused.ephemeral
    assert "Your daily budget doesn't cover this image" in text
    assert "$0.607" in text and "$0.50 is left of $0.50" in text  # what it costs, what is left
    assert "It resets <t:" in text and "/budget grant" in text  # when it resets, whom to ask
    assert "Generate" not in text
    await assert_nothing_spent(harness, refused)


async def test_a_price_within_the_budget_is_still_offered(harness, people):
    member = people["member"]
    await budget(harness, "set", people["mod"], who=uid(member), amount="1", period="day")
    offer = await asked(harness, member, prompt="a cathedral", model="flux-3-image", resolution="4k")
    assert "$0.607" in text_of(offer) and len(offered_buttons(offer)) == 1


async def test_no_generate_button_for_a_gallery_over_the_servers_budget(harness, people):
    """4 × $0.08 = $0.32 quoted against a server with $0.25 a day: the server's refusal."""
    await budget(harness, "server", people["mod"], amount="0.25", period="day")
    refused = await asked(harness, people["member"], prompt="a fox", model="flux-kontext-max", count=4)
    text = text_of(refused)
    assert "This server's daily budget doesn't cover these 4 images" in text
    assert "$0.32" in text and "/budget server" in text and "It resets <t:" in text
    await assert_nothing_spent(harness, refused)


async def test_no_generate_button_for_a_gallery_over_the_members_image_quota(harness, people):
    member = people["member"]
    await budget(harness, "images", people["mod"], who=uid(member), count=3, period="day")
    refused = await asked(harness, member, prompt="a fox", model="flux-kontext-max", count=4)
    assert "Your daily image quota doesn't cover these 4 images" in text_of(refused)
    await assert_nothing_spent(harness, refused)


async def test_no_generate_button_for_a_final_over_the_budget(harness, people):
    """Cheap drafts fit; their FLUX 3 4k Final ($0.607) does not: refused on the Final click."""
    fake, member = harness.fake, people["member"]
    drafts = await harness.imagine(
        prompt="a castle", draft=True, model="flux-3-image", resolution="4k", user=member, wait=False
    )
    members = await posted(harness, drafts)
    assert "Final #1" in labels(drafts.original_message)
    submits = len(harness.bfl.submits)
    ledger = await harness.services.db.fetch_value("SELECT COUNT(*) FROM ledger", default=0)
    final = await fake.click(drafts.original_message["id"], f"fluxcord:final:{members[0].id}:1", user=member)
    await final.wait_acked()
    await fake.wait_for(lambda: final.original_message is not None or final.followups)
    assert final.ephemeral and "Your daily budget doesn't cover this image" in text_of(final)
    await assert_nothing_spent(harness, final, submits=submits, ledger=ledger)


async def test_no_use_button_for_a_fallback_over_the_budget(harness, people, clock):  # noqa: F811
    """The fallback model's price is over what is left: the trouble, the budget refusal, no button."""
    member = people["member"]
    await break_model(harness)
    await budget(harness, "fallback", people["mod"], model="flux-kontext-max")
    await budget(harness, "set", people["mod"], who=uid(member), amount="0.05", period="day")
    submits = len(harness.bfl.submits)
    ledger = await harness.services.db.fetch_value("SELECT COUNT(*) FROM ledger", default=0)
    refused = await harness.imagine(prompt="a lighthouse", user=member)
    text = text_of(refused)
    assert refused.ephemeral and "is having trouble right now" in text
    assert "FLUX.1 Kontext [max]" in text and "Your daily budget doesn't cover this image" in text
    assert buttons(refused.original_message) == []
    await assert_nothing_spent(harness, refused, submits=submits, ledger=ledger)
    no_offer = "SELECT * FROM offers WHERE kind = 'fallback'"
    assert await rows(harness, no_offer) == []  # no offer kept for a price it can't pay


async def test_no_use_button_for_a_gallery_fallback_over_the_budget(harness, people, clock):  # noqa: F811
    member = people["member"]
    await break_model(harness)
    await budget(harness, "fallback", people["mod"], model="flux-kontext-max")
    submits = len(harness.bfl.submits)
    refused = await harness.imagine(prompt="a lighthouse", user=member, count=4, seed=3)  # 4 × $0.08 ≤ $0.50
    assert len(buttons(refused.original_message)) == 1  # affordable: offered
    await budget(harness, "images", people["mod"], who=uid(member), count=3, period="day")
    again = await harness.imagine(prompt="a lighthouse", user=member, count=4, seed=4)
    assert "Your daily image quota doesn't cover these 4 images" in text_of(again)
    assert buttons(again.original_message) == [] and len(harness.bfl.submits) == submits
