"""The console's dataset and offer forms without a server: every message key the templates
use exists in both languages; form fields become the description the CLI reads and errors
find their fields; offers become policies ``parse_policy`` accepts; the area picker's codes
carry valid check digits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.web.datasets import forms, offers
from connector.web.datasets.areas import area_names, municipality_groups
from connector.web.datasets.policy_view import policy_rows, policy_sentences
from connector.web.site import message_files
from mesh.datasets import THEMES, parse_description, standard_errors
from mesh.errors import InvalidRequest
from mesh.ids import validate_local_government_code
from mesh.standards import DEFAULT_EDITION
from mesh.web.i18n import MessageCatalog

TEMPLATES = Path(__file__).resolve().parents[1] / "connector" / "web" / "templates" / "datasets"


def test_every_key_the_dataset_pages_use_is_in_the_catalog():
    catalog = MessageCatalog.load(message_files())
    used: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_.\-]+)["']""", path.read_text("utf-8")))
    built = {f"datasets.state.{s}" for s in ("published", "local", "withdrawn")} \
        | {f"datasets.classification.{c}" for c in forms.choices()["classifications"]} \
        | {f"datasets.management.{m}" for m in forms.choices()["management"]} \
        | {f"datasets.frequency.{f}" for f in forms.choices()["frequencies"]} \
        | {f"datasets.access.{a}" for a in forms.choices()["access"]} \
        | {f"datasets.encoding.{e}" for e in forms.ENCODINGS} \
        | {f"datasets.offer.type.{t}" for t in offers.TYPES} \
        | {f"datasets.offer.spatial.{m}" for m in offers.SPATIAL_MODES} \
        | {f"datasets.offer.level.{v or 'none'}" for v in offers.LEVELS} \
        | {f"datasets.done.{d}" for d in ("saved", "published", "refreshed", "withdrawn", "offer_saved",
                                                  "offer_removed")} \
        | {f"datasets.preview.column.{k}" for k in ("missing", "unexpected", "misnamed")} \
        | {e["key"] for e in forms.choices()["editions"]} | {"datasets.edition.other"}
    missing = sorted(k for k in used | built if not k.endswith(".") and k not in catalog.entries)
    assert not missing, missing
    python = Path(offers.__file__).read_text("utf-8") + Path(forms.__file__).read_text("utf-8")
    at_keys = set(re.findall(r'"@(datasets\.[a-z_.]+)"', python))
    assert at_keys and not [k for k in at_keys if k not in catalog.entries]


FORM = {"id": "himeji-aed", "title_ja": "AED", "theme_1": "on", "keywords": "AED、救命 心肺",
        "schema": "名称\n緯度:number", "spatial": "282014, 282103", "license": "CC-BY-4.0",
        "source_adapter": "csv", "source_path": "aed.csv", "source_encoding": "cp932"}


def test_the_form_states_the_description_the_cli_would_read_and_back():
    doc = forms.description_of(FORM, publisher="282014")
    published = parse_description(doc, standard_check=standard_errors)
    assert published["themes"] == [THEMES[1]] and published["keywords"] == ["AED", "救命", "心肺"]
    assert published["schema"]["fields"][1] == {"name": "緯度", "type": "number"}
    assert doc["source"] == {"adapter": "csv", "path": "aed.csv", "encoding": "cp932"}
    again = forms.form_of(doc)
    assert forms.description_of(again, publisher="282014") == doc


@pytest.mark.parametrize(("error_field", "form_field"), [
    ("title.ja", "title_ja"), ("title.en", "title_en"), ("themes[0]", "themes"),
    ("schema.fields[1].type", "schema"), ("schema[名称]", "schema"), ("spatial[3]", "spatial"),
    ("license", "license"), ("offers[0].policy.permissions", "access"), ("(document)", "_general"),
    ("surprise", "_general"), ("standard.layout", "standard_layout"), ("standard", "standard_layout"),
    ("standard.edition", "standard_edition"), ("standard.missingValues.色", "standard_missing"),
    ("standard.missingValues", "standard_missing"), ("standard_type", "standard_layout")])
def test_errors_find_their_fields(error_field: str, form_field: str):
    assert forms.field_of(error_field) == form_field


