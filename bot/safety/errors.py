"""Member-facing refusals from the safety checks (each private, each before any call or charge)."""

from __future__ import annotations

from bot.errors import FluxcordError


class SafetyRefusal(FluxcordError):
    """A server rule refuses this request; nothing was sent to BFL and nothing was charged."""


class MemberBlocked(SafetyRefusal):
    """The member is blocked from generating images in this server."""


class ChannelNotAllowed(SafetyRefusal):
    """Generation is limited to other channels in this server."""


class ModelNotAllowed(SafetyRefusal):
    """The server does not allow this model."""


class BlockedPrompt(SafetyRefusal):
    """The prompt matches a word or phrase the server's moderators blocked."""


class GroundingNotAllowed(SafetyRefusal):
    """The request would send the prompt to web search, which the server does not allow."""


class VideoNotAllowed(SafetyRefusal):
    """The request is a FLUX 3 video (Animate), which the server has not switched on (``/safety video``)."""
