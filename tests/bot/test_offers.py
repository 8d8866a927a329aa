"""Pending offers: stored with a kind, taken once, by their member only, before they expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import InvalidOptions, NotAllowed
from bot.images.cache import ImageCache
from bot.offers import OfferStore
from bot.safety.privacy import PrivacyService


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


TEXTS = {"expired": "expired", "not_yours": "not yours"}


async def test_an_offer_is_taken_once_by_its_member_only(db):
    store = OfferStore(db, clock=Clock())
    key = await store.put("confirm", guild_id=1, user_id=2, payload={"a": [1, "b"]}, ttl_seconds=60)
    with pytest.raises(NotAllowed):
        await store.take("confirm", key, guild_id=1, user_id=3, max_age_seconds=60, **TEXTS)
    with pytest.raises(InvalidOptions):  # another server's, or another kind's
        await store.take("confirm", key, guild_id=9, user_id=2, max_age_seconds=60, **TEXTS)
    with pytest.raises(InvalidOptions):
        await store.take("other", key, guild_id=1, user_id=2, max_age_seconds=60, **TEXTS)
    payload = await store.take("confirm", key, guild_id=1, user_id=2, max_age_seconds=60, **TEXTS)
    assert payload == {"a": [1, "b"]}
    with pytest.raises(InvalidOptions, match="expired"):
        await store.take("confirm", key, guild_id=1, user_id=2, max_age_seconds=60, **TEXTS)


async def test_an_expired_offer_cannot_be_taken_and_is_dropped_by_the_next_put(db):
    clock = Clock()
    store = OfferStore(db, clock=clock)
    old = await store.put("confirm", guild_id=1, user_id=2, payload={}, ttl_seconds=60)
    clock.now += timedelta(seconds=61)
    with pytest.raises(InvalidOptions):
        await store.take("confirm", old, guild_id=1, user_id=2, max_age_seconds=600, **TEXTS)
    await store.put("confirm", guild_id=1, user_id=2, payload={}, ttl_seconds=60)
    assert await db.fetch_value("SELECT COUNT(*) FROM offers WHERE id = ?", (old,)) == 0


async def test_privacy_forget_erases_the_members_pending_offers_here_only(db, tmp_path):
    store = OfferStore(db, clock=Clock())
    privacy = PrivacyService(db, ImageCache(tmp_path / "cache", 10_000_000), retention_days=30, clock=Clock())
    mine = await store.put("confirm", guild_id=1, user_id=2, payload={"prompt": "secret"}, ttl_seconds=60)
    other = await store.put("confirm", guild_id=1, user_id=3, payload={}, ttl_seconds=60)
    elsewhere = await store.put("confirm", guild_id=9, user_id=2, payload={}, ttl_seconds=60)
    await privacy.forget(1, 2)
    left = {row["id"] for row in await db.fetch_all("SELECT id FROM offers")}
    assert left == {other, elsewhere} and mine not in left
