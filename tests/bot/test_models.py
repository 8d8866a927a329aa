"""The model table against BFL's OpenAPI spec: payloads, sizes, options, prices, validation."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from bot.errors import InvalidOptions
from bot.models import (
    ASPECT_RATIOS,
    DEFAULT_MODEL,
    FLUX3_ASPECT_RATIOS,
    FLUX3_RESOLUTIONS,
    MAX_SEED,
    MODELS,
    OPTION_NAMES,
    InputImage,
    MegapixelPrice,
    ModelSpec,
    build_request,
    dimensions_for,
    models_supporting,
    models_taking_images,
    offered_models,
)
from bot.models.canvas import placement_for
from bot.models.lora import Lora
from tests.fakes.fake_bfl import FLUX3_TIER_PRICES, load_spec, price_credits, validate_body

SPEC = load_spec()
COMPONENTS = SPEC["components"]

# The models in BFL's 2026-04 OpenAPI snapshot; FLUX 3 Image has its own schema, the button-only FLUX Tools
# routes (Sharpen's deblur) their own shape of body (tests at the end).
ALL_MODELS = [m for m in offered_models() if m.family != "flux3"]
ids = [m.key for m in ALL_MODELS]


def request_schema(key: str) -> dict:
    """The resolved request-body schema of `POST /v1/<key>`."""
    ref = SPEC["paths"][f"/v1/{key}"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return COMPONENTS["schemas"][ref.rsplit("/", 1)[-1]]


def validator(key: str) -> Draft202012Validator:
    ref = SPEC["paths"][f"/v1/{key}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return Draft202012Validator({**ref, "components": COMPONENTS})


def numeric_bounds(prop: dict) -> dict:
    """Minimum/maximum/multipleOf of a property, looking inside anyOf branches."""
    for branch in [prop, *prop.get("anyOf", [])]:
        if branch.get("type") in ("integer", "number"):
            return {k: branch[k] for k in ("minimum", "maximum", "multipleOf") if k in branch}
    return {}


def full_options(spec: ModelSpec) -> dict:
    """Every option the model supports, set to an extreme of its range."""
    opts: dict = {}
    if spec.steps_range:
        opts["steps"] = spec.steps_range[1]
    if spec.guidance_range:
        opts["guidance"] = spec.guidance_range[1]
    if spec.supports("raw"):
        opts["raw"] = True
    if spec.supports("prompt_upsampling"):
        opts["prompt_upsampling"] = True
    if spec.duration_range:
        opts["duration"] = spec.duration_range[1]
    return opts


# -- the table against the spec ---------------------------------------------------------------


def test_default_model_is_flux_pro_11():
    """The default model exists and is FLUX1.1 [pro]."""
    assert DEFAULT_MODEL == "flux-pro-1.1"
    assert MODELS[DEFAULT_MODEL].label == "FLUX1.1 [pro]"


def test_required_models_present():
    """The models the bot promises are all in the table."""
    for key in (
        "flux-pro-1.1",
        "flux-pro-1.1-ultra",
        "flux-dev",
        "flux-2-pro",
        "flux-2-klein-4b",
        "flux-kontext-pro",
        "flux-kontext-max",
        "flux-2-flex",
        "flux-2-max",
    ):
        assert key in MODELS


@pytest.mark.parametrize("spec", ALL_MODELS, ids=ids)
def test_model_is_an_endpoint_in_the_spec(spec):
    """Every model key is a POST route in BFL's OpenAPI spec."""
    assert "post" in SPEC["paths"][f"/v1/{spec.key}"]


@pytest.mark.parametrize("spec", ALL_MODELS, ids=ids)
def test_options_match_schema_properties(spec):
    """A model claims an option exactly when its request schema defines it."""
    props = request_schema(spec.key)["properties"]
    for option in OPTION_NAMES:
        assert spec.supports(option) == (option in props), option
    if spec.size_mode == "dimensions":
        assert {"width", "height"} <= props.keys() and "aspect_ratio" not in props
    else:
        assert "aspect_ratio" in props and "width" not in props


@pytest.mark.parametrize("spec", ALL_MODELS, ids=ids)
def test_ranges_match_schema(spec):
    """steps/guidance/width/height limits agree with the schema's minimum/maximum/multipleOf."""
    props = request_schema(spec.key)["properties"]
    if spec.steps_range:
        b = numeric_bounds(props["steps"])
        assert (b["minimum"], b["maximum"]) == spec.steps_range
    if spec.guidance_range:
        b = numeric_bounds(props["guidance"])
        assert (b["minimum"], b["maximum"]) == spec.guidance_range
    if spec.size_mode == "dimensions":
        b = numeric_bounds(props["width"])
        assert spec.min_side >= b["minimum"]
        if "maximum" in b:
            assert spec.max_side <= b["maximum"]
        if "multipleOf" in b:
            assert spec.multiple % b["multipleOf"] == 0


