"""A fake Black Forest Labs API on loopback, for tests that exercise the real HTTP client.

``FakeBfl`` serves the parts of the BFL protocol the bot uses (see ``shared/reference/bfl-api.md``):

* ``POST /v1/<model>`` for every image generation route of BFL's 2026 OpenAPI spec
  (``tests/specs/bfl-openapi-2026.json``), and of its FLUX Tools ``/v1/flux-tools/deblur-v1``
  (``TOOL_ROUTES``: the input image's size back, billed at [klein] 9B's rates since BFL publishes no
  price), ``/v1/flux-tools/outpainting-v1`` (the canvas asked for, ≤ 4 MP with the reference inside
  it unless ``auto_crop``, billed at 10 credits per canvas megapixel: no published price either), and
  the FLUX.2 [klein] 4B/9B LoRA routes ``/v1/flux-2-klein-{4b,9b}-finetuned``
  (``LORA_ROUTES``, validated against their own reconstructed schema files; a ``finetune_id`` not in
  ``FakeBfl.finetunes`` is answered 404 ``Finetune not found or not ready`` with no task; billed a little
  over the base's rates). Each body is validated against the route's request schema (JSON Schema
  2020-12), unknown properties are rejected, and documented limits the schema cannot express (aspect
  ratio range, FLUX.2 and deblur inputs ≤ 4 MP, FLUX 3's prompt length and image count) are checked.
  Violations get a FastAPI-style 422 and are recorded in ``schema_errors``, which tests assert empty.
* ``GET /v1/get_result?id=`` (its query validated against the spec too), ``GET
  /regional/v1/get_result?id=`` (an alternate polling path, so tests prove the client polls
  ``polling_url`` exactly as returned) and ``GET /moved/v1/get_result?id=`` (where a same-origin
  poll redirect points). Polls can be answered ``Task not found`` first, 5xx with or without an
  ``Error`` body, or redirected to this origin or another (see :class:`Behaviour`).
* ``GET /v1/credits``.
* ``GET /delivery/<task id>.<ext>?se=…&sig=…``: a real image rendered with Pillow at the requested
  size, in the requested ``output_format``; the signature must match and the URL can expire (403).
* ``GET /redirect/<task id>.<ext>``: a 302 to a second server, :class:`FakeDeliveryHost`, on another
  port ("another host"), which records the headers it receives (it also answers redirected polls).

Every request is recorded (``submits``, ``polls``, ``downloads``, ``unhandled``) with its headers,
secrets masked, so tests can assert where ``x-key`` went. State changes wake :meth:`FakeBfl.wait_for`,
so tests never sleep to synchronise.

Behaviour is scripted per submit: a FIFO queue of :class:`Behaviour` objects, then ``default``::

    async with FakeBfl() as bfl:
        bfl.script(Behaviour(submit_status=429), times=2)   # two 429s, then the default
        bfl.script(Behaviour(pending_polls=3))               # then a task that is Pending 3 times
        bfl.script(Behaviour(run_seconds=3.0, stages=("Pending", "Reasoning", "Generating")))
        bfl.default = Behaviour(final_status="Content Moderated")

Faults at random, reproducibly: ``bfl.behaviour_source = RandomBflFaults(seed, BflFaultRates(...))``
draws, per submit, a 429 (with ``Retry-After``), a 5xx before or after the task is created, ``Task not
found`` for the first polls, poll 5xx with or without ``{"status": "Error"}``, request or content
moderation, an ``Error`` status or a slow task — from an RNG keyed by the seed, the request (prompt
and seed) and the attempt, so the same request meets the same fault whatever order submits arrive in.

**Billing** is exact: every created task is billed its price at creation, whatever happens next
(``Content Moderated`` included, as BFL does), and recorded in ``charges`` (:class:`Charge`, with
``micros``); ``billed_micros()`` sums them, so a test can compare a ledger to the micro-dollar.

A task advances either per poll (``pending_polls``, ``release``) or by the clock (``run_seconds``):
a time-based task reports its ``stages`` in turn as time passes and is finished at ``ready_at``,
fixed when it is created, whether or not anyone polls. Each task records ``polls``,
``ready_answered_at`` (the first poll that answered its final status) and ``downloaded_at`` (the
first request for its image), so a benchmark can measure how late a client noticed.

**Active tasks** (the 24-task cap, ``active_tasks``): a task is active from creation until it
finishes: for a per-poll task, the poll that answers its final status; for a time-based task, its
``ready_at`` moment.

Layout (import everything from this package): ``server`` (:class:`FakeBfl`, :class:`FakeDeliveryHost`)
composed from ``submit`` and ``results``; ``behaviour`` (scripting, tasks, records), ``validation``
(spec and request rules), ``pricing`` (prices, output sizes), ``images`` and ``constants``.
"""

