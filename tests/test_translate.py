"""データ翻訳機能: mapping rules, rejects, 和暦, reports, NDJSON and the ``mapping test`` CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner

from connector.translate import MappingError, load_mapping
from connector.translate.cli import mapping as mapping_cli
from connector.translate.csvread import detect_encoding, prefetch, read_batches
from connector.translate.mapping import RULE_KEYS, Reject
from connector.translate.ndjson import encode_ndjson
from connector.translate.report import rejects_csv, rejects_table, summary
from connector.translate.units import conversion_factor
from connector.translate.wareki import DateError, parse_date, parse_dates
from mesh.errors import InvalidRequest
from mesh.standards import get_standard


def m(*columns: dict[str, Any], **top: Any):
    return load_mapping({"version": 1, "columns": list(columns), **top})


def batch(**cols: list[Any]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({k: pa.array(v, pa.string()) for k, v in cols.items()})


def run(mapping, b: pa.RecordBatch, first_row: int = 1):
    r = mapping.apply(b, first_row=first_row)
    return r.batch.to_pylist(), r.rejects


# ---------------------------------------------------------------------------- 和暦


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("令和5年4月1日", date(2023, 4, 1)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("R5.4.1", date(2023, 4, 1)),
        ("r5/4/1", date(2023, 4, 1)),
        ("Ｒ５．４．１", date(2023, 4, 1)),
        ("令和５年４月１日", date(2023, 4, 1)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("H31.4.30", date(2019, 4, 30)),
        ("平成元年1月8日", date(1989, 1, 8)),
        ("昭和64年1月7日", date(1989, 1, 7)),
        ("昭和六十四年一月七日", date(1989, 1, 7)),
        ("S50.10.10", date(1975, 10, 10)),
        ("大正元年7月30日", date(1912, 7, 30)),
        ("明治45年7月29日", date(1912, 7, 29)),
        ("明治元年1月25日", date(1868, 1, 25)),
        ("令5.4.1", date(2023, 4, 1)),
        ("令和 5 年 4 月 1 日", date(2023, 4, 1)),
        ("2023-04-01", date(2023, 4, 1)),
        ("2023/4/1", date(2023, 4, 1)),
        ("2023年4月1日", date(2023, 4, 1)),
        ("20230401", date(2023, 4, 1)),
    ],
)
def test_wareki_parses(text: str, expected: date):
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("令和0年1月1日", "year 0"),
        ("平成32年1月1日", "outside the 平成 era"),
        ("平成31年5月1日", "outside the 平成 era"),
        ("令和5年2月30日", "not a real date"),
        ("令和元年4月30日", "outside the 令和 era"),
        ("昭和64年1月8日", "outside"),
        ("明治元年1月1日", "outside the 明治 era"),
        ("2023-02-29", "not a real date"),
        ("令和", "not a 和暦"),
        ("R5.13.1", "not a real date"),
        ("きのう", "not a 和暦"),
    ],
)
def test_wareki_rejects_bad_dates(text: str, fragment: str):
    with pytest.raises(DateError) as info:
        parse_date(text)
    assert fragment in info.value.message and text in info.value.message and text in info.value.message_ja


def test_parse_dates_is_vectorised_over_unique_values():
    out, bad, errors = parse_dates(pa.array(["R5.4.1", "R5.4.1", None, "平成32年1月1日", "R5.4.1"]))
    assert out.to_pylist() == [date(2023, 4, 1)] * 2 + [None, None, date(2023, 4, 1)]
    assert bad.to_pylist() == [False, False, False, True, False]
    assert list(errors) == ["平成32年1月1日"]


# ---------------------------------------------------------------------------- rules


def test_rename_copy_trims_and_treats_empty_as_null():
    rows, rejects = run(m({"to": "名称", "from": "施設名"}), batch(施設名=[" 市役所 ", "", None]))
    assert rows == [{"名称": "市役所"}, {"名称": None}, {"名称": None}] and rejects == []


@pytest.mark.parametrize(
    ("cast", "values", "expected"),
    [
        ("int", ["1", "-2", "１２３", "1,234", ""], [1, -2, 123, 1234, None]),
        ("float", ["35.5", "３５．５", "1e3", "-0.5", ""], [35.5, 35.5, 1000.0, -0.5, None]),
        (
            "bool",
            ["はい", "いいえ", "有", "無", "true", "FALSE", "1", "0"],
            [True, False, True, False, True, False, True, False],
        ),
        ("date", ["2023-04-01", "2023/4/1", "2023年4月1日"], [date(2023, 4, 1)] * 3),
        ("datetime", ["2023-04-01 09:30:00", "2023/04/01T09:30"], [datetime(2023, 4, 1, 9, 30)] * 2),
        ("time", ["09:30", "9:30:15", "18時00分"], [time(9, 30), time(9, 30, 15), time(18, 0)]),
        ("string", ["a", "0001"], ["a", "0001"]),
    ],
)
def test_casts(cast: str, values: list[str], expected: list[Any]):
    rows, rejects = run(m({"to": "x", "from": "x", "cast": cast}), batch(x=values))
    assert rejects == [] and [r["x"] for r in rows] == expected


@pytest.mark.parametrize(
    ("cast", "bad"),
    [
        ("int", "abc"),
        ("int", "1.5"),
        ("int", "99999999999999999999"),
        ("float", "abc"),
        ("float", "nan"),
        ("bool", "たぶん"),
        ("date", "2023-02-30"),
        ("datetime", "きのう"),
        ("time", "25:00"),
    ],
)
def test_bad_casts_are_rejects_naming_the_value(cast: str, bad: str):
    rows, rejects = run(m({"to": "x", "from": "x", "cast": cast}), batch(x=[None, bad]), first_row=10)
    assert rows == [{"x": None}]
    assert len(rejects) == 1
    r = rejects[0]
    assert (r.row, r.column, r.value) == (11, "x", bad) and bad in r.reason and bad in r.reason_ja


def test_wareki_rule_and_bad_dates_are_rejects():
    mp = m({"to": "設置日", "from": "設置年月日", "wareki": True})
    rows, rejects = run(
        mp,
        batch(
            設置年月日=["令和5年4月1日", "令和0年4月1日", "平成32年1月1日", "令和5年2月30日", "R5.4.1", ""]
        ),
    )
    assert rows == [{"設置日": date(2023, 4, 1)}, {"設置日": date(2023, 4, 1)}, {"設置日": None}]
    assert [(r.row, r.value) for r in rejects] == [
        (2, "令和0年4月1日"),
        (3, "平成32年1月1日"),
        (4, "令和5年2月30日"),
    ]
    assert mp.output_schema.field("設置日").type == pa.date32()


def test_split_name_and_join():
    mp = m(
        {"to": "姓", "from": "氏名", "split_name": "family"},
        {"to": "名", "from": "氏名", "split_name": "given"},
        {"to": "氏名2", "join": ["姓", "名"], "sep": "　"},
    )
    rows, _ = run(
        mp,
        batch(
            氏名=["山田 太郎", "鈴木　花子", "佐藤  一 郎", "単独", None],
            姓=["a", "b", None, "", None],
            名=["c", None, "d", "", None],
        ),
    )
    assert [(r["姓"], r["名"]) for r in rows] == [
        ("山田", "太郎"),
        ("鈴木", "花子"),
        ("佐藤", "一 郎"),
        ("単独", None),
        (None, None),
    ]
    assert [r["氏名2"] for r in rows] == ["a　c", "b", "d", None, None]


def test_codes_default_and_unknown():
    rule = {"to": "小児対応", "from": "有無", "codes": {"有": "true", "無": "false"}, "default": "false"}
    rows, rejects = run(m(rule), batch(有無=["有", "無", "", "謎", "ｱﾘ"]))
    assert [r["小児対応"] for r in rows] == ["true", "false", "false"]
    assert [(r.row, r.column, r.value) for r in rejects] == [(4, "有無", "謎"), (5, "有無", "ｱﾘ")]
    assert "コード表" in rejects[0].reason_ja and "code table" in rejects[0].reason
    rows, rejects = run(m({**rule, "on_unknown": "keep"}), batch(有無=["有", "謎"]))
    assert [r["小児対応"] for r in rows] == ["true", "謎"] and rejects == []
    rows, rejects = run(m({**rule, "on_unknown": "null"}), batch(有無=["謎"]))
    assert rows == [{"小児対応": None}] and rejects == []


def test_codes_match_full_width_variants_and_cast():
    rows, rejects = run(
        m({"to": "n", "from": "c", "codes": {"A": "1", "B": "2"}, "cast": "int"}), batch(c=["Ａ", "B"])
    )
    assert rows == [{"n": 1}, {"n": 2}] and rejects == []


def test_unit_conversion():
    assert conversion_factor("tsubo", "m2") == pytest.approx(3.305785, rel=1e-6)
    mp = m(
        {"to": "面積_m2", "from": "坪", "unit": {"from": "tsubo", "to": "m2"}, "round": 2},
        {"to": "距離_m", "from": "km", "unit": {"from": "km", "to": "m"}},
        {"to": "面積_ha", "from": "m2", "unit": {"from": "m2", "to": "ha"}},
        {"to": "容量_m3", "from": "千m3", "unit": {"from": "千m3", "to": "m3"}},
    )
    rows, rejects = run(mp, batch(坪=["100", "x"], km=["1.5", "2"], m2=["25000", "1"], 千m3=["2", "3"]))
    assert rows == [{"面積_m2": 330.58, "距離_m": 1500.0, "面積_ha": 2.5, "容量_m3": 2000.0}]
    assert [(r.row, r.column, r.value) for r in rejects] == [(2, "坪", "x")]


def test_constant_and_required():
    mp = m(
        {"to": "市区町村コード", "value": "282014"},
        {"to": "電話番号", "from": "電話番号", "required": True},
        {"to": "n", "value": 3, "cast": "int"},
    )
    rows, rejects = run(mp, batch(電話番号=["078-000-0000", "", None, "  "]), first_row=2)
    assert rows == [{"市区町村コード": "282014", "電話番号": "078-000-0000", "n": 3}]
    assert [(r.row, r.column, r.value) for r in rejects] == [
        (3, "電話番号", None),
        (4, "電話番号", None),
        (5, "電話番号", None),
    ]
    assert "必須" in rejects[0].reason_ja and "required" in rejects[0].reason


def test_required_with_default_is_satisfied_and_required_does_not_double_report():
    mp = m({"to": "n", "from": "n", "cast": "int", "required": True, "default": 0})
    rows, rejects = run(mp, batch(n=["", "abc"]))
    assert rows == [{"n": 0}] and len(rejects) == 1 and "integer" in rejects[0].reason


def test_row_failing_several_rules_is_reported_per_rule_and_removed_once():
    mp = m(
        {"to": "a", "from": "a", "cast": "int"},
        {"to": "b", "from": "b", "wareki": True},
        {"to": "c", "from": "c", "required": True},
    )
    rows, rejects = run(mp, batch(a=["x", "1"], b=["令和0年1月1日", "R1.5.1"], c=["", "ok"]), first_row=1)
    assert rows == [{"a": 1, "b": date(2019, 5, 1), "c": "ok"}]
    assert [(r.row, r.column) for r in rejects] == [(1, "a"), (1, "b"), (1, "c")]


def test_reject_rows_are_correct_across_batches():
    mp = m({"to": "n", "from": "n", "cast": "int"})
    values = [str(i) if i % 7 else "bad" for i in range(1, 101)]
    rows_seen, rejects_seen = 0, []
    table = pa.table({"n": pa.array(values, pa.string())})
    for b in table.to_batches(max_chunksize=16):
        result = mp.apply(b, first_row=rows_seen + 1)
        rows_seen += b.num_rows
        rejects_seen += result.rejects
    assert [r.row for r in rejects_seen] == [i for i in range(1, 101) if i % 7 == 0]
    assert all(values[r.row - 1] == "bad" == r.value for r in rejects_seen)


def test_combination_of_all_rules_keeps_order_and_types():
    mp = m(
        {"to": "名称", "from": "名称"},
        {"to": "緯度", "from": "緯度", "cast": "float"},
        {"to": "設置日", "from": "設置年月日", "wareki": True},
        {"to": "姓", "from": "氏名", "split_name": "family"},
        {
            "to": "小児対応",
            "from": "小児",
            "codes": {"有": "true", "無": "false"},
            "cast": "bool",
            "default": "false",
        },
        {"to": "面積_m2", "from": "面積_坪", "unit": {"from": "tsubo", "to": "m2"}, "round": 1},
        {"to": "市区町村コード", "value": "282014"},
        {"to": "電話番号", "from": "電話番号", "required": True},
    )
    assert mp.output_schema.names == [
        "名称",
        "緯度",
        "設置日",
        "姓",
        "小児対応",
        "面積_m2",
        "市区町村コード",
        "電話番号",
    ]
    assert [f.type for f in mp.output_schema] == [
        pa.string(),
        pa.float64(),
        pa.date32(),
        pa.string(),
        pa.bool_(),
        pa.float64(),
        pa.string(),
        pa.string(),
    ]
    rows, rejects = run(
        mp,
        batch(
            名称=["市役所"],
            緯度=["34.69"],
            設置年月日=["R2.1.1"],
            氏名=["山田 太郎"],
            小児=[""],
            面積_坪=["10"],
            電話番号=["079"],
        ),
    )
    assert rejects == [] and rows == [
        {
            "名称": "市役所",
            "緯度": 34.69,
            "設置日": date(2020, 1, 1),
            "姓": "山田",
            "小児対応": False,
            "面積_m2": 33.1,
            "市区町村コード": "282014",
            "電話番号": "079",
        }
    ]
    assert mp.input_columns == ["名称", "緯度", "設置年月日", "氏名", "小児", "面積_坪", "電話番号"]


def test_non_string_input_columns_are_read_as_text():
    b = pa.RecordBatch.from_pydict({"n": pa.array([1, 2]), "f": pa.array([1.5, None])})
    rows, _ = run(m({"to": "n", "from": "n", "cast": "int"}, {"to": "f", "from": "f"}), b)
    assert rows == [{"n": 1, "f": "1.5"}, {"n": 2, "f": None}]


# ---------------------------------------------------------------------------- bad mappings


@pytest.mark.parametrize(
    ("doc", "fragments"),
    [
        (
            {"version": 1, "columns": [{"to": "a", "from": "a"}, {"to": "b", "from": "b", "trim": True}]},
            ["columns[1]", "'trim'", "valid keys", "split_name"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "cast": "decimal"}]},
            ["columns[0]", "cast", "'decimal'", "int"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "split_name": "middle"}]},
            ["split_name", "family, given"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "unit": {"from": "furlong", "to": "m"}}]},
            ["unit", "'furlong'", "tsubo"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "unit": {"from": "km", "to": "m2"}}]},
            ["length", "area"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "codes": {"x": "y"}, "on_unknown": "drop"}]},
            ["on_unknown"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "on_unknown": "keep"}]},
            ["only goes with 'codes'"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "wareki": True, "cast": "int"}]},
            ["cannot be combined"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "value": "1"}]},
            ["exactly one of from, value, join"],
        ),
        ({"version": 1, "columns": [{"to": "a"}]}, ["exactly one"]),
        ({"version": 1, "columns": [{"from": "a"}]}, ["'to'"]),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a"}, {"to": "a", "from": "b"}]},
            ["already made by columns[0]"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "cast": "int", "default": "abc"}]},
            ["default", "'abc'"],
        ),
        (
            {"version": 1, "columns": [{"to": "a", "from": "a", "wareki": True, "default": "令和0年1月1日"}]},
            ["default"],
        ),
        ({"version": 1, "columns": [{"to": "a", "from": "a", "round": 2}]}, ["round"]),
        ({"version": 1, "columns": [{"to": "a", "from": "a", "required": "yes"}]}, ["required"]),
        ({"version": 1, "columns": [{"to": "a", "from": "a", "sep": ","}]}, ["sep"]),
        ({"version": 1, "columns": ["a"]}, ["columns[0]"]),
        ({"version": 2, "columns": [{"to": "a", "from": "a"}]}, ["version"]),
        ({"version": 1, "columns": []}, ["columns"]),
        ({"version": 1, "colums": []}, ["unknown top-level key 'colums'"]),
        (
            {"version": 1, "target_standard": "存在しない一覧", "columns": [{"to": "a", "from": "a"}]},
            ["unknown standard"],
        ),
        ([1, 2], ["must be a mapping"]),
    ],
)
def test_bad_mappings_raise_mapping_error(doc: Any, fragments: list[str]):
    with pytest.raises(MappingError) as info:
        load_mapping(yaml.safe_dump(doc, allow_unicode=True).encode())
    assert isinstance(info.value, InvalidRequest) and info.value.message_ja
    for fragment in fragments:
        assert fragment in info.value.message


def test_unknown_key_details_name_rule_and_valid_keys():
    with pytest.raises(MappingError) as info:
        m({"to": "a", "from": "a"}, {"to": "b", "from": "b", "lookup": "x"})
    assert info.value.details == {"rule": 1, "key": "lookup", "valid_keys": list(RULE_KEYS)}
    assert info.value.code == "invalid_mapping"


def test_yaml_boolean_column_name_gets_a_hint():
    with pytest.raises(MappingError, match="quote the column name"):
        load_mapping(b"version: 1\ncolumns:\n  - {to: ID, join: [NO, x]}\n")


def test_join_keeps_rows_whose_parts_are_all_null():
    rows, _ = run(
        m({"to": "j", "join": ["a", "b"], "sep": "-"}), batch(a=["x", None, None], b=[None, None, "y"])
    )
    assert rows == [{"j": "x"}, {"j": None}, {"j": "y"}]


def test_bad_yaml_and_missing_file(tmp_path: Path):
    with pytest.raises(MappingError):
        load_mapping(b"version: [1\n")
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "nope.yaml")


def test_missing_input_column_is_a_mapping_error():
    with pytest.raises(MappingError, match="'氏名'"):
        m({"to": "姓", "from": "氏名", "split_name": "family"}).apply(batch(名前=["x"]), first_row=1)


# ---------------------------------------------------------------------------- standards


def _aed_conforming_columns() -> list[dict[str, Any]]:
    standard = get_standard("AED設置箇所一覧")
    constants = {
        "全国地方公共団体コード": "282014",
        "所在地_全国地方公共団体コード": "282014",
        "屋内／屋外区分": "屋内",
        "24時間利用可能可否": "可",
        "所在地_都道府県": "兵庫県",
        "法人番号": "1234567890123",
    }
    columns: list[dict[str, Any]] = []
    for f in standard.fields:
        if f.name in ("名称", "小児対応設備の有無", "緯度"):
            rule: dict[str, Any] = {"to": f.name, "from": f.name}
            if f.type == "number":
                rule["cast"] = "float"
            columns.append(rule)
        elif f.required:
            number = f.type == "number"
            columns.append(
                {
                    "to": f.name,
                    "value": constants.get(f.name, "135.0" if number else "x"),
                    **({"cast": "float"} if number else {}),
                }
            )
    return columns


def test_target_standard_conforming_mapping_checks_values():
    mp = m(*_aed_conforming_columns(), target_standard="AED設置箇所一覧")
    assert not [n for n in mp.standard_notes if n.is_error]
    rows, rejects = run(
        mp,
        batch(
            名称=["市役所", "", "図書館"],
            小児対応設備の有無=["あり", "なし", "有"],
            緯度=["34.8", "34.8", "34.8"],
        ),
    )
    assert [r["名称"] for r in rows] == ["市役所"]
    assert [(r.row, r.column, r.value) for r in rejects] == [
        (2, "名称", None),
        (3, "小児対応設備の有無", "有"),
    ]
    assert "AED設置箇所一覧" in rejects[1].reason_ja and "あり" in rejects[1].reason_ja


def test_target_standard_reports_mismatching_columns():
    with pytest.raises(MappingError) as info:
        m(
            {"to": "名称", "from": "名称"},
            {"to": "緯度", "from": "緯度", "cast": "bool"},
            target_standard="aed",
        )
    kinds = {(d["column"], d["kind"]) for d in info.value.details["mismatches"]}
    assert ("緯度", "type") in kinds and ("ID", "missing") in kinds and ("名称", "missing") not in kinds
    assert "緯度" in info.value.message and "AED設置箇所一覧" in info.value.message_ja


def test_table_schema_of_output():
    mp = m(
        {"to": "a", "from": "a", "cast": "int"},
        {"to": "b", "from": "b", "wareki": True},
        {"to": "c", "from": "c", "unit": {"from": "ha", "to": "m2"}},
    )
    assert mp.table_schema() == {
        "fields": [
            {"name": "a", "type": "integer"},
            {"name": "b", "type": "date"},
            {"name": "c", "type": "number"},
        ]
    }


# ---------------------------------------------------------------------------- reports and NDJSON


REJECTS = [
    Reject(3, "緯度", "x", "'x' is not a number", "「x」は数値として読めません"),
    Reject(7, "電話番号", None, "a value is required", "必須です"),
]


def test_reports():
    table = rejects_table(REJECTS)
    assert "緯度" in table and "「x」は数値として読めません / 'x' is not a number" in table
    assert rejects_table(REJECTS, limit=1).rstrip().endswith("1 more")
    rows = list(csv.reader(io.StringIO(rejects_csv(REJECTS))))
    assert rows[0][0].startswith("行") and rows[1] == [
        "3",
        "緯度",
        "x",
        "「x」は数値として読めません",
        "'x' is not a number",
    ]
    assert "2 of 10 rows rejected" in summary(REJECTS, total_rows=10)
    assert "none rejected" in summary([], total_rows=10)


def test_ndjson_round_trips():
    b = pa.RecordBatch.from_pydict(
        {
            "名": pa.array(['x"y\\z', None, "改\n行"]),
            "f": pa.array([1.5, float("nan"), None]),
            "i": pa.array([1, None, 3]),
            "b": pa.array([True, False, None]),
            "d": pa.array([date(2023, 4, 1), None, date(2020, 1, 1)], pa.date32()),
            "s": pa.array(["a", "b", "c"]),
        }
    )
    lines = [json.loads(line) for line in encode_ndjson(b).decode().splitlines()]
    assert lines == [
        {"名": 'x"y\\z', "f": 1.5, "i": 1, "b": True, "d": "2023-04-01", "s": "a"},
        {"名": None, "f": None, "i": None, "b": False, "d": None, "s": "b"},
        {"名": "改\n行", "f": None, "i": 3, "b": None, "d": "2020-01-01", "s": "c"},
    ]
    assert encode_ndjson(b.slice(1, 1)).count(b"\n") == 1 and encode_ndjson(b.slice(0, 0)) == b""


# ---------------------------------------------------------------------------- CSV reading and the CLI

AED_2019_HEADER = (
    "都道府県コード又は市区町村コード,NO,都道府県名,市区町村名,名称,名称_カナ,住所,方書,緯度,経度,設置位置,"
    "電話番号,内線番号,法人番号,団体名,利用可能曜日,開始時間,終了時間,利用可能日時特記事項,小児対応設備の有無,URL,備考"
)
AED_ROWS = [
    "282014,1,兵庫県,姫路市,姫路市役所,ヒメジシヤクショ,兵庫県姫路市安田四丁目1番地,,34.8151,134.6854,1階ロビー,"
    "079-221-2111,,,,月火水木金,08:35,17:20,,有,https://www.city.himeji.lg.jp/,",
    "282014,2,兵庫県,姫路市,姫路市立図書館,ヒメジシリツトショカン,兵庫県姫路市本町68番地の290,,北緯,134.69,入口,"
    "079-289-4888,,,,火水木金土日,09:30,19:00,,無,,",
    "282014,3,兵庫県,姫路市,花の北市民広場,ハナノキタシミンヒロバ,兵庫県姫路市新在家本町6丁目10番1号,,34.8301,"
    '134.6797,事務所,,,,,月火水木金土日,09:00,21:00,,不明,,"備考,カンマ入り"',
]
AED_MAPPING = """\
version: 1
name: 姫路市AED 2019 → 標準
columns:
  - {to: 全国地方公共団体コード, from: 都道府県コード又は市区町村コード}
  - {to: ID, join: [都道府県コード又は市区町村コード, "NO"], sep: "-"}
  - {to: 名称, from: 名称, required: true}
  - {to: 緯度, from: 緯度, cast: float}
  - {to: 経度, from: 経度, cast: float}
  - {to: 電話番号, from: 電話番号, required: true}
  - {to: 開始時間, from: 開始時間, cast: time}
  - {to: 小児対応設備の有無, from: 小児対応設備の有無, codes: {有: あり, 無: なし}, default: 未確認}
