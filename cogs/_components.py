"""The one base class of Fluxcord's persistent buttons: custom-id parsing, the server check, error routing.

A persistent button's custom id holds only an action and its arguments (``fluxcord:<action>:<args>``):
every client can read it, so it never carries a prompt, and since what it names is looked up again on
every click, the button keeps working after a restart (discord.py's ``DynamicItem``). Each kind of
button declares its actions and how each argument parses (:data:`ARGUMENTS`); the class's template
matches any arguments, so a click whose custom id does not parse, or names an id out of range, still
reaches a button — :class:`UnavailableButton` — and gets a private "This button is no longer
available." A custom id naming no known action is answered the same way (:func:`catch_all`).

A kind of button handles its click through a ``target`` bound to the running bot when the owning
cog's ``setup`` registers it (:func:`register`): the cog never finds another by name. (discord.py
re-registers the class of every dynamic item in a view it sends, so the binding is kept per bot, not
in a subclass.) Every error takes the one app-command error path (``bot/tree.py``).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import discord

from bot.errors import InvalidOptions
from cogs._context import ours, require_guild

log = logging.getLogger(__name__)

UNAVAILABLE_TEXT = "This button is no longer available."
PREFIX = "fluxcord:"
MAX_ID = 2**63 - 1  # a job, group or interaction id: a 64-bit signed integer in the database

ALL_ACTIONS = (
    *("reroll", "cancel", "vary", "edit", "delete", "details", "detail", "sharpen"),
    *("zoom15", "zoom2", "pan_left", "pan_right", "pan_up", "pan_down"),  # outpainting (bot/models/canvas.py)
    "animate",  # FLUX 3 video from a result (cogs/_animate.py)
    *("use", "final", "go", "no", "fallback"),
    "privacy",  # /privacy forget's Forget / Keep: a plain view with its own timeout (cogs/privacy.py)
    *("ask", "approve", "deny"),  # Ask for more and the mod-log's Approve / Deny (cogs/_asks.py)
    *("save", "discard"),  # a large role's budget forecast: Save / Cancel (cogs/_forecast.py)
)
"""Every action a Fluxcord custom id can name (any other gets :data:`UNAVAILABLE_TEXT`)."""


class Unavailable(InvalidOptions):
    """A click on a custom id that does not parse or names nothing that can exist."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE_TEXT)


def an_id(text: str) -> int:
    """A job, group or interaction id: decimal digits, 1 … 2⁶³−1 (else :class:`Unavailable`)."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise Unavailable()
    value = int(text)
    if not 0 < value <= MAX_ID:
        raise Unavailable()
    return value


def a_number(low: int, high: int) -> Callable[[str], int]:
    """A small number in ``low`` … ``high`` (a gallery image's #n)."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 3 and low <= int(text) <= high):
            raise Unavailable()
        return int(text)

    return parse


def a_key(length: int) -> Callable[[str], str]:
    """A random key of ``length`` lowercase hex digits (an offer's id)."""
    pattern = re.compile(rf"[0-9a-f]{{{length}}}")

    def parse(text: str) -> str:
        if pattern.fullmatch(text) is None:
            raise Unavailable()
        return text

    return parse


def action_template(actions: tuple[str, ...]) -> str:
    """The template of a kind of button: its actions, with any arguments (parsed on a click)."""
    return rf"fluxcord:(?P<action>{'|'.join(actions)})(?::(?P<args>.*))?"


class PersistentButton(discord.ui.DynamicItem[discord.ui.Button], template=r"fluxcord:(?!)"):
    """A button whose custom id is ``fluxcord:<action>:<arg>:…``; subclasses give ``ARGUMENTS`` and ``run``."""

    ARGUMENTS: ClassVar[tuple[Callable[[str], Any], ...]] = ()
    target: Any = None  # what handles the click: bound to the bot by :func:`register`, set on a click

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> PersistentButton:
        """Rebuild the button from a click (also after a restart); a custom id that does not parse is unavailable."""
        custom_id = getattr(item, "custom_id", None) or PREFIX
        args = match["args"].split(":") if match["args"] is not None else []
        try:
            if len(args) != len(cls.ARGUMENTS):
                raise Unavailable()
            values = [parse(arg) for parse, arg in zip(cls.ARGUMENTS, args, strict=True)]
        except Unavailable:
            log.info("A click on a custom id that does not parse: %.100r", custom_id)
            return UnavailableButton(custom_id)
        return cls.restore(match["action"], values, item)

    @classmethod
    def restore(cls, action: str, values: list[Any], item: discord.ui.Item[Any]) -> PersistentButton:
        """The button for a parsed custom id (by default ``cls(action, *values)``)."""
        return cls(action, *values)  # type: ignore[arg-type]  # subclasses take (action, *values), not an item

    async def callback(self, interaction: discord.Interaction) -> None:
        """The server check, then :meth:`run`; every error takes the app-command error path."""
        try:
            require_guild(interaction)
            self.target = _BINDINGS.get(interaction.client, {}).get(type(self))
            if self.target is None:  # its cog is not loaded
                raise Unavailable()
            await self.run(interaction)
        except Exception as exc:
            typed = ours(interaction)
            await typed.client.tree.on_error(typed, exc)

    async def run(self, interaction: discord.Interaction) -> None:
        """What the click does (the server is known)."""
        raise Unavailable()


class UnavailableButton(PersistentButton, template=r"fluxcord:.*"):
    """A click on a custom id that does not parse, or names no known action: answered privately, once."""

    def __init__(self, custom_id: str) -> None:
        super().__init__(discord.ui.Button(label="Unavailable", custom_id=custom_id[:100]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Say the button is no longer available (privately; also outside a server)."""
        typed = ours(interaction)
        await typed.client.tree.on_error(typed, Unavailable())


_BINDINGS: weakref.WeakKeyDictionary[discord.Client, dict[type[PersistentButton], Any]] = weakref.WeakKeyDictionary()


def register(bot: discord.Client, kinds: dict[type[PersistentButton], Any]) -> None:
    """Register each kind of button with the bot, its clicks handled by the given target."""
    _BINDINGS.setdefault(bot, {}).update(kinds)
    bot.add_dynamic_items(*kinds)


def unregister(bot: discord.Client, *kinds: type[PersistentButton]) -> None:
    """Undo :func:`register` for these kinds."""
    for kind in kinds:
        _BINDINGS.get(bot, {}).pop(kind, None)
    bot.remove_dynamic_items(*kinds)


def catch_all() -> type[PersistentButton]:
    """The button registered for custom ids naming no known action (``fluxcord:nonsense:1``)."""
    known = "|".join(ALL_ACTIONS)

    class UnknownAction(UnavailableButton, template=rf"fluxcord:(?!(?:{known})(?::|$)).*"):
        """A Fluxcord custom id with an action this bot does not know."""

        @classmethod
        async def from_custom_id(  # type: ignore[override]  # answers with the plain unavailable button
            cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
        ) -> PersistentButton:
            """Every such click is unavailable."""
            return UnavailableButton(getattr(item, "custom_id", None) or PREFIX)

    return UnknownAction


class Modal(discord.ui.Modal):
    """A modal whose errors take the one app-command error path (``tree.on_error``), like commands."""

    # discord.ui.Modal's on_error takes no `item` (discord.py's BaseView's does): mypy sees an override.
    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        """The same error path as commands."""
        typed = ours(interaction)
        await typed.client.tree.on_error(typed, error)
