"""`/gift` and `/budget gifts`: members give each other budget, through the real bot and the fake Discord."""

import asyncio

import pytest

from tests.e2e.support import MEMBER_PERMISSIONS, first_answer, rows, text_of, uid
from tests.e2e.test_budget import budget


async def gift(harness, giver, receiver, amount, **options):
    interaction = await harness.fake.slash("gift", {"member": uid(receiver), "amount": amount, **options}, user=giver)
    await first_answer(harness, interaction)
    return interaction


async def books(harness):
    """Everything a gift changes."""
    return (
        await rows(harness, "SELECT kind, user_id, member_micros FROM ledger ORDER BY id"),
        await rows(harness, "SELECT scope, period, granted_micros FROM usage ORDER BY scope, period"),
        await rows(harness, "SELECT * FROM gifts"),
        await rows(harness, "SELECT action FROM audit_log WHERE action = 'gift'"),
    )


@pytest.fixture
async def friend(harness):
    return harness.fake.add_member(name="friend", permissions=MEMBER_PERMISSIONS)


async def test_a_gift_lets_the_receiver_spend_it_and_the_giver_no_longer(harness, people, friend, modlog):
    fake, member, mod = harness.fake, people["member"], people["mod"]
    for who in (member, friend):
        await budget(harness, "set", mod, who=uid(who), amount="0.04", period="day")  # one image each
    turned_on = await budget(harness, "gifts", mod, cap="1.00")
    assert "$1.00 per day" in text_of(turned_on)
    given = await gift(harness, member, friend, "0.04", note="enjoy")
    assert given.ephemeral and "You gave" in text_of(given) and "$0.00 left" in text_of(given)
    dm = fake.dm_channel(friend)
    told = await fake.wait_for(lambda: [m for m in fake.messages.values() if m["channel_id"] == dm["id"]])
    assert "gave you $0.04" in told[0]["content"] and "enjoy" in told[0]["content"]
    logged = await fake.wait_for(
        lambda: [m for m in fake.messages.values() if m["channel_id"] == modlog["id"] and "🎁" in m["content"]]
    )
    assert "$0.04" in logged[0]["content"]
    refused = await harness.imagine(user=member, prompt="mine")
    assert "budget doesn't cover" in text_of(refused)
    for prompt in ("one", "two"):
        made = await harness.imagine(user=friend, prompt=prompt)
        assert made.original_message["attachments"], prompt
    assert await harness.services.ledger.verify_counters() == []


async def test_the_receiver_with_closed_dms_is_told_in_the_channel(harness, people, friend):
    fake = harness.fake
    await budget(harness, "gifts", people["mod"], cap="1.00")
    fake.closed_dms.add(uid(friend))
    await gift(harness, people["member"], friend, "0.01")
    told = await fake.wait_for(
        lambda: [
            m for m in fake.messages.values() if f"<@{uid(friend)}>" in m["content"] and "gave you" in m["content"]
        ]
    )
    assert told[0]["channel_id"] != fake.dm_channel(friend)["id"]


@pytest.mark.parametrize(
    ("to", "amount", "cap", "text"),
    [
        ("self", "0.01", "1.00", "yourself"),
        ("bot", "0.01", "1.00", "Bots can't"),
        ("friend", "0", "1.00", "more than $0"),
        ("friend", "-1", "1.00", "cannot be negative"),
        ("friend", "lots", "1.00", "not a dollar amount"),
        ("friend", "0.60", "1.00", "can't be more than that"),  # the default member budget is $0.50
        ("friend", "0.05", "0.02", "$0.02 more today"),
        ("friend", "0.01", None, "Gifts are off"),
    ],
)
async def test_bad_gifts_are_refused_privately_and_change_nothing(harness, people, friend, to, amount, cap, text):
    if cap is not None:
        await budget(harness, "gifts", people["mod"], cap=cap)
    receivers = {"self": people["member"], "bot": harness.fake.add_member(name="other-bot", bot=True), "friend": friend}
    before = await books(harness)
    refused = await gift(harness, people["member"], receivers[to], amount)
    assert refused.ephemeral and text in text_of(refused)
    assert await books(harness) == before
    assert not [m for m in harness.fake.messages.values() if "gave you" in m.get("content", "")]


async def test_fifty_gifts_at_once_never_overdraw_the_giver(harness, people):
    fake, member = harness.fake, people["member"]
    await budget(harness, "set", people["mod"], who=uid(member), amount="1.00", period="day")
    await budget(harness, "gifts", people["mod"], cap="100")
    friends = [fake.add_member(name=f"friend{n}", permissions=MEMBER_PERMISSIONS) for n in range(5)]
    answers = await asyncio.gather(*(gift(harness, member, friends[n % 5], "0.03") for n in range(50)))
    assert sum("You gave" in text_of(a) for a in answers) == 33
    assert sum("can't be more than that" in text_of(a) for a in answers) == 17
    spent = await rows(
        harness, "SELECT SUM(member_micros) FROM ledger WHERE kind = 'grant' AND user_id = ?", (uid(member),)
    )
    assert spent == [(-990_000,)]
    assert await rows(harness, "SELECT SUM(member_micros) FROM ledger WHERE kind = 'grant'") == [(0,)]
    assert await harness.services.ledger.verify_counters() == []


async def test_only_moderators_set_the_gift_cap_and_it_is_audited(harness, people):
    refused = await budget(harness, "gifts", people["member"], cap="5")
    assert "Only moderators" in text_of(refused)
    shown = await budget(harness, "gifts", people["mod"])
    assert "Gifts are off" in text_of(shown)
    await budget(harness, "gifts", people["mod"], cap="2.50")
    await budget(harness, "gifts", people["mod"], cap="0")
    audit = await rows(harness, "SELECT action, old_value, new_value FROM audit_log ORDER BY id")
    assert audit == [("gifts.cap", None, "$2.50"), ("gifts.cap", "$2.50", "off")]
