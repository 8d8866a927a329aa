"""The fake Discord gateway: identify, resume, heartbeats, dispatching events."""

from __future__ import annotations

import copy
import json
import secrets
from typing import Any

import aiohttp
from aiohttp import web

from tests.e2e.fake_discord.constants import Intents
from tests.e2e.fake_discord.records import GatewayEvent, Violation, _GatewayConnection, _GatewaySession


class GatewayMixin:
    """Part of :class:`FakeDiscord` (a mixin); see the module docstring."""

    # ------------------------------------------------------------------ gateway

    async def _h_gateway(self, request: web.Request) -> web.StreamResponse:
        if self.gateway_down:
            return web.Response(status=503, text="gateway unavailable (fake outage)")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        conn = _GatewayConnection(ws=ws, query=dict(request.query))
        self._connections.append(conn)
        try:
            await self._gw_send(conn, 10, {"heartbeat_interval": self.heartbeat_interval_ms})
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        await self._gw_close(conn, 4002, "Decode error")
                        break
                    await self._gw_receive(conn, frame)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await self._gw_close(conn, 4002, "Decode error: the fake expects text frames")
                    break
        finally:
            self._connections.remove(conn)
            await self._changed()
        return ws

    async def _gw_close(self, conn: _GatewayConnection, code: int, reason: str) -> None:
        """Close the socket with a Discord close code; 4xxx codes are the bot's fault and recorded."""
        self.gateway_events.append(GatewayEvent("send", None, f"CLOSE {code}", None, reason, self.clock()))
        if code >= 4000:
            self.violations.append(Violation(code, 0, reason, "GATEWAY", "/gateway", None, reason, self.clock()))
        await conn.ws.close(code=code, message=reason.encode())
        await self._changed()

    async def _gw_send(self, conn: _GatewayConnection, op: int, d: Any, t: str | None = None) -> None:
        s = None
        if op == 0:
            assert conn.session is not None
            conn.session.seq += 1
            s = conn.session.seq
        frame = {"op": op, "d": d, "s": s, "t": t}
        self.gateway_events.append(GatewayEvent("send", op, t, s, d, self.clock()))
        await conn.ws.send_str(json.dumps(frame))
        await self._changed()

    def _token_ok(self, token: Any) -> bool:
        return isinstance(token, str) and token.removeprefix("Bot ") == self.token

    async def _gw_receive(self, conn: _GatewayConnection, frame: dict[str, Any]) -> None:
        op, d = frame.get("op"), frame.get("d")
        self.gateway_events.append(GatewayEvent("recv", op, None, None, d, self.clock()))
        await self._changed()
        if op == 1:  # HEARTBEAT
            await self._gw_send(conn, 11, None)
        elif op == 2:  # IDENTIFY
            await self._gw_identify(conn, d or {})
        elif op == 6:  # RESUME
            await self._gw_resume(conn, d or {})
        elif conn.session is None:
            await self._gw_close(conn, 4003, "Not authenticated.")
        elif op == 8:  # REQUEST_GUILD_MEMBERS: answer with one chunk of every member
            asked = (d or {}).get("guild_id") if isinstance(d, dict) else None
            gid = int(asked) if str(asked or "").isdigit() and int(asked) in self.guild_ids else self.guild_id
            chunk = {
                "guild_id": str(gid),
                "members": copy.deepcopy(
                    [
                        m
                        for uid, m in self.members.items()
                        if uid == self.application_id or self.guild_of_member(uid) == gid
                    ]
                ),
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
            }
            if isinstance(d, dict) and d.get("nonce") is not None:
                chunk["nonce"] = d["nonce"]
            await self._gw_send(conn, 0, chunk, "GUILD_MEMBERS_CHUNK")
        elif op in (3, 4):  # presence / voice state updates are ignored
            pass
        else:
            await self._gw_close(conn, 4001, f"Unknown opcode {op}.")

    async def _gw_identify(self, conn: _GatewayConnection, d: dict[str, Any]) -> None:
        if conn.session is not None:
            await self._gw_close(conn, 4005, "Already authenticated.")
            return
        self.identify_payloads.append({k: v for k, v in d.items() if k != "token"})
        if not self._token_ok(d.get("token")):
            await self._gw_close(conn, 4004, "Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int):
            await self._gw_close(conn, 4013, "Invalid intent(s).")
            return
        if intents & Intents.PRIVILEGED and not self.allow_privileged_intents:
            await self._gw_close(conn, 4014, "Disallowed intent(s).")
            return
        shard = d.get("shard")
        if shard is not None and not (
            isinstance(shard, list) and len(shard) == 2 and all(isinstance(n, int) for n in shard)
            and 0 <= shard[0] < shard[1]
        ):  # fmt: skip
            await self._gw_close(conn, 4010, "Invalid shard.")
            return
        session = _GatewaySession(
            session_id=secrets.token_hex(16), intents=intents, shard=tuple(shard) if shard else None
        )
        self._sessions[session.session_id] = session
        conn.session = session
        ready: dict[str, Any] = {
            "v": 10,
            "user": {**self._public_user(self.application_id), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guild_ids if self._serves_guild(session, g)],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
            "presences": [],
            "geo_ordered_rtc_regions": ["local"],
            "guild_join_requests": [],
            "auth": {},
        }
        if "shard" in d:
            ready["shard"] = d["shard"]
        await self._gw_send(conn, 0, ready, "READY")
        for gid in self.guild_ids:
            if self._serves_guild(session, gid):
                await self._gw_send(conn, 0, self._guild_payload(intents, gid), "GUILD_CREATE")

    def _serves_guild(self, session: _GatewaySession, guild_id: int | None = None) -> bool:
        """Whether the session gets the guild's events: Discord's rule, shard_id = (guild_id >> 22) % num_shards."""
        gid = guild_id or self.guild_id
        return session.shard is None or (gid >> 22) % session.shard[1] == session.shard[0]

    async def _gw_resume(self, conn: _GatewayConnection, d: dict[str, Any]) -> None:
        if not self._token_ok(d.get("token")):
            await self._gw_close(conn, 4004, "Authentication failed.")
            return
        session = self._sessions.get(d.get("session_id") or "")
        if session is None:
            await self._gw_send(conn, 9, False)
            return
        conn.session = session
        await self._gw_send(conn, 0, {}, "RESUMED")

    def _primary_connection(self, *, required: bool = True, guild_id: int | None = None) -> _GatewayConnection | None:
        for conn in self._connections:  # the connection of the shard the guild belongs to
            if conn.session is not None and not conn.ws.closed and self._serves_guild(conn.session, guild_id):
                return conn
        if required:
            raise RuntimeError("no bot is connected to the fake gateway (did the bot start and become ready?)")
        return None

    def _queue_event(self, event: str, data: dict[str, Any], intent: int | None = None) -> None:
        """Queue a guild change made after the bot connected; flushed by :meth:`flush_events`."""
        if any(c.session is not None for c in self._connections):
            self._pending_events.append((event, copy.deepcopy(data), intent))

    async def flush_events(self) -> None:
        """Send the queued GUILD_ROLE_CREATE / GUILD_MEMBER_ADD / CHANNEL_CREATE events.

        ``add_role`` / ``add_member`` / ``add_channel`` after the bot connected queue the event Discord
        would send (GUILD_MEMBER_ADD only to sessions with the GUILD_MEMBERS intent). Every interaction
        dispatch flushes first, so the bot's cache is up to date when it handles the interaction.
        """
        events, self._pending_events = self._pending_events, []
        for event, data, intent in events:
            gid = int(data["__guild__"]) if "__guild__" in data else int(data.get("guild_id") or self.guild_id)
            for conn in list(self._connections):
                if conn.session is None or conn.ws.closed or not self._serves_guild(conn.session, gid):
                    continue
                if "__guild__" in data:  # a server added with add_guild after the bot connected
                    await self._gw_send(conn, 0, self._guild_payload(conn.session.intents, gid), event)
                elif intent is None or conn.session.intents & intent:
                    await self._gw_send(conn, 0, data, event)

    async def dispatch_event(self, event: str, data: dict[str, Any]) -> None:
        """Send a raw DISPATCH (op 0) event ``event`` with ``data`` to every connected bot session."""
        for conn in list(self._connections):
            if conn.session is not None and not conn.ws.closed:
                await self._gw_send(conn, 0, data, event)

    async def send_guild_create(self) -> None:
        """Send GUILD_CREATE again (e.g. after adding roles or members)."""
        for conn in list(self._connections):
            for gid in self.guild_ids:
                if conn.session is not None and not conn.ws.closed and self._serves_guild(conn.session, gid):
                    await self._gw_send(conn, 0, self._guild_payload(conn.session.intents, gid), "GUILD_CREATE")

    async def drop_gateway(self) -> None:
        """A network outage: close every gateway socket (1000) and refuse reconnects until :meth:`restore_gateway`."""
        self.gateway_down = True
        for conn in list(self._connections):
            await conn.ws.close(code=1000, message=b"fake outage")
        await self._changed()

    def restore_gateway(self) -> None:
        """End the outage started by :meth:`drop_gateway`: the client's next reconnect succeeds."""
        self.gateway_down = False

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client reconnects and RESUMEs (answered with RESUMED)."""
        conn = self._primary_connection()
        assert conn is not None
        await self._gw_send(conn, 7, None)
