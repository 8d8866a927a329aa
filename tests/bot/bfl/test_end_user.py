"""``user`` on submits: the model table says which routes take it; BflClient adds it; EndUserIds makes it."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.bfl.client import BflClient
from bot.bfl.end_user import EndUserIds
from bot.models import MODELS
from tests.fakes.fake_bfl import LORA_ROUTES, FakeBfl, generation_routes, load_spec
from tests.fakes.test_fake_bfl import png_base64


@pytest.fixture
async def client(fake_bfl: FakeBfl):
    async with aiohttp.ClientSession() as session:
        yield BflClient(session=session, api_key=SecretStr(fake_bfl.api_key), base_url=fake_bfl.url)


def route_takes_user(key: str) -> bool:
    if key in LORA_ROUTES:  # not in BFL's openapi.json: their own (reconstructed) schema files
        return "user" in generation_routes()[key].properties
    spec = load_spec()
    body = spec["paths"][f"/v1/{key}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schemas = spec["components"]["schemas"]
    schema = schemas[body["$ref"].rsplit("/", 1)[-1]]
    variants = [schemas[v["$ref"].rsplit("/", 1)[-1]] for v in schema.get("oneOf", [])]  # FLUX 3 video's modes
    return all("user" in s.get("properties", {}) for s in variants or [schema])


@pytest.mark.parametrize("key", list(MODELS))
def test_the_model_table_says_which_routes_take_user_as_the_2026_spec_does(key: str) -> None:
    assert MODELS[key].takes_user == route_takes_user(key)


def test_flux_3_image_is_the_one_model_without_user() -> None:
    assert [key for key, spec in MODELS.items() if not spec.takes_user] == ["flux-3-image"]


async def test_submit_adds_user_where_the_route_takes_it(client: BflClient, fake_bfl: FakeBfl) -> None:
    payload: dict[str, Any] = {"prompt": "a quiet harbour"}
    await client.submit("flux-pro-1.1", payload, user="f" * 64)
    await client.submit("flux-3-image", payload, user="f" * 64)
    await client.submit("flux-2-pro", payload)
    assert [s.body.get("user") for s in fake_bfl.submits] == ["f" * 64, None, None]
    assert [s.status for s in fake_bfl.submits] == [200, 200, 200] and fake_bfl.schema_errors == []
    assert payload == {"prompt": "a quiet harbour"}  # the caller's payload (a job's stored params) is untouched


async def test_submit_reaches_a_flux_tools_route_with_user(client: BflClient, fake_bfl: FakeBfl) -> None:
    """``flux-tools/deblur-v1`` (Sharpen) is a table route under ``/v1/flux-tools/``; its schema takes ``user``."""
    task = await client.submit("flux-tools/deblur-v1", {"image": png_base64()}, user="f" * 64)
    assert task.cost_credits is not None and fake_bfl.submits[0].model == "flux-tools/deblur-v1"
    assert fake_bfl.submits[0].body["user"] == "f" * 64 and fake_bfl.schema_errors == []


async def test_submit_sends_user_to_no_route_outside_the_model_table(client: BflClient, fake_bfl: FakeBfl) -> None:
    """A route the table does not describe may have a strict schema: better no id than a 422."""
    await client.submit("flux-pro-1.1-ultra-finetuned", {"prompt": "x", "finetune_id": "ft"}, user="f" * 64)
    assert "user" not in fake_bfl.submits[0].body and fake_bfl.submits[0].status == 200


def test_the_id_is_an_hmac_of_server_and_member_under_the_install_key() -> None:
    ids = EndUserIds.from_key("00" * 32)
    expected = hmac.new(bytes(32), b"1000:3000", hashlib.sha256).hexdigest()
    assert ids.of(1000, 3000) == expected and len(expected) == 64
    assert ids.of(1000, 3000) != ids.of(3000, 1000) != ids.of(100, 3000)
    assert ids.of(1000, 3000) != ids.of(10003, 0)  # "1000:3000" is not "10003:000"
