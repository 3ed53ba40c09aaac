"""Exact apportionment in whole yen: proportional shares within bounds, the largest-remainder
rounding, and the provider discount (DESIGN §9; seed 002 §4-1, appendix (4-1), (4-2)).

Everything is computed in exact fractions (``fractions.Fraction``) and rounded once:

- ``bounded_shares``: shares proportional to the weights, each clamped to its bounds
  (``x_i = clamp(λ·w_i, lo_i, hi_i)`` with the one λ that makes them add up to the total). When
  the participants with a weight cannot carry the total within their upper bounds, the rest is
  split equally among the others, within theirs. When no participant has any weight, the total
  is split equally.
- ``largest_remainder`` (ROUNDING_RULE): every exact share is cut down to the yen, and the yen
  left over go one each to the largest cut-off fractions; equal fractions go in ascending order
  of participant id. The parts add up to the total exactly, a part is never below the exact
  share's floor nor above its ceiling, so a bound in whole yen is never broken.
- ``discounted``: the providers' credits (whole yen, each at most the provider's part) are paid
  by the participants without a credit, in proportion to their parts of the item and within
  the item's cap. What they cannot carry (nobody is left, or all are at the cap) falls back on
  the providers, in proportion to what each pays after its credit, a provider getting back at
  most its own credit. So no provider ever pays more than without the discount, and the item's
  cost is still covered to the yen.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from math import ceil, floor

ROUNDING_RULE = {
    "ja": "端数処理（最大剰余法）: 各参加者の按分額の1円未満を切り捨て、残った円を、切り捨てた端数の"
          "大きい参加者から順に1円ずつ配分する。端数が等しい場合は参加者IDの昇順とする。"
          "各費目の按分額の合計は費目の金額と常に一致する。",
    "en": "Rounding (largest remainder): each participant's exact share is cut down to the yen; "
          "the yen left over go one each to the participants with the largest cut-off "
          "fractions, equal fractions in ascending order of participant id. Each item's parts "
          "always add up to its amount.",
}

Number = int | Fraction


def largest_remainder(total: int, exact: Mapping[str, Fraction]) -> dict[str, int]:
    """Whole-yen parts of exact shares that add up to ``total`` (see ROUNDING_RULE)."""
    if sum(exact.values(), Fraction(0)) != total:
        raise ValueError("exact shares must add up to the total")
    parts = {pid: floor(x) for pid, x in exact.items()}
    left = total - sum(parts.values())
    order = sorted(exact, key=lambda pid: (-(exact[pid] - parts[pid]), pid))
    for pid in order[:left]:
        parts[pid] += 1
    return parts


def _clamp(x: Fraction, lo: Fraction, hi: Fraction | None) -> Fraction:
    x = max(x, lo)
    return x if hi is None else min(x, hi)


def _water_fill(total: Fraction, weights: Mapping[str, Fraction], lo: Mapping[str, Fraction],
                hi: Mapping[str, Fraction | None]) -> dict[str, Fraction]:
    """``clamp(λ·w_i, lo_i, hi_i)`` for the smallest λ whose sum reaches ``total`` (or the
    largest sum there is, when even λ → ∞ falls short)."""
    def at(lam: Fraction) -> dict[str, Fraction]:
        return {p: _clamp(lam * weights[p], lo[p], hi[p]) for p in weights}

    points = sorted({Fraction(0)} | {lo[p] / w for p, w in weights.items() if w > 0}
                    | {hi[p] / w for p, w in weights.items() if w > 0 and hi[p] is not None})
    prev = Fraction(0)
    for lam in points:
        if sum(at(lam).values()) >= total:
            break
        prev = lam
    else:
        slope = sum((w for p, w in weights.items() if w > 0 and hi[p] is None), Fraction(0))
        if slope == 0:
            return at(prev)
        lam = prev + (total - sum(at(prev).values())) / slope
        return at(lam)
    base = at(prev)
    slope = sum((w for p, w in weights.items()
                 if w > 0 and lo[p] <= prev * w and (hi[p] is None or prev * w < hi[p])),
                Fraction(0))
    if slope == 0:
        return base
    return at(prev + (total - sum(base.values())) / slope)


def bounded_shares(total: int, weights: Mapping[str, Number],
                   lo: Mapping[str, Fraction] | None = None,
                   hi: Mapping[str, Fraction | None] | None = None) -> dict[str, Fraction]:
    """Exact shares of ``total`` proportional to ``weights`` within ``[lo, hi]`` (module doc).
    Raises ValueError when the bounds cannot hold the total (Σlo > total or Σhi < total)."""
    pids = sorted(weights)
    w = {p: Fraction(weights[p]) for p in pids}
    low = {p: Fraction((lo or {}).get(p, 0)) for p in pids}
    high = {p: (None if (hi or {}).get(p) is None else Fraction(hi[p])) for p in pids}  # type: ignore[index]
    if any(v < 0 for v in w.values()) or total < 0:
        raise ValueError("weights and the total must not be negative")
    if sum(low.values(), Fraction(0)) > total or (
            all(h is not None for h in high.values())
            and sum(high.values(), Fraction(0)) < total):  # type: ignore[arg-type]
        raise ValueError("the bounds cannot hold the total")
    if not pids:
        if total:
            raise ValueError("nobody to share a non-zero total")
        return {}
    if all(v == 0 for v in w.values()):
        w = {p: Fraction(1) for p in pids}
    x = _water_fill(Fraction(total), w, low, high)
    rest = total - sum(x.values(), Fraction(0))
    if rest > 0:                                  # weighted ones are all at their upper bound
        room = {p: (None if high[p] is None else high[p] - x[p]) for p in pids}
        open_ = {p: Fraction(1) for p in pids if room[p] is None or room[p] > 0}
        extra = _water_fill(rest, open_, {p: Fraction(0) for p in open_},
                            {p: room[p] for p in open_})
        x = {p: x[p] + extra.get(p, Fraction(0)) for p in pids}
    assert sum(x.values(), Fraction(0)) == total
    return x


def discounted(base: Mapping[str, int], credits: Mapping[str, int],
               upper: Mapping[str, int | None] | None = None) -> dict[str, int]:
    """What each pays of an item once the providers' ``credits`` are granted (module doc).

    ``base``: the whole-yen parts without the discount; ``credits``: whole yen, each at most
    the participant's base part; ``upper``: a participant's largest part in yen (the item's
    cap), or None. Returns the redistributed yen per participant (``paid = base - credit +
    redistributed``); a provider's redistributed yen never exceed its credit."""
    for pid, c in credits.items():
        if not 0 <= c <= base[pid]:
            raise ValueError(f"credit of {pid} must be between 0 and its part")
    pool = sum(credits.values())
    if pool == 0:
        return {pid: 0 for pid in base}
    after = {pid: base[pid] - credits.get(pid, 0) for pid in base}
    others = [pid for pid in sorted(base) if credits.get(pid, 0) == 0]
    exact = {pid: Fraction(0) for pid in base}
    if others:                      # first those without a credit, in proportion to their parts
        room = {pid: (None if (upper or {}).get(pid) is None
                      else Fraction(max(upper[pid] - base[pid], 0)))  # type: ignore[index, operator]
                for pid in others}
        exact.update(_water_fill(Fraction(pool), {pid: Fraction(base[pid]) for pid in others},
                                 {pid: Fraction(0) for pid in others}, room))
    rest = pool - sum(exact.values(), Fraction(0))
    if rest > 0:                    # then the providers, each at most its own credit back
        providers = {pid: after[pid] for pid in base if credits.get(pid, 0) > 0}
        back = bounded_shares(rest, providers, None,  # type: ignore[arg-type]
                              {pid: Fraction(credits[pid]) for pid in providers})
        for pid, x in back.items():
            exact[pid] += x
    return largest_remainder(pool, exact)


def cap_in_yen(fraction: Fraction | None, total: int) -> int | None:
    """An item's cap (a fraction of its amount) as whole yen: the ceiling, which is what the
    largest-remainder rounding can reach."""
    return None if fraction is None else ceil(fraction * total)
