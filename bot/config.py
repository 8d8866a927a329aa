"""Settings, read from the environment and `.env` when the bot starts (never at import)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.money import InvalidAmount, parse_usd


class Period(enum.StrEnum):
    """A budget period: a UTC calendar day, ISO week (Monday to Sunday) or month."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def adjective(self) -> str:
        """``daily``, ``weekly`` or ``monthly``."""
        return {"day": "daily", "week": "weekly", "month": "monthly"}[self.value]


class RefundPolicy(enum.StrEnum):
    """What a member gets back when BFL accepted a task that then did not produce an image."""

    ERRORS = "errors"  # provider errors and timeouts are refunded; moderated prompts still count
    ALL = "all"  # every failed task is refunded to the member
    NONE = "none"  # the member pays for every accepted task


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

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    discord_token: SecretStr
    bfl_api_key: SecretStr
    bfl_api_url: str = "https://api.bfl.ai"
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    database_path: Path = Path("data/fluxcord.sqlite3")
    # NORMAL (with WAL) keeps every commit through a process crash; FULL also through an OS crash or
    # power loss, at ~4x fewer ledger writes per second (see README "Benchmarks").
    database_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    dev_guild_id: int | None = None

    log_level: str = "INFO"
    default_model: str = "flux-pro-1.1"
    bfl_max_active_tasks: int = Field(default=24, ge=1, le=24)
    job_timeout_seconds: int = Field(default=300, ge=10, le=780)
    max_prompt_length: int = Field(default=1000, ge=10, le=6000)
    cache_dir: Path = Path("data/cache")
    cache_max_mb: int = Field(default=512, ge=0)

    bot_budget_micros: Micros = _usd("BOT_BUDGET_USD", "50")
    bot_budget_period: Period = Period.MONTH
    default_member_daily_budget_micros: Micros = _usd("DEFAULT_MEMBER_DAILY_USD", "0.50")
    default_member_daily_images: int = Field(default=10, ge=0)
    default_server_daily_budget_micros: Micros = _usd("DEFAULT_SERVER_DAILY_USD", "5")
    member_cooldown_seconds: int = Field(default=0, ge=0, le=86_400)
    member_max_concurrent_jobs: int = Field(default=2, ge=1, le=24)
    member_max_pending_jobs: int = Field(default=10, ge=1, le=100)
    refund_policy: RefundPolicy = RefundPolicy.ERRORS

    @field_validator("discord_token", "bfl_api_key")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("bfl_api_url", "discord_api_url", "discord_gateway_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be a full URL such as https://host/path")
        return value.rstrip("/") if not value.startswith("ws") else value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


class SettingsError(Exception):
    """Start-up configuration is missing or invalid; the message is one line naming the variable."""


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field.upper()


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
            message = f"{name} is invalid: {first['msg']}"
        raise SettingsError(message) from None
