"""Server styles on both databases: names, templates, the per-server cap, audit, and applying one."""

import pytest

from bot.audit import AuditLog
from bot.errors import InvalidOptions
from bot.models import build_request
from bot.prefs import PrefsService
from bot.styles import MAX_STYLES, Style, StyleService, check_name, check_template

GUILD, OTHER_GUILD, MOD, ALICE = 10, 11, 30, 40


@pytest.fixture
async def styles(db, clock):
    return StyleService(db, AuditLog(db, clock), max_prompt_length=100, clock=clock)


async def audit(db):
    rows = await db.fetch_all("SELECT actor_id, action, target, old_value, new_value FROM audit_log ORDER BY id")
    return [tuple(r) for r in rows]


async def test_add_list_get_case_insensitively_and_per_server(styles, db):
    style, entry, replaced = await styles.add(GUILD, "  Water  Color ", "{prompt}, watercolor", actor_id=MOD)
    assert style == Style("Water Color", "{prompt}, watercolor") and not replaced
    assert entry.action == "style.add" and entry.new_value == "{prompt}, watercolor"
    assert await styles.get(GUILD, "water color") == style
    assert await styles.get(GUILD, "WATER   COLOR") == style
    assert await styles.get(OTHER_GUILD, "water color") is None
    await styles.add(GUILD, "anime", "anime still of {prompt}", actor_id=MOD)
    assert [s.name for s in await styles.styles(GUILD)] == ["anime", "Water Color"]
    assert [s.name for s in await styles.matching(GUILD, "co")] == ["Water Color"]
    assert [s.name for s in await styles.matching(GUILD, "")] == ["anime", "Water Color"]
    assert await audit(db) == [
        (MOD, "style.add", "style “Water Color”", None, "{prompt}, watercolor"),
        (MOD, "style.add", "style “anime”", None, "anime still of {prompt}"),
    ]


async def test_adding_an_existing_name_in_another_case_replaces_its_template_audited(styles, db):
    await styles.add(GUILD, "noir", "{prompt}, film noir", actor_id=MOD)
    style, entry, replaced = await styles.add(GUILD, "NOIR", "{prompt}, black and white", actor_id=MOD)
    assert replaced and style.name == "NOIR" and len(await styles.styles(GUILD)) == 1
    assert (entry.old_value, entry.new_value) == ("{prompt}, film noir", "{prompt}, black and white")


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("watercolor", "doesn't contain `{prompt}`"),
        ("{prompt} and {prompt}", "contains 2 times"),
        ("{PROMPT}, oil", "doesn't contain"),
        ("   ", "doesn't contain"),
        ("{prompt}" + "x" * 200, "template is too long"),
    ],
)
async def test_a_bad_template_is_refused_and_nothing_is_written(styles, db, template, text):
    with pytest.raises(InvalidOptions, match=text):
        await styles.add(GUILD, "bad", template, actor_id=MOD)
    assert await styles.styles(GUILD) == [] and await audit(db) == []


@pytest.mark.parametrize("name", ["", "x" * 33, "none", "NONE", "-dash", "a/b", "<@123>"])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidOptions):
        check_name(name)


def test_good_names_and_templates():
    assert check_name("Studio Ghibli 2") == "Studio Ghibli 2"
    assert check_name("o'keeffe-ish") == "o'keeffe-ish"
    assert check_template(" \u202e{prompt}, neon ", max_prompt_length=100) == "{prompt}, neon"  # bidi stripped


async def test_a_server_has_at_most_25_styles_but_may_still_replace_one(styles):
    for n in range(MAX_STYLES):
        await styles.add(GUILD, f"s{n}", "{prompt}", actor_id=MOD)
    with pytest.raises(InvalidOptions, match="already has 25 styles"):
        await styles.add(GUILD, "one more", "{prompt}", actor_id=MOD)
    await styles.add(GUILD, "S3", "{prompt}, new", actor_id=MOD)  # a replacement is not a new one
    await styles.add(OTHER_GUILD, "one more", "{prompt}", actor_id=MOD)  # the cap is per server
    assert len(await styles.styles(GUILD)) == MAX_STYLES


async def test_remove_is_audited_clears_members_defaults_and_refuses_an_unknown_name(styles, db, clock):
    prefs = PrefsService(db, styles, default_model="flux-pro-1.1", clock=clock)
    await styles.add(GUILD, "Noir", "{prompt}, film noir", actor_id=MOD)
    await prefs.set(GUILD, ALICE, style="noir", count=3)
    assert (await prefs.get(GUILD, ALICE)).style == "Noir"
    removed, entry = await styles.remove(GUILD, "NOIR", actor_id=MOD)
    assert removed.name == "Noir" and entry.action == "style.remove" and entry.old_value == "{prompt}, film noir"
    assert await styles.get(GUILD, "noir") is None
    after = await prefs.get(GUILD, ALICE)
    assert after.style is None and after.count == 3  # only the style went
    with pytest.raises(InvalidOptions, match="no style called `noir`"):
        await styles.remove(GUILD, "noir", actor_id=MOD)
    assert [a[1] for a in await audit(db)] == ["style.add", "style.remove"]


def test_apply_puts_the_prompt_in_place_and_respects_the_prompt_limit():
    style = Style("neon", "{prompt}, neon {lights}")  # other braces are plain text
    assert style.apply("a cat", max_prompt_length=100) == "a cat, neon {lights}"
    with pytest.raises(InvalidOptions, match=r"becomes 31 characters; the limit is 30, so keep your prompt to 15"):
        style.apply("x" * 16, max_prompt_length=30)
    request = style.styled(build_request(model=None, prompt="a cat, neon {lights}", aspect_ratio=None, seed=1))
    assert request.style == "neon" and "style" not in request.bfl_payload()
    plain = build_request(model=None, prompt="a cat, neon {lights}", aspect_ratio=None, seed=1)
    assert request.cache_key() == plain.cache_key()  # the name is not part of what BFL makes
