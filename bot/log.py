"""Logging set-up, with secrets scrubbed from every record before any handler writes it."""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# Interaction and webhook tokens sit in URL paths; discord.py logs those URLs at DEBUG.
_TOKEN_IN_URL = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]+")
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_ID_FIELDS = ("job_id", "guild_id", "user_id")
# The ids of the job (or interaction) the running task works for; asyncio tasks copy it at creation.
_log_fields: contextvars.ContextVar[dict[str, int]] = contextvars.ContextVar("fluxcord_log_fields", default={})  # noqa: B039


def bind_log_fields(**ids: int | None) -> None:
    """Attach ``job_id`` / ``guild_id`` / ``user_id`` to every record logged from this context on."""
    _log_fields.set({**_log_fields.get(), **{k: int(v) for k, v in ids.items() if k in _ID_FIELDS and v is not None}})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, ids where known, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` (already scrubbed by :class:`RedactSecrets`) as one line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _log_fields.get()
        for key in _ID_FIELDS:
            value = getattr(record, key, None)  # `extra={"job_id": …}` wins over the task's context
            if value is None:
                value = context.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class RedactSecrets(logging.Filter):
    """Replaces known secrets and interaction tokens in log messages with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the formatted message (and any exception text) in place; never drops a record."""
        message = record.getMessage()
        cleaned = self._scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _TOKEN_IN_URL.sub(r"\1***", text)


def setup_logging(level: str, secrets: Iterable[str], log_format: str = "text") -> None:
    """Log to stderr at ``level`` as text lines or JSON objects; discord.py's HTTP chatter stays at WARNING."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("discord.http").setLevel(logging.WARNING)
    # aiosqlite logs every statement with its parameters at DEBUG: job rows carry prompts and interaction tokens.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, logging.getLevelName(level)))
