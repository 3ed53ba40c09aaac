"""mesh/policy_text.py: usage policies in plain Japanese and English; mesh/places.py names."""

from __future__ import annotations

from typing import Any

from areamesh.demo_catalog import DATASETS
from mesh.places import label, place_name, prefecture_name
from mesh.policy import parse_policy
from mesh.policy_text import describe_offer, describe_policy

NAMES = {"282014": "姫路市", "270008": "大阪府", "282103": "加古川市"}
HIMEJI = "282014"


def c(left: str, op: str, right: Any) -> dict[str, Any]:
    return {"leftOperand": left, "operator": op, "rightOperand": right}


def text(*constraints: dict[str, Any], duties: list | None = None, provider: str = HIMEJI):
    return describe_policy(parse_policy({"permissions": [{"action": "use",
                                                          "constraints": list(constraints)}],
                                         "duties": duties or []}), provider, NAMES)


def test_open_offer():
    t = text()
    assert t.ja == "すべての参加者が目的を問わず利用できます。"
    assert t.en == "Every participant may use the data, for any purpose."
    assert t.duties_ja == "" and t.permissions_ja == (t.ja,)


def test_research_in_the_providers_prefecture_ten_times():
    t = text(c("purpose", "eq", "研究"), c("spatial", "eq", "samePrefecture"),
             c("consumerType", "eq", "municipality"), c("transferCount", "lteq", 10))
    assert t.ja == "研究目的に限り、兵庫県内の市区町村が利用できます。転送は最大 10 回まで。"
    assert t.en == "Municipalities in Hyogo may use the data only for the purpose 研究. At most 10 transfers."


def test_the_full_example_of_docs_policies():
    t = text(c("purpose", "isAnyOf", ["防災", "研究"]),
             c("consumerType", "isAnyOf", ["municipality", "prefecture"]),
             c("consumerId", "isNoneOf", ["270008"]), c("spatial", "eq", "samePrefecture"),
             c("dateTime", "lt", "2027-03-31T23:59:59+09:00"), c("transferCount", "lteq", 100),
             c("recordCount", "lteq", 1_000_000), c("identityAssurance", "gteq", 2),
             c("consent", "eq", True),
             duties=[{"action": "delete", "constraints": [c("elapsedTime", "eq", "P90D")]},
                     {"action": "reportUsage"}])
    assert t.ja.startswith("防災または研究の目的に限り、"
                           "兵庫県内の市区町村・都道府県（大阪府（270008）を除く）が利用できます"
                           "（期間：2027-03-31 23:59 JST より前）。")
    assert "転送は最大 100 回まで、レコードは合計 1,000,000 件まで。" in t.ja
    assert ("本人が同意した住民のレコードだけが提供されます"
            "（本人確認レベル 2 以上の住民に限ります）。") in t.ja
    assert t.duties_ja == ("利用者の義務：受け取ってから 90 日以内にデータを削除すること、"
                           "利用状況を報告すること。")
    assert t.ja.endswith(t.duties_ja)
    assert "before 2027-03-31 23:59 JST" in t.en and "at most 1,000,000 records in all" in t.en
    assert t.duties_en == ("The consumer must delete the data within 90 days of receiving it "
                           "and report its use.")


def test_limits_with_lt_are_one_less_and_times_are_shown_in_jst():
    t = text(c("transferCount", "lt", 5), c("recordCount", "lt", 1),
             c("dateTime", "gteq", "2026-03-31T15:00:00Z"))
    assert "（期間：2026-04-01 00:00 JST から）" in t.ja
    assert "転送は最大 4 回まで、レコードは合計 0 件まで。" in t.ja
    assert "from 2026-04-01 00:00 JST" in t.en and "at most 4 transfers" in t.en.lower()


def test_alternatives_are_numbered_and_companies_named():
    policy = parse_policy({"permissions": [
        {"action": "use", "constraints": [c("spatial", "eq", "samePrefecture")]},
        {"action": "use", "constraints": [c("consumerId", "isAnyOf", ["7010001008844"]),
                                          c("purpose", "eq", "研究")]}]})
    t = describe_policy(policy, HIMEJI, NAMES)
    assert t.ja == ("次のいずれかに当てはまれば利用できます。(1) 兵庫県内の地方公共団体が利用できます。"
                    "(2) 研究目的に限り、法人番号 7010001008844 の事業者が利用できます。")
    assert len(t.permissions_en) == 2 and t.en.startswith("The data may be used under any one")


def test_areas_by_name_and_exclusions():
    t = text(c("spatial", "isAnyOf", ["27", "282103"]), c("purpose", "isNoneOf", ["広告"]))
    assert t.ja == "広告以外の目的で、大阪府内または加古川市（282103）の地方公共団体が利用できます。"
    assert t.en == ("Local governments in Osaka or 加古川市 (282103) may use the data for purposes "
                    "other than 広告.")
    assert text(c("spatial", "eq", "sameMunicipality")).ja == \
        "提供者（姫路市（282014））自身の地方公共団体が利用できます。"
    company = text(c("spatial", "eq", "samePrefecture"), provider="7010001008844")
    assert "該当なし" in company.ja and "none" in company.en


def test_nobody_and_an_unreadable_policy():
    nobody = describe_policy(parse_policy({"permissions": []}), HIMEJI)
    assert nobody.ja == "この提供条件では誰も利用できません。"
    bad = describe_offer({"permissions": [{"action": "sell"}]}, HIMEJI)
    assert bad.ja.startswith("利用条件を読み取れません") and "sell" in bad.en


def test_every_offer_of_the_demo_catalog_reads():
    for _, doc in DATASETS:
        for offer in doc["offers"]:
            t = describe_offer(offer["policy"], doc["publisher"], NAMES)
            assert t.ja.endswith("。") and t.en.endswith(".") and "読み取れません" not in t.ja


def test_places():
    assert prefecture_name("28") == "兵庫県" and prefecture_name("282014", "en") == "Hyogo"
    assert prefecture_name("48") is None and prefecture_name("ab") is None
    assert place_name("280003") == "兵庫県" and place_name("282014") is None
    assert place_name("282014", NAMES) == "姫路市"
    assert label("282014", NAMES) == "姫路市（282014）"
    assert label("283819") == "283819（兵庫県）" and label("283819", lang="en") == "283819 (Hyogo)"
    assert label("x") == "x"
