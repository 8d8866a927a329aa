"""The one-click fallback: when a model's circuit breaker refuses a request, offer it on another model.

A moderator may allow one fallback model per server (``/budget fallback``). When admission refuses a
request because its model's breaker is open (:class:`bot.engine.engine.ProviderTrouble`), and the
server's fallback model is another model whose own breaker is closed and which can serve the request
(:func:`for_model`: options it does not take are dropped, an aspect ratio it does not offer becomes
its nearest one; input images it cannot take mean no offer), the refusal carries an *offer*: the same
request on the fallback model at that model's own quoted price.

An offer is a pending offer of kind ``fallback`` (:class:`bot.offers.OfferStore`, one table for every
kind) under a random id: the button's custom id holds only that id, never the prompt, and a click works
after a restart and on any process. Nothing is reserved or queued
until the member uses it; :meth:`FallbackOffers.take` hands the request back once, to the member who
was refused only, within :data:`OFFER_TTL_SECONDS`, and the caller runs it through the normal path
(the price confirmation, admission, limits, queue).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.engine.sources import SourceKind
from bot.errors import InvalidOptions
from bot.models import MODELS, GenerationRequest
from bot.offers import EXPIRED_TEXT, OfferStore, decode_request, encode_request
from bot.server_settings import ServerSettings

log = logging.getLogger(__name__)

KIND = "fallback"  # its kind in the offers table
OFFER_TTL_SECONDS = 600  # as long as a price confirmation, well inside a click's own 15-minute token
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
    source_kind: SourceKind | None = None  # an edit, variation or reroll of an edit: what it works on
    source_url: str | None = None
    source_job_id: int | None = None
    images: int = 1  # an `/imagine count:N` group: N images of ``request`` on the fallback model

    @property
    def price_micros(self) -> int:
        """The fallback model's own quoted price for the request (all of its images)."""
        return self.request.estimated_cost_micros * self.images

    def payload(self) -> dict[str, Any]:
        """What the offers table keeps (JSON; the layout migration 0024 wrote for offers made before it)."""
        return {
            "model": self.request.model.key,
            "request": encode_request(self.request),
            "private": self.private,
            "images": self.images,
            "source_kind": self.source_kind,
            "source_url": self.source_url,
            "source_job_id": self.source_job_id,
        }

    @classmethod
    def from_payload(cls, offer_id: str, guild_id: int, user_id: int, payload: dict[str, Any]) -> FallbackOffer:
        """The offer :meth:`payload` stored (its request with a new nonce: see :func:`decode_request`)."""
        return cls(
            id=offer_id,
            guild_id=guild_id,
            user_id=user_id,
            request=decode_request(payload["request"]),
            private=bool(payload["private"]),
            source_kind=payload["source_kind"],
            source_url=payload["source_url"],
            source_job_id=payload["source_job_id"],
            images=payload["images"],
        )


def for_model(request: GenerationRequest, model: str) -> GenerationRequest | None:
    """``request`` on ``model``, or None when that model cannot serve it.

    :meth:`GenerationRequest.retarget`: options the model does not accept (or takes in a narrower
    range) are dropped, so the model's own default applies; an aspect ratio it does not offer becomes
    its nearest one (``auto`` follows the input image, as for a new edit); the seed is kept where both
    models have one. Input images the model cannot take (too many, too large, too small, or none at
    all for a text-only model) mean None, and so does a route of another shape or a button-only one (a
    Sharpen is no prompt to render elsewhere).
    """
    spec = MODELS.get(model)
    if spec is None or spec.key == request.model.key or not spec.offered or spec.body != request.model.body:
        return None
    try:
        return request.retarget(spec)
    except InvalidOptions as exc:
        log.info("No fallback to %s for a %s request: %s", model, request.model.key, exc.user_message)
        return None


class FallbackOffers:
    """Makes offers when the server allows a fallback, and hands each back once to its member."""

    def __init__(
        self,
        store: OfferStore,
        server: ServerSettings,
        *,
        healthy: Callable[[str], bool],
        ttl_seconds: float = OFFER_TTL_SECONDS,
    ) -> None:
        self._store = store  # the one offers store (built in the composition root)
        self._server = server
        self._healthy = healthy  # whether a model's circuit breaker is closed
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
        offer = FallbackOffer("", guild_id, user_id, fallback, private, source_kind, source_url, source_job_id, images)
        offer_id = await self._store.put(
            KIND, guild_id=guild_id, user_id=user_id, payload=offer.payload(), ttl_seconds=self._ttl, key_bytes=8
        )
        log.info("Offered %s a fallback from %s to %s (offer %s)", user_id, request.model.key, model, offer_id)
        return dataclasses.replace(offer, id=offer_id)

    async def take(self, offer_id: str, *, guild_id: int, user_id: int) -> FallbackOffer:
        """The offer, removed so it is used once; a member-facing refusal when it cannot be used.

        Raises :class:`InvalidOptions` (expired, already used, unknown, another server, or the server's
        fallback changed since: the offer is dropped then) or :class:`NotAllowed` (someone else's offer).
        """
        payload = await self._store.take(
            KIND,
            offer_id,
            guild_id=guild_id,
            user_id=user_id,
            max_age_seconds=self._ttl,
            expired=EXPIRED_TEXT,
            not_yours=NOT_YOURS_TEXT,
        )
        if (await self._server.guild_settings(guild_id)).fallback_model != payload["model"]:
            raise InvalidOptions(WITHDRAWN_TEXT)
        return FallbackOffer.from_payload(offer_id, guild_id, user_id, payload)
