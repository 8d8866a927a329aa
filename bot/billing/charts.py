"""The report and quota charts, drawn with matplotlib's Agg backend: data in, PNG bytes out.

Pure and blocking (the cogs call them through :func:`asyncio.to_thread`, off the event loop). They use
matplotlib's object API (a :class:`~matplotlib.figure.Figure` per chart, never ``pyplot``'s global
state), so charts drawn in several threads at once do not meet. matplotlib is imported on the first
chart, not when the bot starts.

Readable in Discord's dark and light themes alike: each chart is an opaque light card with a grey
border (its own background, so its colours never depend on the theme), dark text, and the Okabe–Ito
colour-blind-safe palette. Every chart comes with alt text that states its numbers
(:func:`spend_alt_text`, :func:`quota_alt_text`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.billing.money import format_usd
from bot.text import strip_bidi

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SPEND_SIZE = (1200, 600)  # pixels
QUOTA_SIZE = (600, 56)  # pixels per bar
DPI = 100
TOP_MEMBERS = 10
MAX_SERIES = 7  # named groups in the stack; the rest share one grey "other"
ALT_TEXT_MAX = 1024  # Discord's limit on an attachment's description

CARD = "#f5f6f8"
CARD_RGB = (0xF5, 0xF6, 0xF8)
BORDER = "#80848e"
INK = "#1e1f22"
GRID = "#d4d7dc"
BUDGET = "#e0115f"  # the budget line: a colour no bar uses
BUDGET_RGB = (0xE0, 0x11, 0x5F)
MEMBERS = "#5865f2"
OTHER = "#9aa0a6"
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#56b4e9", "#d55e00", "#cc79a7", "#3d3d3d")
TRACK = "#dfe1e5"
FILL_OK, FILL_HIGH, FILL_FULL = "#009e73", "#e69f00", "#d55e00"
LABEL_MAX = 24


@dataclass(frozen=True)
class SpendChart:
    """What ``/budget report`` draws: daily spend stacked by group, the budget line, the top members."""

    title: str  # "Spend this month (2026-11)"
    group_word: str  # "model", "channel" or "role": what the stack is split by
    days: tuple[str, ...]  # one x label per day of the period
    series: tuple[tuple[str, tuple[int, ...]], ...]  # (group, micro-dollars per day)
    budget: tuple[str, int] | None  # (label, micro-dollars per day), or no budget line
    top: tuple[tuple[str, int], ...]  # (member, micro-dollars), biggest first; the first TOP_MEMBERS drawn


@dataclass(frozen=True)
class QuotaBar:
    """One period's limit on ``/quota``: how much of it is used."""

    label: str  # "Your daily budget"
    used: int
    allowance: int
    text: str  # "$0.04 of $0.50" / "1 of 10 images"

    @property
    def percent(self) -> int:
        """The share used, 0-100 (a zero allowance counts as full)."""
        if self.allowance <= 0:
            return 100
        return min(100, max(0, self.used * 100 // self.allowance))


def render_spend_chart(chart: SpendChart) -> bytes:
    """The report chart as a PNG of :data:`SPEND_SIZE` pixels."""
    figure = _figure(SPEND_SIZE)
    daily, members = figure.subplots(1, 2, gridspec_kw={"width_ratios": (2.3, 1)})
    _draw_daily(daily, chart)
    _draw_members(members, chart.top[:TOP_MEMBERS])
    figure.suptitle(_plain(chart.title), color=INK, fontsize=15, fontweight="bold")
    return _png(figure)


def render_quota_bars(bars: Sequence[QuotaBar]) -> bytes:
    """``/quota``'s chart: one horizontal bar per limit, filled by its share used."""
    width, height = QUOTA_SIZE
    figure = _figure((width, height * len(bars)))
    axes = figure.subplots()
    rows = list(range(len(bars)))[::-1]  # the first bar on top
    shares = [bar.percent for bar in bars]
    axes.barh(rows, [100] * len(bars), color=TRACK, height=0.55)
    axes.barh(rows, shares, color=[_fill(share) for share in shares], height=0.55)
    axes.set_yticks(rows, [_plain(bar.label) for bar in bars], color=INK, fontsize=10)
    for row, bar in zip(rows, bars, strict=True):
        axes.text(101, row, _plain(f"{bar.text} ({bar.percent}%)"), va="center", color=INK, fontsize=9)
    axes.set_xlim(0, 150)
    axes.set_xticks([])
    axes.tick_params(left=False)
    axes.set_facecolor(CARD)
    for side in axes.spines.values():
        side.set_visible(False)
    return _png(figure)


def spend_alt_text(chart: SpendChart) -> str:
    """The report chart in words (its alt text), at most :data:`ALT_TEXT_MAX` characters."""
    series = _folded(chart.series)
    totals = [(name, sum(values)) for name, values in series]
    total = sum(micros for _, micros in totals)
    title = chart.title[:1].lower() + chart.title[1:]
    head = f"Bar chart of this server's spend per day, {title}, by {chart.group_word}"
    if total == 0:
        parts = [f"{head}: no spend in this period."]
    else:
        groups = ", ".join(f"{name} {format_usd(micros)}" for name, micros in totals)
        daily = [sum(values[day] for _, values in series) for day in range(len(chart.days))]
        busiest = max(range(len(daily)), key=lambda day: daily[day])
        parts = [
            f"{head}: {groups} (total {format_usd(total)}).",
            f"Busiest day: {chart.days[busiest]} ({format_usd(daily[busiest])}).",
        ]
    if chart.budget is not None:
        parts.append(f"Red line: {chart.budget[0]}.")
    if chart.top:
        top = ", ".join(f"{name} {format_usd(micros)}" for name, micros in chart.top[:TOP_MEMBERS])
        parts.append(f"Top members: {top}.")
    return _cut(" ".join(parts))


def quota_alt_text(bars: Sequence[QuotaBar]) -> str:
    """The quota chart in words (its alt text)."""
    lines = "; ".join(f"{bar.label}: {bar.text} used ({bar.percent}%)" for bar in bars)
    return _cut(f"Bar chart of your limits used this period: {lines}.")


def _draw_daily(axes: Axes, chart: SpendChart) -> None:
    """The stacked daily bars, the budget line, and a legend."""
    from matplotlib.ticker import FuncFormatter

    positions = list(range(len(chart.days)))
    bottom = [0.0] * len(chart.days)
    for index, (name, values) in enumerate(_folded(chart.series)):
        heights = [micros / 1_000_000 for micros in values]
        colour = OTHER if name == "other" and index == MAX_SERIES else PALETTE[index % len(PALETTE)]
        axes.bar(positions, heights, bottom=bottom, color=colour, label=_plain(name, LABEL_MAX), width=0.8)
        bottom = [low + high for low, high in zip(bottom, heights, strict=True)]
    if chart.budget is not None:
        label, micros = chart.budget
        axes.axhline(micros / 1_000_000, color=BUDGET, linewidth=3, label=_plain(label), zorder=3)
    top = max([*bottom, (chart.budget[1] / 1_000_000) if chart.budget else 0.0, 0.01])
    axes.set_ylim(0, top * 1.2)
    axes.set_xlim(-0.6, len(chart.days) - 0.4)
    step = max(1, len(chart.days) // 16)
    axes.set_xticks(positions[::step], [_plain(day) for day in chart.days[::step]])
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"\\${value:,.2f}"))
    _style(axes, f"Daily spend by {chart.group_word}")
    if not chart.series and chart.budget is None:
        axes.text(0.5, 0.5, "No spend in this period", transform=axes.transAxes, ha="center", color=INK)
    elif axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper left", fontsize=9, facecolor=CARD, edgecolor=GRID, labelcolor=INK, ncols=2)


def _draw_members(axes: Axes, top: Sequence[tuple[str, int]]) -> None:
    """The top members' spend, biggest on top."""
    rows = [TOP_MEMBERS - 1 - n for n in range(len(top))]  # ten slots, the biggest on top: bars keep one width
    dollars = [micros / 1_000_000 for _, micros in top]
    axes.barh(rows, dollars, color=MEMBERS, height=0.6)
    axes.set_yticks(rows, [_plain(name, LABEL_MAX) for name, _ in top])
    for row, (_, micros) in zip(rows, top, strict=True):
        axes.text(micros / 1_000_000, row, " " + _plain(format_usd(micros)), va="center", color=INK, fontsize=8)
    axes.set_xlim(0, max([*dollars, 0.01]) * 1.35)
    axes.set_ylim(-0.6, TOP_MEMBERS - 0.4)
    axes.set_xticks([])
    _style(axes, f"Top {TOP_MEMBERS} members")
    if not top:
        axes.text(0.5, 0.5, "Nobody spent yet", transform=axes.transAxes, ha="center", color=INK)


def _folded(series: Sequence[tuple[str, tuple[int, ...]]]) -> list[tuple[str, tuple[int, ...]]]:
    """The biggest :data:`MAX_SERIES` groups, then the rest summed as "other"."""
    ranked = sorted(series, key=lambda item: -sum(item[1]))
    kept, rest = ranked[:MAX_SERIES], ranked[MAX_SERIES:]
    if rest:
        summed = tuple(sum(day) for day in zip(*(values for _, values in rest), strict=True))
        kept.append(("other", summed))
    return kept


def _style(axes: Axes, title: str) -> None:
    axes.set_facecolor(CARD)
    axes.set_title(title, color=INK, fontsize=11, loc="left")
    axes.tick_params(colors=INK, labelsize=9)
    axes.grid(axis="y", color=GRID, linewidth=0.8)
    axes.set_axisbelow(True)
    for name, side in axes.spines.items():
        side.set_visible(name in ("left", "bottom"))
        side.set_color(BORDER)


def _figure(size: tuple[int, int]) -> Figure:
    """An opaque card of ``size`` pixels with a grey border, laid out by matplotlib's constrained layout."""
    import matplotlib

    matplotlib.use("Agg")  # no display, ever (also the default when none is found)
    from matplotlib.figure import Figure

    width, height = size
    return Figure(
        figsize=(width / DPI, height / DPI),
        dpi=DPI,
        facecolor=CARD,
        edgecolor=BORDER,
        linewidth=2,
        layout="constrained",
    )


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, metadata={"Software": None})  # no version: the same data, same bytes
    return out.getvalue()


def _fill(share: int) -> str:
    return FILL_FULL if share >= 100 else FILL_HIGH if share >= 75 else FILL_OK


def _plain(text: str, limit: int | None = None) -> str:
    """``text`` as matplotlib should print it: no bidi controls, no mathtext (``$`` escaped), cut to ``limit``."""
    text = strip_bidi(text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "/").replace("$", "\\$")


def _cut(text: str) -> str:
    return text if len(text) <= ALT_TEXT_MAX else text[: ALT_TEXT_MAX - 1] + "…"
