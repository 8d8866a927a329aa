"""/safety through the real bot and the fake Discord: permissions, refusals, the mod-log, strikes."""

from tests.e2e.support import first_answer, rows, uid
from tests.fakes.fake_bfl import Behaviour


async def safety(harness, subcommand, user, group=None, **options):
    interaction = await harness.fake.slash("safety", options, subcommand=subcommand, subcommand_group=group, user=user)
    return await first_answer(harness, interaction)


def text(interaction):
    return "\n".join((m or {}).get("content") or "" for m in [interaction.original_message, *interaction.followups])


async def posts(harness, channel, needle, count=1):
    def found():
        hits = [
            m for m in harness.fake.messages.values() if m["channel_id"] == channel["id"] and needle in m["content"]
        ]
        return hits if len(hits) >= count else None

    return await harness.fake.wait_for(found)


async def imagine(harness, user, channel=None, **options):
    options.setdefault("prompt", "a red fox in the snow")
    interaction = await harness.fake.slash("imagine", options, user=user, channel=channel)
    return await harness.finished(interaction)


async def refused(harness, user, **options):
    interaction = await imagine(harness, user, **options)
    assert interaction.ephemeral, harness.reply_text(interaction)
    return harness.reply_text(interaction)


async def test_a_member_without_moderator_rights_changes_nothing(harness, people):
    channel = harness.fake.add_channel("art", nsfw=True)
    for group, subcommand, options in [
        ("words", "add", {"words": "fox"}),
        ("words", "remove", {"words": "fox"}),
        ("words", "list", {}),
        (None, "block", {"member": uid(people["mod"]), "hours": 5}),
        (None, "unblock", {"member": uid(people["mod"])}),
        (None, "level", {"level": "relaxed", "channel": int(channel["id"])}),
        (None, "channel", {"channel": int(channel["id"]), "allowed": True}),
        (None, "models", {"models": "flux-dev"}),
        (None, "grounding", {"allowed": True}),
    ]:
        interaction = await safety(harness, subcommand, people["member"], group=group, **options)
        assert interaction.ephemeral and "Only moderators" in text(interaction), subcommand
    for table in ("safety_words", "safety_blocks", "safety_channels", "safety_levels", "safety_settings", "audit_log"):
        assert await rows(harness, f"SELECT * FROM {table}") == [], table


