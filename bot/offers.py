"""Pending offers behind a button: one durable table, ``offers``, with a ``kind``.

A price confirmation (kind ``confirm``, ``cogs/_confirm.py``), a one-click fallback (kind ``fallback``,
:mod:`bot.engine.fallback`) and whatever later features need wait here for their member's click: the
button's custom id holds only the offer's random id (every client can read a custom id; the payload
carries the prompt), so a click works after a restart and on any process. An offer is
taken once, by its member only, before it expires; the caller then runs what its payload describes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock, to_millis, utc_now
from bot.errors import InvalidOptions, NotAllowed
from bot.models import GenerationRequest
from bot.storage.database import Database

log = logging.getLogger(__name__)

EXPIRED_TEXT = "This offer has expired or was already used. Run the command again."


class OfferStore:
    """Stores offers of every kind and hands each one's payload back once, to its member, before it expires.

    The one API for every kind: :meth:`put` (create; expired offers are dropped first), :meth:`take`
    (once, atomically: of two clicks racing, one wins), and expiry (a ``ttl_seconds`` per offer, and a
    ``max_age_seconds`` per take).
    """

    def __init__(self, db: Database, *, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    async def put(
        self, kind: str, *, guild_id: int, user_id: int, payload: dict[str, Any], ttl_seconds: float, key_bytes: int = 4
    ) -> str:
        """Store an offer (expired ones are dropped first); its random id of ``key_bytes`` bytes, in hex."""
        now = self._clock()
        offer_id = secrets.token_hex(key_bytes)
        expires = now + timedelta(seconds=ttl_seconds)
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM offers WHERE expires_at <= ?", (to_millis(now),))
            await tx.execute(
                "INSERT INTO offers (id, kind, guild_id, user_id, payload, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (offer_id, kind, guild_id, user_id, json.dumps(payload, separators=(",", ":")), to_millis(now),
                 to_millis(expires)),
            )  # fmt: skip
        return offer_id

    async def take(
        self,
        kind: str,
        offer_id: str,
        *,
        guild_id: int,
        user_id: int,
        max_age_seconds: float,
        expired: str,
        not_yours: str,
    ) -> dict[str, Any]:
        """The offer's payload, the offer removed so it is taken once; else raises ``expired`` or ``not_yours``.

        Nothing changes when it raises. Expired: unknown, of another kind or server, older than
        ``max_age_seconds`` or past its expiry, or taken already (a second click that lost the race).
        """
        now = self._clock()
        row = await self._db.fetch_one("SELECT * FROM offers WHERE id = ? AND kind = ?", (offer_id, kind))
        if row is None or row["guild_id"] != guild_id or _expired(row, now, max_age_seconds):
            raise InvalidOptions(expired)
        if row["user_id"] != user_id:
            raise NotAllowed(not_yours)
        if not await self._db.execute("DELETE FROM offers WHERE id = ? AND user_id = ?", (offer_id, user_id)):
            raise InvalidOptions(expired)
        payload: dict[str, Any] = json.loads(row["payload"])
        return payload


def _expired(row: Any, now: datetime, max_age_seconds: float) -> bool:
    return row["expires_at"] <= to_millis(now) or to_millis(now) - row["created_at"] > max_age_seconds * 1000


def encode_request(request: GenerationRequest) -> str:
    """How an offer's payload keeps a request: its record as JSON (:meth:`GenerationRequest.record_json`)."""
    return request.record_json()


def decode_request(text: str) -> GenerationRequest:
    """The request :func:`encode_request` kept (a model without a seed: a new nonce, so a new image).

    An offer kept in another layout (before records were kept) counts as expired.
    """
    try:
        request = GenerationRequest.from_record(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        log.info("An offer in an older layout was dropped: %s", exc)
        raise InvalidOptions(EXPIRED_TEXT) from None
    return request if request.nonce is None else dataclasses.replace(request, nonce=secrets.token_hex(8))
