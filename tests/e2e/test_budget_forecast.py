"""`/budget set who:<role>` shows a large role's worst case before saving (issue 24 item 4), through the fake Discord.

A role of 40 members at $1.00 per day could cost 40 × $1.00 × 30 days = $1,200.00 a month, against this
server's budget (none set: the bot's default, $5.00 per day = $150.00 a month) and the bot-wide budget
($50.00 a month): nothing is saved until its moderator presses Save.
"""

from __future__ import annotations

from cogs._forecast import CANCELLED_TEXT, EXPIRED_TEXT, NOT_MODERATOR_TEXT, NOT_YOURS_TEXT
from tests.e2e.conftest import running_bot
from tests.e2e.fake_discord import Perm
from tests.e2e.fake_discord.faults import Fault
from tests.e2e.support import bot_settings, first_answer, rows, text_of, uid

LIMITS = "SELECT target_kind, target_id, metric, period, value FROM limits"


def large_role(fake, members: int, *, manage_roles: bool = True) -> int:
    """A role with ``members`` members; the bot may count them (Manage Roles) unless told otherwise."""
    role = fake.add_role("everyone-ish")
    for n in range(members):
        fake.add_member(name=f"fan{n}", roles=[role])
    if manage_roles:
        fake.roles[fake.bot_role_id]["permissions"] = str(Perm.DEFAULT_BOT | Perm.MANAGE_ROLES)
    return role


async def set_role(harness, user, role, amount="1", period="day"):
    options = {"who": role, "amount": amount, "period": period}
    interaction = await harness.fake.slash("budget", options, subcommand="set", user=user)
    return await first_answer(harness, interaction)


def buttons(interaction) -> dict[str, str]:
    components = interaction.original_message["components"]
    return {c["label"]: c["custom_id"] for row in components for c in row["components"]}


async def click(harness, interaction, label, user):
    answer = await harness.fake.click(interaction.original_message["id"], buttons(interaction)[label], user=user)
    await answer.wait_acked()
    return answer


def counts_asked(fake) -> int:
    return sum(1 for call in fake.calls if call.operation == "guild_role_member_counts")


async def test_a_large_role_gets_the_worst_case_and_is_saved_only_on_save(harness, people, modlog):
    fake = harness.fake
    role = large_role(fake, 40)
    asked = await set_role(harness, people["mod"], role)
    text = text_of(asked)
    assert asked.ephemeral
    assert f"Worst case for <@&{role}>: 40 members × $1.00 per day × 30 days = **$1,200.00 a month**" in text
    assert "This server's budget: $150.00 a month (the bot's default: none set with `/budget server`): exceeded" in text
    assert "The bot-wide budget: $50.00 a month (all servers): exceeded" in text
    assert "Nothing is saved until you press **Save** (within 15 minutes)" in text
    assert set(buttons(asked)) == {"Save", "Cancel"} and counts_asked(fake) == 1
    assert (
        await rows(harness, LIMITS) == []
        and await rows(harness, "SELECT * FROM audit_log WHERE action LIKE 'usd%'") == []
    )

    saved = await click(harness, asked, "Save", people["mod"])
    assert saved.response_type == 7 and f"✅ Saved: <@&{role}>: $1.00 per day." in saved.original_message["content"]
    assert await rows(harness, LIMITS) == [("role", role, "usd", "day", 1_000_000)]
    audit = await rows(harness, "SELECT actor_id, action, new_value FROM audit_log WHERE action LIKE 'usd%'")
    assert audit == [(uid(people["mod"]), "usd limit.set", "$1.00 per day")]
    posted = await fake.wait_for(
        lambda: [
            m for m in fake.messages.values() if m["channel_id"] == modlog["id"] and "$1.00 per day" in m["content"]
        ]
    )
    assert posted


async def test_cancel_saves_nothing_and_a_second_click_has_expired(harness, people):
    role = large_role(harness.fake, 40)
    asked = await set_role(harness, people["mod"], role, amount="2.50", period="week")
    assert "40 members × $2.50 per week × 30/7 weeks = **$428.571429 a month**" in text_of(asked)
    save = buttons(asked)["Save"]
    cancelled = await click(harness, asked, "Cancel", people["mod"])
    assert cancelled.original_message["content"] == CANCELLED_TEXT and not asked.original_message["components"]
    again = await harness.fake.forge_click(asked.original_message["id"], save, user=people["mod"])  # a stale client
    await again.wait_acked()
    assert again.ephemeral and again.original_message["content"] == EXPIRED_TEXT
    assert await rows(harness, LIMITS) == []


