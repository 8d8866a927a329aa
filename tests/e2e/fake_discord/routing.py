"""Route table and request plumbing of the fake Discord: auth, recording, rule and schema checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from tests.e2e.fake_discord.constants import _FILE_FIELD, API_PREFIX, MAX_FILES
from tests.e2e.fake_discord.faults import WEBHOOK_OPERATIONS, Fault
from tests.e2e.fake_discord.helpers import _errors_tree
from tests.e2e.fake_discord.limits import _message_limit_errors
from tests.e2e.fake_discord.records import (
    RecordedCall,
    SchemaError,
    SentInteraction,
    UploadedFile,
    Violation,
    _Dropped,
    _HTTPError,
)

#: A webhook message route called on ``@original`` is its own operation in Discord's spec.
_ORIGINAL_OPERATIONS = {
    "get_webhook_message": "get_original_webhook_message",
    "update_webhook_message": "update_original_webhook_message",
    "delete_webhook_message": "delete_original_webhook_message",
}


class RoutingMixin:
    """Part of :class:`FakeDiscord` (a mixin); see the module docstring."""

    # ------------------------------------------------------------------ routes

    def _add_routes(self, app: web.Application) -> None:
        a = API_PREFIX
        table: list[tuple[str, str, str, bool, Callable[..., Any]]] = [
            ("GET", "/users/@me", "get_my_user", True, self._h_get_me),
            ("POST", "/users/@me/channels", "create_dm", True, self._h_create_dm),
            ("GET", "/users/{user}", "get_user", True, self._h_get_user),
            ("GET", "/oauth2/applications/@me", "get_my_oauth2_application", True, self._h_app_info),
            ("GET", "/applications/@me", "get_my_application", True, self._h_app_info),
            ("GET", "/gateway", "get_gateway", False, self._h_get_gateway),
            ("GET", "/gateway/bot", "get_bot_gateway", True, self._h_get_gateway),
            ("GET", "/applications/{app}/commands", "list_application_commands", True, self._h_list_commands),
            ("PUT", "/applications/{app}/commands", "bulk_set_application_commands", True, self._h_put_commands),
            (
                "GET",
                "/applications/{app}/guilds/{guild}/commands",
                "list_guild_application_commands",
                True,
                self._h_list_commands,
            ),
            (
                "PUT",
                "/applications/{app}/guilds/{guild}/commands",
                "bulk_set_guild_application_commands",
                True,
                self._h_put_commands,
            ),
            ("GET", "/guilds/{guild}/members/{user}", "get_guild_member", True, self._h_get_member),
            (
                "GET",
                "/guilds/{guild}/roles/member-counts",
                "guild_role_member_counts",
                True,
                self._h_role_member_counts,
            ),
            ("POST", "/interactions/{iid}/{token}/callback", "create_interaction_response", False, self._h_callback),
            ("POST", "/webhooks/{app}/{token}", "execute_webhook", False, self._h_execute_webhook),
            ("GET", "/webhooks/{app}/{token}/messages/{mid}", "get_webhook_message", False, self._h_webhook_get),
            ("PATCH", "/webhooks/{app}/{token}/messages/{mid}", "update_webhook_message", False, self._h_webhook_edit),
            (
                "DELETE",
                "/webhooks/{app}/{token}/messages/{mid}",
                "delete_webhook_message",
                False,
                self._h_webhook_delete,
            ),
            ("GET", "/channels/{cid}", "get_channel", True, self._h_get_channel),
            ("POST", "/channels/{cid}/messages", "create_message", True, self._h_channel_send),
            ("GET", "/channels/{cid}/messages/{mid}", "get_message", True, self._h_channel_get),
            ("PATCH", "/channels/{cid}/messages/{mid}", "update_message", True, self._h_channel_edit),
            ("DELETE", "/channels/{cid}/messages/{mid}", "delete_message", True, self._h_channel_delete),
        ]
        for method, path, operation, auth, handler in table:
            app.router.add_route(method, a + path, self._wrap(operation, auth, handler))
        # Everything else under /api/v10 (including wrong methods on known paths) is recorded.
        app.router.add_route("*", a + "/{tail:.*}", self._wrap(None, False, self._h_unhandled))
        app.router.add_get("/gateway", self._h_gateway)

    def _wrap(self, operation: str | None, auth: bool, handler: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            call = await self._begin(request, operation)
            try:
                if call.parse_error is not None:
                    raise _HTTPError(400, 50109, "The request body contains invalid JSON.", detail=call.parse_error)
                if auth and request.headers.get("Authorization") != f"Bot {self.token}":
                    raise _HTTPError(
                        401, 0, "401: Unauthorized", detail="missing or wrong 'Authorization: Bot <token>'"
                    )
                fault = self.faults.take(call)
                if fault is not None:
                    return await self._faulty(request, call, fault, handler)
                return await handler(request, call)
            except _Dropped:
                call.fault = "dropped"
                if request.transport is not None:
                    request.transport.close()  # no answer at all: the client sees the connection drop
                return web.Response(status=204)
            except _HTTPError as exc:
                return self._fail(call, exc)
            except Exception as exc:  # a bug in the fake: answer < 500 so discord.py does not retry
                self.internal_errors.append(f"{call.method} {call.path}: {type(exc).__name__}: {exc}")
                return self._reply(call, 400, {"message": f"fake discord error: {exc}", "code": -1}, validate=False)
            finally:
                await self._changed()

        return wrapped

    async def _faulty(
        self, request: web.Request, call: RecordedCall, fault: Fault, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        """Answer ``call`` with an injected fault (see ``faults.py``); raises ``_HTTPError`` like a handler."""
        if fault.kind == "dead_token":
            it = self._by_token.get(call.token or "")
            if call.operation not in WEBHOOK_OPERATIONS or it is None:
                return await handler(request, call)  # no token to kill here: no fault
            it.dead_token = fault.code
        call.fault = fault.kind
        self.faults.record(call, fault)
        if fault.kind == "rate_limited":
            body = {"message": "You are being rate limited.", "retry_after": fault.retry_after, "global": False}
            headers = {"Retry-After": str(max(1, round(fault.retry_after))), "X-RateLimit-Scope": "user"}
            if fault.via:
                headers["Via"] = "1.1 google"  # what discord.py checks before honouring a 429
            return self._reply(call, 429, {**body, "code": 0}, validate=False, headers=headers)
        if fault.kind == "refused":
            return self._reply(call, fault.status, {"message": "Missing Permissions", "code": fault.code})
        if fault.kind == "server_error":
            if fault.status in (502, 504):  # a gateway in front of Discord answers with HTML
                call.status = fault.status
                return web.Response(status=fault.status, text=f"<html><body>{fault.status}</body></html>")
            return self._reply(call, fault.status, {"message": f"{fault.status}: Server Error", "code": 0})
        if fault.kind == "slow":
            if fault.release is not None:
                if fault.reached is not None:
                    fault.reached.set()
                await fault.release.wait()  # held until the test releases it
            else:
                await asyncio.sleep(fault.seconds)  # simulated latency of Discord itself, not a sync
            return await handler(request, call)
        if fault.kind == "disconnect":
            if call.operation == "create_interaction_response":
                it = self._by_token.get(call.token or "")
                if it is not None:
                    it.answer_dropped = True
            response = await handler(request, call) if fault.after else web.Response()
            if request.transport is not None:
                request.transport.close()
            call.status = 0  # the bot never got an answer
            return response
        return await handler(request, call)  # dead_token: the handler answers for the dead token

    async def _begin(self, request: web.Request, operation: str | None) -> RecordedCall:
        path = request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else request.path
        if request.match_info.get("mid") == "@original" and operation in _ORIGINAL_OPERATIONS:
            operation = _ORIGINAL_OPERATIONS[operation]
        call = RecordedCall(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=None,
            files=[],
            auth="Authorization" in request.headers,
            time=self.clock(),
            operation=operation,
            token=request.match_info.get("token"),
        )
        self.calls.append(call)
        try:
            if request.content_type == "multipart/form-data":
                call.multipart = True
                reader = await request.multipart()
                async for part in reader:
                    if not isinstance(part, aiohttp.BodyPartReader):
                        call.parse_error = "nested multipart is not supported"
                        continue
                    name = part.name or ""
                    if part.filename is not None or _FILE_FIELD.match(name):
                        data = bytes(await part.read(decode=False))
                        ctype = part.headers.get("Content-Type", "application/octet-stream")
                        call.files.append(UploadedFile(part.filename or name, data, ctype))
                        call.file_fields.append(name)
                    elif name == "payload_json":
                        call.json = json.loads(await part.text())
                    else:
                        call.form[name] = await part.text()
            else:
                raw = await request.read()
                if raw:
                    if request.content_type != "application/json":
                        call.parse_error = f"unsupported Content-Type {request.content_type!r}"
                    else:
                        call.json = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            call.parse_error = f"{type(exc).__name__}: {exc}"
        return call

    def _inject_fault(self, call: RecordedCall, route: str, it: SentInteraction) -> None:
        """Answer with the first matching :class:`InteractionFault` instead of Discord, if any (raises)."""
        for fault in self.interaction_faults:
            if fault.matches(route, it.user_id):
                fault.hits += 1
                if fault.how == "drop":
                    if route == "callback":
                        it.answer_dropped = True
                    raise _Dropped
                call.fault = f"status {fault.how}"
                raise _HTTPError(int(fault.how), 0, f"{fault.how}: injected fault", record=False)

    def _reply(
        self,
        call: RecordedCall,
        status: int,
        body: Any = None,
        *,
        validate: bool = True,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        call.status = status
        call.response = body
        if status >= 400 and isinstance(body, dict):
            call.error_code = body.get("code")
        if validate and body is not None and self.spec is not None and call.operation is not None:
            errors = self.spec.validate_response(call.operation, status, body)
            if errors:
                self.response_schema_errors.append(
                    SchemaError("response", call.operation, call.method, call.path, errors, body)
                )
        if body is None:
            return web.Response(status=status, headers=headers)
        headers = {**(headers or {}), "Content-Type": "application/json"}
        return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)

    def _fail(self, call: RecordedCall, exc: _HTTPError) -> web.Response:
        body: dict[str, Any] = {"message": exc.message, "code": exc.code}
        if exc.errors:
            body["errors"] = exc.errors
        if exc.record:
            self.violations.append(
                Violation(exc.code, exc.status, exc.message, call.method, call.path, call.token, exc.detail, call.time)
            )
        return self._reply(call, exc.status, body, validate=False)

    def _check_body(self, call: RecordedCall, *, message_path: tuple[str, ...] | None, size_limit: int | None) -> None:
        """Enforce file, message-limit and schema rules on a request body; raise ``_HTTPError``."""
        if len(call.files) > MAX_FILES:
            raise _HTTPError(
                400,
                50035,
                "Invalid Form Body",
                detail=f"{len(call.files)} files (max {MAX_FILES})",
                errors=_errors_tree([(("attachments",), "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")]),
            )
        if size_limit is not None:
            for f in call.files:
                if len(f.data) > size_limit:
                    raise _HTTPError(
                        413,
                        40005,
                        "Request entity too large",
                        detail=f"{f.filename!r} is {len(f.data)} bytes; attachment_size_limit is {size_limit}",
                    )
        if message_path is not None and isinstance(call.json, dict):
            target: Any = call.json
            for key in message_path:
                target = target.get(key) if isinstance(target, dict) else None
            if isinstance(target, dict):
                problems = _message_limit_errors(target, message_path)
                if problems:
                    raise _HTTPError.invalid_form(problems)
        self._check_schema(call)

    def _check_schema(self, call: RecordedCall) -> None:
        if self.spec is None or call.operation is None:
            return
        content_type = "multipart/form-data" if call.multipart else "application/json"
        if call.json is None:
            if call.multipart and self.spec.accepts_content_type(call.operation, content_type):
                body: Any = {}
            elif self.spec.body_required(call.operation):
                errors = ["<root>: a request body is required"]
                self._schema_fail(call, errors)
            else:
                return
        else:
            body = call.json
        errors = self.spec.validate_request(call.operation, content_type, body)
        if errors:
            self._schema_fail(call, errors)

    def _schema_fail(self, call: RecordedCall, errors: list[str]) -> None:
        assert call.operation is not None
        self.schema_errors.append(SchemaError("request", call.operation, call.method, call.path, errors, call.json))
        items = []
        for err in errors:
            where, _, message = err.partition(": ")
            path = () if where == "<root>" else tuple(where.split("/"))
            items.append((path, "SCHEMA_VALIDATION_FAILED", message))
        raise _HTTPError(
            400, 50035, "Invalid Form Body", detail="; ".join(errors), errors=_errors_tree(items), record=False
        )

    @staticmethod
    def _require_content(call: RecordedCall, body: Any) -> None:
        """Discord refuses to create a message with nothing in it (50006)."""
        if call.files or not isinstance(body, dict):
            return
        if not any(body.get(k) for k in ("content", "embeds", "components", "poll", "sticker_ids", "attachments")):
            raise _HTTPError(
                400, 50006, "Cannot send an empty message", detail="no content, embeds, components or files"
            )
