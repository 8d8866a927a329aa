"""Choice lists that more than one command offers (``/imagine``, ``/edit``, ``/prefs``).

(A module starting with ``_`` is a helper, not an extension: see ``bot.app.extension_names``.)
"""

from __future__ import annotations

from collections.abc import Iterable

from discord import app_commands

from bot.billing.money import format_usd
from bot.models import ASPECT_RATIOS, MODELS, ModelSpec, flux3_resolution_prices


def resolution_choices() -> list[app_commands.Choice[str]]:
    """The FLUX 3 ``resolution`` tiers, each labelled with its price (e.g. ``1k · $0.048``)."""
    return [
        app_commands.Choice(name=f"{tier} · {format_usd(micros)}", value=tier)
        for tier, micros in flux3_resolution_prices()
    ]


def model_choices(specs: Iterable[ModelSpec] | None = None) -> list[app_commands.Choice[str]]:
    """Models (every one, by default), each labelled with its price."""
    return [
        app_commands.Choice(name=f"{spec.label} · {spec.describe_price()}"[:100], value=spec.key)
        for spec in (MODELS.values() if specs is None else specs)
    ]


def aspect_ratio_choices() -> list[app_commands.Choice[str]]:
    """The aspect ratios `/imagine` offers."""
    return [app_commands.Choice(name=ratio, value=ratio) for ratio in ASPECT_RATIOS]
