"""The refund policy: what a member gets back when BFL accepted a task that then made no image.

The setting ``REFUND_POLICY`` names one of these; :func:`bot.engine.decision.decide` applies it.
"""

from __future__ import annotations

import enum


class RefundPolicy(enum.StrEnum):
    """What a member gets back when BFL accepted a task that then did not produce an image."""

    ERRORS = "errors"  # provider errors and timeouts are refunded; moderated prompts still count
    ALL = "all"  # every failed task is refunded to the member
    NONE = "none"  # the member pays for every accepted task