@pytest.mark.parametrize("spec", ALL_MODELS, ids=ids)
@pytest.mark.parametrize("aspect_ratio", ASPECT_RATIOS)
def test_payload_validates_against_schema(spec, aspect_ratio):
    """For every model and ratio, the payload (bare and with every option) is schema-valid and minimal."""
    props = set(request_schema(spec.key)["properties"])
    for options in ({}, full_options(spec)):
        req = build_request(model=spec.key, prompt="a red fox", aspect_ratio=aspect_ratio, seed=42, **options)
        payload = req.bfl_payload()
        errors = [e.message for e in validator(spec.key).iter_errors(payload)]
        assert errors == []
        assert set(payload) <= props, set(payload) - props
        assert payload["output_format"] == "jpeg"
        assert "safety_tolerance" not in payload
        assert payload["seed"] == 42 and payload["prompt"] == "a red fox"
        for name, value in options.items():
            assert payload[name] == value


def test_payload_minimum_values_validate():
    """The low ends of the option ranges validate too."""
    for spec in models_supporting("steps"):
        low_steps = spec.steps_range[0]
        low_guidance = spec.guidance_range[0]
        req = build_request(
            model=spec.key,
            prompt="x",
            aspect_ratio=None,
            seed=0,
            steps=low_steps,
            guidance=low_guidance,
            prompt_upsampling=False,
        )
        assert list(validator(spec.key).iter_errors(req.bfl_payload())) == []


def test_flux_pro_11_payload_exact():
    """flux-pro-1.1 gets width/height and nothing it does not define."""
    req = build_request(model="flux-pro-1.1", prompt="  a cat  ", aspect_ratio="1:1", seed=7)
    assert req.bfl_payload() == {
        "prompt": "a cat",
        "width": 1024,
        "height": 1024,
        "seed": 7,
        "output_format": "jpeg",
    }


def test_ultra_payload_uses_aspect_ratio():
    """Ultra sends the aspect ratio string, and raw when asked."""
    req = build_request(model="flux-pro-1.1-ultra", prompt="p", aspect_ratio="21:9", seed=1, raw=True)
    assert req.bfl_payload() == {
        "prompt": "p",
        "aspect_ratio": "21:9",
        "seed": 1,
        "raw": True,
        "output_format": "jpeg",
    }
    assert (req.width, req.height) == (3136, 1344)  # nominal ~4 MP display size


def test_kontext_max_has_tighter_concurrency():
    """flux-kontext-max allows 6 active tasks, everything else 24."""
    for spec in ALL_MODELS:
        assert spec.max_active_tasks == (6 if spec.key == "flux-kontext-max" else 24)


# -- sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_MODELS, ids=ids)
@pytest.mark.parametrize("aspect_ratio", ASPECT_RATIOS)
def test_dimensions_obey_rules(spec, aspect_ratio):
    """Sizes are multiples, within side limits and the MP cap, close to the ratio and target area."""
    w, h = dimensions_for(spec, aspect_ratio)
    assert w % spec.multiple == 0 and h % spec.multiple == 0
    assert spec.min_side <= w <= spec.max_side and spec.min_side <= h <= spec.max_side
    assert w * h <= spec.max_pixels
    rw, rh = map(int, aspect_ratio.split(":"))
    assert abs(math.log((w / h) / (rw / rh))) < 0.02
    assert 0.75 < (w * h) / spec.target_pixels <= 1.1
    if isinstance(spec.price, MegapixelPrice):
        assert w * h <= 1_000_000  # stays in the first-megapixel price step


def test_known_sizes():
    """Spot checks of the sizes members will see."""
    pro = MODELS["flux-pro-1.1"]
    assert dimensions_for(pro, "1:1") == (1024, 1024)
    assert dimensions_for(pro, "16:9") == (1376, 768)
    assert dimensions_for(pro, "9:16") == (768, 1376)
    assert dimensions_for(pro, "4:3") == (1152, 864)
    assert dimensions_for(pro, "21:9") == (1408, 608)  # ~1 MP at 21:9 would be ~1560 wide: the 1440 side cap wins
    assert dimensions_for(MODELS["flux-2-pro"], "1:1") == (992, 992)
    assert dimensions_for(MODELS["flux-pro-1.1-ultra"], "1:1") == (2048, 2048)


