"""Tests for mesh/standards: the shipped standard Table Schemas and the column checkers."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

import mesh.standards as standards
from mesh.errors import InvalidRequest, NotFound
from mesh.standards import (
    STANDARD_TYPES,
    ColumnMismatch,
    check_csv_header,
    check_table_schema,
    get_standard,
    normalize_header,
    validate_table_schema,
)

FILES = {
    "aed.json": "AED設置箇所一覧",
    "evacuation_sites.json": "指定緊急避難場所一覧",
    "public_facilities.json": "公共施設一覧",
    "tourist_facilities.json": "観光施設一覧",
    "events.json": "イベント一覧",
    "medical_institutions.json": "医療機関一覧",
    "childcare_facilities.json": "子育て施設一覧",
    "public_toilets.json": "公衆トイレ一覧",
}

# The AED table (3.4 健康・医療分野 1) AED設置場所) of the Digital Agency's
# 「エリアデータ活用のためのデータモデル（実践ガイドブック：参考ドキュメント）」(2026-09-04), in its order.
AED_HEADER = [
    "全国地方公共団体コード", "ID", "地方公共団体名", "名称", "名称_英字", "設置位置区分", "屋内／屋外区分",
    "24時間利用可能可否", "小児対応設備の有無", "所在地_全国地方公共団体コード", "町字ID", "所在地_連結表記",
    "所在地_都道府県", "所在地_市区町村", "所在地_町字", "所在地_番地以下", "建物名等(方書)", "郵便番号",
    "緯度", "経度", "高度の種別", "高度の値", "電話番号", "内線番号", "連絡先メールアドレス", "連絡先FormURL",
    "連絡先備考", "管理者連絡先電話番号（緊急時）", "法人番号", "団体名", "利用可能曜日", "開始時間",
    "終了時間", "利用可能日時特記事項", "URL", "画像URL（配列）", "備考",
]
AED_ENGLISH = [
    "localGovernmentCode", "identifier", "localGovernmentName", "name", "nameEn", "installationLocation",
    "indoorOutdoorType", "fullTimeAvailable", "pediatricSupport", "locatedLocalGovernmentCode",
    "streetAddressId", "fullAddress", "prefecture", "city", "streetAddress", "cityBlock", "buildingNameEtc",
    "contactPointPostalCode", "latitude", "longitude", "heightType", "height", "contactPointPhoneNumber",
    "contactPointExtension", "contactPointEmailAddress", "contactPointFormUrl", "contactPointRemarks",
    "emergencyContactPoint", "legalEntityNumber", "organizer", "serviceDay", "startTime", "endTime",
    "dateTimeRemarks", "url", "pictureUrl", "remarks",
]
# The 2019 推奨データセット layout of 指定緊急避難場所一覧 (the fallback), in its order.
EVACUATION_2019 = [
    "NO", "名称", "名称_カナ", "住所", "方書", "緯度", "経度", "標高", "電話番号", "内線番号",
    "市区町村コード", "都道府県名", "市区町村名", "災害種別_洪水", "災害種別_崖崩れ、土石流及び地滑り",
    "災害種別_高潮", "災害種別_地震", "災害種別_津波", "災害種別_大規模な火事", "災害種別_内水氾濫",
    "災害種別_火山現象", "指定避難所との重複", "想定収容人数", "対象となる町会・自治会", "URL", "備考",
]
# An AED CSV header as many portals still publish it (the 2019 推奨データセット layout).
AED_2019_HEADER = (
    "都道府県コード又は市区町村コード,NO,都道府県名,市区町村名,名称,名称_カナ,住所,方書,緯度,経度,設置位置,電話番号,"
    "内線番号,法人番号,団体名,利用可能曜日,開始時間,終了時間,利用可能日時特記事項,小児対応設備の有無,URL,備考"
).split(",")


def conforming(type_name: str) -> dict:
    """A dataset Table Schema that copies the standard's names and types."""
    return {"fields": [{"name": f.name, "type": f.type} for f in get_standard(type_name).fields]}


def kinds(found: list[ColumnMismatch]) -> list[tuple[str, str]]:
    return [(m.kind, m.column) for m in found]


# ---------------------------------------------------------------------------- shipped schemas


def test_every_dataset_type_is_shipped_and_keyed_by_japanese_title():
    assert set(STANDARD_TYPES) == set(FILES.values())
    package = resources.files("mesh.standards")
    assert {e.name for e in package.iterdir() if e.name.endswith(".json")} == set(FILES)
    for filename, title in FILES.items():
        assert STANDARD_TYPES[title].name == filename.removesuffix(".json")


