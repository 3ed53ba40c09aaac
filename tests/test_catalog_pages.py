"""The catalog portal over HTTP against a real registry process: the search page, dataset,
organisation and theme pages, JSON by ``Accept``, 404s and hostile query strings."""

from __future__ import annotations

import copy
import html
import json
import re
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio

from areamesh.demo_catalog import DATASETS

from .catalog_fixtures import publish_direct, setup_catalog_mesh
from .conftest import MeshHarness

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
           "Accept-Language": "ja"}
JSON = {"Accept": "application/json"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory) -> MeshHarness:
    h = MeshHarness(tmp_path_factory.mktemp("catalog-pages"))
    await h.init_registry()
    await setup_catalog_mesh(h, certify=("282014", "282103", "270008"))
    yield h
    await h.stop_all()


async def fetch(h: MeshHarness, path: str, headers: dict[str, str] | None = None,
                **params: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.get(f"{h.http_url}{path}", params=params or None,
                                                   headers=headers or BROWSER) as r:
        return r.status, r.content_type, await r.text()


def text_of(page: str) -> str:
    """The page's visible text, tags removed, entities decoded, spaces collapsed."""
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def result_links(page: str) -> list[str]:
    return re.findall(r'<h3><a href="/datasets/([^"]+)">', page)


async def test_search_page_finds_bousai_with_facets_and_count(mesh):
    status, ctype, page = await fetch(mesh, "/", q="防災")
    assert status == 200 and ctype == "text/html"
    assert set(result_links(page)) == {"himeji-aed", "himeji-evacuation", "inami-ponds"}
    text = text_of(page)
    assert "3 件のデータセット" in text
    for facet in ("分野", "提供者", "都道府県", "標準データセット", "データ分類", "個人に関する情報"):
        assert f">{facet}</h3>" in page, facet
    assert "姫路市（282014）" in text and "兵庫県（28）" in text   # names next to codes
    assert "非個人情報" in text
    # each facet value narrows: the link keeps the query and adds the filter
    assert 'href="/?q=%E9%98%B2%E7%81%BD&amp;publisher=283819"' in page


async def test_search_page_narrows_and_unnarrows(mesh):
    _, _, page = await fetch(mesh, "/", q="防災", publisher="282014")
    assert set(result_links(page)) == {"himeji-aed", "himeji-evacuation"}
    assert "解除" in text_of(page)
    assert 'href="/?q=%E9%98%B2%E7%81%BD"' in page               # removes the filter
    _, _, page = await fetch(mesh, "/", classification="non_personal", theme="観光")
    assert set(result_links(page)) == {"himeji-tourism", "himeji-events", "kakogawa-toilets",
                                       "inami-ponds"}
    _, _, page = await fetch(mesh, "/", q="防災", theme="交通")
    assert result_links(page) == [] and "0 件のデータセット" in text_of(page)


async def test_search_sort_and_pages(mesh):
    _, _, page = await fetch(mesh, "/", sort="title", per_page="5")
    assert len(result_links(page)) == 5
    assert 'rel="next"' in page and 'aria-label="ページ送り"' in page
    _, _, second = await fetch(mesh, "/", sort="title", per_page="5", page="2")
    assert not set(result_links(page)) & set(result_links(second))
    assert '<option value="title" selected>' in second


async def api_ids(h: MeshHarness, **params: str) -> list[str]:
    _, _, body = await fetch(h, "/api/v1/datasets", JSON, **params)
    return [r["id"] for r in json.loads(body)["results"]]


async def test_search_page_sorts_and_counts_as_the_api(mesh):
    """The page lists the API's results in the API's order for each sort, and each facet value
    shows the API's count for it."""
    orders = {}
    for sort in ("title", "modified", "relevance"):
        _, _, page = await fetch(mesh, "/", sort=sort, per_page="50")
        orders[sort] = result_links(page)
        assert orders[sort] == await api_ids(mesh, sort=sort, per_page="50"), sort
        assert len(orders[sort]) == 14                   # every published dataset
    assert orders["title"] != orders["modified"]          # the sort reaches the search
    _, _, page = await fetch(mesh, "/", q="防災")
    _, _, body = await fetch(mesh, "/api/v1/datasets", JSON, q="防災")
    facets = json.loads(body)["facets"]
    shown = 0
    assert set(facets) == {"theme", "publisher", "prefecture", "standard_type", "personal",
                           "classification"}
    for facet in facets:                           # the page's parameter is the facet's name
        for entry in facets[facet]:
            param = facet
            href = html.escape(f"/?q=%E9%98%B2%E7%81%BD&{param}={quote(entry['value'])}")
            m = re.search(re.escape(f'<a href="{href}">') + r'[^<]+</a> <span class="count">'
                          r'([\d,]+)<', page)
            assert m, (facet, entry)
            assert int(m.group(1).replace(",", "")) == entry["count"], (facet, entry)
            shown += 1
    assert shown >= 8 and facets["personal"] and facets["standard_type"]
    _, _, page = await fetch(mesh, "/", q="防災", personal="false")   # personal or not narrows
    assert set(result_links(page)) == {"himeji-aed", "himeji-evacuation", "inami-ponds"}
    assert "個人に関する情報: " in text_of(page)              # the active filter, removable
    _, _, page = await fetch(mesh, "/", q="防災", personal="true")  # the demo has none
    assert result_links(page) == [] and "0 件のデータセット" in text_of(page)
    assert dict((e["value"], e["count"]) for e in facets["publisher"]) == {"282014": 2,
                                                                        "283819": 1}


@pytest.mark.parametrize(("q", "expected"), [
    ("ＡＥＤ", "himeji-aed"), ("ﾄｲﾚ", "kakogawa-toilets"), ("トイレ", "kakogawa-toilets"),
    ("ひめじ", "himeji-aed"), ("避難", "himeji-evacuation")])
async def test_search_page_is_the_apis_japanese_search(mesh, q, expected):
    """Width and kana folding, readings and two-character words, as GET /api/v1/datasets."""
    _, _, page = await fetch(mesh, "/", q=q)
    found = result_links(page)
    assert expected in found and found == await api_ids(mesh, q=q), q


async def test_language_from_accept_language(mesh):
    _, _, page = await fetch(mesh, "/datasets/himeji-aed",
                             {"Accept": "text/html", "Accept-Language": "en-US,en;q=0.9"})
    assert "<h1>Himeji City AED locations</h1>" in page and '<html lang="en">' in page
    assert "Find data" in text_of(page)                      # the menu too
    _, _, page = await fetch(mesh, "/", {"Accept": "text/html", "Accept-Language": "fr, ja;q=0.5"})
    assert '<html lang="ja">' in page
    _, _, page = await fetch(mesh, "/", {"Accept": "text/html", "Accept-Language": "en"}, lang="ja")
    assert '<html lang="ja">' in page                           # ?lang= wins


async def test_dataset_dcat_view_by_the_page_link_and_by_accept(mesh):
    _, _, page = await fetch(mesh, "/datasets/himeji-aed")
    link = re.search(r'href="(/datasets/himeji-aed/dcat\.jsonld)"', page).group(1)
    status, ctype, body = await fetch(mesh, link, {"Accept": "*/*"})
    assert status == 200 and ctype == "application/ld+json"
    doc = json.loads(body)
    whole = json.loads((await fetch(mesh, "/catalog.jsonld", {"Accept": "*/*"}))[2])
    node = next(d for d in whole["dcat:dataset"] if d["dct:identifier"] == "himeji-aed")
    assert {k: v for k, v in doc.items() if k not in ("@context", "dcat:landingPage")} == node
    assert doc["@context"] == whole["@context"]
    assert doc["dcat:landingPage"] == {"@id": f"{mesh.http_url}/datasets/himeji-aed"}
    assert doc["@type"] == "dcat:Dataset" and doc["dct:conformsTo"]["@type"] == "dct:Standard"
    status, ctype, body = await fetch(mesh, "/datasets/himeji-aed",
                                      {"Accept": "application/ld+json"})
    assert (status, ctype) == (200, "application/ld+json") and json.loads(body) == doc
    status, ctype, body = await fetch(mesh, "/datasets/himeji-aed",      # JSON first: the API's
                                      {"Accept": "application/json, application/ld+json"})
    assert ctype == "application/json" and "@context" not in json.loads(body)
    assert (await fetch(mesh, "/datasets/no-such-dataset/dcat.jsonld", JSON))[0] == 404


async def test_search_answers_json_as_the_api_does(mesh):
    status, ctype, body = await fetch(mesh, "/", JSON, q="防災", theme="防災")
    _, _, api = await fetch(mesh, "/api/v1/datasets", JSON, q="防災", theme="防災")
    assert status == 200 and ctype == "application/json"
    assert json.loads(body) == json.loads(api)
    assert json.loads(body)["total"] == 3
    assert "classification" in json.loads(api)["facets"]
    # a browser's Accept, or */*, keeps the page; the API stays JSON for browsers too
    assert (await fetch(mesh, "/", {"Accept": "*/*"}))[1] == "text/html"
    assert (await fetch(mesh, "/api/v1/datasets", BROWSER))[1] == "application/json"


async def test_dataset_page(mesh):
    status, _, page = await fetch(mesh, "/datasets/himeji-aed")
    assert status == 200
    text = text_of(page)
    assert "<h1>姫路市 AED設置箇所一覧</h1>" in page
    for expected in ("姫路市（282014）", "姫路市のコネクタ「main」", "CC-BY-4.0", "毎月",
                     "AED設置箇所一覧", "非個人情報", "すべての参加者が目的を問わず利用できます。"):
        assert expected in text, expected
    assert '<th scope="col">型</th>' in page and "<th scope=\"row\">全国地方公共団体コード" in page
    command = ("areamesh connector contract request --data-dir DIR --dataset himeji-aed "
               "--offer open-use --purpose 防災")
    assert f"<code>{command}</code>" in page
    assert f"curl -H 'Accept: application/json' {mesh.http_url}/api/v1/datasets/himeji-aed" \
        in html.unescape(page)
    assert 'href="/api/3/action/package_show?id=himeji-aed"' in page
    assert 'href="/catalog.jsonld"' in page and 'href="/themes/disaster-prevention"' in page


async def test_dataset_page_policy_in_words_and_hosting(mesh):
    _, _, page = await fetch(mesh, "/datasets/osaka-medical")
    text = text_of(page)
    assert "研究目的に限り、すべての参加者が利用できます。" in text
    assert "--offer research-use --purpose 研究" in text
    _, _, page = await fetch(mesh, "/datasets/inami-ponds")
    text = text_of(page)
    assert "加古川市のコネクタ「main」" in text and "共同利用" in text
    assert "稲美町（283819）" in text                 # spatial coverage by name and code


async def test_dataset_page_in_english_and_json(mesh):
    _, _, page = await fetch(mesh, "/datasets/himeji-aed", lang="en")
    assert "<h1>Himeji City AED locations</h1>" in page and 'lang="en"' in page
    assert "Every participant may use the data, for any purpose." in text_of(page)
    status, ctype, body = await fetch(mesh, "/datasets/himeji-aed", JSON)
    _, _, api = await fetch(mesh, "/api/v1/datasets/himeji-aed", JSON)
    assert status == 200 and ctype == "application/json" and json.loads(body) == json.loads(api)


async def test_unknown_dataset_is_a_404_page_or_json(mesh):
    status, ctype, page = await fetch(mesh, "/datasets/no-such-dataset")
    assert status == 404 and ctype == "text/html" and "ページが見つかりません" in page
    status, ctype, body = await fetch(mesh, "/datasets/no-such-dataset", JSON)
    assert status == 404 and ctype == "application/json"
    assert json.loads(body)["error"]["code"]


async def test_organisation_pages(mesh):
    status, _, page = await fetch(mesh, "/organizations/")
    text = text_of(page)
    assert status == 200 and "稲美町" in text and "加古川市のコネクタを利用" in text
    _, _, page = await fetch(mesh, "/organizations/282103")
    text = text_of(page)
    assert "<h1>加古川市</h1>" in page and "稲美町" in text and "受け入れている団体" in text
    assert set(result_links(page)) == {"kakogawa-childcare", "kakogawa-toilets",
                                       "kakogawa-watch-cameras"}
    _, _, page = await fetch(mesh, "/organizations/283819")
    assert "共同利用" in text_of(page) and 'href="/organizations/282103"' in page
    assert set(result_links(page)) == {"inami-public-facilities", "inami-ponds"}
    assert (await fetch(mesh, "/organizations/999999"))[0] == 404


async def test_theme_pages(mesh):
    _, _, page = await fetch(mesh, "/themes/")
    assert len(re.findall(r'href="/themes/[a-z]', page)) == 15 and "防災" in page
    _, _, page = await fetch(mesh, "/themes/disaster-prevention")
    assert set(result_links(page)) == {"himeji-aed", "himeji-evacuation", "inami-ponds"}
    assert (await fetch(mesh, "/themes/space"))[0] == 404


@pytest.mark.parametrize("params", [
    {"page": "0"}, {"page": "-1"}, {"page": "x"}, {"page": "9" * 40}, {"per_page": "1000"},
    {"personal": "maybe"}, {"sort": "'; DROP TABLE datasets; --"}, {"theme": "防" * 300},
])
async def test_hostile_query_strings_are_4xx(mesh, params):
    status, ctype, page = await fetch(mesh, "/", **params)
    assert 400 <= status < 500 and ctype == "text/html", (params, status)
    assert "<script" not in page.split("</footer>")[0].split("<main")[1]
    status, ctype, _ = await fetch(mesh, "/", JSON, **params)
    assert 400 <= status < 500 and ctype == "application/json"


@pytest.mark.parametrize("q", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>',
                               "\u0000\ud800", "防災 OR 1=1", "%00", "*" * 600])
