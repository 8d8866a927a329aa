"""The carry-on mappings (bot/models/carry_on.py): More detail's tier and request, from a stored request."""

import dataclasses

import pytest

from bot.errors import InvalidOptions
from bot.models import GenerationRequest, InputImage, build_request, more_detail
from bot.models.carry_on import detail_tier

RESULT = InputImage(data_b64="", width=1024, height=768)


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
