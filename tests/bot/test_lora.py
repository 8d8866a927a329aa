"""House LoRAs (issue 26 item 4): the klein ``-finetuned`` routes in the model table, the LoRA body, record, price."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from bot.bfl.errors import BflBadRequest, BflFinetuneUnknown, BflValidationError
from bot.bfl.wire import refusal
from bot.engine.outcomes import ending_text, error_code
from bot.errors import InvalidOptions
from bot.models import MODELS, GenerationRequest, build_request, is_offered, offered_models, rerolled
from bot.models.lora import DEFAULT_LORA_ROUTE, LORA_ROUTES, Lora, check_finetune_id, check_strength
from bot.prefs import _check_model

SPECS = Path(__file__).parents[1] / "specs"


def closed_schema(route: str) -> dict:
    """The route's vendored request schema, closed so a misspelt field fails (BFL's leaves it open)."""
    request = json.loads((SPECS / f"bfl-{route}.json").read_text())["request"]
    return {**request, "additionalProperties": False}


def lora_request(route: str = DEFAULT_LORA_ROUTE, **changes) -> GenerationRequest:
    options = {"model": route, "prompt": "a mascot", "aspect_ratio": None, "seed": 7, **changes}
    return build_request(lora=Lora("acme-org/mascot_v2", 0.85), **options)


@pytest.mark.parametrize("route", list(LORA_ROUTES))
def test_a_lora_body_is_its_bases_body_plus_the_lora_and_validates_against_the_vendored_schema(route):
    request = lora_request(route)
    body = request.bfl_payload()
    jsonschema.Draft202012Validator(closed_schema(route)).validate({**body, "user": "u" * 16})
    base = build_request(model=LORA_ROUTES[route], prompt="a mascot", aspect_ratio=None, seed=7).bfl_payload()
    assert body == {**base, "finetune_id": "acme-org/mascot_v2", "finetune_strength": 0.85}
    assert (body["width"], body["height"]) == (992, 992)  # the base's 1:1, at (not over) 1 MP


def test_the_lora_routes_are_table_entries_no_member_picks():
    for route, base in LORA_ROUTES.items():
        spec = MODELS[route]
        assert spec.body == "lora" and spec.lora_base == base and spec.safety_range == (0, 5)
        assert spec.max_input_images == 4 and not spec.offered and not is_offered(route)
        assert spec not in offered_models()
        with pytest.raises(InvalidOptions, match="only reached through a LoRA style"):
            _check_model(route)  # not a /prefs default
        with pytest.raises(InvalidOptions, match="runs only through a LoRA style"):
            build_request(model=route, prompt="x", aspect_ratio=None, seed=1)  # never without its LoRA


def test_the_price_is_the_documented_upper_bound_and_what_is_shown():
    spec = MODELS[DEFAULT_LORA_ROUTE]
    assert spec.price.strategy == "upper bound"
    assert lora_request().estimated_cost_micros == 30_000  # 992×992 = 0.98 MP: the first megapixel
    assert lora_request(aspect_ratio="16:9").estimated_cost_micros == 30_000
    assert spec.estimate_cost_micros(1024, 1024) == 45_000  # 1.05 MP rounds up to 2
    assert spec.describe_price() == "at most $0.03 (+$0.015/extra MP of output and input; no list price)"


def test_the_record_keeps_the_lora_so_reroll_and_a_restart_send_the_same_body():
    request = lora_request()
    back = GenerationRequest.from_record(json.loads(request.record_json()))
    assert back == request and back.lora == Lora("acme-org/mascot_v2", 0.85)
    again = rerolled(back)
    assert again.lora == request.lora and again.model is request.model and again.seed != request.seed
    assert {k: v for k, v in again.bfl_payload().items() if k != "seed"} == {
        k: v for k, v in request.bfl_payload().items() if k != "seed"
    }
    other = build_request(model=DEFAULT_LORA_ROUTE, prompt="a mascot", aspect_ratio=None, seed=7, lora=Lora("b"))
    assert other.cache_key() != request.cache_key()  # another LoRA is another image


def test_a_record_from_before_loras_has_none():
    record = build_request(model="flux-2-klein-9b", prompt="x", aspect_ratio=None, seed=1).to_record()
    del record["lora"]
    assert GenerationRequest.from_record(record).lora is None


@pytest.mark.parametrize("good", ["fluxcord-house", "acme-org/mascot_v2", "a", "x" * 128])
def test_a_finetune_id_is_a_dashboard_name_or_an_org_shared_one(good):
    assert check_finetune_id(f" {good} ") == good


@pytest.mark.parametrize("bad", ["", "Mascot", "has space", "a/b/c", "x" * 129, "emoji-🐦"])
def test_anything_else_is_refused(bad):
    with pytest.raises(InvalidOptions, match="not a BFL finetune id"):
        check_finetune_id(bad)


@pytest.mark.parametrize(("value", "kept"), [(None, 1.0), (0, 0.0), (2, 2.0), (0.85, 0.85)])
def test_a_strength_is_zero_to_two_default_one(value, kept):
    assert check_strength(value) == kept


@pytest.mark.parametrize("value", [3, -0.1, 2.01, float("nan"), float("inf"), True])
def test_a_strength_outside_zero_to_two_is_refused(value):
    with pytest.raises(InvalidOptions, match="between 0 and 2"):
        check_strength(value)


def test_bfls_answer_to_an_unknown_finetune_is_read_as_such_and_told_with_the_style():
    unknown = refusal(404, json.dumps({"detail": "Finetune not found or not ready"}), "submit")
    assert isinstance(unknown, BflFinetuneUnknown) and isinstance(unknown, BflBadRequest)
    assert isinstance(refusal(422, json.dumps({"detail": "LoRA unknown"}), "submit"), BflFinetuneUnknown)
    assert not isinstance(refusal(404, json.dumps({"detail": "Not Found"}), "submit"), BflFinetuneUnknown)
    assert isinstance(refusal(422, json.dumps({"detail": [{"msg": "x", "loc": ["body"]}]}), "s"), BflValidationError)
    text = ending_text(unknown, code=error_code(unknown), charged=False, style="Mascot")
    assert "the style “Mascot”" in text and "Refunded: you have not been charged." in text
    retold = ending_text(None, code=error_code(unknown), charged=False, style="Mascot")  # after a restart: the row
    assert retold == text