def test_portrait_mirrors_landscape():
    """9:16 is 16:9 turned on its side, for every model."""
    for spec in ALL_MODELS:
        for a, b in (("16:9", "9:16"), ("4:3", "3:4"), ("3:2", "2:3"), ("21:9", "9:21")):
            assert dimensions_for(spec, a) == dimensions_for(spec, b)[::-1]


def test_dimensions_rejects_unknown_ratio():
    """The size helper refuses ratios outside the offered list."""
    with pytest.raises(ValueError, match="aspect"):
        dimensions_for(MODELS["flux-dev"], "5:1")


# -- validation messages ----------------------------------------------------------------------


def test_unsupported_option_names_model_and_alternatives():
    """Steps on flux-pro-1.1 is refused naming the model and the models that take steps."""
    with pytest.raises(InvalidOptions) as info:
        build_request(model="flux-pro-1.1", prompt="x", aspect_ratio=None, seed=1, steps=20)
    assert info.value.user_message == (
        "FLUX1.1 [pro] doesn't support `steps`. Models that do: FLUX.1 [dev], FLUX.2 [flex]."
    )


@pytest.mark.parametrize("spec", ALL_MODELS, ids=ids)
@pytest.mark.parametrize("option", OPTION_NAMES)
def test_every_unsupported_option_refused(spec, option):
    """Any option a model lacks is refused with a message naming the model and option; False counts too."""
    if spec.supports(option):
        return
    value = {
        "steps": 10,
        "guidance": 2.0,
        "raw": False,
        "prompt_upsampling": False,
        "resolution": "1k",
        "grounding": False,
        "duration": 5,
    }[option]
    with pytest.raises(InvalidOptions) as info:
        build_request(model=spec.key, prompt="x", aspect_ratio=None, seed=1, **{option: value})
    message = info.value.user_message
    assert spec.label in message and f"`{option}`" in message
    for other in models_supporting(option):
        assert other.label in message


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"model": "flux-dev", "steps": 0}, "`steps` must be between 1 and 50 for FLUX.1 [dev]."),
        ({"model": "flux-dev", "steps": 51}, "`steps` must be between 1 and 50 for FLUX.1 [dev]."),
        ({"model": "flux-dev", "guidance": 5.5}, "`guidance` must be between 1.5 and 5 for FLUX.1 [dev]."),
        ({"model": "flux-dev", "guidance": 1.0}, "`guidance` must be between 1.5 and 5"),
        ({"model": "flux-dev", "guidance": float("nan")}, "`guidance` must be between"),
        ({"model": "flux-2-flex", "guidance": 10.5}, "between 1.5 and 10 for FLUX.2 [flex]"),
        ({"model": "flux-dev", "steps": True}, "`steps` must be between"),
        ({"model": "x"}, "Unknown model `x`."),
        ({"aspect_ratio": "5:4"}, "Unknown aspect ratio `5:4`"),
        ({"prompt": "   \n "}, "prompt is empty"),
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "a" * 1001}, "too long"),
        ({"seed": -1}, "`seed` must be"),
        ({"seed": 2**32}, "`seed` must be"),
    ],
)
def test_invalid_options_messages(kwargs, fragment):
    """Bad values raise InvalidOptions with a message a member understands."""
    args = {"model": None, "prompt": "a fox", "aspect_ratio": None, "seed": 1, **kwargs}
    with pytest.raises(InvalidOptions) as info:
        build_request(**args)
    assert fragment in info.value.user_message


def test_unknown_model_lists_choices_and_sanitises_echo():
    """The unknown-model message lists real models and cannot break out of its backticks."""
    with pytest.raises(InvalidOptions) as info:
        build_request(model="`@everyone`", prompt="x", aspect_ratio=None, seed=1)
    message = info.value.user_message
    assert "`flux-pro-1.1`" in message
    assert "`@everyone`" not in message


def test_boundary_values_accepted():
    """Range ends, max seed, and a prompt exactly at the limit are accepted."""
    req = build_request(model="flux-dev", prompt="a" * 1000, aspect_ratio="16:9", seed=MAX_SEED, steps=50, guidance=1.5)
    assert req.seed == MAX_SEED and req.steps == 50 and req.guidance == 1.5
    assert build_request(model=None, prompt="b" * 20, aspect_ratio=None, seed=0, max_prompt_length=20).seed == 0


