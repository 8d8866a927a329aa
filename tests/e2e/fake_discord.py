"""A local fake Discord that the *real* discord.py client logs in to, for offline end-to-end tests.

One ``aiohttp.web`` application on ``127.0.0.1:<random port>`` serves

* the REST API under ``/api/v10`` (only the routes a slash-command image bot uses; every other route
  is recorded in :attr:`FakeDiscord.unhandled` and answered with a 404),
* the websocket gateway at ``/gateway`` (HELLO → IDENTIFY → READY → GUILD_CREATE, heartbeats, RESUME),
* uploaded attachments at ``/attachments/{channel_id}/{attachment_id}/{filename}``.

discord.py is pointed at it with two class attributes (the bot does this itself from its settings
``DISCORD_API_URL`` / ``DISCORD_GATEWAY_URL``; tests can use ``monkeypatch``)::

    discord.http.Route.BASE = fake.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

Typical test::

    # fixtures from conftest.py: fake_discord (started, assert_clean() at teardown) and
    # discord_endpoints (monkeypatches Route.BASE / DEFAULT_GATEWAY to point at it)
    async def test_imagine(discord_endpoints):
        fake = discord_endpoints
        async with fake.run_bot(build_bot(settings, guild_ready_timeout=0.05)) as bot:
            it = await fake.slash("imagine", {"prompt": "a red fox"})
            await it.wait_acked()
            await it.wait_for(lambda it: it.original_message and it.original_message["attachments"])
            assert fake.attachment_bytes(it.original_message) == PNG

Discord rules enforced (each failure is answered exactly as Discord answers it, and recorded in
:attr:`FakeDiscord.violations` as a :class:`Violation`; tests that expect one remove it with
:meth:`FakeDiscord.take_violations`):

=====================================================================  ======  ======
rule                                                                   status  code
=====================================================================  ======  ======
unknown interaction id/token on ``/interactions/.../callback``          404     10062
initial response later than ``ack_deadline_s`` after dispatch           404     10062
second initial response                                                 400     40060
callback type not valid for the interaction type (e.g. 7 for a slash)  400     50035
webhook call with an unknown token or a foreign application id          404     10015
webhook call before the initial response, after a missed deadline, or  404     10015
with an autocomplete token
webhook call with a token older than ``token_ttl_s``                    401     50027
webhook/channel message id that does not exist / not this interaction   404     10008
any file larger than the interaction's ``attachment_size_limit``        413     40005
more than 10 files                                                      400     50035
content > 2000, > 10 embeds, embed title 256 / description 4096 /       400     50035
25 fields / field name 256 / value 1024 / footer 2048 / author 256 /
total 6000, components (5 rows × 5, custom_id 1-100 and unique,
IS_COMPONENTS_V2 without content/embeds), ``attachments[].id`` that
refers to neither an upload nor a kept attachment, bad command sync
(duplicate names, required option after an optional one)
creating a message with no content, embeds, components or files        400     50006
body that is not JSON / ``payload_json`` that is not JSON               400     50109
bot route without ``Authorization: Bot <token>``                        401     0
channel route for an unknown channel; unknown user                      404     10003/10013
channel send without VIEW_CHANNEL / SEND_MESSAGES / ATTACH_FILES        403     50001/50013
wrong token in IDENTIFY or RESUME (websocket close code)                close   4004
privileged intent requested while ``allow_privileged_intents=False``    close   4014
unknown opcode / undecodable or binary frame / op before IDENTIFY /    close   4001/4002/
second IDENTIFY / IDENTIFY without integer intents                              4003/4005/4013
=====================================================================  ======  ======

:meth:`FakeDiscord.assert_clean` (called by the ``fake_discord`` fixture at teardown) also fails on
interactions the bot never even tried to answer (Discord shows "This interaction failed"), unless
the test sets ``it.allow_no_response = True``.

Schema validation: every request body (JSON bodies and multipart ``payload_json``) is validated
against the matching operation of Discord's OpenAPI spec (``DISCORD_OPENAPI_SPEC``, default
``<repo>/tests/specs/discord-openapi.json``, vendored). A failure is answered with 400/50035 and recorded
in :attr:`FakeDiscord.schema_errors` (not in ``violations``). The rule checks above run first; a
request that breaks a rule is rejected for that rule and is not schema-checked. Every JSON response
the fake produces is validated too; failures go to :attr:`FakeDiscord.response_schema_errors` (that
would be a bug in this fake). Validators are compiled once per process (see :func:`load_spec`).

Relaxations applied to the spec (request validation only; responses are checked strictly):

* ``SnowflakeType`` also accepts a non-negative JSON integer. Discord's API accepts int-parseable
  snowflakes (noted in discord-api-spec's README), and discord.py serialises ids as Python ints in
  several bodies: the upload index ``attachments[].id`` (``File.to_dict``), kept attachments
  (``Attachment.to_dict``), ``allowed_mentions.users/roles``, ``message_reference`` ids and
  ``create_dm``'s ``recipient_id``. Without the relaxation each of those is a false positive.

Discord behaviour emulated on purpose (see also :attr:`FakeDiscord.warnings`):

* A follow-up sent while the deferred (type 5) original is still loading *replaces the loading
  message* (Discord's deprecated behaviour): it edits ``@original``, keeps the defer's ephemerality
  and ignores the follow-up's own ephemeral flag. A warning is recorded.
* ``@original`` of a component interaction answered with type 6/7 is the clicked message.
* Without the GUILD_MEMBERS intent, GUILD_CREATE carries only the bot's own member (as Discord does);
  with it, every member (and ``member_count == len(members)``, so discord.py never sends op 8).
* ``add_role`` / ``add_member`` / ``add_channel`` after the bot connected queue GUILD_ROLE_CREATE /
  GUILD_MEMBER_ADD (members intent only) / CHANNEL_CREATE, sent before the next dispatched
  interaction (or by ``await fake.flush_events()``), so the bot's cache matches the payloads.
* Messages sent through interactions and webhooks parse only user mentions by default; channel
  messages parse users, roles and ``@everyone``; ``allowed_mentions`` is honoured. The resulting
  ``mentions`` / ``mention_roles`` / ``mention_everyone`` are stored on the message.

Time: every deadline uses ``clock`` (default :class:`AdjustableClock`, a monotonic clock that tests
can move forward with ``fake.clock.advance(seconds)`` instead of sleeping).

Everything the bot does is recorded (:attr:`FakeDiscord.calls`, :attr:`FakeDiscord.messages`,
:attr:`FakeDiscord.gateway_events`, ...) and every change notifies an :class:`asyncio.Condition`, so
:meth:`FakeDiscord.wait_for` / :meth:`SentInteraction.wait_for` wake up as soon as something happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import io
import json
import mimetypes
import os
import re
import secrets
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, Self
from urllib.parse import quote

import aiohttp
from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance

__all__ = [
    "API_PREFIX",
    "DEFAULT_TOKEN",
    "AdjustableClock",
    "CommandSync",
    "FakeDiscord",
    "GatewayEvent",
    "Intents",
    "MessageFlags",
    "OpenAPISpec",
    "Perm",
    "RecordedCall",
    "SchemaError",
    "SentInteraction",
    "UploadedFile",
    "Violation",
    "default_spec_path",
    "load_spec",
    "snowflake",
]

API_PREFIX = "/api/v10"
DEFAULT_TOKEN = "test-discord-token"
DEFAULT_ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
MAX_FILES = 10
DISCORD_EPOCH_MS = 1_420_070_400_000


class Perm:
    """Permission bits (https://discord.com/developers/docs/topics/permissions)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    USE_EXTERNAL_APPS = 1 << 50
    ALL = (1 << 51) - 1

    #: What ``@everyone`` gets in a new guild (no moderation bits, no ADMINISTRATOR / MANAGE_GUILD).
    DEFAULT_EVERYONE = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | SEND_MESSAGES_IN_THREADS
        | USE_EXTERNAL_APPS
    )
    #: The bot's managed role: what an image bot is normally invited with.
    DEFAULT_BOT = (
        VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | ADD_REACTIONS
        | USE_EXTERNAL_EMOJIS
        | SEND_MESSAGES_IN_THREADS
    )


