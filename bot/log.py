"""Logging set-up, with secrets scrubbed from every record before any handler writes it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# Interaction and webhook tokens sit in URL paths; discord.py logs those URLs at DEBUG.
_TOKEN_IN_URL = re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]+")
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


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


def setup_logging(level: str, secrets: Iterable[str]) -> None:
    """Log to stderr at ``level``; discord.py's HTTP chatter stays at WARNING."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("discord.http").setLevel(logging.WARNING)
    # aiosqlite logs every statement with its parameters at DEBUG: job rows carry prompts and interaction tokens.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, logging.getLevelName(level)))