@pytest.mark.parametrize("filename", sorted(FILES))
def test_shipped_schema_is_valid_with_metadata(filename: str):
    doc = json.loads((resources.files("mesh.standards") / filename).read_text(encoding="utf-8"))
    assert validate_table_schema(doc) == []
    assert re.fullmatch(r"[a-z_]+", doc["name"]) and doc["name"] == filename.removesuffix(".json")
    assert doc["title"] == FILES[filename]
    for key in ("title_en", "source", "description"):
        assert isinstance(doc[key], str) and doc[key].strip(), key
    assert "Licen" in doc["source"] and ("PDL" in doc["source"] or "CC BY" in doc["source"])
    assert len(doc["fields"]) >= 5
    for f in doc["fields"]:
        assert f["name"].strip() and f["title_en"].strip()
        assert isinstance(f["constraints"]["required"], bool)
    assert any(f["constraints"]["required"] for f in doc["fields"])
    # a file loads into the same standard that STANDARD_TYPES serves
    assert get_standard(doc["title"]).table_schema() == doc


def test_aed_headers_are_the_official_order_of_the_source():
    aed = get_standard("AED設置箇所一覧")
    assert aed.column_names == AED_HEADER
    assert [f.title_en for f in aed.fields] == AED_ENGLISH
    assert "エリアデータ活用のためのデータモデル" in aed.source and "3.4" in aed.source
    assert aed.field("緯度").type == "number" and aed.field("緯度").required
    assert aed.field("開始時間").type == "time" and not aed.field("開始時間").required
    assert aed.field("小児対応設備の有無").enum == ("あり", "なし", "未確認")
    assert aed.field("所在地_都道府県").enum[0] == "北海道" and len(aed.field("所在地_都道府県").enum) == 47
    assert aed.primary_key == ("ID",)


def test_evacuation_sites_fall_back_to_2019_layout_and_say_so():
    evac = get_standard("指定緊急避難場所一覧")
    assert evac.column_names == EVACUATION_2019
    assert "推奨データセット" in evac.source
    assert "FALLBACK" in evac.description and "2019" in evac.description
    assert evac.required_columns == ["NO", "名称", "名称_カナ", "住所", "電話番号", "市区町村コード"]
    assert evac.field("災害種別_津波").enum == ("1",)


def test_guideline_types_map_to_table_schema_types():
    events = get_standard("イベント一覧")
    assert events.field("開始日").type == "date"
    assert events.field("開始時間").type == "time" and events.field("開始時間").format == "%H:%M"
    assert events.field("イベントURL").format == "uri"
    assert events.field("料金_基本").type == "number"
    assert events.field("全国地方公共団体コード").pattern == "^[0-9]{6}$"
    assert get_standard("観光施設一覧").column_names[-3:] == ["画像URL（配列）", "URL", "備考"]


def test_standard_types_is_loaded_lazily_and_cached(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(standards, "_loaded", None)
    assert "STANDARD_TYPES" not in vars(standards)
    first = standards.STANDARD_TYPES
    assert standards.STANDARD_TYPES is first
    assert isinstance(first, dict) and len(first) == len(FILES)
    with pytest.raises(AttributeError):
        _ = standards.NOT_A_THING


def test_table_schema_returns_a_copy():
    doc = get_standard("aed").table_schema()
    doc["fields"].clear()
    assert len(get_standard("aed").table_schema()["fields"]) == len(AED_HEADER)


# ---------------------------------------------------------------------------- get_standard


def test_get_standard_by_title_id_and_width_variant():
    aed = get_standard("AED設置箇所一覧")
    assert get_standard("aed") is aed
    assert get_standard("ＡＥＤ設置箇所一覧") is aed  # full-width AED


def test_unknown_type_raises_not_found_in_both_languages():
    with pytest.raises(NotFound) as info:
        get_standard("ゴミ収集日一覧")
    err = info.value
    assert err.code == "not_found" and err.http_status == 404
    assert "ゴミ収集日一覧" in err.message and "unknown" in err.message
    assert "AED設置箇所一覧" in err.message
    assert err.message_ja and "ゴミ収集日一覧" in err.message_ja and "公衆トイレ一覧" in err.message_ja
    assert set(err.details["known_types"]) == set(FILES.values())
    with pytest.raises(NotFound):
        check_table_schema("ゴミ収集日一覧", conforming("aed"))
    with pytest.raises(NotFound):
        check_csv_header("ゴミ収集日一覧", AED_HEADER)


# ---------------------------------------------------------------------------- check_table_schema


@pytest.mark.parametrize("title", sorted(FILES.values()))
def test_conforming_schema_gives_no_mismatch(title: str):
    assert check_table_schema(title, conforming(title)) == []
    assert check_csv_header(title, get_standard(title).column_names) == []


def test_missing_required_column_is_reported_by_name():
    schema = conforming("aed")
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "名称"]
    found = check_table_schema("aed", schema)
    assert kinds(found) == [("missing", "名称")]
    m = found[0]
    assert m.is_error and m.expected == "4" and m.actual is None
    assert "名称" in m.message and "required" in m.message
    assert "名称" in m.message_ja and "必須" in m.message_ja


