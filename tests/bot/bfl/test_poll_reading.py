"""One poll at a time (``BflClient.poll``) and the polling facts of issue 21, against the fake BFL.

Early ``Task not found`` is transient within a window after the submit; a 500/503 poll is read (an
``Error`` body ends the task, anything else is transient up to a bound); redirects are followed
with the key sent only to BFL's hosts or the configured API origin.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.bfl.client import (
    POLL_FAILURE_LIMIT,
    TASK_NOT_FOUND_WINDOW,
    BflClient,
    BflPolicy,
    PollPlan,
    PollReading,
    SubmittedTask,
)
from bot.bfl.errors import BflModerated, BflTaskFailed, BflTaskNotFound, BflUnsafeUrl
from tests.fakes.fake_bfl import MOVED_POLLING_PATH, Behaviour, FakeBfl

FAST_POLLS = PollPlan(first_poll=0.0, interval=0.005, tail_start=0.05, max_interval=0.02)
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
async def session():
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


# -- one poll --------------------------------------------------------------------------------------


async def test_one_poll_is_one_request_and_never_sleeps(make_client, fake_bfl: FakeBfl) -> None:
    """poll() reads once: status and progress while running, the result exactly when Ready."""
    sleep = RecordingSleep()
    client = make_client(sleep=sleep)
    fake_bfl.script(Behaviour(pending_polls=1))
    task = await client.submit("flux-pro-1.1", PROMPT)

    running = await client.poll(task, since_submit=0.1)
    assert running == PollReading(status="Pending", progress=0.5, result=None, failed=False, retry_after=None)
    ready = await client.poll(task, since_submit=0.2)
    assert ready.status == "Ready" and ready.result is not None and ready.result.id == task.id
    assert not ready.failed and len(fake_bfl.polls) == 2 and sleep.delays == []


async def test_a_foreign_polling_url_is_refused_before_any_request(client: BflClient, fake_bfl: FakeBfl) -> None:
    task = SubmittedTask(id="t", polling_url=f"{fake_bfl.delivery_host.url}/v1/get_result?id=t", cost_credits=None)
    with pytest.raises(BflUnsafeUrl):
        await client.poll(task, since_submit=0.0)
    assert fake_bfl.polls == [] and fake_bfl.delivery_host.requests == []


# -- Task not found right after the submit ----------------------------------------------------------


def test_the_window_defaults_to_ten_seconds() -> None:
    assert TASK_NOT_FOUND_WINDOW == 10.0


@pytest.mark.parametrize("http_status", [200, 404])
async def test_task_not_found_within_the_window_keeps_polling(
    client: BflClient, fake_bfl: FakeBfl, http_status: int
) -> None:
    """Twice Task not found (as a status or an HTTP 404), then Ready: one submit, the image arrives."""
    fake_bfl.script(Behaviour(not_found_polls=2, not_found_http=http_status))
    task = await client.submit("flux-pro-1.1", PROMPT)

    early = await client.poll(task, since_submit=0.5)
    assert early == PollReading(status=None, progress=None, result=None, failed=False, retry_after=None)
    result = await client.wait_for_result(task, timeout=5)
    assert result.id == task.id
    assert [p.status for p in fake_bfl.polls] == [http_status, http_status, 200]
    assert len(fake_bfl.submits) == 1


@pytest.mark.parametrize("http_status", [200, 404])
async def test_task_not_found_past_the_window_is_final(client: BflClient, fake_bfl: FakeBfl, http_status: int) -> None:
    fake_bfl.script(Behaviour(not_found_polls=5, not_found_http=http_status))
    task = await client.submit("flux-pro-1.1", PROMPT)
    with pytest.raises(BflTaskNotFound) as caught:
        await client.poll(task, since_submit=TASK_NOT_FOUND_WINDOW + 0.1)
    assert caught.value.task_id == task.id
    with pytest.raises(BflTaskNotFound):  # a job resumed after a restart is long past it
        await client.wait_for_result(task, timeout=5, elapsed_offset=60.0)
    assert len(fake_bfl.polls) == 2


async def test_the_window_is_a_setting(make_client, fake_bfl: FakeBfl) -> None:
    """task_not_found_window=0: the first Task not found ends the task, as before issue 21."""
    client = make_client(task_not_found_window=0.0)
    fake_bfl.script(Behaviour(not_found_polls=1))
    task = await client.submit("flux-pro-1.1", PROMPT)
    with pytest.raises(BflTaskNotFound):
        await client.wait_for_result(task, timeout=5)
    assert len(fake_bfl.polls) == 1


async def test_task_not_found_for_the_whole_window_then_ends(make_client, fake_bfl: FakeBfl) -> None:
    """wait_for_result measures the window from the submit: a task never registered fails once it passes."""
    client = make_client(task_not_found_window=0.15)
    fake_bfl.script(Behaviour(not_found_polls=10_000))
    task = await client.submit("flux-pro-1.1", PROMPT)
    started = asyncio.get_running_loop().time()
    with pytest.raises(BflTaskNotFound):
        await client.wait_for_result(task, timeout=5)
    assert 0.15 <= asyncio.get_running_loop().time() - started < 2.0
    assert len(fake_bfl.polls) >= 3


# -- 500 and 503 are read ---------------------------------------------------------------------------


@pytest.mark.parametrize("http_status", [500, 503])
async def test_a_5xx_poll_whose_body_says_error_ends_the_task(
    client: BflClient, fake_bfl: FakeBfl, http_status: int
) -> None:
    fake_bfl.script(Behaviour(pending_polls=1, final_status="Error", final_http_status=http_status))
    task = await client.submit("flux-pro-1.1", PROMPT)
    with pytest.raises(BflTaskFailed) as caught:
        await client.wait_for_result(task, timeout=5)
    assert (caught.value.status, caught.value.task_id) == ("Error", task.id)
    assert [p.status for p in fake_bfl.polls] == [200, http_status]


@pytest.mark.parametrize("http_status", [500, 503])
async def test_a_5xx_poll_with_another_final_status_ends_the_task_with_it(
    client: BflClient, fake_bfl: FakeBfl, http_status: int
) -> None:
    fake_bfl.script(Behaviour(poll_errors=(http_status,), poll_error_body={"status": "Content Moderated"}))
    task = await client.submit("flux-pro-1.1", PROMPT)
    with pytest.raises(BflModerated) as caught:
        await client.poll(task, since_submit=1.0)
    assert caught.value.stage == "content"


@pytest.mark.parametrize("http_status", [500, 503])
@pytest.mark.parametrize("body", [None, "<html><h1>Service Unavailable</h1></html>"])
async def test_a_5xx_poll_without_a_final_body_is_transient(
    client: BflClient, fake_bfl: FakeBfl, http_status: int, body: str | None
) -> None:
    """No final status in the body (a JSON detail, an HTML page): poll again after a backoff."""
    fake_bfl.script(Behaviour(poll_errors=(http_status,), poll_error_body=body))
    task = await client.submit("flux-pro-1.1", PROMPT)
    reading = await client.poll(task, since_submit=1.0)
    assert reading == PollReading(status=None, progress=None, result=None, failed=True, retry_after=None)
    assert (await client.poll(task, since_submit=1.1)).result is not None


async def test_5xx_polls_in_a_row_end_the_task_at_the_bound(client: BflClient, fake_bfl: FakeBfl) -> None:
    """After POLL_FAILURE_LIMIT failed polls in a row (the last a 5xx), the accepted task has failed."""
    assert POLL_FAILURE_LIMIT == 5
    fake_bfl.script(Behaviour(poll_errors=(503, 500) * 5))
    task = await client.submit("flux-pro-1.1", PROMPT)
    with pytest.raises(BflTaskFailed) as caught:
        await client.wait_for_result(task, timeout=5)
    assert caught.value.task_id == task.id and caught.value.status == "HTTP 503"  # the fifth: 503
    assert len(fake_bfl.polls) == POLL_FAILURE_LIMIT

    fake_bfl.script(Behaviour(poll_errors=(503,) * (POLL_FAILURE_LIMIT - 1)))  # one short: it recovers
    task = await client.submit("flux-pro-1.1", PROMPT)
    assert (await client.wait_for_result(task, timeout=5)).id == task.id


async def test_the_bound_counts_the_failures_the_caller_reports(client: BflClient, fake_bfl: FakeBfl) -> None:
    fake_bfl.script(Behaviour(poll_errors=(503, 503)))
    task = await client.submit("flux-pro-1.1", PROMPT)
    assert (await client.poll(task, since_submit=1.0, failures=POLL_FAILURE_LIMIT - 2)).failed
    with pytest.raises(BflTaskFailed):
        await client.poll(task, since_submit=1.0, failures=POLL_FAILURE_LIMIT - 1)


async def test_429_on_poll_is_never_a_failed_task(client: BflClient, fake_bfl: FakeBfl) -> None:
    """The task exists: a 429 means "slow down", whatever the count, with its Retry-After."""
    fake_bfl.script(Behaviour(poll_errors=(429,), poll_retry_after="3"))
    task = await client.submit("flux-pro-1.1", PROMPT)
    reading = await client.poll(task, since_submit=1.0, failures=50)
    assert (reading.failed, reading.retry_after, reading.status) == (True, 3.0, None)


def test_poll_backoff_doubles_is_capped_and_honours_retry_after(make_client) -> None:
    client = make_client(backoff_base=0.5, backoff_cap=20.0, random=lambda: 1.0)
    assert [client.poll_backoff(n) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert client.poll_backoff(1, retry_after=7.0) == 7.0
    assert client.poll_backoff(1, retry_after=3600.0) == 60.0  # a longer Retry-After is capped
    half = make_client(backoff_base=0.5, backoff_cap=20.0, random=lambda: 0.0)
    assert half.poll_backoff(3) == 1.0  # half of it jittered


# -- redirects --------------------------------------------------------------------------------------


async def test_a_poll_redirected_on_the_same_origin_is_followed_with_the_key(
    client: BflClient, fake_bfl: FakeBfl
) -> None:
    fake_bfl.script(Behaviour(poll_redirect="same", pending_polls=1))
    task = await client.submit("flux-pro-1.1", PROMPT)
    result = await client.wait_for_result(task, timeout=5)
    assert result.id == task.id
    hops = [(p.host, p.path_qs.split("?")[0], p.status, p.key_ok) for p in fake_bfl.polls]
    assert hops == [
        ("bfl", "/v1/get_result", 302, True),
        ("bfl", MOVED_POLLING_PATH, 200, True),
        ("bfl", "/v1/get_result", 302, True),
        ("bfl", MOVED_POLLING_PATH, 200, True),
    ]


async def test_a_poll_redirected_to_another_origin_is_followed_without_the_key(
    client: BflClient, fake_bfl: FakeBfl
) -> None:
    """The redirect target is on another port of loopback, i.e. another origin: it never sees x-key."""
    fake_bfl.script(Behaviour(poll_redirect="other", pending_polls=1))
    task = await client.submit("flux-pro-1.1", PROMPT)
    result = await client.wait_for_result(task, timeout=5)
    assert result.id == task.id
    other = fake_bfl.delivery_host.requests
    assert len(other) == 2 and all(r.path_qs.startswith("/v1/get_result?id=") for r in other)
    assert all("x-key" not in r.headers and "authorization" not in r.headers for r in other)
    assert [(p.host, p.status) for p in fake_bfl.polls] == [("bfl", 302), ("other", 200)] * 2
    assert all(p.key_ok for p in fake_bfl.polls if p.host == "bfl")


async def test_a_redirect_loop_is_a_failed_poll_and_counts_toward_the_bound(
    client: BflClient, fake_bfl: FakeBfl
) -> None:
    fake_bfl.script(Behaviour(poll_redirect="loop"))
    task = await client.submit("flux-pro-1.1", PROMPT)
    reading = await client.poll(task, since_submit=1.0)
    assert reading.failed and reading.status is None
    hops = len(fake_bfl.polls)
    assert 2 <= hops <= 11  # bounded
    with pytest.raises(BflTaskFailed):
        await client.wait_for_result(task, timeout=5)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.eu2.bfl.ai/v1/get_result?id=1", True),
        ("https://delivery-eu1.bfl.ai/results/1/sample.jpeg", False),  # a delivery host gets no key
        ("https://delivery.bfl.ai/x", False),
        ("https://api.bfl.ai.evil.com/v1/get_result?id=1", False),
    ],
)
def test_which_hosts_may_receive_the_key(client: BflClient, url: str, allowed: bool) -> None:
    if allowed:
        client.check_polling_url(url)
    else:
        with pytest.raises(BflUnsafeUrl):
            client.check_polling_url(url)
