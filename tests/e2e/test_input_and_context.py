"""Bad input refused, settings honoured, and who-asked-where read from the payload: through the real bot."""

import pytest

from tests.e2e.fake_discord import Perm
from tests.e2e.support import MEMBER_PERMISSIONS, first_answer, rows, text_of, uid


async def command(harness, name, user, *, subcommand=None, where=None, **options):
    """Run a slash command (``where``: the channel it is used in) and wait for its first answer."""
    interaction = await harness.fake.slash(name, options, subcommand=subcommand, user=user, channel=where)
    return await first_answer(harness, interaction)


def synced(harness, name):
    return next(c for c in harness.fake.global_commands.values() if c["name"] == name)


# --- dollar amounts: one parser, a decimal comma is never read as more --------------------------------
@pytest.mark.parametrize("amount", ["1,50", "2,5", "0,04"])
async def test_a_decimal_comma_is_refused_with_a_hint(harness, people, amount):
    interaction = await command(
        harness, "budget", people["mod"], subcommand="set", who=uid(people["member"]), amount=amount, period="day"
    )
    assert interaction.ephemeral
    assert f"Invalid amount: use a dot for cents: {amount.replace(',', '.')}" in text_of(interaction)
    assert await rows(harness, "SELECT * FROM limits") == []


async def test_thousands_separators_are_dollars(harness, people):
    interaction = await command(harness, "budget", people["mod"], subcommand="server", amount="$1,000", period="month")
    assert "$1,000.00 per month" in text_of(interaction)
    assert await rows(harness, "SELECT value FROM limits") == [(1_000_000_000,)]


# --- prompts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("prompt", ["\u200b\u200b\u200b", "\u202e \u2066\u2069 \ufeff", "\u3164"])
async def test_a_prompt_with_nothing_visible_is_refused_without_any_call_or_charge(harness, prompt):
    interaction = await harness.imagine(prompt=prompt)
    assert interaction.ephemeral and "prompt is empty" in text_of(interaction)
    assert harness.bfl.submits == []
    assert await rows(harness, "SELECT * FROM ledger") == []


async def test_bidi_overrides_never_reach_the_card_or_bfl(harness, people):
    fake = harness.fake
    spoofer = fake.add_member(name="evil\u202egnp.exe", nick="\u202eresu", permissions=MEMBER_PERMISSIONS)
    interaction = await harness.imagine(user=spoofer, prompt="a \u202efox\u202c in the \u2067snow\u2069")
    text = text_of(interaction)
    assert "a fox in the snow" in text
    assert not any(char in text for char in "\u202e\u202c\u2067\u2069")
    assert harness.bfl.submits[0].body["prompt"] == "a fox in the snow"


@pytest.mark.parametrize("bot_settings_overrides", [{"max_prompt_length": 300}])
async def test_discord_itself_stops_a_prompt_over_max_prompt_length(harness):
    [prompt] = [o for o in synced(harness, "imagine")["options"] if o["name"] == "prompt"]
    assert prompt["max_length"] == 300
    with pytest.raises(ValueError, match="max_length"):  # the fake's client enforces the synced limit
        await harness.fake.slash("imagine", {"prompt": "x" * 301})
    done = await harness.imagine(prompt="x" * 300)
    assert done.original_message["attachments"]


# --- DEFAULT_MODEL ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bot_settings_overrides", [{"default_model": "flux-2-klein-4b"}])
async def test_default_model_setting_is_used_when_imagine_has_no_model(harness):
    interaction = await harness.imagine()
    assert [submit.model for submit in harness.bfl.submits] == ["flux-2-klein-4b"]
    assert "Model: FLUX.2 [klein] 4B" in text_of(interaction)
    await harness.imagine(model="flux-dev", prompt="another")
    assert harness.bfl.submits[-1].model == "flux-dev"  # an explicit choice still wins


# --- who asked, where ------------------------------------------------------------------------------
async def test_role_limits_apply_with_a_cold_cache(harness, people):
    """Roles the bot never heard of (no GUILD_ROLE_CREATE) still count: ids come from the payload."""
    fake = harness.fake
    artists = fake.add_role("artists")
    helpers = fake.add_role("helpers")
    fake._pending_events.clear()  # the gateway never tells the bot about the two roles: a cold cache
    artist = fake.add_member(name="artist", roles=[artists], permissions=MEMBER_PERMISSIONS)
    helper = fake.add_member(name="helper", roles=[helpers], permissions=MEMBER_PERMISSIONS)
    assert harness.bot.get_guild(fake.guild_id).get_role(artists) is None

    await command(harness, "budget", people["admin"], subcommand="modrole", role=helpers)
    allowed = await command(harness, "budget", helper, subcommand="images", who=artists, count=1, period="day")
    assert "1 images per day" in text_of(allowed) or "1 image per day" in text_of(allowed)

    first = await harness.imagine(user=artist, prompt="one")
    assert first.original_message["attachments"]
    second = await harness.imagine(user=artist, prompt="two")
    assert second.ephemeral and "image quota is used up (1 of 1" in text_of(second)
    quota = await command(harness, "quota", artist)
    assert "Your daily images: **0** left of 1" in text_of(quota)