class MessageFlags:
    """Message flag bits used by the fake."""

    SUPPRESS_EMBEDS = 1 << 2
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12
    IS_COMPONENTS_V2 = 1 << 15


class Intents:
    """Gateway intent bits the fake cares about."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    MESSAGE_CONTENT = 1 << 15
    PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT


# Interaction types and the initial-response (callback) types Discord accepts for each.
_PING, _APPLICATION_COMMAND, _MESSAGE_COMPONENT, _AUTOCOMPLETE, _MODAL_SUBMIT = 1, 2, 3, 4, 5
_KNOWN_CALLBACK_TYPES = {1, 4, 5, 6, 7, 8, 9, 10, 12}
_ALLOWED_CALLBACKS: dict[int, set[int]] = {
    _APPLICATION_COMMAND: {4, 5, 9},
    _MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
    _AUTOCOMPLETE: {8},
    _MODAL_SUBMIT: {4, 5, 6, 7},  # 6/7 only when the modal was opened from a message component
}
_SELECT_TYPES = {3, 5, 6, 7, 8}
# Flags a bot may set when creating an interaction/webhook message (others are ignored, as Discord does).
_CREATE_FLAGS = (
    MessageFlags.SUPPRESS_EMBEDS
    | MessageFlags.EPHEMERAL
    | MessageFlags.SUPPRESS_NOTIFICATIONS
    | MessageFlags.IS_COMPONENTS_V2
)
_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")


# --------------------------------------------------------------------------------------------------
# small helpers


class _Snowflakes:
    """Realistic, strictly increasing snowflakes (timestamp << 22 | counter), unique per process."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(value, self._last + 1)
        return self._last


_SNOWFLAKES = _Snowflakes()


