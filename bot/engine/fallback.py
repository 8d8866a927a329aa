"""The one-click fallback: when a model's circuit breaker refuses a request, offer it on another model.

A moderator may allow one fallback model per server (``/budget fallback``). When admission refuses a
request because its model's breaker is open (:class:`bot.engine.engine.ProviderTrouble`), and the
server's fallback model is another model whose own breaker is closed and which can serve the request
(:func:`for_model`: options it does not take are dropped, an aspect ratio it does not offer becomes
its nearest one; input images it cannot take mean no offer), the refusal carries an *offer*: the same
request on the fallback model at that model's own quoted price.

An offer is a row in ``fallback_offers`` under a random id: the button's custom id holds only that id,
never the prompt, and a click works after a restart and on any process. Nothing is reserved or queued
until the member uses it; :meth:`FallbackOffers.take` hands the request back once, to the member who
was refused only, within :data:`OFFER_TTL_SECONDS`, and the caller runs it through the normal path
(the price confirmation, admission, limits, queue).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.engine.sources import SourceKind
from bot.errors import InvalidOptions, NotAllowed
from bot.models import MODELS, GenerationRequest
from bot.server_settings import ServerSettings
from bot.storage.database import Database

log = logging.getLogger(__name__)

OFFER_TTL_SECONDS = 600  # as long as a price confirmation, well inside a click's own 15-minute token
EXPIRED_TEXT = "This offer has expired or was already used. Run the command again."
NOT_YOURS_TEXT = "Only the member whose request was refused can use this offer."
WITHDRAWN_TEXT = "Moderators have changed this server's fallback model since; run the command again."


@dataclass(frozen=True)
class FallbackOffer:
    """A pending offer: ``request`` (on the fallback model) for ``user_id`` in ``guild_id``."""

    id: str
    guild_id: int
    user_id: int
    request: GenerationRequest
    private: bool
    expires_at: datetime
    source_kind: SourceKind | None = None  # an edit, variation or reroll of an edit: what it works on
    source_url: str | None = None
    source_job_id: int | None = None
    images: int = 1  # an `/imagine count:N` group: N images of ``request`` on the fallback model

    @property
    def price_micros(self) -> int:
        """The fallback model's own quoted price for the request (all of its images)."""
        return self.request.estimated_cost_micros * self.images


def for_model(request: GenerationRequest, model: str) -> GenerationRequest | None:
    """``request`` on ``model``, or None when that model cannot serve it.

    :meth:`GenerationRequest.retarget`: options the model does not accept (or takes in a narrower
    range) are dropped, so the model's own default applies; an aspect ratio it does not offer becomes
    its nearest one (``auto`` follows the input image, as for a new edit); the seed is kept where both
    models have one. Input images the model cannot take (too many, too large, too small, or none at
    all for a text-only model) mean None.
    """
    spec = MODELS.get(model)
    if spec is None or spec.key == request.model.key:
        return None
    try:
        return request.retarget(spec)
    except InvalidOptions as exc:
        log.info("No fallback to %s for a %s request: %s", model, request.model.key, exc.user_message)
        return None


def encode_request(request: GenerationRequest) -> str:
    """The request's record as JSON (:meth:`GenerationRequest.to_record`): what :func:`decode_request` reads."""
    return request.record_json()


