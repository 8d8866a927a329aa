"""The BFL OpenAPI spec, and request validation against it plus the limits it cannot express."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema

from tests.fakes.fake_bfl.constants import (
    DEBLUR_MAX_PIXELS,
    DEFAULT_SPEC_PATH,
    FLUX2_MAX_PIXELS,
    FLUX3_INPUT_MAX_PIXELS,
    FLUX3_INPUT_MIN_SIDE,
    FLUX3_MODEL,
    FLUX3_SPEC_PATH,
    LORA_ROUTES,
    OUTPAINTING_MAX_PIXELS,
    TOOL_ROUTES,
    VIDEO_MODEL,
)
from tests.fakes.fake_bfl.images import _decoded_size

# -- the OpenAPI spec --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteSchema:
    """The request schema of one generation route, compiled."""

    model: str
    schema: dict[str, Any]
    validator: jsonschema.Draft202012Validator
    properties: frozenset[str]
    closed: bool  # the schema itself already forbids unknown properties


def spec_path() -> Path:
    """Where the BFL OpenAPI spec is: ``$BFL_OPENAPI_SPEC`` or ``<repo>/tests/specs/bfl-openapi-2026.json``."""
    env = os.environ.get("BFL_OPENAPI_SPEC")
    return Path(env) if env else DEFAULT_SPEC_PATH


@functools.cache
def load_spec(path: Path | None = None) -> dict[str, Any]:
    """The parsed spec (cached per process)."""
    return json.loads((path or spec_path()).read_text(encoding="utf-8"))


def _is_image_route(route: str) -> bool:
    """``/v1/flux-…`` image routes (not video), and of the FLUX Tools those in :data:`TOOL_ROUTES`."""
    name = route.removeprefix("/v1/")
    video = name == VIDEO_MODEL  # FLUX 3 video is served (Animate); the video tools are not
    return route in TOOL_ROUTES or video or (route.startswith("/v1/flux") and "/" not in name and "video" not in name)


@functools.cache
def generation_routes(path: Path | None = None) -> dict[str, RouteSchema]:
    """Every image ``POST /v1/flux…`` route of the spec, keyed by model name, with a compiled validator.

    FLUX 3 Image comes from the spec when it has it (the 2026 copy: strict, unknown fields → 422);
    the reconstructed schema in ``bfl-flux3-image.json`` stands in for a spec without it.
    """
    spec = load_spec(path)
    components = spec["components"]
    routes: dict[str, RouteSchema] = {}
    for route, operations in spec["paths"].items():
        operation = operations.get("post")
        if not _is_image_route(route) or not operation or "requestBody" not in operation:
            continue
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        if "$ref" in schema:
            schema = components["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        document = {**schema, "components": components}  # lets "#/components/..." refs resolve
        jsonschema.Draft202012Validator.check_schema(document)
        model = route.removeprefix("/v1/")
        routes[model] = RouteSchema(
            model=model,
            schema=schema,
            validator=jsonschema.Draft202012Validator(document),
            properties=frozenset(schema.get("properties", {})),
            # A oneOf of strict variants (FLUX 3 video's `mode` bodies) is closed by its variants.
            closed="additionalProperties" in schema or "unevaluatedProperties" in schema or "oneOf" in schema,
        )
    if FLUX3_MODEL not in routes:
        routes[FLUX3_MODEL] = flux3_limits()
    for model, path in LORA_ROUTES.items():
        routes[model] = lora_route(model, path)
    return routes


def lora_route(model: str, path: Path) -> RouteSchema:
    """A FLUX.2 [klein] LoRA route from its own schema file (BFL's ``openapi.json`` does not carry these)."""
    schema = json.loads(path.read_text(encoding="utf-8"))["request"]
    jsonschema.Draft202012Validator.check_schema(schema)
    return RouteSchema(
        model=model,
        schema=schema,
        validator=jsonschema.Draft202012Validator(schema),
        properties=frozenset(schema["properties"]),
        closed=False,  # like its base route's: unknown fields are refused by validate_body all the same
    )


@functools.cache
def flux3_limits() -> RouteSchema:
    """FLUX 3 Image's reconstructed schema (prose limits the spec's own schema does not carry)."""
    flux3 = json.loads(FLUX3_SPEC_PATH.read_text(encoding="utf-8"))["request"]
    jsonschema.Draft202012Validator.check_schema(flux3)
    return RouteSchema(
        model=FLUX3_MODEL,
        schema=flux3,
        validator=jsonschema.Draft202012Validator(flux3),
        properties=frozenset(flux3["properties"]),
        closed=True,
    )


def validate_query(route: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """FastAPI-style ``detail`` items for a GET of ``route`` (e.g. ``/v1/get_result``) with ``query``.

    Each query parameter the spec declares is checked (required, and against its schema). Others are
    ignored, as FastAPI does: a regional ``polling_url`` may carry more (``&cluster=eu2``).
    """
    operation = load_spec()["paths"][route]["get"]
    declared = {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"}
    detail: list[dict[str, Any]] = []
    for name, parameter in declared.items():
        if name not in query:
            if parameter.get("required"):
                detail.append({"loc": ["query", name], "msg": "Field required", "type": "missing"})
            continue
        for error in jsonschema.Draft202012Validator(parameter.get("schema", {})).iter_errors(query[name]):
            detail.append({"loc": ["query", name], "msg": error.message, "type": "value_error"})
    return detail


_KEYWORD_TYPES = {
    "minimum": "greater_than_equal",
    "maximum": "less_than_equal",
    "exclusiveMinimum": "greater_than",
    "exclusiveMaximum": "less_than",
    "multipleOf": "multiple_of",
    "required": "missing",
    "type": "type_error",
    "enum": "enum",
    "maxLength": "string_too_long",
    "minLength": "string_too_short",
    "additionalProperties": "extra_forbidden",
}


def validate_body(model: str, body: Any) -> list[dict[str, Any]]:
    """FastAPI-style ``detail`` items for everything wrong with ``body`` on ``model`` ([] if valid)."""
    route = generation_routes()[model]
    if not isinstance(body, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "model_attributes_type"}]
    detail: list[dict[str, Any]] = []
    if not route.closed:
        # The real API's handling of unknown fields is undocumented; the bot must not send any.
        for name in sorted(set(body) - route.properties):
            detail.append({"loc": ["body", name], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"})
    for error in sorted(route.validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))):
        # anyOf [<the real type>, null]: report why the real type failed, as FastAPI would.
        branches = [e for e in error.context or () if not (e.validator == "type" and e.validator_value == "null")]
        if branches:
            error = jsonschema.exceptions.best_match(branches)
        loc: list[Any] = ["body", *error.absolute_path]
        if error.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", error.message)
            loc = ["body", *missing]
        detail.append(
            {
                "loc": loc,
                "msg": error.message,
                "type": _KEYWORD_TYPES.get(str(error.validator), "value_error"),
            }
        )
    if not detail and model == FLUX3_MODEL and route is not flux3_limits():
        detail.extend(_flux3_prose_limits(body))
    if not detail:
        detail.extend(_documented_limits(model, body))
    return detail


def _flux3_prose_limits(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The reconstructed FLUX 3 schema's limits (prompt length, image count) on a body the spec accepted."""
    return [
        {"loc": ["body", *error.absolute_path], "msg": error.message, "type": "value_error"}
        for error in flux3_limits().validator.iter_errors(body)
    ]


def _documented_limits(model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Limits BFL documents in prose but not in the schema."""
    problems: list[dict[str, Any]] = []
    ratio = body.get("aspect_ratio")
    if model == FLUX3_MODEL:
        images = body.get("images")
        for index, data in enumerate([images] if isinstance(images, str) else images or []):
            size = _decoded_size(data)
            if size is None:
                msg = "Image could not be decoded"
            elif min(size) < FLUX3_INPUT_MIN_SIDE:
                msg = f"Image must be at least {FLUX3_INPUT_MIN_SIDE}x{FLUX3_INPUT_MIN_SIDE}"
            elif size[0] * size[1] > FLUX3_INPUT_MAX_PIXELS:
                msg = "Image must be at most 16 megapixels"
            else:
                continue
            problems.append({"loc": ["body", "images", index], "msg": msg, "type": "value_error"})
        return problems
    if model == "flux-tools/deblur-v1":
        return _deblur_limits(body)
    if model == VIDEO_MODEL:
        return _video_limits(body)
    if model == "flux-tools/outpainting-v1":
        return _outpainting_limits(body)
    for name in sorted(k for k in body if k.startswith("input_image") and body[k] is not None):
        if not str(body[name]).startswith(("http://", "https://")) and _decoded_size(body[name]) is None:
            problems.append({"loc": ["body", name], "msg": "Image could not be decoded", "type": "value_error"})
    if isinstance(ratio, str) and _parse_ratio(ratio) is None:
        problems.append(
            {
                "loc": ["body", "aspect_ratio"],
                "msg": "Aspect ratio must be between 21:9 and 9:21",
                "type": "value_error",
            }
        )
    if model.startswith("flux-2-"):
        width, height = body.get("width") or 0, body.get("height") or 0
        if width * height > FLUX2_MAX_PIXELS:
            problems.append({"loc": ["body"], "msg": "Image must be at most 4 megapixels", "type": "value_error"})
    return problems


def _deblur_limits(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Deblur's ``image``: a URL, or base64 of a decodable image of at most 4 MP (BFL's SDK; not in the schema)."""
    image = body["image"]
    if image.startswith(("http://", "https://")):
        return []
    size = _decoded_size(image)
    if size is None:
        msg = "Image could not be decoded"
    elif size[0] * size[1] > DEBLUR_MAX_PIXELS:
        msg = "Image must be at most 4 megapixels"
    else:
        return []
    return [{"loc": ["body", "image"], "msg": msg, "type": "value_error"}]


def _video_limits(body: dict[str, Any]) -> list[dict[str, Any]]:
    """FLUX 3 video's keyframes: 1–10 images, each decodable (unless a URL) and at least 256×256 (BFL's prose)."""
    frames = body.get("keyframes")
    items = [frames] if isinstance(frames, str) else list(frames or [])
    problems: list[dict[str, Any]] = []
    if not 1 <= len(items) <= 10:
        problems.append({"loc": ["body", "keyframes"], "msg": "1 to 10 keyframes", "type": "value_error"})
    for index, item in enumerate(items):
        data = item[1] if isinstance(item, list) else item
        if str(data).startswith(("http://", "https://")):
            continue
        size = _decoded_size(data)
        if size is None or min(size) < FLUX3_INPUT_MIN_SIDE:
            msg = "Keyframe could not be decoded" if size is None else "Keyframe must be at least 256x256"
            problems.append({"loc": ["body", "keyframes", index], "msg": msg, "type": "value_error"})
    return problems


def _outpainting_limits(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Outpainting's prose limits: the canvas ≤ 4 MP, and (unless ``auto_crop``) the reference inside it."""
    width, height = body["width"], body["height"]
    if width * height > OUTPAINTING_MAX_PIXELS:
        return [{"loc": ["body", "width"], "msg": "Canvas must be at most 4 megapixels", "type": "value_error"}]
    image = body["input_image"]
    if image.startswith(("http://", "https://")):
        return []
    size = _decoded_size(image)
    if size is None:
        return [{"loc": ["body", "input_image"], "msg": "Image could not be decoded", "type": "value_error"}]
    if body.get("auto_crop"):
        return []
    problems = []
    for axis, canvas, side in (("x", width, size[0]), ("y", height, size[1])):
        offset = body.get(f"reference_offset_{axis}")
        offset = (canvas - side) // 2 if offset is None else offset  # None: centred
        if offset < 0 or offset + side > canvas:
            msg = "The reference image extends beyond the canvas (set auto_crop to crop it)"
            problems.append({"loc": ["body", f"reference_offset_{axis}"], "msg": msg, "type": "value_error"})
    return problems


def _parse_ratio(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d{1,3}):(\d{1,3})", text)
    if not match:
        return None
    w, h = int(match[1]), int(match[2])
    if w == 0 or h == 0 or not (Decimal(9) / 21 <= Decimal(w) / h <= Decimal(21) / 9):
        return None
    return w, h
