"""What `/budget fallback`, `draft`, `gifts` and `priority` offer and say (the group: cogs/budget.py)."""

from __future__ import annotations

from discord import app_commands

from bot.billing.money import format_usd
from bot.errors import InvalidOptions
from bot.models import MODELS
from bot.text import strip_bidi
from cogs._choices import model_choices
from cogs._render import role

FALLBACK_OFF = "off"
DRAFT_DEFAULT = "default"


def model_choices_with(first: str, value: str) -> list[app_commands.Choice[str]]:
    """Every model with its price, after one special choice (``first`` / ``value``)."""
    return [app_commands.Choice(name=first, value=value), *model_choices()]


def checked_model(model: str, special: str) -> str | None:
    """``model`` as chosen (None for the special choice); a value that is no model is refused clearly."""
    if model == special:
        return None
    if model not in MODELS:
        shown = strip_bidi(model[:40]).replace("`", "")
        raise InvalidOptions(f"`{shown}` is not a model: choose one from the list.")
    return model


def draft_text(model: str | None, bot_default: str) -> str:
    chosen = model if model in MODELS else bot_default
    spec = MODELS[chosen]
    where = "this server's choice" if model in MODELS else "the bot's default (DRAFT_MODEL)"
    return (
        f"Drafts (`/imagine draft:true`) are made on **{spec.label}** (`{chosen}`, {spec.describe_price()}),"
        f" {where}; **Final** then renders a candidate on the member's model."
    )


def fallback_text(model: str | None) -> str:
    if model is None or model not in MODELS:
        return "No fallback: when BFL keeps failing for a model, members are asked to try again later."
    spec = MODELS[model]
    return (
        f"Fallback: when BFL keeps failing for a model, members are offered **{spec.label}** (`{model}`,"
        f" {spec.describe_price()}) with one click, at its own price and within their limits."
    )


def gifts_text(cap_micros: int) -> str:
    """What `/budget gifts` says about the daily gift cap."""
    if cap_micros <= 0:
        return "Gifts are off: members can't give each other budget (`/budget gifts cap:1.00` turns them on)."
    return (
        f"Gifts are on: a member may give others up to {format_usd(cap_micros)} per day (UTC) of their own"
        " remaining budget with `/gift`."
    )


def priority_text(role_id: int | None, guild_id: int) -> str:
    """What `/budget priority` says about the server's priority lane."""
    if role_id is None:
        return "No priority lane: this server's jobs go by the fair order alone (`/budget priority role:` sets one)."
    return (
        f"Priority lane: jobs of members with {role(role_id, guild_id)} (at the time they ask) go before this"
        " server's other jobs, shown as ⚡ priority in the queue; other servers keep their turns."
    )
