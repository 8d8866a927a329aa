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

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.errors import InvalidOptions, NotAllowed
from bot.models import MODELS, OPTION_NAMES, GenerationRequest, InputImage, build_request, nearest_aspect_ratio
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
    source_kind: str | None = None  # an edit, variation or reroll of an edit: what it works on
    source_url: str | None = None
    source_job_id: int | None = None
    images: int = 1  # an `/imagine count:N` group: N images of ``request`` on the fallback model

    @property
    def price_micros(self) -> int:
        """The fallback model's own quoted price for the request (all of its images)."""
        return self.request.estimated_cost_micros * self.images


def for_model(request: GenerationRequest, model: str) -> GenerationRequest | None:
    """``request`` on ``model``, or None when that model cannot serve it.

    Options the model does not take (or takes in a narrower range) are dropped, so the model's own
    default applies; an aspect ratio it does not offer becomes its nearest one (``auto`` follows the
    input image, as for a new edit); the seed is kept where both models have one. Input images the
    model cannot take (too many, too large, too small, or none at all for a text-only model) mean None.
    """
    spec = MODELS.get(model)
    if spec is None or spec.key == request.model.key:
        return None
    images = request.input_images
    if len(images) > spec.max_input_images:
        return None
    for image in images:
        if image.pixels > spec.input_max_megapixels * 1_000_000 or min(image.width, image.height) < spec.input_min_side:
            return None
    ratio: str | None = request.aspect_ratio
    if ratio not in spec.aspect_ratios:
        ratio = None if ratio == "auto" else nearest_aspect_ratio(spec, request.width, request.height)
    seed = request.seed if request.model.has_seed and spec.has_seed else None
    options = {name: getattr(request, name) for name in OPTION_NAMES if _fits(spec.key, name, getattr(request, name))}
    try:
        return build_request(
            model=spec.key,
            prompt=request.prompt,
            aspect_ratio=ratio,
            seed=seed,
            input_images=images,
            allow_grounding=True,  # the server's /safety grounding switch is checked at admission
            max_prompt_length=max(1, len(request.prompt)),  # already within the limit
            **options,
        )
    except InvalidOptions as exc:  # pragma: no cover - the mapping above keeps every option valid
        log.warning("No fallback to %s for a %s request: %s", model, request.model.key, exc.user_message)
        return None


def _fits(model: str, option: str, value: Any) -> bool:
    spec = MODELS[model]
    if value is None or not spec.supports(option):
        return False
    if option == "steps" and spec.steps_range is not None:
        return spec.steps_range[0] <= value <= spec.steps_range[1]
    if option == "guidance" and spec.guidance_range is not None:
        return spec.guidance_range[0] <= value <= spec.guidance_range[1]
    return True


def encode_request(request: GenerationRequest) -> str:
    """The request as JSON: what :func:`decode_request` needs to build it again (never a nonce)."""
    return json.dumps(
        {
            "model": request.model.key,
            "prompt": request.prompt,
            "aspect_ratio": request.aspect_ratio,
            "seed": request.seed if request.model.has_seed else None,
            "options": {name: getattr(request, name) for name in OPTION_NAMES if getattr(request, name) is not None},
            "images": [[image.data_b64, image.width, image.height] for image in request.input_images],
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode_request(text: str) -> GenerationRequest:
    """The request :func:`encode_request` stored, validated again (a model without a seed gets a new nonce)."""
    data = json.loads(text)
    prompt = str(data["prompt"])
    return build_request(
        model=data["model"],
        prompt=prompt,
        aspect_ratio=data["aspect_ratio"],
        seed=data["seed"],
        input_images=[InputImage(b64, int(w), int(h)) for b64, w, h in data["images"]],
        allow_grounding=True,
        max_prompt_length=max(1, len(prompt)),
        **data["options"],
    )


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
        source_kind: str | None = None,
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
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM fallback_offers WHERE expires_at <= ?", (to_millis(now),))
            await tx.execute(
                "INSERT INTO fallback_offers (id, guild_id, user_id, model, request, private, source_kind, source_url,"
                " source_job_id, created_at, expires_at, images) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    offer.id,
                    guild_id,
                    user_id,
                    fallback.model.key,
                    encode_request(fallback),
                    int(private),
                    source_kind,
                    source_url,
                    source_job_id,
                    to_millis(now),
                    to_millis(offer.expires_at),
                    images,
                ),
            )
        log.info("Offered %s a fallback from %s to %s (offer %s)", user_id, request.model.key, model, offer.id)
        return offer

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
