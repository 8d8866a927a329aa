"""Typed errors of the BFL client.

These are plain exceptions, not Discord errors: the generation pipeline maps them to member-facing
messages, refunds and alerts. Their text is for logs and operators. It never contains the API key
(the client redacts anything the server echoes back) and never contains request headers.
"""

from __future__ import annotations

from typing import Literal


class BflError(Exception):
    """Base class of every failure the BFL client reports.

    ``task_id`` is set when the failure concerns a task BFL already accepted (and billed).
    """

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id


class BflAuthError(BflError):
    """BFL refused the request (HTTP 401 or 403); the operator must act.

    ``reason`` says what to fix: ``"key"`` when the key is missing, wrong or revoked, and
    ``"access"`` when BFL said the organisation or key has no access to this endpoint (an
    early-access model such as "Your organization does not have access to this endpoint"): the key
    works, that model does not.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: Literal["key", "access"] = "key",
        task_id: str | None = None,
    ) -> None:
        super().__init__(message, task_id=task_id)
        self.status = status
        self.reason: Literal["key", "access"] = reason


class BflCreditsExhausted(BflError):
    """HTTP 402: the BFL account is out of credits (or its payment method needs an update)."""


class BflValidationError(BflError):
    """HTTP 422: BFL rejected the request body; ``messages`` holds each ``detail[].msg``."""

    def __init__(self, message: str, *, messages: list[str], task_id: str | None = None) -> None:
        super().__init__(message, task_id=task_id)
        self.messages = messages


class BflRateLimited(BflError):
    """HTTP 429 persisted through every retry: too many active tasks on this key.

    ``retry_after`` is the server's last ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BflServerError(BflError):
    """BFL was unavailable through every retry: 5xx answers, or it could not be reached at all.

    ``status`` is the last HTTP status, or ``None`` when no response was ever received (connection
    refused, DNS failure). A submit raises it only with ``status=None`` (a submit answered 5xx is a
    :class:`BflSubmitOutcomeUnknown`), so from a submit it proves that no task was created.
    """

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class BflBadRequest(BflError):
    """HTTP 400 or another 4xx/3xx answer that retrying cannot fix."""

    def __init__(self, message: str, *, status: int, task_id: str | None = None) -> None:
        super().__init__(message, task_id=task_id)
        self.status = status


class BflFinetuneUnknown(BflBadRequest):
    """A LoRA route refused the submit because its ``finetune_id`` is not on the account (or not ready).

    BFL documents no such answer; the one public trace (FLUX.1 finetuned inference) is a plain-string
    ``{"detail": "Finetune not found or not ready"}`` (its status unrecorded). So a 4xx (not 401/402/403/429)
    whose detail says a finetune or LoRA is not found, not ready or unknown is read as this, whatever its status
    (:func:`bot.bfl.wire.refusal`).
    No task exists: nothing is billed.
    """


class BflSubmitOutcomeUnknown(BflError):
    """The submit may have created a task, but no usable answer came back.

    That is: any 5xx (a gateway 502/504 can follow creation), a timeout or dropped connection after
    sending, or a 200 without a usable body. BFL has no idempotency key, so the client never
    resends: a resend could bill twice. The caller should record the charge as "unknown" and
    reconcile later. ``status`` is the HTTP status when there was one (a 5xx), else ``None``.
    """

    def __init__(self, message: str, *, endpoint: str, status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class BflUnsafeUrl(BflError):
    """A URL from BFL points at a host the API key must not be sent to (nothing was sent there)."""


class BflModerated(BflError):
    """BFL's moderation stopped the task.

    ``stage`` is ``"request"`` when the prompt or input image was flagged before generation, and
    ``"content"`` when the generated image was flagged. ``reasons`` holds
    ``details["Moderation Reasons"]`` when BFL sent them (undocumented, so often empty).
    """

    def __init__(
        self,
        message: str,
        *,
        stage: Literal["request", "content"],
        reasons: list[str] | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message, task_id=task_id)
        self.stage: Literal["request", "content"] = stage
        self.reasons = reasons or []


class BflTaskFailed(BflError):
    """The task ended without an image: status ``Error``, ``Failed``, an unknown status, or no sample.

    ``status`` is the task status string exactly as BFL sent it.
    """

    def __init__(self, message: str, *, status: str, task_id: str | None = None) -> None:
        super().__init__(message, task_id=task_id)
        self.status = status


class BflTaskNotFound(BflError):
    """BFL does not know the task id (it expired, or it was polled on the wrong cluster)."""


class BflTimeout(BflError):
    """The task was still not finished when the caller's polling deadline passed."""


class BflDownloadError(BflError):
    """The result image could not be fetched: expired or missing URL, too large, or unreachable.

    ``status`` is the HTTP status when the failure was an HTTP answer, else ``None``.
    """

    def __init__(self, message: str, *, status: int | None = None, task_id: str | None = None) -> None:
        super().__init__(message, task_id=task_id)
        self.status = status
