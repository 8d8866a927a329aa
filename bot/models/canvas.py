"""Outpainting geometry: the canvas and offsets behind ``Zoom out 1.5×``, ``Zoom out 2×`` and the pan arrows.

Pure arithmetic, no I/O. Each button turns a stored result (``width``×``height``) into a
:class:`Placement` for BFL's ``POST /v1/flux-tools/outpainting-v1`` (spec:
``tests/specs/bfl-flux-tools-outpainting-v1.json``, from BFL's openapi.json, schema
``FluxOutpaintingInputs``): a canvas (``width``, ``height``) and where the original, the *reference*,
sits on it (``reference_offset_x``/``_y``, its top-left corner in canvas pixels).

The rules, and where they come from:

* **Canvas ≤ 4 MP** (:data:`MAX_CANVAS_PIXELS` = 2048² = 4,194,304 px). Not in the schema; enforced by
  BFL (its SDK's ``_models.py`` @ f7ba31b; the docs say "up to 4 MP"). When the ideal canvas is larger,
  the whole picture (canvas, reference and offsets) is scaled down by one factor, keeping the ratio.
  BFL pastes the reference at its own pixel size, so a scaled placement means the image itself must be
  resized to ``reference_width``×``reference_height`` before it is sent
  (:func:`bot.images.reference.fit_reference`).
* **Sides ≥ 64** (:data:`MIN_CANVAS_SIDE`): the schema's ``minimum: 64``.
* **The reference inside the canvas**: ``0 ≤ offset`` and ``offset + reference ≤ canvas`` on both axes,
  because we send ``auto_crop: false`` (its default), with which BFL answers 422 to a reference that
  overhangs. Offsets are always sent explicitly (never ``null`` = centred) so our arithmetic, not BFL's
  rounding, decides where the original lands.
* **Canvas sides are multiples of 16** (:data:`CANVAS_MULTIPLE`). BFL documents no multiple-of rule for
  this route (a third-party Comfy node uses 32: unconfirmed). 16 is what BFL documents for FLUX.2 sizes
  and what every FLUX result we hold is a multiple of (FLUX.1 uses 32), so a pan's unchanged side
  equals the reference's side exactly and no sliver beside the original has to be invented.
  Sides are rounded **up** (the new margin is a little more than asked, never less), so an unscaled
  reference is sent at its own size, untouched.

The geometry: ``Zoom out f×`` makes the canvas ``f`` times the reference on both axes with the
reference centred (the odd pixel of a margin goes right/bottom); a pan grows the canvas by half the
reference on one side and puts the reference against the opposite edge (pan left: canvas ``1.5·w``
wide, ``offset_x = canvas − w``, ``offset_y = 0``); the unchanged side equals the reference's, or, for
a source side that is not a multiple of 16, rounds up with the reference centred on it.

When scaled, the reference's *key* side is fixed first, the other follows from the ratio (rounded half
up), and the canvas from both: for a zoom the key is the longer side (any integer); for a pan it is the
unchanged side, a multiple of 16 so it fills the canvas edge to edge. If rounding up pushes the canvas
over 4 MP, the key side shrinks a step at a time until it fits. A zoom's or pan's result is an ordinary
result, so the buttons compose: zooming out twice applies the rule to the first canvas.

Buttons (:data:`ACTIONS`): the zooms carry the text labels ``Zoom out 1.5×`` and ``Zoom out 2×`` and
no emoji; the arrows carry ``⬅️`` ``➡️`` ``⬆️`` ``⬇️`` as the button's emoji with no label (Discord
then draws a compact square button). Each action also has a plain ``title`` ("Pan left") for logs,
records and anywhere text is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "ACTIONS",
    "CANVAS_MULTIPLE",
    "DIRECTIONS",
    "MAX_CANVAS_PIXELS",
    "MIN_CANVAS_SIDE",
    "ZOOM_FACTORS",
    "CanvasAction",
    "Direction",
    "Placement",
    "pan",
    "placement_for",
    "zoom_out",
]

MAX_CANVAS_PIXELS = 2048 * 2048
"""BFL's outpainting cap: width × height ≤ 4 MP (BFL SDK ``_models.py`` @ f7ba31b), not in the schema."""
MIN_CANVAS_SIDE = 64
"""The schema's ``minimum`` for ``width`` and ``height``."""
CANVAS_MULTIPLE = 16
"""Our choice (BFL documents none for this route): canvas sides are rounded up to a multiple of 16."""
ZOOM_FACTORS: tuple[float, ...] = (1.5, 2.0)
"""The zoom-out factors the buttons offer."""
PAN_GROWTH = Fraction(3, 2)
"""A pan adds half the image on one side: that axis becomes 1.5× the reference."""