def test_the_standard_fields_round_trip_and_keep_standard_type():
    old = forms.description_of({**FORM, "standard_layout": "AED設置箇所一覧"}, publisher="282014")
    assert old["standard_type"] == "AED設置箇所一覧" and "standard" not in old
    shown = forms.form_of(old)
    assert (shown["standard_layout"], shown["standard_edition"]) == ("AED設置箇所一覧", DEFAULT_EDITION)
    assert forms.description_of(shown, publisher="282014") == old        # re-saved unchanged
    declared = {"layout": "公衆トイレ一覧", "edition": "自治体標準",
                "missingValues": {"*": ["ー"], "男性トイレ総数": ["不明", "-"]}}
    doc = {**old, "schema": None, "standard": declared}
    del doc["standard_type"], doc["schema"]
    shown = forms.form_of(doc)
    assert shown["standard_edition"] == "自治体標準オープンデータセット"
    assert shown["standard_missing"] == "*: ー\n男性トイレ総数: 不明, -"
    again = forms.description_of({**shown, "schema": ""}, publisher="282014")
    assert again["standard"] == {**declared, "edition": "自治体標準オープンデータセット"}
    parse_description(again, standard_check=standard_errors)
    # a 2026 layout written as standard stays standard; one placeholder line for every column
    explicit = forms.description_of({**FORM, "standard_layout": "AED設置箇所一覧", "standard_key": "standard",
                                     "standard_missing": "ー、不明"}, publisher="282014")
    assert explicit["standard"] == {"layout": "AED設置箇所一覧", "edition": DEFAULT_EDITION,
                                    "missingValues": ["ー", "不明"]}
    plain = forms.description_of(FORM, publisher="282014")
    assert forms.description_of({**FORM, "standard_edition": DEFAULT_EDITION}, publisher="282014") == plain


def test_standard_errors_land_on_their_fields():
    cases = {"standard_edition": {"standard_layout": "公衆トイレ一覧", "standard_edition": "1999"},
             "standard_layout": {"standard_layout": "文化財一覧", "standard_edition": DEFAULT_EDITION,
                                 "standard_key": "standard"},
             "standard_missing": {"standard_layout": "公衆トイレ一覧",
                                  "standard_edition": "自治体標準オープンデータセット",
                                  "standard_missing": "色: ー"}}
    for field, values in cases.items():
        doc = forms.description_of({**FORM, "schema": "", **values}, publisher="282014")
        with pytest.raises(InvalidRequest) as caught:
            parse_description(doc, standard_check=standard_errors)
        placed = forms.errors_by_field(caught.value, "ja")
        assert list(placed) == [field], (field, placed)
    missing_layout = forms.description_of({**FORM, "standard_missing": "ー"}, publisher="282014")
    with pytest.raises(InvalidRequest) as caught:
        parse_description(missing_layout, standard_check=standard_errors)
    assert list(forms.errors_by_field(caught.value, "ja")) == ["standard_layout"]


def test_every_validation_error_lands_on_a_field():
    doc = forms.description_of({**FORM, "title_ja": "", "spatial": "282015", "theme_1": ""},
                               publisher="282014")
    with pytest.raises(InvalidRequest) as caught:
        parse_description(doc, standard_check=standard_errors)
    placed = forms.errors_by_field(caught.value, "ja")
    assert {"title_ja", "spatial", "themes"} <= set(placed) and "_general" not in placed
    adapter = InvalidRequest("bad", message_ja="悪い", details={"adapter": "csv", "key": "encoding"})
    assert forms.errors_by_field(adapter, "ja") == {"source_encoding": ["悪い"]}


def test_an_offer_becomes_a_policy_and_its_errors_find_their_fields():
    form = {"offer_id": "use-1", "purposes": "防災", "spatial_mode": "samePrefecture",
            "valid_from": "2026-04-01", "valid_until": "2027-03-31", "max_transfers": "1,000",
            "consent": "on", "identity_level": "2", "report_usage": "on"}
    offer, policy, errors = offers.offer_of(form)
    assert not errors and policy is not None
    lefts = [c["leftOperand"] for c in offer["policy"]["permissions"][0]["constraints"]]
    assert lefts == ["purpose", "spatial", "dateTime", "dateTime", "transferCount", "consent",
                     "identityAssurance"]
    assert offer["policy"]["permissions"][0]["constraints"][3]["rightOperand"] == \
        "2027-04-01T00:00:00+09:00"                       # the whole last day, in Japan time
    keys = [k for k, _ in policy_rows(offer["policy"])]
    assert keys[:3] == ["datasets.policy.purpose", "datasets.policy.spatial",
                        "datasets.policy.dateTime.gteq"]
    _, _, errors = offers.offer_of({**form, "consent": "", "valid_until": "2026-01-01",
                                    "max_transfers": "-1", "offer_id": "X"})
    assert set(errors) == {"valid_until", "max_transfers", "offer_id"}
    _, _, errors = offers.offer_of({**form, "consent": ""})
    assert list(errors) == ["identity_level"]                # needs consent, says parse_policy
    _, _, errors = offers.offer_of({"offer_id": "use-1", "spatial_mode": "listed"})
    assert list(errors) == ["areas"]
    _, _, errors = offers.offer_of({"offer_id": "use-1", "spatial_mode": "listed",
                                    "area_other": "282015"})
    assert list(errors) == ["areas"]                         # a wrong check digit


