"""Demo data: the synthetic 姫路市 AED list (2019 layout, CP932) and its mapping to the standard."""

from __future__ import annotations

import csv
import io
import re
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from areamesh.demo_data.himeji_aed_2019 import HIMEJI_CORPORATE_NUMBER, write_himeji_aed_csv
from connector.translate import load_mapping
from connector.translate.cli import mapping as mapping_cli
from connector.translate.csvread import detect_encoding, read_batches
from mesh.ids import corporate_number_check_digit, validate_local_government_code
from mesh.standards import check_table_schema, get_standard

HEADER_2019 = (
    "都道府県コード又は市区町村コード,NO,都道府県名,市区町村名,名称,名称_カナ,住所,方書,緯度,経度,設置位置,"
    "電話番号,内線番号,法人番号,団体名,利用可能曜日,開始時間,終了時間,利用可能日時特記事項,小児対応設備の有無,URL,備考"
)
MAPPING = Path(str(resources.files("areamesh.demo_data") / "aed_2019_to_guideline.yaml"))
TIME = re.compile(r"^([0-9]{1,2}:[0-9]{2})?$")


def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("cp932"), newline="")))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", encoding="cp932", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows(rows)


def translate(path: Path):
    mapping = load_mapping(MAPPING)
    _, used, batches = read_batches(path)
    out, rejects, first = [], [], 2  # CSV row numbers: the header is row 1
    for batch in batches:
        result = mapping.apply(batch, first_row=first)
        first += batch.num_rows
        out.append(result.batch)
        rejects += result.rejects
    table = pa.Table.from_batches(out, schema=mapping.output_schema)
    return mapping, used, table.to_pylist(), rejects


@pytest.fixture
def aed_csv(tmp_path: Path) -> Path:
    path = tmp_path / "himeji_aed.csv"
    write_himeji_aed_csv(path)
    return path


# ---------------------------------------------------------------------------- the CSV


def test_csv_is_cp932_with_the_2019_header(aed_csv: Path):
    raw = aed_csv.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp932")
    assert text.split("\r\n")[0] == HEADER_2019 and detect_encoding(aed_csv) == "cp932"
    rows = read_rows(aed_csv)
    assert rows[0] == HEADER_2019.split(",") and len(rows) == 41
    assert all(len(r) == 22 for r in rows)


def test_csv_rows_are_plausible_himeji_rows(aed_csv: Path):
    header, *rows = read_rows(aed_csv)
    col = {name: i for i, name in enumerate(header)}
    assert validate_local_government_code("282014") == "282014"
    assert HIMEJI_CORPORATE_NUMBER == f"{corporate_number_check_digit('000020282014')}000020282014"
    assert [r[col["NO"]] for r in rows] == [str(i) for i in range(1, 41)]
    for r in rows:
        assert (r[0], r[col["都道府県名"]], r[col["市区町村名"]]) == ("282014", "兵庫県", "姫路市")
        assert r[col["住所"]].startswith("兵庫県姫路市") and r[col["名称"]] and r[col["名称_カナ"]]
        assert 34.6 < float(r[col["緯度"]]) < 35.1 and 134.4 < float(r[col["経度"]]) < 134.9
        assert r[col["小児対応設備の有無"]] in ("有", "無", "")
        assert TIME.match(r[col["開始時間"]]) and TIME.match(r[col["終了時間"]])
        assert r[col["法人番号"]] in ("", HIMEJI_CORPORATE_NUMBER)
    names = {r[col["名称"]] for r in rows}
    assert "姫路市役所" in names and any(n.endswith("小学校") for n in names)
    assert any(n.endswith("公民館") for n in names)
    for blankable in ("方書", "内線番号", "法人番号", "URL", "備考", "開始時間"):
        assert any(r[col[blankable]] == "" for r in rows), blankable
    assert {r[col["小児対応設備の有無"]] for r in rows} == {"有", "無", ""}