Direction = Literal["left", "right", "up", "down"]
DIRECTIONS: tuple[Direction, ...] = ("left", "right", "up", "down")
Anchor = Literal["start", "centre", "end"]
"""Where the reference sits on an axis: at 0, in the middle, or against the far edge."""


@dataclass(frozen=True)
class Placement:
    """A canvas and where a ``source_width``×``source_height`` result sits on it, resized to ``reference_*``."""

    source_width: int
    source_height: int
    canvas_width: int
    canvas_height: int
    reference_width: int
    reference_height: int
    offset_x: int
    offset_y: int

    @property
    def scale(self) -> float:
        """How much the reference was shrunk to fit 4 MP (1.0: sent at its own size); width-wise."""
        return self.reference_width / self.source_width

    @property
    def scaled(self) -> bool:
        """Whether the image must be resized to the reference size before it is sent."""
        return (self.reference_width, self.reference_height) != (self.source_width, self.source_height)

    def to_record(self) -> list[int]:
        """The placement as JSON-able data (a request record's ``placement``): :meth:`from_record` reads it back."""
        return [
            self.source_width,
            self.source_height,
            self.canvas_width,
            self.canvas_height,
            self.reference_width,
            self.reference_height,
            self.offset_x,
            self.offset_y,
        ]

    @classmethod
    def from_record(cls, record: list[int]) -> Placement:
        """The placement :meth:`to_record` wrote."""
        return cls(*(int(value) for value in record))

    def request_fields(self) -> dict[str, int]:
        """The geometry part of an outpainting body: ``width``, ``height`` and both reference offsets."""
        return {
            "width": self.canvas_width,
            "height": self.canvas_height,
            "reference_offset_x": self.offset_x,
            "reference_offset_y": self.offset_y,
        }


@dataclass(frozen=True)
class CanvasAction:
    """One button under a result: ``label`` and/or ``emoji`` on its face, and the geometry it asks for."""

    key: str
    title: str
    label: str | None
    emoji: str | None
    factor: float | None = None
    direction: Direction | None = None


ACTIONS: dict[str, CanvasAction] = {
    action.key: action
    for action in (
        CanvasAction("zoom15", "Zoom out 1.5×", "Zoom out 1.5×", None, factor=1.5),
        CanvasAction("zoom2", "Zoom out 2×", "Zoom out 2×", None, factor=2.0),
        CanvasAction("pan_left", "Pan left", None, "⬅️", direction="left"),
        CanvasAction("pan_right", "Pan right", None, "➡️", direction="right"),
        CanvasAction("pan_up", "Pan up", None, "⬆️", direction="up"),
        CanvasAction("pan_down", "Pan down", None, "⬇️", direction="down"),
    )
}
"""The six canvas buttons, in the order they are shown, by a key short enough for a custom id."""


def zoom_out(width: int, height: int, factor: float) -> Placement:
    """Zoom out ``factor``× (1.5 or 2): a canvas ``factor`` times the image, the image centred, ≤ 4 MP."""
    if factor not in ZOOM_FACTORS:
        raise ValueError(f"zoom factor must be one of {ZOOM_FACTORS}, not {factor!r}")
    grow = Fraction(factor)
    key_is_x = width >= height
    return _place(width, height, (grow, "centre"), (grow, "centre"), key_is_x=key_is_x, key_step=1)


