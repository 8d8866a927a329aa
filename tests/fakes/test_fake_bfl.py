"""The fake BFL server itself: spec validation, prices, images, caps, records (raw aiohttp, no client)."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.fakes.fake_bfl import (
    DEFAULT_SPEC_PATH,
    FLUX3_STAGES,
    MOVED_POLLING_PATH,
    SPEC_2026_04_PATH,
    TERMINAL_STATUSES,
    Behaviour,
    FakeBfl,
    generation_routes,
    input_pixels,
    price_credits,
    spec_path,
)

DEBLUR = "flux-tools/deblur-v1"
VIDEO = "flux-3-video"
OUTPAINT = "flux-tools/outpainting-v1"


def png_base64(width: int = 320, height: int = 256) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# A minimal valid body per schema family (fill/expand require an image; deblur takes nothing else).
def minimal_body(model: str) -> dict[str, Any]:
    if model == DEBLUR:
        return {"image": png_base64()}
    if model == VIDEO:
        return {"mode": "i2v", "prompt": "a frame", "keyframes": png_base64()}
    if model == OUTPAINT:
        return {"input_image": png_base64(), "width": 480, "height": 384}
    if "fill" in model or "expand" in model:
        body: dict[str, Any] = {"image": png_base64(), "prompt": "a frame"}
    else:
        body = {"prompt": "a frame"}
    if "finetuned" in model:
        body["finetune_id"] = "fluxcord-house"  # on the fake's account (KNOWN_FINETUNES; the FLUX.1 routes take any)
    return body


@pytest.fixture
async def http(fake_bfl: FakeBfl) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=fake_bfl.url, headers={"x-key": fake_bfl.api_key}) as session:
        yield session


async def submit(http: aiohttp.ClientSession, model: str, body: Any) -> tuple[int, Any]:
    async with http.post(f"/v1/{model}", json=body) as resp:
        return resp.status, await resp.json()


async def poll_until_terminal(http: aiohttp.ClientSession, polling_url: str) -> dict[str, Any]:
    for _ in range(50):
        async with http.get(polling_url) as resp:
            answer = await resp.json()
        if answer["status"] in TERMINAL_STATUSES:
            return answer
    raise AssertionError("task never finished")


async def poll_through(http: aiohttp.ClientSession, polling_url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Poll back to back (no sleeping) until a terminal status; every answer, with its HTTP status."""
    answers: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not answers or answers[-1]["status"] not in TERMINAL_STATUSES:
            async with http.get(polling_url) as resp:
                answers.append({**await resp.json(), "http": resp.status})
    return answers


def test_spec_has_the_documented_generation_routes() -> None:
    """Every generation route of bfl-api.md §2 is served (from the spec, not a hand list)."""
    assert {
        "flux-pro-1.1",
        "flux-pro-1.1-ultra",
        "flux-dev",
        "flux-kontext-pro",
        "flux-kontext-max",
        "flux-pro-1.0-fill",
        "flux-pro-1.0-expand",
        "flux-2-pro",
        "flux-2-pro-preview",
        "flux-2-max",
        "flux-2-flex",
        "flux-2-klein-4b",
        "flux-2-klein-9b",
        "flux-2-klein-9b-preview",
        DEBLUR,  # the one FLUX Tools route the bot uses (Sharpen)
        VIDEO,  # FLUX 3 video (Animate)
        DEBLUR,  # the FLUX Tools routes the bot uses: Sharpen
        OUTPAINT,  # and Zoom out / the pans
    } <= set(generation_routes())


def test_spec_path_default_and_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The spec is found next to the repo unless BFL_OPENAPI_SPEC points elsewhere."""
    monkeypatch.delenv("BFL_OPENAPI_SPEC", raising=False)
    assert spec_path() == DEFAULT_SPEC_PATH
    assert DEFAULT_SPEC_PATH.is_file()
    monkeypatch.setenv("BFL_OPENAPI_SPEC", str(tmp_path / "spec.json"))
    assert spec_path() == tmp_path / "spec.json"


@pytest.mark.parametrize("model", sorted(generation_routes()))
async def test_every_route_accepts_a_minimal_valid_body(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession, model: str
) -> None:
    """A valid body is accepted with id, polling_url and the model's price, and the task is active."""
    status, answer = await submit(http, model, minimal_body(model))
    assert status == 200, answer
    assert answer["polling_url"] == f"{fake_bfl.url}/v1/get_result?id={answer['id']}"
    task = fake_bfl.tasks[answer["id"]]
    inputs = input_pixels(task.body)
    assert Decimal(str(answer["cost"])) == task.cost == price_credits(model, task.width, task.height, inputs)
    assert fake_bfl.credits == Decimal(1000) - task.cost
    assert fake_bfl.active_tasks == 1
    assert fake_bfl.schema_errors == []