from tests.fakes.fake_bfl.behaviour import (
    Behaviour,
    Charge,
    DownloadRecord,
    FakeTask,
    PollRecord,
    SchemaViolation,
    SubmitRecord,
)
from tests.fakes.fake_bfl.constants import (
    DEFAULT_API_KEY,
    DEFAULT_POLLING,
    DEFAULT_SPEC_PATH,
    FLUX2_MAX_PIXELS,
    FLUX3_INPUT_MAX_PIXELS,
    FLUX3_INPUT_MIN_SIDE,
    FLUX3_MODEL,
    FLUX3_SPEC_PATH,
    FLUX3_STAGES,
    FLUX3_TIER_PIXELS,
    FOREIGN_POLLING,
    KNOWN_FINETUNES,
    LORA_ROUTES,
    MASK,
    MOVED_POLLING_PATH,
    REGIONAL_POLLING,
    REPO_ROOT,
    SPEC_2026_04_PATH,
    TERMINAL_STATUSES,
    TOOL_ROUTES,
    VIDEO_MAX_ACTIVE,
    VIDEO_MODEL,
    VIDEO_SECOND_PRICES,
    VIDEO_SPEC_PATH,
    VIDEO_STAGES,
)
from tests.fakes.fake_bfl.faults import BflFaultRates, RandomBflFaults
from tests.fakes.fake_bfl.images import render_image
from tests.fakes.fake_bfl.pricing import (
    FLAT_PRICES,
    FLUX3_TIER_PRICES,
    MEGAPIXEL_PRICES,
    input_pixels,
    output_size,
    price_credits,
    video_credits,
)
from tests.fakes.fake_bfl.results import expanded_prompt
from tests.fakes.fake_bfl.server import FakeBfl, FakeDeliveryHost
from tests.fakes.fake_bfl.validation import (
    RouteSchema,
    generation_routes,
    load_spec,
    spec_path,
    validate_body,
    validate_query,
)
from tests.fakes.fake_bfl.video import mp4_facts, render_mp4

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_POLLING",
    "DEFAULT_SPEC_PATH",
    "FLAT_PRICES",
    "FLUX2_MAX_PIXELS",
    "FLUX3_INPUT_MAX_PIXELS",
    "FLUX3_INPUT_MIN_SIDE",
    "FLUX3_MODEL",
    "FLUX3_SPEC_PATH",
    "FLUX3_STAGES",
    "FLUX3_TIER_PIXELS",
    "FLUX3_TIER_PRICES",
    "FOREIGN_POLLING",
    "KNOWN_FINETUNES",
    "LORA_ROUTES",
    "MASK",
    "MEGAPIXEL_PRICES",
    "MOVED_POLLING_PATH",
    "REGIONAL_POLLING",
    "REPO_ROOT",
    "SPEC_2026_04_PATH",
    "TERMINAL_STATUSES",
    "TOOL_ROUTES",
    "VIDEO_MAX_ACTIVE",
    "VIDEO_MODEL",
    "VIDEO_SECOND_PRICES",
    "VIDEO_SPEC_PATH",
    "VIDEO_STAGES",
    "Behaviour",
    "BflFaultRates",
    "Charge",
    "DownloadRecord",
    "FakeBfl",
    "FakeDeliveryHost",
    "FakeTask",
    "PollRecord",
    "RandomBflFaults",
    "RouteSchema",
    "SchemaViolation",
    "SubmitRecord",
    "expanded_prompt",
    "generation_routes",
    "input_pixels",
    "load_spec",
    "mp4_facts",
    "output_size",
    "price_credits",
    "render_image",
    "render_mp4",
    "spec_path",
    "validate_body",
    "validate_query",
    "video_credits",
]
