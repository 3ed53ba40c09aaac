"""Validation that fits real files: every shipped layout's conforming and non-conforming fixture,
the real-value cases of the reference one by one, the report's wording and the CLI exit code."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from mesh import standards
from mesh.standards.validate import choose_layout, detect_encoding, validate_csv
from tests.layout_fixtures import PLACEHOLDER, broken_csv, conforming_csv

LAYOUTS = standards.layouts()
TOILETS = standards.get_standard("公衆トイレ一覧", "自治体標準オープンデータセット")


def write(tmp_path, text: str, encoding: str = "utf-8", name: str = "f.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("layout", LAYOUTS, ids=[s.name for s in LAYOUTS])
def test_every_layout_conforming_fixture_passes(tmp_path, layout):
    report = validate_csv(write(tmp_path, conforming_csv(layout)), layout, missing_values=[PLACEHOLDER])
    assert report.conforms, report.render()
    assert report.rows == 2


@pytest.mark.parametrize("layout", LAYOUTS, ids=[s.name for s in LAYOUTS])
def test_every_layout_broken_fixture_reports_each_column(tmp_path, layout):
    text, expected = broken_csv(layout)
    report = validate_csv(write(tmp_path, text), layout)
    assert not report.conforms
    found = {(p.column, p.kind) for p in report.errors}
    assert found == expected
    for p in report.errors:
        assert p.count == 1 and p.examples[0][0] == 3  # header is record 1, the bad row record 3


def test_placeholder_counts_only_where_declared(tmp_path):
    text = conforming_csv(TOILETS)
    path = write(tmp_path, text)
    # undeclared, ー in a free-text column is a value like any other: still conforms
    assert validate_csv(path, TOILETS).conforms
    # in a number column it must be declared for that column
    row = text.splitlines()[1].split(",")
    i = TOILETS.column_names.index("男性トイレ総数")
    row[i] = "不明"
    path = write(tmp_path, text.replace(text.splitlines()[1], ",".join(row)))
    bad = validate_csv(path, TOILETS)
    found = [(p.column, p.kind, p.examples) for p in bad.errors]
    assert found == [("男性トイレ総数", "type", ((2, "不明"),))]
    assert validate_csv(path, TOILETS, missing_values={"男性トイレ総数": ["不明"]}).conforms
    assert not validate_csv(path, TOILETS, missing_values={"女性トイレ総数": ["不明"]}).conforms


def test_real_values_pass_and_bad_ones_fail(tmp_path):
    header = TOILETS.column_names
    def row(**cells):
        values = {n: "" for n in header} | {"名称": "駅前公衆トイレ"} | cells
        return ",".join(f'"{values[n]}"' for n in header)
    good = [row(設置位置="駐車場内", 利用終了時間="24:00", 利用開始時間="0:00", 緯度="２０．５",
                経度="153.9", 名称_カナ="ｴｷﾏｴ", 車椅子使用者用トイレ有無="", 備考="改行\nあり",
                全国地方公共団体コード="１３２０１２")]
    path = write(tmp_path, ",".join(header) + "\n" + "\n".join(good) + "\n", "cp932")
    report = validate_csv(path, TOILETS)
    assert report.conforms, report.render()
    assert report.encoding == "cp932" and report.rows == 1
    bad = [row(利用終了時間="24:01"), row(緯度="0", 経度="0"), row(全国地方公共団体コード="13201"),
           row(車椅子使用者用トイレ有無="あり"), row(名称="")]
    path = write(tmp_path, "\ufeff" + ",".join(header) + "\n" + "\n".join(bad) + "\n")
    report = validate_csv(path, TOILETS)
    assert report.encoding == "utf-8-sig"
    kinds = {(p.column, p.kind): p.examples for p in report.errors}
    assert kinds == {("利用終了時間", "type"): ((2, "24:01"),), ("緯度", "range"): ((3, "0"),),
                     ("経度", "range"): ((3, "0"),), ("全国地方公共団体コード", "pattern"): ((4, "13201"),),
                     ("車椅子使用者用トイレ有無", "enum"): ((5, "あり"),), ("名称", "required"): ((6, ""),)}


def test_report_groups_counts_three_examples_no_python_repr(tmp_path):
    header = TOILETS.column_names
    i = header.index("利用開始時間")
    rows = []
    for n in range(5):
        cells = [""] * len(header)
        cells[header.index("名称")] = "A"
        cells[i] = f"9時{n}"
        rows.append(",".join(cells))
    path = write(tmp_path, ",".join(header[:-1]) + ",備考,独自列\n" + "\n".join(c + "," for c in rows) + "\n")
    report = validate_csv(path, TOILETS)
    problem = next(p for p in report.errors if p.column == "利用開始時間")
    assert problem.count == 5 and [r for r, _ in problem.examples] == [2, 3, 4]
    text = report.render()
    assert "5 件 / 5 cells" in text and "行 2: 「9時0」 / row 2: “9時0”" in text
    assert "行 5" not in text
    assert "独自列" in text and "not in the standard" in text
    assert "None" not in text and not re.search(r"'[^']*'", text)
    assert json.loads(json.dumps(report.to_json()))["conforms"] is False


def test_missing_required_column_and_wrong_row_length(tmp_path):
    layout = standards.get_standard("AED設置箇所一覧", "2019")
    header = [c for c in layout.column_names if c != "名称"]
    path = write(tmp_path, ",".join(header) + "\n" + ",".join([""] * len(header)) + "\n1,2\n")
    report = validate_csv(path, layout)
    kinds = {(p.column, p.kind) for p in report.errors}
    assert ("名称", "missing_column") in kinds
    assert any(k == "row_length" for _c, k in kinds)


def test_choose_layout_by_header_and_edition():
    assert choose_layout("公衆トイレ一覧", TOILETS.column_names) is TOILETS
    old = standards.get_standard("公衆トイレ一覧", "2019")
    assert choose_layout("公衆トイレ一覧", old.column_names) is old
    assert choose_layout(None, old.column_names) is old
    assert choose_layout("公衆トイレ一覧", old.column_names, "2026").edition == standards.DEFAULT_EDITION
    assert detect_encoding("名称".encode("cp932")) == "cp932"


def test_cli_check_prints_report_and_exit_code(tmp_path):
    from areamesh.cli import cli as main

    runner = CliRunner()
    good = write(tmp_path, conforming_csv(TOILETS), name="good.csv")
    result = runner.invoke(main, ["connector", "dataset", "check", "--standard", "公衆トイレ一覧",
                                  "--missing-value", PLACEHOLDER, str(good)])
    assert result.exit_code == 0, result.output
    assert "適合しています / conforms" in result.output
    text, _expected = broken_csv(TOILETS)
    bad = write(tmp_path, text, name="bad.csv")
    result = runner.invoke(main, ["connector", "dataset", "check", "--standard", "公衆トイレ一覧", str(bad)])
    assert result.exit_code == 1
    assert "列 / column「利用開始時間」" in result.output and "None" not in result.output
    result = runner.invoke(main, ["connector", "dataset", "check", "--json", str(bad)])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert (doc["layout"], doc["edition"]) == ("公衆トイレ一覧", "自治体標準オープンデータセット")
    result = runner.invoke(main, ["connector", "dataset", "check", "--standard", "ない一覧", str(bad)])
    assert result.exit_code == 1 and "ない一覧" in result.output


def test_rows_checked_in_groups_count_and_show_first_examples_in_file_order(tmp_path, monkeypatch):
    """validate_csv reads in batches and checks groups of rows as they come: counts add up over the
    groups, examples stay the first three in the file, whichever path a column's cells took (plain
    digits accepted at once, distinct values, cell by cell once a column holds mostly distinct values)."""
    import mesh.standards.validate as v

    header = TOILETS.column_names
    count, time_, lat, name = (header.index(c) for c in ("男性トイレ総数", "利用開始時間", "緯度", "名称"))
    rows = []
    for n in range(400):
        cells = [""] * len(header)
        cells[name] = "A" if n % 50 else "　"  # ideographic space only: blank after NFKC
        cells[count] = str(n) if n % 97 else ("２" if n % 2 else "x")  # full-width 2 passes, x fails
        cells[time_] = "24:00" if n % 61 else "25:00"
        cells[lat] = f"35.{n:04d}" if n % 83 else "1.5"
        rows.append(",".join(cells))
    path = write(tmp_path, ",".join(header) + "\n" + "\n".join(rows) + "\n")
    expected = None
    for group in (1 << 17, 7, 1):
        monkeypatch.setattr(v, "GROUP_ROWS", group)
        monkeypatch.setattr(v, "BLOCK_SIZE", 1 << 10)
        report = validate_csv(path, TOILETS)
        found = {(p.column, p.kind): (p.count, p.examples) for p in report.errors}
        assert found == {
            ("名称", "required"): (8, ((2, "　"), (52, "　"), (102, "　"))),
            ("男性トイレ総数", "type"): (3, ((2, "x"), (196, "x"), (390, "x"))),
            ("利用開始時間", "type"): (7, ((2, "25:00"), (63, "25:00"), (124, "25:00"))),
            ("緯度", "range"): (5, ((2, "1.5"), (85, "1.5"), (168, "1.5"))),
        }, group
        assert report.rows == 400
        expected = expected or report.to_json()
        assert report.to_json() == expected


def test_digit_placeholder_is_blank_not_a_number(tmp_path):
    """A placeholder made of digits (9999) is blank, so a required number column reports it."""
    import dataclasses

    header = TOILETS.column_names
    i = header.index("男性トイレ総数")
    fields = [dataclasses.replace(f, required=True) if f.name == "男性トイレ総数" else f
              for f in TOILETS.fields]
    layout = dataclasses.replace(TOILETS, fields=tuple(fields))
    cells = [""] * len(header)
    cells[header.index("名称")] = "A"
    cells[i] = "9999"
    path = write(tmp_path, ",".join(header) + "\n" + ",".join(cells) + "\n")
    assert validate_csv(path, layout).conforms
    report = validate_csv(path, layout, missing_values={"男性トイレ総数": ["9999"]})
    found = [(p.column, p.kind, p.examples) for p in report.errors]
    assert found == [("男性トイレ総数", "required", ((2, "9999"),))]
