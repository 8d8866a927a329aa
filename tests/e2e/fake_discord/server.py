"""The fake Discord itself: state, lifecycle, waiting and inspection; composed from per-concern mixins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from tests.e2e.fake_discord.constants import (
    API_PREFIX,
    DEFAULT_ATTACHMENT_SIZE_LIMIT,
    DEFAULT_TOKEN,
    AdjustableClock,
    Perm,
    snowflake,
)
from tests.e2e.fake_discord.faults import FaultPlan
from tests.e2e.fake_discord.gateway import GatewayMixin
from tests.e2e.fake_discord.guild import GuildModelMixin
from tests.e2e.fake_discord.helpers import _accepts_argument, _snowflake_of
from tests.e2e.fake_discord.interactions import InteractionsMixin
from tests.e2e.fake_discord.records import (
    CommandSync,
    GatewayEvent,
    InteractionFault,
    MessageVersion,
    RecordedCall,
    SchemaError,
    SentInteraction,
    UploadedFile,
    Violation,
    _GatewayConnection,
    _GatewaySession,
)
from tests.e2e.fake_discord.rest_app import AppRoutesMixin
from tests.e2e.fake_discord.rest_interactions import InteractionRoutesMixin
from tests.e2e.fake_discord.rest_messages import MessagesMixin
from tests.e2e.fake_discord.routing import RoutingMixin
from tests.e2e.fake_discord.spec import OpenAPISpec, default_spec_path, load_spec

# --------------------------------------------------------------------------------------------------
# the fake


class FakeDiscord(
    GuildModelMixin,
    RoutingMixin,
    AppRoutesMixin,
    MessagesMixin,
    InteractionRoutesMixin,
    GatewayMixin,
    InteractionsMixin,
):
    """A local Discord (REST + gateway) for the real discord.py client.

    Knobs are plain attributes read at check time, so tests may change them after ``start()``
    (e.g. ``fake.ack_deadline_s = 0.2``).
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        application_id: int | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        ack_deadline_s: float = 3.0,
        token_ttl_s: float = 900.0,
        attachment_size_limit: int = DEFAULT_ATTACHMENT_SIZE_LIMIT,
        clock: Callable[[], float] | None = None,
        validate_schema: bool | None = None,
        spec_path: Path | str | None = None,
        bot_name: str = "Fluxcord",
        guild_name: str = "Fluxcord Test Guild",
        allow_privileged_intents: bool = True,
        heartbeat_interval_ms: int = 45_000,
        cdn_host: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.application_id = application_id or snowflake()
        self.guild_id = guild_id or snowflake()
        self.channel_id = channel_id or snowflake()
        self.ack_deadline_s = ack_deadline_s
        self.token_ttl_s = token_ttl_s
        #: Per-file limit for channel messages and the default ``attachment_size_limit`` of interactions.
        self.attachment_size_limit = attachment_size_limit
        self.clock: Callable[[], float] = clock if clock is not None else AdjustableClock()
        self.allow_privileged_intents = allow_privileged_intents
        self.heartbeat_interval_ms = heartbeat_interval_ms
        #: Where uploads are served: like Discord's CDN (cdn.discordapp.com), another origin than the API;
        #: its own port on this host (default), or another loopback host, e.g. ``127.0.0.2``.
        self.cdn_host = cdn_host
        #: The ``fake_discord`` fixture calls :meth:`assert_clean` at teardown while this is true.
        self.assert_clean_at_teardown = True
        #: Seconds ``POST /channels/{id}/messages`` takes to answer, per channel id (a slow channel).
        self.channel_send_delays: dict[int, float] = {}
        #: Seconds every ``PATCH /webhooks/{app}/{token}/messages/{mid}`` takes to answer (a slow Discord).
        self.webhook_edit_delay = 0.0
        #: Injected faults: scripted per request and/or drawn at random (``faults.py``).
        self.faults = FaultPlan()
        #: How long a channel message's ``nonce`` (with ``enforce_nonce``) dedupes a repeated create.
        self.nonce_window_s = 300.0
        #: Users whose DMs are closed to the bot: a message to their DM channel gets 403/50007.
        self.closed_dms: set[int] = set()
        #: Injected failures of interaction requests (see :meth:`fail_interaction_requests`).
        self.interaction_faults: list[InteractionFault] = []

        self.spec: OpenAPISpec | None = None
        if validate_schema is not False:
            self.spec = load_spec(spec_path)
            if self.spec is None and validate_schema:
                raise FileNotFoundError(f"Discord OpenAPI spec not found at {spec_path or default_spec_path()}")

        # recordings
        self.calls: list[RecordedCall] = []
        self.unhandled: list[RecordedCall] = []
        self.violations: list[Violation] = []
        self.schema_errors: list[SchemaError] = []
        self.response_schema_errors: list[SchemaError] = []
        self.warnings: list[str] = []
        self.command_syncs: list[CommandSync] = []
        self.gateway_events: list[GatewayEvent] = []
        self.identify_payloads: list[dict[str, Any]] = []
        self.attachment_downloads: list[str] = []
        self.interactions: list[SentInteraction] = []

        # state
        self.messages: dict[str, dict[str, Any]] = {}
        #: Every version of every message (created, then each edit), by message id.
        self.message_history: dict[str, list[MessageVersion]] = {}
        self._nonces: dict[tuple[str, str], tuple[str, float]] = {}
        self.deleted_messages: dict[str, dict[str, Any]] = {}
        self.global_commands: dict[tuple[str, int], dict[str, Any]] = {}
        self.guild_commands: dict[int, dict[tuple[str, int], dict[str, Any]]] = {}
        #: Modals shown by the bot: custom_id → (modal data, interaction that showed it).
        self.modals: dict[str, tuple[dict[str, Any], SentInteraction]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.members: dict[int, dict[str, Any]] = {}
        self.roles: dict[int, dict[str, Any]] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self._explicit_permissions: dict[int, int] = {}
        #: Servers besides the fake's own (``add_guild``): id → name; and which server extra roles/members belong to.
        self.extra_guilds: dict[int, str] = {}
        self._role_guild: dict[int, int] = {}
        self._member_guild: dict[int, int] = {}
        self._dm_channels: dict[int, int] = {}
        self._blobs: dict[str, UploadedFile] = {}
        self._allowed_mentions: dict[str, Any] = {}
        self._by_token: dict[str, SentInteraction] = {}
        self._sessions: dict[str, _GatewaySession] = {}
        self._connections: list[_GatewayConnection] = []
        #: While True (see :meth:`drop_gateway`), new gateway connections are refused with HTTP 503.
        self.gateway_down = False
        self._pending_events: list[tuple[str, dict[str, Any], int | None]] = []
        #: Exceptions raised inside the fake's own handlers (bugs in the fake); answered 400, code -1.
        self.internal_errors: list[str] = []
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._cdn_runner: web.AppRunner | None = None
        self._cdn_port: int | None = None

        # guild model: @everyone, the bot (with its managed role), the owner and a default member
        self.guild_name = guild_name
        self.roles[self.guild_id] = self._role_payload(self.guild_id, "@everyone", Perm.DEFAULT_EVERYONE, 0)
        self.bot_role_id = self.add_role(bot_name, Perm.DEFAULT_BOT, managed=True)
        self.bot_user: dict[str, Any] = self.add_user(bot_name, user_id=self.application_id, bot=True)
        self.bot_member = self.add_member(self.application_id, name=bot_name, roles=[self.bot_role_id], bot=True)
        self.owner_member = self.add_member(name="guild-owner")
        self.owner_id = int(self.owner_member["user"]["id"])
        #: The member used when ``user=`` is not given: no roles, plain ``@everyone`` permissions.
        self.default_member = self.add_member(name="tester")
        self.add_channel("general", channel_id=self.channel_id)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Self:
        """Bind ``127.0.0.1:0`` and start serving."""
        if self._runner is not None:
            return self
        app = web.Application(client_max_size=256 * 1024 * 1024)
        self._add_routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]
        cdn = web.Application()
        cdn.router.add_get("/attachments/{cid}/{aid}/{filename}", self._h_attachment)
        cdn_runner = web.AppRunner(cdn, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await cdn_runner.setup()
        await web.TCPSite(cdn_runner, self.cdn_host, 0).start()
        self._cdn_runner = cdn_runner
        self._cdn_port = cdn_runner.addresses[0][1]
        return self

    async def close(self) -> None:
        """Close every gateway connection and stop the server."""
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._cdn_runner is not None:
            await self._cdn_runner.cleanup()
            self._cdn_runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The TCP port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        """``http://<cdn_host>:CDN_PORT``: where uploads are served (another origin than the API, as Discord's CDN)."""
        if self._cdn_port is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"http://{self.cdn_host}:{self._cdn_port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v10`` (for ``discord.http.Route.BASE``)."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """``ws://127.0.0.1:PORT/gateway`` (for ``DiscordWebSocket.DEFAULT_GATEWAY``)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------ injected failures

    def fail_interaction_requests(
        self, route: str, *, how: str | int = "drop", user: Any = None, times: int | None = None
    ) -> InteractionFault:
        """Make Discord unreachable for interaction requests: ``route`` ``"callback"`` or ``"webhook_edit"``.

        ``how="drop"`` closes the connection without an answer (discord.py raises a transport error,
        not an ``HTTPException``); an integer answers that status. ``user`` (member dict or id): only
        that member's interactions; ``times``: only that many requests. Returns the :class:`InteractionFault`
        (its ``hits`` count the requests it answered; waiting on them wakes like any other call).
        """
        if route not in ("callback", "webhook_edit"):
            raise ValueError(f"unknown route {route!r}: use 'callback' or 'webhook_edit'")
        if how != "drop" and not (isinstance(how, int) and 400 <= how <= 599):
            raise ValueError(f"how must be 'drop' or an HTTP error status, not {how!r}")
        user_id = None if user is None else _snowflake_of(user, "user")
        fault = InteractionFault(route, how, user_id, times)
        self.interaction_faults.append(fault)
        return fault

    # ------------------------------------------------------------------ waiting

    async def _changed(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{self.summary()}")
                # Woken at once by any recorded call or gateway frame; the short cap also lets
                # predicates over state outside the fake (e.g. the bot's) be re-checked.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), min(remaining, 0.05))

    async def wait_for(self, predicate: Callable[..., Any], timeout: float = 5.0) -> Any:
        """Wait until ``predicate()`` or ``predicate(fake)`` is truthy and return its value.

        Raises ``TimeoutError`` with a summary of recent calls and violations.
        """
        with_arg = _accepts_argument(predicate)
        return await self._wait((lambda: predicate(self)) if with_arg else predicate, timeout, "predicate")

    def find_calls(
        self,
        operation: str | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        token: str | None = None,
        completed: bool = True,
    ) -> list[RecordedCall]:
        """Recorded calls matching all given filters (``path`` matches a suffix)."""
        return [
            c
            for c in self.calls
            if (operation is None or c.operation == operation)
            and (method is None or c.method == method.upper())
            and (path is None or c.path.endswith(path))
            and (token is None or c.token == token)
            and (not completed or c.status is not None)
        ]

    async def wait_for_call(
        self,
        operation: str | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        token: str | None = None,
        timeout: float = 5.0,
    ) -> RecordedCall:
        """Wait for the first completed call matching :meth:`find_calls` filters and return it."""
        calls = await self._wait(
            lambda: self.find_calls(operation, method=method, path=path, token=token),
            timeout,
            f"a call operation={operation} method={method} path={path}",
        )
        return calls[0]

    async def wait_until_connected(self, timeout: float = 5.0) -> None:
        """Wait until a bot has identified (or resumed) on the gateway."""
        await self._wait(lambda: self._primary_connection(required=False), timeout, "a gateway connection")

    # ------------------------------------------------------------------ inspection helpers

    def interaction(self, token: str) -> SentInteraction:
        """The dispatched interaction with this token."""
        return self._by_token[token]

    def calls_for(self, token: str) -> list[RecordedCall]:
        """Every call made with an interaction token."""
        return [c for c in self.calls if c.token == token]

    def get_message(self, message: Any) -> dict[str, Any]:
        """A message by id or dict, including deleted ones."""
        mid = str(_snowflake_of(message, "message"))
        found = self.messages.get(mid) or self.deleted_messages.get(mid)
        if found is None:
            raise KeyError(f"unknown message {mid}")
        return found

    def attachment_file(self, message: Any, index: int = 0) -> UploadedFile:
        """The stored upload behind ``message``'s attachment ``index`` (current message state)."""
        msg = self.get_message(message)
        attachments = msg["attachments"]
        if index >= len(attachments):
            raise IndexError(f"message {msg['id']} has {len(attachments)} attachment(s)")
        return self._blobs[attachments[index]["id"]]

    def attachment_bytes(self, message: Any, index: int = 0) -> bytes:
        """Bytes of ``message``'s attachment ``index``."""
        return self.attachment_file(message, index).data

    @property
    def intents(self) -> int | None:
        """Intents of the latest IDENTIFY."""
        return self.identify_payloads[-1].get("intents") if self.identify_payloads else None

    @property
    def connected(self) -> bool:
        """Whether a bot is identified on the gateway."""
        return self._primary_connection(required=False) is not None

    def take_violations(self, *codes: int) -> list[Violation]:
        """Remove and return the violations with these codes (all if none given)."""
        taken = [v for v in self.violations if not codes or v.code in codes]
        self.violations[:] = [v for v in self.violations if v not in taken]
        return taken

    def take_schema_errors(self) -> list[SchemaError]:
        """Remove and return every request schema error."""
        taken, self.schema_errors[:] = list(self.schema_errors), []
        return taken

    def assert_clean(self) -> None:
        """Assert nothing unexpected happened.

        Fails on: violations, request schema errors, response schema errors (a bug in the fake),
        unhandled routes, internal errors in the fake, and interactions the bot never even tried to
        answer (no callback or webhook call at all). Call it after the bot has stopped, or after
        waiting for the bot's responses.
        """
        problems = []
        if self.violations:
            problems.append(f"violations: {self.violations!r}")
        if self.schema_errors:
            problems.append(f"request schema errors: {self.schema_errors!r}")
        if self.response_schema_errors:
            problems.append(f"fake's own responses failed the schema: {self.response_schema_errors!r}")
        if self.unhandled:
            problems.append(f"unhandled routes: {[(c.method, c.path) for c in self.unhandled]!r}")
        if self.internal_errors:
            problems.append(f"internal errors in the fake: {self.internal_errors!r}")
        ignored = [it for it in self.interactions if not it.calls and not it.allow_no_response]
        if ignored:
            problems.append(
                "interactions the bot never answered (Discord shows 'This interaction failed'; set "
                f"it.allow_no_response = True if intended): {ignored!r}"
            )
        if problems:
            raise AssertionError("FakeDiscord recorded problems:\n" + "\n".join(problems))

    def summary(self, last: int = 15) -> str:
        """A short human-readable log of recent activity (used in timeout errors)."""
        lines = [f"calls ({len(self.calls)} total, last {last}):"]
        lines += [f"  {c.method} {c.path} -> {c.status} {c.error_code or ''}" for c in self.calls[-last:]]
        if self.violations:
            lines.append(f"violations: {[(v.code, v.detail) for v in self.violations]}")
        if self.schema_errors:
            lines.append(f"schema errors: {[(e.operation, e.errors[:2]) for e in self.schema_errors]}")
        if self.unhandled:
            lines.append(f"unhandled: {[(c.method, c.path) for c in self.unhandled]}")
        return "\n".join(lines)
