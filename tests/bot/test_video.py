"""FLUX 3 video (issue 26 item 5, Animate): its table entry, body, size, per-second price and per-route cap.

Every body is validated against BFL's own schema as vendored in ``tests/specs/bfl-flux-3-video.json`` (the
``mode``-discriminated ``oneOf``, each variant strict) and against the fake's copy of BFL's spec.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from bot.engine.claim import route_caps
from bot.errors import InvalidOptions
from bot.models import MODELS, InputImage, animate, build_request, models_supporting, offered_models
from bot.models.options import OPTION_NAMES
from bot.models.video import (
    VIDEO_ASPECT_RATIOS,
    VIDEO_MODE,
    VIDEO_MODEL,
    VIDEO_QUALITIES,
    video_dimensions,
)
from tests.fakes.fake_bfl import validate_body

VIDEO_SPEC = json.loads((Path(__file__).parents[1] / "specs" / "bfl-flux-3-video.json").read_text())
VIDEO_BODY = Draft202012Validator(VIDEO_SPEC["request"])
VIDEO = MODELS[VIDEO_MODEL]


def png(width: int, height: int) -> InputImage:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, format="PNG")
    return InputImage(base64.b64encode(buffer.getvalue()).decode(), width, height)


def video(prompt: str = "the waves roll in", still: InputImage | None = None, **options) -> object:
    return build_request(
        model=VIDEO_MODEL,
        prompt=prompt,
        aspect_ratio=None,
        seed=None,
        input_images=[still or png(1024, 576)],
        **options,
    )


def test_the_video_route_is_a_button_only_table_entry_with_its_own_cap():
    """``POST /v1/flux-3-video``: reached only through Animate/``/animate``, at most 5 in flight per organisation."""
    assert VIDEO.key == "flux-3-video" and VIDEO.button_only and VIDEO.body == "video"
    assert VIDEO not in offered_models() and all(VIDEO not in models_supporting(o) for o in OPTION_NAMES)
    assert VIDEO.max_active_tasks == 5 and route_caps()["flux-3-video"] == 5
    assert not VIDEO.has_seed and VIDEO.safety_range == (0, 4) and VIDEO.image_safety_max == 2
    assert VIDEO.price.strategy == "per second"


def test_the_schema_facts_match_the_vendored_file():
    """Ratios, qualities, durations and the safety range are a subset of the i2v variant's enums."""
    i2v = VIDEO_SPEC["request"]["$defs"]["Flux3VideoI2VInputs"]["properties"]
    assert set(VIDEO_ASPECT_RATIOS) == set(i2v["aspect_ratio"]["anyOf"][0]["enum"])
    assert set(VIDEO_QUALITIES) <= set(i2v["resolution"]["enum"])
    seconds = i2v["duration"]["anyOf"][0]
    assert VIDEO.duration_range == (seconds["minimum"], seconds["maximum"]) == (5, 20)
    assert (i2v["safety_tolerance"]["minimum"], i2v["safety_tolerance"]["maximum"]) == VIDEO.safety_range
    assert "user" in i2v and VIDEO.takes_user


def test_the_body_is_the_i2v_variant_with_the_still_as_its_first_keyframe():
    still = png(1024, 576)
    request = video(still=still, duration=8, resolution="fhd")
    body = request.bfl_payload()
    assert VIDEO_MODE == "i2v"
    assert body == {
        "mode": "i2v",
        "prompt": "the waves roll in",
        "keyframes": still.data_b64,
        "aspect_ratio": "16:9",
        "duration": 8,
        "resolution": "fhd",
    }
    assert list(VIDEO_BODY.iter_errors(body)) == []
    assert validate_body(VIDEO_MODEL, body) == []  # the fake's copy of BFL's spec


def test_defaults_five_seconds_hd_and_safety_capped_at_two_with_an_image():
    request = video()
    assert (request.duration, request.resolution) == (5, "hd")
    assert (request.width, request.height) == (1280, 720)
    capped = dataclasses.replace(request, safety_tolerance=4)  # as admission applies the server's level
    assert capped.bfl_payload()["safety_tolerance"] == 2
    assert list(VIDEO_BODY.iter_errors(capped.bfl_payload())) == []
    assert not request.cacheable  # no seed: every video is new, and no video is ever served from the image cache


@pytest.mark.parametrize(
    ("quality", "ratio", "size"),
    [
        ("hd", "16:9", (1280, 720)),
        ("fhd", "16:9", (1920, 1080)),
        ("hd", "9:16", (720, 1280)),
        ("hd", "1:1", (720, 720)),
        ("fhd", "21:9", (2520, 1080)),
        ("hd", "3:4", (720, 960)),
    ],
)
def test_video_sizes_by_quality_and_ratio(quality, ratio, size):
    assert video_dimensions(ratio, quality) == size


def test_the_still_picks_the_nearest_video_ratio():
    assert video(still=png(600, 1000)).aspect_ratio == "9:16"
    assert video(still=png(800, 800)).aspect_ratio == "1:1"


@pytest.mark.parametrize(
    ("seconds", "quality", "micros"),
    [(5, "hd", 850_000), (5, "fhd", 1_450_000), (10, "hd", 1_700_000), (20, "fhd", 5_800_000)],
)
def test_priced_per_second_by_quality(seconds, quality, micros):
    """BFL's list: $0.17/s at hd, $0.29/s at fhd (i2v); the still is not billed."""
    assert video(duration=seconds, resolution=quality).estimated_cost_micros == micros
    assert "$0.17/s" in VIDEO.describe_price() and "$0.29/s" in VIDEO.describe_price()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"duration": 4}, "between 5 and 20"),
        ({"duration": 21}, "between 5 and 20"),
        ({"resolution": "uhd"}, "hd, fhd"),
        ({"resolution": "1k"}, "hd, fhd"),
    ],
)
def test_out_of_range_options_are_refused_before_anything(options, message):
    with pytest.raises(InvalidOptions, match=message):
        video(**options)


def test_video_needs_exactly_one_still():
    with pytest.raises(InvalidOptions, match="one image"):
        build_request(model=VIDEO_MODEL, prompt="x", aspect_ratio=None, seed=None)


def test_other_models_take_no_duration():
    with pytest.raises(InvalidOptions, match="duration"):
        build_request(model="flux-pro-1.1", prompt="x", aspect_ratio=None, seed=1, duration=5)


def test_animate_maps_a_stored_result_to_video():
    result = png(1024, 576)
    request = animate(result, motion="the beam sweeps the sea", seconds=6, quality="hd")
    assert request.model is VIDEO and request.input_images == (result,)
    assert request.prompt == "the beam sweeps the sea" and request.duration == 6
    assert request.estimated_cost_micros == 6 * 170_000
    assert list(VIDEO_BODY.iter_errors(request.bfl_payload())) == []


def test_the_record_round_trips():
    from bot.models import GenerationRequest

    request = video(duration=7, resolution="fhd")
    assert GenerationRequest.from_record(json.loads(request.record_json())) == request
