"""``POST /v1/<model>``: authentication, validation, scripted failures, prices, task creation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import uuid
from collections import deque
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.fakes.fake_bfl.behaviour import (
    Behaviour,
    Charge,
    FakeTask,
    SchemaViolation,
    SubmitRecord,
    _record_headers,
)
from tests.fakes.fake_bfl.constants import (
    LORA_ROUTES,
    UNKNOWN_FINETUNE_DETAIL,
    UNKNOWN_FINETUNE_STATUS,
    VIDEO_MAX_ACTIVE,
    VIDEO_MODEL,
)
from tests.fakes.fake_bfl.pricing import input_pixels, output_size, price_credits
from tests.fakes.fake_bfl.validation import generation_routes, validate_body


class SubmitMixin:
    """Part of :class:`FakeBfl` (a mixin); see the module docstring."""

    # -- handlers ----------------------------------------------------------------------------------

    def _key_ok(self, request: web.Request) -> bool:
        return secrets.compare_digest(request.headers.get("x-key", ""), self.api_key)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` (simulated server work), cut short when the fake closes."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        model = request.path.removeprefix("/v1/")
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        record = SubmitRecord(
            model=model,
            body=body,
            headers=_record_headers(request),
            key_ok=self._key_ok(request),
            time=self.now(),
        )
        self.submits.append(record)
        self.changed()
        try:
            return await self._answer_submit(request, record, model, body)
        finally:
            self.changed()

    async def _answer_submit(
        self, request: web.Request, record: SubmitRecord, model: str, body: Any
    ) -> web.StreamResponse:
        if not record.key_ok:
            return _answer(record, web.json_response({"detail": "Not authenticated"}, status=403))
        detail = validate_body(model, body)
        if detail:
            self.schema_errors.append(SchemaViolation(model=model, body=body, detail=detail))
            return _answer(record, web.json_response({"detail": detail}, status=422))
        if model in LORA_ROUTES and body["finetune_id"] not in self.finetunes:  # before any behaviour: no task
            detail = {"detail": UNKNOWN_FINETUNE_DETAIL}
            return _answer(record, web.json_response(detail, status=UNKNOWN_FINETUNE_STATUS))
        behaviour = self.next_behaviour(model, body)
        await self._pause(behaviour.latency)
        if behaviour.submit_status is not None:
            return _answer(record, _error_response(behaviour.submit_status, behaviour))
        limit = self.max_active_kontext_max if model == "flux-kontext-max" else self.max_active
        limit = min(limit, VIDEO_MAX_ACTIVE) if model == VIDEO_MODEL else limit
        if self.active_tasks >= self.max_active or self.active_for(model) >= limit:
            return _answer(
                record,
                web.json_response({"detail": "Too many active tasks. Wait for a task to finish."}, status=429),
            )
        width, height = output_size(model, body)
        inputs = input_pixels(body)
        auto = price_credits(model, width, height, inputs, body)
        cost = auto if behaviour.cost in ("auto", None) else Decimal(str(behaviour.cost))
        if cost > self.credits:
            return _answer(record, web.json_response({"detail": "Insufficient credits"}, status=402))
        task = self._create_task(model, body, behaviour, width, height, cost)
        record.task_id = task.id

        if behaviour.hang:
            await self._closing.wait()  # the client gives up first; the task exists and is billed
            return _answer(record, web.json_response({"detail": "fake closed"}, status=503))
        if behaviour.disconnect:
            if request.transport is not None:
                request.transport.close()
            return _answer(record, web.Response(status=200), status=0)
        if behaviour.malformed_response:
            return _answer(record, web.Response(status=200, text="<html>gateway says hi</html>"))
        if behaviour.submit_status_after_create is not None:
            return _answer(record, _error_response(behaviour.submit_status_after_create, behaviour))

        answer: dict[str, Any] = {"id": task.id}
        if behaviour.webhook_response:
            answer.update(status="Pending", webhook_url="https://example.invalid/hook")
        else:
            answer["polling_url"] = behaviour.polling_url.format(
                base=self.url, other=self.delivery_host.url, id=task.id
            )
        if behaviour.cost is not None:
            answer["cost"] = float(cost)
            answer["input_mp"] = float((Decimal(sum(inputs)) / 1_000_000).quantize(Decimal("0.01")))
            answer["output_mp"] = float((Decimal(width * height) / 1_000_000).quantize(Decimal("0.01")))
        return _answer(record, web.json_response(answer))

    def _create_task(
        self, model: str, body: dict[str, Any], behaviour: Behaviour, width: int, height: int, cost: Decimal
    ) -> FakeTask:
        props = generation_routes()[model].schema.get("properties", {})
        fmt_default = props.get("output_format", {}).get("default") or "jpeg"
        seed = body.get("seed")
        task = FakeTask(
            id=str(uuid.uuid4()),
            model=model,
            body=body,
            behaviour=behaviour,
            created_at=self.now(),
            width=width,
            height=height,
            output_format="mp4" if model == VIDEO_MODEL else body.get("output_format") or fmt_default,
            cost=cost,
            seed=seed if isinstance(seed, int) else random.randrange(2**31),
            signature=secrets.token_hex(16),
            poll_errors=deque(behaviour.poll_errors),
            delivery_errors=deque(behaviour.delivery_errors),
            pending_left=behaviour.pending_polls,
            not_found_left=behaviour.not_found_polls,
        )
        if behaviour.run_seconds is not None:
            stretch = 1.0 + behaviour.run_jitter * (2.0 * self.random.random() - 1.0)
            task.ready_at = task.created_at + behaviour.run_seconds * stretch
        self.tasks[task.id] = task
        self.credits -= cost
        self.charges.append(Charge(task_id=task.id, model=model, credits=cost, time=task.created_at))
        self.max_active_seen = max(self.max_active_seen, self.active_tasks)
        self.max_active_seen_by_model[model] = max(self.max_active_seen_by_model.get(model, 0), self.active_for(model))
        return task


# -- small helpers -----------------------------------------------------------------------------------


def _answer(record: SubmitRecord, response: web.StreamResponse, *, status: int | None = None) -> web.StreamResponse:
    record.status = response.status if status is None else status
    return response


_DEFAULT_ERROR_BODIES: dict[int, Any] = {
    400: {"detail": "Bad request"},
    402: {"detail": "Insufficient credits. Add credits at https://dashboard.bfl.ai"},
    403: {"detail": "Not authenticated"},
    422: {
        "detail": [
            {
                "loc": ["body", "prompt"],
                "msg": "String should have at most 32000 characters",
                "type": "string_too_long",
            }
        ]
    },
    429: {"detail": "Too many active tasks. Wait for a task to finish."},
    500: {"detail": "Internal Server Error"},
    502: "<html><body><h1>502 Bad Gateway</h1></body></html>",
    504: "<html><body><h1>504 Gateway Time-out</h1></body></html>",
}


def _error_response(status: int, behaviour: Behaviour) -> web.Response:
    headers = dict(behaviour.submit_headers)
    if behaviour.retry_after is not None:
        headers["Retry-After"] = behaviour.retry_after
    body = behaviour.submit_body
    if body is None:
        body = _DEFAULT_ERROR_BODIES.get(status, "Service Unavailable" if status == 503 else f"HTTP {status}")
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=headers)
    return web.json_response(body, status=status, headers=headers)
