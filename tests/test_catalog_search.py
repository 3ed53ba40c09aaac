"""Search over HTTP and gRPC, the CKAN-compatible API through the real ckanapi client, DCAT,
and the consumer CLI, against one registry holding the demo catalog."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request

import ckanapi
import pytest
import pytest_asyncio

from areamesh.demo_catalog import DATASETS
from mesh.proto.areamesh.v1 import registry_pb2

from .catalog_fixtures import setup_catalog_mesh
from .cli_fork import run_cli
from .conftest import MeshHarness

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
ALL = len(DATASETS) - 4  # 大阪府's four datasets stay unpublished: it is not certified here


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory) -> MeshHarness:
    h = MeshHarness(tmp_path_factory.mktemp("catalog"))
    await h.init_registry()
    await setup_catalog_mesh(h)
    yield h
    await h.stop_all()


def get(h: MeshHarness, path: str, **params) -> tuple[int, dict]:
    url = f"{h.http_url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    return raw_get(url)


def raw_get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def ids(body: dict) -> list[str]:
    return [d["id"] for d in body["results"]]


@pytest.mark.parametrize("word,expected", [
    ("観光", {"himeji-tourism", "himeji-events", "kakogawa-toilets", "inami-ponds"}),
    ("防災", {"himeji-aed", "himeji-evacuation", "inami-ponds"}),
    ("子育", {"kakogawa-childcare", "kakogawa-watch-cameras"}),
    ("避難", {"himeji-evacuation"}),
    ("といれ", {"kakogawa-toilets"}),       # hiragana finds katakana トイレ
    ("ＡＥＤ", {"himeji-aed"}),              # full-width finds half-width
    ("ﾄｲﾚ", {"kakogawa-toilets"}),           # half-width katakana
])
async def test_japanese_words_find_the_right_datasets(mesh, word, expected):
    status, body = await asyncio.to_thread(get, mesh, "/api/v1/datasets", q=word)
    assert status == 200
    assert set(ids(body)) == expected


async def test_title_hits_rank_first_and_facets_count_all_matches(mesh):
    _, body = await asyncio.to_thread(get, mesh, "/api/v1/datasets", q="防災")
    assert ids(body)[0] in {"himeji-evacuation", "inami-ponds", "himeji-aed"}
    themes = {f["value"]: f["count"] for f in body["facets"]["theme"]}
    assert themes["防災"] == 3
    publishers = {f["value"]: f["count"] for f in body["facets"]["publisher"]}
    assert publishers == {"282014": 2, "283819": 1}


async def test_filters_and_pagination(mesh):
    _, body = await asyncio.to_thread(get, mesh, "/api/v1/datasets", theme="観光")
    assert body["total"] == 4
    _, body = await asyncio.to_thread(get, mesh, "/api/v1/datasets", publisher="283819")
    assert set(ids(body)) == {"inami-public-facilities", "inami-ponds"}
    _, body = await asyncio.to_thread(get, mesh, "/api/v1/datasets",
                                      standard_type="公共施設一覧")
    assert ids(body) == ["inami-public-facilities"]
    _, body = await asyncio.to_thread(get, mesh, "/api/v1/datasets", prefecture="28",
                                      per_page=4, page=1)
    assert body["total"] == ALL and len(body["results"]) == 4
    seen = set(ids(body))
    for page in (2, 3):
        _, more = await asyncio.to_thread(get, mesh, "/api/v1/datasets", prefecture="28",
                                          per_page=4, page=page)
        assert not seen & set(ids(more))
        seen |= set(ids(more))
    assert len(seen) == ALL
    status, err = await asyncio.to_thread(get, mesh, "/api/v1/datasets", per_page=1000)
    assert status == 400 and err["error"]["code"] == "invalid_request"


HOSTILE = ['"', "'", '" OR 1=1 --', "観光 AND NOT 防災", "NEAR(観光 防災)", "*", "title:観光",
           "^観光", "(((", "'; DROP TABLE datasets; --", "%", "_", "\\", "観" * 10_000, "",
           "   ", "🏯🗾", "観光🏯", "\x00\x01", "a" * 3000 + " " + "b" * 3000]


@pytest.mark.parametrize("q", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_search_strings_get_a_valid_answer(mesh, q):
    url = (f"{mesh.http_url}/api/v1/datasets?q="
           + urllib.parse.quote(q, safe="", errors="surrogatepass"))
    status, body = await asyncio.to_thread(raw_get, url)
    assert status == 200, body
    assert isinstance(body["total"], int) and isinstance(body["results"], list)
    status, body = await asyncio.to_thread(
        raw_get, f"{mesh.http_url}/api/3/action/package_search?q="
        + urllib.parse.quote(q, safe="", errors="surrogatepass"))
    assert status == 200 and body["success"] is True


async def test_invalid_utf8_in_the_url_is_not_a_server_error(mesh):
    lone_surrogate = urllib.parse.quote("\ud800", safe="", errors="surrogatepass")
    for path in ("/api/v1/datasets?q=%FF%FE", "/api/v1/datasets?q=%E8%A6",
                 "/api/3/action/package_search?q=%C0%AF", "/api/v1/datasets/%FF",
                 "/api/v1/datasets?q=" + lone_surrogate):
        status, body = await asyncio.to_thread(raw_get, mesh.http_url + path)
        assert (status, body["error"]["code"]) == (400, "invalid_encoding"), path


async def test_grpc_search_matches_http(mesh):
    stub = mesh.registry_stub(mesh.node_credentials("osaka"))
    reply = await stub.SearchDatasets(registry_pb2.SearchDatasetsRequest(q="防災"), timeout=10)
    assert {r.id for r in reply.results} == {"himeji-aed", "himeji-evacuation", "inami-ponds"}
    assert reply.total == 3
    facets = {f.name: {c.value: c.count for c in f.counts} for f in reply.facets}
    assert facets["theme"]["防災"] == 3
    record = await stub.GetDataset(registry_pb2.GetDatasetRequest(id="himeji-aed"), timeout=10)
    assert json.loads(record.dataset_json)["standard_type"] == "AED設置箇所一覧"


# ---- CKAN, driven by the real client ----------------------------------------------------

@pytest.fixture(scope="module")
def ckan(mesh) -> ckanapi.RemoteCKAN:
    return ckanapi.RemoteCKAN(mesh.http_url, user_agent="areamesh-tests")


async def test_ckanapi_package_search_with_fq_facets_rows_start_sort(ckan):
    result = await asyncio.to_thread(
        ckan.action.package_search, q="防災", fq="groups:disaster-prevention", rows=2, start=0,
        sort="metadata_modified desc", **{"facet.field": ["groups", "organization"]})
    assert result["count"] == 3 and len(result["results"]) == 2
    assert result["facets"]["groups"]["防災"] == 3
    assert result["search_facets"]["organization"]["items"]
    rest = await asyncio.to_thread(ckan.action.package_search, q="防災",
                                   fq="groups:disaster-prevention", rows=2, start=2,
                                   sort="metadata_modified desc")
    names = {p["name"] for p in result["results"]} | {p["name"] for p in rest["results"]}
    assert names == {"himeji-aed", "himeji-evacuation", "inami-ponds"}
    only_inami = await asyncio.to_thread(ckan.action.package_search, fq='organization:"283819"')
    assert only_inami["count"] == 2


async def test_ckanapi_show_list_organizations_groups_status(ckan):
    pkg = await asyncio.to_thread(ckan.action.package_show, id="himeji-aed")
    assert pkg["organization"]["title"] == "姫路市"
    assert {g["title"] for g in pkg["groups"]} == {"防災", "医療・福祉"}
    assert pkg["resources"] and pkg["num_resources"] == 1
    names = await asyncio.to_thread(ckan.action.package_list)
    assert len(names) == ALL and "inami-ponds" in names
    orgs = await asyncio.to_thread(ckan.action.organization_list)
    assert "283819" in orgs
    full = await asyncio.to_thread(ckan.action.organization_list, all_fields=True)
    assert {o["name"]: o["package_count"] for o in full}["283819"] == 2
    org = await asyncio.to_thread(ckan.action.organization_show, id="282103",
                                  include_datasets=True)
    assert org["title"] == "加古川市" and len(org["packages"]) == 3
    groups = await asyncio.to_thread(ckan.action.group_list, all_fields=True)
    assert {g["title"]: g["package_count"] for g in groups}["観光"] == 4
    status = await asyncio.to_thread(ckan.action.status_show)
    assert status["ckan_version"].startswith("2.")


async def test_ckanapi_errors(ckan):
    with pytest.raises(ckanapi.NotFound):
        await asyncio.to_thread(ckan.action.package_show, id="no-such-dataset")
    with pytest.raises(ckanapi.SearchQueryError):
        await asyncio.to_thread(ckan.action.package_search, fq="bogusfield:1")
    with pytest.raises(ckanapi.ValidationError):
        await asyncio.to_thread(ckan.action.package_search, rows="many")
    with pytest.raises(ckanapi.CKANAPIError):
        await asyncio.to_thread(ckan.call_action, "package_create", {"name": "x"})


# ---- DCAT, participants, CLI ------------------------------------------------------------

async def test_dcat_jsonld_catalog(mesh):
    status, doc = await asyncio.to_thread(get, mesh, "/catalog.jsonld")
    assert status == 200
    assert doc["@type"] == "dcat:Catalog" and "dcat" in doc["@context"]
    datasets = {d["dct:identifier"]: d for d in doc["dcat:dataset"]}
    assert len(datasets) == ALL
    aed = datasets["himeji-aed"]
    assert aed["@type"] == "dcat:Dataset"
    assert aed["dcat:distribution"][0]["@type"] == "dcat:Distribution"
    assert {"@value": "姫路市 AED設置箇所一覧", "@language": "ja"} in aed["dct:title"]
    assert aed["dct:publisher"]["foaf:name"] == "姫路市"


async def test_consumer_cli_search_and_show(mesh):
    rc, out, err = await run_cli("catalog", "search", "子育", "--registry", mesh.http_url,
                                 env={"COLUMNS": "200"})
    assert rc == 0, err
    assert "kakogawa-childcare" in out and "2 件" in out
    rc, out, err = await run_cli("catalog", "search", "--theme", "観光", "--json",
                                 "--registry", mesh.http_url)
    assert rc == 0 and json.loads(out)["total"] == 4
    rc, out, err = await run_cli("catalog", "show", "inami-ponds", "--registry", mesh.http_url,
                                 env={"COLUMNS": "200"})
    assert rc == 0 and "稲美町 ため池一覧" in out and "urn:areamesh:org:282103:node:main" in out
    rc, _, err = await run_cli("catalog", "show", "nothing-here", "--registry", mesh.http_url)
    assert rc == 1 and "404" in err
    rc, _, err = await run_cli("catalog", "search", "x", "--registry", "http://127.0.0.1:9")
    assert rc == 1 and "接続できません" in err