def test_csv_is_deterministic_for_a_seed(tmp_path: Path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_himeji_aed_csv(a, seed=7)
    write_himeji_aed_csv(b, seed=7)
    write_himeji_aed_csv(c, seed=8)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    write_himeji_aed_csv(c, rows=5)
    assert len(read_rows(c)) == 6
    with pytest.raises(ValueError):
        write_himeji_aed_csv(c, rows=10_000)


# ---------------------------------------------------------------------------- the mapping


def assert_conforms(mapping, rows: list[dict]) -> None:
    """Check the output against the standard independently of the mapping's own checks."""
    standard = get_standard("aed")
    assert not [m for m in check_table_schema(standard.title, mapping.table_schema()) if m.is_error]
    for row in rows:
        for f in standard.fields:
            value = row.get(f.name)
            if f.required:
                assert value not in (None, ""), (f.name, row)
            if value is None:
                continue
            if f.enum:
                assert value in f.enum, (f.name, value)
            if f.pattern:
                assert re.search(f.pattern, value), (f.name, value)
            if f.type == "number":
                assert isinstance(value, float)


@pytest.mark.parametrize(("rows", "seed"), [(40, 7), (40, 1), (120, 2024), (248, 3)])
def test_mapping_translates_every_generated_row(tmp_path: Path, rows: int, seed: int):
    path = tmp_path / "aed.csv"
    write_himeji_aed_csv(path, rows=rows, seed=seed)
    mapping, used, out, rejects = translate(path)
    assert used == "cp932" and rejects == [] and len(out) == rows
    assert mapping.target_standard == "AED設置箇所一覧"
    assert_conforms(mapping, out)


def test_mapping_output_values(aed_csv: Path):
    _, _, out, _ = translate(aed_csv)
    header, *src = read_rows(aed_csv)
    col = {name: i for i, name in enumerate(header)}
    hall = out[0]
    assert (hall["名称"], hall["ID"], hall["地方公共団体名"]) == ("姫路市役所", "2820141", "兵庫県姫路市")
    assert hall["所在地_連結表記"] == "兵庫県姫路市安田四丁目1番地　本庁舎"
    assert str(hall["開始時間"]) == "08:35:00" and hall["屋内／屋外区分"] == "屋内"
    for s, o in zip(src, out, strict=True):
        kids = s[col["小児対応設備の有無"]]
        assert o["小児対応設備の有無"] == {"有": "あり", "無": "なし", "": "未確認"}[kids]
        assert o["屋内／屋外区分"] == ("屋外" if "屋外" in s[col["設置位置"]] else "屋内")
        assert o["緯度"] == float(s[col["緯度"]]) and o["設置位置区分"] == s[col["設置位置"]]
        assert o["法人番号"] == HIMEJI_CORPORATE_NUMBER and o["団体名"] == "姫路市"
        assert o["URL"] == (s[col["URL"]] or "https://www.city.himeji.lg.jp/")
        assert (o["開始時間"] is None) == (s[col["開始時間"]] == "")


def test_cli_mapping_test_shows_translated_rows(aed_csv: Path):
    result = CliRunner().invoke(mapping_cli, ["test", "--mapping", str(MAPPING), "--input", str(aed_csv),
                                              "--preview", "3"])
    assert result.exit_code == 0, result.output
    assert "cp932" in result.output and "40 行" in result.output
    assert "AED設置箇所一覧" in result.output and "適合" in result.output
    assert "姫路市役所" in result.output and "2820141" in result.output and "あり" in result.output
    assert "all 40 rows translated, none rejected" in result.output


def test_bad_values_are_rejected_with_row_and_reason_not_dropped(aed_csv: Path, tmp_path: Path):
    header, *rows = read_rows(aed_csv)
    col = {name: i for i, name in enumerate(header)}
    rows[2][col["緯度"]] = "abc"  # CSV row 4
    rows[4][col["小児対応設備の有無"]] = "不明"  # CSV row 6
    rows[9][col["設置位置"]] = "屋上"  # CSV row 11: not in the 屋内／屋外 code table
    rows[9][col["法人番号"]] = "12345"  # and not 13 digits
    write_rows(aed_csv, [header, *rows])

    _, _, out, rejects = translate(aed_csv)
    assert [(r.row, r.column, r.value) for r in rejects] == [
        (4, "緯度", "abc"),
        (6, "小児対応設備の有無", "不明"),
        (11, "設置位置", "屋上"),
        (11, "法人番号", "12345"),
    ]
    assert "abc" in rejects[0].reason and "数値" in rejects[0].reason_ja
    assert "不明" in rejects[1].reason_ja and "有" in rejects[1].reason_ja
    assert "屋上" in rejects[2].reason_ja
    assert "AED設置箇所一覧" in rejects[3].reason_ja and "[0-9]{13}" in rejects[3].reason
    assert len(out) == 37 and len({r.row for r in rejects}) == 3  # each row is output or reported

    report = tmp_path / "rejects.csv"
    result = CliRunner().invoke(mapping_cli, ["test", "--mapping", str(MAPPING), "--input", str(aed_csv),
                                              "--rejects-out", str(report)])
    assert result.exit_code == 3, result.output
    assert "3 of 40 rows rejected (4 problems)" in result.output and "不明" in result.output
    listed = list(csv.reader(io.StringIO(report.read_text(encoding="utf-8-sig"))))
    assert [tuple(r[:3]) for r in listed[1:]] == [("4", "緯度", "abc"), ("6", "小児対応設備の有無", "不明"),
                                                  ("11", "設置位置", "屋上"), ("11", "法人番号", "12345")]
    assert all(r[3] and r[4] for r in listed[1:])  # a reason in Japanese and in English


def test_mapping_ships_as_package_data():
    text = MAPPING.read_text(encoding="utf-8")
    assert "target_standard: AED設置箇所一覧" in text
    mapping = load_mapping(MAPPING)
    assert set(mapping.input_columns) <= set(HEADER_2019.split(","))
    notes = {(n.column, n.kind) for n in mapping.standard_notes}
    assert ("名称_カナ", "extra") in notes and ("郵便番号", "missing_optional") in notes
