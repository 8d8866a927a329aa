"""The carry-on mappings (bot/models/carry_on.py), from a stored request: More detail's tier and request, Sharpen's."""

import base64
import dataclasses
import io
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from bot.errors import InvalidOptions
from bot.models import GenerationRequest, InputImage, build_request, more_detail, sharpen
from bot.models.carry_on import SHARPEN_MODEL, detail_tier
from tests.fakes.fake_bfl import price_credits, validate_body

RESULT = InputImage(data_b64="", width=1024, height=768)
PLACEHOLDER = InputImage(data_b64="", width=1024, height=1024)  # what the cog maps before loading the image


def stored(**options) -> GenerationRequest:
    """A request as the job stored it (through its record, as a button reads it)."""
    options = {"prompt": "a lighthouse at dusk", "aspect_ratio": "1:1", "seed": None} | options
    return GenerationRequest.from_record(build_request(**options).to_record())


@pytest.mark.parametrize(
    ("options", "tier"),
    [
        ({"model": "flux-pro-1.1", "aspect_ratio": "4:3", "seed": 7}, "2k"),
        ({"model": "flux-2-pro"}, "2k"),
        ({"model": "flux-3-image", "resolution": "1k"}, "2k"),
        ({"model": "flux-3-image", "resolution": "1.5k"}, "2k"),
        ({"model": "flux-3-image", "resolution": "2k"}, "4k"),
    ],
)
def test_more_detail_renders_on_flux3_at_the_next_tier_with_the_result_as_its_one_reference(options, tier):
    request = more_detail(stored(**options), RESULT)
    assert request.model.key == "flux-3-image" and request.resolution == tier == detail_tier(stored(**options))
    assert request.input_images == (RESULT,) and request.prompt == "a lighthouse at dusk"


def test_more_detail_keeps_the_aspect_ratio_or_takes_flux3s_nearest():
    assert more_detail(stored(model="flux-pro-1.1", aspect_ratio="16:9"), RESULT).aspect_ratio == "16:9"


def test_more_detail_keeps_the_style_the_prompt_was_templated_with():
    styled = dataclasses.replace(stored(model="flux-2-pro"), style="noir")
    assert more_detail(styled, RESULT).style == "noir"


def test_a_4k_result_has_no_more_detail_to_give():
    with pytest.raises(InvalidOptions, match="4k"):
        more_detail(stored(model="flux-3-image", resolution="4k"), RESULT)


# -- Sharpen: the result sent to BFL's deblur route ------------------------------------------------

DEBLUR_SPEC = json.loads((Path(__file__).parents[1] / "specs" / "bfl-flux-tools-deblur-v1.json").read_text())
# BFL's schema sets no additionalProperties:false (unknown fields are ignored there): closed here to catch typos.
DEBLUR_BODY = Draft202012Validator({**DEBLUR_SPEC["request"], "additionalProperties": False})


def png(width: int, height: int) -> InputImage:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, format="PNG")
    return InputImage(base64.b64encode(buffer.getvalue()).decode(), width, height)


def test_sharpen_sends_the_result_alone_to_deblur_with_the_seed_at_the_results_size():
    result = png(1024, 768)
    request = sharpen(stored(model="flux-pro-1.1", aspect_ratio="4:3", seed=7), result)
    assert request.model.key == SHARPEN_MODEL == "flux-tools/deblur-v1" and request.input_images == (result,)
    assert (request.width, request.height, request.seed, request.nonce) == (1024, 768, 7, None)
    assert request.prompt == "a lighthouse at dusk"  # kept for the card, Details and history; never sent
    assert request.bfl_payload() == {"image": result.data_b64, "seed": 7, "output_format": "jpeg"}
    assert list(DEBLUR_BODY.iter_errors(request.bfl_payload())) == []
    assert validate_body(SHARPEN_MODEL, request.bfl_payload()) == []  # the fake's copy of BFL's schema


def test_sharpen_sends_the_servers_safety_tolerance_within_deblurs_range():
    request = dataclasses.replace(sharpen(stored(model="flux-2-pro"), png(992, 992)), safety_tolerance=5)
    assert request.model.safety_range == (0, 5) and request.effective_safety_tolerance == 5
    body = request.bfl_payload()
    assert body["safety_tolerance"] == 5 and list(DEBLUR_BODY.iter_errors(body)) == []


def test_sharpen_of_a_result_without_a_seed_draws_one_and_sharpen_of_a_sharpen_result_works():
    first = sharpen(stored(model="flux-3-image", resolution="1k"), png(1024, 1024))
    assert first.model.has_seed and first.nonce is None
    again = sharpen(GenerationRequest.from_record(first.to_record()), png(1024, 1024))
    assert again.model.key == SHARPEN_MODEL and again.seed == first.seed


def test_sharpen_keeps_the_style_and_takes_one_image_whatever_the_source_had():
    edit = stored(model="flux-2-pro", input_images=[png(512, 512), png(640, 480)])
    request = sharpen(dataclasses.replace(edit, style="noir"), png(992, 992))
    assert request.style == "noir" and len(request.input_images) == 1


def test_sharpen_refuses_a_result_over_4_mp_before_anything_is_loaded():
    with pytest.raises(InvalidOptions, match="4 MP") as refused:
        sharpen(stored(model="flux-3-image", resolution="4k"), PLACEHOLDER)
    assert "16.8 MP" in refused.value.user_message


@pytest.mark.parametrize("ratio", ["1:1", "16:9", "9:21"])
def test_sharpen_fits_a_flux3_2k_result_its_4_2_mp_is_fitted_to_4_mp_on_loading(ratio):
    assert sharpen(stored(model="flux-3-image", resolution="2k", aspect_ratio=ratio), PLACEHOLDER)


@pytest.mark.parametrize(("size", "micros"), [((992, 992), 45_000), ((1024, 1024), 75_000), ((2048, 2048), 165_000)])
def test_sharpens_price_is_a_conservative_bound_flux2_pros_rates_on_output_and_input(size, micros):
    request = sharpen(stored(model="flux-2-pro"), png(*size))
    assert request.estimated_cost_micros == micros
    pixels = size[0] * size[1]
    for charged in (price_credits(SHARPEN_MODEL, *size, [pixels]), price_credits("flux-2-klein-9b", *size, [pixels])):
        assert charged * 10_000 <= micros  # credits → µ$: at or above [klein] 9B's rates, which deblur runs on
    assert request.model.price.strategy == "upper bound" and "no list price" in request.model.describe_price()