async def test_only_the_moderator_who_asked_can_answer(harness, people):
    role = large_role(harness.fake, 40)
    asked = await set_role(harness, people["mod"], role)
    other = await click(harness, asked, "Save", people["admin"])  # another moderator (an administrator)
    assert other.ephemeral and other.original_message["content"] == NOT_YOURS_TEXT
    member = await click(harness, asked, "Cancel", people["member"])
    assert member.ephemeral and member.original_message["content"] == NOT_MODERATOR_TEXT
    assert await rows(harness, LIMITS) == []
    await click(harness, asked, "Save", people["mod"])  # still pending for its moderator
    assert await rows(harness, LIMITS) == [("role", role, "usd", "day", 1_000_000)]


async def test_a_small_role_is_saved_at_once_and_a_large_one_within_budget_with_its_forecast(harness, people):
    fake = harness.fake
    small = large_role(fake, 24)
    saved = await set_role(harness, people["mod"], small, amount="100")
    assert text_of(saved) == f"✅ <@&{small}>: $100.00 per day." and not saved.original_message["components"]
    cheap = large_role(fake, 30)
    within = await set_role(harness, people["mod"], cheap, amount="0.10", period="month")
    text = text_of(within)
    assert text.startswith(f"✅ <@&{cheap}>: $0.10 per month.") and not within.original_message["components"]
    assert "30 members × $0.10 per month × 1 month = **$3.00 a month**" in text
    assert "$150.00 a month (the bot's default: none set with `/budget server`): within it" in text
    assert await rows(harness, LIMITS + " ORDER BY value") == [
        ("role", cheap, "usd", "month", 100_000),
        ("role", small, "usd", "day", 100_000_000),
    ]


async def test_the_servers_own_budget_is_the_tightest_of_its_periods(harness, people):
    fake = harness.fake
    role = large_role(fake, 40)
    for amount, period in (("10", "day"), ("200", "week")):  # $300.00 and $857.142858 a month: $300.00 applies
        answer = await fake.slash(
            "budget", {"amount": amount, "period": period}, subcommand="server", user=people["mod"]
        )
        await first_answer(harness, answer)
    within = await set_role(harness, people["mod"], role, amount="0.25")  # 40 × $0.25 × 30 = $300.00: not over
    assert "This server's budget: $300.00 a month: within it" in text_of(within)
    assert "The bot-wide budget: $50.00 a month (all servers): exceeded" in text_of(within)
    assert not within.original_message["components"]
    over = await set_role(harness, people["mod"], role, amount="0.26")  # $312.00
    assert "**$312.00 a month**" in text_of(over) and "$300.00 a month: exceeded" in text_of(over)
    assert set(buttons(over)) == {"Save", "Cancel"}
    assert await rows(harness, LIMITS + " WHERE target_kind = 'role'") == [("role", role, "usd", "day", 250_000)]


async def test_when_discord_refuses_the_counts_the_member_count_stands_in(harness, people):
    fake = harness.fake
    role = large_role(fake, 40)
    await fake.send_guild_create()  # the bot's member count (no members intent: only from GUILD_CREATE)
    fake.faults.script("guild_role_member_counts", Fault.refused())
    asked = await set_role(harness, people["mod"], role)
    text = text_of(asked)
    total = len(fake.members)  # the bot, the owner, the default member, people and the 40 fans
    assert f"{total} members at most × $1.00 per day × 30 days = **${total * 30:,}.00 a month**" in text
    assert "(The server's member count stands in for the role's: Discord refused to count the role's members.)" in text
    assert set(buttons(asked)) == {"Save", "Cancel"} and counts_asked(fake) == 1
    assert await rows(harness, LIMITS) == []


async def test_without_manage_roles_the_bot_does_not_ask_and_says_why(harness, people):
    fake = harness.fake
    role = large_role(fake, 40, manage_roles=False)
    await fake.send_guild_create()
    asked = await set_role(harness, people["mod"], role)
    assert f"{len(fake.members)} members at most" in text_of(asked)
    assert "the bot lacks the Manage Roles permission" in text_of(asked)
    assert counts_asked(fake) == 0  # a 403 counts towards Discord's invalid-request limit: not asked in vain


async def test_a_pending_forecast_survives_a_restart(discord_endpoints, fake_bfl, tmp_path):
    fake = discord_endpoints
    role = large_role(fake, 40)
    mod = fake.add_member(name="mod", permissions=Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES | Perm.MANAGE_GUILD)
    settings = bot_settings(fake, fake_bfl, tmp_path)
    async with running_bot(fake, fake_bfl, settings) as harness:
        asked = await set_role(harness, mod, role)
        assert set(buttons(asked)) == {"Save", "Cancel"}
    async with running_bot(fake, fake_bfl, settings) as harness:
        saved = await click(harness, asked, "Save", mod)
        assert "✅ Saved" in saved.original_message["content"]
        assert await rows(harness, LIMITS) == [("role", role, "usd", "day", 1_000_000)]
