"""`/prefs` and `/style` through the real bot, the fake Discord and the fake BFL."""

import pytest

from tests.e2e.gallery import gallery_items, posted
from tests.e2e.support import first_answer, rows, text_of, uid
from tests.e2e.test_privacy import privately_done
from tests.e2e.test_safety import posts

EPHEMERAL = 64


def fields(message):
    [embed] = message["embeds"]
    return {field["name"]: field["value"] for field in embed["fields"]}


async def command(harness, cmd, user, /, *, subcommand=None, strict=True, **options):
    interaction = await harness.fake.slash(cmd, options, user=user, subcommand=subcommand, strict_options=strict)
    return await first_answer(harness, interaction)


async def nothing_generated(harness):
    assert harness.bfl.submits == []
    assert await rows(harness, "SELECT * FROM ledger") == [] and await rows(harness, "SELECT * FROM jobs") == []


async def test_prefs_set_the_members_defaults_for_imagine_and_explicit_options_win(harness, people):
    bfl, member = harness.bfl, people["member"]
    shown = await command(harness, "prefs", member)
    assert shown.ephemeral and "Model: not set (FLUX1.1 [pro])" in text_of(shown)
    saved = await command(harness, "prefs", member, model="flux-2-klein-4b", aspect_ratio="16:9")
    assert saved.ephemeral and "✅ Saved" in text_of(saved)
    assert "FLUX.2 [klein] 4B (`flux-2-klein-4b`)" in text_of(saved) and "Aspect ratio: 16:9" in text_of(saved)

    first = await harness.imagine(prompt="x", user=member)
    assert bfl.submits[0].model == "flux-2-klein-4b"
    assert abs(bfl.submits[0].body["width"] / bfl.submits[0].body["height"] - 16 / 9) < 0.02
    assert fields(first.original_message)["Model"] == "FLUX.2 [klein] 4B"
    assert (await harness.services.jobs.get(int(first.id))).aspect_ratio == "16:9"

    explicit = await harness.imagine(prompt="y", model="flux-pro-1.1", aspect_ratio="1:1", user=member)
    assert bfl.submits[1].model == "flux-pro-1.1" and bfl.submits[1].body["width"] == bfl.submits[1].body["height"]
    assert fields(explicit.original_message)["Model"] == "FLUX1.1 [pro]"

    await harness.imagine(prompt="z", user=people["mod"])  # someone else's requests keep the bot's defaults
    assert bfl.submits[2].model == "flux-pro-1.1" and bfl.submits[2].body["width"] == bfl.submits[2].body["height"]


async def test_private_and_count_defaults_apply_until_cleared_and_an_explicit_count_wins(harness, people):
    fake, member = harness.fake, people["member"]
    await command(harness, "prefs", member, private=True, count=3)
    assert await rows(harness, "SELECT count, private FROM member_prefs WHERE user_id = ?", (uid(member),)) == [(3, 1)]
    grouped = await fake.slash("imagine", {"prompt": "a secret garden"}, user=member)
    members = await posted(harness, grouped)  # the default count: three images, one private gallery
    assert [m.private for m in members] == [True] * 3 and len(harness.bfl.submits) == 3
    assert grouped.ephemeral and grouped.original_message["flags"] & EPHEMERAL
    assert len(gallery_items(grouped.original_message)) == 3

    single = await fake.slash("imagine", {"prompt": "one secret tree", "count": 1}, user=member)
    message = await privately_done(harness, single)  # count:1 given explicitly wins over the default
    assert single.ephemeral and message["flags"] & EPHEMERAL and len(harness.bfl.submits) == 4
    assert (await harness.services.jobs.get(int(single.id))).private

    cleared = await command(harness, "prefs", member, clear=True)
    assert "cleared" in text_of(cleared) and "Private: not set (no)" in text_of(cleared)
    assert await rows(harness, "SELECT * FROM member_prefs") == []
    public = await harness.imagine(prompt="a public garden", user=member)
    assert not public.ephemeral and public.original_message["attachments"] and len(harness.bfl.submits) == 5


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"model": "flux-9000"}, "Unknown model `flux-9000`. Choose one of: `flux-pro-1.1`"),
        ({"aspect_ratio": "2:1"}, "doesn't support the aspect ratio `2:1`"),
        ({"style": "nope"}, "no style called `nope`"),
    ],
)
async def test_bad_prefs_are_refused_privately_and_change_nothing(harness, people, options, text):
    answer = await command(harness, "prefs", people["member"], strict=False, **options)
    assert answer.ephemeral and text in text_of(answer)
    assert await rows(harness, "SELECT * FROM member_prefs") == []


