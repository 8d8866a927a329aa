"""BflClient against the fake BFL server, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from PIL import Image
from pydantic import SecretStr

from bot.bfl.client import BflClient, BflPolicy, SubmittedTask, result_url_expiry
from bot.bfl.errors import (
    BflAuthError,
    BflBadRequest,
    BflCreditsExhausted,
    BflDownloadError,
    BflModerated,
    BflRateLimited,
    BflServerError,
    BflSubmitOutcomeUnknown,
    BflTaskFailed,
    BflTaskNotFound,
    BflTimeout,
    BflUnsafeUrl,
    BflValidationError,
)
from bot.bfl.polling import LatencyModel, PollPlan
from tests.fakes.fake_bfl import FLUX3_STAGES, FOREIGN_POLLING, REGIONAL_POLLING, Behaviour, FakeBfl

FAST_POLLS = PollPlan(first_poll=0.0, interval=0.01, tail_start=0.05, max_interval=0.05)
POLICY_FIELDS = {f.name for f in dataclasses.fields(BflPolicy)}
PROMPT = {"prompt": "a lighthouse at dusk", "width": 512, "height": 384}


class RecordingSleep:
    """An injected ``sleep`` that records delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make_client(session: aiohttp.ClientSession, fake_bfl: FakeBfl):
    def make(**overrides: Any) -> BflClient:
        options: dict[str, Any] = {
            "session": session,
            "api_key": SecretStr(fake_bfl.api_key),
            "base_url": fake_bfl.url,
        }
        policy: dict[str, Any] = {"poll_plan": FAST_POLLS, "backoff_base": 0.001, "backoff_cap": 0.01}
        for key, value in overrides.items():
            (policy if key in POLICY_FIELDS else options)[key] = value
        return BflClient(**options, policy=BflPolicy(**policy))

    return make


@pytest.fixture
def client(make_client) -> BflClient:
    return make_client()


async def run_job(client: BflClient, endpoint: str, payload: dict[str, Any], timeout: float = 10.0) -> bytes:
    """Submit → wait → download (the engine polls one poll at a time; this is the whole run)."""
    task = await client.submit(endpoint, payload)
    result = await client.wait_for_result(task, timeout=timeout)
    return await client.download(result.sample_url)


# -- happy path ------------------------------------------------------------------------------------


async def test_pending_then_ready_then_download_decodes(client: BflClient, fake_bfl: FakeBfl) -> None:
    """Pending polls report progress, Ready yields a sample that downloads as the requested image."""
    fake_bfl.script(Behaviour(pending_polls=3))
    seen: list[tuple[str, float | None]] = []

    async def on_status(status: str, progress: float | None) -> None:
        seen.append((status, progress))

    task = await client.submit("flux-pro-1.1", {**PROMPT, "output_format": "png"})
    result = await client.wait_for_result(task, timeout=5, on_status=on_status)
    data = await client.download(result.sample_url)

    assert seen == [("Pending", 0.25), ("Pending", 0.5), ("Pending", 0.75), ("Ready", None)]
    assert result.id == task.id
    assert result.raw["status"] == "Ready"
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert (image.format, image.size) == ("PNG", (512, 384))
    assert task.cost_credits == Decimal("4")
    assert task.cost_micros == 40_000
    assert fake_bfl.credits == Decimal(996)
    assert fake_bfl.schema_errors == []
    assert fake_bfl.active_tasks == 0


async def test_x_key_goes_to_api_calls_but_never_to_the_download(client: BflClient, fake_bfl: FakeBfl) -> None:
    """Submit, polls and credits carry x-key; the signed-URL download carries no BFL header."""
    fake_bfl.script(Behaviour(pending_polls=1))
    await run_job(client, "flux-pro-1.1", PROMPT)
    await client.get_credits()

    assert [s.key_ok for s in fake_bfl.submits] == [True]
    assert fake_bfl.submits[0].headers["accept"] == "application/json"
    assert len(fake_bfl.polls) == 2
    assert all(p.key_ok for p in fake_bfl.polls)
    assert len(fake_bfl.downloads) == 1
    sample = fake_bfl.sample_url(next(iter(fake_bfl.tasks.values())))
    assert fake_bfl.downloads[0].path_qs == sample.removeprefix(fake_bfl.url)  # byte for byte: %3A kept
    assert "x-key" not in fake_bfl.downloads[0].headers
    assert "authorization" not in fake_bfl.downloads[0].headers


