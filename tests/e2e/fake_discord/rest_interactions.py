"""REST routes for interaction callbacks and the interaction webhooks (followups, edits)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from aiohttp import web

from tests.e2e.fake_discord.constants import (
    _ALLOWED_CALLBACKS,
    _APPLICATION_COMMAND,
    _AUTOCOMPLETE,
    _CREATE_FLAGS,
    _KNOWN_CALLBACK_TYPES,
    MessageFlags,
)
from tests.e2e.fake_discord.helpers import _assign_component_ids, _errors_tree
from tests.e2e.fake_discord.records import RecordedCall, SentInteraction, _HTTPError


class InteractionRoutesMixin:
    """Part of :class:`FakeDiscord` (a mixin); see the module docstring."""

    # ------------------------------------------------------------------ REST: interactions

    async def _h_callback(self, request: web.Request, call: RecordedCall) -> web.Response:
        token = request.match_info["token"]
        call.token = token
        it = self._by_token.get(token)
        if it is None or str(it.id) != request.match_info["iid"]:
            raise _HTTPError(404, 10062, "Unknown interaction", detail="unknown interaction id/token")
        self._inject_fault(call, "callback", it)
        if it.acked:
            raise _HTTPError(
                400,
                40060,
                "Interaction has already been acknowledged.",
                detail=f"already answered with type {it.response_type}",
            )
        late_by = call.time - it.dispatched_at
        if late_by > self.ack_deadline_s:
            raise _HTTPError(
                404,
                10062,
                "Unknown interaction",
                detail=f"initial response {late_by:.3f}s after dispatch (deadline {self.ack_deadline_s}s)",
            )
        body = call.json if isinstance(call.json, dict) else {}
        cb_type = body.get("type")
        if cb_type in _KNOWN_CALLBACK_TYPES and (
            cb_type not in _ALLOWED_CALLBACKS.get(it.type, set())
            or (cb_type in (6, 7) and it.source_message_id is None)
        ):
            raise _HTTPError(
                400,
                50035,
                "Invalid Form Body",
                detail=f"callback type {cb_type} is not valid for interaction type {it.type}",
                errors=_errors_tree(
                    [(("type",), "INTERACTION_CALLBACK_TYPE_INVALID", "Invalid interaction callback type")]
                ),
            )
        self._check_body(
            call, message_path=("data",) if cb_type in (4, 7) else None, size_limit=it.attachment_size_limit
        )
        if cb_type == 4:
            self._require_content(call, body.get("data") or {})
        data = body.get("data") or {}
        flags = data.get("flags") or 0
        resource_message: dict[str, Any] | None = None
        if cb_type in (4, 5):
            ephemeral = bool(flags & MessageFlags.EPHEMERAL)
            loading = MessageFlags.LOADING if cb_type == 5 else 0
            msg = self._create_message(
                call,
                channel_id=it.channel_id,
                body=data if cb_type == 4 else {},
                flags=(flags & (_CREATE_FLAGS if cb_type == 4 else MessageFlags.EPHEMERAL)) | loading,
                msg_type=20 if it.type == _APPLICATION_COMMAND else 0,
                interaction=it,
            )
            it.original_message_id = msg["id"]
            it.ephemeral = ephemeral
            resource_message = msg
        elif cb_type in (6, 7):
            assert it.source_message_id is not None
            source = self.messages.get(it.source_message_id)
            if source is None:
                raise _HTTPError(404, 10008, "Unknown Message", detail="the clicked message was deleted")
            if cb_type == 7:
                self._edit_message(call, source, data, default_parse=("users",))
            it.original_message_id = source["id"]
            it.ephemeral = bool(source["flags"] & MessageFlags.EPHEMERAL)
            resource_message = source
        elif cb_type == 8:
            it.autocomplete_choices = list(data.get("choices") or [])
        elif cb_type == 9:
            modal = copy.deepcopy(data)
            _assign_component_ids(modal.get("components") or [])
            it.modal = modal
            self.modals[modal["custom_id"]] = (modal, it)
        it.acked_at = call.time
        it.response_type = cb_type
        it.response = body
        if call.query.get("with_response", "").lower() not in ("1", "true"):
            return self._reply(call, 204)
        interaction: dict[str, Any] = {
            "id": str(it.id),
            "type": it.type,
            "channel_id": str(it.channel_id),
            "guild_id": str(it.guild_id or self.guild_id),
        }
        if resource_message is not None:
            interaction |= {
                "response_message_id": resource_message["id"],
                "response_message_loading": cb_type == 5,
                "response_message_ephemeral": it.ephemeral,
            }
        out: dict[str, Any] = {"interaction": interaction}
        if cb_type in (4, 7) and resource_message is not None:
            out["resource"] = {"type": cb_type, "message": copy.deepcopy(resource_message)}
        return self._reply(call, 200, out)

    def _webhook_interaction(self, request: web.Request, call: RecordedCall) -> SentInteraction:
        token = request.match_info["token"]
        call.token = token
        it = self._by_token.get(token)
        if it is None or request.match_info["app"] != str(self.application_id):
            raise _HTTPError(404, 10015, "Unknown Webhook", detail="unknown application id or interaction token")
        if it.type == _AUTOCOMPLETE:
            raise _HTTPError(404, 10015, "Unknown Webhook", detail="autocomplete interactions have no webhook")
        if it.dead_token == 50027:  # an injected fault (faults.py): not the bot's mistake, so not a violation
            raise _HTTPError(401, 50027, "Invalid Webhook Token", detail="injected: token dead", record=False)
        if it.dead_token == 10015:
            raise _HTTPError(404, 10015, "Unknown Webhook", detail="injected: token dead", record=False)
        age = call.time - it.dispatched_at
        if age > self.token_ttl_s:
            raise _HTTPError(
                401,
                50027,
                "Invalid Webhook Token",
                detail=f"interaction token is {age:.1f}s old (valid for {self.token_ttl_s}s)",
            )
        if not it.acked:
            if age > self.ack_deadline_s:
                detail = "the interaction was never acknowledged in time, so its token was invalidated"
            else:
                detail = "webhook used before the initial interaction response"
            # After a dropped answer, the bot may fairly ask whether it landed: Discord's 404, no violation.
            raise _HTTPError(404, 10015, "Unknown Webhook", detail=detail, record=not it.answer_dropped)
        return it

    def _webhook_message(self, request: web.Request, it: SentInteraction) -> dict[str, Any]:
        mid = request.match_info["mid"]
        if mid == "@original":
            msg = self.messages.get(it.original_message_id or "")
        elif mid == it.original_message_id or mid in it.followup_ids:
            msg = self.messages.get(mid)
        else:
            msg = None
        if msg is None:
            raise _HTTPError(404, 10008, "Unknown Message", detail=f"message {mid} of interaction {it.id}")
        return msg

    async def _h_execute_webhook(self, request: web.Request, call: RecordedCall) -> web.Response:
        it = self._webhook_interaction(request, call)
        self._check_body(call, message_path=(), size_limit=it.attachment_size_limit)
        body = call.json or {}
        self._require_content(call, body)
        original = self.messages.get(it.original_message_id or "")
        if original is not None and it.response_type == 5 and original["flags"] & MessageFlags.LOADING:
            # Discord's deprecated behaviour: the first follow-up replaces the loading message.
            self.warnings.append(
                f"interaction {it.id}: follow-up sent while the deferred response was still loading; "
                "Discord edits @original instead (its ephemerality is fixed by the defer)"
            )
            without_flags = {k: v for k, v in body.items() if k != "flags"}
            self._edit_message(call, original, without_flags, default_parse=("users",))
            msg = original
        else:
            flags = (body.get("flags") or 0) & _CREATE_FLAGS
            msg = self._create_message(
                call,
                channel_id=it.channel_id,
                body=body,
                flags=flags,
                msg_type=0,
                interaction=it,
            )
            if it.original_message_id is not None:
                msg["interaction_metadata"]["original_response_message_id"] = it.original_message_id
            it.followup_ids.append(msg["id"])
        if call.query.get("wait", "").lower() not in ("1", "true"):
            return self._reply(call, 204)
        return self._reply(call, 200, copy.deepcopy(msg))

    async def _h_webhook_get(self, request: web.Request, call: RecordedCall) -> web.Response:
        if request.match_info["mid"] == "@original":
            call.operation = "get_original_webhook_message"
        it = self._webhook_interaction(request, call)
        return self._reply(call, 200, copy.deepcopy(self._webhook_message(request, it)))

    async def _h_webhook_edit(self, request: web.Request, call: RecordedCall) -> web.Response:
        if request.match_info["mid"] == "@original":
            call.operation = "update_original_webhook_message"
        if self.webhook_edit_delay:
            await asyncio.sleep(self.webhook_edit_delay)  # a slow Discord (simulated latency, not a sync)
        it = self._webhook_interaction(request, call)
        self._inject_fault(call, "webhook_edit", it)
        msg = self._webhook_message(request, it)
        self._check_body(call, message_path=(), size_limit=it.attachment_size_limit)
        self._edit_message(call, msg, call.json or {}, default_parse=("users",))
        return self._reply(call, 200, copy.deepcopy(msg))

    async def _h_webhook_delete(self, request: web.Request, call: RecordedCall) -> web.Response:
        if request.match_info["mid"] == "@original":
            call.operation = "delete_original_webhook_message"
        it = self._webhook_interaction(request, call)
        msg = self._webhook_message(request, it)
        self._delete_message(msg["id"])
        return self._reply(call, 204)

    async def _h_attachment(self, request: web.Request) -> web.Response:
        blob = self._blobs.get(request.match_info["aid"])
        if blob is None:
            return web.Response(status=404, text="Not Found")
        self.attachment_downloads.append(request.match_info["aid"])
        await self._changed()
        return web.Response(body=blob.data, headers={"Content-Type": blob.content_type})
