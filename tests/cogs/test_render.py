"""cogs/_render.py: every refusal and note of the core as Discord text (format_dt, mentions, escaping)."""

from datetime import UTC, datetime, timedelta

import discord
import pytest

from bot.audit import AuditEntry, Subject, SubjectKind
from bot.billing.bookkeeping import BooksCheck
from bot.billing.caps import Limit, LimitStatus, Metric, Scope, Source
from bot.billing.periods import Period
from bot.billing.refusals import CoolingDown, LimitRefused, OverLimit, TooManyPending
from bot.errors import InvalidOptions
from bot.safety.errors import ChannelNotAllowed, MemberBlocked
from bot.safety.notices import Block, ChannelsOnly, PromptRefused, ResultModerated, StrikeBlocked, StrikeNotice
from cogs import _render as render

GUILD, ALICE, MOD, ARTISTS = 10, 20, 30, 40
MIDNIGHT = datetime(2026, 11, 19, tzinfo=UTC)
STAMP = int(MIDNIGHT.timestamp())


def status(limit, used=40_000, granted=0):
    return LimitStatus(limit, used, granted, MIDNIGHT)


def member_usd(value=50_000, source=Source.PERSONAL, role_id=None):
    return Limit(Scope.MEMBER, Metric.USD, Period.DAY, value, source, role_id)


def test_a_budget_refusal_names_the_limit_what_is_left_its_reset_and_whom_to_ask():
    text = render.notice_text(OverLimit(status(member_usd()), 40_000))
    assert "Your daily budget doesn't cover this image" in text and "$0.01 is left of $0.05" in text
    assert f"It resets {discord.utils.format_dt(MIDNIGHT, 'R')}." in text and f"<t:{STAMP}:R>" in text
    assert "(your personal limit)" in text and "/budget grant" in text


def test_a_limit_from_a_role_names_the_role_by_mention():
    text = render.notice_text(OverLimit(status(member_usd(source=Source.ROLE, role_id=ARTISTS)), 40_000))
    assert f"(your <@&{ARTISTS}> role)" in text


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        (Source.SERVER_DEFAULT, "the server default"),
        (Source.MODERATORS, "set by moderators"),
        (Source.BOT_DEFAULT, "the bot's default"),
        (Source.OWNER, "set by the bot's owner"),
        ("a label of its own", "a label of its own"),
    ],
)
def test_every_limit_source_is_worded(source, shown):
    assert render.source(member_usd(source=source)) == shown


def test_an_image_quota_and_a_group_refusal():
    quota = Limit(Scope.SERVER, Metric.IMAGES, Period.WEEK, 1, Source.MODERATORS)
    text = render.notice_text(OverLimit(status(quota, used=1), 1))
    assert text.startswith("This server's weekly image quota is used up (1 of 1 images).") and f"<t:{STAMP}:R>" in text
    group = render.notice_text(OverLimit(status(member_usd()), 80_000, images=4))
    assert "doesn't cover these 4 images" in group and "Nothing was reserved" in group


def test_too_many_in_progress_and_the_cooldown():
    assert "already have 2 images in progress (the limit is 2)" in render.notice_text(TooManyPending(2, 2))
    assert "asked for 3 more; at most 4" in render.notice_text(TooManyPending(2, 4, images=3))
    ready = MIDNIGHT + timedelta(milliseconds=1500)  # a second and a half: shown as two, never early
    assert render.notice_text(CoolingDown(ready)).endswith(f"<t:{STAMP + 2}:R>.")


def test_an_error_is_shown_by_its_notice_else_by_its_own_message():
    assert "image quota" not in render.error_text(InvalidOptions("plain words"))
    assert render.error_text(InvalidOptions("plain words")) == "plain words"
    refused = LimitRefused(TooManyPending(1, 1))
    assert render.error_text(refused) == render.notice_text(TooManyPending(1, 1))


