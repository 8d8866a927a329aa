"""Zoom-out and pan geometry (bot.models.canvas) and the reference resize (bot.images.reference)."""

from __future__ import annotations

import asyncio
import io
import json
import math
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from bot.images.codec import InvalidImage
from bot.images.reference import fit_reference, prepare_reference
from bot.models.canvas import (
    ACTIONS,
    CANVAS_MULTIPLE,
    MAX_CANVAS_PIXELS,
    MIN_CANVAS_SIDE,
    Placement,
    pan,
    placement_for,
    zoom_out,
)

OPENAPI = Path(__file__).resolve().parents[1] / "specs" / "bfl-openapi-2026.json"

# Real result sizes: FLUX.1 (1408×608), Kontext (1568×672), FLUX.2 and FLUX 3 1k (1520×656), FLUX 3 2k and
# Ultra (3136×1344), FLUX 3 4k (6256×2688), their portrait twins, squares at every tier, odd sizes.
SIZES = [
    (1024, 1024),
    (1408, 608),
    (1568, 672),
    (1520, 656),
    (3136, 1344),
    (6256, 2688),
    (608, 1408),
    (672, 1568),
    (656, 1520),
    (1344, 3136),
    (2688, 6256),
    (768, 768),
    (1536, 1536),
    (2048, 2048),
    (4096, 4096),
    (1152, 864),
    (864, 1152),
    (1440, 1440),
    (2000, 1000),
    (1001, 999),
    (333, 777),
    (64, 64),
    (48, 40),
    (4096, 256),
    (16384, 256),
]
DIRECTIONS = ("left", "right", "up", "down")


def check_invariants(p: Placement) -> None:
    assert p.canvas_width * p.canvas_height <= MAX_CANVAS_PIXELS
    assert p.canvas_width >= MIN_CANVAS_SIDE and p.canvas_height >= MIN_CANVAS_SIDE
    assert p.canvas_width % CANVAS_MULTIPLE == 0 and p.canvas_height % CANVAS_MULTIPLE == 0
    assert p.offset_x >= 0 and p.offset_x + p.reference_width <= p.canvas_width
    assert p.offset_y >= 0 and p.offset_y + p.reference_height <= p.canvas_height
    assert 1 <= p.reference_width <= p.source_width and 1 <= p.reference_height <= p.source_height
    assert 0 < p.scale <= 1
    assert p.scaled == ((p.reference_width, p.reference_height) != (p.source_width, p.source_height))
    # The reference keeps the source's ratio to within half a pixel of rounding on one side.
    ratio_error = abs(math.log(p.reference_width / p.reference_height * p.source_height / p.source_width))
    assert ratio_error <= 1 / min(p.reference_width, p.reference_height)


def fields(p: Placement) -> dict[str, int]:
    return p.request_fields()


# --- zoom out -------------------------------------------------------------------------------------------


def test_zoom_out_1_5_on_a_square_centres_the_original_at_its_own_size():
    p = zoom_out(1024, 1024, 1.5)
    assert fields(p) == {"width": 1536, "height": 1536, "reference_offset_x": 256, "reference_offset_y": 256}
    assert (p.reference_width, p.reference_height) == (1024, 1024)
    assert p.scale == 1 and not p.scaled


def test_zoom_out_2_on_a_square_fills_exactly_the_4_mp_cap():
    p = zoom_out(1024, 1024, 2)
    assert fields(p) == {"width": 2048, "height": 2048, "reference_offset_x": 512, "reference_offset_y": 512}
    assert p.canvas_width * p.canvas_height == MAX_CANVAS_PIXELS == 4_194_304
    assert (p.reference_width, p.reference_height) == (1024, 1024) and not p.scaled


def test_zoom_out_2_twice_halves_the_reference_the_second_time():
    first = zoom_out(1024, 1024, 2)
    second = zoom_out(first.canvas_width, first.canvas_height, 2)
    assert (second.source_width, second.source_height) == (2048, 2048)
    assert fields(second) == {"width": 2048, "height": 2048, "reference_offset_x": 512, "reference_offset_y": 512}
    assert (second.reference_width, second.reference_height) == (1024, 1024)
    assert second.scaled and second.scale == 0.5


def test_zoom_out_1_5_twice_scales_the_second_into_the_cap():
    first = zoom_out(1024, 1024, 1.5)
    second = zoom_out(first.canvas_width, first.canvas_height, 1.5)
    # 1536 × 1.5 = 2304 > 2048: everything shrinks by 2048/2304; the reference is floor(1536 × 8/9) = 1365.
    assert fields(second) == {"width": 2048, "height": 2048, "reference_offset_x": 341, "reference_offset_y": 341}
    assert (second.reference_width, second.reference_height) == (1365, 1365)
    assert second.scaled and math.isclose(second.scale, 1365 / 1536)
    check_invariants(second)


