"""How a model is priced: per image (FLUX.1), per megapixel (FLUX.2), per tier (FLUX 3), per second (video).

Money is integer micro-dollars (see :mod:`bot.billing.money`); megapixels are *decimal* (10⁶ pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from bot.billing.money import format_usd
from bot.models.options import FLUX3_DEFAULT_RESOLUTION, PIXELS_PER_MEGAPIXEL


def _ceil_megapixels(pixels: int) -> int:
    """Whole decimal megapixels, rounded up (an upper bound), at least 1."""
    return max(1, -(-pixels // PIXELS_PER_MEGAPIXEL))  # integer ceiling, no floats near money


@dataclass(frozen=True)
class FlatPrice:
    """A flat price per image, whatever its size (the FLUX.1 family)."""

    micros: int
    strategy: ClassVar[str] = "flat"

    def estimate_micros(
        self, pixels: int, inputs: Sequence[int] = (), resolution: str | None = None, seconds: int | None = None
    ) -> int:
        """The price of one image of ``pixels`` pixels (neither the size nor the inputs matter)."""
        return self.micros

    def describe(self) -> str:
        """The price for people, e.g. ``$0.04/image``."""
        return f"{format_usd(self.micros)}/image"


@dataclass(frozen=True)
class MegapixelPrice:
    """FLUX.2 pricing: the first megapixel costs ``first_mp_micros``, each further one ``extra_mp_micros``.

    BFL bills fractional megapixels in ways its docs do not pin down (an observed ``flux-2-pro`` task of
    1.98 MP cost 4.5 credits, i.e. 2 MP). To keep a budget reservation an *upper bound*, output megapixels
    are rounded **up** to whole decimal megapixels: 1.0 MP → 1, 1.01 MP → 2. The settled amount comes
    from the submit response's ``cost`` anyway.
    """

    first_mp_micros: int
    extra_mp_micros: int
    strategy: ClassVar[str] = "megapixel"

    def estimate_micros(
        self, pixels: int, inputs: Sequence[int] = (), resolution: str | None = None, seconds: int | None = None
    ) -> int:
        """Upper-bound price of one output of ``pixels`` pixels from input images of ``inputs`` pixels.

        An edit bills its inputs too (bfl-api.md §00.8: a 1 MP-in, 1 MP-out ``flux-2-pro`` edit costs
        about $0.045 = first MP + one extra MP): each input is rounded up to whole megapixels on its own
        and billed at the extra-megapixel rate.
        """
        megapixels = _ceil_megapixels(pixels) + sum(_ceil_megapixels(p) for p in inputs)
        return self.first_mp_micros + (megapixels - 1) * self.extra_mp_micros

    def describe(self) -> str:
        """The price for people, e.g. ``from $0.03 (+$0.015/extra MP)``."""
        return f"from {format_usd(self.first_mp_micros)} (+{format_usd(self.extra_mp_micros)}/extra MP)"


@dataclass(frozen=True)
class TierPrice:
    """FLUX 3 pricing: one price per resolution tier, whatever the aspect ratio.

    BFL publishes 1k, 2k and 4k (secondary sources); a tier without a published price takes the next
    published one above it, so an estimate stays an upper bound. The ledger settles with the ``cost`` BFL
    reports anyway.
    """

    tiers: tuple[tuple[str, int], ...]
    strategy: ClassVar[str] = "resolution"

    def estimate_micros(
        self, pixels: int, inputs: Sequence[int] = (), resolution: str | None = None, seconds: int | None = None
    ) -> int:
        """The price of the ``resolution`` tier (the default tier when ``None``)."""
        prices = dict(self.tiers)
        return prices[resolution or FLUX3_DEFAULT_RESOLUTION]

    def describe(self) -> str:
        """The price for people, e.g. ``$0.048 (1k) to $0.607 (4k)``."""
        low, high = self.tiers[0], self.tiers[-1]
        default = dict(self.tiers)[FLUX3_DEFAULT_RESOLUTION]
        return f"{format_usd(default)} at 1k ({format_usd(low[1])}–{format_usd(high[1])} by resolution)"


@dataclass(frozen=True)
class UpperBoundPrice(MegapixelPrice):
    """A route BFL publishes no price for (FLUX Tools deblur, outpainting): a documented, conservative upper bound.

    Charged like FLUX.2 (per megapixel of the output and of the input, each rounded up), at rates chosen at or
    above every related list price, so the reservation holds whatever BFL charges; the ledger settles with the
    ``cost`` BFL reports, and a settlement above the estimate is flagged as for any model
    (:mod:`bot.engine.effects`). The table entry says why its rates are a bound. ``input_mp_micros``: the rate of
    each input megapixel when it differs from the output's extra rate (None: the same).
    """

    input_mp_micros: int | None = None
    strategy: ClassVar[str] = "upper bound"

    def estimate_micros(
        self, pixels: int, inputs: Sequence[int] = (), resolution: str | None = None, seconds: int | None = None
    ) -> int:
        """The bound of one output of ``pixels`` pixels from inputs of ``inputs`` pixels (each rounded up)."""
        if self.input_mp_micros is None:
            return super().estimate_micros(pixels, inputs, resolution)
        output = self.first_mp_micros + (_ceil_megapixels(pixels) - 1) * self.extra_mp_micros
        return output + sum(_ceil_megapixels(p) for p in inputs) * self.input_mp_micros

    def describe(self) -> str:
        """The bound for people, e.g. ``at most $0.03 (+$0.015/extra MP of output and input; no list price)``."""
        first, extra = format_usd(self.first_mp_micros), format_usd(self.extra_mp_micros)
        if self.input_mp_micros is None:
            return f"at most {first} (+{extra}/extra MP of output and input; no list price)"
        per_input = format_usd(self.input_mp_micros)
        if self.first_mp_micros == self.extra_mp_micros:
            return f"at most {first}/MP of output (+{per_input}/MP of input; no list price)"
        return f"at most {first} (+{extra}/extra MP of output, +{per_input}/MP of input; no list price)"


@dataclass(frozen=True)
class SecondPrice:
    """FLUX 3 video: a price per second of output, by quality (BFL's ``resolution``); the still is not billed.

    ``rates`` are micro-dollars per second for each quality offered. A request always names its length (whole
    seconds; ``auto`` is never sent), so the estimate is exact at list price; the ledger settles with BFL's
    ``cost`` anyway (a ``Content Moderated`` video is still charged).
    """

    rates: tuple[tuple[str, int], ...]
    default_seconds: int
    strategy: ClassVar[str] = "per second"

    def estimate_micros(
        self, pixels: int, inputs: Sequence[int] = (), resolution: str | None = None, seconds: int | None = None
    ) -> int:
        """``seconds`` (the default length when None) at the ``resolution``'s rate (the first quality when None)."""
        rates = dict(self.rates)
        return rates[resolution or self.rates[0][0]] * (seconds or self.default_seconds)

    def describe(self) -> str:
        """The price for people, e.g. ``$0.17/s (hd), $0.29/s (fhd)``."""
        return ", ".join(f"{format_usd(micros)}/s ({quality})" for quality, micros in self.rates)


Price = FlatPrice | MegapixelPrice | TierPrice | UpperBoundPrice | SecondPrice
