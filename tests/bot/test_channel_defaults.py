"""Channel defaults on both databases: stored, checked, audited, and layered between a member's and the bot's."""

import pytest

from bot.audit import AuditLog
from bot.channel_defaults import ChannelDefaults, ChannelDefaultsStore
from bot.errors import InvalidOptions
from bot.prefs import PrefsService
from bot.styles import StyleService

GUILD, MOD, ALICE, ART, HALL = 10, 30, 40, 500, 501
BOT_MODEL = "flux-pro-1.1"


@pytest.fixture
async def styles(db, clock):
    return StyleService(db, AuditLog(db, clock), max_prompt_length=1000, clock=clock)


@pytest.fixture
async def channels(db, styles, clock):
    return ChannelDefaultsStore(db, styles, AuditLog(db, clock), default_model=BOT_MODEL, clock=clock)


@pytest.fixture
async def prefs(db, styles, channels, clock):
    return PrefsService(db, styles, default_model=BOT_MODEL, channels=channels, clock=clock)


async def test_set_merges_replace_clears_the_others_and_every_change_is_audited(db, channels, styles):
    await styles.add(GUILD, "Ink", "{prompt}, ink", actor_id=MOD)
    await channels.set(GUILD, ART, ChannelDefaults(model="flux-dev", count=2), actor_id=MOD)
    merged, entry = await channels.set(GUILD, ART, ChannelDefaults(style="ink", private=True), actor_id=MOD)
    assert merged == ChannelDefaults("flux-dev", None, 2, True, "Ink")
    assert (entry.action, entry.target) == ("channel-defaults.set", f"channel:{ART}")
    assert (entry.old_value, entry.new_value) == (
        "model=flux-dev, count=2",
        "model=flux-dev, count=2, private=yes, style=Ink",
    )
    replaced, _ = await channels.set(GUILD, ART, ChannelDefaults(aspect_ratio="4:3"), actor_id=MOD, replace=True)
    assert replaced == ChannelDefaults(aspect_ratio="4:3") and await channels.get(GUILD, ART) == replaced
    assert (await channels.get(GUILD, HALL)).empty and await channels.all(GUILD) == [(ART, replaced)]
    cleared = await channels.clear(GUILD, ART, actor_id=MOD)
    assert cleared is not None and (cleared.old_value, cleared.new_value) == ("aspect_ratio=4:3", None)
    assert await channels.clear(GUILD, ART, actor_id=MOD) is None  # nothing to clear: no audit row
    audited = await db.fetch_all("SELECT action FROM audit_log WHERE target LIKE 'channel:%' ORDER BY id")
    assert [r[0] for r in audited] == [
        "channel-defaults.set", "channel-defaults.set", "channel-defaults.set", "channel-defaults.clear"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("given", "text"),
    [
        (ChannelDefaults(model="flux-9000"), "Unknown model `flux-9000`"),
        (ChannelDefaults(model="flux-tools/deblur-v1"), "only reached through its button"),
        (ChannelDefaults(model="flux-2-klein-9b-finetuned"), "only reached through a LoRA style"),
        (ChannelDefaults(aspect_ratio="2:1"), "doesn't support the aspect ratio `2:1`"),
        (ChannelDefaults(style="gone"), "no style called `gone`"),
        (ChannelDefaults(count=5), "between 1 and 4"),
    ],
)
async def test_a_bad_value_changes_nothing(db, channels, given, text):
    await channels.set(GUILD, ART, ChannelDefaults(private=True), actor_id=MOD)
    with pytest.raises(InvalidOptions, match=text):
        await channels.set(GUILD, ART, given, actor_id=MOD)
    assert await channels.get(GUILD, ART) == ChannelDefaults(private=True)
    assert len(await db.fetch_all("SELECT * FROM audit_log")) == 1


async def test_resolve_takes_explicit_then_member_then_channel_then_bot_option_by_option(prefs, channels, styles):
    await styles.add(GUILD, "Ink", "{prompt}, ink", actor_id=MOD)
    await channels.set(GUILD, ART, ChannelDefaults("flux-dev", "16:9", 2, True, "ink"), actor_id=MOD)
    here = await prefs.resolve(GUILD, ALICE, channel_id=ART)
    assert (here.model, here.aspect_ratio, here.count, here.private, here.style.name) == (
        "flux-dev",
        "16:9",
        2,
        True,
        "Ink",
    )
    elsewhere = await prefs.resolve(GUILD, ALICE, channel_id=HALL)
    assert (elsewhere.model, elsewhere.aspect_ratio, elsewhere.count, elsewhere.private, elsewhere.style) == (
        BOT_MODEL, None, 1, False, None
    )  # fmt: skip
    await prefs.set(GUILD, ALICE, model="flux-3-image", aspect_ratio="2:1", count=1)
    member = await prefs.resolve(GUILD, ALICE, channel_id=ART)
    assert (member.model, member.aspect_ratio, member.count, member.private) == ("flux-3-image", "2:1", 1, True)
    # The member's 2:1 does not fit FLUX.1 [dev]: the channel's 16:9 (which does) is next.
    assert (await prefs.resolve(GUILD, ALICE, channel_id=ART, model="flux-dev")).aspect_ratio == "16:9"
    explicit = await prefs.resolve(GUILD, ALICE, channel_id=ART, private=False, style="none", count=3)
    assert (explicit.private, explicit.style, explicit.count) == (False, None, 3)


async def test_removing_a_style_clears_it_from_channels(channels, styles):
    await styles.add(GUILD, "Ink", "{prompt}, ink", actor_id=MOD)
    await channels.set(GUILD, ART, ChannelDefaults(style="Ink", count=2), actor_id=MOD)
    await styles.remove(GUILD, "ink", actor_id=MOD)
    await styles.add(GUILD, "Ink", "{prompt}, new ink", actor_id=MOD)  # the same name again: not revived
    assert await channels.get(GUILD, ART) == ChannelDefaults(count=2)
