"""Money as integers: micro-dollars (µ$) everywhere, converted only at the edges.

Floats never hold money here: BFL prices are fractional cents (FLUX.2 [klein] is 1.4 ¢ + 0.1 ¢/MP)
and a float sum of them drifts.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

MICROS_PER_USD = 1_000_000
MICROS_PER_CREDIT = 10_000  # 1 BFL credit = $0.01
MAX_USD_AMOUNT_MICROS = 100_000 * MICROS_PER_USD  # anything above $100,000 is a typo, not a budget


# Plain digits, or digits grouped in threes by commas (1,000 / 12,345,678), then optional cents after a
# dot. ASCII digits only: Python's \d also matches other scripts' digits, which Decimal would accept.
_AMOUNT = re.compile(r"(?:[0-9]+|[1-9][0-9]{0,2}(?:,[0-9]{3})+)?(?:\.[0-9]+)?", re.ASCII)
_DECIMAL_COMMA = re.compile(r"[0-9]*,[0-9]+", re.ASCII)  # 1,50 / 2,5 / 0,04 / 0,040
_DOT_THOUSANDS = re.compile(r"[1-9][0-9]{0,2}(?:\.[0-9]{3})+,[0-9]+", re.ASCII)  # 1.000,50


class InvalidAmount(ValueError):
    """A dollar amount that cannot be a budget (not a number, negative, absurd, too precise)."""


def parse_usd(text: str | int | Decimal, *, allow_zero: bool = True) -> int:
    """Parse a dollar amount into micro-dollars: the one parser for commands and settings.

    Accepted: ``2.50``, ``$2.5``, ``0.014``, ``1000``, ``$1,000``, ``1,000.50``. A comma is only ever
    a thousands separator: ``1,50``, ``2,5`` or ``0,04`` (a decimal comma) is refused with a hint to
    use a dot, never read as 150, 25 or 4.
    """
    if isinstance(text, bool):
        raise InvalidAmount("an amount must be a number of dollars")
    value = Decimal(text) if isinstance(text, int | Decimal) else _parse_text(str(text))
    if not value.is_finite():
        raise InvalidAmount("an amount must be a finite number of dollars")
    if value < 0:
        raise InvalidAmount("an amount cannot be negative")
    if value == 0 and not allow_zero:
        raise InvalidAmount("the amount must be more than $0")
    micros = value * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise InvalidAmount("amounts are limited to six decimal places")
    result = int(micros)
    if result > MAX_USD_AMOUNT_MICROS:
        raise InvalidAmount("that amount is unreasonably large (the maximum is $100,000)")
    return result


def _parse_text(text: str) -> Decimal:
    raw = text.strip()
    negative = raw.startswith("-")
    raw = raw.removeprefix("-").strip().removeprefix("$").strip()
    if negative and raw:
        raise InvalidAmount("an amount cannot be negative")
    if not raw:
        raise InvalidAmount("an amount is needed, in dollars (try something like 2.50)")
    if raw and _AMOUNT.fullmatch(raw):
        return Decimal(raw.replace(",", ""))
    if _DECIMAL_COMMA.fullmatch(raw):
        raise InvalidAmount(f"use a dot for cents: {raw.replace(',', '.')}")
    if _DOT_THOUSANDS.fullmatch(raw):
        suggestion = raw.replace(".", "").replace(",", ".")
        raise InvalidAmount(f"use a dot for cents and no dots between thousands: {suggestion}")
    if "," in raw:
        raise InvalidAmount("a comma may only separate thousands (1,000.50); use a dot for cents: 1.50")
    shown = "".join(ch for ch in text.strip()[:20] if ch.isprintable() and ch != "`")
    raise InvalidAmount(f"`{shown}` is not a dollar amount (try something like 2.50)")


def credits_to_micros(credits: Decimal | int | float | str) -> int:
    """Convert a BFL credit amount (as reported in a submit response's ``cost``) to micro-dollars.

    Rounds up to the next micro-dollar, so a ledger never under-records what left the account.
    """
    value = Decimal(str(credits)) * MICROS_PER_CREDIT
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def format_usd(micros: int) -> str:
    """Render micro-dollars for people: ``$0.04``, ``$0.014``, ``$12.50``, ``-$1.00``."""
    sign = "-" if micros < 0 else ""
    value = Decimal(abs(micros)) / MICROS_PER_USD
    cents = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if cents == value:
        return f"{sign}${cents:,.2f}"
    return f"{sign}${value.normalize():,f}"
