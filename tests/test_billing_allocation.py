"""The cost allocation's arithmetic (registry/billing): parts add up to each item to the yen,
nothing negative, a provider's discount never raises its part, the stated remainder rule, shares
proportional to population within a yen, floors and caps kept, and rule files refused with the
key path of each mistake."""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.errors import InvalidRequest
from registry.billing.allocate import ROUNDING_RULE, bounded_shares, largest_remainder
from registry.billing.rules import CostItem, Discount, parse_rules
from registry.billing.statements import allocate_item, compute

PIDS = [f"28{i:04d}" for i in range(1, 40)]

participants = st.lists(st.sampled_from(PIDS), min_size=1, max_size=12, unique=True)
amounts = st.integers(min_value=0, max_value=10**10)
figure = st.integers(min_value=0, max_value=10**9)


def _figures(pids, values):
    return {p: {"records_provided": v[0], "records_received": v[1]}
            for p, v in zip(pids, values, strict=True)}


@st.composite
def scenarios(draw):
    pids = draw(participants)
    values = draw(st.lists(st.tuples(figure, figure), min_size=len(pids), max_size=len(pids)))
    method = draw(st.sampled_from(["equal", "population", "usage"]))
    n = len(pids)
    floor_ = draw(st.sampled_from([Fraction(0), Fraction(1, 100), Fraction(1, 20)]))
    if floor_ * n > 1:
        floor_ = Fraction(0)
    cap = draw(st.sampled_from([None, Fraction(1, 2), Fraction(3, 10), Fraction(1)]))
    if cap is not None and cap * n < 1:
        cap = None
    discount = draw(st.sampled_from([
        None, Discount("records_provided", Fraction(3, 10), None, Fraction(1), None),
        Discount("records_provided", Fraction(1), None, Fraction(1, 2), 5000),
        Discount("records_provided", None, Fraction(1, 2), Fraction(1), None)]))
    item = CostItem("x", "x", "fixed", draw(amounts), method,
                    "records_received" if method == "usage" else None, floor_, cap, discount)
    population = {p: draw(st.integers(min_value=0, max_value=4_000_000)) for p in pids}
    return item, pids, _figures(pids, values), population


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_parts_add_up_exactly_never_negative_and_caps_hold(case):
    item, pids, figures, population = case
    lines = allocate_item(item, pids, figures, population)
    assert sum(ln.amount for ln in lines) == item.amount
    assert sum(ln.base for ln in lines) == item.amount
    assert sum(ln.credit for ln in lines) == sum(ln.redistributed for ln in lines)
    for ln in lines:
        assert ln.amount >= 0 and ln.base >= 0 and ln.credit >= 0 and ln.redistributed >= 0
        assert ln.base >= floor(item.floor * item.amount)
        if item.cap is not None:
            assert ln.base <= ceil(item.cap * item.amount)
            assert ln.amount <= ceil(item.cap * item.amount)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_a_provider_discount_never_raises_the_providers_part(case):
    item, pids, figures, population = case
    if item.discount is None:
        item = CostItem(**{**item.__dict__, "discount": Discount(
            "records_provided", Fraction(3, 10), None, Fraction(1), None)})
    with_discount = {ln.participant: ln for ln in allocate_item(item, pids, figures, population)}
    without = {ln.participant: ln for ln in allocate_item(
        CostItem(**{**item.__dict__, "discount": None}), pids, figures, population)}
    for pid, ln in with_discount.items():
        assert ln.base == without[pid].amount
        if ln.credit > 0:
            assert ln.amount <= without[pid].amount
            assert ln.redistributed <= ln.credit


@settings(max_examples=200, deadline=None)
@given(amounts, st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=20))
def test_population_weighting_is_proportional_within_a_yen(total, pops):
    pids = PIDS[:len(pops)]
    item = CostItem("p", "p", "fixed", total, "population")
    lines = allocate_item(item, pids, {}, dict(zip(pids, pops, strict=True)))
    whole = sum(pops)
    for ln, pop in zip(lines, pops, strict=True):
        exact = Fraction(total, len(pops)) if whole == 0 else Fraction(total * pop, whole)
        assert abs(ln.amount - exact) < 1


def test_ten_thousand_yen_among_three_follows_the_stated_rule():
    item = CostItem("e", "等分", "fixed", 10_000, "equal")
    lines = allocate_item(item, ["283819", "282014", "282103"], {})
    assert {ln.participant: ln.amount for ln in lines} == {
        "282014": 3334, "282103": 3333, "283819": 3333}        # the extra yen: lowest id
    assert "参加者IDの昇順" in ROUNDING_RULE["ja"] and "ascending order of participant id" \
        in ROUNDING_RULE["en"]
    # largest remainder before ids: 3 yen of fractions .6, .6, .8 → the .8 first, then by id
    parts = largest_remainder(10, {"c": Fraction(26, 10), "b": Fraction(36, 10),
                                   "a": Fraction(38, 10)})
    assert parts == {"a": 4, "b": 4, "c": 2}