def decode_request(text: str) -> GenerationRequest:
    """The request :func:`encode_request` stored (a model without a seed: a new nonce, so a new image).

    An offer stored in another layout (before records were kept) counts as expired.
    """
    try:
        request = GenerationRequest.from_record(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        log.info("A fallback offer in an older layout was dropped: %s", exc)
        raise InvalidOptions(EXPIRED_TEXT) from None
    return request if request.nonce is None else dataclasses.replace(request, nonce=secrets.token_hex(8))


class FallbackOffers:
    """Makes offers when the server allows a fallback, and hands each back once to its member."""

    def __init__(
        self,
        db: Database,
        server: ServerSettings,
        *,
        healthy: Callable[[str], bool],
        clock: Clock = utc_now,
        ttl_seconds: float = OFFER_TTL_SECONDS,
    ) -> None:
        self._db = db
        self._server = server
        self._healthy = healthy  # whether a model's circuit breaker is closed
        self._clock = clock
        self._ttl = ttl_seconds

    async def offer(
        self,
        request: GenerationRequest,
        *,
        guild_id: int,
        user_id: int,
        private: bool,
        source_kind: SourceKind | None = None,
        source_url: str | None = None,
        source_job_id: int | None = None,
        images: int = 1,
        payable: Callable[[GenerationRequest], Awaitable[None]] | None = None,
    ) -> FallbackOffer | None:
        """Store an offer of ``request`` on the server's fallback model, or None when there is none to make.

        ``images``: a group's size (`/imagine count:N`); the offer then runs all N there. ``payable``
        is awaited with the fallback request before anything is stored: what it raises (a price the
        member cannot pay) propagates, and no offer is made.
        """
        model = (await self._server.guild_settings(guild_id)).fallback_model
        if model is None or model == request.model.key or not self._healthy(model):
            return None
        fallback = for_model(request, model)
        if fallback is None:
            return None
        if payable is not None:
            await payable(fallback)
        now = self._clock()
        offer = FallbackOffer(
            id=secrets.token_hex(8),
            guild_id=guild_id,
            user_id=user_id,
            request=fallback,
            private=private,
            expires_at=now + timedelta(seconds=self._ttl),
            source_kind=source_kind,
            source_url=source_url,
            source_job_id=source_job_id,
            images=images,
        )
        await self._store(offer, now)
        log.info("Offered %s a fallback from %s to %s (offer %s)", user_id, request.model.key, model, offer.id)
        return offer

    async def _store(self, offer: FallbackOffer, now: datetime) -> None:
        """Write ``offer``, dropping the expired ones, in one transaction."""
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM fallback_offers WHERE expires_at <= ?", (to_millis(now),))
            await tx.execute(
                "INSERT INTO fallback_offers (id, guild_id, user_id, model, request, private, source_kind, source_url,"
                " source_job_id, created_at, expires_at, images) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    offer.id,
                    offer.guild_id,
                    offer.user_id,
                    offer.request.model.key,
                    encode_request(offer.request),
                    int(offer.private),
                    offer.source_kind,
                    offer.source_url,
                    offer.source_job_id,
                    to_millis(now),
                    to_millis(offer.expires_at),
                    offer.images,
                ),
            )

    async def take(self, offer_id: str, *, guild_id: int, user_id: int) -> FallbackOffer:
        """The offer, removed so it is used once; a member-facing refusal when it cannot be used.

        Raises :class:`InvalidOptions` (expired, already used, unknown, another server, or the server's
        fallback changed since) or :class:`NotAllowed` (someone else's offer); nothing changes then.
        """
        now = to_millis(self._clock())
        row = await self._db.fetch_one("SELECT * FROM fallback_offers WHERE id = ?", (offer_id,))
        if row is None or row["guild_id"] != guild_id or row["expires_at"] <= now:
            raise InvalidOptions(EXPIRED_TEXT)
        if row["user_id"] != user_id:
            raise NotAllowed(NOT_YOURS_TEXT)
        if (await self._server.guild_settings(guild_id)).fallback_model != row["model"]:
            await self._db.execute("DELETE FROM fallback_offers WHERE id = ?", (offer_id,))
            raise InvalidOptions(WITHDRAWN_TEXT)
        if not await self._db.execute("DELETE FROM fallback_offers WHERE id = ? AND user_id = ?", (offer_id, user_id)):
            raise InvalidOptions(EXPIRED_TEXT)  # a second click won the race: it runs, this one does not
        return FallbackOffer(
            id=offer_id,
            guild_id=guild_id,
            user_id=user_id,
            request=decode_request(row["request"]),
            private=bool(row["private"]),
            expires_at=from_millis(row["expires_at"]),
            source_kind=row["source_kind"],
            source_url=row["source_url"],
            source_job_id=row["source_job_id"],
            images=row["images"],
        )
