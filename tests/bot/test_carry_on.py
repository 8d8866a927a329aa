"""The carry-on mappings (bot/models/carry_on.py), from a stored request: More detail's tier and request, Sharpen's."""

import asyncio
import base64
import dataclasses
import io
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from bot.errors import InvalidOptions
from bot.images.reference import fit_request
from bot.models import GenerationRequest, InputImage, build_request, more_detail, outpainting, sharpen
from bot.models.carry_on import CANVAS_MODEL, SHARPEN_MODEL, detail_tier
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


# -- Zoom out and the pans: the result placed on BFL's outpainting canvas ------------------------------

OUTPAINT_SPEC = json.loads((Path(__file__).parents[1] / "specs" / "bfl-flux-tools-outpainting-v1.json").read_text())
OUTPAINT_BODY = Draft202012Validator(OUTPAINT_SPEC["request"])  # BFL's own: additionalProperties false


def outpainted(key: str, result: InputImage, **stored_options) -> GenerationRequest:
    return outpainting(key)(stored(**stored_options), result)


@pytest.mark.parametrize(
    ("key", "canvas", "offset"),
    [
        ("zoom15", (1536, 1536), (256, 256)),
        ("zoom2", (2048, 2048), (512, 512)),
        ("pan_left", (1536, 1024), (512, 0)),
        ("pan_right", (1536, 1024), (0, 0)),
        ("pan_up", (1024, 1536), (0, 512)),
        ("pan_down", (1024, 1536), (0, 0)),
    ],
)
def test_each_button_places_a_1024_result_on_its_canvas_with_the_prompt_as_guidance(key, canvas, offset):
    result = png(1024, 1024)
    request = outpainted(key, result, model="flux-pro-1.1")
    assert request.model.key == CANVAS_MODEL and (request.width, request.height) == canvas  # the output: the canvas
    body = request.bfl_payload()
    assert body == {
        "input_image": result.data_b64,
        "width": canvas[0],
        "height": canvas[1],
        "reference_offset_x": offset[0],
        "reference_offset_y": offset[1],
        "prompt": "a lighthouse at dusk",
        "output_format": "jpeg",
    }
    assert list(OUTPAINT_BODY.iter_errors(body)) == [] and validate_body(CANVAS_MODEL, body) == []
    assert request.nonce is not None and not request.model.has_seed  # no seed in FluxOutpaintingInputs


def test_a_scaled_placement_is_sent_only_once_the_reference_is_fitted():
    result = png(2048, 1152)  # zoom 2×: 4096×2304 is over 4 MP, so the whole picture is scaled
    request = outpainted("zoom2", result, model="flux-2-pro")
    placement = request.placement
    assert placement.scaled and placement.canvas_width * placement.canvas_height <= 4_194_304
    with pytest.raises(ValueError, match="reference"):
        request.bfl_payload()  # the result at its own size would overhang: never sent
    fitted = asyncio.run(fit_request(request))
    body = fitted.bfl_payload()
    assert (fitted.input_images[0].width, fitted.input_images[0].height) == (
        placement.reference_width,
        placement.reference_height,
    )
    assert validate_body(CANVAS_MODEL, body) == [] and list(OUTPAINT_BODY.iter_errors(body)) == []


def test_the_placement_survives_the_record_and_a_reroll_keeps_it_while_other_buttons_drop_it():
    request = asyncio.run(fit_request(outpainted("pan_up", png(1344, 576), model="flux-2-pro", aspect_ratio="21:9")))
    again = GenerationRequest.from_record(json.loads(request.record_json()))
    assert again == request and again.bfl_payload() == request.bfl_payload()
    rerolled = again.retarget(again.model, seed=None)
    assert rerolled.placement == request.placement and rerolled.bfl_payload()["width"] == request.width
    assert sharpen(again, png(request.width, request.height)).placement is None
    assert more_detail(again, png(request.width, request.height)).placement is None
    record = stored(model="flux-pro-1.1").to_record()
    old = {k: v for k, v in record.items() if k != "placement"}  # a record from before the key
    assert GenerationRequest.from_record(old).placement is None


def test_zooming_out_twice_places_the_first_canvas():
    first = asyncio.run(fit_request(outpainted("zoom15", png(1024, 1024), model="flux-pro-1.1")))
    second = outpainting("zoom15")(first, png(first.width, first.height))
    p = second.placement
    assert (p.source_width, p.source_height) == (1536, 1536) and p.scaled  # 2304² would be 5.3 MP
    assert (p.canvas_width, p.canvas_height) == (2048, 2048) and (p.reference_width, p.reference_height) == (1365, 1365)
    assert (p.offset_x, p.offset_y) == (341, 341)


def test_a_styled_prompt_is_sent_as_stored_templated():
    request = outpainted("zoom2", png(1024, 1024), model="flux-pro-1.1")
    styled = dataclasses.replace(request, prompt="noir: a lighthouse at dusk, high contrast", style="noir")
    assert styled.bfl_payload()["prompt"] == "noir: a lighthouse at dusk, high contrast"


@pytest.mark.parametrize(("key", "micros"), [("zoom15", 330_000), ("zoom2", 530_000), ("pan_left", 230_000)])
def test_outpaintings_price_is_a_documented_bound_at_or_above_the_one_published_figure(key, micros):
    request = outpainted(key, png(1024, 1024), model="flux-pro-1.1")
    assert request.estimated_cost_micros == micros  # $0.10/started canvas MP + $0.015/started input MP
    charged = price_credits(CANVAS_MODEL, request.width, request.height, [1024 * 1024])
    assert charged * 10_000 <= micros  # the fake bills the third party's $0.10/MP of canvas
    assert request.model.price.strategy == "upper bound"
    assert request.model.describe_price() == "at most $0.10/MP of output (+$0.015/MP of input; no list price)"


def test_outpainting_sends_the_servers_safety_tolerance_within_its_range():
    request = dataclasses.replace(outpainted("pan_down", png(992, 992), model="flux-2-pro"), safety_tolerance=5)
    body = request.bfl_payload()
    assert request.model.safety_range == (0, 5) and body["safety_tolerance"] == 5
    assert list(OUTPAINT_BODY.iter_errors(body)) == []
