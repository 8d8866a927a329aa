"""Money as integers: micro-dollars (µ$) everywhere, converted only at the edges.

Floats never hold money here: BFL prices are fractional cents (FLUX.2 [klein] is 1.4 ¢ + 0.1 ¢/MP)
and a float sum of them drifts.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000
MICROS_PER_CREDIT = 10_000  # 1 BFL credit = $0.01
MAX_USD_AMOUNT_MICROS = 100_000 * MICROS_PER_USD  # anything above $100,000 is a typo, not a budget


class InvalidAmount(ValueError):
    """A dollar amount that cannot be a budget (not a number, negative, absurd, too precise)."""


def parse_usd(text: str | int | Decimal, *, allow_zero: bool = True) -> int:
    """Parse a dollar amount such as ``"2.50"``, ``"$2.5"`` or ``"0.014"`` into micro-dollars."""
    if isinstance(text, bool):
        raise InvalidAmount("an amount must be a number of dollars")
    raw = str(text).strip().removeprefix("$").replace(",", "").strip()
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise InvalidAmount(f"`{str(text)[:20]}` is not a dollar amount (try something like 2.50)") from exc
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
