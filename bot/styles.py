"""Server styles: prompt templates moderators name (`/style`), applied to a member's prompt on request.

A style is a template holding ``{prompt}`` exactly once; :meth:`Style.apply` puts the member's prompt
in its place (plain replacement, so other braces are just text). The templated prompt is the job's
prompt: it is what the server's blocked words are screened against at admission
(:meth:`bot.safety.service.SafetyService.screen`), what BFL gets and what Reroll repeats; the style's
name travels beside it (``GenerationRequest.style`` → ``jobs.style``) for the result card, never to BFL.

A **LoRA style** (`/style add lora:`) also names a LoRA on the server owner's BFL account
(:class:`bot.models.lora.Lora`: its ``finetune_id`` and a strength) and the FLUX.2 [klein] ``-finetuned``
route it was trained for; its template is optional (``{prompt}`` alone). `/imagine` with it runs on that
route (:meth:`bot.prefs.PrefsService.resolve`), whatever the member's default model.

Names are short and unique per server whatever their case; a server has at most :data:`MAX_STYLES`
(so Discord's 25-choice autocomplete lists them all). Every moderator change is audited.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.audit import AuditEntry, AuditLog
from bot.clock import Clock, to_millis, utc_now
from bot.errors import InvalidOptions
from bot.models import MODELS, GenerationRequest
from bot.models.lora import Lora, check_finetune_id, check_route, check_strength
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
    """One server style; a LoRA style also has its LoRA and the LoRA route it runs on."""

    name: str
    template: str
    lora: Lora | None = None
    route: str | None = None
    """A LoRA style's route (a key of :data:`bot.models.lora.LORA_ROUTES`); None for a template-only style."""

    def describe(self) -> str:
        """The style as the audit log keeps it: the template, and a LoRA style's LoRA, strength and route."""
        if self.lora is None:
            return self.template
        return f"{self.template} · LoRA `{self.lora.finetune_id}` ×{self.lora.strength:g} on {self.route}"

    @property
    def lora_label(self) -> str | None:
        """``FLUX.2 [klein] 9B + LoRA, strength 1`` for a LoRA style (everyone may see this), else None."""
        if self.lora is None or self.route is None:
            return None
        return f"{MODELS[self.route].label}, strength {self.lora.strength:g}"

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
        """``request`` marked with this style's name (for the job row and the card; BFL never sees it).

        A LoRA style's LoRA is not added here: :func:`bot.models.build_request` takes it with the route.
        """
        return dataclasses.replace(request, style=self.name)


_COLUMNS = "name, template, lora_id, lora_strength, lora_route"


def _style(row: Mapping[str, Any]) -> Style:
    lora = None if row["lora_id"] is None else Lora(row["lora_id"], float(row["lora_strength"]))
    return Style(row["name"], row["template"], lora, row["lora_route"] if lora is not None else None)


