"""``connector.contracts.explain``: every way an agreement ends, in plain words, Japanese first.

Refusals are built from real ``mesh.policy.evaluate`` decisions (so a change to the policy's
messages shows here) and stored the way negotiation.py stores them; terminations the way
termination.py stores them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.contracts.explain import REASON_EN, explain, jst
from connector.contracts.store import AgreementRow
from connector.contracts.termination import REASON_CODES, termination_reason
from mesh.policy import PolicyContext, evaluate, parse_policy

ME = "urn:areamesh:org:282103:node:main"
PROVIDER = "urn:areamesh:org:270008:node:main"
AT = "2026-12-03T03:04:05+00:00"
NOW = datetime(2026, 12, 3, 3, 4, 5, tzinfo=UTC)


def row(role: str, state: str, reason: dict | None, counterparty: str = PROVIDER) -> AgreementRow:
    return AgreementRow("a-1", role, state, "osaka-population-feed", "research-use", counterparty,
                        "観光", None, reason, None, AT, AT)


def c(left: str, op: str, right) -> dict:
    return {"leftOperand": left, "operator": op, "rightOperand": right}


def refusal(constraints: list[dict], **ctx) -> dict:
    policy = parse_policy({"permissions": [{"action": "use", "constraints": constraints}]})
    context = PolicyContext(**{"consumer_id": "282103", "consumer_type": "municipality",
                               "purpose": "観光", "provider_id": "270008", "now": NOW, **ctx})
    decision = evaluate(policy, context)
    assert not decision.allowed
    return {"reason": "policy", "decision": decision.to_json(), "counterparty": ME,
            "transport": "grpc-mtls"}


CASES = [  # (constraint, context, the claim named, a word of the Japanese message, the value)
    (c("purpose", "eq", "研究"), {}, "申告された利用目的",
     "利用目的「観光」は許可された目的「研究」と異なります", "観光"),
    (c("purpose", "isAnyOf", ["研究", "防災"]), {}, "申告された利用目的", "含まれません", "観光"),
    (c("consumerType", "eq", "prefecture"), {}, "利用者の種別", "都道府県", "municipality"),
    (c("consumerId", "eq", "270008"), {}, "利用者のID", "270008", "282103"),
    (c("spatial", "eq", "sameMunicipality"), {}, "利用者の地域", "許可された地域", "282103"),
    (c("dateTime", "lteq", "2026-04-01T00:00:00+09:00"), {}, "申込みの日時", "利用期間が終了しています",
     NOW.isoformat()),
    (c("dateTime", "gteq", "2027-04-01T00:00:00+09:00"), {}, "申込みの日時", "利用期間の開始前です",
     NOW.isoformat()),
    (c("transferCount", "lteq", 2), {"transfers_so_far": 2}, "転送回数", "転送回数が上限を超えます", 3),
    (c("recordCount", "lt", 100), {"records_so_far": 99, "records_requested": 5}, "レコード数",
     "レコード数が上限を超えます", 104),
]


@pytest.mark.parametrize("constraint,ctx,claim,words,actual", CASES,
                         ids=[f"{x[0]['leftOperand']}-{x[0]['operator']}" for x in CASES])
def test_a_refusal_names_the_constraint_the_claim_and_its_value(constraint, ctx, claim, words, actual):
    x = explain(row("consumer", "TERMINATED", refusal([constraint], **ctx)), ME)
    assert (x.kind, x.by, x.by_self, x.at) == ("refused", PROVIDER, False, AT)
    [f] = x.failures
    assert f.path == "permissions[0].constraints[0]" and f.constraint.startswith(constraint["leftOperand"])
    assert claim in f.claim_ja and f.claim_en and f.actual == actual
    ja, en = x.lines("ja"), x.lines("en")
    assert ja[0].startswith(f"提供者である相手方（{PROVIDER}）が 2026-12-03 12:04 JST に申込みを断りました")
    assert words in ja[1] and claim in ja[1]
    assert en[0].startswith(f"The provider, the counterparty ({PROVIDER}), refused the request at "
                            "2026-12-03 12:04 JST")
    text = x.text()
    assert text.index(words) < text.index("The provider")          # Japanese first, then English


def test_the_demo_refusal_reads_as_the_demo_prints_it():
    x = explain(row("consumer", "TERMINATED", refusal([c("purpose", "eq", "研究")])), ME)
    assert "purpose '観光' is not '研究'" in x.text()
    assert "申告された利用目的は「観光」。" in x.text()
    assert x.failures[0].constraint == "purpose eq 研究"


def test_the_provider_sees_its_own_refusal_as_its_own():
    x = explain(row("provider", "TERMINATED", refusal([c("purpose", "eq", "研究")]), counterparty=ME),
                PROVIDER)
    assert (x.by, x.by_self) == (PROVIDER, True)
    assert x.lines("ja")[0].startswith(f"提供者であるこのコネクタ（{PROVIDER}）")


def test_several_constraints_fail_each_listed():
    x = explain(row("consumer", "TERMINATED", refusal([
        c("purpose", "eq", "研究"), c("consumerType", "eq", "prefecture")])), ME)
    assert [f.path for f in x.failures] == ["permissions[0].constraints[0]", "permissions[0].constraints[1]"]
    assert len(x.lines("ja")) == 3 and all(line.startswith("- ") for line in x.lines("en")[1:])


def test_a_policy_with_no_permission():
    decision = evaluate(parse_policy({"permissions": []}), PolicyContext(
        "282103", "municipality", "研究", "270008", NOW))
    x = explain(row("consumer", "TERMINATED", {"reason": "policy", "decision": decision.to_json()}), ME)
    [f] = x.failures
    assert f.claim_ja == "利用条件（ポリシー）全体" and f.constraint == "permissions"
    assert "いかなる利用も許可していません" in x.text()


def test_ended_by_the_counterparty_with_its_words():
    reason = termination_reason("policy_violation", "第三者に再提供されていました", by=PROVIDER)
    x = explain(row("consumer", "TERMINATED", reason), ME)
    assert (x.kind, x.by, x.by_self, x.code) == ("terminated", PROVIDER, False, "policy_violation")
    assert x.lines("ja")[0] == (f"相手方（{PROVIDER}）が {jst(reason['at'])} "
                                "に合意を終了しました。理由: 利用条件違反（policy_violation）。")
    assert x.lines("ja")[1] == "終了した側の説明: 第三者に再提供されていました"
    assert x.lines("en")[0].startswith(f"The counterparty ({PROVIDER}) ended the agreement at ")
    assert "Reason: policy violation (policy_violation)." in x.lines("en")[0]


def test_every_reason_code_has_english_words():
    assert set(REASON_EN) == set(REASON_CODES)


@pytest.mark.parametrize("code", ["no_longer_needed", "purpose_fulfilled", "duty_not_fulfilled",
                                  "dataset_withdrawn", "security_incident", "consent_withdrawn", "other"])
def test_ended_here_each_reason_code(code: str):
    reason = termination_reason(code, "", by=ME) | {"counterparty_notified": True}
    x = explain(row("consumer", "TERMINATED", reason), ME)
    assert x.by_self and x.code == code and x.label_ja == REASON_CODES[code] and x.label_en
    assert x.lines("ja")[0].startswith(f"このコネクタ（{ME}）が ")
    assert f"（{code}）" in x.lines("ja")[0] and x.lines("ja")[-1] == "相手方にも通知しました。"
    assert x.lines("en")[0].startswith(f"This connector ({ME}) ended the agreement")


def test_ended_here_but_the_counterparty_was_not_told():
    reason = termination_reason("security_incident", "", by=ME) | {
        "counterparty_notified": False, "notify_error": "the registry is unreachable"}
    x = explain(row("provider", "TERMINATED", reason, counterparty=ME), ME)
    assert x.notified is False
    assert x.lines("ja")[-1] == "相手方には通知できませんでした: the registry is unreachable"
    assert x.lines("en")[-1] == "The counterparty could not be told: the registry is unreachable"


def test_no_reason_recorded_and_not_ended():
    x = explain(row("consumer", "TERMINATED", None), ME)
    assert x.kind == "unrecorded" and x.ended and "理由は記録されていません" in x.text()
    y = explain(row("consumer", "FINALIZED", None), ME)
    assert not y.ended and y.lines("ja") == ["この合意は終了していません（状態: FINALIZED）。"]
    assert y.to_json()["en"] == ["This agreement has not ended (state: FINALIZED)."]


def test_json_form_carries_both_languages():
    doc = explain(row("consumer", "TERMINATED", refusal([c("purpose", "eq", "研究")])), ME).to_json()
    assert doc["kind"] == "refused" and doc["ja"][0].startswith("提供者") and doc["en"][0].startswith("The")
    assert doc["failures"][0]["actual"] == "観光"
