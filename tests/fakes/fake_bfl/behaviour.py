"""Scripting the fake BFL (:class:`Behaviour`), its tasks and what it records."""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web

from tests.fakes.fake_bfl.constants import (
    _SECRET_HEADERS,
    DEFAULT_POLLING,
    MASK,
)

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

    * ``poll_redirect``: every poll of the task is answered 302 first: ``"same"`` to this fake under
      another path (``MOVED_POLLING_PATH``), ``"other"`` to :class:`FakeDeliveryHost` (another
      origin, which answers the poll without asking for the key), ``"loop"`` to the same URL again.
    * ``not_found_polls``: the first polls answer ``Task not found`` (BFL has not registered the task
      yet), with HTTP ``not_found_http`` (200 with the status body, or 404).
    * ``poll_errors``: HTTP statuses for the next polls (e.g. ``(503, 202)``), before anything else.
      They carry a ``{"detail": ...}`` body (202: a Pending body), i.e. they are transient;
      ``poll_error_body`` replaces that body (a ``str`` is sent as HTML, a ``dict`` as JSON, e.g.
      ``{"status": "Error"}``); ``poll_retry_after`` adds a ``Retry-After`` header to them.
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
      stream the image without a ``Content-Length``; ``video_padding``: bytes added to a video's MP4 (one over
      Discord's upload limit).
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
    poll_redirect: Literal["same", "other", "loop"] | None = None
    not_found_polls: int = 0
    not_found_http: int = 200
    poll_errors: tuple[int, ...] = ()
    poll_error_body: Any = None
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
    video_padding: int = 0

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
    """One request to a get_result route, on this fake (``host="bfl"``) or the delivery host (``"other"``)."""

    task_id: str | None
    path_qs: str  # raw, exactly as requested
    headers: dict[str, str]  # lower-case names; secret values masked (so "x-key" in headers: it was sent)
    key_ok: bool
    time: float
    status: int | None = None  # HTTP status
    task_status: str | None = None  # the "status" field answered, if any
    host: Literal["bfl", "other"] = "bfl"


@dataclass
class DownloadRecord:
    """One request for a result image, on this fake (``host="bfl"``) or the delivery host (``"other"``)."""

    task_id: str | None
    host: Literal["bfl", "other"]
    path_qs: str  # raw, exactly as requested
    headers: dict[str, str]
    time: float
    status: int | None = None

    @classmethod
    def of(
        cls, request: web.Request, host: Literal["bfl", "other"], now: float, task_id: str | None = None
    ) -> DownloadRecord:
        """The record of ``request``, secret headers masked; ``status`` is filled in once it is answered."""
        return cls(task_id=task_id, host=host, path_qs=request.raw_path, headers=_record_headers(request), time=now)


@dataclass(frozen=True)
class Charge:
    """What the fake billed for one task, the moment it created it (every created task is billed).

    ``credits`` is BFL's unit (1 credit = $0.01); :attr:`micros` the same amount in micro-dollars.
    """

    task_id: str
    model: str
    credits: Decimal
    time: float

    @property
    def micros(self) -> int:
        """The charge in micro-dollars (1 credit = 10,000 µ$), exact."""
        micros = self.credits * 10_000
        if micros != micros.to_integral_value():
            raise ValueError(f"{self.credits} credits is not a whole number of micro-dollars")
        return int(micros)


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
    not_found_left: int = 0
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
    def picture(self) -> int:
        """What its image is drawn from: the seed, and for a tool working on one image (deblur's ``image``,
        outpainting's ``input_image``) that image too, so a tool's result never equals its input (as a text-to-image
        result of the same seed and size would)."""
        image = self.body.get("input_image" if self.model == "flux-tools/outpainting-v1" else "image")
        return self.seed if not isinstance(image, str) else zlib.crc32(image.encode(), self.seed)

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