def test_missing_optional_column_is_a_deviation_not_an_error():
    schema = conforming("aed")
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "備考"]
    found = check_table_schema("aed", schema)
    assert kinds(found) == [("missing_optional", "備考")]
    assert not found[0].is_error


def test_type_mismatch_is_reported():
    schema = conforming("aed")
    for f in schema["fields"]:
        if f["name"] == "緯度":
            f["type"] = "string"
        if f["name"] == "全国地方公共団体コード":
            f["type"] = "integer"  # would drop the leading zero of 011002
    found = check_table_schema("aed", schema)
    assert kinds(found) == [("type", "全国地方公共団体コード"), ("type", "緯度")]
    lat = found[1]
    assert (lat.expected, lat.actual) == ("number", "string") and lat.is_error
    assert "number" in lat.message and "string" in lat.message_ja


def test_integer_is_compatible_with_number_but_not_the_reverse():
    schema = conforming("public_toilets")
    for f in schema["fields"]:
        if f["name"] == "男性トイレ総数":
            f["type"] = "integer"
    assert check_table_schema("public_toilets", schema) == []
    for f in schema["fields"]:
        if f["name"] == "名称":
            f["type"] = "number"
    assert kinds(check_table_schema("public_toilets", schema)) == [("type", "名称")]


def test_absent_type_means_string():
    schema = conforming("aed")
    for f in schema["fields"]:
        if f["type"] == "string":
            del f["type"]
    assert check_table_schema("aed", schema) == []
    del next(f for f in schema["fields"] if f["name"] == "経度")["type"]
    assert kinds(check_table_schema("aed", schema)) == [("type", "経度")]


def test_extra_column_is_reported_but_not_an_error():
    schema = conforming("aed")
    schema["fields"].insert(3, {"name": "設置台数", "type": "integer"})
    found = check_table_schema("aed", schema)
    assert kinds(found) == [("extra", "設置台数")]
    assert found[0].actual == "4" and not found[0].is_error
    assert "設置台数" in found[0].message_ja


def test_order_difference_is_informational():
    schema = conforming("aed")
    fields = schema["fields"]
    fields.insert(0, fields.pop(fields.index(next(f for f in fields if f["name"] == "備考"))))
    found = check_table_schema("aed", schema)
    assert kinds(found) == [("order", "備考")]  # only the moved column, not every column after it
    assert (found[0].expected, found[0].actual) == (str(len(AED_HEADER)), "1")
    assert not found[0].is_error


def test_swapped_columns_report_one_moved_column():
    schema = conforming("aed")
    f = schema["fields"]
    f[18], f[19] = f[19], f[18]  # 緯度 / 経度
    found = check_table_schema("aed", schema)
    assert len(found) == 1 and found[0].kind == "order" and found[0].column in {"緯度", "経度"}


def test_duplicate_column_is_an_error():
    schema = conforming("aed")
    schema["fields"].append({"name": "緯度", "type": "number"})
    found = check_table_schema("aed", schema)
    assert kinds(found) == [("duplicate", "緯度")]
    assert found[0].is_error and (found[0].expected, found[0].actual) == ("19", str(len(AED_HEADER) + 1))


def test_unreadable_schema_raises_invalid_request():
    with pytest.raises(InvalidRequest) as info:
        check_table_schema("aed", {"fields": "名称,緯度"})
    assert "fields" in info.value.message and info.value.message_ja
    with pytest.raises(InvalidRequest):
        check_table_schema("aed", {"fields": [{"type": "string"}]})


