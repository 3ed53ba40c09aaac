"""From rules and figures to statements: each participant's part of each cost item, with the
method, the basis figure, the share, the provider credit and the total (seed 002 §4-1;
appendix (4-1) … (4-3)).

An item is apportioned in three steps (registry/billing/allocate.py):
1. exact shares by the item's method, within its floor and cap: equal (weight 1 each),
   population (the population table's figure), usage (the metered figure ``basis``);
2. whole yen by the largest-remainder rule (ROUNDING_RULE);
3. the provider discount, if the item has one: credits by the discount's figure, paid by the
   participants without a credit in proportion to their parts (within the cap); only what
   they cannot carry falls back on the providers, never more than a provider's own credit
   (so a provider never pays more than without its discount).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import floor
from typing import Any

from mesh.errors import InvalidRequest
from registry.billing.allocate import (
    ROUNDING_RULE,
    bounded_shares,
    cap_in_yen,
    discounted,
    largest_remainder,
)
from registry.billing.rules import FIGURES, BillingRules, CostItem, Discount

Figures = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Line:
    """One participant's part of one item."""

    item: str
    participant: str
    basis_value: int          # population, the metered figure, or 1 (equal split)
    share: Fraction           # exact share of the item before the discount (0..1)
    base: int                 # whole yen before the discount
    discount_figure: int      # the figure that earns the credit (0 without a discount)
    credit: int               # yen off for providing data
    redistributed: int        # yen of the providers' credits this participant pays
    amount: int               # base - credit + redistributed

    def to_json(self) -> dict[str, Any]:
        return {"item": self.item, "participant": self.participant,
                "basis_value": self.basis_value, "share": float(self.share),
                "share_exact": f"{self.share.numerator}/{self.share.denominator}",
                "base": self.base, "discount_figure": self.discount_figure,
                "credit": self.credit, "redistributed": self.redistributed, "amount": self.amount}


def rule_error(field: str, en: str, ja: str) -> InvalidRequest:
    """A rule file that the register or the figures of the run make impossible to apply."""
    return InvalidRequest(f"billing rules: {field}: {en}", code="invalid_billing_rules",
                          message_ja=f"費用按分ルール: {field}: {ja}",
                          details={"errors": [{"field": field, "message": en, "message_ja": ja}]})


def allocate_item(item: CostItem, participants: Sequence[str], figures: Figures,
                  population: Mapping[str, int] | None = None) -> list[Line]:
    """Every participant's part of ``item``; the parts add up to ``item.amount``."""
    pids = sorted(participants)
    at = f"items[{item.index}]"
    if not pids:
        raise rule_error("participants", f"nobody takes part, so {at} ({item.id}) cannot be "
                         "shared", f"参加者がいないため {at}（{item.id}）を按分できません")
    n = len(pids)
    if item.floor * n > 1:
        raise rule_error(f"{at}.floor", f"{n} participants at {float(item.floor):g} each pay "
                         "more than the item", f"参加者{n}団体の下限の合計が費目の金額を超えます")
    if item.cap is not None and item.cap * n < 1:
        raise rule_error(f"{at}.cap", f"{n} participants at {float(item.cap):g} each cannot "
                         "cover the item", f"参加者{n}団体の上限の合計が費目の金額に届きません")
    if item.method == "equal":
        basis = {p: 1 for p in pids}
    elif item.method == "population":
        table = population or {}
        missing = [p for p in pids if p not in table]
        if missing:
            raise rule_error("population", f"no figure for {', '.join(missing)} (needed by "
                             f"{at}, {item.id})", f"人口表に {'、'.join(missing)} がありません"
                             f"（{at} の人口比按分に必要です）")
        basis = {p: int(table[p]) for p in pids}
    else:
        assert item.basis in FIGURES
        basis = {p: int(figures.get(p, {}).get(item.basis, 0)) for p in pids}
    amount = item.amount
    lo = {p: item.floor * amount for p in pids}
    hi = {p: (None if item.cap is None else item.cap * amount) for p in pids}
    exact = bounded_shares(amount, basis, lo, hi)
    base = largest_remainder(amount, exact)
    credit_fig = {p: 0 for p in pids}
    credits = {p: 0 for p in pids}
    if item.discount is not None:
        credit_fig = {p: int(figures.get(p, {}).get(item.discount.basis, 0)) for p in pids}
        credits = provider_credits(item.discount, base, credit_fig)
    cap = cap_in_yen(item.cap, amount)
    back = discounted(base, credits, {p: cap for p in pids})
    share = {p: (exact[p] / amount if amount else Fraction(1, n)) for p in pids}
    return [Line(item.id, p, basis[p], share[p], base[p], credit_fig[p], credits[p], back[p],
                 base[p] - credits[p] + back[p]) for p in pids]


