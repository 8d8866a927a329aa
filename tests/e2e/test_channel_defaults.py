"""`/budget channel`: a channel's defaults, between a member's `/prefs` and the bot's, through the fake Discord."""

import pytest

from tests.e2e.support import first_answer, rows, text_of, uid
from tests.e2e.test_safety import posts


async def command(harness, cmd, user, /, *, subcommand=None, where=None, strict=True, **options):
    """``cmd`` used by ``user`` in the channel ``where`` (default: the server's first channel); its answer."""
    interaction = await harness.fake.slash(
        cmd, options, user=user, subcommand=subcommand, channel=where, strict_options=strict
    )
    return await first_answer(harness, interaction)


async def set_channel(harness, user, channel, *, strict=True, **options):
    """`/budget channel channel:<channel> …` (used in the server's first channel)."""
    return await command(harness, "budget", user, subcommand="channel", strict=strict, channel=channel, **options)


async def imagine(harness, user, channel=None, **options):
    options.setdefault("prompt", "a fox")
    return await harness.finished(await harness.fake.slash("imagine", options, user=user, channel=channel))


def square(submit):
    return submit.body["width"] == submit.body["height"]


def wide(submit):
    return abs(submit.body["width"] / submit.body["height"] - 16 / 9) < 0.02


@pytest.fixture
def art(harness):
    return int(harness.fake.add_channel("art")["id"])


async def test_defaults_apply_in_order_explicit_then_member_then_channel_then_bot(harness, people, art, modlog):
    bfl, member, mod = harness.bfl, people["member"], people["mod"]
    await command(harness, "style", mod, subcommand="add", name="Ink", template="{prompt}, ink wash")
    saved = await set_channel(harness, mod, art, model="flux-2-klein-4b", aspect_ratio="16:9", style="ink")
    assert saved.ephemeral and "✅" in text_of(saved) and "FLUX.2 [klein] 4B" in text_of(saved)
    await posts(harness, modlog, "channel-defaults set for")

    await imagine(harness, member, channel=art)  # the channel's defaults
    assert bfl.submits[0].model == "flux-2-klein-4b" and wide(bfl.submits[0])
    assert bfl.submits[0].body["prompt"] == "a fox, ink wash"
    await imagine(harness, member)  # another channel: the bot's
    assert (
        bfl.submits[1].model == "flux-pro-1.1" and square(bfl.submits[1]) and bfl.submits[1].body["prompt"] == "a fox"
    )

    await command(harness, "prefs", member, model="flux-dev")  # the member's default beats the channel's
    await imagine(harness, member, channel=art)
    assert bfl.submits[2].model == "flux-dev" and wide(bfl.submits[2])  # the ratio still the channel's
    assert bfl.submits[2].body["prompt"] == "a fox, ink wash"

    await imagine(harness, member, channel=art, model="flux-pro-1.1", aspect_ratio="1:1", style="none")  # explicit
    assert (
        bfl.submits[3].model == "flux-pro-1.1" and square(bfl.submits[3]) and bfl.submits[3].body["prompt"] == "a fox"
    )

    await imagine(harness, people["admin"], channel=art)  # someone without prefs: the channel's again
    assert bfl.submits[4].model == "flux-2-klein-4b" and wide(bfl.submits[4])


async def test_count_and_private_come_from_the_channel_and_clear_removes_them(harness, people, art):
    mod, member = people["mod"], people["member"]
    await set_channel(harness, mod, art, private=True, count=2)
    grouped = await imagine(harness, member, channel=art)
    assert grouped.ephemeral and len(harness.bfl.submits) == 2
    assert await rows(harness, "SELECT count, private FROM channel_defaults") == [(2, 1)]

    cleared = await set_channel(harness, mod, art, clear=True)
    assert cleared.ephemeral and "cleared" in text_of(cleared)
    assert await rows(harness, "SELECT * FROM channel_defaults") == []
    public = await imagine(harness, member, channel=art)
    assert not public.ephemeral and len(harness.bfl.submits) == 3
    actions = await rows(harness, "SELECT action, target, old_value, new_value FROM audit_log ORDER BY id")
    assert actions == [
        ("channel-defaults.set", f"channel:{art}", None, "count=2, private=yes"),
        ("channel-defaults.clear", f"channel:{art}", "count=2, private=yes", None),
    ]


async def test_quota_in_the_channel_and_budget_show_list_the_channel_defaults(harness, people, art):
    mod, member = people["mod"], people["member"]
    await set_channel(harness, mod, art, model="flux-dev", count=3)
    here = text_of(await command(harness, "quota", member, where=art))
    assert "Defaults in this channel" in here and "FLUX.1 [dev]" in here and "Count: 3" in here
    elsewhere = text_of(await command(harness, "quota", member))
    assert "Defaults in this channel" not in elsewhere
    shown = text_of(await command(harness, "budget", mod, subcommand="show"))
    assert "Channel defaults" in shown and f"<#{art}>" in shown and "FLUX.1 [dev]" in shown
    alone = text_of(await set_channel(harness, mod, art))
    assert "Model: FLUX.1 [dev]" in alone and "Count: 3" in alone  # no options: shows them


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"model": "flux-9000"}, "Unknown model `flux-9000`"),
        ({"model": "flux-tools/deblur-v1"}, "only reached through its button"),
        ({"model": "flux-2-klein-4b-finetuned"}, "only reached through a LoRA style"),
        ({"aspect_ratio": "2:1"}, "doesn't support the aspect ratio `2:1`"),
        ({"style": "nope"}, "no style called `nope`"),
    ],
)
async def test_bad_channel_defaults_are_refused_and_change_nothing(harness, people, art, options, text):
    mod = people["mod"]
    await set_channel(harness, mod, art, count=2)
    answer = await set_channel(harness, mod, art, strict=False, **options)
    assert answer.ephemeral and text in text_of(answer)
    assert await rows(harness, "SELECT model, aspect_ratio, count, private, style_key FROM channel_defaults") == [
        (None, None, 2, None, None)
    ]
    assert len(await rows(harness, "SELECT * FROM audit_log")) == 1


async def test_a_member_cannot_set_channel_defaults(harness, people, art):
    refused = await set_channel(harness, people["member"], art, count=4)
    assert refused.ephemeral and "Only moderators" in text_of(refused)
    assert await rows(harness, "SELECT * FROM channel_defaults") == []
    assert await rows(harness, "SELECT * FROM audit_log") == []


async def test_a_thread_uses_its_parent_channels_defaults(harness, people, art):
    await set_channel(harness, people["mod"], art, model="flux-dev")
    thread = harness.fake.add_channel("a thread", type=11)
    metadata = {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": "2025-01-01T00:00:00+00:00"}
    thread |= {"parent_id": str(art), "owner_id": str(uid(people["member"])), "thread_metadata": metadata}
    thread |= {"message_count": 0, "member_count": 1, "total_message_sent": 0}
    await imagine(harness, people["member"], channel=int(thread["id"]))
    assert harness.bfl.submits[0].model == "flux-dev"
