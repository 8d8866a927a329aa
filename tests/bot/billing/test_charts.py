"""The report and quota charts: valid PNGs whose pixels follow the data, with alt text that says the numbers."""

from __future__ import annotations

import io

from PIL import Image

from bot.billing.charts import (
    BUDGET_RGB,
    CARD_RGB,
    MAX_SERIES,
    QUOTA_SIZE,
    SPEND_SIZE,
    TOP_MEMBERS,
    QuotaBar,
    SpendChart,
    quota_alt_text,
    render_quota_bars,
    render_spend_chart,
    spend_alt_text,
)

DAYS = tuple(f"{day}" for day in range(1, 31))


def chart(**changes) -> SpendChart:
    values = {
        "title": "Spend this month (2026-11)",
        "group_word": "model",
        "days": DAYS,
        "series": (
            ("flux-2-pro", tuple(200_000 if d % 3 else 0 for d in range(30))),
            ("flux-2-klein-4b", tuple(40_000 * (d % 5) for d in range(30))),
        ),
        "budget": ("Server budget $0.50/day", 500_000),
        "top": (("Alice", 3_000_000), ("Bob", 1_200_000)),
    }
    values.update(changes)
    return SpendChart(**values)


def pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()  # a truncated or corrupt PNG fails here
    assert image.format == "PNG"
    return image.convert("RGB")


def count(image: Image.Image, rgb: tuple[int, int, int]) -> int:
    return {colour: n for n, colour in image.getcolors(1 << 24)}.get(rgb, 0)


def test_the_spend_chart_is_a_png_of_the_expected_size_on_its_own_opaque_card():
    png = render_spend_chart(chart())
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.size == SPEND_SIZE
    assert image.mode == "RGBA" and image.getextrema()[3] == (255, 255)  # opaque: the same in dark and light themes
    assert count(pixels(png), CARD_RGB) > SPEND_SIZE[0] * SPEND_SIZE[1] // 4


def test_its_pixels_change_with_the_data():
    first = pixels(render_spend_chart(chart()))
    again = pixels(render_spend_chart(chart()))
    assert first.tobytes() == again.tobytes()  # the same data draws the same image
    more = chart(series=(("flux-2-pro", tuple(300_000 for _ in range(30))),))
    assert pixels(render_spend_chart(more)).tobytes() != first.tobytes()
    other_top = chart(top=(("Carol", 5_000_000),))
    assert pixels(render_spend_chart(other_top)).tobytes() != first.tobytes()


def test_the_budget_line_is_drawn_in_its_colour_only_when_there_is_a_budget():
    with_line = pixels(render_spend_chart(chart()))
    without = pixels(render_spend_chart(chart(budget=None)))
    assert count(without, BUDGET_RGB) == 0
    # a solid horizontal line across the plot: many pixels of exactly that colour, most of them in one row
    assert count(with_line, BUDGET_RGB) > 300
    rows = {}
    width, height = with_line.size
    data = with_line.load()
    for y in range(height):
        rows[y] = sum(1 for x in range(width) if data[x, y] == BUDGET_RGB)
    assert max(rows.values()) > width // 3


def test_at_most_ten_members_are_named_and_many_groups_fold_into_other():
    many = tuple((f"member {n}", 1_000_000 - n) for n in range(25))
    groups = tuple((f"model {n}", tuple(1_000 * (n + 1) for _ in range(30))) for n in range(12))
    big = chart(top=many, series=groups)
    text = spend_alt_text(big)
    assert "member 9 " in text and "member 10 " not in text and TOP_MEMBERS == 10
    assert "other" in text  # groups past the first few share one colour
    folded = render_spend_chart(chart(series=groups))
    assert folded != render_spend_chart(chart(series=groups[-MAX_SERIES:]))  # the rest is folded, not dropped
    assert render_spend_chart(chart(top=many)) == render_spend_chart(chart(top=many[:10]))  # the 11th is not drawn


def test_alt_text_states_the_totals_the_budget_and_the_top_spenders():
    text = spend_alt_text(chart())
    assert text.startswith("Bar chart of this server's spend per day")
    assert "flux-2-pro $4.00" in text and "Server budget $0.50/day" in text and "Alice $3.00" in text
    assert len(text) <= 1024
    empty = spend_alt_text(chart(series=(), top=(), budget=None))
    assert "no spend" in empty
    assert render_spend_chart(chart(series=(), top=(), budget=None)).startswith(b"\x89PNG")


def test_the_quota_bar_shows_each_period_used_with_alt_text():
    bars = (
        QuotaBar("Your daily budget", 40_000, 500_000, "$0.04 of $0.50"),
        QuotaBar("Your daily images", 1, 10, "1 of 10 images"),
    )
    png = render_quota_bars(bars)
    image = Image.open(io.BytesIO(png))
    assert image.size == (QUOTA_SIZE[0], QUOTA_SIZE[1] * 2)
    fuller = (QuotaBar("Your daily budget", 450_000, 500_000, "$0.45 of $0.50"), bars[1])
    assert pixels(render_quota_bars(fuller)).tobytes() != pixels(png).tobytes()
    text = quota_alt_text(bars)
    assert "Your daily budget: $0.04 of $0.50 used (8%)" in text
    assert "Your daily images: 1 of 10 images used (10%)" in text
    over = quota_alt_text((QuotaBar("Server daily budget", 700, 0, "$0.00 of $0.00"),))
    assert "(100%)" in over  # a zero limit is full, never a division by zero