def snowflake() -> int:
    """Return a new unique snowflake whose timestamp is now (discord.py derives ``created_at`` from it)."""
    return _SNOWFLAKES.next()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class AdjustableClock:
    """A monotonic clock that tests can move forward without sleeping.

    ``clock()`` returns ``base() + offset``; ``clock.advance(s)`` adds to the offset. Pass one as
    ``FakeDiscord(clock=...)`` (the default) to expire interaction deadlines and tokens instantly.
    """

    def __init__(self, base: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self.offset = 0.0

    def __call__(self) -> float:
        return self._base() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (must be >= 0)."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        self.offset += seconds


def _accepts_argument(predicate: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(predicate).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in positional or p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


def _errors_tree(items: Iterable[tuple[tuple[Any, ...], str, str]]) -> dict[str, Any]:
    """Build Discord's nested ``errors`` object: ``{"content": {"_errors": [{"code", "message"}]}}``."""
    tree: dict[str, Any] = {}
    for path, code, message in items:
        node = tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
    return tree


def _snowflake_of(value: Any, what: str) -> int:
    """Accept an int, a digit string, a Discord dict (``{"id"}`` or a member ``{"user": {"id"}}``) or ``.id``."""
    if isinstance(value, bool):
        raise TypeError(f"{what}: a bool is not an id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, dict):
        if "user" in value and isinstance(value["user"], dict):
            return int(value["user"]["id"])
        if "id" in value:
            return int(value["id"])
    if hasattr(value, "id"):
        return int(value.id)
    raise TypeError(f"{what}: cannot get an id from {value!r}")


def _walk_components(components: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for comp in components or ():
        if not isinstance(comp, dict):
            continue
        yield comp
        yield from _walk_components(comp.get("components") or ())
        for key in ("component", "accessory"):
            if isinstance(comp.get(key), dict):
                yield from _walk_components([comp[key]])


def _image_info(data: bytes) -> tuple[str | None, int | None, int | None]:
    """Sniff (content_type, width, height) of an upload, as Discord does, using Pillow if present."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a project dependency
        return None, None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                mime = Image.MIME.get(img.format or "")
                return mime, img.width, img.height
    except Exception:
        return None, None, None


# --------------------------------------------------------------------------------------------------
# OpenAPI validation


def default_spec_path() -> Path:
    """``$DISCORD_OPENAPI_SPEC`` or the vendored ``<repo>/tests/specs/discord-openapi.json``."""
    env = os.environ.get("DISCORD_OPENAPI_SPEC")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return repo / "tests" / "specs" / "discord-openapi.json"


class OpenAPISpec:
    """Discord's OpenAPI 3.1 spec with lazily compiled, cached request/response validators."""

    def __init__(self, path: Path) -> None:
        raw = json.loads(path.read_bytes())
        self.path = path
        self.operations: dict[str, dict[str, Any]] = {}
        for item in raw["paths"].values():
            for op in item.values():
                if isinstance(op, dict) and "operationId" in op:
                    self.operations[op["operationId"]] = op
        components = raw["components"]
        self._response_components = components
        schemas = dict(components["schemas"])
        # Relaxation (documented in the module docstring): snowflakes may be sent as integers.
        schemas["SnowflakeType"] = {
            "anyOf": [components["schemas"]["SnowflakeType"], {"type": "integer", "minimum": 0}]
        }
        self._request_components = {**components, "schemas": schemas}
        self._validators: dict[tuple[str, str, str], Draft202012Validator | None] = {}

    def _validator(self, kind: str, operation: str, key: str) -> Draft202012Validator | None:
        cache_key = (kind, operation, key)
        if cache_key not in self._validators:
            op = self.operations[operation]
            schema: dict[str, Any] | None = None
            if kind == "request":
                media = op.get("requestBody", {}).get("content", {}).get(key)
                schema = media.get("schema") if media else None
                components = self._request_components
            else:
                response = op.get("responses", {}).get(key) or {}
                if "$ref" in response:  # shared responses (errors) are not validated
                    response = {}
                media = response.get("content", {}).get("application/json")
                schema = media.get("schema") if media else None
                components = self._response_components
            self._validators[cache_key] = (
                Draft202012Validator({**schema, "components": components}) if schema is not None else None
            )
        return self._validators[cache_key]

    def body_required(self, operation: str) -> bool:
        """Whether the operation declares a required request body."""
        return bool(self.operations[operation].get("requestBody", {}).get("required"))

    def accepts_content_type(self, operation: str, content_type: str) -> bool:
        """Whether the operation takes a body of this media type."""
        return content_type in self.operations[operation].get("requestBody", {}).get("content", {})

    def validate_request(self, operation: str, content_type: str, body: Any) -> list[str]:
        """Return readable errors for ``body`` sent to ``operation`` as ``content_type``."""
        validator = self._validator("request", operation, content_type)
        return [] if validator is None else self._describe(validator, body)

    def validate_response(self, operation: str, status: int, body: Any) -> list[str]:
        """Return readable errors for a response of ``operation`` with ``status``."""
        validator = self._validator("response", operation, str(status))
        return [] if validator is None else self._describe(validator, body)

    @staticmethod
    def _describe(validator: Draft202012Validator, body: Any) -> list[str]:
        out = []
        for error in sorted(validator.iter_errors(body), key=relevance):
            deep = _most_specific(error)
            where = "/".join(str(p) for p in deep.absolute_path) or "<root>"
            message = deep.message
            if len(message) > 200:  # e.g. "'xxxx…' is too long": say which keyword failed instead
                message = f"{deep.validator}={deep.validator_value!r} failed for {repr(deep.instance)[:60]}…"
            out.append(f"{where}: {message}")
            if len(out) >= 10:
                break
        return out


def _most_specific(error: ValidationError) -> ValidationError:
    """Descend into oneOf/anyOf alternatives to the error that explains the failure.

    Alternatives whose discriminator (``type`` enum/const) does not match are the wrong branch; of
    the rest, the one with the fewest errors, reaching deepest into the body, is the intended one.
    """
    while error.context:
        groups: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            groups.setdefault(sub.relative_schema_path[0], []).append(sub)

        def score(errors: list[ValidationError]) -> tuple[bool, int, int]:
            wrong_branch = any(
                e.validator in ("enum", "const") and list(e.absolute_path)[-1:] == ["type"] for e in errors
            )
            return (wrong_branch, len(errors), -max(len(e.absolute_path) for e in errors))

        best = min(groups.values(), key=score)
        error = max(best, key=lambda e: len(e.absolute_path))
    return error


@functools.cache
def _load_spec_cached(path: str) -> OpenAPISpec:
    return OpenAPISpec(Path(path))


def load_spec(path: Path | str | None = None) -> OpenAPISpec | None:
    """Load (once per process) the spec at ``path`` or :func:`default_spec_path`; ``None`` if absent."""
    resolved = Path(path) if path is not None else default_spec_path()
    if not resolved.is_file():
        return None
    return _load_spec_cached(str(resolved.resolve()))


# --------------------------------------------------------------------------------------------------
# records


class UploadedFile(NamedTuple):
    """One uploaded file: unpacks as ``(filename, data, content_type)``."""

    filename: str
    data: bytes
    content_type: str


@dataclass
class RecordedCall:
    """One REST request the bot made, with the fake's answer."""

    method: str
    #: Path relative to ``/api/v10``, e.g. ``/interactions/123/abc/callback``.
    path: str
    query: dict[str, str]
    #: Parsed JSON body, or the parsed ``payload_json`` part of a multipart body; ``None`` without body.
    json: Any
    #: Uploaded files in upload order.
    files: list[UploadedFile]
    #: Whether an ``Authorization`` header was present (interaction/webhook routes carry none).
    auth: bool
    #: ``fake.clock()`` when the request arrived.
    time: float
    #: OpenAPI operationId of the route; ``None`` for unhandled routes.
    operation: str | None
    multipart: bool = False
    #: Multipart field names of ``files`` (``files[0]``, ...), same order.
    file_fields: list[str] = field(default_factory=list)
    #: Other multipart fields (discord.py sends none).
    form: dict[str, str] = field(default_factory=dict)
    #: Interaction token for ``/interactions`` and ``/webhooks`` routes.
    token: str | None = None
    status: int | None = None
    response: Any = None
    #: Discord JSON error code of an error response.
    error_code: int | None = None
    parse_error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the fake answered 2xx."""
        return self.status is not None and 200 <= self.status < 300

    def __repr__(self) -> str:
        return f"<RecordedCall {self.method} {self.path} -> {self.status} code={self.error_code}>"


@dataclass
class Violation:
    """A request Discord would reject, and how the fake rejected it."""

    code: int
    status: int
    message: str
    method: str
    path: str
    token: str | None
    detail: str
    time: float


@dataclass
class SchemaError:
    """A body that does not match Discord's OpenAPI spec."""

    direction: Literal["request", "response"]
    operation: str
    method: str
    path: str
    errors: list[str]
    body: Any


@dataclass
class CommandSync:
    """One bulk overwrite (``PUT``) of application commands."""

    guild_id: int | None
    commands: list[dict[str, Any]]
    time: float

    @property
    def names(self) -> list[str]:
        """Command names in the order they were sent."""
        return [c["name"] for c in self.commands]


@dataclass
class GatewayEvent:
    """One websocket frame: ``direction`` is ``"send"`` (fake → bot) or ``"recv"`` (bot → fake)."""

    direction: Literal["send", "recv"]
    op: int | None
    t: str | None
    s: int | None
    d: Any
    time: float


@dataclass
class _GatewaySession:
    session_id: str
    intents: int
    seq: int = 0


@dataclass(eq=False)
class _GatewayConnection:
    ws: web.WebSocketResponse
    query: dict[str, str]
    session: _GatewaySession | None = None


class _HTTPError(Exception):
    """Raised inside handlers to answer with a Discord error."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        detail: str = "",
        errors: dict[str, Any] | None = None,
        record: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.errors = errors
        #: Whether to record a Violation (schema failures go to ``schema_errors`` instead).
        self.record = record


# --------------------------------------------------------------------------------------------------
# interactions


class SentInteraction:
    """An interaction the fake dispatched (INTERACTION_CREATE) and everything the bot did with it."""

    def __init__(self, fake: FakeDiscord, payload: dict[str, Any], *, source_message_id: str | None) -> None:
        self.fake = fake
        #: The exact INTERACTION_CREATE ``d`` that was sent.
        self.payload = payload
        self.id: int = int(payload["id"])
        self.token: str = payload["token"]
        #: Interaction type (2 command, 3 component, 4 autocomplete, 5 modal submit).
        self.type: int = payload["type"]
        self.attachment_size_limit: int = payload["attachment_size_limit"]
        self.channel_id: int = int(payload["channel"]["id"])
        user = payload["member"]["user"] if "member" in payload else payload["user"]
        self.user_id: int = int(user["id"])
        #: The clicked message (components, and modals opened from components).
        self.source_message_id = source_message_id
        #: For a modal submit: the interaction that showed the modal.
        self.opener: SentInteraction | None = None
        #: ``fake.clock()`` just before INTERACTION_CREATE was written to the socket.
        self.dispatched_at: float = 0.0
        #: ``fake.clock()`` when a valid initial response arrived, else ``None``.
        self.acked_at: float | None = None
        #: Callback type of the accepted initial response (4, 5, 6, 7, 8 or 9).
        self.response_type: int | None = None
        #: Body of the accepted initial response.
        self.response: dict[str, Any] | None = None
        self.ephemeral = False
        #: Set to ``True`` when a test expects the bot to ignore this interaction (see ``assert_clean``).
        self.allow_no_response = False
        self.original_message_id: str | None = None
        self.followup_ids: list[str] = []
        #: ``data`` of a type 9 (modal) response.
        self.modal: dict[str, Any] | None = None
        #: ``data.choices`` of a type 8 (autocomplete) response.
        self.autocomplete_choices: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return (
            f"<SentInteraction id={self.id} type={self.type} acked={self.acked} "
            f"response_type={self.response_type} calls={len(self.calls)}>"
        )

    @property
    def acked(self) -> bool:
        """Whether a valid initial response was accepted."""
        return self.acked_at is not None

    @property
    def deadline_missed(self) -> bool:
        """Not acknowledged and the ack deadline has passed (the user sees "This interaction failed")."""
        return self.acked_at is None and self.fake.clock() - self.dispatched_at > self.fake.ack_deadline_s

    @property
    def violations(self) -> list[Violation]:
        """Violations recorded for this interaction's token."""
        return [v for v in self.fake.violations if v.token == self.token]

    @property
    def ack_latency(self) -> float | None:
        """Seconds (fake clock) from dispatch to the accepted initial response."""
        return None if self.acked_at is None else self.acked_at - self.dispatched_at

    @property
    def calls(self) -> list[RecordedCall]:
        """Every REST call made with this interaction's token (callback and webhook routes)."""
        return [c for c in self.fake.calls if c.token == self.token]

    @property
    def original_message(self) -> dict[str, Any] | None:
        """Current state of ``@original`` (``None`` before a message-creating response or after delete)."""
        if self.original_message_id is None:
            return None
        return self.fake.messages.get(self.original_message_id)

    @property
    def followups(self) -> list[dict[str, Any]]:
        """Current state of the follow-up messages that still exist, in creation order."""
        return [self.fake.messages[m] for m in self.followup_ids if m in self.fake.messages]

    async def wait_acked(self, timeout: float = 5.0) -> Self:
        """Wait until a valid initial response was accepted (rejected attempts do not count)."""
        await self.fake._wait(lambda: self.acked, timeout, f"interaction {self.id} to be acknowledged")
        return self

    async def wait_for(self, predicate: Callable[..., Any], timeout: float = 5.0) -> Any:
        """Wait until ``predicate()`` or ``predicate(self)`` is truthy and return its value."""
        with_arg = _accepts_argument(predicate)
        return await self.fake._wait(
            (lambda: predicate(self)) if with_arg else predicate, timeout, f"predicate on interaction {self.id}"
        )


# --------------------------------------------------------------------------------------------------
# the fake


class FakeDiscord:
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
        #: The ``fake_discord`` fixture calls :meth:`assert_clean` at teardown while this is true.
        self.assert_clean_at_teardown = True
        #: Seconds ``POST /channels/{id}/messages`` takes to answer, per channel id (a slow channel).
        self.channel_send_delays: dict[int, float] = {}
        #: Seconds every ``PATCH /webhooks/{app}/{token}/messages/{mid}`` takes to answer (a slow Discord).
        self.webhook_edit_delay = 0.0

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
        return self

    async def close(self) -> None:
        """Close every gateway connection and stop the server."""
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v10`` (for ``discord.http.Route.BASE``)."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """``ws://127.0.0.1:PORT/gateway`` (for ``DiscordWebSocket.DEFAULT_GATEWAY``)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------ guild model

    @staticmethod
    def _role_payload(role_id: int, name: str, permissions: int, position: int, **extra: Any) -> dict[str, Any]:
        return {
            "id": str(role_id),
            "name": name,
            "description": None,
            "permissions": str(permissions),
            "position": position,
            "color": extra.get("color", 0),
            "colors": {"primary_color": extra.get("color", 0), "secondary_color": None, "tertiary_color": None},
            "hoist": extra.get("hoist", False),
            "managed": extra.get("managed", False),
            "mentionable": extra.get("mentionable", False),
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }

    def add_role(
        self,
        name: str,
        permissions: int = 0,
        *,
        color: int = 0,
        hoist: bool = False,
        mentionable: bool = False,
        managed: bool = False,
    ) -> int:
        """Create a guild role and return its id (send GUILD_CREATE again, or add before the bot connects)."""
        role_id = snowflake()
        self.roles[role_id] = self._role_payload(
            role_id,
            name,
            permissions,
            len(self.roles),
            color=color,
            hoist=hoist,
            mentionable=mentionable,
            managed=managed,
        )
        self._queue_event("GUILD_ROLE_CREATE", {"guild_id": str(self.guild_id), "role": self.roles[role_id]})
        return role_id

    def add_user(self, name: str, *, user_id: int | None = None, bot: bool = False) -> dict[str, Any]:
        """Create a user (not a guild member by itself) and return its Discord user object."""
        uid = user_id or snowflake()
        user = {
            "id": str(uid),
            "username": name,
            "global_name": None if bot else name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "system": False,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "flags": 0,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }
        self.users[uid] = user
        return user

    def add_member(
        self,
        user_id: int | None = None,
        *,
        name: str | None = None,
        roles: Iterable[int] = (),
        permissions: int | None = None,
        bot: bool = False,
        nick: str | None = None,
    ) -> dict[str, Any]:
        """Add a guild member and return its member dict (``{"user", "roles", "flags", "joined_at", ...}``).

        ``permissions`` (if given) is used verbatim in interaction payloads instead of the value computed
        from ``@everyone`` and ``roles`` (ADMINISTRATOR or guild ownership otherwise mean all bits).
        """
        uid = user_id or snowflake()
        user = self.users.get(uid) or self.add_user(name or f"user{len(self.users)}", user_id=uid, bot=bot)
        for role in roles:
            if int(role) not in self.roles:
                raise KeyError(f"unknown role {role}")
        member = {
            "user": user,
            "roles": [str(r) for r in roles],
            "nick": nick,
            "avatar": None,
            "banner": None,
            "flags": 0,
            "joined_at": _now_iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "communication_disabled_until": None,
        }
        self.members[uid] = member
        if permissions is not None:
            self._explicit_permissions[uid] = permissions
        self._queue_event("GUILD_MEMBER_ADD", {**member, "guild_id": str(self.guild_id)}, Intents.GUILD_MEMBERS)
        return member

    def add_channel(
        self,
        name: str,
        *,
        channel_id: int | None = None,
        type: int = 0,
        nsfw: bool = False,
        topic: str | None = None,
    ) -> dict[str, Any]:
        """Add a guild channel (default: text channel) and return its channel dict."""
        cid = channel_id or snowflake()
        channel = {
            "id": str(cid),
            "type": type,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "nsfw": nsfw,
            "topic": topic,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }
        self.channels[cid] = channel
        self._queue_event("CHANNEL_CREATE", channel)
        return channel

    def member_permissions(self, member: Any) -> int:
        """Guild permissions of a member (explicit override, owner, ADMINISTRATOR, or OR of roles)."""
        uid = _snowflake_of(member, "member")
        if uid in self._explicit_permissions:
            return self._explicit_permissions[uid]
        if uid == getattr(self, "owner_id", None):
            return Perm.ALL
        m = self.members.get(uid)
        if m is None:
            return 0
        bits = int(self.roles[self.guild_id]["permissions"])
        for rid in m["roles"]:
            role = self.roles.get(int(rid))
            if role:
                bits |= int(role["permissions"])
        return Perm.ALL if bits & Perm.ADMINISTRATOR else bits

    @property
    def bot_permissions(self) -> int:
        """The bot's permissions (``app_permissions`` in interactions)."""
        return self.member_permissions(self.application_id)

    def dm_channel(self, user: Any) -> dict[str, Any]:
        """The DM channel between the bot and ``user`` (created on first use)."""
        uid = _snowflake_of(user, "user")
        if uid not in self.users:
            raise KeyError(f"unknown user {uid}")
        if uid not in self._dm_channels:
            cid = snowflake()
            self.channels[cid] = {
                "id": str(cid),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self._public_user(uid)],
            }
            self._dm_channels[uid] = cid
        return self.channels[self._dm_channels[uid]]

    def make_attachment(
        self, filename: str, data: bytes, content_type: str | None = None, *, description: str | None = None
    ) -> dict[str, Any]:
        """Store a user upload (for attachment options) and return its Discord attachment object."""
        return self._store_attachment(
            self.channel_id,
            UploadedFile(filename, data, content_type or "application/octet-stream"),
            filename=filename,
            description=description,
            ephemeral=True,
        )

    def _public_user(self, uid: int) -> dict[str, Any]:
        return copy.deepcopy(self.users[uid])

    def _guild_payload(self, intents: int) -> dict[str, Any]:
        # Without the privileged members intent Discord sends only the bot's own member.
        members = list(self.members.values()) if intents & Intents.GUILD_MEMBERS else [self.bot_member]
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": str(self.channel_id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
            "joined_at": self.bot_member["joined_at"],
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(self.members),
            "members": copy.deepcopy(members),
            "channels": copy.deepcopy([c for c in self.channels.values() if c["type"] != 1]),
            "roles": copy.deepcopy(list(self.roles.values())),
            "emojis": [],
            "stickers": [],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    @contextlib.asynccontextmanager
    async def run_bot(self, bot: Any, *, timeout: float = 5.0) -> AsyncIterator[Any]:
        """Run a discord.py client against the fake until the block exits::

            async with fake.run_bot(MyBot(...)) as bot:   # logged in, synced, READY
                ...

        Uses ``async with bot`` + ``bot.start(fake.token)``, waits for ``wait_until_ready()`` (raising
        the start-up error, e.g. ``LoginFailure``, if ``start`` fails first), and closes the bot on exit.
        The caller must already have pointed discord.py at the fake (``discord_endpoints`` fixture).
        """
        async with bot:
            task = asyncio.create_task(bot.start(self.token), name="fake-discord-bot")
            ready = asyncio.create_task(bot.wait_until_ready())
            done, _ = await asyncio.wait({task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                ready.cancel()
                if task in done:
                    task.result()  # re-raise the start-up error
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise TimeoutError(f"bot did not become ready within {timeout}s\n{self.summary()}")
            try:
                yield bot
            finally:
                await bot.close()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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
        app.router.add_get("/attachments/{cid}/{aid}/{filename}", self._h_attachment)

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
                return await handler(request, call)
            except _HTTPError as exc:
                return self._fail(call, exc)
            except Exception as exc:  # a bug in the fake: answer < 500 so discord.py does not retry
                self.internal_errors.append(f"{call.method} {call.path}: {type(exc).__name__}: {exc}")
                return self._reply(call, 400, {"message": f"fake discord error: {exc}", "code": -1}, validate=False)
            finally:
                await self._changed()

        return wrapped

    async def _begin(self, request: web.Request, operation: str | None) -> RecordedCall:
        path = request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else request.path
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

    def _reply(self, call: RecordedCall, status: int, body: Any = None, *, validate: bool = True) -> web.Response:
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
            return web.Response(status=status)
        return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})

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
                    raise _HTTPError(
                        400,
                        50035,
                        "Invalid Form Body",
                        detail="; ".join(f"{'.'.join(map(str, p))}: {m}" for p, _c, m in problems),
                        errors=_errors_tree(problems),
                    )
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
                raise _HTTPError(
                    400,
                    50035,
                    "Invalid Form Body",
                    detail="; ".join(f"{'.'.join(map(str, p))}: {m}" for p, _c, m in problems),
                    errors=_errors_tree(problems),
                )
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
        if request.match_info["guild"] != str(self.guild_id):
            raise _HTTPError(404, 10004, "Unknown Guild")
        try:
            member = self.members[int(request.match_info["user"])]
        except (KeyError, ValueError):
            raise _HTTPError(404, 10007, "Unknown Member") from None
        return self._reply(call, 200, copy.deepcopy(member))

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
        msg_type = 19 if body.get("message_reference") else 0
        msg = self._create_message(
            call,
            channel_id=int(channel["id"]),
            body=body,
            msg_type=msg_type,
            default_parse=("users", "roles", "everyone"),
        )
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

    # ------------------------------------------------------------------ REST: interactions

    async def _h_callback(self, request: web.Request, call: RecordedCall) -> web.Response:
        token = request.match_info["token"]
        call.token = token
        it = self._by_token.get(token)
        if it is None or str(it.id) != request.match_info["iid"]:
            raise _HTTPError(404, 10062, "Unknown interaction", detail="unknown interaction id/token")
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
            "guild_id": str(self.guild_id),
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
            raise _HTTPError(404, 10015, "Unknown Webhook", detail=detail)
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
        url = f"{self.base_url}/attachments/{channel_id}/{aid}/{quote(name)}"
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
        if "allowed_mentions" in body:
            self._allowed_mentions[msg["id"]] = body["allowed_mentions"]
        self._compute_mentions(msg, self._allowed_mentions.get(msg["id"]), default_parse)

    def _compute_mentions(self, msg: dict[str, Any], allowed: Any, default_parse: tuple[str, ...]) -> None:
        content = msg["content"]
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
            "authorizing_integration_owners": {"0": str(self.guild_id)},
        }
        if it.type == _MESSAGE_COMPONENT and it.source_message_id:
            meta["interacted_message_id"] = it.source_message_id
        if it.type == _APPLICATION_COMMAND:
            meta["name"] = it.payload["data"]["name"]
            meta["command_type"] = it.payload["data"].get("type", 1)
        if it.type == _MODAL_SUBMIT and it.opener is not None:
            meta["triggering_interaction_metadata"] = self._interaction_metadata(it.opener)
        return meta

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
            chunk = {
                "guild_id": str(self.guild_id),
                "members": copy.deepcopy(list(self.members.values())),
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
        session = _GatewaySession(session_id=secrets.token_hex(16), intents=intents)
        self._sessions[session.session_id] = session
        conn.session = session
        ready: dict[str, Any] = {
            "v": 10,
            "user": {**self._public_user(self.application_id), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
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
        await self._gw_send(conn, 0, self._guild_payload(intents), "GUILD_CREATE")

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

    def _primary_connection(self, *, required: bool = True) -> _GatewayConnection | None:
        for conn in self._connections:
            if conn.session is not None and not conn.ws.closed:
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
            for conn in list(self._connections):
                if conn.session is None or conn.ws.closed:
                    continue
                if intent is None or conn.session.intents & intent:
                    await self._gw_send(conn, 0, data, event)

    async def dispatch_event(self, event: str, data: dict[str, Any]) -> None:
        """Send a raw DISPATCH (op 0) event ``event`` with ``data`` to every connected bot session."""
        for conn in list(self._connections):
            if conn.session is not None and not conn.ws.closed:
                await self._gw_send(conn, 0, data, event)

    async def send_guild_create(self) -> None:
        """Send GUILD_CREATE again (e.g. after adding roles or members)."""
        for conn in list(self._connections):
            if conn.session is not None and not conn.ws.closed:
                await self._gw_send(conn, 0, self._guild_payload(conn.session.intents), "GUILD_CREATE")

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
        attachment_size_limit: int | None,
        app_permissions: int | None,
        locale: str,
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
        if uid not in self.members:
            raise KeyError(f"user {uid} is not a member of the guild; use a DM channel or add_member()")
        perms = self.member_permissions(uid)
        payload |= {
            "context": 0,
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "guild_id": str(self.guild_id),
            "guild_locale": "en-US",
            "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
            "channel_id": ch["id"],
            "channel": {**copy.deepcopy(ch), "permissions": str(perms)},
            "member": self._member_payload(uid, ch),
            "app_permissions": str(app_permissions if app_permissions is not None else self.bot_permissions),
        }
        return payload

    async def _dispatch_interaction(
        self,
        payload: dict[str, Any],
        *,
        source_message_id: str | None = None,
        opener: SentInteraction | None = None,
    ) -> SentInteraction:
        await self.flush_events()
        conn = self._primary_connection()
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
        msg = self.messages.get(str(_snowflake_of(message_id, "message")))
        if msg is None:
            raise ValueError(f"message {message_id} does not exist (or was deleted)")
        if msg["flags"] & MessageFlags.LOADING:
            raise ValueError("the message is still loading (deferred) and has no components yet")
        comp = next((c for c in _walk_components(msg["components"]) if c.get("custom_id") == custom_id), None)
        if comp is None:
            ids = [c.get("custom_id") for c in _walk_components(msg["components"]) if c.get("custom_id")]
            raise ValueError(f"message {msg['id']} has no component {custom_id!r} (has {ids})")
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        payload = self._base_interaction(
            _MESSAGE_COMPONENT,
            user=user,
            channel=int(msg["channel_id"]),
            attachment_size_limit=None,
            app_permissions=None,
            locale="en-US",
        )
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
        msg = self.messages.get(str(_snowflake_of(message_id, "message")))
        if msg is None:
            raise ValueError(f"message {message_id} does not exist (or was deleted)")
        payload = self._base_interaction(
            _APPLICATION_COMMAND,
            user=user,
            channel=int(msg["channel_id"]),
            attachment_size_limit=None,
            app_permissions=None,
            locale="en-US",
        )
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
        msg = self.messages.get(str(_snowflake_of(message_id, "message")))
        if msg is None:
            raise ValueError(f"message {message_id} does not exist (or was deleted)")
        payload = self._base_interaction(
            _MESSAGE_COMPONENT,
            user=user,
            channel=int(msg["channel_id"]),
            attachment_size_limit=None,
            app_permissions=None,
            locale="en-US",
        )
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
            attachment_size_limit=None,
            app_permissions=None,
            locale="en-US",
        )
        if opener.source_message_id and opener.source_message_id in self.messages:
            payload["message"] = copy.deepcopy(self.messages[opener.source_message_id])
        payload["data"] = {"custom_id": custom_id, "components": components}
        return await self._dispatch_interaction(payload, source_message_id=opener.source_message_id, opener=opener)


# --------------------------------------------------------------------------------------------------
# option building


class _OptionBuilder:
    """Builds ``data.options`` and ``data.resolved`` from friendly values and synced definitions."""

    _INFER: tuple[tuple[type, int], ...] = ((bool, 5), (int, 4), (float, 10), (str, 3))

    def __init__(
        self, fake: FakeDiscord, resolved: dict[str, dict[str, Any]], *, strict: bool, focused: str | None
    ) -> None:
        self.fake = fake
        self.resolved = resolved
        self.strict = strict
        self.focused = focused

    def build_command(
        self,
        name: str,
        defs: list[dict[str, Any]] | None,
        options: dict[str, Any] | list[dict[str, Any]] | None,
        subcommand: str | None,
        subcommand_group: str | None,
    ) -> list[dict[str, Any]]:
        if isinstance(options, list):
            return copy.deepcopy(options)
        values = dict(options or {})
        path = name
        if subcommand_group is not None:
            group = self._child(defs, subcommand_group, 2, path)
            sub_name = subcommand or ""
            sub = self._child(group.get("options") if group else None, sub_name, 1, f"{path} {subcommand_group}")
            inner = self.build(sub.get("options") if sub else None, values, f"{path} {subcommand_group} {sub_name}")
            return [{"type": 2, "name": subcommand_group, "options": [{"type": 1, "name": sub_name, "options": inner}]}]
        if subcommand is not None:
            sub = self._child(defs, subcommand, 1, path)
            inner = self.build(sub.get("options") if sub else None, values, f"{path} {subcommand}")
            return [{"type": 1, "name": subcommand, "options": inner}]
        if defs and any(d.get("type") in (1, 2) for d in defs):
            raise ValueError(f"/{name} has subcommands; pass subcommand= (and subcommand_group=)")
        return self.build(defs, values, path)

    @staticmethod
    def _child(defs: list[dict[str, Any]] | None, name: str, kind: int, path: str) -> dict[str, Any] | None:
        if defs is None:
            return None
        for d in defs:
            if d.get("name") == name and d.get("type") == kind:
                return d
        raise ValueError(f"/{path} has no {'group' if kind == 2 else 'subcommand'} {name!r}")

    def build(self, defs: list[dict[str, Any]] | None, values: dict[str, Any], path: str) -> list[dict[str, Any]]:
        by_name = {d["name"]: d for d in defs or []} if defs is not None else None
        out = []
        for name, value in values.items():
            definition = by_name.get(name) if by_name is not None else None
            if by_name is not None and definition is None:
                raise ValueError(f"/{path} has no option {name!r} (options: {sorted(by_name)})")
            kind = definition["type"] if definition is not None else self._infer(value)
            out.append(self.value(kind, value, definition, name))
        if by_name is not None and self.strict and self.focused is None:
            missing = [d["name"] for d in defs or [] if d.get("required") and d["name"] not in values]
            if missing:
                raise ValueError(f"/{path} is missing required option(s) {missing}")
        return out

    def _infer(self, value: Any) -> int:
        for py_type, kind in self._INFER:
            if isinstance(value, py_type):
                return kind
        if isinstance(value, dict) and "user" in value:
            return 6
        if isinstance(value, tuple | bytes) or (isinstance(value, dict) and "filename" in value):
            return 11
        raise ValueError(f"cannot infer the option type of {value!r} for an unsynced command")

    def value(self, kind: int, value: Any, definition: dict[str, Any] | None, name: str) -> dict[str, Any]:
        option: dict[str, Any] = {"name": name, "type": kind}
        if self.focused == name:
            option |= {"value": str(value), "focused": True}
            return option
        if kind in (3, 4, 5, 10):
            self._check_scalar(kind, value, definition, name)
            option["value"] = value
        elif kind == 6:
            option["value"] = self._user(value)
        elif kind == 7:
            option["value"] = self._channel(value, definition)
        elif kind == 8:
            option["value"] = self._role(value)
        elif kind == 9:
            ident = _snowflake_of(value, name)
            option["value"] = self._role(ident) if ident in self.fake.roles else self._user(ident)
        elif kind == 11:
            option["value"] = self._attachment(value)
        else:
            raise ValueError(f"option {name!r} has unsupported type {kind}")
        return option

    def _check_scalar(self, kind: int, value: Any, definition: dict[str, Any] | None, name: str) -> None:
        if not self.strict:
            return
        ok = {
            3: isinstance(value, str),
            4: isinstance(value, int) and not isinstance(value, bool),
            5: isinstance(value, bool),
            10: isinstance(value, int | float) and not isinstance(value, bool),
        }[kind]
        if not ok:
            raise ValueError(f"option {name!r} (type {kind}) got {value!r}")
        if definition is None:
            return
        choices = definition.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(f"option {name!r}: {value!r} is not one of {[c['value'] for c in choices]}")
        if kind == 3:
            if len(value) < definition.get("min_length", 0) or len(value) > definition.get("max_length", 6000):
                raise ValueError(f"option {name!r}: length {len(value)} outside min_length/max_length")
        elif kind in (4, 10):
            lo, hi = definition.get("min_value"), definition.get("max_value")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ValueError(f"option {name!r}: {value} outside [{lo}, {hi}]")

    def _user(self, value: Any) -> str:
        uid = _snowflake_of(value, "user option")
        if uid not in self.fake.users:
            raise ValueError(f"unknown user {uid} (add it with add_member/add_user)")
        self.resolved.setdefault("users", {})[str(uid)] = self.fake._public_user(uid)
        if uid in self.fake.members:
            member = copy.deepcopy(self.fake.members[uid])
            member.pop("user")
            member["permissions"] = str(self.fake.member_permissions(uid))
            self.resolved.setdefault("members", {})[str(uid)] = member
        return str(uid)

    def _role(self, value: Any) -> str:
        rid = _snowflake_of(value, "role option")
        if rid not in self.fake.roles:
            raise ValueError(f"unknown role {rid}")
        self.resolved.setdefault("roles", {})[str(rid)] = copy.deepcopy(self.fake.roles[rid])
        return str(rid)

    def _channel(self, value: Any, definition: dict[str, Any] | None) -> str:
        cid = _snowflake_of(value, "channel option")
        channel = self.fake.channels.get(cid)
        if channel is None:
            raise ValueError(f"unknown channel {cid}")
        allowed_types = (definition or {}).get("channel_types")
        if self.strict and allowed_types and channel["type"] not in allowed_types:
            raise ValueError(f"channel {cid} (type {channel['type']}) not in channel_types {allowed_types}")
        self.resolved.setdefault("channels", {})[str(cid)] = {
            "id": channel["id"],
            "type": channel["type"],
            "name": channel.get("name"),
            "guild_id": channel.get("guild_id"),
            "parent_id": channel.get("parent_id"),
            "nsfw": channel.get("nsfw", False),
            "flags": 0,
            "permissions": str(self.fake.bot_permissions),
        }
        return channel["id"]

    def _attachment(self, value: Any) -> str:
        if isinstance(value, bytes):
            value = ("upload.bin", value)
        if isinstance(value, tuple):
            value = self.fake.make_attachment(*value)
        if not isinstance(value, dict) or "id" not in value:
            raise ValueError(f"attachment option needs make_attachment() or (filename, bytes), got {value!r}")
        self.resolved.setdefault("attachments", {})[value["id"]] = copy.deepcopy(value)
        return value["id"]


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


# --------------------------------------------------------------------------------------------------
# message rules and response shaping


def _attachments_prefix(call: RecordedCall) -> tuple[str, ...]:
    return ("data", "attachments") if call.operation == "create_interaction_response" else ("attachments",)


def _message_limit_errors(body: dict[str, Any], prefix: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str, str]]:
    """Discord's message limits that the bot can break (content, embeds, components, attachments)."""
    problems: list[tuple[tuple[Any, ...], str, str]] = []

    def add(path: tuple[Any, ...], code: str, message: str) -> None:
        problems.append(((*prefix, *path), code, message))

    content = body.get("content")
    if isinstance(content, str) and len(content) > 2000:
        add(("content",), "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = body.get("embeds") or []
    if isinstance(embeds, list):
        if len(embeds) > 10:
            add(("embeds",), "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        total = 0
        for i, embed in enumerate(embeds):
            if not isinstance(embed, dict):
                continue
            for key, limit in (("title", 256), ("description", 4096)):
                text = embed.get(key) or ""
                total += len(text)
                if len(text) > limit:
                    add(("embeds", i, key), "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
            fields = embed.get("fields") or []
            if len(fields) > 25:
                add(("embeds", i, "fields"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            for j, fld in enumerate(fields):
                for key, limit in (("name", 256), ("value", 1024)):
                    text = (fld or {}).get(key) or ""
                    total += len(text)
                    if len(text) > limit:
                        where = ("embeds", i, "fields", j, key)
                        add(where, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
            for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
                text = (embed.get(key) or {}).get(sub) or ""
                total += len(text)
                if len(text) > limit:
                    add(("embeds", i, key, sub), "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
        if total > 6000:
            add(("embeds",), "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of 6000 ({total})")
    attachments = body.get("attachments")
    if isinstance(attachments, list) and len(attachments) > MAX_FILES:
        add(("attachments",), "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    flags = body.get("flags") or 0
    components = body.get("components") or []
    if isinstance(flags, int) and flags & MessageFlags.IS_COMPONENTS_V2:
        if body.get("content") or body.get("embeds"):
            add(
                ("content",),
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "content and embeds cannot be used with IS_COMPONENTS_V2",
            )
        if len(list(_walk_components(components))) > 40:
            add(("components",), "BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer components in total.")
    elif isinstance(components, list):
        if len(components) > 5:
            add(("components",), "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        for i, row in enumerate(components):
            if not isinstance(row, dict) or row.get("type") != 1:
                add(("components", i, "type"), "COMPONENT_LAYOUT_INVALID", "Top-level components must be action rows.")
                continue
            children = row.get("components") or []
            selects = [c for c in children if isinstance(c, dict) and c.get("type") in _SELECT_TYPES]
            if len(children) > 5 or (selects and len(children) > 1) or not children:
                add(
                    ("components", i, "components"),
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "An action row holds 1-5 buttons or exactly one select menu.",
                )
    seen: set[str] = set()
    for comp in _walk_components(components if isinstance(components, list) else []):
        cid = comp.get("custom_id")
        if cid is None:
            continue
        if not isinstance(cid, str) or not 1 <= len(cid) <= 100:
            add(("components",), "BASE_TYPE_BAD_LENGTH", f"custom_id {cid!r} must be 1-100 characters.")
        elif cid in seen:
            add(("components",), "COMPONENT_CUSTOM_ID_DUPLICATED", f"custom_id {cid!r} is duplicated.")
        seen.add(cid if isinstance(cid, str) else "")
    return problems


def _command_sync_errors(commands: list[Any]) -> list[tuple[tuple[Any, ...], str, str]]:
    """Rules Discord applies to a bulk overwrite that the schema cannot express."""
    problems: list[tuple[tuple[Any, ...], str, str]] = []
    seen: set[tuple[str, int]] = set()
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, dict) or not isinstance(cmd.get("name"), str):
            continue
        key = (cmd["name"], cmd.get("type") or 1)
        if key in seen:
            problems.append(((i, "name"), "APPLICATION_COMMAND_ALREADY_EXISTS", f"duplicate command {key[0]!r}"))
        seen.add(key)

        def check(options: Any, path: tuple[Any, ...]) -> None:
            if not isinstance(options, list):
                return
            optional_seen = False
            names: set[str] = set()
            for j, opt in enumerate(options):
                if not isinstance(opt, dict):
                    continue
                if opt.get("name") in names:
                    problems.append(((*path, j, "name"), "APPLICATION_COMMAND_OPTION_NAME_DUPLICATE", "duplicate"))
                names.add(opt.get("name"))
                if opt.get("type") in (1, 2):
                    check(opt.get("options"), (*path, j, "options"))
                    continue
                if opt.get("required"):
                    if optional_seen:
                        problems.append(
                            (
                                (*path, j, "required"),
                                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                                "Required options must be placed before non-required options",
                            )
                        )
                else:
                    optional_seen = True

        check(cmd.get("options"), (i, "options"))
    return problems


def _assign_component_ids(components: list[Any]) -> None:
    """Give every component a numeric ``id`` (Discord does) and fill select defaults."""
    comps = list(_walk_components(components))
    next_id = max([c["id"] for c in comps if isinstance(c.get("id"), int)] + [0]) + 1
    for comp in comps:
        if not isinstance(comp.get("id"), int):
            comp["id"] = next_id
            next_id += 1
        if comp.get("type") in _SELECT_TYPES:
            comp.setdefault("min_values", 1)
            comp.setdefault("max_values", 1)
            if comp["type"] == 3:
                comp.setdefault("options", [])


def _embed_response(embed: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(embed)
    out.setdefault("type", "rich")
    for fld in out.get("fields") or []:
        fld.setdefault("inline", False)
    return out


def _option_response(option: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in option.items() if v is not None}
    out.setdefault("description", "")
    if "options" in out:
        out["options"] = [_option_response(o) for o in out["options"]]
    return out
