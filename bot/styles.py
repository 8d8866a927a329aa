"""Server styles: prompt templates moderators name (`/style`), applied to a member's prompt on request.

A style is a template holding ``{prompt}`` exactly once; :meth:`Style.apply` puts the member's prompt
in its place (plain replacement, so other braces are just text). The templated prompt is the job's
prompt: it is what the server's blocked words are screened against at admission
(:meth:`bot.safety.service.SafetyService.screen`), what BFL gets and what Reroll repeats; the style's
name travels beside it (``GenerationRequest.style`` → ``jobs.style``) for the result card, never to BFL.

Names are short and unique per server whatever their case; a server has at most :data:`MAX_STYLES`
(so Discord's 25-choice autocomplete lists them all). Every moderator change is audited.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass

from bot.audit import AuditEntry, AuditLog
from bot.clock import Clock, to_millis, utc_now
from bot.errors import InvalidOptions
from bot.models import GenerationRequest
from bot.storage.database import Database
from bot.text import clean_prompt, strip_bidi

log = logging.getLogger(__name__)

PLACEHOLDER = "{prompt}"
MAX_STYLES = 25  # Discord lists at most 25 autocomplete choices
MAX_NAME_LENGTH = 32
MAX_TEMPLATE_LENGTH = 500
NO_STYLE = "none"  # `/imagine style:none` skips a default style; no style may be called that
_NAME = re.compile(r"[^\W_][\w .'-]*", re.UNICODE)  # a letter or digit first; then letters, digits, space . ' - _


def style_key(name: str) -> str:
    """How names compare: trimmed, case-folded, inner spaces collapsed."""
    return " ".join(strip_bidi(name).split()).casefold()


def check_name(name: str) -> str:
    """The name as it will be stored, or :class:`InvalidOptions` saying what a name may be."""
    shown = " ".join(strip_bidi(name).split())
    if not shown or len(shown) > MAX_NAME_LENGTH or not _NAME.fullmatch(shown):
        raise InvalidOptions(
            f"A style name is 1–{MAX_NAME_LENGTH} characters: letters, digits, spaces, `-`, `_`, `.` or `'`,"
            " starting with a letter or digit."
        )
    if style_key(shown) == NO_STYLE:
        raise InvalidOptions(f"`{NO_STYLE}` is reserved (it means “no style”); choose another name.")
    return shown


def check_template(template: str, *, max_prompt_length: int) -> str:
    """The template as it will be stored, or :class:`InvalidOptions` (``{prompt}`` exactly once, short)."""
    try:
        text = clean_prompt(template)
    except InvalidOptions:  # nothing visible: say what a template needs, not that a prompt is empty
        text = ""
    count = text.count(PLACEHOLDER)
    if count != 1:
        found = "doesn't contain" if count == 0 else f"contains {count} times"
        raise InvalidOptions(
            f"The template {found} `{PLACEHOLDER}`: it must contain it exactly once, where the member's prompt"
            " goes (for example `{prompt}, watercolor, soft light`)."
        )
    limit = min(MAX_TEMPLATE_LENGTH, max_prompt_length - 1)
    if len(text) > limit:
        raise InvalidOptions(f"The template is too long ({len(text):,} characters). The limit is {limit:,}.")
    return text


@dataclass(frozen=True)
class Style:
    """One server style."""

    name: str
    template: str

    @property
    def key(self) -> str:
        """The name as names compare."""
        return style_key(self.name)

    def apply(self, prompt: str, *, max_prompt_length: int) -> str:
        """``prompt`` inside the template; :class:`InvalidOptions` if the result is over the prompt limit."""
        text = self.template.replace(PLACEHOLDER, prompt, 1)
        if len(text) > max_prompt_length:
            room = max(0, max_prompt_length - (len(self.template) - len(PLACEHOLDER)))
            raise InvalidOptions(
                f"With the style “{self.name}” your prompt becomes {len(text):,} characters; the limit is"
                f" {max_prompt_length:,}, so keep your prompt to {room:,} characters with this style."
            )
        return text

    def styled(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` marked with this style's name (for the job row and the card; BFL never sees it)."""
        return dataclasses.replace(request, style=self.name)


def unknown_style(name: str, *, to_use: bool = True) -> InvalidOptions:
    """The refusal for a style the server does not have (removed, or never added)."""
    shown = strip_bidi(name).replace("`", "'")[: MAX_NAME_LENGTH + 8]
    text = f"This server has no style called `{shown}`"
    if to_use:
        text += f" (a moderator may have removed it). `/style list` shows the styles; `style:{NO_STYLE}` uses none."
    else:
        text += ". `/style list` shows the styles."
    return InvalidOptions(text)


