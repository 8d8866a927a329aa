"""Settings, read from the environment and `.env` when the bot starts (never at import).

An empty value (``DEV_GUILD_ID=``, as `.env.example` ships it) means "not set": the default applies.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.billing.money import InvalidAmount, parse_usd
from bot.billing.periods import Period
from bot.billing.refunds import RefundPolicy
from bot.models import DEFAULT_MODEL, is_offered, offered_models

ENV_FILE = Path(".env")

__all__ = ["Period", "RefundPolicy", "Settings", "load_settings"]  # Period, RefundPolicy: bot.billing's


def _usd_to_micros(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # already micro-dollars (constructed in code)
    try:
        return parse_usd(value)
    except InvalidAmount as exc:
        raise ValueError(str(exc)) from exc


Micros = Annotated[int, BeforeValidator(_usd_to_micros), Field(ge=0)]


def _usd(env_name: str, default: str) -> Any:
    return Field(default=parse_usd(default), validation_alias=AliasChoices(env_name, env_name.lower()))


class Settings(BaseSettings):
    """Everything the bot can be configured with; `.env.example` documents each variable."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `KEY=` means "not set", in the environment and in .env
        extra="ignore",
    )

    discord_token: SecretStr
    bfl_api_key: SecretStr
    bfl_api_url: str = "https://api.bfl.ai"
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    # Where `/edit` may also read attachments (a proxy's or a local Discord's CDN): that origin and path.
    # Not set: Discord's CDN hosts, plus the host of DISCORD_API_URL (any port) when it is not discord.com.
    discord_cdn_url: str | None = None
    database_path: Path = Path("data/fluxcord.sqlite3")
    # NORMAL (with WAL) keeps every commit through a process crash; FULL also through an OS crash or
    # power loss, at ~4x fewer ledger writes per second (see README "Benchmarks").
    database_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # Set (postgresql://user:password@host:5432/db): PostgreSQL instead of the SQLite file, so several
    # processes can share the data (docs/operations.md "Moving to PostgreSQL"). A secret: never logged.
    database_url: SecretStr | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)  # PostgreSQL connections per process
    dev_guild_id: int | None = Field(default=None, gt=0)

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    default_model: str = DEFAULT_MODEL
    draft_model: str = "flux-2-klein-4b"  # `/imagine draft:true` makes its candidates on this model
    bfl_max_active_tasks: int = Field(default=24, ge=1, le=24)
    # Right after a submit BFL may not know the task yet (it is eventually consistent): a poll answered
    # "Task not found" (or HTTP 404) within this many seconds of the submit means "poll again".
    bfl_task_not_found_window_seconds: int = Field(default=10, ge=0, le=60)
    job_timeout_seconds: int = Field(default=300, ge=10, le=780)
    # Several processes on one database (docs/operations.md "Workers and shards"): each renews a lease
    # every third of this; the jobs of one that stops renewing are taken over when its lease expires.
    job_lease_seconds: int = Field(default=30, ge=2, le=3600)
    # A paid result that Discord keeps refusing is retried with back-off this long (from when it was
    # made), then refunded to the member and counted as undeliverable in /budget report.
    undeliverable_after_seconds: int = Field(default=3600, ge=60, le=7 * 86_400)
    # Gateway shard clusters: SHARD_COUNT shards in all; SHARD_IDS those this process runs ("0,1", "0-3").
    shard_count: int | None = Field(default=None, ge=1, le=65536)
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None
    max_prompt_length: int = Field(default=1000, ge=10, le=6000)
    # Not set: a `cache/` folder beside the database file, so all state lives in one place.
    cache_dir: Path | None = None
    cache_max_mb: int = Field(default=512, ge=0, le=1_000_000)

    bot_budget_micros: Micros = _usd("BOT_BUDGET_USD", "50")
    bot_budget_period: Period = Period.MONTH
    default_member_daily_budget_micros: Micros = _usd("DEFAULT_MEMBER_DAILY_USD", "0.50")
    default_member_daily_images: int = Field(default=10, ge=0, le=100_000)
    default_server_daily_budget_micros: Micros = _usd("DEFAULT_SERVER_DAILY_USD", "5")
    # A request estimated at or above this is confirmed privately first (Generate / Cancel); 0: always.
    confirm_above_micros: Micros = _usd("CONFIRM_ABOVE_USD", "0.20")
    member_cooldown_seconds: int = Field(default=0, ge=0, le=86_400)
    member_max_concurrent_jobs: int = Field(default=2, ge=1, le=24)
    member_max_pending_jobs: int = Field(default=10, ge=1, le=100)
    refund_policy: RefundPolicy = RefundPolicy.ERRORS
    # Safety and privacy (README "Safety and privacy").
    moderation_strikes: int = Field(default=3, ge=1, le=100)
    moderation_block_hours: int = Field(default=1, ge=1, le=8760)
    prompt_retention_days: int = Field(default=30, ge=0, le=3650)
    # Off unless set: /metrics (Prometheus) and /healthz on METRICS_HOST:METRICS_PORT (0: any free port).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    @field_validator("discord_token", "bfl_api_key")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("bfl_api_url", "discord_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_url(value, ("https", "http"), "https://api.bfl.ai").rstrip("/")

    @field_validator("discord_cdn_url")
    @classmethod
    def _cdn_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = _check_url(value, ("https", "http"), "https://cdn.discordapp.com")
        parts = urlsplit(text)
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment, e.g. https://cdn.discordapp.com")
        return text.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value().strip()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in {"postgresql", "postgres"}:
            raise ValueError("must be a PostgreSQL URL, e.g. postgresql://fluxcord:password@localhost:5432/fluxcord")
        return SecretStr(url)

    @field_validator("discord_gateway_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        return _check_url(value, ("wss", "ws"), "wss://gateway.discord.gg/")

    @field_validator("default_model", "draft_model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        model = value.strip()
        if not is_offered(model):  # a button-only route (Sharpen's deblur) is no model to render requests on
            names = ", ".join(spec.key for spec in offered_models())
            raise ValueError(f"`{_printable(model)}` is not a model; use one of: {names}")
        return model

    @model_validator(mode="after")
    def _cache_beside_database(self) -> Settings:
        if self.cache_dir is None:
            self.cache_dir = self.database_path.parent / "cache"
        return self

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        ids: list[int] = []
        for part in (p.strip() for p in value.split(",")):
            low, dash, high = part.partition("-")
            if not (low.strip().isdigit() and (not dash or high.strip().isdigit())):
                raise ValueError("must be shard numbers separated by commas, or ranges, e.g. 0,1 or 0-3")
            ids.extend(range(int(low), int(high) + 1) if dash else [int(low)])
        if not ids or len(set(ids)) != len(ids):
            raise ValueError("must list each shard once, e.g. 0,1 or 0-3")
        return tuple(ids)

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("SHARD_IDS needs SHARD_COUNT (how many shards there are in all)")
            outside = [i for i in self.shard_ids if i >= self.shard_count]
            if outside:
                raise ValueError(
                    f"SHARD_IDS names shard {outside[0]}, but shards are numbered 0 to {self.shard_count - 1}"
                    " (SHARD_COUNT)"
                )
        return self

    @field_validator("log_format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("metrics_host")
    @classmethod
    def _host(cls, value: str) -> str:
        host = value.strip()
        if not host or any(ch.isspace() or ch in "/@" for ch in host):
            raise ValueError("must be a host name or IP address, e.g. 127.0.0.1 or 0.0.0.0")
        return host

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


def _printable(text: str, limit: int = 40) -> str:
    return "".join(ch for ch in text[:limit] if ch.isprintable() and ch != "`")


def _check_url(value: str, schemes: tuple[str, ...], example: str) -> str:
    """``value`` if it is an absolute URL with one of ``schemes`` and a host (the URL is not echoed)."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ValueError(f"must be a URL such as {example}") from None
    allowed = " or ".join(f"{scheme}://" for scheme in schemes)
    if parts.scheme.lower() not in schemes:
        got = f"`{_printable(parts.scheme, 10)}://`" if parts.scheme else "no scheme"
        raise ValueError(f"must start with {allowed} (it has {got}), e.g. {example}")
    if not parts.hostname:
        raise ValueError(f"must name a host, e.g. {example}")
    return text


class SettingsError(Exception):
    """Start-up configuration is missing or invalid; the message is one line naming the variable."""


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field.upper()


def env_names() -> list[str]:
    """Every environment variable the settings read, in declaration order."""
    return [_env_name(field) for field in Settings.model_fields]


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, `.env` and ``overrides``, or raise :class:`SettingsError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _env_name(str(first["loc"][0])) if first["loc"] else "configuration"
        if first["type"] == "missing":
            message = f"{name} is required: set it in the environment or in .env (see .env.example)"
        else:
            reason = str(first["msg"]).removeprefix("Value error, ").replace("\n", " ")
            message = f"{name} is invalid: {reason} (fix it in .env or the environment; see .env.example)"
        raise SettingsError(message) from None


def env_file_warnings(path: Path = ENV_FILE) -> list[str]:
    """One line per key in the `.env` file that is not a setting, naming the closest setting if any."""
    if not path.is_file():
        return []
    known = env_names()
    warnings = []
    for key in dotenv_values(path):
        name = key.strip().upper()
        if not name or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else " (see .env.example for the settings)"
        warnings.append(f"{path}: {_printable(name)} is not a setting and is ignored{hint}")
    return warnings
