"""Polling results and delivering images: ``get_result``, credits, signed delivery URLs, redirects."""

from __future__ import annotations

import asyncio
import datetime
import math
import secrets
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web

from tests.fakes.fake_bfl.behaviour import DownloadRecord, FakeTask, PollRecord, SchemaViolation, _record_headers
from tests.fakes.fake_bfl.constants import (
    FLUX3_MODEL,
    MOVED_POLLING_PATH,
    TERMINAL_STATUSES,
    VIDEO_MODEL,
    VIDEO_URL_TTL,
)
from tests.fakes.fake_bfl.images import _CONTENT_TYPES, render_image
from tests.fakes.fake_bfl.pricing import video_seconds
from tests.fakes.fake_bfl.validation import validate_query
from tests.fakes.fake_bfl.video import render_mp4


class ResultsMixin:
    """Part of :class:`FakeBfl` (a mixin); see the module docstring."""

    async def _poll(self, request: web.Request) -> web.StreamResponse:
        return self.answer_poll_request(request, "bfl")

    def answer_poll_request(self, request: web.Request, host: Literal["bfl", "other"]) -> web.StreamResponse:
        """Record and answer one get_result request that reached this fake or (redirected) the other host."""
        task_id = request.query.get("id")
        record = PollRecord(
            task_id=task_id,
            path_qs=request.raw_path,
            headers=_record_headers(request),
            key_ok=self._key_ok(request),
            time=self.now(),
            host=host,
        )
        self.polls.append(record)
        try:
            return self._answer_poll(request, record, task_id)
        finally:
            self.changed()

    def _answer_poll(self, request: web.Request, record: PollRecord, task_id: str | None) -> web.StreamResponse:
        if record.host == "bfl" and not record.key_ok:  # the other host serves redirected polls keyless
            record.status = 403
            return web.json_response({"detail": "Not authenticated"}, status=403)
        detail = validate_query("/v1/get_result", request.query)
        if detail:
            self.schema_errors.append(SchemaViolation(model="get_result", body=dict(request.query), detail=detail))
            record.status = 422
            return web.json_response({"detail": detail}, status=422)
        task = self.tasks.get(task_id or "")
        if task is None:
            return self._status_answer(record, {"id": task_id, "status": "Task not found"})
        redirect = self._poll_redirect(request, record, task)
        if redirect is not None:
            return redirect
        task.polls += 1
        if task.not_found_left > 0:  # BFL has not registered the task yet
            task.not_found_left -= 1
            if task.behaviour.not_found_http == 404:
                record.status = 404
                return web.json_response({"detail": "Task not found"}, status=404)
            return self._status_answer(record, {"id": task.id, "status": "Task not found"})
        if task.poll_errors:
            return self._poll_error(record, task)
        behaviour = task.behaviour
        now = record.time
        if task.time_based:
            assert task.ready_at is not None
            if now < task.ready_at:
                duration = task.ready_at - task.created_at
                fraction = (now - task.created_at) / duration if duration > 0 else 1.0
                stage = behaviour.stages[min(int(fraction * len(behaviour.stages)), len(behaviour.stages) - 1)]
                progress = math.floor(fraction * 100) / 100  # 0.999 is not "1.0" (done)
                return self._status_answer(record, _result_body(task, stage, progress=progress))
        elif not task.finished:
            if behaviour.release is not None and not behaviour.release.is_set():
                return self._status_answer(record, _result_body(task, "Pending"))
            if task.pending_left > 0:
                task.pending_left -= 1
                task.pending_answered += 1
                progress = round(task.pending_answered / (behaviour.pending_polls + 1), 2)
                return self._status_answer(record, _result_body(task, "Pending", progress=progress))
            task.ready_at = now
        task.finished = True
        if task.ready_answered_at is None:
            task.ready_answered_at = now
        status = behaviour.final_status
        answer = _result_body(task, status)
        if status == "Ready" and not behaviour.omit_sample and task.model == VIDEO_MODEL:
            url = self.sample_url(task)  # a video: `sample`, the list `samples` and its length (BFL's skills)
            answer["result"] = {"sample": url, "samples": [url], "duration": video_seconds(task.body)}
        elif status == "Ready" and not behaviour.omit_sample:
            answer["result"] = {
                "sample": self.sample_url(task),
                "prompt": expanded_prompt(task.model, task.body.get("prompt")),
                "seed": task.seed,
            }
        elif status in ("Request Moderated", "Content Moderated"):
            answer["details"] = behaviour.details or {"Moderation Reasons": ["Derivative Works Filter"]}
        elif status == "Ready":
            answer["result"] = {"prompt": task.body.get("prompt")}
        if status == "Ready" and behaviour.ready_cost is not None:
            settled = task.cost if behaviour.ready_cost == "auto" else Decimal(str(behaviour.ready_cost))
            answer["cost"] = float(settled)
        return self._status_answer(record, answer, http_status=behaviour.final_http_status)

    def _poll_redirect(self, request: web.Request, record: PollRecord, task: FakeTask) -> web.Response | None:
        """The 302 of a task whose polls are redirected (see ``Behaviour.poll_redirect``), if this one is."""
        mode = task.behaviour.poll_redirect
        if mode is None or record.host != "bfl" or request.path == MOVED_POLLING_PATH:
            return None
        query = request.query_string
        location = {
            "same": f"{self.url}{MOVED_POLLING_PATH}?{query}",
            "other": f"{self.delivery_host.url}/v1/get_result?{query}",
            "loop": f"{self.url}{request.raw_path}",
        }[mode]
        record.status = 302
        return web.Response(status=302, headers={"Location": location})

    def _poll_error(self, record: PollRecord, task: FakeTask) -> web.Response:
        """The next scripted poll error: a transient ``{"detail"}`` body unless ``poll_error_body`` says otherwise."""
        status = task.poll_errors.popleft()
        record.status = status
        if status == 202:
            return web.json_response({"id": task.id, "status": "Pending"}, status=202)
        retry = task.behaviour.poll_retry_after
        headers = {"Retry-After": retry} if retry is not None else None
        body = task.behaviour.poll_error_body
        if isinstance(body, str):
            return web.Response(status=status, text=body, content_type="text/html", headers=headers)
        if isinstance(body, dict):
            record.task_status = body.get("status")
            task.finished = task.finished or body.get("status") in TERMINAL_STATUSES
            return web.json_response({"id": task.id, **body}, status=status, headers=headers)
        return web.json_response({"detail": f"fake poll error {status}"}, status=status, headers=headers)

    def _status_answer(self, record: PollRecord, answer: dict[str, Any], *, http_status: int = 200) -> web.Response:
        record.status = http_status
        record.task_status = answer["status"]
        return web.json_response(answer, status=http_status)

    def sample_url(self, task: FakeTask) -> str:
        """The signed URL a Ready task reports (direct or via the redirect route)."""
        route = "redirect" if task.behaviour.delivery == "redirect" else "delivery"
        # Shaped like an Azure SAS URL, with percent-escapes a client must not re-encode.
        query = f"se=2030-01-01T00%3A00%3A00Z&sp=r&rsct=image%2F{task.ext}&sig={task.signature}"
        if task.model == VIDEO_MODEL:  # a video's URL lives about 2 h (wall clock: the bot reads `se=` as a date)
            expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=VIDEO_URL_TTL)
            se = expiry.strftime("%Y-%m-%dT%H%%3A%M%%3A%SZ")
            query = f"se={se}&sp=r&rsct=video%2Fmp4&sig={task.signature}"
        return f"{self.url}/{route}/{task.id}.{task.ext}?{query}"

    async def _credits(self, request: web.Request) -> web.StreamResponse:
        if not self._key_ok(request):
            return web.json_response({"detail": "Not authenticated"}, status=403)
        return web.json_response({"credits": float(self.credits)})

    async def _delivery(self, request: web.Request) -> web.StreamResponse:
        record = DownloadRecord.of(request, "bfl", self.now())
        self.downloads.append(record)
        try:
            return await self.serve_delivery(request, record)
        finally:
            self.changed()

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        record = DownloadRecord.of(request, "bfl", self.now(), task_id=name.split(".")[0])
        record.status = 302
        self.downloads.append(record)
        task = self.tasks.get(record.task_id or "")
        if task is not None and task.downloaded_at is None:
            task.downloaded_at = record.time
        self.changed()
        location = f"{self.delivery_host.url}/delivery/{name}?{request.query_string}"
        return web.Response(status=302, headers={"Location": location})

    async def serve_delivery(self, request: web.Request, record: DownloadRecord) -> web.StreamResponse:
        """Serve ``/delivery/<task>.<ext>`` like a signed-URL blob store (used by both hosts)."""
        name = request.path.rsplit("/", 1)[-1]
        task_id, _, ext = name.partition(".")
        record.task_id = task_id
        task = self.tasks.get(task_id)
        if task is not None and task.downloaded_at is None:
            task.downloaded_at = record.time
        if task is None or ext != task.ext or task.ready_at is None or self.now() < task.ready_at:
            record.status = 404
            return web.Response(status=404, text="BlobNotFound")
        if not secrets.compare_digest(request.query.get("sig", ""), task.signature):
            record.status = 403
            return web.Response(status=403, text="AuthenticationFailed: signature mismatch")
        ttl = task.behaviour.delivery_ttl
        if ttl is not None and self.now() >= task.ready_at + ttl:
            record.status = 403
            return web.Response(status=403, text="AuthenticationFailed: Signed expiry time has passed")
        if task.delivery_errors:
            record.status = task.delivery_errors.popleft()
            return web.Response(status=record.status, text="fake delivery error")
        if task.image is None and task.model == VIDEO_MODEL:
            size = (task.width, task.height)
            padding = task.behaviour.video_padding
            task.image = await asyncio.to_thread(render_mp4, *size, video_seconds(task.body), task.seed, padding)
        elif task.image is None:
            size = (task.width, task.height)
            task.image = await asyncio.to_thread(render_image, *size, task.output_format, task.picture)
        record.status = 200
        content_type = _CONTENT_TYPES[task.output_format]
        if not task.behaviour.delivery_chunked:
            return web.Response(body=task.image, content_type=content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(task.image), 16 * 1024):
            await response.write(task.image[start : start + 16 * 1024])
        await response.write_eof()
        return response

    async def _unhandled(self, request: web.Request) -> web.StreamResponse:
        self.unhandled.append((request.method, request.raw_path))
        self.changed()
        return web.json_response({"detail": "Not Found"}, status=404)


def expanded_prompt(model: str, prompt: Any) -> Any:
    """``result.prompt``: FLUX 3 answers the prompt as it expanded it; the others echo it."""
    if model == FLUX3_MODEL and isinstance(prompt, str):
        return f"{prompt}, rendered in soft natural light with a shallow depth of field (expanded by FLUX 3)"
    return prompt


def _result_body(task: FakeTask, status: str, *, progress: float | None = None) -> dict[str, Any]:
    return {
        "id": task.id,
        "status": status,
        "result": None,
        "progress": progress,
        "details": None,
        "preview": None,
    }
