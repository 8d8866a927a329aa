"""Domain errors that reach a Discord user.

Each carries the text a member understands; the command tree's single error path renders it
(ephemeral when it concerns only the member). Internals and secrets never go into ``user_message``.
"""

from __future__ import annotations


class FluxcordError(Exception):
    """Base class: an expected failure with a message fit for the member who caused it."""

    ephemeral: bool = True

    def __init__(self, user_message: str, *, notice: object | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.notice = notice  # the refusal as data, when ``cogs/_render.py`` words it (then it is shown instead)


class InvalidOptions(FluxcordError):
    """The command's options are not valid for the chosen model (nothing was called or charged)."""


class NotAllowed(FluxcordError):
    """The member may not use this command (for example, a moderator command)."""


class LimitReached(FluxcordError):
    """A quota, budget, cooldown or concurrency cap refuses the request before any BFL call."""


class GenerationPaused(FluxcordError):
    """Moderators paused generation in this server."""

    def __init__(self, user_message: str = "Image generation is paused in this server by its moderators.") -> None:
        super().__init__(user_message)


class GenerationFailed(FluxcordError):
    """A generation that started did not produce an image; the message says why in plain words."""

    ephemeral = False