OR_FORM = {"offer_id": "hyogo-or-own", "alternatives": "2", "purposes": "研究",
           "type_municipality": "on", "spatial_mode": "listed", "area_28": "on",
           "alt1_spatial_mode": "sameMunicipality", "alt1_max_transfers": "10", "delete_days": "30"}


def test_alternatives_become_permissions_and_their_errors_find_their_group():
    offer, policy, errors = offers.offer_of(OR_FORM)
    assert not errors and policy is not None and len(policy.permissions) == 2
    or_policy = offer["policy"]
    first, second = offer["policy"]["permissions"]
    assert [c["leftOperand"] for c in first["constraints"]] == ["purpose", "consumerType", "spatial"]
    assert second["constraints"] == [
        {"leftOperand": "spatial", "operator": "eq", "rightOperand": "sameMunicipality"},
        {"leftOperand": "transferCount", "operator": "lteq", "rightOperand": 10}]
    assert offer["policy"]["duties"][0]["action"] == "delete"      # duties: the offer's, once
    # parse_policy's permissions[1].constraints[j] lands on alternative 1's field, not the first's
    _, _, errors = offers.offer_of({**OR_FORM, "alt1_identity_level": "2"})
    assert list(errors) == ["alt1_identity_level"] and "permissions[1]" in errors["alt1_identity_level"][0]
    _, _, errors = offers.offer_of({**OR_FORM, "alt1_spatial_mode": "listed",
                                    "alt1_area_other": "282015"})    # a wrong check digit
    assert list(errors) == ["alt1_areas"]
    _, _, errors = offers.offer_of({**OR_FORM, "alt1_max_transfers": "x", "valid_from": "y"})
    assert set(errors) == {"alt1_max_transfers", "valid_from"}
    # an alternative without any condition would let anyone in: refused
    _, _, errors = offers.offer_of({**OR_FORM, "alt1_spatial_mode": "any", "alt1_max_transfers": ""})
    assert errors == {"alt1_alternative": ["@datasets.offer.error.empty_alternative"]}
    # one alternative with no condition is the open offer it always was
    offer, _, errors = offers.offer_of({"offer_id": "open-use"})
    assert not errors and offer["policy"] == {"permissions": [{"action": "use", "constraints": []}]}
    # in words: every alternative, numbered in the rows
    words = policy_sentences(or_policy, "ja", "282103")
    assert words.alternatives == ("研究目的に限り、兵庫県内の市区町村が利用できます。",
                                  "提供者（加古川市（282103））自身の地方公共団体が利用できます。"
                                  "転送は最大 10 回まで。")
    assert words.duties.startswith("利用者の義務：受け取ってから 30 日以内")
    rows = policy_rows(or_policy)
    assert [parts for key, parts in rows if key == "datasets.policy.permission"] == [["1"], ["2"]]


def test_alternatives_are_added_and_removed_with_their_values():
    more = offers.regroup({**OR_FORM, "add_alternative": "1", "csrf_token": "t"}, add=True)
    assert more["alternatives"] == "3" and more["alt2_spatial_mode"] == "any"
    assert more["alt1_max_transfers"] == "10" and "csrf_token" not in more
    fewer = offers.regroup(OR_FORM, drop=0)            # the second moves up, values kept
    assert fewer == {"offer_id": "hyogo-or-own", "alternatives": "1", "delete_days": "30",
                     "spatial_mode": "sameMunicipality", "max_transfers": "10"}
    assert offers.regroup(fewer, drop=0) == fewer      # the last one stays
    full = {"offer_id": "x-1", "alternatives": str(offers.MAX_ALTERNATIVES)}
    assert offers.regroup(full, add=True)["alternatives"] == str(offers.MAX_ALTERNATIVES)
    for bad in ("0", "-1", "x", "99999"):
        assert offers.alternatives({"alternatives": bad}) in (1, offers.MAX_ALTERNATIVES)


def test_area_codes_are_valid_and_named():
    codes = [a.code for _, areas in municipality_groups() for a in areas]
    assert len(codes) == len(set(codes)) > 80
    for code in codes:
        validate_local_government_code(code)
    names = area_names()
    assert (names["282014"], names["283819"], names["271004"], names["28"]) == \
        ("姫路市", "稲美町", "大阪市", "兵庫県")