def test_defaults_when_omitted():
    """No model → flux-pro-1.1, no ratio → 1:1, options unset are not sent."""
    req = build_request(model=None, prompt="x", aspect_ratio=None, seed=3)
    assert req.model.key == DEFAULT_MODEL and req.aspect_ratio == "1:1"
    assert req.steps is None and req.guidance is None and req.raw is None and req.prompt_upsampling is None


def test_prompt_is_stripped_only():
    """The prompt is stripped at the ends and otherwise untouched."""
    req = build_request(model=None, prompt="  two  spaces\nand a line  ", aspect_ratio=None, seed=1)
    assert req.prompt == "two  spaces\nand a line"


def test_integer_guidance_becomes_float():
    """guidance=3 and guidance=3.0 are the same request."""
    a = build_request(model="flux-dev", prompt="x", aspect_ratio=None, seed=1, guidance=3)
    b = build_request(model="flux-dev", prompt="x", aspect_ratio=None, seed=1, guidance=3.0)
    assert a.guidance == 3.0 and isinstance(a.guidance, float)
    assert a.cache_key() == b.cache_key()


# -- seeds -------------------------------------------------------------------------------------


def test_seed_picked_from_rng_when_missing():
    """Without a seed one is drawn from the given rng, in 0..2**32-1."""
    seeds = {
        build_request(model=None, prompt="x", aspect_ratio=None, seed=None, rng=random.Random(i)).seed
        for i in range(50)
    }
    assert all(0 <= s <= MAX_SEED for s in seeds)
    assert len(seeds) > 40
    again = build_request(model=None, prompt="x", aspect_ratio=None, seed=None, rng=random.Random(5)).seed
    assert again == build_request(model=None, prompt="x", aspect_ratio=None, seed=None, rng=random.Random(5)).seed


def test_seed_default_rng_is_system_random():
    """With no rng, seeds still land in range (SystemRandom)."""
    for _ in range(20):
        assert 0 <= build_request(model=None, prompt="x", aspect_ratio=None, seed=None).seed <= MAX_SEED


# -- cache keys --------------------------------------------------------------------------------


def _req(**overrides):
    args = {
        "model": "flux-dev",
        "prompt": "a fox",
        "aspect_ratio": "1:1",
        "seed": 1,
        "steps": 20,
        "guidance": 3.0,
        **overrides,
    }
    return build_request(**args)


def test_cache_key_stable_and_hex():
    """Equal requests give equal sha256 hex keys."""
    key = _req().cache_key()
    assert key == _req().cache_key() == _req(prompt="  a fox ").cache_key()
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"model": "flux-pro-1.1", "steps": None, "guidance": None},
        {"prompt": "a fox!"},
        {"aspect_ratio": "16:9"},
        {"seed": 2},
        {"steps": 21},
        {"guidance": 3.5},
        {"prompt_upsampling": True},
        {"prompt_upsampling": False},
    ],
)
def test_cache_key_changes_with_any_option(change):
    """Any difference in model, prompt, size, options or seed changes the key."""
    assert _req(**change).cache_key() != _req().cache_key()


def test_cache_key_differs_between_aspect_ratio_models():
    """Kontext pro and max with the same inputs do not share a key."""
    a = build_request(model="flux-kontext-pro", prompt="x", aspect_ratio="1:1", seed=1)
    b = build_request(model="flux-kontext-max", prompt="x", aspect_ratio="1:1", seed=1)
    assert a.cache_key() != b.cache_key()


# -- prices ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("flux-pro-1.1", 40_000),
        ("flux-pro-1.1-ultra", 60_000),
        ("flux-dev", 25_000),
        ("flux-kontext-pro", 40_000),
        ("flux-kontext-max", 80_000),
        ("flux-2-pro", 30_000),
        ("flux-2-max", 70_000),
        ("flux-2-flex", 60_000),
        ("flux-2-klein-4b", 14_000),
    ],
)
def test_default_request_cost(key, expected):
    """The default (1:1) request of each model costs the table price, as an int."""
    req = build_request(model=key, prompt="x", aspect_ratio=None, seed=1)
    assert req.estimated_cost_micros == expected
    assert isinstance(req.estimated_cost_micros, int)
    for ratio in ASPECT_RATIOS:  # default sizes never leave the first price step
        assert build_request(model=key, prompt="x", aspect_ratio=ratio, seed=1).estimated_cost_micros == expected


