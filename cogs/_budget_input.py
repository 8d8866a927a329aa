"""What `/budget` reads from its options: amounts, periods, members and roles, models (refused clearly)."""

from __future__ import annotations

import re

import discord
from discord import app_commands

from bot.audit import Subject, SubjectKind
from bot.billing.money import InvalidAmount, parse_usd
from bot.billing.periods import Period
from bot.errors import InvalidOptions
from bot.models import MODELS, is_offered
from bot.text import strip_bidi
from cogs._choices import model_choices

_USER_ID = re.compile(r"<@!?([0-9]{15,21})>|([0-9]{15,21})")

FALLBACK_OFF = "off"
DRAFT_DEFAULT = "default"


def choices_after(first: str, value: str) -> list[app_commands.Choice[str]]:
    """Every model with its price, after one special choice (``first`` / ``value``)."""
    return [app_commands.Choice(name=first, value=value), *model_choices()]


def checked_model(model: str, special: str) -> str | None:
    """``model`` as chosen (None for the special choice); a value that is no model is refused clearly."""
    if model == special:
        return None
    if not is_offered(model):  # a button-only or LoRA route renders no drafts and serves no fallback
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


def period(value: str) -> Period:
    try:
        return Period(value)
    except ValueError:
        shown = strip_bidi(value[:20]).replace("`", "")
        raise InvalidOptions(f"`{shown}` is not a period: use day, week or month.") from None


def amount(text: str, *, allow_zero: bool = True) -> int:
    try:
        return parse_usd(text, allow_zero=allow_zero)
    except InvalidAmount as exc:
        raise InvalidOptions(f"Invalid amount: {exc}") from None


def user_id(text: str) -> int:
    match = _USER_ID.fullmatch(text.strip())
    if match is None:
        raise InvalidOptions("`user_id` must be a user id (copy it with Developer Mode: right-click → Copy User ID).")
    return int(match.group(1) or match.group(2))


def target(who: discord.Member | discord.User | discord.Role) -> Subject:
    if isinstance(who, discord.Role):
        if who.managed:
            raise InvalidOptions(f"{who.mention} belongs to a bot or integration; choose a member's role.")
        return Subject(SubjectKind.ROLE, who.id)
    if who.bot:
        raise InvalidOptions("Bots can't generate images, so they can't have a budget.")
    return Subject(SubjectKind.MEMBER, who.id)
