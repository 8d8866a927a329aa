"""The buttons of a job's messages: Cancel while queued; Reroll, Vary, Edit, Delete, Details and the carry-ons.

Each is a :class:`cogs._components.PersistentButton` whose custom id holds only an action and a job id
(never the prompt); the job is looked up again on every click, so the buttons work after restarts.
Reroll and Cancel are handled by the ``/imagine`` cog; Vary, Edit, Delete, Details and every carry-on by
the ``/edit`` cog (each registers its kind with itself as the target).

A carry-on (:data:`CARRY_ON`) is a button that maps the result's stored request and its image to a new
request (a function of :mod:`bot.models.carry_on`); adding one is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, cast

import discord

from bot.engine.sources import SourceKind
from bot.models import GenerationRequest, InputImage, more_detail, outpainting, sharpen
from bot.models.animate import animate_result
from bot.models.canvas import ACTIONS as CANVAS_ACTIONS
from cogs._components import PersistentButton, action_template, an_id
from cogs._gallery import GalleryButton


@dataclass(frozen=True)
class CarryOn:
    """A result button that maps the result's stored request and image to a new request."""

    label: str | None  # None: an emoji-only button (the pan arrows)
    emoji: str | None  # None: a text-only button (the zooms)
    kind: SourceKind  # what the new job records it works on (its card and Details)
    derive: Callable[[GenerationRequest, InputImage], GenerationRequest]
    asks: bool = False  # a modal asks for more first (Animate: the motion, length, quality): cogs/_animate.py


CARRY_ON: dict[str, CarryOn] = {
    "detail": CarryOn("More detail", "🔍", "detail", more_detail),
    "sharpen": CarryOn("Sharpen", "🪒", "sharpen", sharpen),
    # Outpainting (bot/models/canvas.py): "Zoom out 1.5×", "Zoom out 2×", then ⬅️ ➡️ ⬆️ ⬇️ (emoji only).
    **{key: CarryOn(a.label, a.emoji, cast(SourceKind, key), outpainting(key)) for key, a in CANVAS_ACTIONS.items()},
    # FLUX 3 video from the result; the video switch is checked before the modal (cogs/_animate.py).
    "animate": CarryOn("Animate", "🎬", "animate", animate_result, asks=True),
}
"""The carry-on buttons by action, in the order they show (their own rows under a result: :data:`RESULT_ROWS`)."""

LOOKS: dict[str, tuple[str | None, str | None, discord.ButtonStyle]] = {
    "reroll": ("Reroll", "🎲", discord.ButtonStyle.secondary),
    "cancel": ("Cancel", "✖️", discord.ButtonStyle.danger),
    "vary": ("Vary", "🌀", discord.ButtonStyle.secondary),
    "edit": ("Edit", "✏️", discord.ButtonStyle.secondary),
    "delete": ("Delete", "🗑️", discord.ButtonStyle.secondary),
    "details": ("Details", "ℹ️", discord.ButtonStyle.secondary),
    **{action: (c.label, c.emoji, discord.ButtonStyle.secondary) for action, c in CARRY_ON.items()},
}


class _JobAction(PersistentButton, template=r"fluxcord:(?!)"):
    """A button ``fluxcord:<action>:<job id>``."""

    ARGUMENTS = (an_id,)

    def __init__(self, action: str, job_id: int) -> None:
        label, emoji, style = LOOKS[action]
        super().__init__(
            discord.ui.Button(label=label, emoji=emoji, style=style, custom_id=f"fluxcord:{action}:{job_id}")
        )
        self.action = action
        self.job_id = job_id


class JobButton(_JobAction, template=action_template(("reroll", "cancel"))):
    """Reroll or Cancel: ``target.reroll`` / ``target.cancel`` (the ``/imagine`` cog)."""

    async def run(self, interaction: discord.Interaction) -> None:
        """Reroll the job, or cancel it while it is queued."""
        if self.action == "reroll":
            await self.target.reroll(interaction, self.job_id)
        else:
            await self.target.cancel(interaction, self.job_id)


_RESULT_ACTIONS = ("vary", "edit", "delete", "details", *CARRY_ON)


class ResultButton(_JobAction, template=action_template(_RESULT_ACTIONS)):
    """Vary, Edit, Delete, Details or a carry-on: ``target.on_action`` (the ``/edit`` cog)."""

    ACTIONS: ClassVar[frozenset[str]] = frozenset(_RESULT_ACTIONS)

    async def run(self, interaction: discord.Interaction) -> None:
        """Hand the click to the cog it was registered with."""
        await self.target.on_action(self.action, interaction, self.job_id)


def job_button(action: str, job_id: int) -> _JobAction:
    """The button of ``action`` for ``job_id``."""
    return ResultButton(action, job_id) if action in ResultButton.ACTIONS else JobButton(action, job_id)


PAN_ROW = ("pan_left", "pan_right", "pan_up", "pan_down")
RESULT_ROWS = (
    ("reroll", "vary", "edit", "delete", "details"),
    tuple(action for action in CARRY_ON if action not in PAN_ROW),
    PAN_ROW,
)
"""The buttons under a posted image, row by row: the first row's; More detail, Sharpen, the zooms and Animate;
the pans. Discord allows at most 5 buttons a row and 5 rows (``tests/cogs/test_cogs.py`` checks)."""
VIDEO_ROWS = (("delete", "details"),)
"""The buttons under a posted video: nothing that would take an MP4 as an image."""


def result_buttons(job_id: int) -> discord.ui.View:
    """The buttons attached to a posted image (:data:`RESULT_ROWS`)."""
    view = discord.ui.View(timeout=None)
    for row, actions in enumerate(RESULT_ROWS):
        for action in actions:
            button = job_button(action, job_id)
            button.item.row = row
            view.add_item(button)
    return view


def video_result_buttons(job_id: int) -> discord.ui.View:
    """The buttons attached to a posted video (:data:`VIDEO_ROWS`)."""
    view = discord.ui.View(timeout=None)
    for action in VIDEO_ROWS[0]:
        view.add_item(job_button(action, job_id))
    return view


def use_buttons(job_id: int, final_number: int | None = None) -> discord.ui.View:
    """The private menu of one gallery image (Use #n): Reroll, Vary, Edit, Details, and Final #n for a draft."""
    view = discord.ui.View(timeout=None)
    for action in ("reroll", "vary", "edit", "details"):
        view.add_item(job_button(action, job_id))
    if final_number is not None:
        view.add_item(GalleryButton("final", job_id, final_number))
    return view


def cancel_buttons(job_id: int) -> discord.ui.View:
    """The button under a queued job's message."""
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton("cancel", job_id))
    return view
