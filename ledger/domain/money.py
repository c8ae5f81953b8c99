"""Commission arithmetic, exact: rational pools, floors only where SPEC §3 puts them."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

BPS = 10_000


@dataclass(frozen=True, slots=True)
class Split:
    """One order's commission: the platform fee and each present level's share, in minor
    units. The merchant is charged their sum; the rounding residue stays with it."""

    fee: int
    levels: tuple[int, ...]

    @property
    def merchant_charge(self) -> int:
        return self.fee + sum(self.levels)

    def minus(self, other: Split) -> Split:
        """Per-party difference self − other (same number of levels)."""
        return Split(
            self.fee - other.fee,
            tuple(a - b for a, b in zip(self.levels, other.levels, strict=True)),
        )


def pool(lines: list[tuple[int, int]]) -> Fraction:
    """Σ amount × rate / 10000 over (amount, rate_bps) lines, exactly."""
    return Fraction(sum(amount * rate for amount, rate in lines), BPS)


def split_lines(lines: list[tuple[int, int]], fee_bps: int, shares_bps: tuple[int, ...]) -> Split:
    """``split(pool(lines), …)`` in integers: every term shares the denominator 10⁴ (pool),
    10⁸ (fee) or 10¹² (levels), so one floor division each gives the same exact floors
    without building Fractions on the hot path. A property test checks both agree."""
    scaled_pool = sum(amount * rate for amount, rate in lines)  # pool × 10⁴
    fee = scaled_pool * fee_bps // BPS**2
    net = scaled_pool * (BPS - fee_bps)  # pool × (10⁴ − fee) × 10⁴, so level = net·share/10¹²
    return Split(fee, tuple(net * share // BPS**3 for share in shares_bps))


def split(pool_amount: Fraction, fee_bps: int, shares_bps: tuple[int, ...]) -> Split:
    """SPEC §3: fee = ⌊pool·fee/10⁴⌋, level_k = ⌊pool·(10⁴−fee)/10⁴·share_k/10⁴⌋.

    ``shares_bps`` holds the shares of the levels that exist (1 to 3 of them): a missing
    level is simply not computed, so it is never charged to the merchant.
    """
    fee = (pool_amount * fee_bps) // BPS
    net = pool_amount * (BPS - fee_bps) / BPS
    return Split(int(fee), tuple(int(net * share // BPS) for share in shares_bps))


def zero_split(levels: int) -> Split:
    return Split(0, (0,) * levels)