def _lora_columns(style: Style) -> tuple[str | None, float | None, str | None]:
    if style.lora is None:
        return None, None, None
    return style.lora.finetune_id, style.lora.strength, style.route


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
            f"SELECT {_COLUMNS} FROM server_styles WHERE guild_id = ? ORDER BY name_key", (guild_id,)
        )
        return [_style(r) for r in rows]

    async def get(self, guild_id: int, name: str) -> Style | None:
        """The style called ``name`` (any case), if the server has it."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM server_styles WHERE guild_id = ? AND name_key = ?",
            (guild_id, style_key(name)),
        )
        return None if row is None else _style(row)

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

    def checked(
        self,
        name: str,
        template: str | None,
        *,
        lora: str | None = None,
        strength: float | None = None,
        base: str | None = None,
    ) -> Style:
        """The style as it will be stored, or :class:`InvalidOptions` (nothing stored).

        ``lora`` (a BFL ``finetune_id``) makes a LoRA style: ``strength`` 0–2 (default 1), ``base`` its LoRA route
        (default [klein] 9B's), and the template optional. Without ``lora``, ``strength`` and ``base`` mean nothing
        and are refused, and the template is required.
        """
        shown = check_name(name)
        if lora is None:
            if strength is not None or base is not None:
                raise InvalidOptions("`strength` and `base` go with `lora` (a LoRA style); this style has none.")
            if template is None:
                raise InvalidOptions(f"A style needs a `template` (with `{PLACEHOLDER}` once), a `lora`, or both.")
            return Style(shown, check_template(template, max_prompt_length=self._max_prompt_length))
        text = PLACEHOLDER if template is None else check_template(template, max_prompt_length=self._max_prompt_length)
        return Style(shown, text, Lora(check_finetune_id(lora), check_strength(strength)), check_route(base))

    async def add(
        self, guild_id: int, name: str, template: str | None, *, actor_id: int, **lora: Any
    ) -> tuple[Style, AuditEntry, bool]:
        """Add a style, or replace the one with that name (``lora``: :meth:`checked`'s LoRA options).

        Returns the style, the audit entry and whether it replaced one; refuses a bad name, template or
        LoRA, and a style beyond :data:`MAX_STYLES`.
        """
        style = self.checked(name, template, **lora)
        async with self._db.transaction() as tx:
            await tx.lock(f"server_styles:{guild_id}")  # the count check and the insert, one at a time
            old = await tx.fetch_one(
                f"SELECT {_COLUMNS} FROM server_styles WHERE guild_id = ? AND name_key = ?{tx.for_update}",
                (guild_id, style.key),
            )
            if old is None:
                count = await tx.fetch_one("SELECT COUNT(*) AS n FROM server_styles WHERE guild_id = ?", (guild_id,))
                if count is not None and int(count["n"]) >= MAX_STYLES:
                    raise InvalidOptions(
                        f"This server already has {MAX_STYLES} styles, the most there can be. Remove one first."
                    )
            await tx.execute(
                "INSERT INTO server_styles (guild_id, name_key, name, template, lora_id, lora_strength, lora_route,"
                " added_by, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, name_key) DO UPDATE"
                " SET name = excluded.name, template = excluded.template, lora_id = excluded.lora_id,"
                " lora_strength = excluded.lora_strength, lora_route = excluded.lora_route,"
                " added_by = excluded.added_by, added_at = excluded.added_at",
                (guild_id, style.key, style.name, style.template, *_lora_columns(style), actor_id, self._millis()),
            )
        before = None if old is None else _style(old).describe()
        entry = await self._audit.record(
            guild_id, actor_id, "style.add", f"style “{style.name}”", before, style.describe()
        )
        return style, entry, old is not None

    def _millis(self) -> int:
        return to_millis(self._clock())

    async def remove(self, guild_id: int, name: str, *, actor_id: int) -> tuple[Style, AuditEntry]:
        """Remove a style (and clear it from members' and channels' defaults); the refusal if there is none."""
        key = style_key(name)
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                f"SELECT {_COLUMNS} FROM server_styles WHERE guild_id = ? AND name_key = ?{tx.for_update}",
                (guild_id, key),
            )
            if row is None:
                raise unknown_style(name, to_use=False)
            await tx.execute("DELETE FROM server_styles WHERE guild_id = ? AND name_key = ?", (guild_id, key))
            cleared = await tx.execute(
                "UPDATE member_prefs SET style_key = NULL WHERE guild_id = ? AND style_key = ?", (guild_id, key)
            )
            await tx.execute(  # channels' defaults (`/budget channel`) forget it too
                "UPDATE channel_defaults SET style_key = NULL WHERE guild_id = ? AND style_key = ?", (guild_id, key)
            )
        style = _style(row)
        if cleared:
            log.info("Guild %s: style removed; cleared it from %d members' defaults", guild_id, cleared)
        entry = await self._audit.record(
            guild_id, actor_id, "style.remove", f"style “{style.name}”", style.describe(), None
        )
        return style, entry