def test_megapixel_pricing_rounds_up():
    """FLUX.2 prices: first MP flat, each started extra MP added (an upper bound)."""
    pro = MODELS["flux-2-pro"]
    assert pro.estimate_cost_micros(1000, 1000) == 30_000
    assert pro.estimate_cost_micros(64, 64) == 30_000
    assert pro.estimate_cost_micros(1024, 1024) == 45_000  # 1.05 MP → 2 MP
    assert pro.estimate_cost_micros(1408, 1408) == 45_000  # 1.98 MP, as observed: 4.5 credits
    assert pro.estimate_cost_micros(2000, 1000) == 45_000
    assert pro.estimate_cost_micros(2048, 2048) == 30_000 + 4 * 15_000
    klein = MODELS["flux-2-klein-4b"]
    assert klein.estimate_cost_micros(2000, 1000) == 15_000  # BFL's own example: 2 MP = $0.015
    assert MODELS["flux-pro-1.1"].estimate_cost_micros(1440, 1440) == 40_000  # flat


def test_describe_price():
    """Prices read well for members."""
    assert MODELS["flux-pro-1.1"].describe_price() == "$0.04/image"
    assert MODELS["flux-dev"].describe_price() == "$0.025/image"
    assert MODELS["flux-2-pro"].describe_price() == "from $0.03 (+$0.015/extra MP)"
    assert MODELS["flux-2-klein-4b"].describe_price() == "from $0.014 (+$0.001/extra MP)"


def test_megapixels_property():
    """megapixels is decimal MP of the chosen size."""
    req = build_request(model="flux-pro-1.1", prompt="x", aspect_ratio="1:1", seed=1)
    assert req.megapixels == pytest.approx(1.048576)


def test_spec_rejects_inconsistent_definition():
    """A spec claiming steps without a range is a programming error."""
    with pytest.raises(ValueError, match="steps_range"):
        ModelSpec(
            key="k",
            label="K",
            family="flux1",
            size_mode="dimensions",
            multiple=32,
            min_side=256,
            max_side=1440,
            max_megapixels=2.0,
            target_megapixels=1.0,
            options=frozenset({"steps"}),
            price=MODELS["flux-dev"].price,
        )


# -- FLUX 3 Image, klein 9B, edits and pricing strategies ---------------------------------------

FLUX3_SCHEMA = json.loads((Path(__file__).parents[1] / "specs" / "bfl-flux3-image.json").read_text())["request"]
FLUX3 = Draft202012Validator(FLUX3_SCHEMA)


def _image(width: int = 1024, height: int = 1024) -> InputImage:
    return InputImage(data_b64="aGVsbG8=", width=width, height=height)


def test_flux3_aspect_ratios_and_tiers_match_its_schema():
    """FLUX 3's ratios and resolution tiers are exactly its schema's enums; its safety range is 0–4."""
    props = FLUX3_SCHEMA["properties"]
    assert list(MODELS["flux-3-image"].aspect_ratios) == props["aspect_ratio"]["anyOf"][0]["enum"]
    assert list(FLUX3_RESOLUTIONS) == props["resolution"]["anyOf"][0]["enum"]
    low, high = (props["safety_tolerance"]["anyOf"][0][k] for k in ("minimum", "maximum"))
    assert MODELS["flux-3-image"].safety_range == (low, high) == (0, 4)
    assert MODELS["flux-2-pro"].safety_range == (0, 5) and MODELS["flux-pro-1.1"].safety_range == (0, 6)


@pytest.mark.parametrize("aspect_ratio", FLUX3_ASPECT_RATIOS)
@pytest.mark.parametrize("resolution", [None, *FLUX3_RESOLUTIONS])
def test_flux3_payload_validates_against_its_schema(aspect_ratio, resolution):
    """Every FLUX 3 payload (ratio x tier, with and without references) validates; no seed, no output_format."""
    for images in ((), (_image(),), tuple(_image() for _ in range(10))):
        req = build_request(
            model="flux-3-image",
            prompt="a red fox",
            aspect_ratio=aspect_ratio,
            seed=None,
            resolution=resolution,
            input_images=images,
        )
        payload = req.bfl_payload()
        assert [e.message for e in FLUX3.iter_errors(payload)] == []
        assert "seed" not in payload and "output_format" not in payload
        assert payload["grounding"] is False  # off unless a moderator allows it
        assert ("images" in payload) == bool(images)
        assert payload["aspect_ratio"] == aspect_ratio


