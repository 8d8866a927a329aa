"""A fake Black Forest Labs API on loopback, for tests that exercise the real HTTP client.

``FakeBfl`` serves the parts of the BFL protocol the bot uses (see ``shared/reference/bfl-api.md``):

* ``POST /v1/<model>`` for every generation route of the OpenAPI spec. Each body is validated against
  the route's request schema (JSON Schema 2020-12), unknown properties are rejected, and documented
  limits the schema cannot express (aspect ratio range, FLUX.2 ≤ 4 MP) are checked. Violations get a
  FastAPI-style 422 and are recorded in ``schema_errors``, which tests assert empty.
* ``GET /v1/get_result?id=`` and ``GET /regional/v1/get_result?id=`` (an alternate polling path, so
  tests prove the client polls ``polling_url`` exactly as returned).
* ``GET /v1/credits``.
* ``GET /delivery/<task id>.<ext>?se=…&sig=…``: a real image rendered with Pillow at the requested
  size, in the requested ``output_format``; the signature must match and the URL can expire (403).
* ``GET /redirect/<task id>.<ext>``: a 302 to a second server, :class:`FakeDeliveryHost`, on another
  port ("another host"), which records the headers it receives.

Every request is recorded (``submits``, ``polls``, ``downloads``, ``unhandled``) with its headers,
secrets masked, so tests can assert where ``x-key`` went. State changes wake :meth:`FakeBfl.wait_for`,
so tests never sleep to synchronise.

Behaviour is scripted per submit: a FIFO queue of :class:`Behaviour` objects, then ``default``::

    async with FakeBfl() as bfl:
        bfl.script(Behaviour(submit_status=429), times=2)   # two 429s, then the default
        bfl.script(Behaviour(pending_polls=3))               # then a task that is Pending 3 times
        bfl.script(Behaviour(run_seconds=3.0, stages=("Pending", "Reasoning", "Generating")))
        bfl.default = Behaviour(final_status="Content Moderated")

A task advances either per poll (``pending_polls``, ``release``) or by the clock (``run_seconds``):
a time-based task reports its ``stages`` in turn as time passes and is finished at ``ready_at``,
fixed when it is created, whether or not anyone polls. Each task records ``polls``,
``ready_answered_at`` (the first poll that answered its final status) and ``downloaded_at`` (the
first request for its image), so a benchmark can measure how late a client noticed.

**Active tasks** (the 24-task cap, ``active_tasks``): a task is active from creation until it
finishes: for a per-poll task, the poll that answers its final status; for a time-based task, its
``ready_at`` moment.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import math
import os
import random
import re
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal, Self

import jsonschema
from aiohttp import web
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC_PATH = REPO_ROOT / "tests" / "specs" / "bfl-openapi.json"
#: FLUX 3 Image's request schema (not in the 2026-04 OpenAPI snapshot; see tests/specs/README.md).
FLUX3_SPEC_PATH = REPO_ROOT / "tests" / "specs" / "bfl-flux3-image.json"
FLUX3_MODEL = "flux-3-image"
#: FLUX 3 prices per resolution tier, in credits (1k, 2k, 4k as published; the others below our estimates).
FLUX3_TIER_PRICES: dict[str, Decimal] = {
    "768sq": Decimal("3.5"),
    "1k": Decimal("4.8"),
    "1.5k": Decimal("7.5"),
    "2k": Decimal("10"),
    "4k": Decimal("60.7"),
}
FLUX3_TIER_PIXELS = {"768sq": 768 * 768, "1k": 1024 * 1024, "1.5k": 1536 * 1536, "2k": 2048 * 2048, "4k": 4096 * 4096}
FLUX3_INPUT_MIN_SIDE = 256
FLUX3_INPUT_MAX_PIXELS = 16_000_000

DEFAULT_API_KEY = "test-bfl-key"
MASK = "<redacted>"
_SECRET_HEADERS = frozenset({"x-key", "authorization", "cookie"})

#: Polling URL templates for :attr:`Behaviour.polling_url`. Fields: ``{base}`` (this fake),
#: ``{other}`` (the :class:`FakeDeliveryHost`, i.e. a foreign host) and ``{id}`` (the task id).
DEFAULT_POLLING = "{base}/v1/get_result?id={id}"
REGIONAL_POLLING = "{base}/regional/v1/get_result?id={id}&cluster=eu2"
FOREIGN_POLLING = "{other}/v1/get_result?id={id}"

TERMINAL_STATUSES = ("Ready", "Request Moderated", "Content Moderated", "Error", "Task not found", "Failed")
#: ``Behaviour.stages`` of a FLUX 3 task: it thinks about the prompt, then renders.
FLUX3_STAGES = ("Pending", "Reasoning", "Generating")

# FLUX.1 prices are flat per image, in credits (1 credit = $0.01); bfl-api.md §5.
FLAT_PRICES: dict[str, Decimal] = {
    "flux-pro-1.1": Decimal("4"),
    "flux-pro-1.1-ultra": Decimal("6"),
    "flux-pro-1.1-ultra-finetuned": Decimal("6"),
    "flux-dev": Decimal("2.5"),
    "flux-kontext-pro": Decimal("4"),
    "flux-kontext-max": Decimal("8"),
    "flux-pro-1.0-fill": Decimal("5"),
    "flux-pro-1.0-fill-finetuned": Decimal("5"),
    "flux-pro-1.0-expand": Decimal("5"),
}
# FLUX.2 prices: (first megapixel, each further megapixel) in credits; bfl-api.md §5 rate card.
MEGAPIXEL_PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "flux-2-pro": (Decimal("3"), Decimal("1.5")),
    "flux-2-pro-preview": (Decimal("3"), Decimal("1.5")),
    "flux-2-max": (Decimal("7"), Decimal("3")),
    "flux-2-flex": (Decimal("5"), Decimal("5")),
    "flux-2-klein-4b": (Decimal("1.4"), Decimal("0.1")),
    "flux-2-klein-9b": (Decimal("1.5"), Decimal("0.2")),
    "flux-2-klein-9b-preview": (Decimal("1.5"), Decimal("0.2")),
}
# Output pixels for aspect-ratio models: Kontext about 1 MP, Ultra up to 4 MP.
_ASPECT_TARGET_PIXELS = {"flux-kontext-pro": 1 << 20, "flux-kontext-max": 1 << 20}
_ULTRA_TARGET_PIXELS = 4 << 20
FLUX2_MAX_PIXELS = 2048 * 2048  # documented: up to 4 MP
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


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
    """Where the BFL OpenAPI spec is: ``$BFL_OPENAPI_SPEC`` or ``<repo>/tests/specs/bfl-openapi.json`` (vendored)."""
    env = os.environ.get("BFL_OPENAPI_SPEC")
    return Path(env) if env else DEFAULT_SPEC_PATH


@functools.cache
def load_spec(path: Path | None = None) -> dict[str, Any]:
    """The parsed spec (cached per process)."""
    return json.loads((path or spec_path()).read_text(encoding="utf-8"))


@functools.cache
def generation_routes(path: Path | None = None) -> dict[str, RouteSchema]:
    """Every ``POST /v1/flux…`` route of the spec, keyed by model name, with a compiled validator."""
    spec = load_spec(path)
    components = spec["components"]
    routes: dict[str, RouteSchema] = {}
    for route, operations in spec["paths"].items():
        operation = operations.get("post")
        if not route.startswith("/v1/flux") or not operation or "requestBody" not in operation:
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
            closed="additionalProperties" in schema or "unevaluatedProperties" in schema,
        )
    flux3 = json.loads(FLUX3_SPEC_PATH.read_text(encoding="utf-8"))["request"]
    jsonschema.Draft202012Validator.check_schema(flux3)
    routes[FLUX3_MODEL] = RouteSchema(
        model=FLUX3_MODEL,
        schema=flux3,
        validator=jsonschema.Draft202012Validator(flux3),
        properties=frozenset(flux3["properties"]),
        closed=True,
    )
    return routes


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
    if not detail:
        detail.extend(_documented_limits(model, body))
    return detail


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


def _parse_ratio(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d{1,3}):(\d{1,3})", text)
    if not match:
        return None
    w, h = int(match[1]), int(match[2])
    if w == 0 or h == 0 or not (Decimal(9) / 21 <= Decimal(w) / h <= Decimal(21) / 9):
        return None
    return w, h


def price_credits(model: str, width: int, height: int, input_pixels: Sequence[int] = ()) -> Decimal:
    """What the fake charges, in credits: FLUX.1 flat; FLUX.2 first MP + each further MP; FLUX 3 per tier.

    Megapixels are rounded to 2 decimals like BFL's ``output_mp``; the price to 0.01 credit.
    FLUX.2 edits also pay their input megapixels at the extra-megapixel rate (bfl-api.md §00.8).
    """
    if model in FLAT_PRICES:
        return FLAT_PRICES[model]
    if model == FLUX3_MODEL:
        tier = min(FLUX3_TIER_PIXELS, key=lambda t: abs(FLUX3_TIER_PIXELS[t] - width * height))
        return FLUX3_TIER_PRICES[tier]
    first, extra = MEGAPIXEL_PRICES.get(model, (Decimal("5"), Decimal("0")))
    megapixels = (Decimal(width * height + sum(input_pixels)) / 1_000_000).quantize(Decimal("0.01"), ROUND_HALF_UP)
    price = first + extra * max(Decimal(0), megapixels - 1)
    return price.quantize(Decimal("0.01"), ROUND_HALF_UP).normalize()


def output_size(model: str, body: dict[str, Any]) -> tuple[int, int]:
    """The pixel size the fake renders for a (valid) request."""
    route = generation_routes()[model]
    props = route.schema.get("properties", {})
    if model == FLUX3_MODEL:
        pixels = FLUX3_TIER_PIXELS[body.get("resolution") or "1k"]
        ratio = body.get("aspect_ratio") or "auto"
        if ratio == "auto":
            images = body.get("images")
            first = images if isinstance(images, str) else (images or [None])[0]
            w, h = _decoded_size(first) or (1, 1)
        else:
            w, h = (int(part) for part in ratio.split(":"))
        return (round((pixels * w / h) ** 0.5 / 16) * 16, round((pixels * h / w) ** 0.5 / 16) * 16)
    if "width" in props:
        width = body.get("width") or props["width"].get("default") or 0
        height = body.get("height") or props["height"].get("default") or 0
        # FLUX.2 uses 0/None for "auto": 1024×1024 for text-to-image.
        return (int(width) or 1024, int(height) or 1024)
    if "aspect_ratio" in props:
        default = props["aspect_ratio"].get("default") or "1:1"
        w, h = _parse_ratio(body.get("aspect_ratio") or default) or (1, 1)
        target = _ASPECT_TARGET_PIXELS.get(model, _ULTRA_TARGET_PIXELS)
        width = round((target * w / h) ** 0.5 / 32) * 32
        height = round((target * h / w) ** 0.5 / 32) * 32
        return (width, height)
    # Fill/Expand: the size of the input image (plus the expansion margins).
    size = _decoded_size(body.get("image")) or (1024, 1024)
    return (
        size[0] + int(body.get("left") or 0) + int(body.get("right") or 0),
        size[1] + int(body.get("top") or 0) + int(body.get("bottom") or 0),
    )


def input_pixels(body: dict[str, Any]) -> list[int]:
    """Pixel counts of the decodable input images of a request (FLUX.2 / Kontext fields or FLUX 3 ``images``)."""
    images = body.get("images")
    datas = [images] if isinstance(images, str) else list(images or [])
    datas += [body[k] for k in sorted(body) if k.startswith("input_image") and body[k] is not None]
    sizes = [_decoded_size(data) for data in datas]
    return [w * h for w, h in (size for size in sizes if size is not None)]


def _decoded_size(data: Any) -> tuple[int, int] | None:
    if not isinstance(data, str):
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(data.split(",")[-1], validate=False))) as image:
            return image.size
    except Exception:
        return None


def render_image(width: int, height: int, output_format: str, seed: int) -> bytes:
    """A real, decodable image: a solid colour with a few shapes, chosen by ``seed``."""
    rnd = random.Random(seed)
    image = Image.new("RGB", (width, height), tuple(rnd.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        x1, y1 = (
            min(width, x0 + rnd.randrange(1, width // 2 + 2)),
            min(height, y0 + rnd.randrange(1, height // 2 + 2)),
        )
        colour = tuple(rnd.randrange(256) for _ in range(3))
        if rnd.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    draw.line((0, 0, width - 1, height - 1), fill=(255, 255, 255), width=max(1, width // 100))
    buffer = io.BytesIO()
    image.save(buffer, format=_PIL_FORMATS[output_format], quality=85)
    return buffer.getvalue()


# -- scripting and records -------------------------------------------------------------------------


@dataclass
class Behaviour:
    """How the fake answers one submit, and how the task it creates then behaves.

    Submit side (applied after auth and schema validation, in this order):

    * ``latency``: seconds to wait before answering.
    * ``submit_status``: answer with this HTTP status instead of creating a task (e.g. 402, 403, 422,
      429, 500, 503, or a 3xx with ``submit_headers={"Location": ...}``). ``submit_body`` overrides
      the JSON body (a ``str`` is sent as plain text); ``retry_after`` sets ``Retry-After``.
    * ``hang``: create (and bill) the task, then never answer until the fake closes, so the client
      times out with an unknown outcome. ``disconnect``: create it, then drop the connection.
      ``malformed_response``: create it, then answer 200 with a body that is not JSON.
      ``submit_status_after_create``: create it, then answer this HTTP status (a gateway 502/504
      after creation); ``submit_body`` and ``retry_after`` shape that answer too.
    * ``webhook_response``: answer like ``AsyncWebhookResponse`` (no ``polling_url``).
    * ``cost``: the ``cost`` in the answer; ``"auto"`` uses :func:`price_credits`, ``None`` omits it.
    * ``polling_url``: a template (see ``DEFAULT_POLLING``, ``REGIONAL_POLLING``, ``FOREIGN_POLLING``).

    Task side:

    * ``poll_errors``: HTTP statuses for the first polls (e.g. ``(503, 202)``), before anything else.
      They carry a ``{"detail": ...}`` body (202: a Pending body), i.e. they are transient;
      ``poll_retry_after`` adds a ``Retry-After`` header to them.
    * ``release``: while this event is unset, polls answer ``Pending`` (deterministic overlap).
    * ``pending_polls``: then this many ``Pending`` answers with rising ``progress``.
    * ``run_seconds``: instead of the two above, a time-based task that finishes ``run_seconds``
      after creation, stretched by a factor drawn per task from ``1 ± run_jitter`` (uniform; e.g.
      0.05 for ±5 %, from :attr:`FakeBfl.random`). Until then polls answer the ``stages`` in turn,
      each for an equal share of the run (``FLUX3_STAGES`` for Pending → Reasoning → Generating),
      with ``progress`` = the elapsed fraction.
    * ``final_status``: the terminal status (any string, sent verbatim), with ``details`` for
      moderation; ``omit_sample`` sends ``Ready`` without ``result.sample``. ``final_http_status``:
      the HTTP status of that answer (BFL answers a failed task 503 with ``{"status": "Error"}``:
      ``Behaviour(final_status="Error", final_http_status=503)``). ``ready_cost``: a top-level
      ``cost`` in the Ready answer (the settled cost; ``"auto"`` = what the submit charged; ``None``
      omits it, the default).
    * ``delivery``: ``"direct"`` or ``"redirect"`` (302 to :class:`FakeDeliveryHost`);
      ``delivery_ttl``: seconds the signed URL lives after ``Ready`` (0 = already expired, None =
      forever); ``delivery_errors``: HTTP statuses for the first downloads; ``delivery_chunked``:
      stream the image without a ``Content-Length``.
    """

    latency: float = 0.0
    submit_status: int | None = None
    submit_body: Any = None
    submit_headers: dict[str, str] = field(default_factory=dict)
    retry_after: str | None = None
    hang: bool = False
    disconnect: bool = False
    malformed_response: bool = False
    webhook_response: bool = False
    cost: Decimal | float | int | Literal["auto"] | None = "auto"
    polling_url: str = DEFAULT_POLLING
    submit_status_after_create: int | None = None
    poll_errors: tuple[int, ...] = ()
    poll_retry_after: str | None = None
    release: asyncio.Event | None = None
    pending_polls: int = 0
    run_seconds: float | None = None
    run_jitter: float = 0.0
    stages: tuple[str, ...] = ("Pending",)
    final_status: str = "Ready"
    final_http_status: int = 200
    ready_cost: Decimal | float | int | Literal["auto"] | None = None
    details: dict[str, Any] | None = None
    omit_sample: bool = False
    delivery: Literal["direct", "redirect"] = "direct"
    delivery_ttl: float | None = None
    delivery_errors: tuple[int, ...] = ()
    delivery_chunked: bool = False

    def __post_init__(self) -> None:
        if self.run_seconds is not None:
            if self.run_seconds < 0 or not 0 <= self.run_jitter < 1:
                raise ValueError("run_seconds must be >= 0 and run_jitter in [0, 1)")
            if self.pending_polls or self.release is not None:
                raise ValueError("a time-based task (run_seconds) takes no pending_polls or release")
            if not self.stages:
                raise ValueError("a time-based task needs at least one stage")


@dataclass
class SubmitRecord:
    """One request to a generation route.

    ``status`` is the HTTP status answered: None while in flight, 0 if the connection was dropped.
    """

    model: str
    body: Any
    headers: dict[str, str]  # lower-case names; secret values masked
    key_ok: bool  # the request carried the right x-key
    time: float
    status: int | None = None
    task_id: str | None = None


@dataclass
class PollRecord:
    """One request to a get_result route."""

    task_id: str | None
    path_qs: str  # raw, exactly as requested
    headers: dict[str, str]
    key_ok: bool
    time: float
    status: int | None = None  # HTTP status
    task_status: str | None = None  # the "status" field answered, if any


@dataclass
class DownloadRecord:
    """One request for a result image, on this fake (``host="bfl"``) or the delivery host (``"other"``)."""

    task_id: str | None
    host: Literal["bfl", "other"]
    path_qs: str  # raw, exactly as requested
    headers: dict[str, str]
    time: float
    status: int | None = None


@dataclass
class SchemaViolation:
    """A request body that does not match the spec; ``detail`` is what the 422 said."""

    model: str
    body: Any
    detail: list[dict[str, Any]]


@dataclass
class FakeTask:
    """A task the fake accepted."""

    id: str
    model: str
    body: dict[str, Any]
    behaviour: Behaviour
    created_at: float
    width: int
    height: int
    output_format: str
    cost: Decimal
    seed: int
    signature: str
    poll_errors: deque[int]
    delivery_errors: deque[int]
    pending_left: int
    pending_answered: int = 0
    polls: int = 0
    finished: bool = False  # a poll answered the final status
    #: When the task finished: the final poll for a per-poll task; for a time-based task the
    #: moment fixed at creation (``created_at`` + its run), even before anyone polls.
    ready_at: float | None = None
    ready_answered_at: float | None = None  # the first poll that answered the final status
    downloaded_at: float | None = None  # the first request for the image
    image: bytes | None = None

    @property
    def ext(self) -> str:
        """The file extension of the delivery URL."""
        return self.output_format

    @property
    def time_based(self) -> bool:
        """True if the task finishes by the clock (``Behaviour.run_seconds``), not per poll."""
        return self.behaviour.run_seconds is not None

    def is_active(self, now: float) -> bool:
        """Whether BFL would count the task against the active-task cap at ``now``."""
        if self.time_based:
            assert self.ready_at is not None
            return now < self.ready_at
        return not self.finished


def _record_headers(request: web.Request) -> dict[str, str]:
    return {name.lower(): MASK if name.lower() in _SECRET_HEADERS else value for name, value in request.headers.items()}


# -- the servers -------------------------------------------------------------------------------------


class FakeDeliveryHost:
    """A second loopback server standing in for "another host" (a CDN, or an attacker).

    It serves ``/delivery/<task>.<ext>`` for :class:`FakeBfl` redirects and records every request
    (with headers, secret values masked) in ``requests``, so tests can prove ``x-key`` never reached it.
    """

    def __init__(self, owner: FakeBfl) -> None:
        self._owner = owner
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.requests: list[DownloadRecord] = []

    async def start(self) -> None:
        """Bind to 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = DownloadRecord(
            task_id=None,
            host="other",
            path_qs=request.raw_path,
            headers=_record_headers(request),
            time=self._owner.now(),
        )
        self.requests.append(record)
        if request.method == "GET" and request.path.startswith("/delivery/"):
            self._owner.downloads.append(record)
            response = await self._owner.serve_delivery(request, record)
        else:
            response = web.json_response({"detail": "Not Found"}, status=404)
            record.status = 404
        self._owner.changed()
        return response


