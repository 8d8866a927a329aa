"""Ask for more, and no one grants money to themselves (issue 24 items 1 and 7).

Through the real bot, the fake Discord and the fake BFL, on each database backend.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import running_bot
from tests.e2e.fake_discord import Perm
from tests.e2e.support import MEMBER_PERMISSIONS, bot_settings, first_answer, rows, text_of, uid

ASK = "fluxcord:ask"


class ShiftedClock:
    """The wall clock, moved forward by hand (the bot's injected clock: no sleeps)."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def advance(self, **delta: float) -> None:
        self.shift += timedelta(**delta)


async def budget(harness, subcommand, user, **options):
    interaction = await harness.fake.slash("budget", options, subcommand=subcommand, user=user)
    return await first_answer(harness, interaction)


def buttons(message):
    return [c for row in message.get("components") or [] for c in row.get("components") or []]


async def refused(harness, member):
    """The member's refused request (their daily budget is a cent): it carries **Ask for more**."""
    await budget(harness, "set", harness.people["mod"], who=uid(member), amount="0.01", period="day")
    answer = await harness.imagine(user=member)
    assert answer.ephemeral and "budget doesn't cover this image" in text_of(answer)
    [button] = [b for b in buttons(answer.original_message) if b["custom_id"] == ASK]
    assert button["label"] == "Ask for more"
    return answer


async def ask(harness, answer, member, amount, reason=""):
    """Click **Ask for more** and submit the modal; the submit's interaction."""
    fake = harness.fake
    opened = await fake.click(answer.original_message["id"], ASK, user=member)
    await fake.wait_for(lambda: opened.modal is not None)
    [custom_id] = [key for key, (_m, it) in fake.modals.items() if it is opened]
    inputs = [
        comp["custom_id"]
        for row in opened.modal["components"]
        for comp in (row.get("components") or [row.get("component") or {}])
        if comp.get("custom_id")
    ]
    submitted = await fake.submit_modal(custom_id, dict(zip(inputs, [amount, reason], strict=True)), user=member)
    return await first_answer(harness, submitted)


def requests_in(harness, channel):
    return [
        m
        for m in harness.fake.messages.values()
        if m["channel_id"] == channel["id"] and any(b["custom_id"].startswith("fluxcord:approve:") for b in buttons(m))
    ]


async def posted_request(harness, channel):
    [message] = await harness.fake.wait_for(lambda: requests_in(harness, channel))
    approve, deny = (b["custom_id"] for b in buttons(message))
    assert approve.startswith("fluxcord:approve:") and deny.startswith("fluxcord:deny:")
    return message, approve, deny


async def click(harness, message, custom_id, user):
    interaction = await harness.fake.click(message["id"], custom_id, user=user)
    await interaction.wait_acked()
    return interaction


def reply(harness, interaction):
    return harness.reply_text(interaction) or text_of(interaction)


async def dms_to(harness, member, text):
    fake = harness.fake
    dm = fake.dm_channel(member)
    return await fake.wait_for(
        lambda: [m for m in fake.messages.values() if m["channel_id"] == dm["id"] and text in m["content"]]
    )


@pytest.fixture
def people(harness, people):
    harness.people = people
    return people


async def test_an_ask_approved_by_two_moderators_at_once_grants_once_and_tells_the_member(harness, people, modlog):
    member, mod = people["member"], people["mod"]
    second = harness.fake.add_member(name="mod2", permissions=MEMBER_PERMISSIONS | Perm.MANAGE_GUILD)
    answer = await refused(harness, member)
    asked = await ask(harness, answer, member, "1.50", "a poster for the club")
    assert asked.ephemeral and "$1.50" in text_of(asked)
    message, approve, _deny = await posted_request(harness, modlog)
    assert "$1.50" in message["content"] and "a poster for the club" in message["content"]
    assert f"<@{uid(member)}>" in message["content"] and not message.get("mentions")

    clicks = await asyncio.gather(click(harness, message, approve, mod), click(harness, message, approve, second))
    grants = await rows(harness, "SELECT user_id, member_micros, actor_id FROM ledger WHERE kind = 'grant'")
    assert len(grants) == 1 and grants[0][:2] == (uid(member), 1_500_000)
    audit = await rows(
        harness, "SELECT action, target, new_value, self_benefiting FROM audit_log WHERE action LIKE 'ask%'"
    )
    assert audit == [("ask.approve", f"member:{uid(member)}", "+$1.50", 0)]
    handled = [c for c in clicks if c.ephemeral]
    assert len(handled) == 1 and "already" in reply(harness, handled[0])
    await harness.fake.wait_for(lambda: "Approved" in harness.fake.messages[message["id"]]["content"])
    assert buttons(harness.fake.messages[message["id"]]) == []
    await dms_to(harness, member, "approved")
    again = await harness.imagine(user=member)
    assert not again.ephemeral and again.original_message["attachments"]


async def test_a_denied_ask_grants_nothing_and_tells_the_member_in_the_channel_when_dms_are_closed(
    harness, people, modlog
):
    fake, member = harness.fake, people["member"]
    fake.closed_dms.add(uid(member))
    answer = await refused(harness, member)
    await ask(harness, answer, member, "2")
    message, _approve, deny = await posted_request(harness, modlog)
    denied = await click(harness, message, deny, people["mod"])
    assert not denied.ephemeral or "denied" in reply(harness, denied).lower()
    told = await fake.wait_for(
        lambda: [
            m
            for m in fake.messages.values()
            if m["channel_id"] == str(answer.channel_id)
            and f"<@{uid(member)}>" in m["content"]
            and "denied" in m["content"]
        ]
    )
    assert told
    assert await rows(harness, "SELECT * FROM ledger WHERE kind = 'grant'") == []
    assert await rows(harness, "SELECT state FROM budget_asks") == [("denied",)]


async def test_one_open_ask_per_member_and_bad_amounts_change_nothing(harness, people, modlog):
    member = people["member"]
    answer = await refused(harness, member)
    for amount, text in [
        ("lots", "not a dollar amount"),
        ("0", "more than $0"),
        ("-1", "cannot be negative"),
        ("9999999", "unreasonably large"),
    ]:
        bad = await ask(harness, answer, member, amount)
        assert bad.ephemeral and text in text_of(bad), amount
    assert await rows(harness, "SELECT * FROM budget_asks") == []
    assert requests_in(harness, modlog) == []
    await ask(harness, answer, member, "1")
    await posted_request(harness, modlog)
    second = await ask(harness, answer, member, "3")
    assert second.ephemeral and "already" in text_of(second)
    await harness.services.server.modlog.drain()
    assert len(requests_in(harness, modlog)) == 1
    assert len(await rows(harness, "SELECT * FROM budget_asks")) == 1


async def test_no_mod_log_no_ask(harness, people):
    member = people["member"]
    answer = await refused(harness, member)
    asked = await click(harness, answer.original_message, ASK, member)
    assert asked.ephemeral and asked.modal is None and "mod-log" in reply(harness, asked)
    assert await rows(harness, "SELECT * FROM budget_asks") == []


async def test_only_other_moderators_decide_and_large_amounts_need_an_administrator(harness, people, modlog):
    fake, member, mod, admin = harness.fake, people["member"], people["mod"], people["admin"]
    shown = await budget(harness, "asks", mod)
    assert "$5.00" in text_of(shown)  # the default
    changed = await budget(harness, "asks", mod, admin_above="1")
    assert "$1.00" in text_of(changed)
    helpers = fake.add_role("helpers")
    await budget(harness, "modrole", admin, role=helpers)
    helper = fake.add_member(name="helper", roles=[helpers], permissions=MEMBER_PERMISSIONS)
    answer = await refused(harness, helper)
    await ask(harness, answer, helper, "2")
    message, approve, deny = await posted_request(harness, modlog)
    own = await click(harness, message, approve, helper)
    assert own.ephemeral and "your own" in reply(harness, own)
    own_deny = await click(harness, message, deny, helper)
    assert own_deny.ephemeral and "your own" in reply(harness, own_deny)
    stranger = await click(harness, message, approve, member)
    assert stranger.ephemeral and "Only moderators" in reply(harness, stranger)
    big = await click(harness, message, approve, mod)
    assert big.ephemeral and "administrator" in reply(harness, big)
    assert await rows(harness, "SELECT * FROM ledger WHERE kind = 'grant'") == []
    await click(harness, message, approve, admin)
    grants = await rows(harness, "SELECT user_id, member_micros, actor_id FROM ledger WHERE kind = 'grant'")
    assert grants == [(uid(helper), 2_000_000, uid(admin))]


async def test_bad_setting_is_refused(harness, people):
    bad = await budget(harness, "asks", people["mod"], admin_above="lots")
    assert bad.ephemeral and "not a dollar amount" in text_of(bad)
    assert await rows(harness, "SELECT ask_admin_above_micros FROM guild_settings") == []


async def test_an_ask_expires_after_a_day(discord_endpoints, fake_bfl, tmp_path, backend):
    fake, clock = discord_endpoints, ShiftedClock()
    settings = bot_settings(fake, fake_bfl, tmp_path, **backend)
    async with running_bot(fake, fake_bfl, settings, clock=clock) as harness:
        harness.people = {
            "member": fake.add_member(name="member", permissions=MEMBER_PERMISSIONS),
            "mod": fake.add_member(name="mod", permissions=MEMBER_PERMISSIONS | Perm.MANAGE_GUILD),
        }
        member, mod = harness.people["member"], harness.people["mod"]
        channel = fake.add_channel("mod-log")
        await budget(harness, "modlog", mod, channel=int(channel["id"]))
        answer = await refused(harness, member)
        await ask(harness, answer, member, "1")
        message, approve, _deny = await posted_request(harness, channel)
        clock.advance(hours=24, seconds=1)
        late = await click(harness, message, approve, mod)
        assert "expired" in reply(harness, late)
        assert await rows(harness, "SELECT * FROM ledger WHERE kind = 'grant'") == []
        assert await rows(harness, "SELECT state FROM budget_asks") == [("expired",)]
        again = await ask(harness, answer, member, "1")  # the expired one no longer blocks a new ask
        assert "$1.00" in text_of(again) and "already" not in text_of(again)


# -- item 7: no one grants money to themselves ------------------------------------------------------------


async def test_a_moderator_role_member_cannot_grant_themselves(harness, people, modlog):
    fake, admin = harness.fake, people["admin"]
    helpers = fake.add_role("helpers")
    await budget(harness, "modrole", admin, role=helpers)
    helper = fake.add_member(name="helper", roles=[helpers], permissions=MEMBER_PERMISSIONS)
    for subcommand, options in [
        ("grant", {"member": uid(helper), "amount": "50"}),
        ("set", {"who": uid(helper), "amount": "50", "period": "day"}),
        ("set", {"who": helpers, "amount": "50", "period": "day"}),
        ("images", {"who": uid(helper), "count": 500, "period": "day"}),
    ]:
        refusal = await budget(harness, subcommand, helper, **options)
        assert refusal.ephemeral and "administrator" in text_of(refusal), subcommand
    assert await rows(harness, "SELECT * FROM ledger") == []
    assert await rows(harness, "SELECT * FROM limits") == []
    lowered = await budget(harness, "set", admin, who=uid(helper), amount="5", period="day")
    assert "$5.00" in text_of(lowered)
    lower = await budget(harness, "set", helper, who=uid(helper), amount="1", period="day")
    assert "$1.00 per day" in text_of(lower)  # lowering their own limit benefits nobody
    other = await budget(harness, "grant", helper, member=uid(people["member"]), amount="1")
    assert "Granted" in text_of(other)


async def test_an_administrator_may_grant_themselves_and_the_audit_flags_it(harness, people, modlog):
    admin = people["admin"]
    granted = await budget(harness, "grant", admin, member=uid(admin), amount="50")
    assert "Granted" in text_of(granted)
    assert await rows(harness, "SELECT user_id, member_micros FROM ledger WHERE kind = 'grant'") == [
        (uid(admin), 50_000_000)
    ]
    audit = await rows(harness, "SELECT actor_id, action, self_benefiting FROM audit_log WHERE action = 'grant'")
    assert audit == [(uid(admin), "grant", 1)]
    fake = harness.fake
    await fake.wait_for(
        lambda: [
            m for m in fake.messages.values() if m["channel_id"] == modlog["id"] and "self-benefiting" in m["content"]
        ]
    )