def test_flux3_has_no_seed_and_is_never_cached():
    """Two identical FLUX 3 requests are two different images: different cache keys, no seed accepted."""
    a = build_request(model="flux-3-image", prompt="x", aspect_ratio="1:1", seed=None)
    b = build_request(model="flux-3-image", prompt="x", aspect_ratio="1:1", seed=None)
    assert not a.cacheable and a.cache_key() != b.cache_key()
    assert build_request(model="flux-2-pro", prompt="x", aspect_ratio="1:1", seed=3).cacheable
    with pytest.raises(InvalidOptions, match="has no seed"):
        build_request(model="flux-3-image", prompt="x", aspect_ratio=None, seed=5)


def test_grounding_only_when_allowed_and_resolution_only_for_flux3():
    """Grounding needs the server's permission; resolution is FLUX 3's alone; bad tiers are refused."""
    with pytest.raises(InvalidOptions, match="moderator has not allowed"):
        build_request(model="flux-3-image", prompt="x", aspect_ratio=None, seed=None, grounding=True)
    req = build_request(
        model="flux-3-image", prompt="x", aspect_ratio=None, seed=None, grounding=True, allow_grounding=True
    )
    assert req.bfl_payload()["grounding"] is True
    with pytest.raises(InvalidOptions, match="resolution"):
        build_request(model="flux-2-pro", prompt="x", aspect_ratio=None, seed=1, resolution="2k")
    with pytest.raises(InvalidOptions, match="Unknown resolution"):
        build_request(model="flux-3-image", prompt="x", aspect_ratio=None, seed=None, resolution="8k")
    with pytest.raises(InvalidOptions, match="Unknown aspect ratio"):
        build_request(model="flux-2-pro", prompt="x", aspect_ratio="5:4", seed=1)  # FLUX 3's ratio only


def test_pricing_strategies():
    """Flat per image; FLUX.2 per megapixel of output AND input; FLUX 3 per resolution tier."""
    assert {m.price.strategy for m in MODELS.values() if m.family == "flux1"} == {"flat"}
    assert {m.price.strategy for m in offered_models() if m.family == "flux2"} == {"megapixel"}
    assert MODELS["flux-tools/deblur-v1"].price.strategy == "upper bound"  # BFL lists no price for it
    assert MODELS["flux-3-image"].price.strategy == "resolution"
    # FLUX.1 Kontext: an edit costs the flat price.
    assert (
        build_request(
            model="flux-kontext-pro", prompt="x", aspect_ratio=None, seed=1, input_images=(_image(2048, 2048),)
        ).estimated_cost_micros
        == 40_000
    )
    # FLUX.2 [pro]: 1 MP out + a 1 MP input = $0.045 (bfl-api.md §00.8); a 4.2 MP input adds 5 MP.
    one_in = build_request(
        model="flux-2-pro", prompt="x", aspect_ratio="1:1", seed=1, input_images=(_image(1000, 1000),)
    )
    assert one_in.estimated_cost_micros == 45_000
    big_in = build_request(
        model="flux-2-pro", prompt="x", aspect_ratio="1:1", seed=1, input_images=(_image(2048, 2048),)
    )
    assert big_in.estimated_cost_micros == 30_000 + 5 * 15_000
    # klein 9B: 1 MP in, 1 MP out = $0.017.
    klein = build_request(
        model="flux-2-klein-9b", prompt="x", aspect_ratio="1:1", seed=1, input_images=(_image(1000, 1000),)
    )
    assert klein.estimated_cost_micros == 17_000
    # FLUX 3: by tier, whatever the ratio or the references.
    tiers = {
        r: build_request(model="flux-3-image", prompt="x", aspect_ratio="16:9", seed=None, resolution=r)
        for r in FLUX3_RESOLUTIONS
    }
    assert {r: q.estimated_cost_micros for r, q in tiers.items()} == {
        "768sq": 48_000,
        "1k": 48_000,
        "1.5k": 100_000,
        "2k": 100_000,
        "4k": 607_000,
    }
    assert build_request(model="flux-3-image", prompt="x", aspect_ratio=None, seed=None).estimated_cost_micros == 48_000


