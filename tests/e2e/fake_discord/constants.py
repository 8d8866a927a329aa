"""Discord constants, snowflakes and the adjustable clock of the fake Discord."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

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