def provider_credits(d: Discount, base: Mapping[str, int], figure: Mapping[str, int]
                     ) -> dict[str, int]:
    """Whole yen of credit per participant (rounded down), each at most ``cap_rate`` of its
    part and ``cap_yen``: ``rate`` × part × figure / the largest figure, or ``per_unit`` ×
    figure."""
    top = max(figure.values(), default=0)
    out = {}
    for p, part in base.items():
        f = figure.get(p, 0)
        if f <= 0 or part <= 0:
            out[p] = 0
            continue
        raw = d.rate * part * Fraction(f, top) if d.rate is not None else d.per_unit * f  # type: ignore[operator]
        limit = d.cap_rate * part
        if d.cap_yen is not None:
            limit = min(limit, Fraction(d.cap_yen))
        out[p] = max(0, min(floor(raw), floor(limit), part))
    return out


def select_participants(rules: BillingRules, register: Sequence[Any]) -> list[str]:
    """The ids taking part: every certified participant, every certified prefecture and
    municipality, or the rule file's list (each must be registered and certified)."""
    if rules.participants == "certified":
        return sorted(p.id for p in register if p.status == "certified")
    if rules.participants == "certified_local_governments":
        return sorted(p.id for p in register if p.status == "certified"
                      and p.type in ("prefecture", "municipality"))
    known = {p.id: p for p in register}
    errors = []
    for i, pid in enumerate(rules.participants):
        p = known.get(pid)
        if p is None or p.status != "certified":
            state = "not registered" if p is None else p.status
            errors.append({"field": f"participants[{i}]",
                           "message": f"{pid} is {state}, not a certified participant",
                           "message_ja": f"{pid} は認定済みの参加者ではありません"})
    if errors:
        raise InvalidRequest("billing rules name participants who cannot take part: " +
                             "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                             message_ja="費用按分ルールに参加できない参加者があります: " +
                             "; ".join(f"{e['field']}: {e['message_ja']}" for e in errors),
                             code="invalid_billing_rules", details={"errors": errors})
    return sorted(rules.participants)


def compute(rules: BillingRules, period: str, participants: Sequence[str],
            names: Mapping[str, str], figures: Figures) -> dict[str, Any]:
    """The whole run as JSON: items, statements per participant, totals, the rounding rule."""
    if rules.period is not None and rules.period != period:
        raise rule_error("period", f"the rule file is for {rules.period}, not {period}",
                         f"ルールファイルは {rules.period} 用です（{period} ではありません）")
    population = rules.population.values if rules.population else None
    lines = {item.id: allocate_item(item, participants, figures, population)
             for item in rules.items}
    statements = []
    for pid in sorted(participants):
        own = [ln for item in rules.items for ln in lines[item.id] if ln.participant == pid]
        by_kind = {k: sum(ln.amount for ln, it in zip(own, rules.items, strict=True)
                          if it.kind == k) for k in ("fixed", "variable")}
        statements.append({
            "participant": pid, "name": names.get(pid, ""),
            "figures": {k: int(figures.get(pid, {}).get(k, 0)) for k in FIGURES},
            "lines": [ln.to_json() for ln in own],
            "fixed": by_kind["fixed"], "variable": by_kind["variable"],
            "base": sum(ln.base for ln in own), "credit": sum(ln.credit for ln in own),
            "redistributed": sum(ln.redistributed for ln in own),
            "total": sum(ln.amount for ln in own)})
    total = sum(item.amount for item in rules.items)
    assert sum(s["total"] for s in statements) == total
    return {"period": period, "title": rules.title, "rules_digest": rules.digest,
            "population_source": rules.population.source if rules.population else None,
            "rounding_rule": ROUNDING_RULE,
            "items": [item.to_json() for item in rules.items],
            "statements": statements,
            "totals": {"amount": total,
                       "fixed": sum(i.amount for i in rules.items if i.kind == "fixed"),
                       "variable": sum(i.amount for i in rules.items if i.kind == "variable"),
                       "credit": sum(s["credit"] for s in statements),
                       "participants": len(statements)}}
