"""The request record: to_record/from_record round trips, ModelSpec.accepts, retarget, Reroll and Final derivations."""

from __future__ import annotations

import base64
import dataclasses
import io
import json

import pytest
from PIL import Image

from bot.errors import FluxcordError, InvalidOptions
from bot.models import (
    MODELS,
    GenerationRequest,
    InputImage,
    ModelSpec,
    build_request,
    final_request,
    legacy_record,
    rerolled,
    retarget,
)
from bot.models.canvas import placement_for
from bot.models.lora import Lora
from tests.bot.test_models import full_options

ids = list(MODELS)


def png(width: int, height: int) -> InputImage:
    """A real (tiny-content) PNG of ``width``×``height`` as an input image."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return InputImage(base64.b64encode(buffer.getvalue()).decode(), width, height)


def full_request(spec: ModelSpec) -> GenerationRequest:
    """A request on ``spec`` with every option it supports set, input images where it takes them, a style (and on
    a LoRA route, a LoRA shared by another org at a strength that is not the default)."""
    options = full_options(spec)  # steps, guidance, raw, prompt_upsampling at an extreme of their range
    if spec.supports("grounding"):
        options["grounding"] = True
    if spec.supports("resolution"):
        options["resolution"] = "2k" if "2k" in spec.resolutions else spec.resolutions[-1]  # a video: fhd
    images = [png(64 * 5, 64 * 4), png(256, 512)][: spec.max_input_images]
    # An outpainting's canvas (a zoom out of the 320×256 image): part of its record, so part of the round trip.
    placement = placement_for("zoom2", 320, 256) if spec.size_mode == "canvas" else None
    request = build_request(
        model=spec.key,
        prompt="a heron «in fog» — 🐦",
        aspect_ratio=None if images else spec.aspect_ratios[-1],
        seed=None if not spec.has_seed else 123_456,
        input_images=images,
        allow_grounding=True,
        placement=placement,
        lora=Lora("acme-org/mascot_v2", 0.85) if spec.lora_base is not None else None,
        **options,
    )
    return dataclasses.replace(request, safety_tolerance=spec.safety_range[1], style="Watercolour")


@pytest.mark.parametrize("key", ids)
def test_every_models_request_round_trips_through_its_json_record(key):
    request = full_request(MODELS[key])
    back = GenerationRequest.from_record(json.loads(request.record_json()))
    assert back == request
    assert back.bfl_payload() == request.bfl_payload() and back.cache_key() == request.cache_key()


def test_a_record_of_another_layout_or_an_unknown_model_is_refused():
    record = full_request(MODELS["flux-dev"]).to_record()
    with pytest.raises(ValueError):
        GenerationRequest.from_record({**record, "v": 99})
    with pytest.raises(ValueError):
        GenerationRequest.from_record({**record, "options": {"strength": 1}})
    with pytest.raises(InvalidOptions, match="Unknown model"):
        GenerationRequest.from_record({**record, "model": "flux-retired"})


@pytest.mark.parametrize(
    ("key", "option", "value", "accepted"),
    [
        ("flux-dev", "steps", 50, True),
        ("flux-dev", "steps", 51, False),
        ("flux-dev", "steps", True, False),  # a bool is not a number of steps
        ("flux-dev", "steps", 20.0, False),
        ("flux-dev", "guidance", 5, True),
        ("flux-dev", "guidance", 5.5, False),
        ("flux-2-flex", "guidance", 5.5, True),
        ("flux-2-flex", "guidance", float("nan"), False),
        ("flux-pro-1.1", "steps", 20, False),  # not supported at all
        ("flux-pro-1.1-ultra", "raw", True, True),
        ("flux-pro-1.1-ultra", "raw", "yes", False),
        ("flux-3-image", "resolution", "4k", True),
        ("flux-3-image", "resolution", "8k", False),
        ("flux-3-image", "grounding", None, False),  # not sent: nothing to accept
    ],
)
def test_accepts_is_support_type_and_range(key, option, value, accepted):
    assert MODELS[key].accepts(option, value) is accepted


def test_accepts_input_is_the_models_input_limits():
    flux3, kontext = MODELS["flux-3-image"], MODELS["flux-kontext-pro"]
    assert flux3.accepts_input(4000, 4000) and not flux3.accepts_input(200, 4000)  # FLUX 3: sides of 256 or more
    assert kontext.accepts_input(2000, 2000) and not kontext.accepts_input(2100, 2000)  # ≤ 4 MP


def test_retarget_drops_what_the_target_does_not_accept_and_keeps_the_rest():
    flex = build_request(
        model="flux-2-flex", prompt="p", aspect_ratio="3:2", seed=7, steps=40, guidance=8.0, prompt_upsampling=True
    )
    dev = retarget(flex, "flux-dev")
    assert (dev.model.key, dev.seed, dev.aspect_ratio) == ("flux-dev", 7, "3:2")
    assert (dev.steps, dev.guidance, dev.prompt_upsampling) == (40, None, True)  # 8.0 is above dev's 5.0
    pro = dev.retarget("flux-pro-1.1")
    assert (pro.steps, pro.guidance, pro.prompt_upsampling) == (None, None, True)


def test_retarget_maps_the_aspect_ratio_and_the_seed_and_refuses_inputs_the_target_cannot_take():
    flux3 = build_request(model="flux-3-image", prompt="p", aspect_ratio="2:1", seed=None)
    dev = retarget(flux3, "flux-dev")
    assert dev.aspect_ratio == "16:9" and dev.seed != 0 and dev.nonce is None  # the nearest ratio; a fresh seed
    back = retarget(dev, "flux-3-image")
    assert back.nonce is not None and "seed" not in back.bfl_payload()
    edit = build_request(model="flux-2-pro", prompt="p", aspect_ratio=None, seed=1, input_images=[png(64, 64)] * 5)
    with pytest.raises(InvalidOptions):
        retarget(edit, "flux-kontext-pro")  # takes 4 inputs at most
    with pytest.raises(InvalidOptions):
        retarget(edit, "flux-dev")  # takes none


def test_retarget_applies_changes_and_clears_the_applied_safety_tolerance():
    request = dataclasses.replace(full_request(MODELS["flux-dev"]), safety_tolerance=5)
    changed = retarget(request, request.model, aspect_ratio="1:1", steps=10, style="Ink")
    assert (changed.aspect_ratio, changed.steps, changed.style, changed.safety_tolerance) == ("1:1", 10, "Ink", None)
    with pytest.raises(TypeError):
        retarget(request, request.model, strength=1)


@pytest.mark.parametrize("key", ids)
def test_a_reroll_is_the_same_request_with_a_fresh_seed_or_nonce(key):
    request = full_request(MODELS[key])
    again = rerolled(request)
    same = {"seed", "nonce", "safety_tolerance"}
    for field in dataclasses.fields(GenerationRequest):
        if field.name not in same:
            assert getattr(again, field.name) == getattr(request, field.name), field.name
    assert again.cache_key() != request.cache_key()
    assert again.safety_tolerance is None  # admission applies the server's level again


def test_final_renders_the_members_request_with_the_drafts_seed():
    wanted = build_request(model="flux-dev", prompt="p", aspect_ratio="16:9", seed=5, steps=33, guidance=2.5)
    wanted = dataclasses.replace(wanted, style="Ink")
    draft = build_request(model="flux-2-klein-4b", prompt="p", aspect_ratio="16:9", seed=901)
    draft = dataclasses.replace(draft, style="Ink")
    final = final_request(wanted.to_record(), draft, "flux-dev")
    assert final == dataclasses.replace(wanted, seed=901)
    legacy = {"aspect_ratio": "16:9", "steps": 33, "guidance": 2.5, "raw": None, "prompt_upsampling": None}
    assert final_request(legacy, draft, "flux-dev") == final  # a group kept before records: its options


def test_final_on_a_model_without_a_seed_takes_the_draft_as_its_reference():
    wanted = build_request(model="flux-3-image", prompt="p", aspect_ratio="1:1", seed=None, resolution="2k")
    draft = build_request(model="flux-2-klein-4b", prompt="p", aspect_ratio="1:1", seed=901)
    final = final_request(wanted.to_record(), draft, "flux-3-image", [png(512, 512)])
    assert final.resolution == "2k" and len(final.input_images) == 1 and final.nonce not in (None, wanted.nonce)


class OldJob:
    """The columns a job row written before migration 0021 has."""

    def __init__(self, request: GenerationRequest) -> None:
        self.model, self.prompt, self.seed = request.model.key, request.prompt, request.seed
        self.aspect_ratio, self.width, self.height = request.aspect_ratio, request.width, request.height
        self.params, self.style = request.bfl_payload(), request.style


# Jobs written before migration 0021 were never outpaintings (that route came with issue 26): no canvas routes here.
@pytest.mark.parametrize("key", [key for key in ids if MODELS[key].size_mode != "canvas"])
def test_a_legacy_job_gives_back_the_request_it_sent(key):
    request = full_request(MODELS[key])
    derived = GenerationRequest.from_record(legacy_record(OldJob(request)))
    expected = dataclasses.replace(request, nonce=None, safety_tolerance=request.effective_safety_tolerance)
    assert derived == expected


def test_a_legacy_job_with_unreadable_inputs_is_explained():
    job = OldJob(build_request(model="flux-2-pro", prompt="p", aspect_ratio=None, seed=1, input_images=[png(64, 64)]))
    job.params["input_image"] = base64.b64encode(b"not an image").decode()
    with pytest.raises(FluxcordError, match="can no longer be read"):
        legacy_record(job)
