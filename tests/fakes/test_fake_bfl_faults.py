"""The fake BFL's fault abilities: Task not found after a submit, poll errors with an Error body, exact
billing per task, and seeded random faults (raw aiohttp, no client)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from tests.fakes.fake_bfl import Behaviour, BflFaultRates, Charge, FakeBfl, RandomBflFaults
from tests.fakes.test_fake_bfl import poll_through


@pytest.fixture
async def http(fake_bfl: FakeBfl) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=fake_bfl.url, headers={"x-key": fake_bfl.api_key}) as session:
        yield session


async def post(http: aiohttp.ClientSession, body: dict, model: str = "flux-pro-1.1") -> tuple[int, dict | str]:
    async with http.post(f"/v1/{model}", json=body) as resp:
        return resp.status, await resp.json(content_type=None) if resp.content_type == "application/json" else ""


async def test_task_not_found_for_the_first_polls_then_the_task(fake_bfl: FakeBfl, http: aiohttp.ClientSession):
    fake_bfl.script(Behaviour(not_found_polls=2))
    status, answer = await post(http, {"prompt": "a fox"})
    assert status == 200
    async with http.get(answer["polling_url"]) as first, http.get(answer["polling_url"]) as second:
        assert [(await first.json())["status"], (await second.json())["status"]] == ["Task not found"] * 2
    answers = await poll_through(http, answer["polling_url"])
    assert answers[-1]["status"] == "Ready"  # the task existed all along
    assert fake_bfl.billed_micros(answer["id"]) == 40_000


@pytest.mark.parametrize(("body", "expected"), [(None, None), ({"status": "Error"}, "Error")])
async def test_poll_5xx_with_or_without_an_error_status(fake_bfl: FakeBfl, http: aiohttp.ClientSession, body, expected):
    fake_bfl.script(Behaviour(poll_errors=(503,), poll_error_body=body))
    _, answer = await post(http, {"prompt": "a fox"})
    async with http.get(answer["polling_url"]) as resp:
        assert resp.status == 503
        assert (await resp.json()).get("status") == expected
    assert fake_bfl.polls[-1].task_status == expected


async def test_every_created_task_is_billed_exactly_and_nothing_else(fake_bfl: FakeBfl, http: aiohttp.ClientSession):
    fake_bfl.script(
        Behaviour(submit_status=503),  # refused before creation: nothing billed
        Behaviour(submit_status_after_create=502),  # created, billed, then a gateway error
        Behaviour(final_status="Content Moderated"),  # filtered output is still charged
        Behaviour(submit_status=429, retry_after="1"),  # no task
    )
    statuses = [(await post(http, {"prompt": f"p{n}", "seed": n}, "flux-2-klein-4b"))[0] for n in range(4)]
    assert statuses == [503, 502, 200, 429]
    moderated = fake_bfl.submits[2].task_id
    answers = await poll_through(http, f"/v1/get_result?id={moderated}")
    assert answers[-1]["status"] == "Content Moderated"
    billed = {c.task_id: c.micros for c in fake_bfl.charges}
    # klein 4B at its default 1024×1024 (1.05 MP): 1.4 + 0.1 × 0.05 credits, rounded to 1.41 ($0.0141)
    assert billed == {fake_bfl.submits[1].task_id: 14_100, moderated: 14_100}
    assert fake_bfl.billed_micros() == 28_200 == int((Decimal(1000) - fake_bfl.credits) * 10_000)


def test_a_charge_is_whole_micro_dollars():
    assert Charge("t", "flux-2-klein-4b", Decimal("1.41"), 0.0).micros == 14_100
    with pytest.raises(ValueError, match="micro-dollars"):
        _ = Charge("t", "m", Decimal("0.00001"), 0.0).micros


def test_random_faults_are_reproducible_per_request_whatever_the_order():
    bodies = [{"prompt": f"request {n}", "seed": n} for n in range(200)]
    one, two = RandomBflFaults(7), RandomBflFaults(7)
    forward = [one("flux-pro-1.1", body) for body in bodies]
    backward = [two("flux-pro-1.1", body) for body in reversed(bodies)][::-1]
    assert forward == backward
    assert one.injected == two.injected and sum(one.injected.values()) > 0
    assert [RandomBflFaults(8)("flux-pro-1.1", body) for body in bodies] != forward  # the seed matters


def test_a_resubmit_draws_again():
    faults = RandomBflFaults(1, BflFaultRates.only(rate_limited=0.5))
    body = {"prompt": "again", "seed": 1}
    draws = [faults("flux-pro-1.1", body).submit_status for _ in range(40)]
    assert 429 in draws and None in draws


@pytest.mark.parametrize("kind", BflFaultRates.kinds())
def test_each_fault_kind_alone(kind):
    rates = BflFaultRates.only(**{kind: 1.0})
    faults = RandomBflFaults(3, rates)
    behaviour = faults("flux-pro-1.1", {"prompt": "x", "seed": 1})
    assert faults.injected == Counter({kind: 1})
    normal = RandomBflFaults(3, BflFaultRates.only())("flux-pro-1.1", {"prompt": "x", "seed": 1})
    assert behaviour != normal


def test_disabled_faults_inject_nothing_and_rates_are_checked():
    faults = RandomBflFaults(2, BflFaultRates().scaled(3), enabled=False)
    assert all(faults("flux-pro-1.1", {"prompt": str(n)}).submit_status is None for n in range(100))
    assert faults.injected == Counter()
    with pytest.raises(ValueError, match="sum to"):
        BflFaultRates().scaled(10)


async def test_random_faults_drive_the_fake(fake_bfl: FakeBfl, http: aiohttp.ClientSession):
    fake_bfl.behaviour_source = RandomBflFaults(5, BflFaultRates.only())
    status, answer = await post(http, {"prompt": "calm"})
    assert status == 200 and fake_bfl.tasks[answer["id"]].time_based
    fake_bfl.behaviour_source = RandomBflFaults(5, BflFaultRates.only(error_before=1.0))
    assert (await post(http, {"prompt": "stormy"}))[0] in (500, 502, 503)
    assert len(fake_bfl.charges) == 1