@pytest.mark.parametrize(
    ("model", "body", "loc", "type_"),
    [
        (
            "flux-pro-1.1",
            {"prompt": "x", "aspect_ratio": "16:9"},
            ["body", "aspect_ratio"],
            "extra_forbidden",
        ),
        ("flux-pro-1.1", {"prompt": "x", "steps": 30}, ["body", "steps"], "extra_forbidden"),
        ("flux-pro-1.1", {"prompt": "x", "width": 2048}, ["body", "width"], "less_than_equal"),
        ("flux-pro-1.1", {"prompt": "x", "width": 1000}, ["body", "width"], "multiple_of"),
        ("flux-dev", {"prompt": "x", "steps": 0}, ["body", "steps"], "greater_than_equal"),
        ("flux-2-pro", {"width": 1024}, ["body", "prompt"], "missing"),
        (
            "flux-2-pro",
            {"prompt": "x", "safety_tolerance": 6},
            ["body", "safety_tolerance"],
            "less_than_equal",
        ),
        ("flux-2-pro", {"prompt": "x", "width": 4096, "height": 4096}, ["body"], "value_error"),
        (
            "flux-2-klein-4b",
            {"prompt": "x", "input_image_5": "abc"},
            ["body", "input_image_5"],
            "extra_forbidden",
        ),
        ("flux-kontext-pro", {"prompt": "x", "aspect_ratio": "4:1"}, ["body", "aspect_ratio"], "value_error"),
        ("flux-kontext-pro", {"prompt": "x", "output_format": "gif"}, ["body", "output_format"], "enum"),
        (DEBLUR, {"image": png_base64(), "prompt": "x"}, ["body", "prompt"], "extra_forbidden"),
        (DEBLUR, {"seed": 1}, ["body", "image"], "missing"),
        (DEBLUR, {"image": png_base64(), "safety_tolerance": 6}, ["body", "safety_tolerance"], "less_than_equal"),
        (DEBLUR, {"image": png_base64(), "width": 64}, ["body", "width"], "extra_forbidden"),
        (DEBLUR, {"image": png_base64(2049, 2048)}, ["body", "image"], "value_error"),  # over 4 MP (2048²)
        (DEBLUR, {"image": "bm90IGFuIGltYWdl"}, ["body", "image"], "value_error"),
        (OUTPAINT, {"input_image": png_base64(), "width": 480}, ["body", "height"], "missing"),
        (OUTPAINT, {"input_image": png_base64(), "width": 480, "height": 384, "seed": 1}, ["body"], "extra_forbidden"),
        (OUTPAINT, {"input_image": png_base64(), "width": 63, "height": 384}, ["body", "width"], "greater_than_equal"),
        (OUTPAINT, {"input_image": png_base64(), "width": 2064, "height": 2048}, ["body", "width"], "value_error"),
        (
            OUTPAINT,  # 320×256 at x=200 overhangs a 480-wide canvas
            {"input_image": png_base64(), "width": 480, "height": 384, "reference_offset_x": 200},
            ["body", "reference_offset_x"],
            "value_error",
        ),
        (
            OUTPAINT,
            {"input_image": png_base64(), "width": 480, "height": 384, "reference_offset_y": -1},
            ["body", "reference_offset_y"],
            "value_error",
        ),
    ],
)
async def test_invalid_bodies_get_422_and_are_recorded(
    fake_bfl: FakeBfl,
    http: aiohttp.ClientSession,
    model: str,
    body: dict[str, Any],
    loc: list[Any],
    type_: str,
) -> None:
    """Schema violations (unknown fields, ranges, documented limits) answer a FastAPI-style 422."""
    status, answer = await submit(http, model, body)
    assert status == 422
    assert answer["detail"][0]["loc"] == loc
    assert answer["detail"][0]["type"] == type_
    assert answer["detail"][0]["msg"]
    assert len(fake_bfl.schema_errors) == 1
    assert fake_bfl.schema_errors[0].model == model
    assert fake_bfl.schema_errors[0].body == body
    assert fake_bfl.tasks == {}