async def test_hostile_search_strings_are_escaped(mesh, q):
    status, _, page = await fetch(mesh, "/", q=q.replace("\ud800", ""))
    assert status == 200
    assert "<script>alert" not in page and "<img src=x" not in page


async def test_pages_answer_for_every_demo_dataset(mesh):
    published = [doc["id"] for _, doc in DATASETS]
    for ident in published:
        status, _, page = await fetch(mesh, f"/datasets/{ident}")
        assert status == 200, ident
        assert "areamesh connector contract request --data-dir DIR --dataset " + ident in page


async def test_the_issues_example_policy_in_plain_japanese(mesh):
    """The issue's own example: research only, municipalities in the provider's prefecture, at
    most 10 transfers, with a duty; the page says it in words, in both languages, and the command
    names the offer's purpose. (Last in this module: it adds a dataset to the shared catalog.)"""
    doc = copy.deepcopy(next(d for _, d in DATASETS if d["id"] == "himeji-aed"))
    doc["id"] = "himeji-aed-research"
    constraint = [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "研究"},
                  {"leftOperand": "spatial", "operator": "eq", "rightOperand": "samePrefecture"},
                  {"leftOperand": "consumerType", "operator": "eq", "rightOperand": "municipality"},
                  {"leftOperand": "transferCount", "operator": "lteq", "rightOperand": 10}]
    doc["offers"] = [{"id": "research-hyogo", "policy": {
        "permissions": [{"action": "use", "constraints": constraint}],
        "duties": [{"action": "reportUsage"}]}}]
    await publish_direct(mesh, "himeji", doc)
    _, _, page = await fetch(mesh, "/datasets/himeji-aed-research")
    text = text_of(page)
    assert "研究目的に限り、兵庫県内の市区町村が利用できます。転送は最大 10 回まで。" in text
    assert "利用状況を報告すること" in text
    assert ("<code>areamesh connector contract request --data-dir DIR --dataset "
            "himeji-aed-research --offer research-hyogo --purpose 研究</code>") in page
    _, _, page = await fetch(mesh, "/datasets/himeji-aed-research", lang="en")
    assert ("Municipalities in Hyogo may use the data only for the purpose 研究. "
            "At most 10 transfers.") in text_of(page)