class FakeBfl:
    """The fake BFL API. Use ``async with FakeBfl() as bfl:`` or ``await start()`` / ``await close()``.

    Attributes tests read: ``url``, ``api_key``, ``credits``, ``submits``, ``polls``, ``downloads``,
    ``unhandled``, ``schema_errors``, ``tasks``, ``active_tasks``, ``max_active_seen``,
    ``max_active_seen_by_model``, ``delivery_host``. Attributes tests set: ``default`` (the
    :class:`Behaviour` when the script queue is empty), ``max_active``, ``max_active_kontext_max``.
    ``random`` (seeded by ``seed``) draws each time-based task's ``run_jitter``.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        credits: Decimal | int | str = Decimal(1000),
        max_active: int = 24,
        max_active_kontext_max: int = 6,
        seed: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.random = random.Random(seed)
        self.credits = Decimal(credits)
        self.max_active = max_active
        self.max_active_kontext_max = max_active_kontext_max
        self.default = Behaviour()
        self.submits: list[SubmitRecord] = []
        self.polls: list[PollRecord] = []
        self.downloads: list[DownloadRecord] = []
        self.unhandled: list[tuple[str, str]] = []
        self.schema_errors: list[SchemaViolation] = []
        self.tasks: dict[str, FakeTask] = {}
        self.max_active_seen = 0
        self.max_active_seen_by_model: dict[str, int] = {}
        self.delivery_host = FakeDeliveryHost(self)
        self._script: deque[Behaviour] = deque()
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url = ""

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if not self._url:
            raise RuntimeError("FakeBfl is not started")
        return self._url

    async def start(self) -> None:
        """Bind both servers to 127.0.0.1 on free ports. Also compiles the spec (cached)."""
        generation_routes()
        await self.delivery_host.start()
        app = web.Application()
        for model in generation_routes():
            app.router.add_post(f"/v1/{model}", self._submit)
        app.router.add_get("/v1/get_result", self._poll)
        app.router.add_get("/regional/v1/get_result", self._poll)
        app.router.add_get("/v1/credits", self._credits)
        app.router.add_get("/delivery/{name}", self._delivery)
        app.router.add_get("/redirect/{name}", self._redirect)
        app.router.add_route("*", "/{tail:.*}", self._unhandled)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        """Release hung requests and stop both servers."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.delivery_host.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- scripting ---------------------------------------------------------------------------------

    def script(self, *behaviours: Behaviour, times: int = 1) -> None:
        """Queue behaviours for the next submits (each repeated ``times``); then ``default`` applies.

        A behaviour is consumed by every submit that passes auth and schema validation, including
        ones answered with a scripted error.
        """
        for behaviour in behaviours:
            self._script.extend([behaviour] * times)

    def fail_submits(self, status: int, *, times: int = 1, retry_after: str | None = None, body: Any = None) -> None:
        """Answer the next ``times`` submits with HTTP ``status``."""
        self.script(Behaviour(submit_status=status, retry_after=retry_after, submit_body=body), times=times)

    def expire_delivery(self, task_id: str) -> None:
        """Make a task's signed URL expired from now on (downloads get 403)."""
        task = self.tasks[task_id]
        task.behaviour = replace(task.behaviour, delivery_ttl=0)
        task.ready_at = task.ready_at if task.ready_at is not None else self.now()

    # -- observing ---------------------------------------------------------------------------------

    @property
    def active_tasks(self) -> int:
        """Tasks accepted and not yet finished (see the module docstring for the rule)."""
        now = self.now()
        return sum(1 for task in self.tasks.values() if task.is_active(now))

    def active_for(self, model: str) -> int:
        """Active tasks of one model."""
        now = self.now()
        return sum(1 for task in self.tasks.values() if task.model == model and task.is_active(now))

    def now(self) -> float:
        """The event loop's clock (the times in records)."""
        return asyncio.get_running_loop().time()

    def changed(self) -> None:
        """Wake everything waiting in :meth:`wait_for` (called on every state change)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true, re-checking on every state change of the fake."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"FakeBfl: condition not met within {timeout}s") from None

    def submit_statuses(self) -> list[int | None]:
        """The HTTP status answered to each submit, in order."""
        return [record.status for record in self.submits]

    # -- handlers ----------------------------------------------------------------------------------

    def _key_ok(self, request: web.Request) -> bool:
        return secrets.compare_digest(request.headers.get("x-key", ""), self.api_key)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` (simulated server work), cut short when the fake closes."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        model = request.path.removeprefix("/v1/")
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        record = SubmitRecord(
            model=model,
            body=body,
            headers=_record_headers(request),
            key_ok=self._key_ok(request),
            time=self.now(),
        )
        self.submits.append(record)
        self.changed()
        try:
            return await self._answer_submit(request, record, model, body)
        finally:
            self.changed()

    async def _answer_submit(
        self, request: web.Request, record: SubmitRecord, model: str, body: Any
    ) -> web.StreamResponse:
        if not record.key_ok:
            return _answer(record, web.json_response({"detail": "Not authenticated"}, status=403))
        detail = validate_body(model, body)
        if detail:
            self.schema_errors.append(SchemaViolation(model=model, body=body, detail=detail))
            return _answer(record, web.json_response({"detail": detail}, status=422))
        behaviour = self._script.popleft() if self._script else self.default
        await self._pause(behaviour.latency)
        if behaviour.submit_status is not None:
            return _answer(record, _error_response(behaviour.submit_status, behaviour))
        limit = self.max_active_kontext_max if model == "flux-kontext-max" else self.max_active
        if self.active_tasks >= self.max_active or self.active_for(model) >= limit:
            return _answer(
                record,
                web.json_response({"detail": "Too many active tasks. Wait for a task to finish."}, status=429),
            )
        width, height = output_size(model, body)
        inputs = input_pixels(body)
        auto = price_credits(model, width, height, inputs)
        cost = auto if behaviour.cost in ("auto", None) else Decimal(str(behaviour.cost))
        if cost > self.credits:
            return _answer(record, web.json_response({"detail": "Insufficient credits"}, status=402))
        task = self._create_task(model, body, behaviour, width, height, cost)
        record.task_id = task.id

        if behaviour.hang:
            await self._closing.wait()  # the client gives up first; the task exists and is billed
            return _answer(record, web.json_response({"detail": "fake closed"}, status=503))
        if behaviour.disconnect:
            if request.transport is not None:
                request.transport.close()
            return _answer(record, web.Response(status=200), status=0)
        if behaviour.malformed_response:
            return _answer(record, web.Response(status=200, text="<html>gateway says hi</html>"))
        if behaviour.submit_status_after_create is not None:
            return _answer(record, _error_response(behaviour.submit_status_after_create, behaviour))

        answer: dict[str, Any] = {"id": task.id}
        if behaviour.webhook_response:
            answer.update(status="Pending", webhook_url="https://example.invalid/hook")
        else:
            answer["polling_url"] = behaviour.polling_url.format(
                base=self.url, other=self.delivery_host.url, id=task.id
            )
        if behaviour.cost is not None:
            answer["cost"] = float(cost)
            answer["input_mp"] = float((Decimal(sum(inputs)) / 1_000_000).quantize(Decimal("0.01")))
            answer["output_mp"] = float((Decimal(width * height) / 1_000_000).quantize(Decimal("0.01")))
        return _answer(record, web.json_response(answer))

    def _create_task(
        self, model: str, body: dict[str, Any], behaviour: Behaviour, width: int, height: int, cost: Decimal
    ) -> FakeTask:
        props = generation_routes()[model].schema.get("properties", {})
        fmt_default = props.get("output_format", {}).get("default") or "jpeg"
        seed = body.get("seed")
        task = FakeTask(
            id=str(uuid.uuid4()),
            model=model,
            body=body,
            behaviour=behaviour,
            created_at=self.now(),
            width=width,
            height=height,
            output_format=body.get("output_format") or fmt_default,
            cost=cost,
            seed=seed if isinstance(seed, int) else random.randrange(2**31),
            signature=secrets.token_hex(16),
            poll_errors=deque(behaviour.poll_errors),
            delivery_errors=deque(behaviour.delivery_errors),
            pending_left=behaviour.pending_polls,
        )
        if behaviour.run_seconds is not None:
            stretch = 1.0 + behaviour.run_jitter * (2.0 * self.random.random() - 1.0)
            task.ready_at = task.created_at + behaviour.run_seconds * stretch
        self.tasks[task.id] = task
        self.credits -= cost
        self.max_active_seen = max(self.max_active_seen, self.active_tasks)
        self.max_active_seen_by_model[model] = max(self.max_active_seen_by_model.get(model, 0), self.active_for(model))
        return task

    async def _poll(self, request: web.Request) -> web.StreamResponse:
        task_id = request.query.get("id")
        record = PollRecord(
            task_id=task_id,
            path_qs=request.raw_path,
            headers=_record_headers(request),
            key_ok=self._key_ok(request),
            time=self.now(),
        )
        self.polls.append(record)
        try:
            return self._answer_poll(record, task_id)
        finally:
            self.changed()

    def _answer_poll(self, record: PollRecord, task_id: str | None) -> web.StreamResponse:
        if not record.key_ok:
            record.status = 403
            return web.json_response({"detail": "Not authenticated"}, status=403)
        if not task_id:
            record.status = 422
            detail = [{"loc": ["query", "id"], "msg": "Field required", "type": "missing"}]
            return web.json_response({"detail": detail}, status=422)
        task = self.tasks.get(task_id)
        if task is None:
            return self._status_answer(record, {"id": task_id, "status": "Task not found"})
        task.polls += 1
        if task.poll_errors:
            status = task.poll_errors.popleft()
            record.status = status
            if status == 202:
                return web.json_response({"id": task.id, "status": "Pending"}, status=202)
            retry = task.behaviour.poll_retry_after
            headers = {"Retry-After": retry} if retry is not None else None
            return web.json_response({"detail": f"fake poll error {status}"}, status=status, headers=headers)
        behaviour = task.behaviour
        now = record.time
        if task.time_based:
            assert task.ready_at is not None
            if now < task.ready_at:
                duration = task.ready_at - task.created_at
                fraction = (now - task.created_at) / duration if duration > 0 else 1.0
                stage = behaviour.stages[min(int(fraction * len(behaviour.stages)), len(behaviour.stages) - 1)]
                progress = math.floor(fraction * 100) / 100  # 0.999 is not "1.0" (done)
                return self._status_answer(record, _result_body(task, stage, progress=progress))
        elif not task.finished:
            if behaviour.release is not None and not behaviour.release.is_set():
                return self._status_answer(record, _result_body(task, "Pending"))
            if task.pending_left > 0:
                task.pending_left -= 1
                task.pending_answered += 1
                progress = round(task.pending_answered / (behaviour.pending_polls + 1), 2)
                return self._status_answer(record, _result_body(task, "Pending", progress=progress))
            task.ready_at = now
        task.finished = True
        if task.ready_answered_at is None:
            task.ready_answered_at = now
        status = behaviour.final_status
        answer = _result_body(task, status)
        if status == "Ready" and not behaviour.omit_sample:
            answer["result"] = {
                "sample": self.sample_url(task),
                "prompt": expanded_prompt(task.model, task.body.get("prompt")),
                "seed": task.seed,
            }
        elif status in ("Request Moderated", "Content Moderated"):
            answer["details"] = behaviour.details or {"Moderation Reasons": ["Derivative Works Filter"]}
        elif status == "Ready":
            answer["result"] = {"prompt": task.body.get("prompt")}
        if status == "Ready" and behaviour.ready_cost is not None:
            settled = task.cost if behaviour.ready_cost == "auto" else Decimal(str(behaviour.ready_cost))
            answer["cost"] = float(settled)
        return self._status_answer(record, answer, http_status=behaviour.final_http_status)

    def _status_answer(self, record: PollRecord, answer: dict[str, Any], *, http_status: int = 200) -> web.Response:
        record.status = http_status
        record.task_status = answer["status"]
        return web.json_response(answer, status=http_status)

    def sample_url(self, task: FakeTask) -> str:
        """The signed URL a Ready task reports (direct or via the redirect route)."""
        route = "redirect" if task.behaviour.delivery == "redirect" else "delivery"
        # Shaped like an Azure SAS URL, with percent-escapes a client must not re-encode.
        query = f"se=2030-01-01T00%3A00%3A00Z&sp=r&rsct=image%2F{task.ext}&sig={task.signature}"
        return f"{self.url}/{route}/{task.id}.{task.ext}?{query}"

    async def _credits(self, request: web.Request) -> web.StreamResponse:
        if not self._key_ok(request):
            return web.json_response({"detail": "Not authenticated"}, status=403)
        return web.json_response({"credits": float(self.credits)})

    async def _delivery(self, request: web.Request) -> web.StreamResponse:
        record = DownloadRecord(
            task_id=None,
            host="bfl",
            path_qs=request.raw_path,
            headers=_record_headers(request),
            time=self.now(),
        )
        self.downloads.append(record)
        try:
            return await self.serve_delivery(request, record)
        finally:
            self.changed()

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        record = DownloadRecord(
            task_id=name.split(".")[0],
            host="bfl",
            path_qs=request.raw_path,
            headers=_record_headers(request),
            time=self.now(),
            status=302,
        )
        self.downloads.append(record)
        task = self.tasks.get(record.task_id or "")
        if task is not None and task.downloaded_at is None:
            task.downloaded_at = record.time
        self.changed()
        location = f"{self.delivery_host.url}/delivery/{name}?{request.query_string}"
        return web.Response(status=302, headers={"Location": location})

    async def serve_delivery(self, request: web.Request, record: DownloadRecord) -> web.StreamResponse:
        """Serve ``/delivery/<task>.<ext>`` like a signed-URL blob store (used by both hosts)."""
        name = request.path.rsplit("/", 1)[-1]
        task_id, _, ext = name.partition(".")
        record.task_id = task_id
        task = self.tasks.get(task_id)
        if task is not None and task.downloaded_at is None:
            task.downloaded_at = record.time
        if task is None or ext != task.ext or task.ready_at is None or self.now() < task.ready_at:
            record.status = 404
            return web.Response(status=404, text="BlobNotFound")
        if not secrets.compare_digest(request.query.get("sig", ""), task.signature):
            record.status = 403
            return web.Response(status=403, text="AuthenticationFailed: signature mismatch")
        ttl = task.behaviour.delivery_ttl
        if ttl is not None and self.now() >= task.ready_at + ttl:
            record.status = 403
            return web.Response(status=403, text="AuthenticationFailed: Signed expiry time has passed")
        if task.delivery_errors:
            record.status = task.delivery_errors.popleft()
            return web.Response(status=record.status, text="fake delivery error")
        if task.image is None:
            task.image = await asyncio.to_thread(render_image, task.width, task.height, task.output_format, task.seed)
        record.status = 200
        content_type = _CONTENT_TYPES[task.output_format]
        if not task.behaviour.delivery_chunked:
            return web.Response(body=task.image, content_type=content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(task.image), 16 * 1024):
            await response.write(task.image[start : start + 16 * 1024])
        await response.write_eof()
        return response

    async def _unhandled(self, request: web.Request) -> web.StreamResponse:
        self.unhandled.append((request.method, request.raw_path))
        self.changed()
        return web.json_response({"detail": "Not Found"}, status=404)


# -- small helpers -----------------------------------------------------------------------------------


def _answer(record: SubmitRecord, response: web.StreamResponse, *, status: int | None = None) -> web.StreamResponse:
    record.status = response.status if status is None else status
    return response


_DEFAULT_ERROR_BODIES: dict[int, Any] = {
    400: {"detail": "Bad request"},
    402: {"detail": "Insufficient credits. Add credits at https://dashboard.bfl.ai"},
    403: {"detail": "Not authenticated"},
    422: {
        "detail": [
            {
                "loc": ["body", "prompt"],
                "msg": "String should have at most 32000 characters",
                "type": "string_too_long",
            }
        ]
    },
    429: {"detail": "Too many active tasks. Wait for a task to finish."},
    500: {"detail": "Internal Server Error"},
    502: "<html><body><h1>502 Bad Gateway</h1></body></html>",
    504: "<html><body><h1>504 Gateway Time-out</h1></body></html>",
}


def _error_response(status: int, behaviour: Behaviour) -> web.Response:
    headers = dict(behaviour.submit_headers)
    if behaviour.retry_after is not None:
        headers["Retry-After"] = behaviour.retry_after
    body = behaviour.submit_body
    if body is None:
        body = _DEFAULT_ERROR_BODIES.get(status, "Service Unavailable" if status == 503 else f"HTTP {status}")
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=headers)
    return web.json_response(body, status=status, headers=headers)


def expanded_prompt(model: str, prompt: Any) -> Any:
    """``result.prompt``: FLUX 3 answers the prompt as it expanded it; the others echo it."""
    if model == FLUX3_MODEL and isinstance(prompt, str):
        return f"{prompt}, rendered in soft natural light with a shallow depth of field (expanded by FLUX 3)"
    return prompt


def _result_body(task: FakeTask, status: str, *, progress: float | None = None) -> dict[str, Any]:
    return {
        "id": task.id,
        "status": status,
        "result": None,
        "progress": progress,
        "details": None,
        "preview": None,
    }
