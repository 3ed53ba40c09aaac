"""Tests for mesh/policy.py: parsing, every constraint and operator, and evaluation."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from areamesh import demo_catalog
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.policy import (
    DUTY_OPERANDS,
    OPERATORS,
    PERMISSION_OPERANDS,
    ConstraintFailure,
    Decision,
    Policy,
    PolicyContext,
    PolicyError,
    evaluate,
    parse_policy,
    residents_levels_meet,
)

try:  # hypothesis is not a dependency; its tests are skipped without it
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

JST = timezone(timedelta(hours=9))
HIMEJI, KAKOGAWA, AKASHI, INAMI = "282014", "282103", "282031", "283819"  # 兵庫県 (28)
HYOGO, OSAKA_PREF, OSAKA_CITY, CHIYODA = "280003", "270008", "271004", "131016"
COMPANY, OTHER_COMPANY = "9234567890123", "7010001008844"  # valid 法人番号
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=JST)

# The policy of DESIGN §6, with a 法人番号 whose check digit is valid.
FULL = {"permissions": [{"action": "use", "constraints": [
    {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": ["防災", "研究"]},
    {"leftOperand": "consumerType", "operator": "isAnyOf", "rightOperand": ["municipality", "prefecture"]},
    {"leftOperand": "consumerId", "operator": "isNoneOf", "rightOperand": [COMPANY]},
    {"leftOperand": "spatial", "operator": "eq", "rightOperand": "samePrefecture"},
    {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2027-03-31T23:59:59+09:00"},
    {"leftOperand": "transferCount", "operator": "lteq", "rightOperand": 100},
    {"leftOperand": "recordCount", "operator": "lteq", "rightOperand": 1000000},
    {"leftOperand": "identityAssurance", "operator": "gteq", "rightOperand": 2},
    {"leftOperand": "consent", "operator": "eq", "rightOperand": True},
]}], "duties": [
    {"action": "delete",
     "constraints": [{"leftOperand": "elapsedTime", "operator": "eq", "rightOperand": "P90D"}]},
    {"action": "reportUsage"}]}


def ctx(**kw: Any) -> PolicyContext:
    base: dict[str, Any] = {"consumer_id": KAKOGAWA, "consumer_type": "municipality", "purpose": "防災",
                            "provider_id": HIMEJI, "now": NOW, "transfers_so_far": 0, "records_so_far": 0,
                            "records_requested": 10}
    base.update(kw)
    return PolicyContext(**base)


def one(left: str, op: str, right: Any) -> dict[str, Any]:
    return {"permissions": [{"action": "use", "constraints": [
        {"leftOperand": left, "operator": op, "rightOperand": right}]}]}


def check(left: str, op: str, right: Any, **kw: Any) -> Decision:
    return evaluate(parse_policy(one(left, op, right)), ctx(**kw))


def parse_error(doc: Any) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    return info.value


# ---- every leftOperand and operator: pass and fail ----------------------------------------------

CASES = [  # (left, op, right, context, allowed)
    ("mesh", "eq", "osaka", {"consumer_mesh": "osaka", "provider_mesh": "hyogo"}, True),
    ("mesh", "eq", "osaka", {"consumer_mesh": "kyoto", "provider_mesh": "hyogo"}, False),
    ("mesh", "neq", "kyoto", {"consumer_mesh": "osaka", "provider_mesh": "hyogo"}, True),
    ("mesh", "neq", "hyogo", {"consumer_mesh": "", "provider_mesh": "hyogo"}, False),
    ("mesh", "isAnyOf", ["hyogo", "osaka"], {"consumer_mesh": "osaka", "provider_mesh": "hyogo"},
     True),
    ("mesh", "isAnyOf", ["hyogo"], {"consumer_mesh": "osaka", "provider_mesh": "hyogo"}, False),
    ("mesh", "isNoneOf", ["kyoto"], {"consumer_mesh": "hyogo", "provider_mesh": "hyogo"}, True),
    ("mesh", "isNoneOf", ["kyoto"], {"consumer_mesh": "kyoto", "provider_mesh": "hyogo"}, False),
    ("purpose", "eq", "研究", {"purpose": "研究"}, True),
    ("purpose", "eq", "研究", {"purpose": "観光"}, False),
    ("purpose", "neq", "観光", {"purpose": "防災"}, True),
    ("purpose", "neq", "観光", {"purpose": "観光"}, False),
    ("purpose", "isAnyOf", ["防災", "研究"], {"purpose": "研究"}, True),
    ("purpose", "isAnyOf", ["防災", "研究"], {"purpose": "観光"}, False),
    ("purpose", "isNoneOf", ["広告"], {"purpose": "研究"}, True),
    ("purpose", "isNoneOf", ["広告"], {"purpose": "広告"}, False),
    ("purpose", "isAnyOf", ["防災"], {"purpose": None}, False),
    ("purpose", "isNoneOf", ["広告"], {"purpose": None}, False),  # undeclared could be anything
    ("consumerType", "eq", "prefecture", {"consumer_id": HYOGO, "consumer_type": "prefecture"}, True),
    ("consumerType", "eq", "prefecture", {}, False),
    ("consumerType", "neq", "private", {}, True),
    ("consumerType", "neq", "private", {"consumer_id": COMPANY, "consumer_type": "private"}, False),
    ("consumerType", "isAnyOf", ["municipality", "prefecture"], {}, True),
    ("consumerType", "isAnyOf", ["municipality", "prefecture"],
     {"consumer_id": COMPANY, "consumer_type": "private"}, False),
    ("consumerType", "isNoneOf", ["operator"], {}, True),
    ("consumerType", "isNoneOf", ["operator"], {"consumer_id": COMPANY, "consumer_type": "operator"}, False),
    ("consumerId", "eq", KAKOGAWA, {}, True),
    ("consumerId", "eq", AKASHI, {}, False),
    ("consumerId", "neq", COMPANY, {}, True),
    ("consumerId", "neq", KAKOGAWA, {}, False),
    ("consumerId", "isAnyOf", [COMPANY, OTHER_COMPANY], {"consumer_id": OTHER_COMPANY,
                                                         "consumer_type": "private"}, True),
    ("consumerId", "isAnyOf", [COMPANY], {}, False),
    ("consumerId", "isNoneOf", [COMPANY], {}, True),
    ("consumerId", "isNoneOf", [COMPANY], {"consumer_id": COMPANY, "consumer_type": "private"}, False),
    ("spatial", "eq", "sameMunicipality", {"consumer_id": HIMEJI}, True),
    ("spatial", "eq", "sameMunicipality", {}, False),
    ("spatial", "eq", "samePrefecture", {}, True),
    ("spatial", "eq", "samePrefecture", {"consumer_id": HYOGO, "consumer_type": "prefecture"}, True),
    ("spatial", "eq", "samePrefecture", {"consumer_id": OSAKA_CITY}, False),
    ("spatial", "eq", "samePrefecture", {"consumer_id": COMPANY, "consumer_type": "private"}, False),
    ("spatial", "eq", "samePrefecture", {"provider_id": COMPANY}, False),
    ("spatial", "neq", "samePrefecture", {"consumer_id": OSAKA_CITY}, True),
    ("spatial", "neq", "samePrefecture", {}, False),
    ("spatial", "neq", "samePrefecture", {"consumer_id": COMPANY, "consumer_type": "private"}, True),
    ("spatial", "eq", KAKOGAWA, {}, True),
    ("spatial", "eq", "27", {}, False),
    ("spatial", "isAnyOf", [AKASHI, KAKOGAWA], {}, True),
    ("spatial", "isAnyOf", [AKASHI, INAMI], {}, False),
    ("spatial", "isAnyOf", ["27", "28"], {}, True),
    ("spatial", "isAnyOf", ["27", CHIYODA], {}, False),
    ("spatial", "isAnyOf", ["samePrefecture", "27"],
     {"consumer_id": OSAKA_PREF, "consumer_type": "prefecture"}, True),
    ("spatial", "isAnyOf", ["28"], {"consumer_id": COMPANY, "consumer_type": "private"}, False),
    ("spatial", "isNoneOf", ["13"], {}, True),
    ("spatial", "isNoneOf", ["13", "28"], {}, False),
    ("dateTime", "lt", "2027-03-31T23:59:59+09:00", {}, True),
    ("dateTime", "lt", "2026-03-31T23:59:59+09:00", {}, False),
    ("dateTime", "lteq", "2026-12-01T10:00:00+09:00", {}, True),
    ("dateTime", "lteq", "2026-12-01T09:59:59+09:00", {}, False),
    ("dateTime", "gt", "2026-04-01T00:00:00+09:00", {}, True),
    ("dateTime", "gt", "2026-12-01T10:00:00+09:00", {}, False),
    ("dateTime", "gteq", "2026-12-01T10:00:00+09:00", {}, True),
    ("dateTime", "gteq", "2026-12-01T10:00:01+09:00", {}, False),
    ("transferCount", "lteq", 100, {"transfers_so_far": 99}, True),
    ("transferCount", "lteq", 100, {"transfers_so_far": 100}, False),
    ("transferCount", "lt", 100, {"transfers_so_far": 98}, True),
    ("transferCount", "lt", 100, {"transfers_so_far": 99}, False),
    ("transferCount", "lteq", 0, {}, False),
    ("recordCount", "lteq", 1000, {"records_so_far": 990, "records_requested": 10}, True),
    ("recordCount", "lteq", 1000, {"records_so_far": 990, "records_requested": 11}, False),
    ("recordCount", "lt", 1000, {"records_so_far": 989, "records_requested": 10}, True),
    ("recordCount", "lt", 1000, {"records_so_far": 990, "records_requested": 10}, False),
    ("recordCount", "lteq", 1000, {"records_so_far": 999, "records_requested": None}, True),
    ("recordCount", "lteq", 1000, {"records_so_far": 1000, "records_requested": None}, False),
    ("consent", "eq", True, {}, True),
    ("consent", "eq", False, {}, True),
]


@pytest.mark.parametrize(("left", "op", "right", "overrides", "allowed"), CASES)
def test_constraint(left: str, op: str, right: Any, overrides: dict[str, Any], allowed: bool):
    decision = check(left, op, right, **overrides)
    assert decision.allowed is allowed
    if allowed:
        assert decision.failures == [] and decision.permission_index == 0
        return
    [failure] = decision.failures
    assert (failure.path, failure.left_operand, failure.operator) == (
        "permissions[0].constraints[0]", left, op)
    assert failure.expected == right
    assert failure.message and failure.message_ja and failure.message != failure.message_ja


def test_cases_cover_every_operand_operator_and_outcome():
    seen = {(left, op, allowed) for left, op, _, _, allowed in CASES}
    for left, ops in PERMISSION_OPERANDS.items():
        if left == "identityAssurance":  # per resident record: test_resident_assurance.py
            continue
        for op in ops:
            assert (left, op, True) in seen, (left, op)
            if left != "consent":  # consent never refuses; it only routes through the consent filter
                assert (left, op, False) in seen, (left, op)
    assert {op for _, op, _, _, _ in CASES} | {"isAllOf"} == set(OPERATORS)


# ---- messages: which constraint, which claim ----------------------------------------------------


def test_purpose_message_names_the_claim_and_the_allowed_values():
    [f] = check("purpose", "isAnyOf", ["防災", "研究"], purpose="観光").failures
    assert f.message == "purpose '観光' is not one of ['防災', '研究']"
    assert f.message_ja == "利用目的「観光」は許可された目的（防災、研究）に含まれません"
    assert (f.expected, f.actual) == (["防災", "研究"], "観光")


def test_undeclared_purpose_says_so():
    [f] = check("purpose", "isNoneOf", ["広告"], purpose=None).failures
    assert "not declared" in f.message and "申告されていません" in f.message_ja and f.actual is None


def test_consumer_type_message_uses_japanese_labels():
    [f] = check("consumerType", "isAnyOf", ["municipality", "prefecture"], consumer_id=COMPANY,
                consumer_type="private").failures
    assert f.message == "consumer type 'private' is not one of ['municipality', 'prefecture']"
    assert f.message_ja == "利用者の種別「民間事業者」は許可された種別（市区町村、都道府県）に含まれません"


def test_excluded_consumer_id_message():
    [f] = check("consumerId", "isNoneOf", [COMPANY], consumer_id=COMPANY, consumer_type="private").failures
    assert COMPANY in f.message and "excluded" in f.message and "除外" in f.message_ja


def test_spatial_messages_name_both_prefectures():
    [f] = check("spatial", "eq", "samePrefecture", consumer_id=OSAKA_CITY).failures
    assert f.actual == OSAKA_CITY
    assert "prefecture 27" in f.message and "(28)" in f.message
    assert "都道府県コード27" in f.message_ja and "提供者と同じ都道府県（28）" in f.message_ja


def test_spatial_private_consumer_message_explains_how_to_admit_it():
    [f] = check("spatial", "eq", "samePrefecture", consumer_id=COMPANY, consumer_type="private").failures
    assert "not a local government" in f.message and "consumerId" in f.message
    assert "地方公共団体ではない" in f.message_ja


def test_spatial_provider_that_is_not_a_local_government():
    [f] = check("spatial", "eq", "samePrefecture", provider_id=COMPANY).failures
    assert f"provider {COMPANY} is not a local government" in f.message


def test_spatial_list_message_lists_the_areas():
    [f] = check("spatial", "isAnyOf", ["27", CHIYODA], consumer_id=AKASHI).failures
    assert f"prefecture 27, {CHIYODA}" in f.message and f"都道府県コード27、{CHIYODA}" in f.message_ja


def test_spatial_exclusion_message():
    [f] = check("spatial", "isNoneOf", ["28"]).failures
    assert "excluded area: prefecture 28" in f.message and "除外された地域" in f.message_ja


def test_date_messages_show_now_in_the_policy_time_zone():
    [f] = check("dateTime", "lt", "2026-03-31T23:59:59+09:00",
                now=datetime(2026, 12, 1, 1, 0, tzinfo=UTC)).failures
    assert "validity has ended" in f.message and "2026-12-01T10:00:00+09:00" in f.message
    assert "利用期間が終了" in f.message_ja and f.actual == "2026-12-01T01:00:00+00:00"
    [f] = check("dateTime", "gteq", "2027-04-01T00:00:00+09:00").failures
    assert "not valid yet" in f.message and "利用期間の開始前" in f.message_ja


def test_transfer_count_message_shows_the_arithmetic():
    [f] = check("transferCount", "lteq", 100, transfers_so_far=100).failures
    assert f.message == ("transfer count would reach 101 (100 so far + this one), "
                         "over the limit of at most 100")
    assert f.message_ja == "転送回数が上限を超えます（これまで100回＋今回1回＝101回、上限100回以下）"
    assert f.actual == 101


def test_record_count_message_shows_the_arithmetic():
    [f] = check("recordCount", "lt", 1_000_000, records_so_far=999_990, records_requested=10).failures
    assert f.message == ("record count would reach 1,000,000 (999,990 so far + 10 requested), "
                         "over the limit of fewer than 1,000,000")
    assert "999,990件＋今回10件＝1,000,000件、上限1,000,000件未満" in f.message_ja
    [f] = check("recordCount", "lteq", 5, records_so_far=5, records_requested=None).failures
    assert "unstated size" in f.message and "件数未指定" in f.message_ja


def test_identity_assurance_without_consent_is_an_invalid_policy():
    # levels belong to residents (judged per record under consent); an organisation has none
    for op, n in (("gteq", 2), ("gt", 1), ("eq", 3)):
        err = parse_error(one("identityAssurance", op, n))
        assert err.path == "permissions[0].constraints[0]"
        assert "needs" in err.message and "consent" in err.message and "同意" not in err.message
        assert "consent eq true" in (err.message_ja or "")


# ---- time zones and window edges ----------------------------------------------------------------

END = "2027-03-31T23:59:59+09:00"  # = 2027-03-31T14:59:59Z


@pytest.mark.parametrize(("now", "op", "allowed"), [
    (datetime(2027, 3, 31, 14, 59, 58, tzinfo=UTC), "lt", True),
    (datetime(2027, 3, 31, 14, 59, 59, tzinfo=UTC), "lt", False),
    (datetime(2027, 3, 31, 14, 59, 59, tzinfo=UTC), "lteq", True),
    (datetime(2027, 3, 31, 14, 59, 59, 1, tzinfo=UTC), "lteq", False),
    (datetime(2027, 3, 31, 23, 59, 59, tzinfo=JST), "lt", False),
    (datetime(2027, 3, 31, 9, 59, 58, tzinfo=timezone(timedelta(hours=-5))), "lt", True),
    (datetime(2027, 3, 31, 9, 59, 59, tzinfo=timezone(timedelta(hours=-5))), "lt", False),
    (datetime(2027, 3, 31, 23, 59, 59, tzinfo=UTC), "lt", False),  # same wall clock, 9 hours later
])
def test_window_end_is_an_instant_not_a_wall_clock(now: datetime, op: str, allowed: bool):
    assert check("dateTime", op, END, now=now).allowed is allowed


@pytest.mark.parametrize("bound", ["2027-03-31T14:59:59Z", "2027-03-31T14:59:59+00:00",
                                   "2027-03-31T05:59:59-09:00", "2027-03-31T23:59:59.000+09:00"])
def test_offsets_are_equivalent(bound: str):
    assert check("dateTime", "lt", bound, now=datetime(2027, 3, 31, 14, 59, 58, tzinfo=UTC)).allowed
    assert not check("dateTime", "lt", bound, now=datetime(2027, 3, 31, 14, 59, 59, tzinfo=UTC)).allowed


def test_validity_window_from_two_constraints():
    policy = parse_policy({"permissions": [{"action": "use", "constraints": [
        {"leftOperand": "dateTime", "operator": "gteq", "rightOperand": "2026-04-01T00:00:00+09:00"},
        {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2027-04-01T00:00:00+09:00"}]}]})
    inside = [datetime(2026, 4, 1, tzinfo=JST), datetime(2027, 3, 31, 23, 59, 59, 999999, tzinfo=JST)]
    outside = [datetime(2026, 3, 31, 23, 59, 59, tzinfo=JST), datetime(2027, 4, 1, tzinfo=JST)]
    assert all(evaluate(policy, ctx(now=n)).allowed for n in inside)
    for n in outside:
        [f] = evaluate(policy, ctx(now=n)).failures
        assert f.path in ("permissions[0].constraints[0]", "permissions[0].constraints[1]")


# ---- limits: exactly reached, and the cap reported to the data plane ----------------------------


def test_record_limit_exactly_reached_is_allowed_and_capped():
    d = check("recordCount", "lteq", 1000, records_so_far=990, records_requested=10)
    assert d.allowed and d.max_records == 10
    d = check("recordCount", "lt", 1000, records_so_far=0, records_requested=None)
    assert d.allowed and d.max_records == 999


def test_tightest_record_limit_wins():
    policy = parse_policy({"permissions": [{"action": "use", "constraints": [
        {"leftOperand": "recordCount", "operator": "lteq", "rightOperand": 500},
        {"leftOperand": "recordCount", "operator": "lteq", "rightOperand": 300}]}]})
    assert evaluate(policy, ctx(records_so_far=100)).max_records == 200


def test_no_record_limit_means_no_cap():
    assert check("purpose", "eq", "防災").max_records is None


# ---- combinations: AND within a permission, OR across permissions -------------------------------


def test_full_policy_allows_a_neighbouring_municipality():
    d = evaluate(parse_policy(FULL), ctx(transfers_so_far=99, records_so_far=999_990, records_requested=10))
    assert d.allowed and d.permission_index == 0 and d.failures == []
    assert d.requires_consent and d.max_records == 10
    assert [duty.action for duty in d.duties] == ["delete", "reportUsage"]
    assert d.duties[0].within == timedelta(days=90) and d.duties[1].within is None


def test_and_within_a_permission_reports_every_failing_constraint():
    d = evaluate(parse_policy(FULL), ctx(consumer_id=COMPANY, consumer_type="private", purpose="観光"))
    assert not d.allowed and d.duties == [] and not d.requires_consent
    # identityAssurance beside consent eq true applies to each resident's record, not the request
    assert [f.path for f in d.failures] == [f"permissions[0].constraints[{i}]" for i in (0, 1, 2, 3)]
    assert [f.left_operand for f in d.failures] == ["purpose", "consumerType", "consumerId", "spatial"]


def test_identity_assurance_on_personal_data_is_left_to_each_record():
    d = evaluate(parse_policy(FULL), ctx())
    assert d.allowed and d.requires_consent
    assert [(c.operator, c.right_operand) for c in d.record_assurance] == [("gteq", 2)]
    assert d.to_json()["record_assurance"][0]["leftOperand"] == "identityAssurance"
    for levels, ok in (((2, 2), True), ((3, 2), True), ((1, 3), False), ((3, 1), False)):
        assert residents_levels_meet(d.record_assurance, levels) is ok
    strict = parse_policy({"permissions": [{"action": "use", "constraints": [
        {"leftOperand": "identityAssurance", "operator": "gt", "rightOperand": 2},
        {"leftOperand": "consent", "operator": "eq", "rightOperand": True}]}]})
    d = evaluate(strict, ctx())
    assert not residents_levels_meet(d.record_assurance, (2, 3))
    assert residents_levels_meet(d.record_assurance, (3, 3))
    # without consent there is no record to judge: the policy itself is refused
    with pytest.raises(PolicyError):
        parse_policy({"permissions": [{"action": "use", "constraints": [
            {"leftOperand": "identityAssurance", "operator": "gteq", "rightOperand": 2}]}]})


def test_one_failing_constraint_refuses_the_whole_permission():
    d = evaluate(parse_policy(FULL), ctx(now=datetime(2027, 4, 1, tzinfo=JST)))
    assert not d.allowed and [f.left_operand for f in d.failures] == ["dateTime"]


def test_private_company_admitted_by_a_second_permission():
    doc = copy.deepcopy(FULL)
    doc["permissions"].append({"action": "use", "constraints": [
        {"leftOperand": "consumerId", "operator": "isAnyOf", "rightOperand": [OTHER_COMPANY]},
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "研究"}]})
    policy = parse_policy(doc)
    d = evaluate(policy, ctx(consumer_id=OTHER_COMPANY, consumer_type="private", purpose="研究"))
    assert d.allowed and d.permission_index == 1 and not d.requires_consent and d.max_records is None
    d = evaluate(policy, ctx(consumer_id=OTHER_COMPANY, consumer_type="private", purpose="観光"))
    assert not d.allowed and d.permission_index == 1  # one failure there, four in the first
    assert [f.path for f in d.failures] == ["permissions[1].constraints[1]"]


def test_first_matching_permission_is_used():
    policy = parse_policy({"permissions": [
        {"action": "use",
         "constraints": [{"leftOperand": "consent", "operator": "eq", "rightOperand": True}]},
        {"action": "use"}]})
    d = evaluate(policy, ctx())
    assert d.allowed and d.permission_index == 0 and d.requires_consent


def test_closest_permission_ties_go_to_the_first():
    policy = parse_policy({"permissions": [
        {"action": "use",
         "constraints": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "研究"}]},
        {"action": "use",
         "constraints": [{"leftOperand": "consumerId", "operator": "eq", "rightOperand": AKASHI}]},
    ]})
    d = evaluate(policy, ctx())
    assert not d.allowed and d.permission_index == 0 and d.failures[0].left_operand == "purpose"


def test_empty_permissions_allow_nothing():
    d = evaluate(parse_policy({"permissions": []}), ctx())
    assert not d.allowed and d.permission_index is None
    [f] = d.failures
    assert f.path == "permissions" and "no permission" in f.message and f.message_ja


def test_permission_without_constraints_allows_everyone():
    d = evaluate(parse_policy({"permissions": [{"action": "use"}]}),
                 ctx(consumer_id=COMPANY, consumer_type="private", purpose=None))
    assert d.allowed and not d.requires_consent


# ---- the refusal as an error and as JSON --------------------------------------------------------


def test_denial_is_a_permission_denied_with_structured_failures():
    d = evaluate(parse_policy(FULL), ctx(purpose="観光"))
    err = d.denial()
    assert isinstance(err, PermissionDenied) and err.code == "policy_denied" and err.http_status == 403
    assert "purpose '観光' is not one of ['防災', '研究']" in err.message
    assert "利用目的「観光」" in (err.message_ja or "")
    body = json.loads(json.dumps(err.to_json(), ensure_ascii=False))
    [failure] = body["error"]["details"]["failures"]
    assert failure["path"] == "permissions[0].constraints[0]" and failure["actual"] == "観光"


def test_decision_messages():
    assert evaluate(parse_policy(FULL), ctx()).message == "allowed"
    d = evaluate(parse_policy(FULL), ctx(purpose="観光", transfers_so_far=100))
    assert d.message.count(";") == 1 and "。" in d.message_ja
    assert isinstance(d.failures[0], ConstraintFailure)


# ---- parsing: structure and the path of the first problem ---------------------------------------


P = "permissions[0].constraints"


def with_constraint(index: int, **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(FULL)
    doc["permissions"][0]["constraints"][index].update(changes)
    return doc


@pytest.mark.parametrize(("doc", "path", "fragment"), [
    ([], "policy", "mapping"),
    ({}, "permissions", "required"),
    ({"permissions": {}}, "permissions", "list"),
    ({"permissions": ["use"]}, "permissions[0]", "mapping"),
    ({"permissions": [{"action": "usee"}]}, "permissions[0].action", "did you mean 'use'"),
    ({"permissions": [{}]}, "permissions[0].action", "None"),
    ({"permissions": [{"action": "use", "constraint": []}]}, "permissions[0].constraint",
     "did you mean 'constraints'"),
    ({"permissions": [], "prohibitions": []}, "prohibitions", "not supported"),
    ({"permissions": [], "obligations": []}, "obligations", "unknown key"),
    ({"permissions": [{"action": "use", "constraints": {}}]}, "permissions[0].constraints", "list"),
    ({"permissions": [{"action": "use", "constraints": ["x"]}]}, P + "[0]", "mapping"),
    ({"permissions": [{"action": "use", "constraints": [{"leftOperand": "purpose", "operator": "eq"}]}]},
     P + "[0].rightOperand", "required"),
    (with_constraint(2, leftOperand="consumerID"), P + "[2].leftOperand",
     "did you mean 'consumerId'"),
    (with_constraint(2, leftOperand="elapsedTime"), P + "[2].leftOperand",
     "applies to duties"),
    (with_constraint(2, operator="isNotOf"), P + "[2].operator", "unknown operator"),
    (with_constraint(2, operator="in"), P + "[2].operator", "unknown operator"),
    (with_constraint(0, operator="isAllOf"), P + "[0].operator", "set-valued"),
    (with_constraint(0, operator="lt"), P + "[0].operator", "does not apply to purpose"),
    (with_constraint(4, operator="eq"), P + "[4].operator", "does not apply to dateTime"),
    (with_constraint(5, operator="gteq"), P + "[5].operator", "lt, lteq"),
    (with_constraint(7, operator="lteq"), P + "[7].operator", "eq, gt, gteq"),
    (with_constraint(8, operator="neq"), P + "[8].operator", "does not apply"),
    (with_constraint(0, rightOperand="防災"), P + "[0].rightOperand", "non-empty list"),
    (with_constraint(0, rightOperand=[]), P + "[0].rightOperand", "non-empty list"),
    (with_constraint(0, rightOperand=["防災", 3]), P + "[0].rightOperand[1]", "string"),
    (with_constraint(0, rightOperand=["防災", "  "]), P + "[0].rightOperand[1]", "string"),
    (with_constraint(0, operator="eq", rightOperand=["防災"]), P + "[0].rightOperand",
     "single value"),
    (with_constraint(1, rightOperand=["municipality", "company"]),
     P + "[1].rightOperand[1]", "unknown consumer type"),
    (with_constraint(2, rightOperand=["1234567890123"]), P + "[2].rightOperand[0]",
     "check digit"),
    (with_constraint(2, rightOperand=["282015"]), P + "[2].rightOperand[0]",
     "check digit"),
    (with_constraint(2, rightOperand=["12345"]), P + "[2].rightOperand[0]",
     "not a participant id"),
    (with_constraint(3, rightOperand="sameCity"), P + "[3].rightOperand", "not an area"),
    (with_constraint(3, operator="isAnyOf", rightOperand=["48"]), P + "[3].rightOperand[0]",
     "not an area"),
    (with_constraint(3, operator="isAnyOf", rightOperand=["282010"]),
     P + "[3].rightOperand[0]", "check digit"),
    (with_constraint(3, operator="isAnyOf", rightOperand=[COMPANY]),
     P + "[3].rightOperand[0]", "not an area"),
    (with_constraint(4, rightOperand="2027-03-31T23:59:59"), P + "[4].rightOperand",
     "with an offset"),
    (with_constraint(4, rightOperand="2027-03-31"), P + "[4].rightOperand", "offset"),
    (with_constraint(4, rightOperand="2027-02-30T00:00:00+09:00"), P + "[4].rightOperand",
     "ISO 8601"),
    (with_constraint(4, rightOperand="来年3月"), P + "[4].rightOperand", "ISO 8601"),
    (with_constraint(4, rightOperand=20270331), P + "[4].rightOperand", "ISO 8601"),
    (with_constraint(5, rightOperand="100"), P + "[5].rightOperand", "integer"),
    (with_constraint(5, rightOperand=True), P + "[5].rightOperand", "integer"),
    (with_constraint(5, rightOperand=-1), P + "[5].rightOperand", "out of range"),
    (with_constraint(6, rightOperand=1.5), P + "[6].rightOperand", "integer"),
    (with_constraint(7, rightOperand=0), P + "[7].rightOperand", "1–3"),
    (with_constraint(7, rightOperand=4), P + "[7].rightOperand", "1–3"),
    (with_constraint(8, rightOperand="true"), P + "[8].rightOperand", "true or false"),
    ({"permissions": [], "duties": [{"action": "destroy"}]}, "duties[0].action", "delete"),
    ({"permissions": [], "duties": [{"action": "delete", "constraints": [
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "x"}]}]},
     "duties[0].constraints[0].leftOperand", "applies to permissions"),
    ({"permissions": [], "duties": [{"action": "delete", "constraints": [
        {"leftOperand": "elapsedTime", "operator": "eq", "rightOperand": "P1Y"}]}]},
     "duties[0].constraints[0].rightOperand", "P365D"),
    ({"permissions": [], "duties": [{"action": "delete", "constraints": [
        {"leftOperand": "elapsedTime", "operator": "eq", "rightOperand": "90D"}]}]},
     "duties[0].constraints[0].rightOperand", "duration"),
    ({"permissions": [], "duties": [{"action": "delete", "constraints": [
        {"leftOperand": "elapsedTime", "operator": "eq", "rightOperand": "PT"}]}]},
     "duties[0].constraints[0].rightOperand", "duration"),
    ({"permissions": [], "duties": [{"action": "delete", "constraints": [
        {"leftOperand": "elapsedTime", "operator": "gt", "rightOperand": "P9D"}]}]},
     "duties[0].constraints[0].operator", "does not apply"),
    ({"permissions": [{"action": "use"}] * 51}, "permissions", "at most 50"),
])
def test_parse_errors_name_the_path(doc: Any, path: str, fragment: str):
    err = parse_error(doc)
    assert err.path == path and err.details == {"path": path}
    assert err.message.startswith(f"{path}: ") and fragment in err.message
    assert err.message_ja and err.message_ja.startswith(f"{path}: ")


def test_policy_error_is_an_invalid_request():
    err = parse_error(with_constraint(2, operator="isNotOf"))
    assert isinstance(err, InvalidRequest) and err.code == "invalid_policy" and err.http_status == 400
    assert err.to_json()["error"]["details"] == {"path": "permissions[0].constraints[2].operator"}


def test_json_ld_keys_and_uid_are_ignored():
    doc = {"@context": "http://www.w3.org/ns/odrl.jsonld", "uid": "urn:policy:1", **FULL}
    assert parse_policy(doc) == parse_policy(FULL)


@pytest.mark.parametrize("duration", ["P90D", "P2W", "PT12H", "P1DT12H30M5S", "P0D"])
def test_durations(duration: str):
    doc = {"permissions": [], "duties": [{"action": "delete", "constraints": [
        {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": duration}]}]}
    assert isinstance(parse_policy(doc).duties[0].within, timedelta)


def test_round_trip_through_json():
    for doc in (FULL, {"permissions": []}, {"permissions": [{"action": "use"}]}):
        policy = parse_policy(doc)
        assert parse_policy(json.loads(json.dumps(policy.to_json()))) == policy


def test_operand_tables_are_disjoint():
    assert not set(PERMISSION_OPERANDS) & set(DUTY_OPERANDS)
    assert all(set(ops) <= set(OPERATORS) for ops in [*PERMISSION_OPERANDS.values(), *DUTY_OPERANDS.values()])


# ---- the context --------------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [
    {"now": datetime(2026, 12, 1, 10, 0)}, {"consumer_type": "company"},
    {"transfers_so_far": -1}, {"records_requested": -5},
])
def test_context_rejects_programming_errors(changes: dict[str, Any]):
    with pytest.raises(ValueError):
        ctx(**changes)


# ---- the demo catalog ---------------------------------------------------------------------------


def demo_offers() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{ds['id']}/{offer['id']}", offer["policy"]) for _, ds in demo_catalog.DATASETS
            for offer in ds["offers"]]


def test_every_demo_offer_policy_parses():
    offers = demo_offers()
    assert offers
    for name, doc in offers:
        assert isinstance(parse_policy(doc), Policy), name


def test_demo_research_offer():
    policy = parse_policy(dict(demo_offers())["osaka-medical/research-use"])
    research = evaluate(policy, ctx(consumer_id=HIMEJI, provider_id=OSAKA_PREF, purpose="研究"))
    assert research.allowed and research.permission_index == 0
    tourism = evaluate(policy, ctx(consumer_id=HIMEJI, provider_id=OSAKA_PREF, purpose="観光"))
    assert not tourism.allowed
    [f] = tourism.failures
    assert f.message == "purpose '観光' is not '研究'"
    assert f.message_ja == "利用目的「観光」は許可された目的「研究」と異なります"


def test_demo_open_use_allows_anyone():
    policy = parse_policy(demo_catalog.OPEN_USE[0]["policy"])
    assert evaluate(policy, ctx(consumer_id=COMPANY, consumer_type="private", purpose=None)).allowed


# ---- properties (hypothesis, when installed) ----------------------------------------------------

if given is not None:
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5)
        | st.sampled_from(["use", "purpose", "eq", "isAnyOf", "spatial", "P90D", "samePrefecture", HIMEJI]),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
            st.sampled_from(["permissions", "duties", "action", "constraints", "leftOperand", "operator",
                             "rightOperand", "x"]), inner, max_size=4),
        max_leaves=20)

    @settings(max_examples=300, deadline=None, database=None)
    @given(json_values)
    def test_parse_only_raises_policy_error(doc: Any):
        try:
            policy = parse_policy(doc)
        except PolicyError as err:
            assert err.path and err.message_ja
        else:
            assert parse_policy(policy.to_json()) == policy

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.integers(0, 8), st.sampled_from(["leftOperand", "operator", "rightOperand", "extra"]),
           json_values)
    def test_corrupted_full_policy_fails_at_that_constraint(index: int, key: str, value: Any):
        doc = with_constraint(index, **{key: value})
        constraints = FULL["permissions"][0]["constraints"]
        consent = constraints.index({"leftOperand": "consent", "operator": "eq", "rightOperand": True})
        assurance = next(i for i, c in enumerate(constraints) if c["leftOperand"] == "identityAssurance")
        try:
            parse_policy(doc)
        except PolicyError as err:
            if index == consent and err.path == f"{P}[{assurance}]":
                # a corrupted consent constraint that still parses (consent eq false, say) leaves
                # identityAssurance without the consent it needs: that constraint is the one named
                assert "identityAssurance" in err.message
            else:
                assert err.path.startswith(f"{P}[{index}]")

    def test_assurance_without_consent_is_named_at_the_assurance_constraint():
        constraints = FULL["permissions"][0]["constraints"]
        consent = constraints.index({"leftOperand": "consent", "operator": "eq", "rightOperand": True})
        with pytest.raises(PolicyError) as err:
            parse_policy(with_constraint(consent, rightOperand=False))
        assert "identityAssurance" in err.value.message

    @settings(deadline=None, database=None)
    @given(st.integers(0, 2000), st.integers(0, 2000), st.integers(0, 2000) | st.none(),
           st.sampled_from(["lt", "lteq"]))
    def test_record_limit_matches_arithmetic(limit: int, so_far: int, requested: int | None, op: str):
        d = check("recordCount", op, limit, records_so_far=so_far, records_requested=requested)
        total = so_far + (1 if requested is None else requested)
        assert d.allowed is (total < limit if op == "lt" else total <= limit)
        if d.allowed:
            assert d.max_records is not None and d.max_records >= total - so_far

    @settings(deadline=None, database=None)
    @given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                        timezones=st.sampled_from([UTC, JST, timezone(timedelta(hours=-10))])),
           st.sampled_from(["lt", "lteq", "gt", "gteq"]))
    def test_datetime_matches_instant_comparison(now: datetime, op: str):
        bound = datetime(2027, 3, 31, 23, 59, 59, tzinfo=JST)
        a, b = now.timestamp(), bound.timestamp()
        expected = {"lt": a < b, "lteq": a <= b, "gt": a > b, "gteq": a >= b}[op]
        assert check("dateTime", op, bound.isoformat(), now=now).allowed is expected

    @settings(deadline=None, database=None)
    @given(st.lists(st.sampled_from(["27", "28", "13", HIMEJI, AKASHI, CHIYODA, OSAKA_CITY]), min_size=1,
                    max_size=4), st.sampled_from([HIMEJI, KAKOGAWA, OSAKA_CITY, CHIYODA, HYOGO]))
    def test_spatial_list_matches_code_or_prefecture(areas: list[str], consumer: str):
        kind = "prefecture" if consumer.endswith("0003") else "municipality"
        expected = any(consumer == a or consumer[:2] == a for a in areas)
        who = {"consumer_id": consumer, "consumer_type": kind}
        assert check("spatial", "isAnyOf", areas, **who).allowed is expected
        assert check("spatial", "isNoneOf", areas, **who).allowed is not expected
else:  # pragma: no cover
    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_properties():
        pass


# ---- federation: a consumer of another mesh ------------------------------------------------------


def test_a_federated_consumer_needs_a_mesh_constraint():
    """Without a mesh constraint a permission is for this mesh's participants only; the refusal
    says so, and a cross-border spatial scope alone does not open it."""
    policy = parse_policy(one("spatial", "isAnyOf", ["27", "28"]))
    local = evaluate(policy, ctx(consumer_id=OSAKA_CITY, consumer_mesh="hyogo", provider_mesh="hyogo"))
    assert local.allowed
    foreign = evaluate(policy, ctx(consumer_id=OSAKA_CITY, consumer_mesh="osaka",
                                   provider_mesh="hyogo"))
    assert not foreign.allowed
    [failure] = foreign.failures
    assert failure.left_operand == "mesh" and failure.actual == "osaka"
    assert "連携先メッシュ" in failure.message_ja
    opened = parse_policy({"permissions": [{"action": "use", "constraints": [
        {"leftOperand": "spatial", "operator": "isAnyOf", "rightOperand": ["27", "28"]},
        {"leftOperand": "mesh", "operator": "isAnyOf", "rightOperand": ["hyogo", "osaka"]}]}]})
    assert evaluate(opened, ctx(consumer_id=OSAKA_CITY, consumer_mesh="osaka",
                                provider_mesh="hyogo")).allowed
    akashi = evaluate(opened, ctx(consumer_id=AKASHI, consumer_mesh="osaka", provider_mesh="hyogo"))
    assert akashi.allowed  # 明石市 is in 28: the cross-border scope covers both prefectures


def test_mesh_ids_in_policies_are_checked():
    with pytest.raises(PolicyError) as exc:
        parse_policy(one("mesh", "eq", "Osaka Mesh"))
    assert exc.value.path == "permissions[0].constraints[0].rightOperand"


def test_personal_data_does_not_cross_meshes():
    """Consents are recorded per mesh: a consent permission never admits a federated consumer,
    even one its mesh constraint names."""
    policy = parse_policy({"permissions": [{"action": "use", "constraints": [
        {"leftOperand": "consent", "operator": "eq", "rightOperand": True},
        {"leftOperand": "mesh", "operator": "isAnyOf", "rightOperand": ["hyogo", "osaka"]}]}]})
    local = evaluate(policy, ctx(consumer_mesh="hyogo", provider_mesh="hyogo"))
    assert local.allowed and local.requires_consent
    refused = evaluate(policy, ctx(consumer_mesh="osaka", provider_mesh="hyogo"))
    assert not refused.allowed
    [failure] = refused.failures
    assert failure.left_operand == "mesh" and "個人データはメッシュを越えて" in failure.message_ja