def test_zoom_out_1_5_then_2_lands_on_exact_pixels():
    first = zoom_out(1024, 1024, 1.5)
    second = zoom_out(first.canvas_width, first.canvas_height, 2)
    # 1536 × 2 = 3072: scale 2/3, exactly 1024 (no float drift down to 1023).
    assert fields(second) == {"width": 2048, "height": 2048, "reference_offset_x": 512, "reference_offset_y": 512}
    assert (second.reference_width, second.reference_height) == (1024, 1024)


def test_zoom_out_2_twice_on_a_kontext_21_9_image():
    first = zoom_out(1568, 672, 2)
    # 3136 × 1344 = 4,214,784 px is 0.5 % over the cap: the reference shrinks to 1560 wide (1564 would
    # round the canvas back up to 3136), the canvas to 3120 × 1344 = 4,193,280 px.
    assert fields(first) == {"width": 3120, "height": 1344, "reference_offset_x": 780, "reference_offset_y": 337}
    assert (first.reference_width, first.reference_height) == (1560, 669)
    second = zoom_out(first.canvas_width, first.canvas_height, 2)
    assert fields(second) == {"width": 3120, "height": 1344, "reference_offset_x": 780, "reference_offset_y": 336}
    assert (second.reference_width, second.reference_height) == (1560, 672)
    assert second.scale == 0.5
    check_invariants(first)
    check_invariants(second)


def test_zoom_out_2_twice_on_a_flux2_21_9_image():
    first = zoom_out(1520, 656, 2)
    assert fields(first) == {"width": 3040, "height": 1312, "reference_offset_x": 760, "reference_offset_y": 328}
    assert not first.scaled
    second = zoom_out(first.canvas_width, first.canvas_height, 2)
    # 6080 × 2624 = 16 MP: scale √(4,194,304 / 15,953,920) ≈ 0.5127 → the reference 1558 × 672.
    assert fields(second) == {"width": 3120, "height": 1344, "reference_offset_x": 781, "reference_offset_y": 336}
    assert (second.reference_width, second.reference_height) == (1558, 672)
    check_invariants(second)


def test_zoom_out_of_a_4k_result_scales_hard():
    p = zoom_out(6256, 2688, 2)  # FLUX 3 4k 21:9, 16.8 MP, to a 67 MP ideal canvas
    check_invariants(p)
    assert p.scale < 0.25
    assert fields(p) == {"width": 3120, "height": 1344, "reference_offset_x": 780, "reference_offset_y": 337}
    assert (p.reference_width, p.reference_height) == (1560, 670)
    square = zoom_out(4096, 4096, 2)
    assert fields(square) == {"width": 2048, "height": 2048, "reference_offset_x": 512, "reference_offset_y": 512}
    assert square.scale == 0.25


@pytest.mark.parametrize("factor", [1, 0.5, 3, 1.25])
def test_zoom_out_only_takes_the_two_button_factors(factor):
    with pytest.raises(ValueError, match="factor"):
        zoom_out(1024, 1024, factor)


# --- pan ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("left", {"width": 1536, "height": 1024, "reference_offset_x": 512, "reference_offset_y": 0}),
        ("right", {"width": 1536, "height": 1024, "reference_offset_x": 0, "reference_offset_y": 0}),
        ("up", {"width": 1024, "height": 1536, "reference_offset_x": 0, "reference_offset_y": 512}),
        ("down", {"width": 1024, "height": 1536, "reference_offset_x": 0, "reference_offset_y": 0}),
    ],
)
def test_pan_on_a_square_adds_half_the_image_on_that_side(direction, expected):
    p = pan(1024, 1024, direction)
    assert fields(p) == expected
    assert (p.reference_width, p.reference_height) == (1024, 1024) and not p.scaled


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("left", {"width": 2352, "height": 672, "reference_offset_x": 784, "reference_offset_y": 0}),
        ("right", {"width": 2352, "height": 672, "reference_offset_x": 0, "reference_offset_y": 0}),
        ("up", {"width": 1568, "height": 1008, "reference_offset_x": 0, "reference_offset_y": 336}),
        ("down", {"width": 1568, "height": 1008, "reference_offset_x": 0, "reference_offset_y": 0}),
    ],
)
def test_pan_on_a_kontext_21_9_image(direction, expected):
    p = pan(1568, 672, direction)
    assert fields(p) == expected
    assert not p.scaled
    check_invariants(p)


def test_pan_up_on_a_flux3_1k_21_9_image_rounds_the_new_strip_up_to_16():
    p = pan(1520, 656, "up")  # 656 × 1.5 = 984 → 992: the new strip is 336 px, not 328
    assert fields(p) == {"width": 1520, "height": 992, "reference_offset_x": 0, "reference_offset_y": 336}
    assert not p.scaled


