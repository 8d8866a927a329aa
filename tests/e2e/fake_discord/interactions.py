"""Driving the bot like a member: slash commands, autocomplete, buttons, selects, modals, menus."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from tests.e2e.fake_discord.commands import _OptionBuilder
from tests.e2e.fake_discord.constants import (
    _APPLICATION_COMMAND,
    _AUTOCOMPLETE,
    _MESSAGE_COMPONENT,
    _MODAL_SUBMIT,
    _SELECT_TYPES,
    MessageFlags,
    _now_iso,
    snowflake,
)
from tests.e2e.fake_discord.helpers import _snowflake_of, _walk_components
from tests.e2e.fake_discord.records import SentInteraction, UploadedFile


class InteractionsMixin:
    """Part of :class:`FakeDiscord` (a mixin); see the module docstring."""

    # ------------------------------------------------------------------ dispatching interactions

    def _find_command(self, name: str, ctype: int) -> dict[str, Any] | None:
        guild_cmd = self.guild_commands.get(self.guild_id, {}).get((name, ctype))
        return guild_cmd or self.global_commands.get((name, ctype))

    def _resolve_channel(self, channel: Any) -> dict[str, Any]:
        if channel is None:
            return self.channels[self.channel_id]
        cid = _snowflake_of(channel, "channel")
        if cid not in self.channels:
            raise KeyError(f"unknown channel {cid}")
        return self.channels[cid]

    def _resolve_user(self, user: Any) -> int:
        if user is None:
            return int(self.default_member["user"]["id"])
        uid = _snowflake_of(user, "user")
        if uid not in self.users:
            raise KeyError(f"unknown user {uid} (add it with add_member/add_user)")
        return uid

    def _member_payload(self, uid: int, channel: dict[str, Any]) -> dict[str, Any]:
        member = copy.deepcopy(self.members[uid])
        member["permissions"] = str(self.member_permissions(uid))
        return member

    def _base_interaction(
        self,
        itype: int,
        *,
        user: Any,
        channel: Any,
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        uid = self._resolve_user(user)
        ch = self._resolve_channel(channel)
        payload: dict[str, Any] = {
            "id": str(snowflake()),
            "application_id": str(self.application_id),
            "type": itype,
            "token": secrets.token_urlsafe(48),
            "version": 1,
            "attachment_size_limit": attachment_size_limit or self.attachment_size_limit,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
        }
        in_dm = ch["type"] == 1
        if in_dm:
            payload |= {
                "context": 1,
                "authorizing_integration_owners": {"0": str(self.guild_id)},
                "channel_id": ch["id"],
                "channel": copy.deepcopy(ch),
                "user": self._public_user(uid),
                "app_permissions": str(app_permissions if app_permissions is not None else self.bot_permissions),
            }
            return payload
        gid = int(ch.get("guild_id") or self.guild_id)
        if uid not in self.members or (self.guild_of_member(uid) != gid and uid != self.application_id):
            raise KeyError(f"user {uid} is not a member of guild {gid}; use a DM channel or add_member()")
        perms = self.member_permissions(uid)
        payload |= {
            "context": 0,
            "authorizing_integration_owners": {"0": str(gid)},
            "guild_id": str(gid),
            "guild_locale": "en-US",
            "guild": {"id": str(gid), "locale": "en-US", "features": []},
            "channel_id": ch["id"],
            "channel": {**copy.deepcopy(ch), "permissions": str(perms)},
            "member": self._member_payload(uid, ch),
            "app_permissions": str(app_permissions if app_permissions is not None else self.bot_permissions),
        }
        return payload

    def _stored_message(self, message_id: Any) -> dict[str, Any]:
        msg = self.messages.get(str(_snowflake_of(message_id, "message")))
        if msg is None:
            raise ValueError(f"message {message_id} does not exist (or was deleted)")
        return msg

    def _message_payload(self, itype: int, msg: dict[str, Any], user: Any) -> dict[str, Any]:
        """The base payload of an interaction on stored message ``msg``, in its channel, client defaults."""
        return self._base_interaction(itype, user=user, channel=int(msg["channel_id"]))

    async def _dispatch_interaction(
        self,
        payload: dict[str, Any],
        *,
        source_message_id: str | None = None,
        opener: SentInteraction | None = None,
    ) -> SentInteraction:
        await self.flush_events()
        guild = payload.get("guild_id")
        conn = self._primary_connection(guild_id=int(guild) if guild else None)
        assert conn is not None
        it = SentInteraction(self, payload, source_message_id=source_message_id)
        it.opener = opener
        self._by_token[it.token] = it
        self.interactions.append(it)
        it.dispatched_at = self.clock()
        await self._gw_send(conn, 0, payload, "INTERACTION_CREATE")
        return it

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | list[dict[str, Any]] | None = None,
        *,
        user: Any = None,
        subcommand: str | None = None,
        subcommand_group: str | None = None,
        resolved: dict[str, Any] | None = None,
        attachment_size_limit: int | None = None,
        channel: Any = None,
        app_permissions: int | None = None,
        locale: str = "en-US",
        strict_options: bool = True,
        require_synced: bool = True,
    ) -> SentInteraction:
        """Dispatch a CHAT_INPUT command (INTERACTION_CREATE type 2) as Discord's client would.

        ``options`` maps option names to values; types come from the synced command definition
        (strings, ints, bools, floats; users/members, roles, channels as ids or dicts; attachments as
        a :meth:`make_attachment` dict or a ``(filename, bytes)`` tuple) and ``data.resolved`` is
        built automatically. Unknown or missing required options, wrong types and values outside
        choices / min / max raise ``ValueError`` unless ``strict_options=False`` (Discord's client
        validates those; pass ``False`` to prove the bot re-validates). A list is sent verbatim.
        ``user`` is a member dict or id (default: :attr:`default_member`).
        """
        return await self._command_interaction(
            _APPLICATION_COMMAND,
            name,
            options,
            user=user,
            subcommand=subcommand,
            subcommand_group=subcommand_group,
            resolved=resolved,
            attachment_size_limit=attachment_size_limit,
            channel=channel,
            app_permissions=app_permissions,
            locale=locale,
            strict=strict_options,
            require_synced=require_synced,
            focused=None,
        )

    async def autocomplete(
        self,
        name: str,
        options: dict[str, Any] | None,
        focused: str,
        *,
        user: Any = None,
        subcommand: str | None = None,
        subcommand_group: str | None = None,
        channel: Any = None,
        require_synced: bool = True,
    ) -> SentInteraction:
        """Dispatch an autocomplete request (type 4); ``focused`` names the option being typed."""
        return await self._command_interaction(
            _AUTOCOMPLETE,
            name,
            options,
            user=user,
            subcommand=subcommand,
            subcommand_group=subcommand_group,
            resolved=None,
            attachment_size_limit=None,
            channel=channel,
            app_permissions=None,
            locale="en-US",
            strict=False,
            require_synced=require_synced,
            focused=focused,
        )

    async def _command_interaction(
        self,
        itype: int,
        name: str,
        options: dict[str, Any] | list[dict[str, Any]] | None,
        *,
        user: Any,
        subcommand: str | None,
        subcommand_group: str | None,
        resolved: dict[str, Any] | None,
        attachment_size_limit: int | None,
        channel: Any,
        app_permissions: int | None,
        locale: str,
        strict: bool,
        require_synced: bool,
        focused: str | None,
    ) -> SentInteraction:
        cmd = self._find_command(name, 1)
        if cmd is None and require_synced:
            synced = sorted(
                {k[0] for k in self.global_commands} | {k[0] for k in self.guild_commands.get(self.guild_id, {})}
            )
            raise LookupError(f"/{name} was never synced (synced: {synced}); pass require_synced=False")
        payload = self._base_interaction(
            itype,
            user=user,
            channel=channel,
            attachment_size_limit=attachment_size_limit,
            app_permissions=app_permissions,
            locale=locale,
        )
        if cmd is not None and cmd.get("guild_id") and "guild_id" not in payload:
            raise ValueError(f"/{name} is a guild command and cannot be used in a DM")
        res: dict[str, dict[str, Any]] = {}
        builder = _OptionBuilder(self, res, strict=strict, focused=focused)
        defs = cmd.get("options") if cmd is not None else None
        built = builder.build_command(name, defs if cmd is not None else None, options, subcommand, subcommand_group)
        data: dict[str, Any] = {
            "id": cmd["id"] if cmd is not None else str(snowflake()),
            "name": name,
            "type": 1,
        }
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        if built:
            data["options"] = built
        for key, value in (resolved or {}).items():
            res.setdefault(key, {}).update(value)
        if res:
            data["resolved"] = res
        payload["data"] = data
        return await self._dispatch_interaction(payload)

    async def click(
        self,
        message_id: Any,
        custom_id: str,
        *,
        user: Any = None,
        values: list[Any] | None = None,
    ) -> SentInteraction:
        """Dispatch a component interaction (type 3) for ``custom_id`` on a stored message.

        The component must exist on the message and not be disabled (a user could not click it
        otherwise); selects need ``values``.
        """
        msg = self._stored_message(message_id)
        if msg["flags"] & MessageFlags.LOADING:
            raise ValueError("the message is still loading (deferred) and has no components yet")
        comp = next((c for c in _walk_components(msg["components"]) if c.get("custom_id") == custom_id), None)
        if comp is None:
            ids = [c.get("custom_id") for c in _walk_components(msg["components"]) if c.get("custom_id")]
            raise ValueError(f"message {msg['id']} has no component {custom_id!r} (has {ids})")
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        payload = self._message_payload(_MESSAGE_COMPONENT, msg, user)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": comp["type"], "id": comp.get("id")}
        if comp["type"] in _SELECT_TYPES:
            if values is None:
                raise ValueError(f"select {custom_id!r} needs values=")
            lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
            if not lo <= len(values) <= hi:
                raise ValueError(f"select {custom_id!r} takes {lo}..{hi} values, got {len(values)}")
            if comp["type"] == 3:
                allowed = [o["value"] for o in comp.get("options", [])]
                bad = [v for v in values if v not in allowed]
                if bad:
                    raise ValueError(f"values {bad} are not options of {custom_id!r} ({allowed})")
                data["values"] = list(values)
            else:
                res: dict[str, dict[str, Any]] = {}
                builder = _OptionBuilder(self, res, strict=True, focused=None)
                kind = {5: 6, 6: 8, 7: 9, 8: 7}[comp["type"]]  # user, role, mentionable, channel select
                data["values"] = [builder.value(kind, v, None, "values")["value"] for v in values]
                data["resolved"] = res
        elif values is not None:
            raise ValueError("values= is only for select menus")
        payload["message"] = copy.deepcopy(msg)
        payload["data"] = data
        return await self._dispatch_interaction(payload, source_message_id=msg["id"])

    async def message_command(self, name: str, message_id: Any, *, user: Any = None) -> SentInteraction:
        """Dispatch a MESSAGE context-menu command (type 2, ``data.type`` 3) on a stored message.

        Like Discord's client: the command must have been synced as a message command, and the target
        message travels in ``data.resolved.messages`` (attachments, embeds and all).
        """
        cmd = self._find_command(name, 3)
        if cmd is None:
            raise LookupError(f"no message command {name!r} was synced")
        msg = self._stored_message(message_id)
        payload = self._message_payload(_APPLICATION_COMMAND, msg, user)
        data: dict[str, Any] = {
            "id": cmd["id"],
            "name": name,
            "type": 3,
            "target_id": msg["id"],
            "resolved": {"messages": {msg["id"]: copy.deepcopy(msg)}},
        }
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        payload["data"] = data
        return await self._dispatch_interaction(payload)

    def post_user_message(
        self,
        content: str = "",
        *,
        user: Any = None,
        channel: Any = None,
        files: list[tuple[str, bytes]] | None = None,
        embeds: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Store a message a member posted (no gateway event): for context menus on uploads and embeds."""
        uid = self._resolve_user(user)
        ch = self._resolve_channel(channel)
        attachments = [
            self._store_attachment(
                int(ch["id"]),
                UploadedFile(name, data, "application/octet-stream"),
                filename=name,
                description=None,
                ephemeral=False,
            )
            for name, data in files or []
        ]
        mid = str(snowflake())
        msg: dict[str, Any] = {
            "id": mid,
            "type": 0,
            "channel_id": ch["id"],
            "author": self._public_user(uid),
            "content": content,
            "embeds": copy.deepcopy(embeds or []),
            "attachments": attachments,
            "components": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "flags": 0,
        }
        self.messages[mid] = msg
        return msg

    async def forge_click(self, message_id: Any, custom_id: str, *, user: Any = None) -> SentInteraction:
        """A hand-crafted component interaction (a modified client): ``custom_id`` need not be on the message.

        The payload's copy of the message carries the forged button (discord.py ignores clicks on
        components a message does not have). Discord itself would refuse it; the bot must not trust a
        custom id anyway.
        """
        msg = self._stored_message(message_id)
        payload = self._message_payload(_MESSAGE_COMPONENT, msg, user)
        forged = copy.deepcopy(msg)  # the forger's copy of the message carries the button it claims
        forged["components"] = [
            {"type": 1, "components": [{"type": 2, "style": 2, "label": "forged", "custom_id": custom_id}]}
        ]
        payload["message"] = forged
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        return await self._dispatch_interaction(payload, source_message_id=msg["id"])

    async def submit_modal(
        self,
        custom_id: str,
        values: dict[str, Any],
        *,
        user: Any = None,
    ) -> SentInteraction:
        """Dispatch a modal submit (type 5) for a modal the bot showed (type 9 response).

        ``values`` maps each input's ``custom_id`` to its text (or a list for selects). The submitted
        components mirror the modal's layout (action rows or labels), as Discord sends them.
        """
        entry = self.modals.get(custom_id)
        if entry is None:
            raise ValueError(f"the bot never showed a modal {custom_id!r} (shown: {sorted(self.modals)})")
        modal, opener = entry
        remaining = dict(values)
        components = _modal_submission(modal.get("components") or [], remaining)
        if remaining:
            raise ValueError(f"modal {custom_id!r} has no inputs {sorted(remaining)}")
        payload = self._base_interaction(
            _MODAL_SUBMIT,
            user=user if user is not None else opener.user_id,
            channel=opener.channel_id,
        )
        if opener.source_message_id and opener.source_message_id in self.messages:
            payload["message"] = copy.deepcopy(self.messages[opener.source_message_id])
        payload["data"] = {"custom_id": custom_id, "components": components}
        return await self._dispatch_interaction(payload, source_message_id=opener.source_message_id, opener=opener)


