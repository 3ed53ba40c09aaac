"""``areamesh connector dataset check --id``: a registered dataset's CSV source validated against
the layout, edition and missing values it declares (issue 15 §1 and §3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from connector.datasets.check import merged_missing_values
from connector.datasets.store import PublisherStore
from mesh import standards
from tests.layout_fixtures import PLACEHOLDER, conforming_csv

TOILETS = standards.get_standard("公衆トイレ一覧", "自治体標準オープンデータセット")
PUBLISHER = "282014"


def unknown_count_csv() -> str:
    """The conforming file with 不明 as 男性トイレ総数 of the first row (a number column)."""
    lines = conforming_csv(TOILETS).split("\r\n")
    cells = lines[1].split(",")
    cells[TOILETS.column_names.index("男性トイレ総数")] = "不明"
    lines[1] = ",".join(cells)
    return "\r\n".join(lines)


def register(data_dir: Path, tmp_path: Path, standard: Any, ident: str = "himeji-toilets") -> None:
    """A dataset as ``dataset add`` keeps it (the description as written, with its source)."""
    (tmp_path / "toilets.csv").write_bytes(unknown_count_csv().encode("cp932"))
    doc = {"id": ident, "publisher": PUBLISHER, "title": {"ja": "公衆トイレ"},
           "description": {"ja": "d"}, "themes": ["観光"], "license": "CC-BY-4.0",
           "standard": standard, "source": {"adapter": "csv", "path": "toilets.csv"},
           "source_base": str(tmp_path)}
    PublisherStore(data_dir, PUBLISHER).save(doc)


def check(data_dir: Path, *args: str) -> tuple[int, str]:
    from areamesh.cli import cli as main

    result = CliRunner().invoke(main, ["connector", "dataset", "check", "--data-dir", str(data_dir),
                                       *args])
    return result.exit_code, result.output


def test_declared_layout_edition_and_missing_values_decide(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    register(data_dir, tmp_path, {"layout": "公衆トイレ一覧", "edition": "自治体標準",
                                  "missingValues": {"*": [PLACEHOLDER], "男性トイレ総数": ["不明"]}})
    rc, out = check(data_dir, "--id", "himeji-toilets", "--json")
    assert rc == 0, out
    report = json.loads(out)
    assert (report["layout"], report["edition"]) == ("公衆トイレ一覧", "自治体標準オープンデータセット")
    assert report["encoding"] == "cp932" and report["rows"] == 2

    # without the declared placeholder, 不明 in a number column is reported, grouped by column
    register(data_dir, tmp_path, "公衆トイレ一覧@自治体標準")
    rc, out = check(data_dir, "--id", "himeji-toilets")
    assert rc == 1
    assert "列 / column「男性トイレ総数」" in out and "不明" in out and "None" not in out
    # a placeholder given on the command line is added to the declared ones
    rc, out = check(data_dir, "--id", "himeji-toilets", "--missing-value", "男性トイレ総数=不明")
    assert rc == 0, out


def test_the_declared_edition_is_the_one_checked(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    register(data_dir, tmp_path, {"layout": "公衆トイレ一覧", "edition": "2019",
                                  "missingValues": ["不明", PLACEHOLDER]})
    rc, out = check(data_dir, "--id", "himeji-toilets", "--json")
    report = json.loads(out)
    # the 自治体標準 file is not the 2019 layout: its required 2019 columns are missing
    assert rc == 1 and report["edition"] == "推奨データセット-2019"
    assert {"column": "住所", "kind": "missing_column"} in [
        {k: p[k] for k in ("column", "kind")} for p in report["problems"]]


def test_usage_errors(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    register(data_dir, tmp_path, "公衆トイレ一覧@自治体標準")
    rc, out = check(data_dir)
    assert rc == 2 and "PATH" in out
    rc, out = check(data_dir, "--id", "himeji-toilets", str(tmp_path / "toilets.csv"))
    assert rc == 2
    rc, out = check(data_dir, "--id", "no-such-dataset")
    assert rc == 1 and "no-such-dataset" in out
    doc = PublisherStore(data_dir, PUBLISHER).load("himeji-toilets")
    PublisherStore(data_dir, PUBLISHER).save({**doc, "source": {"adapter": "ndjson", "path": "x"}})
    rc, out = check(data_dir, "--id", "himeji-toilets")
    assert rc == 1 and "CSV" in out


def test_merged_missing_values() -> None:
    assert merged_missing_values(["ー"], {"*": ["-", "ー"], "名称": ["不明"]}) == \
        {"*": ["ー", "-"], "名称": ["不明"]}
    assert merged_missing_values({"名称": ["不明"]}) == {"名称": ["不明"]}
    assert merged_missing_values(None) == {}
