"""Choice lists that more than one command offers (``/imagine`` and ``/edit``).

(A module starting with ``_`` is a helper, not an extension: see ``bot.app.extension_names``.)
"""

from __future__ import annotations

from discord import app_commands

from bot.billing.money import format_usd
from bot.models import flux3_resolution_prices


def resolution_choices() -> list[app_commands.Choice[str]]:
    """The FLUX 3 ``resolution`` tiers, each labelled with its price (e.g. ``1k · $0.048``)."""
    return [
        app_commands.Choice(name=f"{tier} · {format_usd(micros)}", value=tier)
        for tier, micros in flux3_resolution_prices()
    ]
