"""The one place the core's data becomes Discord text: refusals, notices, audit rows, quota lines.

The core (``bot/``) returns data — amounts in micro-dollars, limits, reset times as datetimes, ids
(:mod:`bot.billing.refusals`, :mod:`bot.safety.notices`, :class:`bot.audit.AuditEntry`) — and never
writes Discord markup. This module words it: timestamps with :func:`discord.utils.format_dt`,
mentions, escaping of what members and moderators typed. Every member- or moderator-facing string
of those kinds lives here, so a translation replaces this module and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import discord

from bot.audit import AuditEntry, Subject, SubjectKind
from bot.billing.bookkeeping import BooksCheck
from bot.billing.caps import Limit, LimitStatus, Metric, Scope, Source
from bot.billing.money import format_usd
from bot.billing.refusals import CoolingDown, OverLimit, TooManyPending
from bot.errors import FluxcordError
from bot.safety.notices import Block, ChannelsOnly, PromptRefused, ResultModerated, StrikeBlocked, StrikeNotice

# -- pieces ------------------------------------------------------------------------------------------


def when(moment: datetime, style: discord.utils.TimestampStyle = "R", *, round_up: bool = False) -> str:
    """A Discord timestamp (shown in each reader's time zone); ``round_up`` for a time not to be shown early."""
    seconds = math.ceil(moment.timestamp()) if round_up else math.floor(moment.timestamp())
    return discord.utils.format_dt(datetime.fromtimestamp(seconds, UTC), style)


def member(user_id: int) -> str:
    """A member's mention (the bot never pings: its allowed mentions are none)."""
    return f"<@{user_id}>"


def role(role_id: int, guild_id: int) -> str:
    """A role's mention; the guild's own id is @everyone."""
    return "@everyone" if role_id == guild_id else f"<@&{role_id}>"


def channel(channel_id: int) -> str:
    """A channel's mention."""
    return f"<#{channel_id}>"


def escaped(text: str) -> str:
    """What a member or moderator typed, shown as typed: no markdown, no @everyone / @here."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def spoiler(text: str, limit: int = 1500) -> str:
    """``text`` inside a Discord spoiler, unable to close it early (and unable to ping)."""
    body = discord.utils.escape_mentions(text).replace("||", "|\u200b|")[:limit]
    return f"||{body}||"


def subject(target: Subject, guild_id: int) -> str:
    """A member, role, channel or the server, as Discord shows it."""
    if target.kind is SubjectKind.MEMBER:
        return member(target.id)
    if target.kind is SubjectKind.ROLE:
        return role(target.id, guild_id)
    if target.kind is SubjectKind.CHANNEL:
        return channel(target.id)
    return "the server"


def subject_with_id(target: Subject, guild_id: int) -> str:
    """:func:`subject`, plus the raw id for members (a former member's mention shows no name)."""
    shown = subject(target, guild_id)
    return f"{shown} (id {target.id})" if target.kind is SubjectKind.MEMBER else shown


def stored(value: str | None, guild_id: int) -> str:
    """An audit row's target or value: a stored id (``member:<id>``…) as a mention, old rows' text as is."""
    if value is None:
        return "—"
    parsed = Subject.parse(value)
    return subject(parsed, guild_id) if parsed is not None else value


def audit_line(entry: AuditEntry) -> str:
    """A one-line, human summary of a moderator change for the mod-log channel."""
    change = f"{stored(entry.old_value, entry.guild_id)} → {stored(entry.new_value, entry.guild_id)}"
    target = stored(entry.target, entry.guild_id)
    flag = " ⚠️ self-benefiting" if entry.self_benefiting else ""
    return f"{member(entry.actor_id)} {entry.action.replace('.', ' ')} for {target}: {change}{flag}"


# -- limits and their refusals -------------------------------------------------------------------------

_SOURCES: dict[str, str] = {
    Source.PERSONAL: "your personal limit",
    Source.SERVER_DEFAULT: "the server default",
    Source.MODERATORS: "set by moderators",
    Source.BOT_DEFAULT: "the bot's default",
    Source.OWNER: "set by the bot's owner",
}
_WHOM_TO_ASK = {
    (Scope.MEMBER, Metric.USD): "A moderator can give you more with `/budget grant`.",
    (Scope.MEMBER, Metric.IMAGES): "A moderator can raise it with `/budget images`.",
    (Scope.SERVER, Metric.USD): "A moderator can raise it with `/budget server`.",
    (Scope.SERVER, Metric.IMAGES): "Ask a moderator.",
    (Scope.BOT, Metric.USD): "Only the bot's owner can raise it (`BOT_BUDGET_USD`).",
    (Scope.BOT, Metric.IMAGES): "Only the bot's owner can raise it.",
}
_OWNERS = {Scope.MEMBER: "Your", Scope.SERVER: "This server's", Scope.BOT: "The bot's"}


def source(limit: Limit) -> str:
    """Where a limit comes from, for people: ``your @Artists role``, ``the server default``."""
    if limit.source == Source.ROLE and limit.role_id is not None:
        return f"your {role(limit.role_id, 0)} role"
    return _SOURCES.get(limit.source, limit.source)


def over_limit(refusal: OverLimit) -> str:
    """What is over, what is left, when it resets, and whom to ask."""
    status, needed, limit = refusal.status, refusal.needed, refusal.status.limit
    resets = when(status.resets_at)
    period, owner = limit.period.adjective, _OWNERS[limit.scope]
    ask = _WHOM_TO_ASK[(limit.scope, limit.metric)]
    if refusal.images > 1:  # an all-or-nothing group: say that none of it was reserved
        if limit.metric is Metric.IMAGES:
            used = f"{status.used} of {status.allowance} images used"
        else:
            used = f"they cost about {format_usd(needed)} and {format_usd(status.remaining)} is left of"
            used += f" {format_usd(status.allowance)} ({source(limit)})"
        what = "image quota" if limit.metric is Metric.IMAGES else "budget"
        return (
            f"{owner} {period} {what} doesn't cover these {refusal.images} images ({used}). Nothing was reserved;"
            f" try a smaller count. It resets {resets}. {ask}"
        )
    if limit.metric is Metric.IMAGES:
        used_up = f"({status.used} of {status.allowance} images)"
        return f"{owner} {period} image quota is used up {used_up}. It resets {resets}. {ask}"
    return (
        f"{owner} {period} budget doesn't cover this image: it costs about {format_usd(needed)} and "
        f"{format_usd(status.remaining)} is left of {format_usd(status.allowance)} ({source(limit)})."
        f" It resets {resets}. {ask}"
    )


def too_many_pending(refusal: TooManyPending) -> str:
    """The member's images in progress are at the cap."""
    if refusal.images > 1:  # a group: its images count together, so even a member with none pending may be over
        return (
            f"You have {refusal.pending} images in progress and asked for {refusal.images} more; at most"
            f" {refusal.max_pending} can be in progress at once. Nothing was reserved: ask for fewer, or wait."
        )
    return (
        f"You already have {refusal.pending} images in progress (the limit is "
        f"{refusal.max_pending}). Wait for one to finish, then try again."
    )


def cooling_down(refusal: CoolingDown) -> str:
    """The member's cooldown."""
    return f"Slow down a little: you can start another image {when(refusal.ready_at, round_up=True)}."


def quota_line(status: LimitStatus) -> str:
    """One `/quota` line: what is left of a limit and when it resets."""
    limit = status.limit
    owner = {Scope.MEMBER: "Your ", Scope.SERVER: "Server ", Scope.BOT: "Bot-wide "}[limit.scope]
    resets = f"resets {when(status.resets_at)}"
    if limit.metric is Metric.IMAGES:
        return (
            f"{owner}{limit.period.adjective} images: **{status.remaining}** left of {status.allowance}"
            f" (used {status.used}) · {resets}"
        )
    granted = f" incl. {format_usd(status.granted)} granted" if status.granted else ""
    return (
        f"{owner}{limit.period.adjective} budget: **{format_usd(status.remaining)}** left of "
        f"{format_usd(status.allowance)}{granted} (spent {format_usd(status.used)}) · {resets}"
    )


def books_text(check: BooksCheck | None) -> str | None:
    """A warning when the last check found counters that disagree with the ledger (or could not run)."""
    if check is None:
        return None
    if check.error is not None:
        failed = f"⚠️ The check of the spend counters against the ledger failed {when(check.at)}"
        return f"{failed}; the bot's log has the error."
    if not check.drift:
        return None
    counters = "spend counter disagrees" if check.drift == 1 else "spend counters disagree"
    return (
        f"⚠️ {check.drift} {counters} with the ledger (checked {when(check.at)}): budgets may be applied wrongly until "
        "the bot's owner repairs them. The bot's log lists them."
    )


# -- safety ------------------------------------------------------------------------------------------


def block_end(block: Block) -> str:
    """``until <date> (<in 2 hours>)`` or ``until a moderator lifts it``."""
    if block.until is None:
        return "until a moderator lifts it"
    return f"until {when(block.until, 'f')} ({when(block.until)})"


def member_blocked(block: Block) -> str:
    """The refusal a blocked member sees."""
    why = f" Reason: {escaped(block.reason)}" if block.reason else ""
    return f"🚫 You are blocked from generating images in this server {block_end(block)}.{why}"


def channels_only(refusal: ChannelsOnly) -> str:
    """The refusal in a channel the server does not allow."""
    where = ", ".join(channel(c) for c in refusal.channel_ids[:10])
    return f"Images can't be generated in this channel. Use {where}."


def prompt_refused(note: PromptRefused) -> str:
    """Mod-log: a prompt matched a blocked rule."""
    return (
        f"🚫 {member(note.user_id)} was refused in {channel(note.channel_id)}: the prompt matched the blocked"
        f" rule “{escaped(note.rule)}”."
    )


def result_moderated(note: ResultModerated) -> str:
    """Mod-log: BFL's filter blocked a prompt or an image (the prompt behind a spoiler)."""
    what = "prompt" if note.stage == "request" else "image"
    return (
        f"⚠️ BFL's filter blocked the {what} of {member(note.user_id)} in {channel(note.channel_id)}"
        f" ({note.model}, job {note.job_id}): {spoiler(note.prompt)}"
    )


def strike_blocked(note: StrikeBlocked) -> str:
    """Mod-log: a member was blocked for their strikes."""
    block = note.block
    return f"⛔ {member(block.user_id)} is blocked {block_end(block)}: {escaped(block.reason or '')}."


def strike_notice(notice: StrikeNotice) -> str:
    """The member's note under a moderated result that blocked them."""
    return (
        f"You have had {notice.recent} moderated results within an hour, so you are blocked from generating images"
        f" in this server {block_end(notice.block)}."
    )


# -- dispatch ----------------------------------------------------------------------------------------

_RENDERERS: dict[type, Callable[[Any], str]] = {
    OverLimit: over_limit,
    TooManyPending: too_many_pending,
    CoolingDown: cooling_down,
    Block: member_blocked,
    ChannelsOnly: channels_only,
    PromptRefused: prompt_refused,
    ResultModerated: result_moderated,
    StrikeBlocked: strike_blocked,
    StrikeNotice: strike_notice,
    AuditEntry: audit_line,
}


def notice_text(notice: object) -> str:
    """Any refusal or note of the core as Discord text (text passes through as it is)."""
    if isinstance(notice, str):
        return notice
    render = _RENDERERS.get(type(notice))
    if render is None:
        raise TypeError(f"no wording for {type(notice).__name__}")
    return render(notice)


def error_text(error: FluxcordError) -> str:
    """What a member is told for a domain error: its notice worded here, else its own message."""
    return error.user_message if error.notice is None else notice_text(error.notice)
