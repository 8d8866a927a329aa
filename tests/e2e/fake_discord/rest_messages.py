"""REST routes for channel messages and the message model shared with interaction responses."""

from __future__ import annotations

import asyncio
import copy
import mimetypes
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from tests.e2e.fake_discord.constants import (
    _APPLICATION_COMMAND,
    _FILE_FIELD,
    _MESSAGE_COMPONENT,
    _MODAL_SUBMIT,
    MessageFlags,
    Perm,
    _now_iso,
    snowflake,
)
from tests.e2e.fake_discord.helpers import (
    _assign_component_ids,
    _embed_response,
    _errors_tree,
    _image_info,
    _walk_components,
)
from tests.e2e.fake_discord.limits import _attachments_prefix
from tests.e2e.fake_discord.records import MessageVersion, RecordedCall, SentInteraction, UploadedFile, _HTTPError


class MessagesMixin:
    """Part of :class:`FakeDiscord` (a mixin); see the module docstring."""

    # ------------------------------------------------------------------ REST: channels

    def _channel(self, request: web.Request) -> dict[str, Any]:
        try:
            return self.channels[int(request.match_info["cid"])]
        except (KeyError, ValueError):
            raise _HTTPError(404, 10003, "Unknown Channel", detail=request.match_info["cid"]) from None

    def _channel_message(self, request: web.Request) -> dict[str, Any]:
        channel = self._channel(request)
        msg = self.messages.get(request.match_info["mid"])
        if msg is None or msg["channel_id"] != channel["id"] or msg["flags"] & MessageFlags.EPHEMERAL:
            # Ephemeral messages are not reachable through the channel API.
            raise _HTTPError(404, 10008, "Unknown Message", detail=request.match_info["mid"])
        return msg

    async def _h_get_channel(self, request: web.Request, call: RecordedCall) -> web.Response:
        channel = copy.deepcopy(self._channel(request))
        return self._reply(call, 200, channel)

    def _require_channel_permissions(self, channel: dict[str, Any], files: bool) -> None:
        if channel["type"] == 1:
            return
        perms = self.bot_permissions
        if not perms & Perm.VIEW_CHANNEL:
            raise _HTTPError(403, 50001, "Missing Access", detail="bot lacks VIEW_CHANNEL")
        if not perms & Perm.SEND_MESSAGES:
            raise _HTTPError(403, 50013, "Missing Permissions", detail="bot lacks SEND_MESSAGES")
        if files and not perms & Perm.ATTACH_FILES:
            raise _HTTPError(403, 50013, "Missing Permissions", detail="bot lacks ATTACH_FILES")

    async def _h_channel_send(self, request: web.Request, call: RecordedCall) -> web.Response:
        channel = self._channel(request)
        delay = self.channel_send_delays.get(int(channel["id"]))
        if delay:
            await asyncio.sleep(delay)  # latency of the fake server itself, not synchronisation
        self._require_channel_permissions(channel, bool(call.files))
        self._check_body(call, message_path=(), size_limit=self.attachment_size_limit)
        body = call.json or {}
        self._require_content(call, body)
        if channel["type"] == 1 and int(channel["recipients"][0]["id"]) in self.closed_dms:
            raise _HTTPError(403, 50007, "Cannot send messages to this user", detail="DMs closed", record=False)
        nonce = body.get("nonce")
        key = (channel["id"], str(nonce))
        if nonce is not None and body.get("enforce_nonce") and key in self._nonces:
            earlier, at = self._nonces[key]
            if call.time - at <= self.nonce_window_s and earlier in self.messages:
                call.nonce_reused = True  # Discord returns the first message instead of a duplicate
                return self._reply(call, 200, copy.deepcopy(self.messages[earlier]))
        msg_type = 19 if body.get("message_reference") else 0
        msg = self._create_message(
            call,
            channel_id=int(channel["id"]),
            body=body,
            msg_type=msg_type,
            default_parse=("users", "roles", "everyone"),
        )
        if nonce is not None:
            msg["nonce"] = nonce
            self._nonces[key] = (msg["id"], call.time)
        return self._reply(call, 200, msg)

    async def _h_channel_get(self, request: web.Request, call: RecordedCall) -> web.Response:
        return self._reply(call, 200, copy.deepcopy(self._channel_message(request)))

    async def _h_channel_edit(self, request: web.Request, call: RecordedCall) -> web.Response:
        msg = self._channel_message(request)
        self._check_body(call, message_path=(), size_limit=self.attachment_size_limit)
        self._edit_message(call, msg, call.json or {}, default_parse=("users", "roles", "everyone"))
        return self._reply(call, 200, copy.deepcopy(msg))

    async def _h_channel_delete(self, request: web.Request, call: RecordedCall) -> web.Response:
        msg = self._channel_message(request)
        self._delete_message(msg["id"])
        return self._reply(call, 204)

    # ------------------------------------------------------------------ messages

    def _store_attachment(
        self,
        channel_id: int,
        upload: UploadedFile,
        *,
        filename: str | None,
        description: str | None,
        ephemeral: bool,
    ) -> dict[str, Any]:
        aid = str(snowflake())
        name = filename or upload.filename
        sniffed, width, height = _image_info(upload.data)
        declared = None if upload.content_type == "application/octet-stream" else upload.content_type
        # Like Discord: sniff images, else trust a declared type, else guess from the file name.
        ctype = sniffed or declared or mimetypes.guess_type(name)[0]
        stored = UploadedFile(name, upload.data, ctype or "application/octet-stream")
        self._blobs[aid] = stored
        url = f"{self.cdn_url}/attachments/{channel_id}/{aid}/{quote(name)}"
        att: dict[str, Any] = {"id": aid, "filename": name, "size": len(upload.data), "url": url, "proxy_url": url}
        if ctype:
            att["content_type"] = ctype
        if width is not None:
            att["width"], att["height"] = width, height
        if description is not None:
            att["description"] = description
        if ephemeral:
            att["ephemeral"] = True
        return att

    def _plan_attachments(
        self, call: RecordedCall, existing: list[dict[str, Any]], body: dict[str, Any], editing: bool
    ) -> list[tuple[dict[str, Any] | None, UploadedFile | None, dict[str, Any]]]:
        """Work out the attachment list after this request without changing state (may raise)."""
        uploads: dict[int, UploadedFile] = {}
        for pos, (name, upload) in enumerate(zip(call.file_fields, call.files, strict=True)):
            m = _FILE_FIELD.match(name)
            uploads[int(m.group(1)) if m else pos] = upload
        kept = {a["id"]: a for a in existing}
        plan: list[tuple[dict[str, Any] | None, UploadedFile | None, dict[str, Any]]] = []
        used: set[int] = set()
        spec = body.get("attachments") if "attachments" in body else None
        if spec is None:
            if editing:
                plan += [(a, None, {}) for a in existing]
        else:
            problems = []
            for i, entry in enumerate(spec):
                aid = str(entry.get("id")) if isinstance(entry, dict) else ""
                if aid in kept:
                    plan.append((kept[aid], None, entry))
                elif aid.isdigit() and int(aid) in uploads and int(aid) not in used:
                    used.add(int(aid))
                    plan.append((None, uploads[int(aid)], entry))
                else:
                    problems.append(
                        (
                            (*_attachments_prefix(call), i, "id"),
                            "UNKNOWN_ATTACHMENT",
                            f"attachment id {aid!r} is neither an upload index nor a kept attachment",
                        )
                    )
            if problems:
                raise _HTTPError(400, 50035, "Invalid Form Body", detail=problems[0][2], errors=_errors_tree(problems))
        for idx in sorted(uploads):
            if idx not in used:  # uploads not referenced by attachments[] are still attached
                plan.append((None, uploads[idx], {}))
        return plan

    def _create_message(
        self,
        call: RecordedCall,
        *,
        channel_id: int,
        body: dict[str, Any],
        msg_type: int,
        flags: int | None = None,
        interaction: SentInteraction | None = None,
        default_parse: tuple[str, ...] = ("users",),
    ) -> dict[str, Any]:
        plan = self._plan_attachments(call, [], body, editing=False)
        mid = str(snowflake())
        msg: dict[str, Any] = {
            "id": mid,
            "type": msg_type,
            "channel_id": str(channel_id),
            "author": self._public_user(self.application_id),
            "content": "",
            "embeds": [],
            "attachments": [],
            "components": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": bool(body.get("tts")),
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "flags": (body.get("flags") or 0) if flags is None else flags,
        }
        if interaction is not None:
            msg["webhook_id"] = str(self.application_id)
            msg["application_id"] = str(self.application_id)
            msg["interaction_metadata"] = self._interaction_metadata(interaction)
        if "message_reference" in body and isinstance(body["message_reference"], dict):
            ref = body["message_reference"]
            msg["message_reference"] = {k: str(v) if v is not None and k.endswith("_id") else v for k, v in ref.items()}
        self._apply_message_body(msg, body, plan, default_parse, creating=True)
        self.messages[mid] = msg
        self._remember_version(msg, call.time)
        channel = self.channels.get(channel_id)
        if channel is not None:
            channel["last_message_id"] = mid
        return msg

    def _edit_message(
        self, call: RecordedCall, msg: dict[str, Any], body: dict[str, Any], *, default_parse: tuple[str, ...]
    ) -> None:
        plan = self._plan_attachments(call, msg["attachments"], body, editing=True)
        was_loading = bool(msg["flags"] & MessageFlags.LOADING)
        self._apply_message_body(msg, body, plan, default_parse, creating=False)
        msg["flags"] &= ~MessageFlags.LOADING
        if "flags" in body and body["flags"] is not None:
            changeable = MessageFlags.SUPPRESS_EMBEDS | MessageFlags.IS_COMPONENTS_V2
            msg["flags"] = (msg["flags"] & ~changeable) | (body["flags"] & changeable)
        if not was_loading:  # completing a deferred response is not shown as an edit
            msg["edited_timestamp"] = _now_iso()
        self._remember_version(msg, call.time)

    def _remember_version(self, msg: dict[str, Any], time: float) -> None:
        """Keep what the message looks like now (``message_history``: every version, oldest first)."""
        texts = [msg["content"] or "", *_text_displays(msg.get("components") or [])]
        texts += [e.get("description") or "" for e in msg.get("embeds") or []]
        version = MessageVersion(
            time=time,
            content=msg["content"] or "",
            attachments=len(msg.get("attachments") or []),
            embeds=len(msg.get("embeds") or []),
            flags=msg["flags"],
            text="\n".join(t for t in texts if t),
        )
        self.message_history.setdefault(msg["id"], []).append(version)

    def _apply_message_body(
        self,
        msg: dict[str, Any],
        body: dict[str, Any],
        plan: list[tuple[dict[str, Any] | None, UploadedFile | None, dict[str, Any]]],
        default_parse: tuple[str, ...],
        *,
        creating: bool,
    ) -> None:
        if "content" in body:
            msg["content"] = body["content"] or ""
        if "embeds" in body:
            msg["embeds"] = [_embed_response(e) for e in body["embeds"] or [] if isinstance(e, dict)]
        if "components" in body:
            comps = copy.deepcopy(body["components"] or [])
            for comp in _walk_components(comps):
                # A unicode emoji is sent as {"id": null, "name": "🎲"}; Discord stores it without an id.
                if isinstance(comp.get("emoji"), dict) and comp["emoji"].get("id") is None:
                    comp["emoji"].pop("id", None)
            _assign_component_ids(comps)
            msg["components"] = comps
        ephemeral = bool(msg["flags"] & MessageFlags.EPHEMERAL)
        attachments = []
        for kept, upload, entry in plan:
            if kept is not None:
                att = dict(kept)
                if entry.get("description") is not None:
                    att["description"] = entry["description"]
                attachments.append(att)
            elif upload is not None:
                attachments.append(
                    self._store_attachment(
                        int(msg["channel_id"]),
                        upload,
                        filename=entry.get("filename"),
                        description=entry.get("description"),
                        ephemeral=ephemeral,
                    )
                )
        if creating or plan or "attachments" in body:
            msg["attachments"] = attachments
        if "components" in body or "attachments" in body:
            _resolve_media(msg)
        if "allowed_mentions" in body:
            self._allowed_mentions[msg["id"]] = body["allowed_mentions"]
        self._compute_mentions(msg, self._allowed_mentions.get(msg["id"]), default_parse)

    def _compute_mentions(self, msg: dict[str, Any], allowed: Any, default_parse: tuple[str, ...]) -> None:
        # Discord parses mentions in Components V2 text displays exactly as in ``content``.
        content = "\n".join([msg["content"] or "", *_text_displays(msg.get("components") or [])])
        parse = set(default_parse) if not isinstance(allowed, dict) else set(allowed.get("parse") or [])
        allow_users = {str(u) for u in (allowed or {}).get("users") or []} if isinstance(allowed, dict) else set()
        allow_roles = {str(r) for r in (allowed or {}).get("roles") or []} if isinstance(allowed, dict) else set()
        users = []
        for uid in dict.fromkeys(re.findall(r"<@!?(\d+)>", content)):
            if ("users" in parse or uid in allow_users) and int(uid) in self.users:
                users.append(self._public_user(int(uid)))
        roles = [
            rid
            for rid in dict.fromkeys(re.findall(r"<@&(\d+)>", content))
            if ("roles" in parse or rid in allow_roles) and int(rid) in self.roles
        ]
        msg["mentions"] = users
        msg["mention_roles"] = roles
        msg["mention_everyone"] = "everyone" in parse and ("@everyone" in content or "@here" in content)

    def _delete_message(self, mid: str) -> None:
        msg = self.messages.pop(mid)
        self.deleted_messages[mid] = msg

    def _interaction_metadata(self, it: SentInteraction) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": str(it.id),
            "type": it.type,
            "user": self._public_user(it.user_id),
            "authorizing_integration_owners": {"0": str(it.guild_id or self.guild_id)},
        }
        if it.type == _MESSAGE_COMPONENT and it.source_message_id:
            meta["interacted_message_id"] = it.source_message_id
        if it.type == _APPLICATION_COMMAND:
            meta["name"] = it.payload["data"]["name"]
            meta["command_type"] = it.payload["data"].get("type", 1)
        if it.type == _MODAL_SUBMIT and it.opener is not None:
            meta["triggering_interaction_metadata"] = self._interaction_metadata(it.opener)
        return meta