async def test_blocked_words_refuse_privately_without_a_call_or_charge_and_note_the_mod_log(harness, people, modlog):
    added = await safety(harness, "add", people["mod"], group="words", words="dragon, red panda")
    assert added.ephemeral and "“dragon”" in text(added) and "“red panda”" in text(added)
    listed = await safety(harness, "list", people["mod"], group="words")
    assert "“dragon”" in text(listed) and "“red panda”" in text(listed)

    reply = await refused(harness, people["member"], prompt="a tiny D\u200bR4GON sipping tea")
    assert "“dragon”" in reply and "sipping" not in reply  # names the rule, never echoes the prompt
    reply = await refused(harness, people["member"], prompt="a RED    pаnda")  # Cyrillic а, repeated spaces
    assert "“red panda”" in reply
    assert harness.bfl.submits == []
    assert await rows(harness, "SELECT * FROM ledger") == [] and await rows(harness, "SELECT * FROM jobs") == []
    [note] = await posts(harness, modlog, "blocked rule “dragon”")
    assert f"<@{uid(people['member'])}>" in note["content"] and "sipping" not in note["content"]

    removed = await safety(harness, "remove", people["mod"], group="words", words="DRAGON")
    assert "No longer blocked: “dragon”" in text(removed)
    done = await harness.imagine(user=people["member"], prompt="a dragon")
    assert done.original_message["attachments"]  # allowed again
    actions = [a for (a,) in await rows(harness, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["modlog.set", "safety.words.add", "safety.words.remove"]


async def test_a_blocked_member_is_told_the_reason_and_end_and_every_change_is_audited(harness, people, modlog):
    blocked = await safety(harness, "block", people["mod"], member=uid(people["member"]), hours=2, reason="spamming")
    assert "is blocked until <t:" in text(blocked)
    reply = await refused(harness, people["member"])
    assert "blocked" in reply and "spamming" in reply and "<t:" in reply
    assert harness.bfl.submits == [] and await rows(harness, "SELECT * FROM ledger") == []
    unblocked = await safety(harness, "unblock", people["mod"], member=uid(people["member"]))
    assert "may generate images again" in text(unblocked)
    assert (await harness.imagine(user=people["member"])).original_message["attachments"]
    audit = await rows(
        harness, "SELECT actor_id, action, target FROM audit_log WHERE action LIKE 'safety.%' ORDER BY id"
    )
    member = f"member:{uid(people['member'])}"  # rows store ids; the mod-log renders the mention
    assert audit == [(uid(people["mod"]), "safety.block", member), (uid(people["mod"]), "safety.unblock", member)]
    await posts(harness, modlog, "safety unblock")


async def test_the_safety_dial_maps_to_safety_tolerance_and_relaxed_needs_an_age_restricted_channel(harness, people):
    plain = harness.fake.add_channel("general")
    adult = harness.fake.add_channel("after-dark", nsfw=True)
    for options in ({"level": "relaxed"}, {"level": "relaxed", "channel": int(plain["id"])}):
        refusal = await safety(harness, "level", people["mod"], **options)
        assert "age-restricted" in text(refusal)
    assert await rows(harness, "SELECT * FROM safety_levels") == []

    await safety(harness, "level", people["mod"], level="relaxed", channel=int(adult["id"]))
    await safety(harness, "level", people["mod"], level="strict")
    await imagine(harness, people["member"], channel=adult)
    await imagine(harness, people["member"], channel=plain)
    await imagine(harness, people["member"], channel=adult, model="flux-2-pro")
    assert [s.body["safety_tolerance"] for s in harness.bfl.submits] == [4, 0, 4]


async def test_allowed_channels_point_elsewhere_and_models_limit_what_can_be_used(harness, people):
    studio = harness.fake.add_channel("studio")
    await safety(harness, "channel", people["mod"], channel=int(studio["id"]), allowed=True)
    reply = await refused(harness, people["member"])
    assert f"<#{studio['id']}>" in reply
    assert (await imagine(harness, people["member"], channel=studio)).original_message["attachments"]

    bad = await safety(harness, "models", people["mod"], models="flux-dev, flux-nope")
    assert "flux-nope" in text(bad) and await rows(harness, "SELECT * FROM safety_settings") == []
    await safety(harness, "models", people["mod"], models="flux-dev")
    reply = await refused(harness, people["member"], channel=studio, model="flux-pro-1.1")
    assert "isn't allowed" in reply and "`flux-dev`" in reply
    assert len(harness.bfl.submits) == 1
    quota = await harness.fake.slash("quota", {}, user=people["member"])
    await quota.wait_acked()
    fields = {f["name"]: f["value"] for f in quota.original_message["embeds"][0]["fields"]}
    assert "flux-dev" in fields["Models allowed here"] and "flux-pro-1.1" not in fields["Models allowed here"]

    await safety(harness, "models", people["mod"], models="all")
    assert (await imagine(harness, people["member"], channel=studio)).original_message["attachments"]


async def test_grounding_is_off_by_default_and_audited_when_switched(harness, people):
    assert await harness.services.server.safety.grounding_allowed(harness.fake.guild_id) is False
    answer = await safety(harness, "grounding", people["mod"], allowed=True)
    assert "allowed" in text(answer)
    assert await harness.services.server.safety.grounding_allowed(harness.fake.guild_id) is True
    assert await rows(harness, "SELECT action, old_value, new_value FROM audit_log") == [
        ("safety.grounding", "off", "on")
    ]


async def test_moderated_results_go_to_the_mod_log_and_three_in_an_hour_block_the_member(harness, people, modlog):
    harness.bfl.script(
        Behaviour(final_status="Request Moderated"), Behaviour(final_status="Content Moderated"), times=2
    )
    member = people["member"]
    replies = []
    for n in range(3):
        done = await harness.imagine(user=member, prompt=f"questionable idea ||number {n}")
        replies.append(harness.reply_text(done))
    assert all("within an hour" not in reply for reply in replies[:2])  # two strikes: not blocked yet
    assert "3 moderated results within an hour" in replies[2] and "<t:" in replies[2]
    notes = await posts(harness, modlog, "filter blocked", count=3)
    assert all("||questionable idea |\u200b|number" in m["content"] for m in notes)  # a spoiler, not closable
    assert f"<@{uid(member)}>" in notes[0]["content"] and "flux-pro-1.1" in notes[0]["content"]
    await posts(harness, modlog, "is blocked until")

    reply = await refused(harness, member)
    assert "blocked" in reply and "moderated results" in reply
    assert len(harness.bfl.submits) == 3
    assert await rows(harness, "SELECT actor_id, action FROM audit_log WHERE action = 'safety.block'") == [
        (0, "safety.block")
    ]


async def test_flux_3_edits_are_sent_and_shown_at_the_tolerance_flux_3_applies(harness, people):
    """FLUX 3 caps safety_tolerance at 2 with input images: sent as 2 (not relaxed's 3), and Details says why."""
    import io

    from PIL import Image

    adult = harness.fake.add_channel("after-dark-edits", nsfw=True)
    await safety(harness, "level", people["mod"], level="relaxed", channel=int(adult["id"]))
    await imagine(harness, people["member"], channel=adult, model="flux-3-image")
    buffer = io.BytesIO()
    Image.new("RGB", (640, 640), "teal").save(buffer, format="PNG")
    upload = harness.fake.make_attachment("teal.png", buffer.getvalue())
    options = {"prompt": "make it night", "image": upload, "model": "flux-3-image"}
    edit = await harness.finished(await harness.fake.slash("edit", options, user=people["member"], channel=adult))
    assert [(s.model, s.body["safety_tolerance"]) for s in harness.bfl.submits] == [
        ("flux-3-image", 3),
        ("flux-3-image", 2),
    ]
    assert harness.bfl.schema_errors == []
    click = await harness.fake.click(edit.original_message["id"], f"fluxcord:details:{edit.id}", user=people["member"])
    await click.wait_acked()
    fields = {f["name"]: f["value"] for f in click.original_message["embeds"][0]["fields"]}
    assert fields["Safety tolerance"] == "2 (FLUX 3 Image with input images: at most 2)"
