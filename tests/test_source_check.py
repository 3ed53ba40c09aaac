"""The publish-time source check (connector/datasets/check.py) is the same for every adapter: it
reads the header and the first rows, compares the columns with the announced schema by name, and
refuses an unreadable source. In process; HTTP sources are served on 127.0.0.1."""

from __future__ import annotations

import codecs
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from connector.datasets.check import check_source, compare_header
from connector.datasets.store import PublisherStore
from mesh.datasets import parse_description
from mesh.errors import InvalidRequest

from .test_adapters import FakeApi, api  # noqa: F401  (api is a fixture)

COLUMNS = ["code", "name", "n"]


def doc_for(source: dict[str, Any], columns: list[str], base: Path) -> dict[str, Any]:
    return {"id": "check-me", "publisher": "282014", "title": "確認", "description": "確認",
            "themes": ["行政"], "license": "CC-BY-4.0", "source": source,
            "schema": {"fields": [{"name": c} for c in columns]}, "source_base": str(base)}


async def check(tmp_path: Path, source: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    doc = doc_for(source, columns, tmp_path)
    published = parse_description({k: v for k, v in doc.items() if k != "source_base"})
    result = await check_source(PublisherStore(tmp_path / "node", "282014"), doc, published)
    assert result is not None
    return result


def write_sources(base: Path) -> dict[str, tuple[dict[str, Any], list[str]]]:
    rows = [("282014", "姫路市", 1), ("282103", "加古川市", 2)]
    text = "code,name,n\n" + "".join(f"{c},{n},{x}\n" for c, n, x in rows)
    (base / "sjis.csv").write_bytes(text.encode("cp932"))
    (base / "bom.csv").write_bytes(codecs.BOM_UTF8 + text.encode())
    (base / "rows.ndjson").write_text("".join(json.dumps(dict(zip(COLUMNS, r, strict=True)),
                                                         ensure_ascii=False) + "\n" for r in rows),
                                      encoding="utf-8")
    with sqlite3.connect(base / "m.db") as db:
        db.execute("CREATE TABLE t (code TEXT, name TEXT, n INTEGER)")
        db.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    db.close()
    return {"csv shift_jis": ({"adapter": "csv", "path": "sjis.csv", "encoding": "shift_jis"}, COLUMNS),
            "csv bom": ({"adapter": "csv", "path": "bom.csv"}, COLUMNS),
            "ndjson": ({"adapter": "ndjson", "path": "rows.ndjson"}, COLUMNS),
            "sqlite": ({"adapter": "sqlite", "path": "m.db", "query": "SELECT * FROM t"}, COLUMNS)}


async def test_every_adapter_is_checked_the_same_way(tmp_path: Path, api: FakeApi):  # noqa: F811
    sources = write_sources(tmp_path)
    sources["http_json"] = ({"adapter": "http_json", "url": f"{api.base}/paged",
                             "items": "/result/records", "page_param": "page",
                             "per_page_param": "per_page", "per_page": 2}, ["id", "name", "open"])
    sources["ngsi_ld"] = ({"adapter": "ngsi_ld", "broker": api.base, "type": "AED", "limit": 2},
                          ["id", "type", "name", "available", "location_lon", "location_lat",
                           "refBuilding", "installedAt"])
    for kind, (source, columns) in sources.items():
        result = await check(tmp_path, source, columns)
        assert result["status"] == "passed" and result["rows_read"] > 0, kind
        renamed = [*columns[:-1], columns[-1].upper() + " "]      # spelt differently
        with pytest.raises(InvalidRequest) as err:
            await check(tmp_path, source, renamed)
        assert err.value.code == "header_mismatch", kind
        [problem] = err.value.details["columns"]
        assert (problem["kind"], problem["column"], problem["found"]) == (
            "misnamed", renamed[-1], columns[-1]), kind


async def test_unreadable_sources_of_every_kind_are_refused(tmp_path: Path, api: FakeApi):  # noqa: F811
    write_sources(tmp_path)
    (tmp_path / "utf8.csv").write_bytes("code,name\n1,姫路\n".encode())
    unreadable = [
        {"adapter": "csv", "path": "gone.csv"},
        {"adapter": "csv", "path": "sjis.csv", "encoding": "utf-8"},
        {"adapter": "ndjson", "path": "sjis.csv"},
        {"adapter": "sqlite", "path": "m.db", "query": "SELECT * FROM no_such_table"},
        {"adapter": "http_json", "url": f"{api.base}/broken"},
        {"adapter": "http_json", "url": f"{api.base}/notjson"},
        {"adapter": "ngsi_ld", "broker": f"{api.base}/nope", "type": "AED"},
        {"adapter": "postgresql", "dsn": f"postgresql://u@/db?host={tmp_path / 'no-socket'}",
         "query": "SELECT 1", "connect_timeout": 2},
        {"adapter": "no-such-adapter"},
    ]
    for source in unreadable:
        with pytest.raises(InvalidRequest) as err:
            await check(tmp_path, source, COLUMNS)
        assert err.value.code == "source_unreadable", source
        assert err.value.message_ja and "読めません" in err.value.message_ja


async def test_only_the_start_of_a_source_is_read(tmp_path: Path):
    rows = "".join(f"2820{i % 100:02d},市{i},{i}\n" for i in range(20_000))
    (tmp_path / "big.csv").write_text(f"code,name,n\n{rows}broken,row\n", encoding="utf-8")
    result = await check(tmp_path, {"adapter": "csv", "path": "big.csv", "block_size": 65536},
                         COLUMNS)                      # the bad last row is never reached
    assert result["status"] == "passed" and result["rows_read"] == 100


def test_compare_header_names_missing_unexpected_and_misnamed():
    problems = compare_header(["ID", "名称", "ＵＲＬ", "備考"], ["ID", "URL", "名 称", "独自"])
    assert {(p.kind, p.column, p.found) for p in problems} == {
        ("misnamed", "ＵＲＬ", "URL"), ("misnamed", "名称", "名 称"), ("missing", "備考", None),
        ("unexpected", "独自", None)}
    assert compare_header(["a", "b"], ["b", "a"]) == []            # order does not matter