def _resolve_media(msg: dict[str, Any]) -> None:
    """Answer Components V2 media as Discord does: ``attachment://name`` becomes that attachment's URLs."""
    by_name = {a.get("filename"): a for a in msg.get("attachments") or []}
    for comp in _walk_components(msg.get("components") or []):
        for media in [comp.get("media")] + [item.get("media") for item in comp.get("items") or []]:
            if not isinstance(media, dict) or not isinstance(media.get("url"), str):
                continue
            url = media["url"]
            if url.startswith("attachment://"):
                attachment = by_name.get(url.removeprefix("attachment://"))
                if attachment is None:
                    continue
                media.update(
                    {
                        "url": attachment["url"],
                        "proxy_url": attachment["proxy_url"],
                        "width": attachment.get("width"),
                        "height": attachment.get("height"),
                        "content_type": attachment.get("content_type"),
                        "attachment_id": attachment["id"],
                    }
                )
            else:
                media.setdefault("proxy_url", url)
            media.setdefault("id", str(snowflake()))


def _text_displays(components: list[Any]) -> list[str]:
    """The contents of every text display (type 10) in a component tree."""
    found = []
    for component in components:
        if isinstance(component, dict):
            if component.get("type") == 10 and isinstance(component.get("content"), str):
                found.append(component["content"])
            found += _text_displays(component.get("components") or [])
    return found