def test_estimates_are_upper_bounds_of_the_fake_bfl_prices():
    """The fake charges what BFL documents; every estimate (edits included) is at least that."""
    for key in ("flux-2-pro", "flux-2-max", "flux-2-flex", "flux-2-klein-4b", "flux-2-klein-9b"):
        for inputs in ((), (_image(1000, 1000),), (_image(2048, 2048), _image(512, 768))):
            req = build_request(model=key, prompt="x", aspect_ratio="4:3", seed=1, input_images=inputs)
            charged = price_credits(key, req.width, req.height, [i.pixels for i in inputs]) * 10_000
            assert req.estimated_cost_micros >= charged, (key, inputs)
    for tier in FLUX3_RESOLUTIONS:
        req = build_request(model="flux-3-image", prompt="x", aspect_ratio="1:1", seed=None, resolution=tier)
        assert req.estimated_cost_micros >= FLUX3_TIER_PRICES[tier] * 10_000


def test_edit_inputs_become_the_model_fields():
    """FLUX.2 and Kontext get input_image, input_image_2, …; the limits per model hold; no ratio → nearest."""
    images = tuple(_image(1600, 900) for _ in range(4))
    for key in ("flux-2-pro", "flux-2-klein-9b", "flux-kontext-pro"):
        req = build_request(model=key, prompt="x", aspect_ratio=None, seed=1, input_images=images)
        payload = req.bfl_payload()
        assert [payload[f] for f in ("input_image", "input_image_2", "input_image_3", "input_image_4")] == [
            "aGVsbG8="
        ] * 4
        assert list(validator(key).iter_errors(payload)) == []
        assert req.aspect_ratio == "16:9"  # the nearest fixed ratio to 1600×900
    with pytest.raises(InvalidOptions, match="at most 4 input images"):
        build_request(model="flux-2-klein-4b", prompt="x", aspect_ratio=None, seed=1, input_images=images * 2)
    with pytest.raises(InvalidOptions, match="doesn't take input images"):
        build_request(model="flux-pro-1.1", prompt="x", aspect_ratio=None, seed=1, input_images=images[:1])
    assert [m.key for m in models_taking_images()] == [
        "flux-kontext-pro",
        "flux-kontext-max",
        "flux-2-pro",
        "flux-2-max",
        "flux-2-flex",
        "flux-2-klein-4b",
        "flux-2-klein-9b",
        "flux-3-image",
    ]


def test_fake_bfl_validates_flux3_bodies():
    """The fake's FLUX 3 route refuses what BFL refuses: a seed, output_format, a 12th reference."""
    assert validate_body("flux-3-image", {"prompt": "x"}) == []
    assert validate_body("flux-3-image", {"prompt": "x", "seed": 1})[0]["type"] == "extra_forbidden"
    assert validate_body("flux-3-image", {"prompt": "x", "output_format": "jpeg"})
    assert validate_body("flux-3-image", {"prompt": "x", "images": ["a"] * 11})
    assert validate_body("flux-3-image", {"prompt": "x", "safety_tolerance": 5})


# -- issue 21: effective safety and `user` -----------------------------------------------------------


@pytest.mark.parametrize("dial", range(5))
def test_flux3_with_input_images_is_sent_at_most_tolerance_2(dial):
    """BFL caps FLUX 3's safety_tolerance at 2 when images are attached: what is sent (and stored) says so."""
    import dataclasses

    edit = dataclasses.replace(
        build_request(model="flux-3-image", prompt="x", aspect_ratio=None, seed=None, input_images=(_image(),)),
        safety_tolerance=dial,
    )
    assert edit.effective_safety_tolerance == edit.bfl_payload()["safety_tolerance"] == min(dial, 2)
    text_only = dataclasses.replace(
        build_request(model="flux-3-image", prompt="x", aspect_ratio=None, seed=None), safety_tolerance=dial
    )
    assert text_only.bfl_payload()["safety_tolerance"] == dial
    flux2 = dataclasses.replace(
        build_request(model="flux-2-pro", prompt="x", aspect_ratio=None, seed=1, input_images=(_image(),)),
        safety_tolerance=dial,
    )
    assert flux2.bfl_payload()["safety_tolerance"] == dial


def test_only_flux3_caps_the_tolerance_with_images():
    assert {key: spec.image_safety_max for key, spec in MODELS.items() if spec.image_safety_max is not None} == {
        "flux-3-image": 2,
        "flux-3-video": 2,  # "requests with images/video are capped at safety_tolerance 2"
    }


def test_no_payload_carries_user():
    """The end-user id is added by the BFL client at send time, never stored with a job's parameters."""
    for spec in MODELS.values():
        seed = 1 if spec.has_seed else None
        images = [_image()] if spec.size_mode in ("input", "canvas", "video") else []  # one image each
        placement = placement_for("zoom15", images[0].width, images[0].height) if spec.size_mode == "canvas" else None
        lora = Lora("fluxcord-house") if spec.lora_base is not None else None  # a LoRA route: a LoRA style's
        request = build_request(
            model=spec.key,
            prompt="x",
            aspect_ratio=None,
            seed=seed,
            input_images=images,
            placement=placement,
            lora=lora,
        )
        assert "user" not in request.bfl_payload()