def _modal_submission(components: list[dict[str, Any]], values: dict[str, Any]) -> list[dict[str, Any]]:
    """Mirror a shown modal's layout with the user's values (consumes keys from ``values``)."""
    out: list[dict[str, Any]] = []
    for comp in components:
        ctype = comp.get("type")
        if ctype == 1:
            out.append({"type": 1, "id": comp.get("id"), "components": _modal_submission(comp["components"], values)})
        elif ctype == 18:
            inner = _modal_submission([comp["component"]], values)
            out.append({"type": 18, "id": comp.get("id"), "component": inner[0]})
        elif ctype == 4:
            cid = comp["custom_id"]
            text = values.pop(cid, comp.get("value") or "")
            if not isinstance(text, str):
                raise ValueError(f"text input {cid!r} needs a string")
            required = comp.get("required", True)
            if required and not text:
                raise ValueError(f"text input {cid!r} is required")
            if text and not comp.get("min_length", 0) <= len(text) <= comp.get("max_length", 4000):
                raise ValueError(f"text input {cid!r}: length {len(text)} outside min_length/max_length")
            out.append({"type": 4, "id": comp.get("id"), "custom_id": cid, "value": text})
        elif ctype in _SELECT_TYPES:
            cid = comp["custom_id"]
            chosen = values.pop(cid, [])
            out.append({"type": ctype, "id": comp.get("id"), "custom_id": cid, "values": [str(v) for v in chosen]})
        elif ctype == 10:
            out.append({"type": 10, "id": comp.get("id")})
    return out
