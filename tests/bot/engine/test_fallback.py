"""The fallback offer: mapping a request onto another model, and the offer store on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.audit import AuditLog
from bot.config import Settings
from bot.engine.fallback import (
    EXPIRED_TEXT,
    NOT_YOURS_TEXT,
    WITHDRAWN_TEXT,
    FallbackOffers,
    for_model,
)
from bot.errors import InvalidOptions, NotAllowed
from bot.models import InputImage, build_request
from bot.offers import OfferStore, decode_request, encode_request
from bot.server_settings import ServerSettings

GUILD, ALICE, BOB, MOD = 1000, 3000, 3001, 9000
KLEIN = "flux-2-klein-4b"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def image(width=400, height=300):
    return InputImage(data_b64="aW1hZ2U=", width=width, height=height)


# -- mapping a request onto the fallback model --------------------------------------------------------


def test_options_the_fallback_does_not_take_are_dropped_and_the_seed_is_kept():
    asked = build_request(model="flux-dev", prompt="a fox", aspect_ratio="21:9", seed=7, steps=30, guidance=4.0)
    mapped = for_model(asked, KLEIN)
    assert mapped is not None and mapped.model.key == KLEIN
    assert (mapped.prompt, mapped.seed, mapped.aspect_ratio) == ("a fox", 7, "21:9")
    assert mapped.steps is None and mapped.guidance is None
    assert mapped.estimated_cost_micros == 14_000  # the fallback's own price
    flex = for_model(asked, "flux-2-flex")  # takes steps and guidance, in its own range
    assert flex is not None and (flex.steps, flex.guidance) == (30, 4.0)


def test_an_option_outside_the_fallbacks_range_is_dropped():
    asked = build_request(model="flux-2-flex", prompt="a fox", aspect_ratio=None, seed=1, guidance=8.0)
    mapped = for_model(asked, "flux-dev")  # FLUX.1 [dev] takes guidance 1.5–5
    assert mapped is not None and mapped.guidance is None


def test_a_ratio_the_fallback_lacks_becomes_its_nearest_and_a_seedless_model_gets_one():
    asked = build_request(model="flux-3-image", prompt="a fox", aspect_ratio="2:1", seed=None, resolution="2k")
    mapped = for_model(asked, KLEIN)
    assert mapped is not None and mapped.aspect_ratio == "16:9" and mapped.resolution is None
    assert mapped.nonce is None and mapped.seed >= 0  # a fresh seed, since FLUX 3 has none to keep
    back = for_model(build_request(model=KLEIN, prompt="a fox", aspect_ratio="1:1", seed=5), "flux-3-image")
    assert back is not None and back.nonce is not None and back.grounding is False


def test_no_fallback_that_cannot_take_the_input_images():
    edit = build_request(model="flux-2-pro", prompt="blue", aspect_ratio=None, seed=1, input_images=[image()] * 5)
    assert for_model(edit, "flux-dev") is None  # text-to-image only
    assert for_model(edit, KLEIN) is None  # klein takes at most 4
    assert for_model(edit, "flux-2-max") is not None
    huge = build_request(
        model="flux-3-image", prompt="b", aspect_ratio=None, seed=None, input_images=[image(4000, 3000)]
    )
    assert for_model(huge, "flux-2-pro") is None  # 12 MP: above FLUX.2's 4 MP per input
    assert for_model(build_request(model=KLEIN, prompt="x", aspect_ratio=None, seed=1), KLEIN) is None  # itself
    assert for_model(build_request(model=KLEIN, prompt="x", aspect_ratio=None, seed=1), "no-such-model") is None


def test_no_fallback_between_routes_of_different_shapes():
    """A Sharpen (deblur) is no prompt to render elsewhere, and no model falls back onto a button-only route."""
    sharpened = build_request(
        model="flux-tools/deblur-v1", prompt="a fox", aspect_ratio=None, seed=1, input_images=[image()]
    )
    assert for_model(sharpened, "flux-2-pro") is None and for_model(sharpened, KLEIN) is None
    edit = build_request(model="flux-2-pro", prompt="blue", aspect_ratio=None, seed=1, input_images=[image()])
    assert for_model(edit, "flux-tools/deblur-v1") is None


def test_an_auto_ratio_follows_the_input_image_on_the_fallback():
    edit = build_request(
        model="flux-3-image", prompt="b", aspect_ratio=None, seed=None, input_images=[image(1600, 900)]
    )
    assert edit.aspect_ratio == "auto"
    mapped = for_model(edit, "flux-kontext-pro")
    assert mapped is not None and mapped.aspect_ratio == "16:9" and mapped.input_images == edit.input_images


def test_a_stored_request_comes_back_the_same():
    asked = build_request(
        model="flux-2-pro", prompt="make it 🦊 blue", aspect_ratio="4:3", seed=99, input_images=[image(), image(64, 64)]
    )
    back = decode_request(encode_request(asked))
    assert back.bfl_payload() == asked.bfl_payload() and back.estimated_cost_micros == asked.estimated_cost_micros
    flux3 = build_request(model="flux-3-image", prompt="p", aspect_ratio="auto", seed=None, resolution="1.5k")
    again = decode_request(encode_request(flux3))
    assert again.resolution == "1.5k" and again.nonce not in (None, flux3.nonce)  # a new image, as any FLUX 3 request


# -- the offer store (SQLite and PostgreSQL) ----------------------------------------------------------


@pytest.fixture
def settings():
    return Settings(_env_file=None, discord_token="x" * 10, bfl_api_key="y" * 10)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def healthy():
    return {KLEIN, "flux-dev", "flux-2-max"}


@pytest.fixture
def offers(db, settings, clock, healthy):
    return FallbackOffers(
        OfferStore(db, clock=clock), ServerSettings(db, AuditLog(db, clock)), healthy=lambda m: m in healthy
    )


async def allow(db, settings, model):
    await ServerSettings(db, AuditLog(db)).update(
        GUILD, "fallback_model", model, actor_id=MOD, action="fallback.set", shown=model
    )


def asked(**options):
    return build_request(model="flux-pro-1.1", prompt="a lighthouse", aspect_ratio="3:2", seed=12, **options)


async def test_no_offer_without_a_fallback_or_when_it_is_down_or_the_same_model(db, settings, offers, healthy):
    assert await offers.offer(asked(), guild_id=GUILD, user_id=ALICE, private=False) is None  # the default: none
    await allow(db, settings, "flux-pro-1.1")
    assert await offers.offer(asked(), guild_id=GUILD, user_id=ALICE, private=False) is None
    await allow(db, settings, KLEIN)
    healthy.discard(KLEIN)
    assert await offers.offer(asked(), guild_id=GUILD, user_id=ALICE, private=False) is None  # its breaker is open
    assert await db.fetch_value("SELECT COUNT(*) FROM offers WHERE kind = 'fallback'") == 0


async def test_an_offer_is_used_once_by_its_member_only(db, settings, offers):
    await allow(db, settings, KLEIN)
    offer = await offers.offer(asked(), guild_id=GUILD, user_id=ALICE, private=True)
    assert offer is not None and offer.price_micros == 14_000 and len(offer.id) == 16
    assert "lighthouse" not in offer.id
    with pytest.raises(NotAllowed, match=NOT_YOURS_TEXT):
        await offers.take(offer.id, guild_id=GUILD, user_id=BOB)
    with pytest.raises(InvalidOptions, match="expired"):
        await offers.take(offer.id, guild_id=GUILD + 1, user_id=ALICE)  # another server's click
    taken = await offers.take(offer.id, guild_id=GUILD, user_id=ALICE)
    assert taken.private and taken.request.model.key == KLEIN and taken.request.seed == 12
    assert taken.request.bfl_payload() == offer.request.bfl_payload()
    with pytest.raises(InvalidOptions, match=EXPIRED_TEXT.split(".")[0]):
        await offers.take(offer.id, guild_id=GUILD, user_id=ALICE)  # used once
    with pytest.raises(InvalidOptions):
        await offers.take("0123456789abcdef", guild_id=GUILD, user_id=ALICE)


async def test_an_offer_expires_and_expired_offers_are_swept(db, settings, offers, clock):
    await allow(db, settings, KLEIN)
    old = await offers.offer(asked(), guild_id=GUILD, user_id=ALICE, private=False)
    clock.now += timedelta(seconds=600)
    with pytest.raises(InvalidOptions, match="expired"):
        await offers.take(old.id, guild_id=GUILD, user_id=ALICE)
    new = await offers.offer(asked(), guild_id=GUILD, user_id=BOB, private=False)  # sweeps the expired one
    assert await db.fetch_value("SELECT id FROM offers WHERE kind = 'fallback'") == new.id


async def test_an_offer_is_withdrawn_when_moderators_change_the_fallback(db, settings, offers):
    await allow(db, settings, KLEIN)
    offer = await offers.offer(asked(), guild_id=GUILD, user_id=ALICE, private=False)
    await allow(db, settings, "flux-2-max")
    with pytest.raises(InvalidOptions, match=WITHDRAWN_TEXT.split(";")[0]):
        await offers.take(offer.id, guild_id=GUILD, user_id=ALICE)
    assert await db.fetch_value("SELECT COUNT(*) FROM offers WHERE kind = 'fallback'") == 0


async def test_an_edit_offer_keeps_its_source_and_its_images(db, settings, offers):
    await allow(db, settings, KLEIN)
    edit = build_request(model="flux-2-pro", prompt="blue", aspect_ratio=None, seed=3, input_images=[image()])
    offer = await offers.offer(
        edit,
        guild_id=GUILD,
        user_id=ALICE,
        private=False,
        source_kind="vary",
        source_url="https://cdn.discordapp.com/a.png",
        source_job_id=42,
    )
    taken = await offers.take(offer.id, guild_id=GUILD, user_id=ALICE)
    assert (taken.source_kind, taken.source_url, taken.source_job_id) == (
        "vary",
        "https://cdn.discordapp.com/a.png",
        42,
    )
    assert taken.request.input_images == edit.input_images and taken.request.model.key == KLEIN


async def test_two_concurrent_clicks_run_the_offer_once(db, settings, offers):
    import asyncio

    await allow(db, settings, KLEIN)
    offer = await offers.offer(asked(), guild_id=GUILD, user_id=ALICE, private=False)
    results = await asyncio.gather(
        *(offers.take(offer.id, guild_id=GUILD, user_id=ALICE) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, InvalidOptions) for r in results if isinstance(r, Exception))


async def test_privacy_forget_drops_the_members_pending_offers(db, settings, offers, tmp_path):
    from bot.images.cache import ImageCache
    from bot.safety.privacy import PrivacyService

    await allow(db, settings, KLEIN)
    mine = await offers.offer(asked(), guild_id=GUILD, user_id=ALICE, private=False)
    theirs = await offers.offer(asked(), guild_id=GUILD, user_id=BOB, private=False)
    privacy = PrivacyService(db, ImageCache(tmp_path / "cache", 1024 * 1024), retention_days=0)
    await privacy.forget(GUILD, ALICE)
    assert [r["id"] for r in await db.fetch_all("SELECT id FROM offers WHERE kind = 'fallback'")] == [theirs.id]
    with pytest.raises(InvalidOptions):
        await offers.take(mine.id, guild_id=GUILD, user_id=ALICE)