async def test_cross_host_redirect_of_download_does_not_forward_x_key(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A delivery URL that 302s to another host is followed, and that host sees no key."""
    fake_bfl.script(Behaviour(delivery="redirect"))
    data = await run_job(client, "flux-pro-1.1", PROMPT)

    assert Image.open(io.BytesIO(data)).size == (512, 384)
    assert [(d.host, d.status) for d in fake_bfl.downloads] == [("bfl", 302), ("other", 200)]
    other = fake_bfl.delivery_host.requests
    assert len(other) == 1
    assert "x-key" not in other[0].headers
    assert "authorization" not in other[0].headers


async def test_polling_url_is_used_exactly_as_returned(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A polling URL on another path, with extra query parameters, is polled verbatim."""
    fake_bfl.script(Behaviour(polling_url=REGIONAL_POLLING, pending_polls=2))
    task = await client.submit("flux-pro-1.1", PROMPT)
    await client.wait_for_result(task, timeout=5)

    assert task.polling_url == f"{fake_bfl.url}/regional/v1/get_result?id={task.id}&cluster=eu2"
    assert len(fake_bfl.polls) == 3
    assert {p.path_qs for p in fake_bfl.polls} == {f"/regional/v1/get_result?id={task.id}&cluster=eu2"}


async def test_foreign_polling_host_is_refused_before_any_request(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A polling_url on a host that is neither *.bfl.ai nor the base URL gets no request (and no key)."""
    fake_bfl.script(Behaviour(polling_url=FOREIGN_POLLING))
    task = await client.submit("flux-pro-1.1", PROMPT)
    assert task.polling_url.startswith(fake_bfl.delivery_host.url)

    with pytest.raises(BflUnsafeUrl):
        await client.wait_for_result(task, timeout=5)
    evil = SubmittedTask(id="t1", polling_url="http://evil.example/v1/get_result?id=t1", cost_credits=None)
    with pytest.raises(BflUnsafeUrl):
        await client.wait_for_result(evil, timeout=5)

    assert fake_bfl.delivery_host.requests == []
    assert fake_bfl.polls == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.bfl.ai/v1/get_result?id=1", True),
        ("https://api.eu2.bfl.ai/v1/get_result?id=1", True),
        ("https://API.US1.BFL.AI/v1/get_result?id=1", True),
        ("https://bfl.ai/v1/get_result?id=1", True),
        ("https://api.bfl.ai:443/v1/get_result?id=1", True),
        ("{base}/v1/get_result?id=1", True),
        ("{base}/regional/v1/get_result?id=1&cluster=x", True),
        ("http://api.bfl.ai/v1/get_result?id=1", False),
        ("https://api.bfl.ai:8443/v1/get_result?id=1", False),
        ("https://evilbfl.ai/v1/get_result?id=1", False),
        ("https://api.bfl.ai.evil.com/v1/get_result?id=1", False),
        ("https://user:pw@api.bfl.ai/v1/get_result?id=1", False),
        ("https://evil.com\\@api.bfl.ai/v1/get_result?id=1", False),
        ("https://api.bfl.ai/v1/get_result?id=1 x", False),
        ("ftp://api.bfl.ai/v1/get_result?id=1", False),
        ("{base_https}/v1/get_result?id=1", False),
        ("{other}/v1/get_result?id=1", False),
        ("http://localhost:{port}/v1/get_result?id=1", True),  # the same loopback server, spelled differently
        ("http://[::1]:{port}/v1/get_result?id=1", True),
        ("http://localhost:1/v1/get_result?id=1", False),
        ("/v1/get_result?id=1", False),
    ],
)
def test_check_polling_url(client: BflClient, fake_bfl: FakeBfl, url: str, allowed: bool) -> None:
    """Only https *.bfl.ai, or exactly the configured base origin (loopback spellings alike), gets the key."""
    port = fake_bfl.url.rsplit(":", 1)[1]
    url = url.format(
        base=fake_bfl.url,
        base_https=fake_bfl.url.replace("http:", "https:"),
        other=fake_bfl.delivery_host.url,
        port=port,
    )
    if allowed:
        client.check_polling_url(url)
    else:
        with pytest.raises(BflUnsafeUrl):
            client.check_polling_url(url)


# -- terminal statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("final_status", "error", "attrs"),
    [
        ("Request Moderated", BflModerated, {"stage": "request", "reasons": ["Derivative Works Filter"]}),
        ("Content Moderated", BflModerated, {"stage": "content", "reasons": ["Derivative Works Filter"]}),
        ("Error", BflTaskFailed, {"status": "Error"}),
        ("Failed", BflTaskFailed, {"status": "Failed"}),
        ("Task not found", BflTaskNotFound, {}),
    ],
)
async def test_terminal_statuses_raise_typed_errors(
    make_client, fake_bfl: FakeBfl, final_status: str, error: type[Exception], attrs: dict[str, Any]
) -> None:
    """Each terminal status maps to its error, carrying the task id; the task no longer counts as active."""
    client = make_client(task_not_found_window=0.0)  # past the window: "Task not found" is final
    fake_bfl.script(Behaviour(pending_polls=1, final_status=final_status))
    task = await client.submit("flux-pro-1.1", PROMPT)
    with pytest.raises(error) as caught:
        await client.wait_for_result(task, timeout=5)
    assert caught.value.task_id == task.id
    for name, value in attrs.items():
        assert getattr(caught.value, name) == value
    assert len(fake_bfl.polls) == 2
    assert fake_bfl.active_tasks == 0


async def test_flux3_and_unknown_statuses_keep_polling_until_ready(client: BflClient, fake_bfl: FakeBfl) -> None:
    """Pending → Reasoning → an unknown status → Generating are all "still running"; each is reported."""
    # 0.2 s per stage: the fast test polls see each one even on a busy 2-core machine
    fake_bfl.script(Behaviour(run_seconds=0.8, stages=("Pending", "Reasoning", "Rendering Sparkles", "Generating")))
    seen: list[str] = []

    async def on_status(status: str, progress: float | None) -> None:
        if not seen or seen[-1] != status:
            seen.append(status)

    task = await client.submit("flux-pro-1.1", PROMPT)
    result = await client.wait_for_result(task, timeout=5, on_status=on_status)

    assert seen == ["Pending", "Reasoning", "Rendering Sparkles", "Generating", "Ready"]
    assert result.sample_url
    fake_task = fake_bfl.tasks[task.id]
    assert fake_task.ready_at is not None
    assert fake_task.ready_answered_at is not None
    assert fake_task.ready_answered_at >= fake_task.ready_at


async def test_an_unknown_status_that_never_ends_times_out(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A status the client does not know is not terminal: it polls on until its deadline."""
    fake_bfl.script(Behaviour(final_status="Exploded Quietly"))
    task = await client.submit("flux-pro-1.1", PROMPT)
    with pytest.raises(BflTimeout) as caught:
        await client.wait_for_result(task, timeout=0.3)
    assert "Exploded Quietly" in str(caught.value)
    assert len(fake_bfl.polls) >= 3
    assert {p.task_status for p in fake_bfl.polls} == {"Exploded Quietly"}


async def test_poll_503_with_status_error_is_final(client: BflClient, fake_bfl: FakeBfl) -> None:
    """HTTP 503 whose body says "status": "Error" ends the task (BflTaskFailed), without more polls."""
    fake_bfl.script(Behaviour(pending_polls=1, final_status="Error", final_http_status=503))
    seen: list[str] = []

    async def on_status(status: str, progress: float | None) -> None:
        seen.append(status)

    task = await client.submit("flux-pro-1.1", PROMPT)
    with pytest.raises(BflTaskFailed) as caught:
        await client.wait_for_result(task, timeout=5, on_status=on_status)
    assert caught.value.status == "Error"
    assert caught.value.task_id == task.id
    assert [p.status for p in fake_bfl.polls] == [200, 503]
    assert seen == ["Pending", "Error"]


async def test_poll_429_honours_retry_after_and_polls_the_same_url(make_client, fake_bfl: FakeBfl) -> None:
    """A 429 on poll means the task exists: wait Retry-After, poll the same URL, never resubmit."""
    sleep = RecordingSleep()
    fake_bfl.script(Behaviour(poll_errors=(429,), poll_retry_after="2"))
    client = make_client(sleep=sleep)
    task = await client.submit("flux-pro-1.1", PROMPT)
    result = await client.wait_for_result(task, timeout=5)
    assert result.id == task.id
    assert sleep.delays == [2.0]
    assert [p.status for p in fake_bfl.polls] == [429, 200]
    assert {p.task_id for p in fake_bfl.polls} == {task.id}
    assert len(fake_bfl.submits) == 1


async def test_failed_polls_back_off(make_client, fake_bfl: FakeBfl) -> None:
    """5xx polls in a row wait longer each time (base · 2^n, half jittered), then the schedule resumes."""
    sleep = RecordingSleep()
    fake_bfl.script(Behaviour(poll_errors=(503, 500, 502), pending_polls=1))
    client = make_client(sleep=sleep, backoff_base=0.1, backoff_cap=20.0, random=lambda: 1.0)
    task = await client.submit("flux-pro-1.1", PROMPT)
    await client.wait_for_result(task, timeout=5)
    assert sleep.delays[:3] == pytest.approx([0.1, 0.2, 0.4])
    assert sleep.delays[3] < 0.1  # back on FAST_POLLS after a good answer
    assert [p.status for p in fake_bfl.polls] == [503, 500, 502, 200, 200]


async def test_ready_carries_settled_cost_and_expanded_prompt(client: BflClient, fake_bfl: FakeBfl) -> None:
    """The Ready body's top-level cost and result.prompt land on the TaskResult."""
    fake_bfl.script(Behaviour(ready_cost="auto"), Behaviour())
    task = await client.submit("flux-pro-1.1", PROMPT)
    result = await client.wait_for_result(task, timeout=5)
    assert result.cost_credits == Decimal("4")
    assert result.cost_micros == 40_000
    assert result.expanded_prompt == PROMPT["prompt"]

    plain = await client.wait_for_result(await client.submit("flux-pro-1.1", PROMPT), timeout=5)
    assert plain.cost_credits is None
    assert plain.cost_micros is None


async def test_ready_without_sample_is_a_failed_task(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A Ready answer without result.sample cannot be downloaded: BflTaskFailed."""
    fake_bfl.script(Behaviour(omit_sample=True))
    task = await client.submit("flux-pro-1.1", PROMPT)
    with pytest.raises(BflTaskFailed) as caught:
        await client.wait_for_result(task, timeout=5)
    assert caught.value.status == "Ready"


async def test_unknown_task_id_is_not_found(client: BflClient, fake_bfl: FakeBfl) -> None:
    """Polling an id BFL does not know ends with BflTaskNotFound."""
    task = SubmittedTask(id="nope", polling_url=f"{fake_bfl.url}/v1/get_result?id=nope", cost_credits=None)
    with pytest.raises(BflTaskNotFound):
        await client.wait_for_result(task, timeout=5, elapsed_offset=60.0)  # submitted a minute ago
    assert [p.task_status for p in fake_bfl.polls] == ["Task not found"]


async def test_transient_poll_failures_keep_polling(client: BflClient, fake_bfl: FakeBfl) -> None:
    """HTTP 503, 202 and 500 while polling are not fatal."""
    fake_bfl.script(Behaviour(poll_errors=(503, 202, 500), pending_polls=1))
    task = await client.submit("flux-pro-1.1", PROMPT)
    result = await client.wait_for_result(task, timeout=5)
    assert result.sample_url
    assert [p.status for p in fake_bfl.polls] == [503, 202, 500, 200, 200]


async def test_poll_auth_failure_is_raised(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A 403 while polling (key revoked mid-task) is an auth error, not an endless retry."""
    task = await client.submit("flux-pro-1.1", PROMPT)
    fake_bfl.api_key = "rotated-key"
    with pytest.raises(BflAuthError) as caught:
        await client.wait_for_result(task, timeout=5)
    assert caught.value.reason == "key"
    assert caught.value.task_id == task.id
    assert len(fake_bfl.polls) == 1


async def test_poll_deadline_raises_timeout(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A task that stays Pending past the caller's deadline raises BflTimeout soon after it."""
    fake_bfl.script(Behaviour(release=asyncio.Event()))  # never released
    task = await client.submit("flux-pro-1.1", PROMPT)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BflTimeout) as caught:
        await client.wait_for_result(task, timeout=0.3)
    elapsed = loop.time() - started
    assert 0.3 <= elapsed < 1.5
    assert caught.value.task_id == task.id
    assert len(fake_bfl.polls) >= 3
    assert fake_bfl.polls[-1].time - started >= 0.29  # one last poll right at the deadline


async def test_on_status_failure_does_not_abandon_the_task(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A crashing progress callback is logged, and the paid task is still awaited."""
    fake_bfl.script(Behaviour(pending_polls=2))

    async def broken(status: str, progress: float | None) -> None:
        raise RuntimeError("discord edit failed")

    task = await client.submit("flux-pro-1.1", PROMPT)
    result = await client.wait_for_result(task, timeout=5, on_status=broken)
    assert result.id == task.id


# -- submit errors and retries ---------------------------------------------------------------------


async def test_402_is_credits_exhausted_without_retry(make_client, fake_bfl: FakeBfl) -> None:
    """402 stops at once: retrying cannot add credits."""
    sleep = RecordingSleep()
    fake_bfl.fail_submits(402)
    with pytest.raises(BflCreditsExhausted):
        await make_client(sleep=sleep).submit("flux-pro-1.1", PROMPT)
    assert fake_bfl.submit_statuses() == [402]
    assert sleep.delays == []


async def test_wrong_key_is_auth_error(make_client, fake_bfl: FakeBfl) -> None:
    """The fake answers a wrong key with 403; the client raises BflAuthError(reason="key") without retrying."""
    client = make_client(api_key=SecretStr("wrong-key"))
    with pytest.raises(BflAuthError) as caught:
        await client.submit("flux-pro-1.1", PROMPT)
    assert caught.value.status == 403
    assert caught.value.reason == "key"
    assert "Not authenticated" in str(caught.value)
    assert fake_bfl.submit_statuses() == [403]
    assert fake_bfl.tasks == {}


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ("Your organization does not have access to this endpoint.", "access"),
        ("This API key doesn't have access to flux-3-image", "access"),
        ("API key does not have permission", "key"),
        ("Not authenticated", "key"),
    ],
)
async def test_403_says_whether_the_key_or_the_endpoint_access_is_the_problem(
    make_client, fake_bfl: FakeBfl, detail: str, reason: str
) -> None:
    """An early-access refusal is reason="access" (the key works); anything else is reason="key"."""
    sleep = RecordingSleep()
    fake_bfl.fail_submits(403, body={"detail": detail})
    with pytest.raises(BflAuthError) as caught:
        await make_client(sleep=sleep).submit("flux-pro-1.1", PROMPT)
    assert caught.value.status == 403
    assert caught.value.reason == reason
    assert detail in str(caught.value)
    assert fake_bfl.submit_statuses() == [403]
    assert sleep.delays == []


async def test_scripted_422_messages_are_parsed(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A FastAPI-style 422 gives one message per detail item, with the field name."""
    fake_bfl.fail_submits(422)
    with pytest.raises(BflValidationError) as caught:
        await client.submit("flux-pro-1.1", PROMPT)
    assert caught.value.messages == ["prompt: String should have at most 32000 characters"]


async def test_schema_violation_is_a_validation_error(client: BflClient, fake_bfl: FakeBfl) -> None:
    """Sending aspect_ratio to flux-pro-1.1 (not in its schema) is rejected by the fake's spec check."""
    with pytest.raises(BflValidationError) as caught:
        await client.submit("flux-pro-1.1", {**PROMPT, "aspect_ratio": "16:9"})
    assert caught.value.messages == ["aspect_ratio: Extra inputs are not permitted"]
    assert len(fake_bfl.schema_errors) == 1
    assert fake_bfl.schema_errors[0].detail[0]["loc"] == ["body", "aspect_ratio"]


async def test_detail_string_and_message_and_raw_text_bodies(make_client, fake_bfl: FakeBfl) -> None:
    """Error bodies are read as detail (string), then message, then raw text."""
    client = make_client()
    fake_bfl.fail_submits(400, body={"detail": "bad prompt"})
    fake_bfl.fail_submits(400, body={"message": "bad width"})
    fake_bfl.fail_submits(400, body="x" * 1000)
    texts = []
    for _ in range(3):
        with pytest.raises(BflBadRequest) as caught:
            await client.submit("flux-pro-1.1", PROMPT)
        assert caught.value.status == 400
        texts.append(str(caught.value))
    assert texts[0].endswith("bad prompt")
    assert texts[1].endswith("bad width")
    assert "x" * 300 in texts[2]
    assert "x" * 301 not in texts[2]


async def test_429_is_retried_then_succeeds(make_client, fake_bfl: FakeBfl) -> None:
    """Two 429s, then success: three submits, two jittered backoff sleeps, one task."""
    sleep = RecordingSleep()
    client = make_client(sleep=sleep, backoff_base=1.0, backoff_cap=20.0, random=lambda: 0.5)
    fake_bfl.fail_submits(429, times=2)
    task = await client.submit("flux-pro-1.1", PROMPT)
    assert fake_bfl.submit_statuses() == [429, 429, 200]
    assert sleep.delays == [0.5, 1.0]  # random() * min(cap, base * 2**attempt)
    assert list(fake_bfl.tasks) == [task.id]


async def test_retry_after_seconds_is_honoured(make_client, fake_bfl: FakeBfl) -> None:
    """Retry-After: 7 makes the client wait 7 s (more than its own jittered backoff)."""
    sleep = RecordingSleep()
    fake_bfl.fail_submits(429, retry_after="7")
    await make_client(sleep=sleep, random=lambda: 0.5).submit("flux-pro-1.1", PROMPT)
    assert sleep.delays == [7.0]
    assert fake_bfl.submit_statuses() == [429, 200]


async def test_retry_after_http_date_is_honoured(make_client, fake_bfl: FakeBfl) -> None:
    """Retry-After as an HTTP-date 30 s ahead makes the client wait about 30 s."""
    sleep = RecordingSleep()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake_bfl.fail_submits(429, retry_after=when)
    await make_client(sleep=sleep).submit("flux-pro-1.1", PROMPT)
    assert len(sleep.delays) == 1
    assert 27 <= sleep.delays[0] <= 30


async def test_jittered_backoff_wins_over_a_short_retry_after(make_client, fake_bfl: FakeBfl) -> None:
    """delay = max(Retry-After, jittered backoff)."""
    sleep = RecordingSleep()
    fake_bfl.fail_submits(429, retry_after="0")
    await make_client(sleep=sleep, backoff_base=2.0, backoff_cap=20.0, random=lambda: 0.5).submit(
        "flux-pro-1.1", PROMPT
    )
    assert sleep.delays == [1.0]


async def test_429_exhausted_raises_rate_limited(make_client, fake_bfl: FakeBfl) -> None:
    """After submit_retries retries of 429 the client gives up with BflRateLimited."""
    sleep = RecordingSleep()
    client = make_client(sleep=sleep, submit_retries=3, backoff_base=1.0, backoff_cap=3.0, random=lambda: 1.0)
    fake_bfl.fail_submits(429, times=10)
    with pytest.raises(BflRateLimited):
        await client.submit("flux-pro-1.1", PROMPT)
    assert fake_bfl.submit_statuses() == [429] * 4
    assert sleep.delays == [1.0, 2.0, 3.0]  # capped at backoff_cap
    assert fake_bfl.tasks == {}


async def test_very_long_retry_after_gives_up_at_once(make_client, fake_bfl: FakeBfl) -> None:
    """A Retry-After of an hour is not slept through: BflRateLimited carries it instead."""
    sleep = RecordingSleep()
    fake_bfl.fail_submits(429, retry_after="3600")
    with pytest.raises(BflRateLimited) as caught:
        await make_client(sleep=sleep).submit("flux-pro-1.1", PROMPT)
    assert caught.value.retry_after == 3600
    assert sleep.delays == []
    assert fake_bfl.submit_statuses() == [429]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_submit_5xx_is_outcome_unknown_and_never_resent(make_client, fake_bfl: FakeBfl, status: int) -> None:
    """A 5xx on submit does not prove that no task exists: BflSubmitOutcomeUnknown, one request only."""
    sleep = RecordingSleep()
    fake_bfl.fail_submits(status, times=3, retry_after="1")
    with pytest.raises(BflSubmitOutcomeUnknown) as caught:
        await make_client(sleep=sleep).submit("flux-pro-1.1", PROMPT)
    assert caught.value.status == status
    assert caught.value.endpoint == "flux-pro-1.1"
    assert fake_bfl.submit_statuses() == [status]
    assert sleep.delays == []


async def test_gateway_error_after_creation_bills_once_and_is_not_resent(make_client, fake_bfl: FakeBfl) -> None:
    """BFL creates and bills the task, then the gateway answers 502: one task, one request, unknown outcome."""
    sleep = RecordingSleep()
    fake_bfl.script(Behaviour(submit_status_after_create=502))
    with pytest.raises(BflSubmitOutcomeUnknown) as caught:
        await make_client(sleep=sleep).submit("flux-pro-1.1", PROMPT)
    assert caught.value.status == 502
    assert len(fake_bfl.submits) == 1
    assert fake_bfl.submit_statuses() == [502]
    assert len(fake_bfl.tasks) == 1
    assert fake_bfl.submits[0].task_id in fake_bfl.tasks
    assert fake_bfl.credits == Decimal(996)  # billed exactly once
    assert sleep.delays == []


async def test_connection_refused_is_retried_then_server_error(session: aiohttp.ClientSession) -> None:
    """Nothing listening: the request never left, so it is retried; then BflServerError(status=None)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = RecordingSleep()
    client = BflClient(
        session=session,
        api_key=SecretStr("k"),
        base_url=f"http://127.0.0.1:{port}",
        policy=BflPolicy(submit_retries=2),
        sleep=sleep,
    )
    with pytest.raises(BflServerError) as caught:
        await client.submit("flux-pro-1.1", PROMPT)
    assert caught.value.status is None
    assert len(sleep.delays) == 2


async def test_submit_timeout_is_outcome_unknown_and_never_resent(make_client, fake_bfl: FakeBfl) -> None:
    """A submit that reached BFL but got no answer in time is not resent (it would bill twice)."""
    sleep = RecordingSleep()
    fake_bfl.script(Behaviour(hang=True))
    client = make_client(sleep=sleep, submit_timeout=aiohttp.ClientTimeout(total=0.3))
    with pytest.raises(BflSubmitOutcomeUnknown) as caught:
        await client.submit("flux-pro-1.1", PROMPT)
    assert caught.value.endpoint == "flux-pro-1.1"
    assert len(fake_bfl.submits) == 1
    assert len(fake_bfl.tasks) == 1  # the task exists and was billed
    assert fake_bfl.credits == Decimal(996)
    assert sleep.delays == []


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(Behaviour(disconnect=True), id="disconnect-after-send"),
        pytest.param(Behaviour(malformed_response=True), id="malformed-200"),
    ],
)
async def test_an_answer_lost_after_the_task_was_created_is_outcome_unknown(
    make_client, fake_bfl: FakeBfl, behaviour: Behaviour
) -> None:
    """The connection dropped after the request arrived, or HTTP 200 with a body that is not JSON: the
    task probably exists, so the outcome is unknown and the submit is not resent."""
    sleep = RecordingSleep()
    fake_bfl.script(behaviour)
    with pytest.raises(BflSubmitOutcomeUnknown):
        await make_client(sleep=sleep).submit("flux-pro-1.1", PROMPT)
    assert len(fake_bfl.submits) == 1
    assert len(fake_bfl.tasks) == 1
    assert sleep.delays == []


async def test_submit_redirect_is_not_followed(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A 307 on submit is not followed, so x-key never reaches the Location host."""
    location = f"{fake_bfl.delivery_host.url}/v1/flux-pro-1.1"
    fake_bfl.script(Behaviour(submit_status=307, submit_headers={"Location": location}))
    with pytest.raises(BflBadRequest) as caught:
        await client.submit("flux-pro-1.1", PROMPT)
    assert caught.value.status == 307
    assert fake_bfl.delivery_host.requests == []


async def test_webhook_style_answer_falls_back_to_get_result(client: BflClient, fake_bfl: FakeBfl) -> None:
    """An answer without polling_url is polled at {base_url}/v1/get_result?id=<id>."""
    fake_bfl.script(Behaviour(webhook_response=True))
    task = await client.submit("flux-pro-1.1", PROMPT)
    assert task.polling_url == f"{fake_bfl.url}/v1/get_result?id={task.id}"
    result = await client.wait_for_result(task, timeout=5)
    assert result.id == task.id


async def test_cost_is_exact_decimal_and_optional(client: BflClient, fake_bfl: FakeBfl) -> None:
    """FLUX.2 megapixel cost arrives as an exact Decimal; a missing cost is None."""
    flux2 = await client.submit("flux-2-pro", {"prompt": "a fox", "width": 1440, "height": 1376})
    fake_bfl.script(Behaviour(cost=None))
    no_cost = await client.submit("flux-pro-1.1", PROMPT)
    assert flux2.cost_credits == Decimal("4.47")
    assert flux2.cost_micros == 44_700
    assert no_cost.cost_credits is None
    assert no_cost.cost_micros is None


async def test_errors_and_logs_never_contain_the_key(
    make_client, fake_bfl: FakeBfl, caplog: pytest.LogCaptureFixture
) -> None:
    """A server echoing the key in an error body: the key is redacted; logs never show it."""
    caplog.set_level(logging.DEBUG)
    client = make_client(sleep=RecordingSleep())
    fake_bfl.fail_submits(429)
    fake_bfl.fail_submits(400, body={"detail": f"key {fake_bfl.api_key} is not allowed here"})
    with pytest.raises(BflBadRequest) as caught:
        await client.submit("flux-pro-1.1", PROMPT)
    assert fake_bfl.api_key not in str(caught.value)
    assert fake_bfl.api_key not in repr(caught.value.args)
    assert "***" in str(caught.value)
    await run_job(client, "flux-pro-1.1", PROMPT)
    assert caplog.records
    assert fake_bfl.api_key not in caplog.text


async def test_session_with_default_auth_header_is_refused() -> None:
    """A session that would send x-key everywhere (downloads, redirects) is rejected up front."""
    async with aiohttp.ClientSession(headers={"X-Key": "secret"}) as session:
        with pytest.raises(ValueError, match="x-key"):
            BflClient(session=session, api_key=SecretStr("secret"), base_url="https://api.bfl.ai")


async def test_invalid_endpoint_is_refused(client: BflClient, fake_bfl: FakeBfl) -> None:
    """Endpoint names cannot smuggle paths or queries."""
    for endpoint in ("../credits", "flux-pro-1.1?x=1", "", "v1/flux-dev", "flux-tools/../credits", "flux-tools/"):
        with pytest.raises(ValueError, match="endpoint"):
            await client.submit(endpoint, PROMPT)
    assert fake_bfl.submits == []


# -- download --------------------------------------------------------------------------------------


async def test_expired_delivery_url_fails_without_retry(make_client, fake_bfl: FakeBfl) -> None:
    """An expired signed URL (403) is a BflDownloadError at once."""
    sleep = RecordingSleep()
    client = make_client(sleep=sleep)
    fake_bfl.script(Behaviour(delivery_ttl=0))
    task = await client.submit("flux-pro-1.1", PROMPT)
    result = await client.wait_for_result(task, timeout=5)
    with pytest.raises(BflDownloadError) as caught:
        await client.download(result.sample_url)
    assert caught.value.status == 403
    assert len(fake_bfl.downloads) == 1
    assert sleep.delays == []


async def test_download_retries_transient_errors(make_client, fake_bfl: FakeBfl) -> None:
    """503 then 500 from the CDN are retried."""
    sleep = RecordingSleep()
    fake_bfl.script(Behaviour(delivery_errors=(503, 500)))
    data = await run_job(make_client(sleep=sleep), "flux-pro-1.1", PROMPT)
    assert Image.open(io.BytesIO(data)).size == (512, 384)
    assert [d.status for d in fake_bfl.downloads] == [503, 500, 200]
    assert len(sleep.delays) == 2


async def test_download_gives_up_after_three_retries(make_client, fake_bfl: FakeBfl) -> None:
    """Four 503s in a row: BflDownloadError after 1 + 3 attempts."""
    fake_bfl.script(Behaviour(delivery_errors=(503,) * 6))
    with pytest.raises(BflDownloadError):
        await run_job(make_client(sleep=RecordingSleep()), "flux-pro-1.1", PROMPT)
    assert len(fake_bfl.downloads) == 4


@pytest.mark.parametrize("chunked", [False, True])
async def test_download_over_max_bytes_fails(client: BflClient, fake_bfl: FakeBfl, chunked: bool) -> None:
    """A body over max_bytes is refused, whether or not it declares its length."""
    fake_bfl.script(Behaviour(delivery_chunked=chunked))
    task = await client.submit("flux-pro-1.1", {**PROMPT, "output_format": "png"})
    result = await client.wait_for_result(task, timeout=5)
    whole = await client.download(result.sample_url)
    with pytest.raises(BflDownloadError, match="too large"):
        await client.download(result.sample_url, max_bytes=len(whole) - 1)
    assert await client.download(result.sample_url, max_bytes=len(whole)) == whole


async def test_download_requires_http(client: BflClient, fake_bfl: FakeBfl) -> None:
    """Only http(s) result URLs are fetched."""
    for url in ("file:///etc/passwd", "ftp://example.com/x.jpg", "not a url"):
        with pytest.raises(BflDownloadError):
            await client.download(url)
    assert fake_bfl.downloads == []


# -- credits ---------------------------------------------------------------------------------


async def test_get_credits(make_client, fake_bfl: FakeBfl) -> None:
    """The balance is read as a Decimal and drops by each task's cost; a bad key is an auth error."""
    client = make_client()
    assert await client.get_credits() == Decimal(1000)
    await client.submit("flux-2-klein-4b", {"prompt": "tiny", "width": 1024, "height": 1024})
    assert await client.get_credits() == Decimal("998.59")
    with pytest.raises(BflAuthError):
        await make_client(api_key=SecretStr("nope")).get_credits()


# -- adaptive polling (PollPlan) -------------------------------------------------------------------


async def test_warm_plan_waits_then_polls_densely_around_the_finish(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A model that always takes 0.5 s: no poll before ~0.45 s, then a few polls catch Ready quickly."""
    fake_bfl.script(Behaviour(run_seconds=0.5, stages=FLUX3_STAGES))
    plan = LatencyModel({"flux-pro-1.1": [0.5] * 10}).plan("flux-pro-1.1")
    assert plan.first_poll == pytest.approx(0.45)
    task = await client.submit("flux-pro-1.1", PROMPT)
    started = asyncio.get_running_loop().time()
    await client.wait_for_result(task, timeout=5, plan=plan)

    fake_task = fake_bfl.tasks[task.id]
    assert fake_bfl.polls[0].time - started >= 0.45 - 0.01  # never before the early quantile
    assert 2 <= fake_task.polls <= 3  # FAST_POLLS without the plan would poll ~20 times
    assert fake_task.ready_at is not None and fake_task.ready_answered_at is not None
    assert 0 <= fake_task.ready_answered_at - fake_task.ready_at < 0.15


async def test_plan_never_sleeps_past_the_deadline(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A plan whose first poll lies beyond the deadline polls once, right at the deadline, then times out."""
    fake_bfl.script(Behaviour(run_seconds=60))
    task = await client.submit("flux-pro-1.1", PROMPT)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BflTimeout):
        await client.wait_for_result(task, timeout=0.2, plan=PollPlan(first_poll=5.0, interval=1.0, tail_start=10.0))
    assert loop.time() - started < 1.0
    assert len(fake_bfl.polls) == 1
    assert fake_bfl.polls[0].time - started >= 0.19


@pytest.mark.parametrize(("offset", "expected"), [(0.0, [0.4]), (0.1, [0.3]), (30.0, [])])
async def test_elapsed_offset_counts_time_since_acceptance(
    make_client, fake_bfl: FakeBfl, offset: float, expected: list[float]
) -> None:
    """A resumed job (accepted ``offset`` s ago) waits only what is left of the quiet phase, or not at all."""
    sleep = RecordingSleep()
    client = make_client(sleep=sleep)
    task = await client.submit("flux-pro-1.1", PROMPT)
    plan = PollPlan(first_poll=0.4, interval=0.1, tail_start=1.0)
    await client.wait_for_result(task, timeout=5, plan=plan, elapsed_offset=offset)
    assert sleep.delays == pytest.approx(expected, abs=0.02)
    assert len(fake_bfl.polls) == 1


async def test_retry_after_on_poll_wins_over_the_plan(make_client, fake_bfl: FakeBfl) -> None:
    """The plan says 0.1 s, the poll's Retry-After says 2 s: the client waits 2 s."""
    sleep = RecordingSleep()
    fake_bfl.script(Behaviour(poll_errors=(429,), poll_retry_after="2"))
    client = make_client(sleep=sleep)
    task = await client.submit("flux-pro-1.1", PROMPT)
    await client.wait_for_result(task, timeout=5, plan=PollPlan(first_poll=0.0, interval=0.1, tail_start=10.0))
    assert sleep.delays == [2.0]
    assert [p.status for p in fake_bfl.polls] == [429, 200]


# -- result URL expiry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://delivery-eu.bfl.ai/results/ab/sample.jpeg?se=2030-01-01T00%3A00%3A00Z&sp=r&sig=x",
            datetime(2030, 1, 1, tzinfo=UTC),
        ),
        ("https://d.bfl.ai/s.png?sp=r&se=2026-12-01T10:30:00Z&sig=x", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
        ("https://d.bfl.ai/s.png?se=2026-12-01T11:30:00+01:00", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
        ("https://d.bfl.ai/s.png?se=2026-12-01T10%3A30%3A00", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
        ("https://d.bfl.ai/s.png?se=2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("https://d.bfl.ai/s.png?sp=r&sig=x", None),
        ("https://d.bfl.ai/s.png?se=&sig=x", None),
        ("https://d.bfl.ai/s.png?se=tomorrow", None),
        ("https://d.bfl.ai/s.png?se=2026-13-45T99:00:00Z", None),
        ("https://d.bfl.ai/s.png?notse=2026-12-01T10:30:00Z", None),
        ("not a url at all", None),
        ("", None),
    ],
)
def test_result_url_expiry(url: str, expected: datetime | None) -> None:
    """The se= parameter is read as an aware UTC datetime; absent or garbled gives None."""
    assert result_url_expiry(url) == expected
    if expected is not None:
        assert result_url_expiry(url).tzinfo is not None


async def test_result_url_expiry_of_a_real_sample(client: BflClient, fake_bfl: FakeBfl) -> None:
    """The fake's Azure-SAS-style sample URL expires at its se= (2030-01-01 UTC)."""
    task = await client.submit("flux-pro-1.1", PROMPT)
    result = await client.wait_for_result(task, timeout=5)
    assert result_url_expiry(result.sample_url) == datetime(2030, 1, 1, tzinfo=UTC)
