"""Search finds a municipality's datasets by its kana reading (the 全国地方公共団体コード list
shipped as mesh/municipalities.csv), and ``prefecture=`` takes names as well as codes; against
one registry holding the demo catalog."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest
import pytest_asyncio

import mesh
from areamesh.demo_catalog import DATASETS
from mesh.places import municipality, place_terms, prefecture_code

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness
from .test_catalog_search import ALL, get, ids


def _of(code: str) -> set[str]:
    """The published demo datasets whose publisher or covered area is ``code``."""
    return {d["id"] for _node, d in DATASETS if d["publisher"] != "270008"
            and (d["publisher"] == code or code in d["spatial"])}


def test_the_list_has_every_prefecture_and_valid_codes():
    path = Path(mesh.__file__).with_name("municipalities.csv")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1962 and len({r["code"] for r in rows}) == 1962
    for r in rows:
        digits = [int(c) for c in r["code"]]
        weight = sum(d * w for d, w in zip(digits, (6, 5, 4, 3, 2), strict=False)) % 11
        assert digits[5] == (11 - weight) % 10, r       # the code's check digit
        assert r["reading"] and all("ァ" <= c <= "ヶ" or c == "ー" for c in r["reading"]), r
    assert sum(r["code"][2:] == "000" + r["code"][5] and r["name"] == r["prefecture"]
               for r in rows) == 47
    assert municipality("282014").reading == "ヒメジシ"
    assert municipality("28210").name == "加古川市"           # five digits: no check digit
    assert municipality("281018").name == "神戸市東灘区"       # a designated city's ward
    assert municipality("999999") is None
    assert place_terms("282103") == ("加古川市", "カコガワシ", "兵庫県", "ヒョウゴケン")


@pytest.mark.parametrize("value,code", [
    ("28", "28"), ("8", "08"), ("280003", "28"), ("兵庫県", "28"), ("兵庫", "28"),
    ("ひょうご", "28"), ("ヒョウゴケン", "28"), ("Hyogo", "28"), ("ｷｮｳﾄ", "26"), ("大阪府", "27"),
    ("東京", "13"), ("北海道", "01"), ("ほっかいどう", "01"), ("48", None), ("282014", None),
    ("姫路", None), ("", None)])
def test_prefecture_code_takes_codes_names_and_readings(value, code):
    assert prefecture_code(value) == code


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def catalog(tmp_path_factory) -> MeshHarness:
    h = MeshHarness(tmp_path_factory.mktemp("kana"))
    await h.init_registry()
    await setup_catalog_mesh(h)
    yield h
    await h.stop_all()


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("word,code", [
    ("ひめじ", "282014"), ("ヒメジ", "282014"), ("ﾋﾒｼﾞ", "282014"), ("カコガワ", "282103"),
    ("かこがわし", "282103"), ("いなみ", "283819")])
async def test_a_reading_finds_the_municipalitys_datasets(catalog, word, code):
    expected = _of(code)
    assert expected
    status, body = await asyncio.to_thread(get, catalog, "/api/v1/datasets", q=word)
    assert status == 200
    assert set(ids(body)) == expected


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_prefecture_filter_takes_names(catalog):
    for value in ("28", "兵庫県", "兵庫", "ひょうご"):
        _, body = await asyncio.to_thread(get, catalog, "/api/v1/datasets", prefecture=value,
                                          per_page=1)
        assert body["total"] == ALL, value
    for value in ("大阪府", "27", "どこか"):
        _, body = await asyncio.to_thread(get, catalog, "/api/v1/datasets", prefecture=value)
        assert body["total"] == 0, value
    _, body = await asyncio.to_thread(get, catalog, "/api/v1/datasets", q="ひめじ",
                                      prefecture="兵庫")
    assert set(ids(body)) == _of("282014")
