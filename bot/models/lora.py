"""A LoRA on a FLUX.2 [klein] ``-finetuned`` route (:class:`Lora`): what a LoRA style adds to a request.

A server owner uploads a LoRA in BFL's dashboard (Customization → Finetunes); the name given there is its
``finetune_id``. A LoRA style (:mod:`bot.styles`) holds that id, a strength and the route of the klein model
it was trained for; ``/imagine style:`` then runs on that route with ``finetune_id``/``finetune_strength``
(:func:`bot.models.payloads.lora_body`). The LoRA travels in the request's record, so Reroll, a Final and a
restart send the same body.

Facts (``tests/specs/bfl-flux-2-klein-9b-finetuned.json``, reconstructed: BFL's ``openapi.json`` lacks these
routes): ``finetune_id`` is lowercase letters, digits, ``-`` and ``_``, or ``{owner_org_id}/name`` for a LoRA
shared with the account; ``finetune_strength`` is 0–2 (the range of BFL's FLUX.1 finetune routes; no klein
default is published, so the bot always sends one, 1.0 unless the style says otherwise).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bot.errors import InvalidOptions
from bot.models.options import echo

LORA_ROUTES: dict[str, str] = {
    "flux-2-klein-9b-finetuned": "flux-2-klein-9b",
    "flux-2-klein-4b-finetuned": "flux-2-klein-4b",
}
"""The LoRA routes a style may use, by route, with the base model each adds a LoRA to (9B first: the default)."""
DEFAULT_LORA_ROUTE = "flux-2-klein-9b-finetuned"
"""A style's route when the moderator names none: [klein] 9B, the higher-fidelity klein (the one BFL's own FLUX
Tools build on) at about the same price as 4B; a LoRA trained for 4B needs ``base:4B``."""
DEFAULT_STRENGTH = 1.0
MIN_STRENGTH, MAX_STRENGTH = 0.0, 2.0
MAX_FINETUNE_ID_LENGTH = 128
_FINETUNE_ID = re.compile(r"(?:[^/\s]+/)?[a-z0-9_-]+")  # the schema's pattern (docs.bfl.ai), as a full match


@dataclass(frozen=True)
class Lora:
    """A LoRA as a request carries it: BFL's ``finetune_id`` and the ``finetune_strength`` to apply it at."""

    finetune_id: str
    strength: float = DEFAULT_STRENGTH

    def to_record(self) -> list[object]:
        """As the request record keeps it: ``[finetune_id, strength]``."""
        return [self.finetune_id, self.strength]

    @classmethod
    def from_record(cls, value: object) -> Lora | None:
        """The LoRA :meth:`to_record` wrote (None: the request has none)."""
        if value is None:
            return None
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError(f"not a LoRA record: {value!r}")
        return cls(str(value[0]), float(value[1]))


def check_finetune_id(text: str) -> str:
    """The id as it will be sent, or :class:`InvalidOptions` saying what a BFL finetune id looks like."""
    shown = text.strip()
    if not shown or len(shown) > MAX_FINETUNE_ID_LENGTH or not _FINETUNE_ID.fullmatch(shown):
        raise InvalidOptions(
            f"`{echo(shown)}` is not a BFL finetune id: use the LoRA's name from the BFL dashboard (Customization →"
            " Finetunes): lowercase letters, digits, `-` and `_`, or `org-id/name` for a LoRA shared with you."
        )
    return shown


def check_strength(value: float | None) -> float:
    """The strength to send (``None``: :data:`DEFAULT_STRENGTH`), or :class:`InvalidOptions` outside 0–2."""
    if value is None:
        return DEFAULT_STRENGTH
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not number or not math.isfinite(value) or not MIN_STRENGTH <= value <= MAX_STRENGTH:
        raise InvalidOptions(
            f"`strength` must be between {MIN_STRENGTH:g} and {MAX_STRENGTH:g} (1 is the LoRA as trained)."
        )
    return float(value)


def check_route(route: str | None) -> str:
    """The LoRA route to use (``None``: :data:`DEFAULT_LORA_ROUTE`), or :class:`InvalidOptions`."""
    chosen = DEFAULT_LORA_ROUTE if route is None else route.strip()
    if chosen not in LORA_ROUTES:
        raise InvalidOptions(f"Unknown LoRA model `{echo(chosen)}`. Choose one of: {', '.join(LORA_ROUTES)}.")
    return chosen
