"""Member defaults on both databases: setting, checking, clearing, and resolving `/imagine`'s options."""

import pytest

from bot.audit import AuditLog
from bot.errors import InvalidOptions
from bot.prefs import MemberDefaults, PrefsService
from bot.styles import StyleService

GUILD, OTHER_GUILD, MOD, ALICE, BOB = 10, 11, 30, 40, 41
BOT_MODEL = "flux-pro-1.1"


@pytest.fixture
async def styles(db, clock):
    return StyleService(db, AuditLog(db, clock), max_prompt_length=1000, clock=clock)


@pytest.fixture
async def prefs(db, styles, clock):
    return PrefsService(db, styles, default_model=BOT_MODEL, clock=clock)


async def test_no_defaults_resolve_to_the_bots(prefs):
    assert (await prefs.get(GUILD, ALICE)).empty
    chosen = await prefs.resolve(GUILD, ALICE)
    assert (chosen.model, chosen.aspect_ratio, chosen.private, chosen.count, chosen.style) == (
        BOT_MODEL, None, False, 1, None
    )  # fmt: skip


async def test_set_merges_with_what_was_set_per_member_per_server(prefs, styles):
    await styles.add(GUILD, "Noir", "{prompt}, film noir", actor_id=MOD)
    await prefs.set(GUILD, ALICE, model="flux-2-klein-4b", aspect_ratio="16:9")
    saved = await prefs.set(GUILD, ALICE, count=4, private=True, style="NOIR")
    assert saved == MemberDefaults("flux-2-klein-4b", "16:9", 4, True, "Noir")
    assert await prefs.get(GUILD, ALICE) == saved
    assert (await prefs.get(GUILD, BOB)).empty and (await prefs.get(OTHER_GUILD, ALICE)).empty
    assert (await prefs.set(GUILD, ALICE, private=False, style="none")) == MemberDefaults(
        "flux-2-klein-4b", "16:9", 4, False, None
    )
    replaced = await prefs.set(GUILD, ALICE, count=2, replace=True)  # /prefs clear:true count:2
    assert replaced == MemberDefaults(count=2) == await prefs.get(GUILD, ALICE)
    assert await prefs.clear(GUILD, ALICE) and (await prefs.get(GUILD, ALICE)).empty
    assert not await prefs.clear(GUILD, ALICE)


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"model": "flux-9000"}, "Unknown model `flux-9000`. Choose one of: `flux-pro-1.1`"),
        ({"model": "flux-tools/deblur-v1"}, "only reached through its button"),  # Sharpen's route is no default
        ({"aspect_ratio": "2:1"}, r"FLUX1.1 \[pro\] \(the default model\) doesn't support the aspect ratio `2:1`"),
        ({"model": "flux-pro-1.1", "aspect_ratio": "2:1"}, "doesn't support the aspect ratio"),
        ({"style": "missing"}, "no style called `missing`"),
        ({"count": 5}, "between 1 and 4"),
        ({"count": 0}, "between 1 and 4"),
    ],
)
async def test_bad_values_are_refused_and_nothing_changes(prefs, options, text):
    await prefs.set(GUILD, ALICE, private=True)
    with pytest.raises(InvalidOptions, match=text):
        await prefs.set(GUILD, ALICE, **options)
    assert await prefs.get(GUILD, ALICE) == MemberDefaults(private=True)


async def test_a_new_default_model_must_support_the_saved_aspect_ratio(prefs):
    await prefs.set(GUILD, ALICE, model="flux-3-image", aspect_ratio="2:1")
    with pytest.raises(InvalidOptions, match="doesn't support the aspect ratio `2:1`"):
        await prefs.set(GUILD, ALICE, model="flux-2-pro")
    await prefs.set(GUILD, ALICE, model="flux-2-pro", aspect_ratio="16:9")  # both at once is fine


async def test_explicit_options_win_then_defaults_then_the_bots(prefs, styles):
    await styles.add(GUILD, "Noir", "{prompt}, film noir", actor_id=MOD)
    await styles.add(GUILD, "Neon", "neon {prompt}", actor_id=MOD)
    await prefs.set(GUILD, ALICE, model="flux-3-image", aspect_ratio="2:1", private=True, count=3, style="noir")
    chosen = await prefs.resolve(GUILD, ALICE)
    assert (chosen.model, chosen.aspect_ratio, chosen.private, chosen.count) == ("flux-3-image", "2:1", True, 3)
    assert chosen.style.name == "Noir" and chosen.prompt("a cat", max_prompt_length=100) == "a cat, film noir"
    explicit = await prefs.resolve(
        GUILD, ALICE, model="flux-dev", aspect_ratio="9:16", private=False, style="neon", count=1
    )
    assert (explicit.model, explicit.aspect_ratio, explicit.private, explicit.count) == ("flux-dev", "9:16", False, 1)
    assert explicit.prompt("a cat", max_prompt_length=100) == "neon a cat"
    # The default 2:1 does not fit an explicitly chosen FLUX.1 [dev]: the model's own default applies.
    assert (await prefs.resolve(GUILD, ALICE, model="flux-dev")).aspect_ratio is None
    # `none` skips the default style.
    nostyle = await prefs.resolve(GUILD, ALICE, style="none")
    assert nostyle.style is None and nostyle.prompt("a cat", max_prompt_length=100) == "a cat"


async def test_an_unknown_style_is_refused_at_use(prefs, styles):
    with pytest.raises(InvalidOptions, match="no style called `gone`"):
        await prefs.resolve(GUILD, ALICE, style="gone")