"""


@pytest.fixture
def aed_files(tmp_path: Path) -> tuple[Path, Path]:
    csv_path = tmp_path / "aed.csv"
    csv_path.write_bytes(("\r\n".join([AED_2019_HEADER, *AED_ROWS]) + "\r\n").encode("cp932"))
    mapping_path = tmp_path / "aed.yaml"
    mapping_path.write_text(AED_MAPPING, encoding="utf-8")
    return csv_path, mapping_path


def test_read_batches_cp932_and_utf8(aed_files: tuple[Path, Path], tmp_path: Path):
    csv_path, _ = aed_files
    assert detect_encoding(csv_path) == "cp932"
    names, used, batches = read_batches(csv_path)
    table = pa.Table.from_batches(list(batches))
    assert used == "cp932" and names[0] == "都道府県コード又は市区町村コード" and table.num_rows == 3
    assert (
        set(table.schema.types) == {pa.string()} and table.column("備考").to_pylist()[2] == "備考,カンマ入り"
    )
    utf8 = tmp_path / "u.csv"
    utf8.write_text("\ufeff" + AED_2019_HEADER + "\n" + AED_ROWS[0] + "\n", encoding="utf-8")
    names, used, batches = read_batches(utf8)
    assert used == "utf-8" and names[0] == "都道府県コード又は市区町村コード"


def test_cli_reports_rejects_with_exit_code_3(aed_files: tuple[Path, Path], tmp_path: Path):
    csv_path, mapping_path = aed_files
    out = tmp_path / "rejects.csv"
    result = CliRunner().invoke(
        mapping_cli,
        ["test", "--mapping", str(mapping_path), "--input", str(csv_path), "--rejects-out", str(out)],
    )
    assert result.exit_code == 3, result.output
    assert "姫路市役所" in result.output and "cp932" in result.output
    assert "1 of 3 rows rejected" not in result.output and "2 of 3 rows rejected" in result.output
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    # Row numbers count the header as row 1: the 2nd data row is CSV row 3.
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        ("3", "緯度", "北緯"),
        ("4", "電話番号", ""),
        ("4", "小児対応設備の有無", "不明"),
    ]


def test_cli_clean_input_exits_0_and_limit(aed_files: tuple[Path, Path]):
    csv_path, mapping_path = aed_files
    result = CliRunner().invoke(
        mapping_cli,
        [
            "test",
            "--mapping",
            str(mapping_path),
            "--input",
            str(csv_path),
            "--limit",
            "1",
            "--encoding",
            "cp932",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "none rejected" in result.output and "あり" in result.output


def test_cli_bad_mapping_exits_2(aed_files: tuple[Path, Path], tmp_path: Path):
    csv_path, _ = aed_files
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ncolumns:\n  - {to: 名称, from: 名称, lookup: x}\n", encoding="utf-8")
    result = CliRunner().invoke(mapping_cli, ["test", "--mapping", str(bad), "--input", str(csv_path)])
    assert result.exit_code == 2 and "lookup" in result.output
    missing = tmp_path / "missing.yaml"
    missing.write_text("version: 1\ncolumns:\n  - {to: 名称, from: 施設名}\n", encoding="utf-8")
    result = CliRunner().invoke(mapping_cli, ["test", "--mapping", str(missing), "--input", str(csv_path)])
    assert result.exit_code == 2 and "施設名" in result.output


def test_prefetch_yields_everything_and_raises_reader_errors():
    batches = [pa.record_batch({"a": [i]}) for i in range(10)]
    assert [b["a"][0].as_py() for b in prefetch(iter(batches), depth=2)] == list(range(10))

    def broken():
        yield batches[0]
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(prefetch(broken()))
    first = next(prefetch(iter(batches), depth=1))  # abandoning the iterator must not hang
    assert first["a"][0].as_py() == 0