def test_caps_spill_to_the_others_and_floors_lift_the_small():
    exact = bounded_shares(1000, {"a": 98, "b": 1, "c": 1}, {p: Fraction(100) for p in "abc"},
                           {p: Fraction(500) for p in "abc"})
    assert exact == {"a": 500, "b": 250, "c": 250}
    nobody = bounded_shares(1000, {"a": 0, "b": 0}, None, None)
    assert nobody == {"a": 500, "b": 500}                       # no figures: equal
    only_one = bounded_shares(900, {"a": 5, "b": 0, "c": 0}, None,
                              {p: Fraction(400) for p in "abc"})
    assert only_one == {"a": 400, "b": 250, "c": 250}            # the rest split equally


def test_the_largest_provider_gets_the_full_rate_and_others_pay_for_it():
    item = CostItem("f", "共用費", "fixed", 900_000, "equal", discount=Discount(
        "records_provided", Fraction(3, 10), None, Fraction(1), None))
    figures = {"282014": {"records_provided": 1000}, "282103": {"records_provided": 500}}
    lines = {ln.participant: ln for ln in allocate_item(
        item, ["282014", "282103", "283819"], figures)}
    assert lines["282014"].credit == 90_000 and lines["282103"].credit == 45_000
    assert sum(ln.amount for ln in lines.values()) == 900_000
    assert lines["282014"].amount < 300_000 and lines["282103"].amount < 300_000
    assert lines["283819"].amount > 300_000


RULES = b"""
title: test
participants: ["282014", "282103"]
population: {values: {"282014": 530495, "282103": 260878}}
items:
  - {id: fixed, name: F, kind: fixed, amount: 1000, method: population}
  - {id: var, name: V, kind: variable, amount: 999, method: usage, basis: api_calls}
"""


def test_compute_statements_and_totals():
    rules = parse_rules(RULES)
    run = compute(rules, "2026-11", ["282014", "282103"], {"282014": "姫路市"},
                  {"282103": {"api_calls": 3}})
    by = {s["participant"]: s for s in run["statements"]}
    assert by["282014"]["fixed"] + by["282103"]["fixed"] == 1000
    assert by["282103"]["variable"] == 999 and by["282014"]["variable"] == 0
    assert run["totals"] == {"amount": 1999, "fixed": 1000, "variable": 999, "credit": 0,
                             "participants": 2}
    assert run["rules_digest"].startswith("sha256:")
    with pytest.raises(InvalidRequest) as err:
        compute(parse_rules(RULES + b"period: 2026-10\n"), "2026-11", ["282014"], {}, {})
    assert err.value.details["errors"][0]["field"] == "period"
    with pytest.raises(InvalidRequest) as err:
        compute(rules, "2026-11", ["282014", "283819"], {}, {})
    assert err.value.details["errors"][0]["field"] == "population"
    assert "283819" in err.value.message and "283819" in err.value.message_ja


@pytest.mark.parametrize("text, paths", [
    (b"title: t\nparticipants: certified\nitems:\n  - {id: a, name: A, kind: fix, amount: 1, "
     b"method: equal}\n", ["items[0].kind"]),
    (b"title: t\nparticipants: certified\nitems:\n  - {id: a, name: A, kind: fixed, amount: 1.5, "
     b"method: equal}\n  - {id: a, name: B, kind: fixed, amount: 2, method: usage, basis: hits}\n",
     ["items[0].amount", "items[1].id", "items[1].basis"]),
    (b"title: t\nparticipants: [\"12\"]\nitems:\n  - {id: a, name: A, kind: fixed, amount: 1, "
     b"method: equal, cap: 2, discount: {rate: 0.5, per_unit: 1}}\n",
     ["participants[0]", "items[0].cap", "items[0].discount"]),
    (b"title: t\nparticipants: certified\nitems:\n  - {id: a, name: A, kind: fixed, amount: 1, "
     b"method: population}\n", ["population"]),
    (b"title: t\nparticipants: all\nitemz: []\n", ["itemz", "participants", "items"]),
    (b"- just a list\n", [""]),
])
def test_bad_rule_files_name_the_key_path(text, paths):
    with pytest.raises(InvalidRequest) as err:
        parse_rules(text)
    exc = err.value
    assert exc.code == "invalid_billing_rules"
    assert sorted(e["field"] for e in exc.details["errors"]) == sorted(paths)
    for e in exc.details["errors"]:
        assert e["message"] and e["message_ja"]
        assert e["field"] in exc.message and e["field"] in exc.message_ja


def test_builtin_population_table_cites_its_source():
    rules = parse_rules(b"title: t\nparticipants: certified\npopulation: {builtin: "
                        b"hyogo-2020-census}\nitems:\n  - {id: a, name: A, kind: fixed, "
                        b"amount: 1, method: population}\n")
    assert rules.population.values["282014"] == 530495          # 姫路市, 令和2年国勢調査
    assert rules.population.values["283819"] == 30268           # 稲美町
    assert "令和2年国勢調査" in rules.population.source
    assert "Partial" in rules.population.source


def test_example_rule_files_parse_and_cite_the_seeds():
    from pathlib import Path

    from registry.billing.rules import load_rule_file

    files = sorted((Path(__file__).resolve().parents[1] / "examples" / "billing").glob("*.yaml"))
    assert len(files) >= 4
    methods = set()
    for path in files:
        rules = load_rule_file(path)
        for item in rules.items:
            methods.add(item.method)
            assert "seed 002 §4-1" in item.cite or "appendix" in item.cite, (path, item.id)
    assert methods == {"equal", "population", "usage"}
