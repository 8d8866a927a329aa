from decimal import Decimal

import pytest

from bot.billing.money import InvalidAmount, credits_to_micros, format_usd, parse_usd


@pytest.mark.parametrize(
    ("text", "micros"),
    [("2.50", 2_500_000), ("$2.5", 2_500_000), ("0.014", 14_000), ("1,000", 1_000_000_000), ("0", 0), (3, 3_000_000)],
)
def test_parse_usd_accepts_dollar_amounts(text, micros):
    assert parse_usd(text) == micros


@pytest.mark.parametrize("text", ["-1", "abc", "nan", "inf", "0.0000001", "1e9", "", "$"])
def test_parse_usd_refuses_bad_amounts_with_a_reason(text):
    with pytest.raises(InvalidAmount) as info:
        parse_usd(text)
    assert str(info.value)


def test_parse_usd_zero_can_be_refused():
    with pytest.raises(InvalidAmount):
        parse_usd("0", allow_zero=False)


def test_credits_convert_exactly_and_round_up():
    assert credits_to_micros(4) == 40_000
    assert credits_to_micros(4.5) == 45_000
    assert credits_to_micros(Decimal("1.4000001")) == 14_001  # never under-record what left the account


def test_float_sums_would_drift_but_integers_do_not():
    assert sum([credits_to_micros("1.4")] * 1000) == 14_000_000


@pytest.mark.parametrize(
    ("micros", "text"), [(40_000, "$0.04"), (14_000, "$0.014"), (12_500_000, "$12.50"), (-1_000_000, "-$1.00")]
)
def test_format_usd(micros, text):
    assert format_usd(micros) == text


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("1.50", 1_500_000),
        ("$1.50", 1_500_000),
        ("1000", 1_000_000_000),
        ("$1,000", 1_000_000_000),
        ("1,000.50", 1_000_500_000),
        ("12,345.6", 12_345_600_000),
        (" $ 2 ", 2_000_000),
    ],
)
def test_thousands_separators_and_dollar_signs_are_accepted(text, micros):
    assert parse_usd(text) == micros


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("1,50", "use a dot for cents: 1.50"),
        ("2,5", "use a dot for cents: 2.5"),
        ("0,04", "use a dot for cents: 0.04"),
        ("$1,50", "use a dot for cents: 1.50"),
        ("0,040", "use a dot for cents: 0.040"),  # three digits, but no thousands start with 0
        ("1.000,50", "use a dot for cents and no dots between thousands: 1000.50"),
        ("1,00,000", "a comma may only separate thousands"),
        ("1,000,5", "a comma may only separate thousands"),
    ],
)
def test_a_comma_that_is_not_a_thousands_separator_is_refused_never_read_as_more(text, hint):
    with pytest.raises(InvalidAmount) as info:
        parse_usd(text)
    assert str(info.value) == hint or str(info.value).startswith(hint)


@pytest.mark.parametrize("text", ["1e2", "1_000", "+5", "٣", "1 000", "0x10", "--1", "$$1"])
def test_only_plain_decimal_notation_is_a_dollar_amount(text):
    with pytest.raises(InvalidAmount, match=r"not a dollar amount|cannot be negative"):
        parse_usd(text)


def test_a_refusal_never_echoes_control_characters():
    with pytest.raises(InvalidAmount) as info:
        parse_usd("\u202e05.1")
    assert "\u202e" not in str(info.value)