async def test_only_moderators_add_or_remove_styles_and_a_template_needs_prompt(harness, people):
    member, mod = people["member"], people["mod"]
    for subcommand, options in (("add", {"name": "noir", "template": "{prompt}, noir"}), ("remove", {"name": "noir"})):
        refused = await command(harness, "style", member, subcommand=subcommand, **options)
        assert refused.ephemeral and "Only moderators can add or remove styles" in text_of(refused), subcommand
    no_prompt = await command(harness, "style", mod, subcommand="add", name="noir", template="film noir, grain")
    assert no_prompt.ephemeral and "must contain it exactly once" in text_of(no_prompt)
    assert (
        await rows(harness, "SELECT * FROM server_styles") == []
        and await rows(harness, "SELECT * FROM audit_log") == []
    )
    ghost = await command(harness, "style", mod, subcommand="remove", name="ghost")
    assert ghost.ephemeral and "This server has no style called `ghost`. `/style list`" in text_of(ghost)
    listed = await command(harness, "style", member, subcommand="list")
    assert listed.ephemeral and "no styles yet" in text_of(listed)


async def test_a_style_is_autocompleted_applied_shown_on_the_card_kept_by_reroll_and_announced(harness, people, modlog):
    fake, bfl, member, mod = harness.fake, harness.bfl, people["member"], people["mod"]
    added = await command(harness, "style", mod, subcommand="add", name="Watercolor", template="{prompt}, watercolor")
    assert added.ephemeral and "Added the style **Watercolor**" in text_of(added)
    await command(harness, "style", mod, subcommand="add", name="Noir", template="film noir still of {prompt}")
    await posts(harness, modlog, "style add for style “Watercolor”")

    typed = await fake.autocomplete("imagine", {"prompt": "a fox", "style": "wat"}, focused="style", user=member)
    await typed.wait_acked()
    assert typed.response_type == 8 and [c["value"] for c in typed.autocomplete_choices] == ["Watercolor"]
    everything = await fake.autocomplete("imagine", {"prompt": "a fox", "style": ""}, focused="style", user=member)
    await everything.wait_acked()
    assert [c["value"] for c in everything.autocomplete_choices] == ["Noir", "Watercolor", "none"]
    listed = await command(harness, "style", member, subcommand="list")
    assert "**Noir**: film noir still of {prompt}" in text_of(listed)
    for name, options, subcommand, wanted in (
        ("prefs", {"style": "N"}, None, ["Noir", "none"]),
        ("style", {"name": "n"}, "remove", ["Noir"]),  # nothing called `none` to remove
    ):
        typed = await fake.autocomplete(name, options, focused=next(iter(options)), subcommand=subcommand, user=mod)
        await typed.wait_acked()
        assert [c["value"] for c in typed.autocomplete_choices] == wanted, name

    styled = await harness.imagine(prompt="a fox", style="watercolor", user=member)
    assert bfl.submits[0].body["prompt"] == "a fox, watercolor" and "style" not in bfl.submits[0].body
    assert fields(styled.original_message)["Style"] == "Watercolor"
    assert (await harness.services.jobs.get(int(styled.id))).style == "Watercolor"
    details = await fake.click(styled.original_message["id"], f"fluxcord:details:{styled.id}", user=member)
    await details.wait_acked()
    assert fields(details.original_message)["Style"] == "Watercolor"

    click = await fake.click(styled.original_message["id"], f"fluxcord:reroll:{styled.id}", user=member)
    await harness.finished(click)
    assert bfl.submits[1].body["prompt"] == "a fox, watercolor"
    assert bfl.submits[1].body["seed"] != bfl.submits[0].body["seed"]
    assert fields(click.original_message)["Style"] == "Watercolor"

    await command(harness, "prefs", member, style="noir")  # a default style, and `none` to skip it
    default = await harness.imagine(prompt="a cat", user=member)
    assert (
        bfl.submits[2].body["prompt"] == "film noir still of a cat"
        and fields(default.original_message)["Style"] == "Noir"
    )
    plain = await harness.imagine(prompt="a dog", style="none", user=member)
    assert bfl.submits[3].body["prompt"] == "a dog" and "Style" not in fields(plain.original_message)