def test_2019_aed_header_does_not_conform_to_the_guideline_layout():
    found = check_csv_header("aed", AED_2019_HEADER)
    by_kind = {k: {m.column for m in found if m.kind == k} for k in {m.kind for m in found}}
    assert {"都道府県コード又は市区町村コード", "NO", "住所", "方書", "設置位置"} <= by_kind["extra"]
    assert {"全国地方公共団体コード", "ID", "所在地_連結表記", "名称_英字"} <= by_kind["missing"]
    assert "名称" not in by_kind["missing"]


# ---------------------------------------------------------------------------- check_csv_header


def test_csv_header_accepts_full_width_and_bom_variants():
    header = list(AED_HEADER)
    header[0] = "\ufeff" + header[0]  # Excel's UTF-8 BOM
    header[header.index("URL")] = "ＵＲＬ"
    header[header.index("建物名等(方書)")] = "建物名等（方書）"
    header[header.index("24時間利用可能可否")] = "２４時間利用可能可否"
    header[header.index("連絡先FormURL")] = " 連絡先ＦｏｒｍＵＲＬ "
    assert check_csv_header("AED設置箇所一覧", header) == []
    assert normalize_header("ＵＲＬ") == "URL"


def test_csv_header_reports_missing_extra_and_order():
    header = [h for h in AED_HEADER if h not in {"名称", "備考"}] + ["独自項目"]
    header[0], header[1] = header[1], header[0]
    found = check_csv_header("aed", header)
    assert sorted(kinds(found)) == sorted([
        ("extra", "独自項目"), ("missing", "名称"), ("missing_optional", "備考"),
        ("order", found[-1].column)])
    assert found[-1].column in {"全国地方公共団体コード", "ID"}
    assert all(m.kind != "type" for m in found)


def test_csv_header_must_be_a_list_of_strings():
    with pytest.raises(InvalidRequest):
        check_csv_header("aed", ",".join(AED_HEADER))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        check_csv_header("aed", [*AED_HEADER[:-1], None])  # type: ignore[list-item]


def test_column_mismatch_is_frozen():
    m = check_csv_header("aed", AED_HEADER[1:])[0]
    with pytest.raises(AttributeError):
        m.kind = "extra"  # type: ignore[misc]


# ---------------------------------------------------------------------------- validate_table_schema


def test_validate_accepts_a_minimal_schema():
    assert validate_table_schema({"fields": [{"name": "名称"}]}) == []
    constraints = {"required": True, "enum": [1, 2], "pattern": "^[0-9]+$", "minLength": 0}
    schema = {"fields": [{"name": "a", "type": "integer", "constraints": constraints}], "primaryKey": ["a"]}
    assert validate_table_schema(schema) == []


@pytest.mark.parametrize(("schema", "needle"), [
    ([], "JSON object"),
    ({}, "'fields' is missing"),
    ({"fields": {}}, "must be a list"),
    ({"fields": []}, "empty"),
    ({"fields": ["名称"]}, "fields[0] must be an object"),
    ({"fields": [{"type": "string"}]}, "fields[0] has no name"),
    ({"fields": [{"name": "  "}]}, "fields[0] has no name"),
    ({"fields": [{"name": "a"}, {"name": "a"}]}, "duplicate name 'a' (first at fields[0])"),
    ({"fields": [{"name": "a", "type": "text"}]}, "unknown type 'text'"),
    ({"fields": [{"name": "a", "format": 3}]}, "'format' must be a string"),
    ({"fields": [{"name": "a", "constraints": []}]}, "'constraints' must be an object"),
    ({"fields": [{"name": "a", "constraints": {"required": "yes"}}]}, "constraints.required"),
    ({"fields": [{"name": "a", "constraints": {"enum": []}}]}, "constraints.enum"),
    ({"fields": [{"name": "a", "constraints": {"pattern": "("}}]}, "not a valid regular expression"),
    ({"fields": [{"name": "a", "constraints": {"maxLength": -1}}]}, "constraints.maxLength"),
    ({"fields": [{"name": "a"}], "primaryKey": "b"}, "'primaryKey' names 'b'"),
    ({"fields": [{"name": "a"}], "primaryKey": []}, "'primaryKey' must be"),
])
def test_validate_reports_structural_errors(schema: object, needle: str):
    errors = validate_table_schema(schema)
    assert errors, schema
    assert any(needle in e for e in errors), errors


def test_validate_reports_every_problem_not_just_the_first():
    errors = validate_table_schema({"fields": [{"name": ""}, {"name": "a", "type": "str"}, {"name": "a"}]})
    assert len(errors) == 3