class StyleService:
    """Reads a server's styles; moderators add and remove them (each change audited)."""

    def __init__(self, db: Database, audit: AuditLog, *, max_prompt_length: int, clock: Clock = utc_now) -> None:
        self._db = db
        self._audit = audit
        self._max_prompt_length = max_prompt_length
        self._clock = clock

    async def styles(self, guild_id: int) -> list[Style]:
        """The server's styles, by name."""
        rows = await self._db.fetch_all(
            "SELECT name, template FROM server_styles WHERE guild_id = ? ORDER BY name_key", (guild_id,)
        )
        return [Style(r["name"], r["template"]) for r in rows]

    async def get(self, guild_id: int, name: str) -> Style | None:
        """The style called ``name`` (any case), if the server has it."""
        row = await self._db.fetch_one(
            "SELECT name, template FROM server_styles WHERE guild_id = ? AND name_key = ?",
            (guild_id, style_key(name)),
        )
        return None if row is None else Style(row["name"], row["template"])

    async def require(self, guild_id: int, name: str) -> Style:
        """The style called ``name``, or the member-facing refusal."""
        style = await self.get(guild_id, name)
        if style is None:
            raise unknown_style(name)
        return style

    async def matching(self, guild_id: int, typed: str, limit: int = MAX_STYLES) -> list[Style]:
        """Styles whose name contains ``typed`` (autocomplete), names starting with it first."""
        wanted = style_key(typed)
        found = [s for s in await self.styles(guild_id) if wanted in s.key]
        found.sort(key=lambda s: (not s.key.startswith(wanted), s.key))
        return found[:limit]

    async def add(self, guild_id: int, name: str, template: str, *, actor_id: int) -> tuple[Style, AuditEntry, bool]:
        """Add a style, or replace the template of the one with that name.

        Returns the style, the audit entry and whether it replaced one; refuses a bad name or template,
        and a style beyond :data:`MAX_STYLES`.
        """
        style = Style(check_name(name), check_template(template, max_prompt_length=self._max_prompt_length))
        async with self._db.transaction() as tx:
            await tx.lock(f"server_styles:{guild_id}")  # the count check and the insert, one at a time
            old = await tx.fetch_one(
                f"SELECT template FROM server_styles WHERE guild_id = ? AND name_key = ?{tx.for_update}",
                (guild_id, style.key),
            )
            if old is None:
                count = await tx.fetch_one("SELECT COUNT(*) AS n FROM server_styles WHERE guild_id = ?", (guild_id,))
                if count is not None and int(count["n"]) >= MAX_STYLES:
                    raise InvalidOptions(
                        f"This server already has {MAX_STYLES} styles, the most there can be. Remove one first."
                    )
            await tx.execute(
                "INSERT INTO server_styles (guild_id, name_key, name, template, added_by, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, name_key) DO UPDATE SET name = excluded.name,"
                " template = excluded.template, added_by = excluded.added_by, added_at = excluded.added_at",
                (guild_id, style.key, style.name, style.template, actor_id, to_millis(self._clock())),
            )
        old_template = None if old is None else old["template"]
        entry = await self._audit.record(
            guild_id, actor_id, "style.add", f"style “{style.name}”", old_template, style.template
        )
        return style, entry, old is not None

    async def remove(self, guild_id: int, name: str, *, actor_id: int) -> tuple[Style, AuditEntry]:
        """Remove a style (and clear it from members' defaults); the refusal if there is none by that name."""
        key = style_key(name)
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                f"SELECT name, template FROM server_styles WHERE guild_id = ? AND name_key = ?{tx.for_update}",
                (guild_id, key),
            )
            if row is None:
                raise unknown_style(name, to_use=False)
            await tx.execute("DELETE FROM server_styles WHERE guild_id = ? AND name_key = ?", (guild_id, key))
            cleared = await tx.execute(
                "UPDATE member_prefs SET style_key = NULL WHERE guild_id = ? AND style_key = ?", (guild_id, key)
            )
        style = Style(row["name"], row["template"])
        if cleared:
            log.info("Guild %s: style removed; cleared it from %d members' defaults", guild_id, cleared)
        entry = await self._audit.record(
            guild_id, actor_id, "style.remove", f"style “{style.name}”", style.template, None
        )
        return style, entry