def test_a_block_refusal_with_its_end_and_a_reason_that_cannot_ping_or_format():
    block = Block(ALICE, MIDNIGHT, "spam **now** @everyone", MOD)
    text = render.error_text(MemberBlocked("blocked", notice=block))
    assert f"until <t:{STAMP}:f> (<t:{STAMP}:R>)" in text
    assert "@everyone" not in text and "\\*\\*now\\*\\*" in text
    endless = render.error_text(MemberBlocked("blocked", notice=Block(ALICE, None, None, MOD)))
    assert "until a moderator lifts it." in endless and "Reason" not in endless


def test_the_channel_refusal_mentions_the_allowed_channels():
    text = render.error_text(ChannelNotAllowed("elsewhere", notice=ChannelsOnly([1, 2])))
    assert text == "Images can't be generated in this channel. Use <#1>, <#2>."


def test_mod_log_notes_mention_member_and_channel_and_escape_what_was_typed():
    refused = render.notice_text(PromptRefused(ALICE, 5, "*dragon* @here"))
    assert refused.startswith(f"🚫 <@{ALICE}> was refused in <#5>") and "\\*dragon\\*" in refused
    assert "@here" not in refused
    moderated = render.notice_text(ResultModerated(ALICE, 5, "content", "flux-dev", 7, "p||x @everyone"))
    assert "blocked the image of" in moderated and "||p|\u200b|x @\u200beveryone||" in moderated
    blocked = render.notice_text(StrikeBlocked(Block(ALICE, MIDNIGHT, "3 moderated results within an hour", 0)))
    assert blocked.startswith(f"⛔ <@{ALICE}> is blocked until <t:{STAMP}:f>")
    told = render.notice_text(StrikeNotice(3, Block(ALICE, MIDNIGHT, "3 moderated results within an hour", 0)))
    assert told.startswith("You have had 3 moderated results") and told.endswith(f"(<t:{STAMP}:R>).")


def test_audit_rows_are_rendered_from_ids_and_old_rows_text_is_shown_as_it_is():
    new = AuditEntry(GUILD, MOD, "safety.block", Subject(SubjectKind.MEMBER, ALICE).key(), None, "x", MIDNIGHT)
    assert render.audit_line(new) == f"<@{MOD}> safety block for <@{ALICE}>: — → x"
    role = AuditEntry(GUILD, MOD, "moderator-role.set", "server", "1", f"role:{ARTISTS}", MIDNIGHT)
    assert render.audit_line(role) == f"<@{MOD}> moderator-role set for the server: 1 → <@&{ARTISTS}>"
    everyone = Subject(SubjectKind.ROLE, GUILD).key()
    assert render.notice_text(AuditEntry(GUILD, MOD, "usd limit.set", everyone, None, "$1.00 per day", MIDNIGHT))
    assert "for @everyone" in render.audit_line(AuditEntry(GUILD, MOD, "a", everyone, None, None, MIDNIGHT))
    old = AuditEntry(GUILD, MOD, "safety.block", f"<@{ALICE}>", None, "until <t:1:f>", MIDNIGHT)
    assert render.audit_line(old) == f"<@{MOD}> safety block for <@{ALICE}>: — → until <t:1:f>"
    assert render.stored("blocked words", GUILD) == "blocked words" and render.stored("channel:9", GUILD) == "<#9>"


def test_quota_lines_and_the_books_warning_use_timestamps():
    line = render.quota_line(status(member_usd(), used=10_000, granted=5_000))
    assert line.startswith("Your daily budget: **$0.045** left of $0.055")
    assert "incl. $0.005 granted" in line and line.endswith(f"resets <t:{STAMP}:R>")
    assert render.books_text(None) is None
    assert f"<t:{STAMP}:R>" in render.books_text(BooksCheck(at=MIDNIGHT, since=None, problems=("a", "b")))


def test_an_unknown_notice_is_a_bug_not_a_blank_message():
    with pytest.raises(TypeError):
        render.notice_text(object())
