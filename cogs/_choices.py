"""Choice lists and option descriptions that more than one command offers (``/imagine``, ``/edit``, ``/prefs``).

Which models take an option is a fact of the model table, so a description that names them is made from it
(:func:`only`), never written out by hand.

(A module starting with ``_`` is a helper, not an extension: see ``bot.app.extension_names``.)
"""

from __future__ import annotations

from collections.abc import Iterable

from discord import app_commands

from bot.billing.money import format_usd
from bot.models import (
    ASPECT_RATIOS,
    FLUX3_DEFAULT_RESOLUTION,
    ModelSpec,
    flux3_resolution_prices,
    models_supporting,
    offered_models,
)


def labels(specs: Iterable[ModelSpec]) -> str:
    """The models' labels, for an option's description (``FLUX.1 [dev], FLUX.2 [flex]``)."""
    return ", ".join(spec.label for spec in specs)


def only(option: str) -> str:
    """``<the models that take option> only``, from the model table, for the option's description."""
    return f"{labels(models_supporting(option))} only"


RESOLUTION_HELP = f"{only('resolution')}: output resolution tier (default {FLUX3_DEFAULT_RESOLUTION})"
"""The description of ``resolution`` wherever it is offered (its choices: :func:`resolution_choices`)."""
GROUNDING_HELP = f"{only('grounding')}: let the model search the web for references (if moderators allow it)"
"""The description of ``grounding`` wherever it is offered (whether a server allows it: ``/safety grounding``)."""


def resolution_choices() -> list[app_commands.Choice[str]]:
    """The FLUX 3 ``resolution`` tiers, each labelled with its price (e.g. ``1k · $0.048``)."""
    return [
        app_commands.Choice(name=f"{tier} · {format_usd(micros)}", value=tier)
        for tier, micros in flux3_resolution_prices()
    ]


def model_choices(specs: Iterable[ModelSpec] | None = None) -> list[app_commands.Choice[str]]:
    """Models (every one members can pick, by default: no button-only route), each labelled with its price."""
    return [
        app_commands.Choice(name=f"{spec.label} · {spec.describe_price()}"[:100], value=spec.key)
        for spec in (offered_models() if specs is None else specs)
    ]


def aspect_ratio_choices() -> list[app_commands.Choice[str]]:
    """The aspect ratios `/imagine` offers."""
    return [app_commands.Choice(name=ratio, value=ratio) for ratio in ASPECT_RATIOS]
