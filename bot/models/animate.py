"""Animate: a still (a result, or an attachment to ``/animate``) and a motion prompt made a FLUX 3 video request.

Like every carry-on mapping (:mod:`bot.models.carry_on`) it only builds the request: the request flow prices it
(per second, :class:`~bot.models.pricing.SecondPrice`), asks for confirmation, reserves and admits it like any
other. The server's video switch (``/safety video``) is checked by the cog before this is called.
"""

from __future__ import annotations

from bot.models.build import build_request
from bot.models.request import GenerationRequest, InputImage
from bot.models.video import VIDEO_MODEL


def animate_result(stored: GenerationRequest, still: InputImage) -> GenerationRequest:
    """The Animate button's request before its modal is answered: the result's prompt as the motion, 5 s hd.

    Used to validate (and to name the route) before anything is downloaded; the modal's answers replace it.
    """
    return animate(still, motion=stored.prompt[:1000], seconds=None, quality=None)


def animate(
    still: InputImage, *, motion: str, seconds: int | None, quality: str | None, max_prompt_length: int = 1000
) -> GenerationRequest:
    """FLUX 3 video from ``still``: ``motion`` is the prompt; ``seconds``/``quality`` None take 5 s and hd.

    Raises :class:`~bot.errors.InvalidOptions` (an empty motion prompt, a length or quality BFL does not take, a
    still it would refuse) before anything is priced or sent.
    """
    return build_request(
        model=VIDEO_MODEL,
        prompt=motion,
        aspect_ratio=None,  # the still's nearest video ratio
        seed=None,
        duration=seconds,
        resolution=quality,
        input_images=(still,),
        max_prompt_length=max_prompt_length,
    )