@pytest.mark.parametrize(
    ("name", "subcommand", "options"),
    [("imagine", None, {"prompt": "a fox"}), ("quota", None, {}), ("budget", "pause", {})],
)
async def test_commands_that_need_a_server_refuse_dms_in_code(harness, people, name, subcommand, options):
    fake = harness.fake
    dm = fake.dm_channel(people["admin"]["user"]["id"])
    interaction = await command(harness, name, people["admin"], subcommand=subcommand, where=dm, **options)
    assert interaction.ephemeral and "only works in a server" in text_of(interaction)
    assert harness.bfl.submits == []
    assert await rows(harness, "SELECT * FROM guild_settings") == []
    assert await rows(harness, "SELECT * FROM ledger") == []


# --- the mod-log never delays a moderator's answer -------------------------------------------------
async def test_a_mod_log_that_takes_4_s_does_not_delay_the_reply_or_repeat_the_change(harness, people):
    fake = harness.fake
    modlog = fake.add_channel("mod-log")
    await command(harness, "budget", people["mod"], subcommand="modlog", channel=int(modlog["id"]))
    await fake.wait_for(lambda: [m for m in fake.messages.values() if m["channel_id"] == modlog["id"]])
    assert [m["content"] for m in fake.messages.values() if m["channel_id"] == modlog["id"]] == [
        f"🛠️ <@{uid(people['mod'])}> modlog set for the server: — → <#{modlog['id']}>"
    ]
    fake.channel_send_delays[int(modlog["id"])] = 4.0

    interaction = await command(
        harness, "budget", people["mod"], subcommand="set", who=uid(people["member"]), amount="2.50", period="week"
    )
    assert interaction.ack_latency < 1.0 and not interaction.deadline_missed
    assert "$2.50 per week" in text_of(interaction)
    assert await rows(harness, "SELECT value FROM limits") == [(2_500_000,)]  # saved before the mod-log post

    def posts():
        return [m for m in fake.messages.values() if m["channel_id"] == modlog["id"] and "$2.50" in m["content"]]

    await fake.wait_for(posts, timeout=15)
    assert len(posts()) == 1
    assert len(await rows(harness, "SELECT * FROM audit_log WHERE action = 'usd limit.set'")) == 1


# --- moderators by role, and members who left -------------------------------------------------------
async def test_budget_is_synced_for_manage_server_and_modrole_says_how_to_open_it(harness, people):
    assert synced(harness, "budget")["default_member_permissions"] == str(Perm.MANAGE_GUILD)
    helpers = harness.fake.add_role("helpers")
    reply = await command(harness, "budget", people["admin"], subcommand="modrole", role=helpers)
    text = text_of(reply)
    assert "Server Settings → Integrations" in text and "a bot cannot change that itself" in text


async def test_limits_of_a_member_who_left_can_be_shown_and_removed(harness, people):
    fake = harness.fake
    leaver = fake.add_member(name="leaver", permissions=MEMBER_PERMISSIONS)
    await command(harness, "budget", people["mod"], subcommand="set", who=uid(leaver), amount="3", period="day")
    del fake.members[uid(leaver)]  # left the server; the user still exists

    shown = await command(harness, "budget", people["mod"], subcommand="show")
    assert f"<@{uid(leaver)}> (id {uid(leaver)}): $3.00 per day" in text_of(shown)
    one = await command(harness, "budget", people["mod"], subcommand="show", who=uid(leaver))
    assert "$3.00 per day" in text_of(one)

    refused = await command(harness, "budget", people["mod"], subcommand="reset")
    assert "Choose one member, or give one user id" in text_of(refused)
    bad = await command(harness, "budget", people["mod"], subcommand="reset", user_id="alice")
    assert "must be a user id" in text_of(bad)
    assert await rows(harness, "SELECT COUNT(*) FROM limits") == [(1,)]

    reset = await command(harness, "budget", people["mod"], subcommand="reset", user_id=str(uid(leaver)))
    assert f"(id {uid(leaver)}) is back on their roles' limits" in text_of(reset)
    assert await rows(harness, "SELECT COUNT(*) FROM limits") == [(0,)]
