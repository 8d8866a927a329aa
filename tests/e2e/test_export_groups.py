"""`/budget export period group_by`: a seeded ledger summed by member, role, channel, model and day, exactly."""

import csv
import io

import pytest

from tests.e2e.support import MEMBER_PERMISSIONS, first_answer, uid


async def export(harness, user, **options):
    interaction = await harness.fake.slash("budget", options, subcommand="export", user=user)
    await first_answer(harness, interaction)
    await interaction.wait_for(lambda: (interaction.original_message or {}).get("attachments"))
    file = harness.fake.attachment_file(interaction.original_message, 0)
    return interaction, file.filename, list(csv.reader(io.StringIO(file.data.decode())))


@pytest.fixture
async def seeded(harness, people):
    """Three jobs and a grant today: the member's FLUX1.1 [pro] in #general and FLUX.1 [dev] in #art, an
    artist's FLUX.1 [dev] in #art; and an old adjustment of $1 (2020) that only `period:all` includes."""
    fake = harness.fake
    art = int(fake.add_channel("art")["id"])
    artists = fake.add_role("artists")
    artist = fake.add_member(name="artist", roles=[artists], permissions=MEMBER_PERMISSIONS)
    member = people["member"]
    for user, channel, model in ((member, None, "flux-pro-1.1"), (member, art, "flux-dev"), (artist, art, "flux-dev")):
        await harness.finished(
            await fake.slash("imagine", {"prompt": "a fox", "model": model}, user=user, channel=channel)
        )
    await harness.services.ledger.grant(guild_id=fake.guild_id, user_id=uid(member), micros=1_000_000, actor_id=1)
    await harness.services.db.execute(
        "INSERT INTO ledger (kind, guild_id, user_id, server_micros, member_micros, member_images, day, week, month,"
        " at)"
        " VALUES ('adjustment', ?, 0, 1000000, 0, 0, 'd:2020-01-01', 'w:2019-12-30', 'm:2020-01', 1577836800000)",
        (fake.guild_id,),
    )
    return {
        "member": uid(member),
        "artist": uid(artist),
        "artists": int(artists),
        "art": art,
        "general": fake.channel_id,
    }


async def test_each_group_by_sums_the_ledger_exactly(harness, people, seeded):
    mod, s = people["mod"], seeded
    _, name, by_member = await export(harness, mod, group_by="member", period="all")
    assert name == f"fluxcord-spend-by-member-{harness.fake.guild_id}-all.csv"
    assert by_member == [
        ["user_id", "spend_usd", "images", "jobs"],
        ["0", "1.000000", "0", "0"],
        [str(s["member"]), "0.065000", "2", "2"],
        [str(s["artist"]), "0.025000", "1", "1"],
    ]
    _, _, by_model = await export(harness, mod, group_by="model", period="month")  # the 2020 row left out
    assert by_model == [
        ["model", "spend_usd", "images", "jobs"],
        ["flux-dev", "0.050000", "2", "2"],
        ["flux-pro-1.1", "0.040000", "1", "1"],
    ]
    _, _, by_channel = await export(harness, mod, group_by="channel", period="week")
    assert by_channel == [
        ["channel_id", "spend_usd", "images", "jobs"],
        [str(s["art"]), "0.050000", "2", "2"],
        [str(s["general"]), "0.040000", "1", "1"],
    ]
    _, _, by_day = await export(harness, mod, group_by="day")  # all by default
    today = harness.services.ops.clock().strftime("%Y-%m-%d")
    assert by_day == [
        ["day", "spend_usd", "images", "jobs"],
        ["2020-01-01", "1.000000", "0", "0"],
        [today, "0.090000", "3", "3"],
    ]
    _, _, by_role = await export(harness, mod, group_by="role", period="day")
    guild = harness.fake.guild_id  # @everyone's id: every member the bot can see
    assert by_role == [
        ["role_id", "spend_usd", "images", "jobs"],
        [str(guild), "0.090000", "3", "3"],
        [str(s["artists"]), "0.025000", "1", "1"],
    ]


async def test_without_options_the_raw_ledger_csv_is_as_before_and_period_filters_it(harness, people, seeded):
    interaction, name, raw = await export(harness, people["mod"])
    assert (
        name == f"fluxcord-ledger-{harness.fake.guild_id}.csv"
        and "8 rows in one file" in interaction.original_message["content"]
    )
    assert raw[0] == [
        "id",
        "at_utc",
        "kind",
        "job_id",
        "user_id",
        "model",
        "server_usd",
        "member_usd",
        "member_images",
        "actor_id",
        "note",
    ]
    assert [row[2] for row in raw[1:]] == ["reserve", "settle"] * 3 + ["grant", "adjustment"]
    _, _, month = await export(harness, people["mod"], period="month")
    assert [row[2] for row in month[1:]] == ["reserve", "settle"] * 3 + ["grant"]  # the 2020 adjustment left out
