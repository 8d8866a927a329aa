"""A validated request (:class:`GenerationRequest`): its BFL payload, cache key, price, and its record.

The record (:meth:`GenerationRequest.to_record`) is what the database keeps of a request: it is stored
on the job when admitted (``jobs.request``) and in a fallback offer, and every later request made from
a job (Reroll, Vary, Edit, Final, a fallback) is derived from it (:mod:`bot.models.derive`), never from
the BFL payload.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.models.canvas import Placement
from bot.models.lora import Lora
from bot.models.options import OPTION_NAMES, PIXELS_PER_MEGAPIXEL
from bot.models.payloads import BODIES
from bot.models.spec import ModelSpec
from bot.models.table import get_model
from bot.safety.levels import applied_tolerance

RECORD_VERSION = 1
"""The version of :meth:`GenerationRequest.to_record`'s layout (``"v"``). ``placement`` (an outpainting's canvas,
issue 26) was added as an optional key without a new version: a record without it reads as no placement, exactly
what every earlier record meant, and a process too old to know the key does not know the outpainting route either
(its :func:`~bot.models.table.get_model` refuses the record before the key could matter)."""


@dataclass(frozen=True)
class InputImage:
    """An input image ready for BFL: base64 of a re-encoded, metadata-free image, and its size."""

    data_b64: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Its pixel count (FLUX.2 bills input megapixels)."""
        return self.width * self.height


@dataclass(frozen=True)
class GenerationRequest:
    """A validated text-to-image request; build it with :func:`build_request`.

    Options left as ``None`` are not sent, so BFL applies the endpoint's own default.
    """

    model: ModelSpec
    prompt: str
    aspect_ratio: str
    width: int
    height: int
    seed: int
    steps: int | None = None
    guidance: float | None = None
    raw: bool | None = None
    prompt_upsampling: bool | None = None
    resolution: str | None = None
    grounding: bool | None = None
    duration: int | None = None
    """A video's length in whole seconds (FLUX 3 video only)."""
    input_images: tuple[InputImage, ...] = ()
    nonce: str | None = None
    """Set for models without a seed: every such request is a new image, so it never hits the cache."""
    safety_tolerance: int | None = None
    """The server's safety level mapped onto this model's range (set by :mod:`bot.safety`); None: BFL's default."""
    style: str | None = None
    """The server style applied to ``prompt`` (:mod:`bot.styles`): recorded on the job and shown on the card,
    never sent to BFL (nor part of the cache key: the templated prompt already is)."""
    placement: Placement | None = None
    """An outpainting's canvas and where its one input image (already at ``reference_width``×``reference_height``)
    sits on it (:mod:`bot.models.canvas`); set exactly for a ``canvas`` route, whose size it is."""
    lora: Lora | None = None
    """A LoRA style's LoRA, set exactly on a LoRA route (``model.lora_base``): sent as ``finetune_id``/
    ``finetune_strength`` and kept in the record, so Reroll, a Final and a restart send the same body."""

    def options(self) -> dict[str, Any]:
        """The options that are set (of :data:`OPTION_NAMES`), by name."""
        return {name: getattr(self, name) for name in OPTION_NAMES if getattr(self, name) is not None}

    def to_record(self) -> dict[str, Any]:
        """The request as JSON-able data: :meth:`from_record` gives an equal request back."""
        return {
            "v": RECORD_VERSION,
            "model": self.model.key,
            "prompt": self.prompt,
            "aspect_ratio": self.aspect_ratio,
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
            "options": self.options(),
            "images": [[image.data_b64, image.width, image.height] for image in self.input_images],
            "nonce": self.nonce,
            "safety_tolerance": self.safety_tolerance,
            "style": self.style,
            "placement": None if self.placement is None else self.placement.to_record(),
            "lora": None if self.lora is None else self.lora.to_record(),
        }

    def record_json(self) -> str:
        """:meth:`to_record` as compact JSON, the way the database stores it (``jobs.request``, offers)."""
        return json.dumps(self.to_record(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> GenerationRequest:
        """The request :meth:`to_record` wrote (as it was: not validated again; see :meth:`retarget`).

        Raises :class:`bot.errors.InvalidOptions` when its model is no longer in the table.
        """
        options = record.get("options") or {}
        unknown = set(options) - set(OPTION_NAMES)
        if record.get("v") != RECORD_VERSION or unknown:
            raise ValueError(f"not a request record (version {record.get('v')!r}, options {sorted(unknown)})")
        return cls(
            model=get_model(record["model"]),
            prompt=record["prompt"],
            aspect_ratio=record["aspect_ratio"],
            width=int(record["width"]),
            height=int(record["height"]),
            seed=int(record["seed"]),
            input_images=tuple(InputImage(str(b64), int(w), int(h)) for b64, w, h in record.get("images") or ()),
            nonce=record.get("nonce"),
            safety_tolerance=record.get("safety_tolerance"),
            style=record.get("style"),
            placement=None if record.get("placement") is None else Placement.from_record(record["placement"]),
            lora=Lora.from_record(record.get("lora")),
            **options,
        )

    def retarget(self, model: str | ModelSpec, **changes: Any) -> GenerationRequest:
        """The request on ``model``, validated again, with ``changes`` (see :func:`bot.models.derive.retarget`)."""
        from bot.models.derive import retarget  # derive builds requests, so it imports this module

        return retarget(self, model, **changes)

    def bfl_payload(self) -> dict[str, Any]:
        """Exactly the JSON body for ``POST /v1/<model.key>``: only fields the endpoint's schema defines.

        Its shape is the table entry's (:attr:`ModelSpec.body`, built by :data:`bot.models.payloads.BODIES`).
        """
        return BODIES[self.model.body](self)

    @property
    def effective_safety_tolerance(self) -> int | None:
        """The ``safety_tolerance`` the model applies: the dial's value, within the model's cap for inputs.

        FLUX 3 with input images applies at most 2 whatever is sent, so that is what is sent (and
        stored with the job, so Details shows it). None: not set (BFL's default applies).
        """
        if self.safety_tolerance is None:
            return None
        return applied_tolerance(self.safety_tolerance, self.model.image_safety_max, bool(self.input_images))

    @property
    def cacheable(self) -> bool:
        """Whether an identical request gives the identical image (not for models without a seed)."""
        return self.nonce is None

    def cache_key(self) -> str:
        """A sha256 hex digest identifying the image this request produces.

        Identical requests (same model, prompt, size, options and seed) share a key; any difference
        changes it. It covers the exact payload, so a change in what we send invalidates old entries.
        """
        canonical: dict[str, Any] = {
            "v": 1,
            "model": self.model.key,
            "aspect_ratio": self.aspect_ratio,
            "payload": self.bfl_payload(),
        }
        if self.nonce is not None:
            canonical["nonce"] = self.nonce
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def megapixels(self) -> float:
        """Output size in decimal megapixels (for display; prices use integer pixel counts)."""
        return self.width * self.height / PIXELS_PER_MEGAPIXEL

    @property
    def estimated_cost_micros(self) -> int:
        """Upper-bound cost in micro-dollars (what a budget reservation should hold), inputs included."""
        return self.model.estimate_cost_micros(
            self.width, self.height, [image.pixels for image in self.input_images], self.resolution, self.duration
        )
