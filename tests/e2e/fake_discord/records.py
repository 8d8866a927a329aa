"""What the fake Discord records: calls, violations, schema errors, syncs, events, interactions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Self

from aiohttp import web

from tests.e2e.fake_discord.helpers import _accepts_argument, _errors_tree

if TYPE_CHECKING:
    from tests.e2e.fake_discord.server import FakeDiscord


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
    #: The kind of fault injected into this call (see ``faults.py``), if any.
    fault: str | None = None
    #: A channel message create answered with the earlier message of the same ``nonce`` (``enforce_nonce``).
    nonce_reused: bool = False

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


@dataclass(frozen=True)
class MessageVersion:
    """One state of a message: as created, then after each edit (``FakeDiscord.message_history``)."""

    time: float
    content: str
    attachments: int
    embeds: int
    flags: int
    text: str  # content, embed descriptions and Components V2 text displays, joined


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
    shard: tuple[int, int] | None = None  # [shard_id, num_shards] from IDENTIFY, if the bot shards


@dataclass(eq=False)
class _GatewayConnection:
    ws: web.WebSocketResponse
    query: dict[str, str]
    session: _GatewaySession | None = None


@dataclass
class InteractionFault:
    """A failure injected on purpose (:meth:`FakeDiscord.fail_interaction_requests`): Discord unreachable.

    ``route`` is ``"callback"`` (the initial response) or ``"webhook_edit"`` (``PATCH`` of an interaction
    message, e.g. ``@original`` after a deferral). ``how`` is ``"drop"`` (the connection is closed with no
    answer: the client sees a transport error) or an HTTP status (e.g. 500). Nothing the request asked
    for is applied. ``user_id`` limits it to one member's interactions, ``times`` to that many requests.
    """

    route: str
    how: str | int = "drop"
    user_id: int | None = None
    times: int | None = None
    #: Requests this fault answered so far.
    hits: int = 0

    def matches(self, route: str, user_id: int) -> bool:
        """Whether this fault answers a ``route`` request of ``user_id``'s interaction now."""
        used_up = self.times is not None and self.hits >= self.times
        return not used_up and self.route == route and self.user_id in (None, user_id)


class _Dropped(Exception):
    """Raised inside handlers to close the connection without an answer (an injected fault)."""


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

    @classmethod
    def invalid_form(cls, problems: list[tuple[tuple[Any, ...], str, str]]) -> _HTTPError:
        """Discord's 400 / 50035 "Invalid Form Body" for ``problems`` (path, code, message), all in the detail."""
        detail = "; ".join(f"{'.'.join(map(str, path))}: {message}" for path, _code, message in problems)
        return cls(400, 50035, "Invalid Form Body", detail=detail, errors=_errors_tree(problems))


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
        #: An injected dead token (``Fault.dead_token``): the error code every webhook call now gets.
        self.dead_token: int | None = None
        #: The bot sent an initial response whose connection dropped: it cannot know whether it landed,
        #: so reading or editing ``@original`` next is a fair question (answered, never a violation).
        self.answer_dropped = False
        #: The server the interaction came from (None in a DM).
        self.guild_id: int | None = int(payload["guild_id"]) if payload.get("guild_id") else None

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
