"""Built-in mappings (connector/translate/builtin): each old layout's conforming fixture translated
into records valid against its 2026 model; what cannot be mapped honestly is reported, never invented;
``builtin:<layout>`` resolved by name and header in ``areamesh mapping``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

from connector.translate import load_mapping
from connector.translate.builtin import builtin_mappings, find_builtin
from connector.translate.cli import mapping as mapping_cli
from mesh.errors import NotFound
from mesh.standards import get_standard, layouts
from mesh.standards.validate import validate_csv
from tests.layout_fixtures import conforming_csv

# Identity cells the generic fixture fills with "テスト値" where the old layout has no pattern, set to
# what a real file holds so that the 2026 model's patterns and enums can be met.
REAL = {"都道府県コード又は市区町村コード": "131016", "全国地方公共団体コード": "131016",
        "所在地_全国地方公共団体コード": "131016", "市区町村コード": "131016", "都道府県名": "東京都",
        "所在地_都道府県": "東京都", "法人番号": "1000020131016", "設置位置": "屋外", "高度の種別": "階数",
        "URL": "https://example.jp/a", "画像": "https://example.jp/a.png", "画像_ライセンス": "CC BY 4.0"}
# The 2026 model requires a value the old layout has no column for: every row is reported.
NO_SOURCE = {"観光施設一覧": {"法人番号"},
             "イベント一覧": {"法人番号", "掲載開始日", "掲載終了日", "イベント種類", "料金_種別", "対象者",
                          "受付場所", "Web開催"}}


def fixture_rows(layout) -> tuple[list[str], list[list[str]]]:
    header, *rows = list(csv.reader(io.StringIO(conforming_csv(layout))))
    for row in rows:
        for i, name in enumerate(header):
            if name in REAL and (row[i] or layout.field(name).required):
                row[i] = REAL[name]
    return header, rows


def translate(name: str, header: list[str], rows: list[list[str]]):
    mapping = load_mapping(name, header=header)
    columns = [pa.array([r[i] for r in rows], pa.string()) for i in range(len(header))]
    batch = pa.RecordBatch.from_arrays(columns, names=header)
    return mapping, mapping.apply(batch, first_row=2)


def test_every_old_layout_with_a_2026_model_has_a_builtin():
    models = {s.title for s in layouts("エリアデータ標準データモデル-2026")}
    have = {(b.layout, b.edition) for b in builtin_mappings()}
    expected = {(s.title, s.edition) for s in layouts() if s.edition != "エリアデータ標準データモデル-2026"
                and s.title in models}
    assert have == expected and len(have) == 9
    for b in builtin_mappings():
        text = b.read_bytes().decode()
        assert f"mesh/standards/{b.file}".replace(".yaml", ".json") in text  # cites its source layout
        assert "target_standard: " + b.target in text


@pytest.mark.parametrize("builtin", builtin_mappings(), ids=lambda b: b.name)
def test_builtin_round_trips_its_fixture_into_valid_2026_records(builtin, tmp_path: Path):
    old = get_standard(builtin.layout, builtin.edition)
    header, rows = fixture_rows(old)
    _, result = translate(builtin.name, header, rows)
    # every output record is valid against the 2026 model (the validator of `dataset check`)
    out = tmp_path / "out.csv"
    pacsv.write_csv(pa.Table.from_batches([result.batch]), out)
    report = validate_csv(out, get_standard(builtin.target))
    assert report.conforms, report.render()
    # each row is output or reported, and nothing is reported for a value that was there to map
    assert result.batch.num_rows + len({r.row for r in result.rejects}) == len(rows)
    missing = NO_SOURCE.get(builtin.layout, set())
    if missing:
        assert result.batch.num_rows == 0
        assert missing <= {r.column for r in result.rejects if r.row == 2}
    else:
        assert result.batch.num_rows >= 1 and not [r for r in result.rejects if r.row == 2]
    for r in result.rejects:  # the second fixture row leaves optional cells blank
        assert r.value is None, r
    # the row with every cell filled keeps what the model has a column for
    if result.batch.num_rows:
        first = result.batch.slice(0, 1).to_pylist()[0]
        assert first["名称"] not in (None, "", "未確認")


def test_jichitai_toilets_keep_2400_images_and_the_dropped_breakdowns():
    old = get_standard("公衆トイレ一覧", "自治体標準")
    header, rows = fixture_rows(old)
    _, result = translate("builtin:公衆トイレ一覧", header, rows)
    first = result.batch.to_pylist()[0]
    assert first["利用終了時間"] == "24:00" and first["利用開始時間"] == "06:00"
    assert first["画像URL（配列）"] == '{"https://example.jp/a.png": "CC BY 4.0"}'
    assert first["男性トイレ数（和式）"] == 2 and first["男女共用トイレ数（洋式）"] == 2
    assert first["名称_英字"] != "unconfirmed" and first["車椅子使用者用トイレ有無"] == "あり"
    assert first["24時間利用可能可否"] == "未確認"


@pytest.mark.parametrize("edition", ["自治体標準オープンデータセット", "推奨データセット-2019"])
def test_free_text_position_without_an_enum_value_is_reported_not_invented(edition):
    old = get_standard("公衆トイレ一覧", edition)
    header, rows = fixture_rows(old)
    col = header.index("設置位置")
    rows[0][col] = "駐車場内"
    rows.append(list(rows[0]))
    rows[2][col] = "公園"
    _, result = translate(f"builtin:公衆トイレ一覧@{edition}", header, rows)
    bad = [r for r in result.rejects if r.column == "設置位置"]
    assert [(r.row, r.value) for r in bad] == [(2, "駐車場内")]
    assert "駐車場内" in bad[0].reason_ja and "コード表" in bad[0].reason_ja
    assert "駐車場内" not in {r["設置位置区分"] for r in result.batch.to_pylist()}
    assert {r["設置位置区分"] for r in result.batch.to_pylist()} == {"公園内"}


def test_builtin_edition_from_the_header_or_named():
    toilets19 = get_standard("公衆トイレ一覧", "2019").column_names
    toiletsj = get_standard("公衆トイレ一覧", "自治体標準").column_names
    assert find_builtin("builtin:公衆トイレ一覧", toilets19).edition == "推奨データセット-2019"
    assert find_builtin("builtin:公衆トイレ一覧", toiletsj).edition == "自治体標準オープンデータセット"
    assert find_builtin("builtin:公衆トイレ一覧@2019").edition == "推奨データセット-2019"
    assert find_builtin("builtin:AED設置箇所一覧").edition == "推奨データセット-2019"  # the only one
    with pytest.raises(NotFound) as exc:
        find_builtin("builtin:公衆トイレ一覧", ["名称", "備考"])
    assert exc.value.code == "mapping_edition_unknown"
    with pytest.raises(NotFound):
        find_builtin("builtin:文化財一覧")  # no 2026 model: no built-in


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def test_cli_mapping_test_by_builtin_name_and_exit_codes(tmp_path: Path):
    header, rows = fixture_rows(get_standard("公衆トイレ一覧", "自治体標準"))
    good = _write(tmp_path / "good.csv", header, rows[:1])
    run = CliRunner().invoke
    result = run(mapping_cli, ["test", "--mapping", "builtin:公衆トイレ一覧", "--input", str(good)])
    assert result.exit_code == 0, result.output
    assert "公衆トイレ一覧 — 適合" in result.output
    rows[0][header.index("設置位置")] = "駐車場内"
    bad = _write(tmp_path / "bad.csv", header, rows[:1])
    out = tmp_path / "rejects.csv"
    result = run(mapping_cli, ["test", "--mapping", "builtin:公衆トイレ一覧", "--input", str(bad),
                               "--rejects-out", str(out)])
    assert result.exit_code == 3 and str(out) in result.output and "駐車場内" in out.read_text("utf-8-sig")
    result = run(mapping_cli, ["test", "--mapping", "builtin:公衆トイレ一覧@2019", "--input", str(good)])
    assert result.exit_code == 2 and "設置位置" not in result.output.split("invalid mapping")[0]
    result = run(mapping_cli, ["test", "--mapping", "builtin:文化財一覧", "--input", str(good)])
    assert result.exit_code == 2


def test_cli_mapping_list_and_show():
    result = CliRunner().invoke(mapping_cli, ["list"])
    assert result.exit_code == 0
    assert len(result.output.strip().splitlines()) == 9
    assert "builtin:公衆トイレ一覧@自治体標準オープンデータセット" in result.output
    shown = CliRunner().invoke(mapping_cli, ["show", "公衆トイレ一覧@2019"])
    assert shown.exit_code == 0 and "target_standard: 公衆トイレ一覧" in shown.output
