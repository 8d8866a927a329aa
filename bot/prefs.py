"""Member defaults (`/prefs`): a member's own model, aspect ratio, count, privacy and style in one server.

:meth:`PrefsService.resolve` is what `/imagine` asks: an option given explicitly always wins, then the
member's default, then the channel's, then the bot's (``DEFAULT_MODEL``, 1:1, public, no style). A default aspect ratio
the chosen model does not support is skipped (the member did not type it, so refusing over it would
puzzle them); an explicit one is checked by :func:`bot.models.build_request` as always.

``count`` (1–4) is stored and exposed as :attr:`MemberDefaults.count` and :attr:`Resolved.count` for
`/imagine count:`; this module does not make several images itself.

A channel's defaults (`/budget channel`, :mod:`bot.channel_defaults`) sit between the member's and the
bot's: explicit > member > channel > bot, option by option.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from bot.clock import Clock, to_millis, utc_now
from bot.errors import InvalidOptions
from bot.models import MODELS, GenerationRequest, get_model, is_offered
from bot.models.lora import Lora
from bot.models.options import echo
from bot.storage.database import Database
from bot.styles import NO_STYLE, Style, StyleService, style_key

if TYPE_CHECKING:
    from bot.channel_defaults import ChannelDefaultsStore

log = logging.getLogger(__name__)

MAX_COUNT = 4


@dataclass(frozen=True)
class MemberDefaults:
    """A member's defaults in one server; ``None``: not set (the bot's default applies)."""

    model: str | None = None
    aspect_ratio: str | None = None
    count: int | None = None
    private: bool | None = None
    style: str | None = None  # the style's name as the server spells it

    @classmethod
    def from_row(cls, row: Any) -> MemberDefaults:
        """Defaults read from a row of ``member_prefs`` or ``channel_defaults`` (joined with the style's name)."""
        return cls(
            model=row["model"] if row["model"] in MODELS else None,  # a model since dropped from the table
            aspect_ratio=row["aspect_ratio"],
            count=row["count"],
            private=None if row["private"] is None else bool(row["private"]),
            style=row["style"],
        )

    @property
    def empty(self) -> bool:
        """Whether nothing is set."""
        return all(getattr(self, f.name) is None for f in fields(self))

    def describe(self) -> str | None:
        """What is set, in one line (``model=flux-dev, count=2, …``), for the audit log; None if nothing."""
        shown = {True: "yes", False: "no"}
        parts = [
            f"{f.name}={shown.get(value, value) if isinstance(value, bool) else value}"
            for f in fields(self)
            if (value := getattr(self, f.name)) is not None
        ]
        return ", ".join(parts) or None

    def over(self, lower: MemberDefaults) -> MemberDefaults:
        """These defaults, each unset one taken from ``lower`` (a member's over their channel's)."""
        return MemberDefaults(
            **{f.name: v if (v := getattr(self, f.name)) is not None else getattr(lower, f.name) for f in fields(self)}
        )


@dataclass(frozen=True)
class Resolved:
    """The options of one `/imagine` after defaults: what to build the request from."""

    model: str
    aspect_ratio: str | None  # None: the model's default shape
    private: bool
    count: int
    style: Style | None

    def prompt(self, prompt: str, *, max_prompt_length: int) -> str:
        """The prompt to generate: inside the style's template when there is one."""
        return prompt if self.style is None else self.style.apply(prompt, max_prompt_length=max_prompt_length)

    def styled(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` marked with the style's name, if one applies (the job row and the card; never BFL)."""
        return request if self.style is None else self.style.styled(request)

    @property
    def lora(self) -> Lora | None:
        """A LoRA style's LoRA (then :attr:`model` is its route): what the request sends as ``finetune_id``."""
        return None if self.style is None else self.style.lora


def _lora_route(style: Style, model: str | None) -> str:
    """A LoRA style's route; an explicit ``model`` other than it (or its base) is refused, never dropped silently."""
    route = style.route or ""
    if model is not None and model.strip() not in (route, MODELS[route].lora_base):
        raise InvalidOptions(
            f"The style “{style.name}” is a LoRA style: it runs on {MODELS[route].label} with its LoRA, so it can't"
            f" render on `{echo(model.strip())}`. Leave `model` empty to use it, or choose `style:{NO_STYLE}`."
        )
    return route


def _check_model(model: str) -> str:
    spec = get_model(model.strip())  # unknown: the message listing the models
    if spec.button_only:  # a route only a result button reaches (Sharpen's deblur) renders no prompt
        raise InvalidOptions(f"{spec.label} is only reached through its button under a result, not as a default.")
    if spec.lora_base is not None:  # a LoRA route runs only with its style's LoRA
        raise InvalidOptions(f"{spec.label} is only reached through a LoRA style (`/style list`), not as a default.")
    if not is_offered(spec.key):  # whatever else members may not pick
        raise InvalidOptions(f"{spec.label} can't be a default: choose a model from the list.")
    return spec.key


def _check_ratio(model: str, aspect_ratio: str) -> str:
    spec = MODELS[model]
    ratio = aspect_ratio.strip()
    if ratio not in spec.aspect_ratios:
        raise InvalidOptions(
            f"{spec.label} (the default model) doesn't support the aspect ratio `{ratio[:20]}`. Choose one of:"
            f" {', '.join(spec.aspect_ratios)}, or set another `model` too."
        )
    return ratio


async def checked(
    current: MemberDefaults, given: MemberDefaults, styles: StyleService, guild_id: int, *, default_model: str
) -> MemberDefaults:
    """``current`` with the ``given`` values (``None``: keep; ``style="none"``: no style), all checked first.

    An unknown or unofferable model (a button-only or LoRA route), an unknown style, an aspect ratio the
    (new or current) default model does not support, or a count outside 1–4 raises before anything is
    written. Shared by `/prefs` and `/budget channel`.
    """
    new_model = current.model if given.model is None else _check_model(given.model)
    ratio = current.aspect_ratio if given.aspect_ratio is None else given.aspect_ratio
    if ratio is not None and (given.aspect_ratio is not None or given.model is not None):
        ratio = _check_ratio(new_model or default_model, ratio)
    count = given.count
    if count is not None and (isinstance(count, bool) or not 1 <= count <= MAX_COUNT):
        raise InvalidOptions(f"`count` must be between 1 and {MAX_COUNT}.")
    style_name = current.style
    if given.style is not None:
        style_name = None if style_key(given.style) == NO_STYLE else (await styles.require(guild_id, given.style)).name
    return MemberDefaults(
        model=new_model,
        aspect_ratio=ratio,
        count=current.count if count is None else count,
        private=current.private if given.private is None else given.private,
        style=style_name,
    )


class PrefsService:
    """Stores members' defaults and applies them to a request's options."""

    def __init__(
        self,
        db: Database,
        styles: StyleService,
        *,
        default_model: str,
        channels: ChannelDefaultsStore | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._db = db
        self._styles = styles
        self._default_model = default_model
        self._clock = clock
        self.channels = channels  # the channels' defaults (`/budget channel`), under the member's

    async def get(self, guild_id: int, user_id: int) -> MemberDefaults:
        """The member's defaults here (all ``None`` if they set none)."""
        row = await self._db.fetch_one(
            "SELECT p.model, p.aspect_ratio, p.count, p.private, s.name AS style FROM member_prefs p"
            " LEFT JOIN server_styles s ON s.guild_id = p.guild_id AND s.name_key = p.style_key"
            " WHERE p.guild_id = ? AND p.user_id = ?",
            (guild_id, user_id),
        )
        return MemberDefaults() if row is None else MemberDefaults.from_row(row)

    async def set(
        self,
        guild_id: int,
        user_id: int,
        *,
        model: str | None = None,
        aspect_ratio: str | None = None,
        count: int | None = None,
        private: bool | None = None,
        style: str | None = None,
        replace: bool = False,
    ) -> MemberDefaults:
        """Set the given defaults (``None``: leave as is; ``style="none"``: no default style) and return them all.

        ``replace``: the others are cleared (``/prefs clear:true`` with options). Everything is checked
        before anything is written: an unknown model or style, an aspect ratio the (new or current)
        default model does not support, or a count outside 1–4 changes nothing.
        """
        current = MemberDefaults() if replace else await self.get(guild_id, user_id)
        given = MemberDefaults(model=model, aspect_ratio=aspect_ratio, count=count, private=private, style=style)
        chosen = await checked(current, given, self._styles, guild_id, default_model=self._default_model)
        await self._db.execute(
            "INSERT INTO member_prefs (guild_id, user_id, model, aspect_ratio, count, private, style_key, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, user_id) DO UPDATE SET model = excluded.model,"
            " aspect_ratio = excluded.aspect_ratio, count = excluded.count, private = excluded.private,"
            " style_key = excluded.style_key, updated_at = excluded.updated_at",
            (
                guild_id,
                user_id,
                chosen.model,
                chosen.aspect_ratio,
                chosen.count,
                None if chosen.private is None else int(chosen.private),
                None if chosen.style is None else style_key(chosen.style),
                to_millis(self._clock()),
            ),
        )
        return chosen

    async def clear(self, guild_id: int, user_id: int) -> bool:
        """Forget all the member's defaults here; whether there were any."""
        return bool(
            await self._db.execute("DELETE FROM member_prefs WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
        )

    async def resolve(
        self,
        guild_id: int,
        user_id: int,
        *,
        model: str | None = None,
        aspect_ratio: str | None = None,
        private: bool | None = None,
        style: str | None = None,
        count: int | None = None,
        draft: bool = False,
        channel_id: int | None = None,
    ) -> Resolved:
        """The options to use: given explicitly, else the member's default, else the channel's, else the bot's.

        ``count`` with neither an option nor a default is 1, or 4 candidates for a ``draft``. A default
        aspect ratio (the member's, else the channel's) is used only if the chosen model supports it.

        ``style="none"`` uses no style even if the member (or the channel) has a default one; an unknown
        style (given, or a default removed meanwhile) is refused with the member-facing message. A LoRA
        style's route is the model (a default model gives way; an explicit other model is refused).
        """
        member = await self.get(guild_id, user_id)
        channel = MemberDefaults()
        if channel_id is not None and self.channels is not None:
            channel = await self.channels.get(guild_id, channel_id)
        defaults = member.over(channel)
        style_name = style if style is not None else defaults.style
        chosen_style = None
        if style_name is not None and style_key(style_name) != NO_STYLE:
            chosen_style = await self._styles.require(guild_id, style_name)
        chosen_model = model if model is not None else defaults.model or self._default_model
        if chosen_style is not None and chosen_style.lora is not None:  # its route, whatever the default model
            chosen_model = _lora_route(chosen_style, model)
        ratio = aspect_ratio
        spec = MODELS.get(chosen_model.strip())
        for default in (member.aspect_ratio, channel.aspect_ratio):  # the first one the model supports
            if ratio is None and default is not None and spec is not None and default in spec.aspect_ratios:
                ratio = default
        return Resolved(
            model=chosen_model,
            aspect_ratio=ratio,
            private=private if private is not None else bool(defaults.private),
            count=count if count is not None else defaults.count or (4 if draft else 1),
            style=chosen_style,
        )
