"""REST routes about the bot itself: users, application, gateway URL, DMs, commands, members, role counts."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from tests.e2e.fake_discord.commands import _command_sync_errors, _option_response
from tests.e2e.fake_discord.constants import Perm, snowflake
from tests.e2e.fake_discord.records import CommandSync, RecordedCall, _HTTPError


class AppRoutesMixin:
    """Part of :class:`FakeDiscord` (a mixin); see the module docstring."""

    # ------------------------------------------------------------------ REST: bot routes

    async def _h_unhandled(self, request: web.Request, call: RecordedCall) -> web.Response:
        self.unhandled.append(call)
        return self._reply(call, 404, {"message": "404: Not Found", "code": 0}, validate=False)

    async def _h_get_me(self, request: web.Request, call: RecordedCall) -> web.Response:
        me = {**self._public_user(self.application_id), "mfa_enabled": False, "locale": "en-US", "verified": True}
        return self._reply(call, 200, me)

    async def _h_get_user(self, request: web.Request, call: RecordedCall) -> web.Response:
        try:
            uid = int(request.match_info["user"])
        except ValueError:
            uid = -1
        if uid not in self.users:
            raise _HTTPError(404, 10013, "Unknown User", detail=request.match_info["user"])
        return self._reply(call, 200, self._public_user(uid))

    async def _h_app_info(self, request: web.Request, call: RecordedCall) -> web.Response:
        return self._reply(
            call,
            200,
            {
                "id": str(self.application_id),
                "name": self.bot_user["username"],
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot": self._public_user(self.application_id),
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "flags_new": "0",
                "hook": True,
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "role_connections_verification_url": None,
                "owner": self._public_user(self.owner_id),
                "approximate_guild_count": 1,
                "approximate_user_install_count": 0,
                "approximate_user_authorization_count": 0,
                "explicit_content_filter": 0,
                "team": None,
                "eligible_oauth2_scopes": ["bot", "applications.commands"],
                "integration_types_config": {"0": {}},
                "tags": [],
                "rpc_origins": [],
            },
        )

    async def _h_get_gateway(self, request: web.Request, call: RecordedCall) -> web.Response:
        body: dict[str, Any] = {"url": self.gateway_url}
        if request.path.endswith("/bot"):
            body |= {
                "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
            }
        return self._reply(call, 200, body)

    async def _h_create_dm(self, request: web.Request, call: RecordedCall) -> web.Response:
        self._check_schema(call)
        recipient = (call.json or {}).get("recipient_id")
        try:
            uid = int(recipient)
        except (TypeError, ValueError):
            uid = -1
        if uid not in self.users:
            raise _HTTPError(400, 50033, "Invalid Recipient(s)", detail=f"unknown user {recipient!r}")
        return self._reply(call, 200, copy.deepcopy(self.dm_channel(uid)))

    def _check_app(self, request: web.Request) -> None:
        if request.match_info["app"] != str(self.application_id):
            raise _HTTPError(403, 50001, "Missing Access", detail=f"application id {request.match_info['app']}")

    def _command_scope(self, request: web.Request) -> tuple[int | None, dict[tuple[str, int], dict[str, Any]]]:
        self._check_app(request)
        guild = request.match_info.get("guild")
        if guild is None:
            return None, self.global_commands
        if guild != str(self.guild_id):
            raise _HTTPError(403, 50001, "Missing Access", detail=f"the bot is not in guild {guild}")
        return self.guild_id, self.guild_commands.setdefault(self.guild_id, {})

    async def _h_list_commands(self, request: web.Request, call: RecordedCall) -> web.Response:
        _guild_id, scope = self._command_scope(request)
        return self._reply(call, 200, copy.deepcopy(list(scope.values())))

    async def _h_put_commands(self, request: web.Request, call: RecordedCall) -> web.Response:
        guild_id, scope = self._command_scope(request)
        body = call.json
        if isinstance(body, list):
            problems = _command_sync_errors(body)
            if problems:
                raise _HTTPError.invalid_form(problems)
        self._check_schema(call)
        new_scope: dict[tuple[str, int], dict[str, Any]] = {}
        for cmd in body or []:
            key = (cmd["name"], cmd.get("type") or 1)
            existing = scope.get(key)
            cmd_id = existing["id"] if existing else str(snowflake())
            new_scope[key] = self._command_response(cmd, cmd_id, guild_id)
        scope.clear()
        scope.update(new_scope)
        result = copy.deepcopy(list(new_scope.values()))
        self.command_syncs.append(CommandSync(guild_id, result, call.time))
        return self._reply(call, 200, result)

    def _command_response(self, cmd: dict[str, Any], cmd_id: str, guild_id: int | None) -> dict[str, Any]:
        ctype = cmd.get("type") or 1
        out: dict[str, Any] = {
            "id": cmd_id,
            "application_id": str(self.application_id),
            "version": str(snowflake()),
            # discord.py may send the bits as an int; Discord stores and returns a string.
            "default_member_permissions": (
                None if cmd.get("default_member_permissions") is None else str(cmd["default_member_permissions"])
            ),
            "type": ctype,
            "name": cmd["name"],
            "name_localizations": cmd.get("name_localizations"),
            "description": cmd.get("description") or "",
            "description_localizations": cmd.get("description_localizations"),
            "nsfw": bool(cmd.get("nsfw")),
            "integration_types": cmd.get("integration_types") or [0],
            "contexts": cmd.get("contexts"),
        }
        if guild_id is not None:
            out["guild_id"] = str(guild_id)
        else:
            out["dm_permission"] = cmd.get("dm_permission") is not False
        if cmd.get("options"):
            out["options"] = [_option_response(o) for o in cmd["options"]]
        return out

    async def _h_get_member(self, request: web.Request, call: RecordedCall) -> web.Response:
        guild = request.match_info["guild"]
        if not guild.isdigit() or int(guild) not in self.guild_ids:
            raise _HTTPError(404, 10004, "Unknown Guild")
        try:
            uid = int(request.match_info["user"])
            member = self.members[uid]
        except (KeyError, ValueError):
            raise _HTTPError(404, 10007, "Unknown Member") from None
        if uid != self.application_id and self.guild_of_member(uid) != int(guild):
            raise _HTTPError(404, 10007, "Unknown Member")
        return self._reply(call, 200, copy.deepcopy(member))

    async def _h_role_member_counts(self, request: web.Request, call: RecordedCall) -> web.Response:
        """Members per role of a server (not @everyone); Discord asks for Manage Roles (403 50013 without)."""
        guild = request.match_info["guild"]
        if not guild.isdigit() or int(guild) not in self.guild_ids:
            raise _HTTPError(404, 10004, "Unknown Guild")
        gid = int(guild)
        if not self.bot_permissions & Perm.MANAGE_ROLES:
            raise _HTTPError(403, 50013, "Missing Permissions", detail="role member counts need MANAGE_ROLES")
        counts = {str(rid): 0 for rid in self.roles if rid != gid and self._role_guild.get(rid, self.guild_id) == gid}
        for uid, member in self.members.items():
            if uid == self.application_id or self.guild_of_member(uid) == gid:
                for rid in member["roles"]:
                    if rid in counts:
                        counts[rid] += 1
        return self._reply(call, 200, counts)