# -- button-only routes: FLUX Tools deblur (the Sharpen button) --------------------------------------

DEBLUR = MODELS["flux-tools/deblur-v1"]
OUTPAINTING = MODELS["flux-tools/outpainting-v1"]


def test_deblur_is_a_table_entry_reached_only_through_its_button():
    """Its route, body shape, price and safety range are its table entry's; no member picks it."""
    assert DEBLUR.button_only and DEBLUR.body == "image" and DEBLUR.size_mode == "input"
    assert [m.key for m in MODELS.values() if m.button_only] == [DEBLUR.key, "flux-3-video", OUTPAINTING.key]
    from cogs._choices import model_choices

    for tool in (DEBLUR, OUTPAINTING, MODELS["flux-3-video"]):
        assert tool not in offered_models() and tool not in models_taking_images()
        assert all(tool not in models_supporting(option) for option in OPTION_NAMES)
        assert tool.key not in {choice.value for choice in model_choices()}


def test_deblur_matches_its_schema_in_the_2026_spec():
    """``POST /v1/flux-tools/deblur-v1`` exists; its safety range and ``user`` are the schema's; a seed is taken."""
    props = request_schema(DEBLUR.key)["properties"]
    bounds = (props["safety_tolerance"]["minimum"], props["safety_tolerance"]["maximum"])
    assert DEBLUR.safety_range == bounds == (0, 5) and DEBLUR.takes_user == ("user" in props)
    assert DEBLUR.has_seed == ("seed" in props) and DEBLUR.max_input_images == 1 and "prompt" not in props
    assert DEBLUR.input_max_megapixels == 2048 * 2048 / 1e6  # "at most 4 MP", read as FLUX.2's 2048²


def test_deblur_takes_exactly_one_image_and_renders_at_its_size():
    with pytest.raises(InvalidOptions, match="one image"):
        build_request(model=DEBLUR.key, prompt="x", aspect_ratio=None, seed=1)
    with pytest.raises(InvalidOptions):
        build_request(model=DEBLUR.key, prompt="x", aspect_ratio=None, seed=1, input_images=[_image()] * 2)
    request = build_request(model=DEBLUR.key, prompt="x", aspect_ratio=None, seed=1, input_images=[_image(1200, 900)])
    assert (request.width, request.height, request.aspect_ratio) == (1200, 900, "4:3")


def test_a_button_only_route_is_no_default_or_draft_model():
    from pydantic import ValidationError

    from bot.config import Settings

    for field in ("default_model", "draft_model"):
        with pytest.raises(ValidationError, match="not a model"):
            Settings(_env_file=None, discord_token="t" * 12, bfl_api_key="k" * 12, **{field: DEBLUR.key})


def test_outpainting_matches_its_schema_in_the_2026_spec():
    """``POST /v1/flux-tools/outpainting-v1``: no seed, its safety range, ``user``; a canvas, never picked."""
    props = request_schema(OUTPAINTING.key)["properties"]
    bounds = (props["safety_tolerance"]["minimum"], props["safety_tolerance"]["maximum"])
    assert OUTPAINTING.safety_range == bounds == (0, 5) and OUTPAINTING.takes_user == ("user" in props)
    assert OUTPAINTING.has_seed == ("seed" in props) is False and OUTPAINTING.max_input_images == 1
    assert OUTPAINTING.button_only and OUTPAINTING.body == "outpainting" and OUTPAINTING.size_mode == "canvas"


def test_outpainting_needs_a_placement_of_its_one_image():
    with pytest.raises(InvalidOptions, match="Zoom out"):
        build_request(model=OUTPAINTING.key, prompt="x", aspect_ratio=None, seed=None, input_images=[_image()])
    placement = placement_for("pan_up", 1200, 900)
    with pytest.raises(InvalidOptions, match="one image"):
        build_request(
            model=OUTPAINTING.key,
            prompt="x",
            aspect_ratio=None,
            seed=None,
            input_images=[_image(64, 64)],
            placement=placement,
        )
    with pytest.raises(ValueError, match="no placement"):
        build_request(model="flux-2-pro", prompt="x", aspect_ratio=None, seed=1, placement=placement)
