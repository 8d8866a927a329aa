"""Requests made from a stored request: Reroll, Final, a fallback model, and a job admitted before its record was kept.

Every later request is the stored one (:meth:`~bot.models.request.GenerationRequest.from_record`)
moved to a model with some fields replaced (:func:`retarget`): options the target model does not
accept (:meth:`~bot.models.spec.ModelSpec.accepts`) are dropped so its own default applies, an aspect
ratio it does not offer becomes its nearest one, and the result is validated again. Never the BFL
payload, except once, for a job written before ``jobs.request`` existed (:func:`legacy_record`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from PIL import Image

from bot.errors import FluxcordError, InvalidOptions
from bot.models.build import build_request
from bot.models.canvas import Placement
from bot.models.options import DEFAULT_ASPECT_RATIO, OPTION_NAMES
from bot.models.request import RECORD_VERSION, GenerationRequest, InputImage
from bot.models.sizes import nearest_aspect_ratio
from bot.models.spec import ModelSpec
from bot.models.table import get_model

_KEEP: Any = object()
IMAGE_FIELDS = ("input_image", *(f"input_image_{n}" for n in range(2, 9)), "image", "keyframes")
"""The payload fields of FLUX.1 Kontext's and FLUX.2's input images, a FLUX Tool's one ``image`` and a video's one
still (``keyframes``); FLUX 3 Image sends a list, ``images``."""
UNREADABLE_INPUTS = "That image's inputs can no longer be read, so it can't be rerolled."


def retarget(
    request: GenerationRequest,
    model: str | ModelSpec,
    *,
    seed: int | None = _KEEP,
    input_images: Sequence[InputImage] = _KEEP,
    placement: Placement | None = _KEEP,
    **changes: Any,
) -> GenerationRequest:
    """``request`` on ``model`` with ``changes`` (an aspect ratio, options, a style), validated again.

    The seed is kept where both models have one (``seed=None``: a fresh one); options ``model`` does
    not accept are dropped; input images it cannot take raise :class:`InvalidOptions`. Safety
    tolerance is left to admission (which applies the server's level to every request). An outpainting's
    placement is kept on a canvas route (Reroll) and dropped on any other (More detail, Sharpen of its result).
    """
    spec = model if isinstance(model, ModelSpec) else get_model(model)
    images = tuple(request.input_images if input_images is _KEEP else input_images)
    if any(not spec.accepts_input(image.width, image.height) for image in images):
        raise InvalidOptions(f"{spec.label} can't take these input images.")
    if placement is _KEEP:
        placement = request.placement if spec.size_mode == "canvas" else None
    if seed is _KEEP:
        seed = request.seed if request.model.has_seed and spec.has_seed else None
    style = changes.pop("style", request.style)
    lora = request.lora if spec.lora_base is not None else None  # kept on a LoRA route (Reroll, a Final)
    ratio = changes.pop("aspect_ratio", None) or request.aspect_ratio
    if ratio not in spec.aspect_ratios:
        ratio = None if ratio == "auto" else nearest_aspect_ratio(spec, request.width, request.height)
    wanted = {**request.options(), **{k: v for k, v in changes.items() if v is not None}}
    unknown = set(wanted) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(f"retarget() got unknown fields {sorted(unknown)}")
    options = {name: value for name, value in wanted.items() if spec.accepts(name, value)}
    rebuilt = build_request(
        model=spec.key,
        prompt=request.prompt,  # already validated (and, for a styled job, already the templated one)
        aspect_ratio=ratio,
        seed=seed,
        input_images=images,
        allow_grounding=True,  # the server's /safety grounding switch is checked at admission
        max_prompt_length=max(1, len(request.prompt)),
        placement=placement,
        lora=lora,
        **options,
    )
    return dataclasses.replace(rebuilt, style=style)


def rerolled(request: GenerationRequest) -> GenerationRequest:
    """Reroll: the same request (model, prompt, options, input images, style) with a fresh seed (or nonce)."""
    return retarget(request, request.model, seed=None)


def final_request(
    final: Mapping[str, Any], draft: GenerationRequest, model: str, images: Sequence[InputImage] = ()
) -> GenerationRequest:
    """Final #n: the member's request (``final``, kept with the draft group) with draft n's seed, or its image.

    ``final`` is the record of the member's request (:meth:`GenerationRequest.to_record`); a group
    written before records were kept holds only its options (then they go onto ``model``).
    ``images``: the draft itself as the reference, for a final model without a seed.
    """
    spec = get_model(model)
    seed = draft.seed if spec.has_seed and draft.model.has_seed else None
    if final.get("v") == RECORD_VERSION:
        wanted = GenerationRequest.from_record(final)
        return retarget(wanted, spec, seed=seed, input_images=images, style=draft.style)
    return retarget(draft, spec, seed=seed, input_images=images, **final)


class LegacyJob(Protocol):
    """The columns of a job row written before ``jobs.request`` existed (see :func:`legacy_record`)."""

    @property
    def model(self) -> str:
        """The model's key."""
        ...

    @property
    def prompt(self) -> str:
        """The prompt as sent (a styled job's: the templated one)."""
        ...

    @property
    def aspect_ratio(self) -> str | None:
        """The aspect ratio (None: a job older than migration 0004)."""
        ...

    @property
    def width(self) -> int:
        """The width asked for."""
        ...

    @property
    def height(self) -> int:
        """The height asked for."""
        ...

    @property
    def seed(self) -> int:
        """The seed sent (0 for a model without one)."""
        ...

    @property
    def params(self) -> dict[str, Any]:
        """The BFL payload as sent."""
        ...

    @property
    def style(self) -> str | None:
        """The server style applied to the prompt."""
        ...


def legacy_record(job: LegacyJob) -> dict[str, Any]:
    """The request record of a job admitted before records were kept, read once from its columns and payload.

    The payload holds what was sent: the options, the applied ``safety_tolerance`` and the input
    images (whose sizes are read from their headers). Raises :class:`FluxcordError` when an input
    can no longer be read.
    """
    params = job.params
    return {
        "v": RECORD_VERSION,
        "model": job.model,
        "prompt": job.prompt,
        "aspect_ratio": job.aspect_ratio or params.get("aspect_ratio") or DEFAULT_ASPECT_RATIO,
        "width": job.width,
        "height": job.height,
        "seed": job.seed,
        "options": {name: params[name] for name in OPTION_NAMES if params.get(name) is not None},
        "images": [[data, *_image_size(data)] for data in payload_images(params)],
        "nonce": None,
        "safety_tolerance": params.get("safety_tolerance"),
        "style": job.style,
        "lora": [params["finetune_id"], params.get("finetune_strength", 1.0)] if "finetune_id" in params else None,
    }


def payload_images(params: Mapping[str, Any]) -> list[str]:
    """The base64 input images a BFL payload carries (FLUX 3's ``images`` list, else the ``input_image*`` fields)."""
    images = params.get("images")
    found = [images] if isinstance(images, str) else list(images or [])
    return found + [params[field] for field in IMAGE_FIELDS if isinstance(params.get(field), str)]


def _image_size(data: str) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
            return image.size
    except (binascii.Error, OSError, ValueError) as exc:
        raise FluxcordError(UNREADABLE_INPUTS) from exc