async def test_a_style_cannot_smuggle_a_blocked_word_past_the_screening(harness, people):
    mod, member = people["mod"], people["member"]
    blocked = await harness.fake.slash(
        "safety", {"words": "dragon"}, subcommand="add", subcommand_group="words", user=mod
    )
    await first_answer(harness, blocked)
    await command(harness, "style", mod, subcommand="add", name="myth", template="{prompt} guarded by a DRAGON")
    refused = await harness.imagine(prompt="a castle", style="myth", user=member)
    assert refused.ephemeral and "“dragon”" in harness.reply_text(refused)
    await nothing_generated(harness)


async def test_a_removed_style_or_one_too_long_for_the_prompt_is_refused_with_a_clear_message(harness, people):
    mod, member = people["mod"], people["member"]
    await command(harness, "style", mod, subcommand="add", name="Noir", template="{prompt}, film noir")
    await command(harness, "prefs", member, style="Noir")
    long = await command(harness, "style", mod, subcommand="add", name="long", template="{prompt} " + "x" * 450)
    assert long.ephemeral
    too_long = await harness.imagine(prompt="y" * 600, style="long", user=member)
    assert too_long.ephemeral and "With the style “long” your prompt becomes 1,051 characters" in harness.reply_text(
        too_long
    )

    removed = await command(harness, "style", mod, subcommand="remove", name="noir")
    assert removed.ephemeral and "Removed the style **Noir**" in text_of(removed)
    refused = await harness.imagine(prompt="a cat", style="Noir", user=member)
    assert refused.ephemeral and "This server has no style called `Noir`" in harness.reply_text(refused)
    await nothing_generated(harness)
    shown = await command(harness, "prefs", member)
    assert "Style: none" in text_of(shown)  # removing the style cleared the member's default
    assert [r[0] for r in await rows(harness, "SELECT action FROM audit_log ORDER BY id")] == [
        "style.add", "style.add", "style.remove"
    ]  # fmt: skip


async def test_style_list_of_a_full_server_fits_one_message(harness, people):
    styles = harness.services.members.styles
    for n in range(25):
        name = f"{n:02d}" + "_" * 30  # markdown characters double when escaped
        await styles.add(harness.fake.guild_id, name, "*" * 250 + "{prompt}" + "_" * 240, actor_id=uid(people["mod"]))
    listed = await command(harness, "style", people["member"], subcommand="list")
    assert listed.ephemeral and "Styles here (25 of 25)" in text_of(listed)
    assert text_of(listed).count("• ") == 25  # all listed (the fake refuses an embed over Discord's limits)


async def test_a_style_wraps_every_image_of_a_group_and_a_draft_keeps_it_for_the_final(harness, people):
    mod, member = people["mod"], people["member"]
    await command(harness, "style", mod, subcommand="add", name="ink", template="{prompt}, ink wash")
    grouped = await harness.fake.slash("imagine", {"prompt": "a crane", "style": "ink", "count": 2}, user=member)
    members = await posted(harness, grouped)
    assert [m.style for m in members] == ["ink", "ink"]
    assert [s.body["prompt"] for s in harness.bfl.submits] == ["a crane, ink wash"] * 2

    drafted = await harness.fake.slash("imagine", {"prompt": "a heron", "style": "ink", "draft": True}, user=member)
    drafts = await posted(harness, drafted)
    assert {m.style for m in drafts} == {"ink"} and {m.model for m in drafts} == {"flux-2-klein-4b"}
    assert [s.body["prompt"] for s in harness.bfl.submits[2:]] == ["a heron, ink wash"] * 4
    final = await harness.fake.click(drafted.original_message["id"], f"fluxcord:final:{drafts[0].id}:1", user=member)
    await harness.finished(final)
    assert harness.bfl.submits[-1].body["prompt"] == "a heron, ink wash"  # styled once, not twice
    assert (await harness.services.jobs.get(int(final.id))).style == "ink"