def test_pan_up_on_a_flux3_2k_21_9_image_stays_within_4_mp():
    p = pan(3136, 1344, "up")  # 3136 × 2016 would be 6.3 MP
    assert fields(p) == {"width": 2544, "height": 1648, "reference_offset_x": 0, "reference_offset_y": 558}
    assert (p.reference_width, p.reference_height) == (2544, 1090)
    assert p.canvas_width * p.canvas_height == 4_192_512 <= MAX_CANVAS_PIXELS
    assert p.scaled
    check_invariants(p)


def test_pan_up_on_a_flux3_4k_21_9_image_stays_within_4_mp():
    p = pan(6256, 2688, "up")
    assert fields(p) == {"width": 2544, "height": 1648, "reference_offset_x": 0, "reference_offset_y": 555}
    assert (p.reference_width, p.reference_height) == (2544, 1093)
    check_invariants(p)


def test_pan_left_on_a_tall_4k_image_keeps_the_full_height_of_the_canvas():
    p = pan(2688, 6256, "left")
    assert fields(p) == {"width": 1648, "height": 2544, "reference_offset_x": 555, "reference_offset_y": 0}
    assert (p.reference_width, p.reference_height) == (1093, 2544)


def test_pan_twice_keeps_the_first_result_whole_on_the_far_side():
    first = pan(1024, 1024, "right")
    second = pan(first.canvas_width, first.canvas_height, "right")  # 1536 → 2304 × 1024 = 2.4 MP
    assert fields(second) == {"width": 2304, "height": 1024, "reference_offset_x": 0, "reference_offset_y": 0}
    third = pan(second.canvas_width, second.canvas_height, "right")  # 3456 × 1024 = 3.5 MP
    assert fields(third) == {"width": 3456, "height": 1024, "reference_offset_x": 0, "reference_offset_y": 0}
    fourth = pan(third.canvas_width, third.canvas_height, "right")  # 5184 × 1024 = 5.3 MP: scaled
    check_invariants(fourth)
    assert fourth.reference_height == fourth.canvas_height and fourth.offset_x == 0


def test_pan_centres_a_side_that_is_not_a_multiple_of_16():
    p = pan(1001, 999, "up")  # 1001 wide rounds up to 1008: a 3 + 4 px sliver either side
    assert fields(p) == {"width": 1008, "height": 1504, "reference_offset_x": 3, "reference_offset_y": 505}
    assert not p.scaled


def test_pan_refuses_an_unknown_direction():
    with pytest.raises(ValueError, match="direction"):
        pan(1024, 1024, "north")  # type: ignore[arg-type]


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-5, 10)])
def test_sizes_must_be_positive(width, height):
    with pytest.raises(ValueError, match="size"):
        zoom_out(width, height, 2)
    with pytest.raises(ValueError, match="size"):
        pan(width, height, "left")


# --- invariants over a grid -----------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_every_placement_obeys_bfls_limits(width, height):
    for key in ACTIONS:
        p = placement_for(key, width, height)
        check_invariants(p)
        assert (p.source_width, p.source_height) == (width, height)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_zoom_out_centres_the_reference_and_keeps_the_ratio(width, height):
    for factor in (1.5, 2):
        p = zoom_out(width, height, factor)
        left, right = p.offset_x, p.canvas_width - p.reference_width - p.offset_x
        top, bottom = p.offset_y, p.canvas_height - p.reference_height - p.offset_y
        assert abs(left - right) <= 1 and abs(top - bottom) <= 1
        if min(width, height) * factor >= MIN_CANVAS_SIDE:
            # Each side is the reference's × factor, rounded up to the multiple (so never less than asked).
            assert p.canvas_width >= p.reference_width * factor
            assert p.canvas_width - p.reference_width * factor < CANVAS_MULTIPLE
            assert p.canvas_height >= p.reference_height * factor
            assert p.canvas_height - p.reference_height * factor < CANVAS_MULTIPLE
        if min(p.canvas_width, p.canvas_height) >= 256:
            assert abs(math.log(p.canvas_width / p.canvas_height / (width / height))) < 0.1


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_pan_grows_only_one_side_by_at_least_half(width, height):
    for direction in DIRECTIONS:
        p = pan(width, height, direction)
        horizontal = direction in ("left", "right")
        grown, kept = ("canvas_width", "canvas_height") if horizontal else ("canvas_height", "canvas_width")
        ref_grown, ref_kept = (
            ("reference_width", "reference_height") if horizontal else ("reference_height", "reference_width")
        )
        strip = getattr(p, grown) - getattr(p, ref_grown)
        if getattr(p, ref_grown) >= 2 * MIN_CANVAS_SIDE:
            assert getattr(p, ref_grown) / 2 <= strip < getattr(p, ref_grown) / 2 + CANVAS_MULTIPLE
        # Multiples of 16 (every FLUX output) keep their full other side: no sliver to invent.
        if getattr(p, ref_kept) % CANVAS_MULTIPLE == 0 and getattr(p, ref_kept) >= MIN_CANVAS_SIDE:
            assert getattr(p, kept) == getattr(p, ref_kept)
        expected_x = strip if direction == "left" else 0 if direction == "right" else None
        expected_y = strip if direction == "up" else 0 if direction == "down" else None
        if expected_x is not None:
            assert p.offset_x == expected_x
        if expected_y is not None:
            assert p.offset_y == expected_y


