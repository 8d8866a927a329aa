"""The safety dial maps onto each family's safety_tolerance range, inside BFL's schema."""

import json
from pathlib import Path

import pytest

from bot.models import MODELS
from bot.safety.levels import RANGES, SafetyLevel, tolerance_for
from tests.fakes.fake_bfl import LORA_ROUTES, generation_routes

SPEC = json.loads((Path(__file__).parents[2] / "specs" / "bfl-openapi-2026.json").read_text())


def test_standard_is_bfls_default_and_strict_is_zero_everywhere():
    for family in RANGES:
        assert tolerance_for(family, SafetyLevel.STANDARD) == 2
        assert tolerance_for(family, SafetyLevel.STRICT) == 0


@pytest.mark.parametrize("family", list(RANGES))
def test_relaxed_is_looser_than_standard_and_inside_the_family_range(family):
    low, high = RANGES[family]
    relaxed = tolerance_for(family, SafetyLevel.RELAXED)
    assert 2 < relaxed <= high and relaxed >= low


def test_the_ranges_match_the_openapi_schema_of_every_model():
    paths = SPEC["paths"]
    checked = 0
    for key, spec in MODELS.items():
        if key in LORA_ROUTES:  # the klein LoRA routes are not in BFL's openapi.json: their own schema files
            field = generation_routes()[key].schema["properties"]["safety_tolerance"]
            assert (field["minimum"], field["maximum"]) == RANGES[spec.family] and field["default"] == 2, key
            checked += 1
            continue
        route = paths[f"/v1/{key}"]  # the 2026 spec has every other model, FLUX 3 Image included
        ref = route["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        schema = SPEC["components"]["schemas"][ref]
        variants = [SPEC["components"]["schemas"][v["$ref"].rsplit("/", 1)[1]] for v in schema.get("oneOf", [])]
        for body in variants or [schema]:  # FLUX 3 video: every `mode` body has the same range
            field = body["properties"]["safety_tolerance"]
            assert (field["minimum"], field["maximum"]) == RANGES[spec.family], key
            assert field["default"] == 2
        checked += 1
    assert checked == len(MODELS)


def test_an_unknown_family_gets_the_default():
    assert tolerance_for("flux9", SafetyLevel.RELAXED) == 2
