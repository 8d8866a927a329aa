"""BFL errors as job events, and what the member is told when a job ends without an image."""

from __future__ import annotations

from bot.bfl.errors import (
    BflAuthError,
    BflCreditsExhausted,
    BflError,
    BflFinetuneUnknown,
    BflModerated,
    BflRateLimited,
    BflServerError,
    BflSubmitOutcomeUnknown,
    BflTimeout,
    BflValidationError,
)
from bot.engine.states import Event

INTERNAL_ERROR_TEXT = "Something went wrong on our side while making your image."
CANCELLED_TEXT = "🚫 Cancelled. Nothing was sent to the image provider and you have not been charged."
RESTARTED_TEXT = "The bot restarted before your image was started; please try again."
LOST_TEXT = "The image was made, but it was lost before it could be posted (it had expired)."
NOT_STARTED_TEXT = (
    "Something went wrong on our side while starting your image, so it was not started."
    " You have not been charged; please try again."
)
NOT_ACKNOWLEDGED_TEXT = "The bot could not start this request in time; please try again."
EXPIRED_TEXT = (
    "This private request waited too long in the queue to be shown to you before Discord's 15 minutes"
    " ran out, so it was not started."
)
UNANSWERED_TEXT = "The image provider did not answer properly, so this request was stopped. Please try again."
UNDELIVERABLE_TEXT = "Your image was made, but Discord would not let the bot post it anywhere in time."


def ending_text(
    exc: BaseException | None, *, code: str | None, charged: bool, text: str | None = None, style: str | None = None
) -> str:
    """What the member is told when a job ends without its image: what happened, then the money.

    ``charged`` is read from the ledger (:meth:`bot.billing.ledger.Ledger.member_charged`); ``style``, the job's
    style, names a LoRA style whose LoRA BFL does not know.
    """
    if text is None and (isinstance(exc, BflFinetuneUnknown) or code == LORA_UNKNOWN_CODE):
        return lora_unknown_text(style, charged=charged)
    if text is None and exc is None and code in _CODE_TEXTS:
        text = _CODE_TEXTS[code]
    if text is None and exc is None and code == "cancelled":
        return CANCELLED_TEXT
    if text is None:
        return failure_text(exc, charged=charged)
    return text + (" This still counts against your quota." if charged else " You have not been charged.")


LORA_UNKNOWN_CODE = "finetuneunknown"
"""The job row's ``error`` for :class:`BflFinetuneUnknown` (:func:`error_code`), so a retold ending names it too."""


def lora_unknown_text(style: str | None, *, charged: bool) -> str:
    """A LoRA style whose LoRA BFL does not know: the style named, no image made, and the money."""
    which = f"the style “{style}”" if style else "this style"
    text = (
        f"BFL does not know the LoRA of {which} (it may have been renamed or deleted, or not be ready yet, on the"
        " server owner's BFL dashboard), so no image was made. A moderator can fix the style with `/style add`."
    )
    return text + (" This still counts against your quota." if charged else " Refunded: you have not been charged.")


def submit_event(exc: BflError) -> Event:
    """The event a failed submit is: BFL refused it (no task), or its outcome is unknown."""
    return Event.SUBMIT_UNKNOWN if isinstance(exc, BflSubmitOutcomeUnknown) else Event.SUBMIT_REFUSED


def task_event(exc: BflError) -> Event:
    """The event a failure of an accepted task is."""
    if isinstance(exc, BflModerated):
        return Event.REQUEST_MODERATED if exc.stage == "request" else Event.CONTENT_MODERATED
    if isinstance(exc, BflTimeout):
        return Event.TIMED_OUT
    return Event.TASK_FAILED


def error_code(exc: BaseException) -> str:
    """A short reason code for the job row."""
    if isinstance(exc, BflModerated):
        return f"{exc.stage}_moderated"
    return type(exc).__name__.removeprefix("Bfl").lower()[:60]


def failure_text(exc: BaseException | None, *, charged: bool) -> str:
    """A plain-words explanation for the member, ending with whether it counts against them."""
    tail = " This still counts against your quota." if charged else " You have not been charged."
    if exc is None or not isinstance(exc, BflError):
        return INTERNAL_ERROR_TEXT + tail
    if isinstance(exc, BflModerated):
        if exc.stage == "request":
            return "Your prompt was blocked by the image provider's content filter. Try rephrasing it." + tail
        return "The generated image was blocked by the image provider's content filter." + tail
    if isinstance(exc, BflCreditsExhausted | BflAuthError):
        return "Image generation is temporarily unavailable. Please try again later." + tail
    if isinstance(exc, BflValidationError):
        details = "; ".join(exc.messages)[:300]
        return f"The image provider rejected these options: {details}." + tail
    if isinstance(exc, BflRateLimited | BflServerError):
        return "The image provider is busy right now. Please try again in a minute." + tail
    if isinstance(exc, BflTimeout):
        return "The image took too long to generate and was abandoned." + tail
    if isinstance(exc, BflSubmitOutcomeUnknown):
        return UNANSWERED_TEXT + tail
    return "The image provider could not generate this image. Please try again." + tail


_CODE_TEXTS = {
    "request_moderated": "Your prompt was blocked by the image provider's content filter. Try rephrasing it.",
    "content_moderated": "The generated image was blocked by the image provider's content filter.",
    "timed_out": "The image took too long to generate and was abandoned.",
    "submitoutcomeunknown": UNANSWERED_TEXT,
    "submit_unknown": UNANSWERED_TEXT,
    "ack_failed": NOT_ACKNOWLEDGED_TEXT,
    "expired": EXPIRED_TEXT,
    "undeliverable": UNDELIVERABLE_TEXT,
    "lost": LOST_TEXT,
}