def test_a_dense_grid_of_sizes_obeys_the_limits():
    for width in range(64, 8200, 397):
        for height in range(64, 8200, 411):
            for key in ACTIONS:
                check_invariants(placement_for(key, width, height))


def test_request_fields_validate_against_bfls_outpainting_schema():
    schemas = json.loads(OPENAPI.read_text(encoding="utf-8"))["components"]["schemas"]
    validator = Draft202012Validator(schemas["FluxOutpaintingInputs"])
    for width, height in SIZES:
        for key in ACTIONS:
            body = {"input_image": "aGVsbG8=", "prompt": "a cat", **placement_for(key, width, height).request_fields()}
            assert not list(validator.iter_errors(body)), (key, width, height)


# --- the buttons ----------------------------------------------------------------------------------------


def test_the_six_actions_and_their_button_faces():
    assert list(ACTIONS) == ["zoom15", "zoom2", "pan_left", "pan_right", "pan_up", "pan_down"]
    assert (ACTIONS["zoom15"].label, ACTIONS["zoom15"].emoji) == ("Zoom out 1.5×", None)
    assert (ACTIONS["zoom2"].label, ACTIONS["zoom2"].emoji) == ("Zoom out 2×", None)
    arrows = {key: (ACTIONS[key].label, ACTIONS[key].emoji) for key in ("pan_left", "pan_right", "pan_up", "pan_down")}
    assert arrows == {
        "pan_left": (None, "⬅️"),
        "pan_right": (None, "➡️"),
        "pan_up": (None, "⬆️"),
        "pan_down": (None, "⬇️"),
    }
    for key, action in ACTIONS.items():
        assert action.key == key and action.title  # a name for logs, the job's record and screen readers


def test_placement_for_matches_the_direct_functions():
    assert placement_for("zoom15", 1520, 656) == zoom_out(1520, 656, 1.5)
    assert placement_for("zoom2", 1520, 656) == zoom_out(1520, 656, 2)
    for direction in DIRECTIONS:
        assert placement_for(f"pan_{direction}", 1520, 656) == pan(1520, 656, direction)
    with pytest.raises(KeyError):
        placement_for("rotate", 1024, 1024)


# --- the reference image --------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    return Image.linear_gradient("L").resize((width, height)).convert("RGB")


def test_an_unscaled_reference_is_sent_untouched():
    data = encode(gradient(1024, 1024), "JPEG")
    result = fit_reference(data, zoom_out(1024, 1024, 2))
    assert result.data == data and not result.reencoded
    assert (result.width, result.height) == (1024, 1024)


@pytest.mark.parametrize(("fmt", "content_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png")])
def test_a_scaled_reference_is_resized_to_the_exact_placement_size(fmt, content_type):
    placement = zoom_out(2048, 2048, 1.5)
    data = encode(gradient(2048, 2048), fmt)
    result = fit_reference(data, placement)
    assert result.reencoded and result.content_type == content_type
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.format == fmt
        assert image.size == (placement.reference_width, placement.reference_height) == (1365, 1365)


def test_a_webp_reference_is_resized_to_jpeg():
    placement = pan(3136, 1344, "up")
    result = fit_reference(encode(gradient(3136, 1344), "WEBP"), placement)
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.format == "JPEG" and image.size == (2544, 1090)


def test_a_png_with_alpha_keeps_it_and_the_async_wrapper_matches():
    placement = zoom_out(2048, 2048, 2)
    data = encode(Image.new("RGBA", (2048, 2048), (10, 20, 30, 128)), "PNG")
    result = asyncio.run(prepare_reference(data, placement))
    assert result == fit_reference(data, placement)
    with Image.open(io.BytesIO(result.data)) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (1024, 1024))


def test_a_reference_of_the_wrong_size_is_refused():
    with pytest.raises(InvalidImage, match="size"):
        fit_reference(encode(gradient(1000, 1000), "PNG"), zoom_out(1024, 1024, 2))


def test_bytes_that_are_no_image_are_refused():
    with pytest.raises(InvalidImage):
        fit_reference(b"not an image", zoom_out(1024, 1024, 2))