async def test_non_object_body_is_422(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """A JSON array instead of an object is rejected."""
    status, answer = await submit(http, "flux-dev", ["prompt"])
    assert status == 422
    assert answer["detail"][0]["loc"] == ["body"]
    assert len(fake_bfl.schema_errors) == 1


@pytest.mark.parametrize("headers", [{}, {"x-key": "wrong"}])
async def test_missing_or_wrong_key_is_403(fake_bfl: FakeBfl, headers: dict[str, str]) -> None:
    """Without the right x-key every API route answers 403 Not authenticated."""
    async with aiohttp.ClientSession(base_url=fake_bfl.url, headers=headers) as session:
        async with session.post("/v1/flux-dev", json={"prompt": "x"}) as resp:
            assert resp.status == 403
            assert await resp.json() == {"detail": "Not authenticated"}
        async with session.get("/v1/get_result", params={"id": "x"}) as resp:
            assert resp.status == 403
        async with session.get("/v1/credits") as resp:
            assert resp.status == 403
    assert fake_bfl.tasks == {}
    assert [s.key_ok for s in fake_bfl.submits] == [False]


async def test_records_mask_the_key(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """Recorded headers show that x-key was sent, never its value."""
    await submit(http, "flux-dev", {"prompt": "x"})
    record = fake_bfl.submits[0]
    assert record.headers["x-key"] == "<redacted>"
    assert record.key_ok
    assert record.model == "flux-dev"
    assert record.body == {"prompt": "x"}


async def test_scripted_queue_then_default(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """Scripted behaviours apply in order to successive submits, then the default."""
    fake_bfl.fail_submits(429, times=2, retry_after="3")
    fake_bfl.script(Behaviour(submit_status=503))
    statuses = []
    for _ in range(4):
        async with http.post("/v1/flux-dev", json={"prompt": "x"}) as resp:
            statuses.append((resp.status, resp.headers.get("Retry-After")))
    assert statuses == [(429, "3"), (429, "3"), (503, None), (200, None)]
    assert fake_bfl.submit_statuses() == [429, 429, 503, 200]


async def test_pending_then_ready_then_delivery(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """A task is Pending with rising progress, then Ready with a signed URL serving a real image."""
    fake_bfl.script(Behaviour(pending_polls=2))
    _, answer = await submit(
        http, "flux-pro-1.1-ultra", {"prompt": "x", "aspect_ratio": "9:16", "output_format": "webp"}
    )
    progress = []
    for _ in range(3):
        async with http.get(answer["polling_url"]) as resp:
            body = await resp.json()
        progress.append((body["status"], body["progress"]))
    assert progress == [("Pending", 0.33), ("Pending", 0.67), ("Ready", None)]
    assert fake_bfl.active_tasks == 0

    sample = body["result"]["sample"]
    async with aiohttp.ClientSession() as plain, plain.get(sample) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/webp"
        image = Image.open(io.BytesIO(await resp.read()))
    assert image.format == "WEBP"
    assert image.size == (1536, 2720)
    async with aiohttp.ClientSession() as plain, plain.get(sample.replace("sig=", "sig=0")) as resp:
        assert resp.status == 403  # tampered signature


async def test_deblur_renders_the_input_images_size_and_reports_its_cost(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession
) -> None:
    """``/v1/flux-tools/deblur-v1`` (``Flux2DeblurInputs``): the input's size back, in the asked format, billed."""
    status, answer = await submit(http, DEBLUR, {"image": png_base64(640, 480), "seed": 7, "output_format": "jpeg"})
    assert status == 200, answer
    task = fake_bfl.tasks[answer["id"]]
    assert (task.width, task.height, task.seed) == (640, 480, 7)
    assert Decimal(str(answer["cost"])) == task.cost == price_credits(DEBLUR, 640, 480, [640 * 480]) > 0
    assert (answer["input_mp"], answer["output_mp"]) == (0.31, 0.31)
    ready = await poll_until_terminal(http, answer["polling_url"])
    async with aiohttp.ClientSession() as plain, plain.get(ready["result"]["sample"]) as resp:
        image = Image.open(io.BytesIO(await resp.read()))
    assert (image.format, image.size) == ("JPEG", (640, 480))
    assert fake_bfl.schema_errors == []


async def test_outpainting_renders_the_canvas_and_bills_its_megapixels(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession
) -> None:
    """``/v1/flux-tools/outpainting-v1`` (``FluxOutpaintingInputs``): an image of exactly width×height, billed."""
    body = {
        "input_image": png_base64(320, 256),
        "width": 640,
        "height": 512,
        "reference_offset_x": 160,
        "reference_offset_y": 128,
        "prompt": "a wider view",
        "output_format": "jpeg",
    }
    status, answer = await submit(http, OUTPAINT, body)
    assert status == 200, answer
    task = fake_bfl.tasks[answer["id"]]
    assert (task.width, task.height) == (640, 512)
    assert Decimal(str(answer["cost"])) == task.cost == price_credits(OUTPAINT, 640, 512) == Decimal("3.3")
    ready = await poll_until_terminal(http, answer["polling_url"])
    async with aiohttp.ClientSession() as plain, plain.get(ready["result"]["sample"]) as resp:
        image = Image.open(io.BytesIO(await resp.read()))
    assert (image.format, image.size) == ("JPEG", (640, 512))
    overhang = {**body, "reference_offset_x": 400, "auto_crop": True}  # cropped by BFL, not refused
    assert (await submit(http, OUTPAINT, overhang))[0] == 200
    assert fake_bfl.schema_errors == []


async def test_moderated_and_unknown_id(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """Moderated tasks carry reasons; an unknown id answers Task not found."""
    fake_bfl.script(Behaviour(final_status="Request Moderated", details={"Moderation Reasons": ["Prompt"]}))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    result = await poll_until_terminal(http, answer["polling_url"])
    assert result["status"] == "Request Moderated"
    assert result["details"] == {"Moderation Reasons": ["Prompt"]}
    assert (await poll_until_terminal(http, "/v1/get_result?id=unknown"))["status"] == "Task not found"


async def test_active_task_cap_answers_429(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """Over the active-task cap the fake answers 429 until a task reaches a terminal status."""
    fake_bfl.max_active = 2
    first = await submit(http, "flux-dev", {"prompt": "x"})
    await submit(http, "flux-dev", {"prompt": "x"})
    status, _ = await submit(http, "flux-dev", {"prompt": "x"})
    assert status == 429
    await poll_until_terminal(http, first[1]["polling_url"])
    status, _ = await submit(http, "flux-dev", {"prompt": "x"})
    assert status == 200
    assert fake_bfl.max_active_seen == 2


async def test_kontext_max_cap_is_separate(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """flux-kontext-max has its own lower cap."""
    fake_bfl.max_active_kontext_max = 1
    assert (await submit(http, "flux-kontext-max", {"prompt": "x"}))[0] == 200
    assert (await submit(http, "flux-kontext-max", {"prompt": "x"}))[0] == 429
    assert (await submit(http, "flux-kontext-pro", {"prompt": "x"}))[0] == 200


async def test_credits_decrease_and_run_out() -> None:
    """The balance drops by each cost; a task costing more than what is left gets 402."""
    async with (
        FakeBfl(credits="10") as fake,
        aiohttp.ClientSession(base_url=fake.url, headers={"x-key": fake.api_key}) as session,
    ):
        assert (await submit(session, "flux-kontext-max", {"prompt": "x"}))[0] == 200
        async with session.get("/v1/credits") as resp:
            assert await resp.json() == {"credits": 2.0}
        status, answer = await submit(session, "flux-pro-1.1", {"prompt": "x"})
        assert (status, answer) == (402, {"detail": "Insufficient credits"})


async def test_unhandled_routes_are_recorded(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """Unknown routes answer 404 and are recorded, so a new endpoint fails loudly."""
    async with http.post("/v1/flux-schnell", json={"prompt": "x"}) as resp:
        assert resp.status == 404
    assert fake_bfl.unhandled == [("POST", "/v1/flux-schnell")]


async def test_wait_for_times_out(fake_bfl: FakeBfl) -> None:
    """wait_for raises TimeoutError when the condition never holds."""
    with pytest.raises(TimeoutError):
        await fake_bfl.wait_for(lambda: len(fake_bfl.submits) > 0, timeout=0.05)


def test_prices() -> None:
    """FLUX.1 is flat; FLUX.2 is first MP plus each further MP."""
    assert price_credits("flux-pro-1.1", 1440, 1440) == Decimal(4)
    assert price_credits("flux-kontext-max", 1024, 1024) == Decimal(8)
    assert price_credits("flux-2-pro", 1000, 1000) == Decimal(3)
    assert price_credits("flux-2-pro", 2000, 1000) == Decimal("4.5")
    assert price_credits("flux-2-max", 2048, 2048) == Decimal("16.57")


async def test_expire_delivery_makes_the_signed_url_403(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """expire_delivery() turns a working signed URL into an expired one."""
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    sample = (await poll_until_terminal(http, answer["polling_url"]))["result"]["sample"]
    async with aiohttp.ClientSession() as plain:
        async with plain.get(sample) as resp:
            assert resp.status == 200
        fake_bfl.expire_delivery(answer["id"])
        async with plain.get(sample) as resp:
            assert resp.status == 403
    assert [d.status for d in fake_bfl.downloads] == [200, 403]


# -- time-based tasks, gateway errors, final 5xx ---------------------------------------------------


async def test_time_based_task_walks_its_stages_then_is_ready(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """Pending → Reasoning → Generating by elapsed time, rising progress, Ready at created_at + run_seconds."""
    # 0.4 s per stage: back-to-back polls see each stage even on a busy 2-core machine
    fake_bfl.script(Behaviour(run_seconds=1.2, stages=FLUX3_STAGES))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    task = fake_bfl.tasks[answer["id"]]
    assert task.ready_at == pytest.approx(task.created_at + 1.2)
    assert fake_bfl.active_tasks == 1

    answers = await poll_through(http, answer["polling_url"])

    stages = [a["status"] for a in answers]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [*FLUX3_STAGES, "Ready"]
    progress = [a["progress"] for a in answers[:-1]]
    assert progress == sorted(progress)
    assert 0 <= progress[0] < progress[-1] < 1
    assert answers[-1]["result"]["sample"]
    assert task.polls == len(answers)
    ready_polls = [p for p in fake_bfl.polls if p.task_status == "Ready"]
    assert task.ready_answered_at == ready_polls[0].time >= task.ready_at
    assert all(p.time < task.ready_at for p in fake_bfl.polls if p.task_status != "Ready")
    assert fake_bfl.active_tasks == 0


async def test_time_based_task_is_active_until_its_ready_moment_polled_or_not(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession
) -> None:
    """With a cap of 1: a 60 s task blocks the next submit (429); a finished one does not, unpolled."""
    fake_bfl.max_active = 1
    fake_bfl.script(Behaviour(run_seconds=0.0), Behaviour(run_seconds=60.0))
    assert (await submit(http, "flux-dev", {"prompt": "x"}))[0] == 200  # ready at once, never polled
    assert fake_bfl.active_tasks == 0
    assert (await submit(http, "flux-dev", {"prompt": "x"}))[0] == 200  # the 60 s task
    assert fake_bfl.active_tasks == 1
    assert (await submit(http, "flux-dev", {"prompt": "x"}))[0] == 429
    long = next(t for t in fake_bfl.tasks.values() if t.behaviour.run_seconds == 60.0)
    assert long.is_active(long.ready_at - 0.001)
    assert not long.is_active(long.ready_at)
    assert fake_bfl.polls == []


async def test_run_jitter_is_drawn_per_task_and_seeded(http: aiohttp.ClientSession) -> None:
    """run_jitter=0.05 spreads run times over ±5 %, differently per task, reproducibly per seed."""

    async def run_times(seed: int) -> list[float]:
        async with (
            FakeBfl(seed=seed) as fake,
            aiohttp.ClientSession(base_url=fake.url, headers={"x-key": fake.api_key}) as session,
        ):
            fake.default = Behaviour(run_seconds=10.0, run_jitter=0.05)
            for _ in range(20):
                assert (await submit(session, "flux-dev", {"prompt": "x"}))[0] == 200
            return [t.ready_at - t.created_at for t in fake.tasks.values()]

    first, again, other = await run_times(7), await run_times(7), await run_times(8)
    assert all(9.5 <= t <= 10.5 for t in first)
    assert len({round(t, 6) for t in first}) == 20
    assert first == pytest.approx(again)
    assert first != pytest.approx(other)


def test_time_based_behaviour_refuses_per_poll_options() -> None:
    """run_seconds cannot be combined with pending_polls or release, nor have no stages."""
    with pytest.raises(ValueError):
        Behaviour(run_seconds=1.0, pending_polls=2)
    with pytest.raises(ValueError):
        Behaviour(run_seconds=1.0, release=asyncio.Event())
    with pytest.raises(ValueError):
        Behaviour(run_seconds=1.0, stages=())
    with pytest.raises(ValueError):
        Behaviour(run_seconds=1.0, run_jitter=1.0)


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_gateway_error_after_the_task_was_created(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession, status: int
) -> None:
    """submit_status_after_create: the task exists and is billed, yet the answer is a 5xx."""
    fake_bfl.script(Behaviour(submit_status_after_create=status))
    async with http.post("/v1/flux-dev", json={"prompt": "x"}) as resp:
        assert resp.status == status
        assert "id" not in await resp.text()
    assert len(fake_bfl.tasks) == 1
    task = next(iter(fake_bfl.tasks.values()))
    assert fake_bfl.submits[0].task_id == task.id
    assert fake_bfl.submit_statuses() == [status]
    assert fake_bfl.credits == Decimal(1000) - task.cost
    assert fake_bfl.active_tasks == 1


async def test_final_503_with_status_error(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """final_http_status=503: the terminal answer is HTTP 503 with a body saying "status": "Error"."""
    fake_bfl.script(Behaviour(pending_polls=1, final_status="Error", final_http_status=503))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    answers = await poll_through(http, answer["polling_url"])
    assert [(a["http"], a["status"]) for a in answers] == [(200, "Pending"), (503, "Error")]
    assert [p.status for p in fake_bfl.polls] == [200, 503]
    assert fake_bfl.active_tasks == 0


async def test_poll_errors_carry_retry_after(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """poll_retry_after adds Retry-After to the scripted poll errors only."""
    fake_bfl.script(Behaviour(poll_errors=(429,), poll_retry_after="4"))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    async with http.get(answer["polling_url"]) as resp:
        assert (resp.status, resp.headers.get("Retry-After")) == (429, "4")
    async with http.get(answer["polling_url"]) as resp:
        assert (resp.status, resp.headers.get("Retry-After")) == (200, None)


async def test_ready_cost_and_download_time_are_reported(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """ready_cost="auto" puts the charged cost on Ready; the first image request is timed."""
    fake_bfl.script(Behaviour(ready_cost="auto"), Behaviour(ready_cost=3.5), Behaviour())
    costs = []
    for _ in range(3):
        _, answer = await submit(http, "flux-dev", {"prompt": "x"})
        costs.append((await poll_until_terminal(http, answer["polling_url"])).get("cost"))
    assert costs == [2.5, 3.5, None]

    task = fake_bfl.tasks[answer["id"]]
    assert task.downloaded_at is None
    async with aiohttp.ClientSession() as plain:
        for _ in range(2):
            async with plain.get(fake_bfl.sample_url(task)) as resp:
                assert resp.status == 200
    assert task.downloaded_at == fake_bfl.downloads[0].time
    assert task.ready_answered_at is not None
    assert task.ready_answered_at <= task.downloaded_at


async def test_time_based_image_is_not_served_before_ready(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """A guessed sample URL of a still-running task is a 404, like a blob that does not exist yet."""
    fake_bfl.script(Behaviour(run_seconds=60.0))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    async with aiohttp.ClientSession() as plain, plain.get(fake_bfl.sample_url(fake_bfl.tasks[answer["id"]])) as resp:
        assert resp.status == 404


# -- what issue 21 taught the fake: early Task not found, 5xx bodies, poll redirects, the 2026 spec ---


@pytest.mark.parametrize(("http_status", "task_status"), [(200, "Task not found"), (404, None)])
async def test_not_found_polls_come_first_then_the_task_runs(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession, http_status: int, task_status: str | None
) -> None:
    """not_found_polls: a task BFL has not registered yet answers Task not found (200 or 404), then runs."""
    fake_bfl.script(Behaviour(not_found_polls=2, not_found_http=http_status, pending_polls=1))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    for _ in range(2):
        async with http.get(answer["polling_url"]) as resp:
            assert resp.status == http_status
    assert (await poll_until_terminal(http, answer["polling_url"]))["status"] == "Ready"
    assert [(p.status, p.task_status) for p in fake_bfl.polls] == [
        (http_status, task_status),
        (http_status, task_status),
        (200, "Pending"),
        (200, "Ready"),
    ]


async def test_poll_errors_with_a_scripted_body(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    """poll_error_body: an HTML page, or a JSON body such as {"status": "Error"} (which ends the task)."""
    fake_bfl.script(Behaviour(poll_errors=(503,), poll_error_body="<html>down</html>"))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    async with http.get(answer["polling_url"]) as resp:
        assert (resp.status, resp.content_type, await resp.text()) == (503, "text/html", "<html>down</html>")

    fake_bfl.script(Behaviour(poll_errors=(500,), poll_error_body={"status": "Error", "details": None}))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    async with http.get(answer["polling_url"]) as resp:
        assert (resp.status, await resp.json()) == (500, {"id": answer["id"], "status": "Error", "details": None})
    assert fake_bfl.polls[-1].task_status == "Error"
    assert not fake_bfl.tasks[answer["id"]].is_active(fake_bfl.now())


@pytest.mark.parametrize("mode", ["same", "other"])
async def test_poll_redirects_to_this_origin_or_another(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession, mode: str
) -> None:
    """poll_redirect: a 302 first; the moved path wants the key, the other origin answers without it."""
    fake_bfl.script(Behaviour(poll_redirect=mode))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    async with http.get(answer["polling_url"], allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    target = fake_bfl.url + MOVED_POLLING_PATH if mode == "same" else fake_bfl.delivery_host.url + "/v1/get_result"
    assert location == f"{target}?id={answer['id']}"
    async with aiohttp.ClientSession() as keyless, keyless.get(location) as resp:
        assert resp.status == (403 if mode == "same" else 200)
    assert [(p.host, p.status, p.key_ok) for p in fake_bfl.polls] == [
        ("bfl", 302, True),
        ("bfl" if mode == "same" else "other", 403 if mode == "same" else 200, False),
    ]
    assert "x-key" not in fake_bfl.polls[-1].headers


async def test_a_looping_poll_redirect_points_at_itself(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    fake_bfl.script(Behaviour(poll_redirect="loop"))
    _, answer = await submit(http, "flux-dev", {"prompt": "x"})
    async with http.get(answer["polling_url"], allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (302, answer["polling_url"])


async def test_a_poll_without_an_id_breaks_the_spec_and_is_recorded(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession
) -> None:
    """get_result's query is validated against the spec's parameters (id is required)."""
    async with http.get("/v1/get_result") as resp:
        assert resp.status == 422
        assert (await resp.json())["detail"][0]["loc"] == ["query", "id"]
    assert [violation.model for violation in fake_bfl.schema_errors] == ["get_result"]


async def test_the_2026_spec_takes_user_on_every_route_but_flux_3_image(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession
) -> None:
    """`user` is in the 2026 schemas (1–256 characters); FLUX 3 Image's strict schema refuses it."""
    assert (await submit(http, "flux-2-pro", {"prompt": "x", "user": "u" * 64}))[0] == 200
    assert (await submit(http, "flux-pro-1.1", {"prompt": "x", "user": ""}))[0] == 422
    status, answer = await submit(http, "flux-3-image", {"prompt": "x", "user": "u" * 64})
    assert (status, answer["detail"][0]["loc"]) == (422, ["body"])
    assert "'user' was unexpected" in answer["detail"][0]["msg"]


async def test_flux_3_prose_limits_still_apply_on_top_of_the_spec(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession
) -> None:
    """The 2026 schema has no prompt length or image count; the reconstructed schema's limits still do."""
    status, answer = await submit(http, "flux-3-image", {"prompt": "x" * 15_001})
    assert (status, answer["detail"][0]["loc"]) == (422, ["body", "prompt"])
    status, answer = await submit(http, "flux-3-image", {"prompt": "x", "images": [png_base64()] * 11})
    assert (status, answer["detail"][0]["loc"]) == (422, ["body", "images"])


def test_an_older_spec_still_serves_flux_3_from_the_reconstruction() -> None:
    routes = generation_routes(SPEC_2026_04_PATH)
    assert routes["flux-3-image"].closed and "user" not in routes["flux-pro-1.1"].properties