def pan(width: int, height: int, direction: Direction) -> Placement:
    """Pan ``direction``: the canvas grows by half the image on that side, the image against the other edge."""
    kept: tuple[Fraction, Anchor] = (Fraction(1), "centre")  # equal sides unless the source isn't a multiple of 16
    if direction == "left":
        return _place(width, height, (PAN_GROWTH, "end"), kept, key_is_x=False)
    if direction == "right":
        return _place(width, height, (PAN_GROWTH, "start"), kept, key_is_x=False)
    if direction == "up":
        return _place(width, height, kept, (PAN_GROWTH, "end"), key_is_x=True)
    if direction == "down":
        return _place(width, height, kept, (PAN_GROWTH, "start"), key_is_x=True)
    raise ValueError(f"pan direction must be one of {DIRECTIONS}, not {direction!r}")


def placement_for(key: str, width: int, height: int) -> Placement:
    """The placement the button ``key`` (an :data:`ACTIONS` key) asks for; ``KeyError`` for an unknown key."""
    action = ACTIONS[key]
    if action.direction is not None:
        return pan(width, height, action.direction)
    assert action.factor is not None  # every action is a zoom or a pan
    return zoom_out(width, height, action.factor)


def _place(
    width: int,
    height: int,
    x: tuple[Fraction, Anchor],
    y: tuple[Fraction, Anchor],
    *,
    key_is_x: bool,
    key_step: int = CANVAS_MULTIPLE,
) -> Placement:
    """Fit the ideal canvas (the reference × each axis's growth) into 4 MP; see the module docstring.

    ``key_is_x``: the reference side fixed first (width or height); the other follows from the ratio.
    ``key_step``: the step that side takes when it has to shrink (16 for a pan's unchanged side).
    """
    if width < 1 or height < 1:
        raise ValueError(f"the image size must be positive, not {width}×{height}")
    key_length, other_length = (width, height) if key_is_x else (height, width)
    ideal = width * x[0] * height * y[0]
    key = key_length if ideal <= MAX_CANVAS_PIXELS else _scaled_key(key_length, ideal, key_step)
    while key >= 1:
        # Half-up rounding in integers: the same key gives the same other side on every platform.
        other = other_length if key == key_length else max(1, (2 * other_length * key + key_length) // (2 * key_length))
        ref_w, ref_h = (key, other) if key_is_x else (other, key)
        canvas_w, canvas_h = _canvas_side(ref_w, x[0]), _canvas_side(ref_h, y[0])
        if canvas_w * canvas_h <= MAX_CANVAS_PIXELS:
            return Placement(
                source_width=width,
                source_height=height,
                canvas_width=canvas_w,
                canvas_height=canvas_h,
                reference_width=ref_w,
                reference_height=ref_h,
                offset_x=_offset(canvas_w, ref_w, x[1]),
                offset_y=_offset(canvas_h, ref_h, y[1]),
            )
        key = _step_down(key, key_step)
    raise ValueError(f"no canvas within {MAX_CANVAS_PIXELS:,} px fits a {width}×{height} image")  # pragma: no cover


def _scaled_key(key_length: int, ideal: Fraction, step: int) -> int:
    """The key side scaled by √(cap / ideal), floored exactly (integer square root, no float drift)."""
    key = math.isqrt(math.floor(key_length * key_length * MAX_CANVAS_PIXELS / ideal))
    return key // step * step if key >= step else key


def _step_down(key: int, step: int) -> int:
    """The next smaller key: the multiple of ``step`` below it, or one pixel less once below ``step``."""
    return (key - 1) // step * step if key > step else key - 1


def _canvas_side(reference: int, growth: Fraction) -> int:
    """The reference side × growth, rounded up to :data:`CANVAS_MULTIPLE`, at least :data:`MIN_CANVAS_SIDE`."""
    return max(MIN_CANVAS_SIDE, math.ceil(reference * growth / CANVAS_MULTIPLE) * CANVAS_MULTIPLE)


def _offset(canvas: int, reference: int, anchor: Anchor) -> int:
    if anchor == "start":
        return 0
    if anchor == "end":
        return canvas - reference
    return (canvas - reference) // 2
