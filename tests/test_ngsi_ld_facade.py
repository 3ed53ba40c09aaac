"""The connector's NGSI-LD facade over real HTTP on 127.0.0.1: driven by a real NGSI-LD client
(Orange's ``ngsildclient`` from PyPI), by the applicable cases of the ETSI NGSI-LD API test
suite (Robot Framework, ETSI GS CIM 009; each pytest case is named by its test id, inputs and
expected outputs translated), and by bad input that must come back as ProblemDetails.

The facade here serves internal-mode datasets of a connector data directory (encrypted internal
copies made by the real ``InternalCopies``): the real views, keys, doors and routes, in this
process. Data held under an agreement is tested between real processes in
tests/test_ngsi_ld_mesh.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from connector.adapters.registry import open_source
from connector.credentials import ConnectorAuthenticator
from connector.datasets.internal_copy import InternalCopies
from connector.datasets.store import PublisherStore
from connector.ngsi_ld.facade import NgsiLdFacade
from connector.ngsi_ld.keys import FacadeKeys
from connector.ngsi_ld.problems import problem_middleware
from connector.ngsi_ld.views import FacadeData, ViewSetting, add_view
from mesh.http import error_middleware
from mesh.http_auth import check_doors, door_middleware

from .ngsi_ld_fixtures import HIMEJI_STATION, PUBLISHER, aed_rows

ngsildclient = pytest.importorskip(
    "ngsildclient", reason="install ngsildclient without its pins (see the note in pyproject.toml)")

ETSI = "https://ngsi-ld-test-suite/context#"
ETSI_CONTEXT = ("https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/"
                "jsonld-contexts/ngsi-ld-test-suite-compound.jsonld")
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
BAD_REQUEST = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
NOT_FOUND = "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"
LD = "application/ld+json"

BUILDING_MODEL = {
    "type": "Building", "context": ETSI_CONTEXT, "vocab": ETSI, "id": "{id}",
    "attributes": {"name": {"column": "name"}, "subCategory": {"column": "subCategory"},
                   "airQualityLevel": {"column": "airQualityLevel", "cast": "integer"},
                   "almostFull": {"column": "almostFull", "cast": "boolean"},
                   "locatedIn": {"relationship": "locatedIn"},
                   "location": {"geojson": "location"}},
}
# the ETSI test data (data/entities/*.jsonld), as the rows a dataset would hold
SIMPLE = [{"name": "Eiffel Tower", "subCategory": "tourism", "airQualityLevel": 4, "almostFull": False},
          {"name": "Pisa Tower", "subCategory": "tourism", "airQualityLevel": 6, "almostFull": True},
          {"name": "Pisa Tower", "subCategory": "sightseeing", "airQualityLevel": 7,
           "almostFull": False, "locatedIn": "urn:ngsi-ld:City:Pisa"}]


def point(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


LOCATIONS = [{"name": "Eiffel Tower", "subCategory": "tourism", "location": point(13.3986, 52.5547)},
             {"name": "Berlin Brandenburg International Airport",
              "location": point(13.509818, 52.363457)},
             {"name": "Grunewald", "location": point(13.215983, 52.470441)}]
POLYGONS = [{"name": "Eiffel Tower", "location": {"type": "Polygon", "coordinates": [[
    [13.2865906, 52.5648645], [13.2879639, 52.5648645], [13.2797241, 52.4988679],
    [13.477478, 52.4712703], [13.5049438, 52.5373084], [13.2865906, 52.5648645]]]}},
            {"name": "Eiffel Tower", "location": {"type": "Polygon", "coordinates": [[
                [13.315773, 52.4757209], [13.339119, 52.4443421], [13.3892441, 52.4669371],
                [13.315773, 52.4757209]]]}}]
# ETSI suites → (view, entity rows); ids are urn:ngsi-ld:Building:<view>-<n>
SUITES = {
    "etsi-minimal": [{}, {}, {}],
    "etsi-simple": SIMPLE,
    "etsi-count": SIMPLE[:2],
    "etsi-attrs": [SIMPLE[0], {}],
    "etsi-simple-twice": [SIMPLE[0], SIMPLE[0]],
    "etsi-equal-points": [LOCATIONS[0], LOCATIONS[0]],
    "etsi-points": LOCATIONS,
    "etsi-polygons": POLYGONS,
}


async def _internal_dataset(data_dir: Path, dataset_id: str, rows: list[dict[str, Any]]) -> None:
    store = PublisherStore(data_dir, PUBLISHER)
    store.save({"id": dataset_id, "publisher": PUBLISHER, "management": "internal",
                "classification": "non_personal", "title": {"ja": dataset_id}})
    source_file = data_dir / f"{dataset_id}.ndjson"
    source_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                           encoding="utf-8")
    source = open_source({"adapter": "ndjson", "path": source_file.name, "infer_rows": 0}, data_dir)
    await InternalCopies(store).snapshot(dataset_id, source)


class Facade:
    """The facade of one data directory served on 127.0.0.1 (random port)."""

    def __init__(self, data_dir: Path, port: int, keys: dict[str, str]) -> None:
        self.data_dir, self.port, self.keys = data_dir, port, keys
        self.base = f"http://127.0.0.1:{port}/ngsi-ld/v1"

    def auth(self, key: str = "all") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    async def get(self, path: str, params: dict | None = None, *, key: str = "all",
                  headers: dict | None = None) -> tuple[int, Any, Any]:
        async with aiohttp.ClientSession() as s, s.get(
                self.base + path, params=params, headers={**self.auth(key), **(headers or {})}) as r:
            return r.status, await r.json(content_type=None), r.headers

    async def post(self, path: str, body: Any, *, key: str = "all", params: dict | None = None,
                   headers: dict | None = None) -> tuple[int, Any, Any]:
        async with aiohttp.ClientSession() as s, s.post(
                self.base + path, json=body, params=params,
                headers={**self.auth(key), **(headers or {})}) as r:
            return r.status, await r.json(content_type=None), r.headers


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def facade(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("ngsi-ld")
    data_dir = tmp_path / "osaka"
    data_dir.mkdir(mode=0o700)
    (tmp_path / "building.yaml").write_text(yaml.safe_dump(BUILDING_MODEL), encoding="utf-8")
    for view, rows in SUITES.items():
        ids = [{"id": f"urn:ngsi-ld:Building:{view}-{n}", **r} for n, r in enumerate(rows, 1)]
        await _internal_dataset(data_dir, view, ids)
        add_view(data_dir, ViewSetting(view, str(tmp_path / "building.yaml"), dataset=view))
    await _internal_dataset(data_dir, "himeji-aed", aed_rows())
    add_view(data_dir, ViewSetting("himeji-aed", "builtin:aed", dataset="himeji-aed"))
    keys = FacadeKeys(data_dir)
    tokens = {"all": keys.create("tests", ["*"])[1], "aed": keys.create("map app", ["himeji-aed"])[1],
              "revocable": keys.create("old app", ["himeji-aed"])[1]}
    for view in SUITES:
        tokens[view] = keys.create(view, [view])[1]
    app = web.Application(middlewares=[error_middleware, problem_middleware, door_middleware(
        ConnectorAuthenticator(data_dir, "urn:areamesh:org:270008:node:main"))])
    NgsiLdFacade(FacadeData(data_dir, lambda: None, lambda: []), keys).add_routes(app)  # type: ignore[arg-type]
    check_doors(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Facade(data_dir, port, tokens)
    finally:
        await runner.cleanup()


def bid(view: str, n: int) -> str:
    return f"urn:ngsi-ld:Building:{view}-{n}"


def ids_of(body: list[dict]) -> set[str]:
    return {e["id"] for e in body}


def assert_problem(status: int, body: Any, expected_status: int, expected_type: str) -> None:
    assert status == expected_status, body
    assert body["type"] == expected_type, body
    assert body["title"] and body["detail"], body


# ---- a real NGSI-LD client ------------------------------------------------------------------


class _Bearer:
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


def _client(f: Facade, key: str = "aed"):
    from requests.auth import AuthBase

    auth = type("BearerAuth", (AuthBase,), {"__call__": _Bearer(f.keys[key]).__call__})()
    return ngsildclient.Client(hostname="127.0.0.1", port=f.port, custom_auth=auth, verbose=False)


async def test_an_ngsi_ld_client_finds_the_aeds_within_500_m_of_a_point(facade: Facade):
    aed_context = f"http://127.0.0.1:{facade.port}/ngsi-ld/v1/jsonldContexts/aed"

    def run() -> dict[str, Any]:
        with _client(facade) as client:
            near = client.alt.query({"type": "Query", "entities": [{"type": "AED"}],
                                     "geoQ": {"georel": "near;maxDistance==500", "geometry": "Point",
                                              "coordinates": list(HIMEJI_STATION)}}, ctx=aed_context)
            all_24h = client.query(type="AED", q='fullTimeAvailable=="可"', ctx=aed_context)
            one = client.get("urn:ngsi-ld:AED:282014-0002", ctx=aed_context)
            count = client.entities.count(type="AED", ctx=aed_context)
            return {"near": near, "all_24h": all_24h, "one": one, "count": count}

    got = await asyncio.to_thread(run)
    assert {e.id for e in got["near"]} == {"urn:ngsi-ld:AED:282014-0001", "urn:ngsi-ld:AED:282014-0002",
                                           "urn:ngsi-ld:AED:282014-0003"}
    assert {e.id for e in got["all_24h"]} == {"urn:ngsi-ld:AED:282014-0001",
                                              "urn:ngsi-ld:AED:282014-0004"}
    one = got["one"]
    assert one.type == "AED" and one["name"].value == "大手前公園"
    raw = one.to_dict()
    assert raw["address"]["value"]["abrMachiazaId"] == "0008001"   # digits only, as geolonia maps it
    assert raw["location"]["value"]["type"] == "Point"
    assert got["count"] == 5


async def test_the_client_gets_problem_details_as_its_typed_errors(facade: Facade):
    from ngsildclient.api.exceptions import NgsiBadRequestDataError, NgsiResourceNotFoundError

    def run() -> list[Any]:
        raised: list[Any] = []
        with _client(facade) as client:
            for call in (lambda: client.query(type="AED", q="name=="),
                         lambda: client.get("urn:ngsi-ld:AED:282014-9999")):
                try:
                    call()
                except Exception as exc:     # what the client raises is the assertion
                    raised.append(type(exc))
            try:   # the client's POST query passes the HTTP error on as it is
                client.alt.query({"type": "Query", "entities": [{"type": "AED"}],
                                  "geoQ": {"georel": "near", "geometry": "Point",
                                           "coordinates": [134.69, 34.82]}})
            except Exception as exc:
                raised.append(exc.response.json())     # type: ignore[attr-defined]
        return raised

    got = await asyncio.to_thread(run)
    assert got[:2] == [NgsiBadRequestDataError, NgsiResourceNotFoundError]
    assert got[2]["type"] == BAD_REQUEST and "maxDistance" in got[2]["detail"]


# ---- ETSI NGSI-LD API test suite: Query Entities (019_*) and Retrieve Entity (018_*) --------


async def test_019_01_01_query_several_entities_based_on_ids(facade: Facade):
    v = "etsi-minimal"
    status, body, _ = await facade.get("/entities", {"id": f"{bid(v, 1)},{bid(v, 2)}",
                                                     "type": ETSI + "Building"}, key=v)
    assert status == 200 and ids_of(body) == {bid(v, 1), bid(v, 2)}


async def test_019_01_03_query_several_entities_based_on_the_given_id_pattern(facade: Facade):
    v = "etsi-minimal"
    status, body, _ = await facade.get("/entities", {"idPattern": r"urn:ngsi-ld:Building:etsi-minimal-[12]",
                                                     "type": ETSI + "Building"}, key=v)
    assert status == 200 and ids_of(body) == {bid(v, 1), bid(v, 2)}


async def test_019_01_04_query_several_entities_based_on_attribute_names(facade: Facade):
    v = "etsi-attrs"
    status, body, _ = await facade.get("/entities", {
        "attrs": f"{ETSI}airQualityLevel,{ETSI}subCategory"}, key=v)
    assert status == 200
    # expectation building-attributes-query.json: no @context sent, so the test suite's terms
    # come back as full IRIs; only the asked attributes (unitCode/observedAt are not in rows)
    assert body == [{"id": bid(v, 1), "type": ETSI + "Building",
                     ETSI + "airQualityLevel": {"type": "Property", "value": 4},
                     ETSI + "subCategory": {"type": "Property", "value": "tourism"}}]


async def test_019_01_05_query_several_entities_based_on_a_geoquery(facade: Facade):
    v = "etsi-equal-points"
    status, body, headers = await facade.get("/entities", {
        "type": ETSI + "Building", "georel": "equals", "geometry": "Point",
        "coordinates": "[13.3986, 52.5547]"}, key=v, headers={"Accept": LD})
    assert status == 200 and ids_of(body) == {bid(v, 1), bid(v, 2)}
    assert headers["Content-Type"].startswith(LD)
    assert all(e["@context"] == CORE and e["location"]["value"] == point(13.3986, 52.5547)
               for e in body)


@pytest.mark.parametrize("case,selector,expected", [
    ("019_02_01", {"id": "urn:ngsi-ld:Building:etsi-minimal-1", "type": ETSI + "Building"}, {1}),
    ("019_02_02", {"type": ETSI + "Building"}, {1, 2, 3}),
    ("019_02_03", {"idPattern": "urn:ngsi-ld:Building:etsi-minimal-[23]", "type": ETSI + "Building"},
     {2, 3}),
])
async def test_019_02_query_entities_via_post(facade: Facade, case: str, selector: dict,
                                              expected: set[int]):
    status, body, _ = await facade.post("/entityOperations/query",
                                        {"type": "Query", "entities": [selector]}, key="etsi-minimal")
    assert status == 200, body
    assert ids_of(body) == {bid("etsi-minimal", n) for n in expected}, case


async def test_019_02_06_query_two_entities_via_post_based_on_ids(facade: Facade):
    v = "etsi-minimal"
    status, body, _ = await facade.post("/entityOperations/query", {"type": "Query", "entities": [
        {"id": bid(v, 1), "type": ETSI + "Building"}, {"id": bid(v, 3), "type": ETSI + "Building"}]},
        key=v)
    assert status == 200 and ids_of(body) == {bid(v, 1), bid(v, 3)}


async def test_019_04_01_query_entities_in_a_simplified_representation(facade: Facade):
    v = "etsi-simple-twice"
    status, body, _ = await facade.get("/entities", {
        "id": f"{bid(v, 1)},{bid(v, 2)}", "type": ETSI + "Building", "options": "keyValues"}, key=v)
    assert status == 200
    # expectation building-simple-attributes-simplified.json, for each of the two ids
    assert sorted(body, key=lambda e: e["id"]) == [
        {"id": bid(v, n), "type": ETSI + "Building", ETSI + "name": "Eiffel Tower",
         ETSI + "airQualityLevel": 4, ETSI + "almostFull": False, ETSI + "subCategory": "tourism"}
        for n in (1, 2)]


async def test_019_02_04_query_entities_via_post_based_on_attribute_names(facade: Facade):
    status, body, _ = await facade.post("/entityOperations/query", {
        "type": "Query", "attrs": [ETSI + "airQualityLevel"]}, key="etsi-attrs")
    assert status == 200 and ids_of(body) == {bid("etsi-attrs", 1)}


@pytest.mark.parametrize("case,params", [
    ("019_03_01", {"id": "thisisaninvaliduri1,thisisaninvaliduri2", "type": ETSI + "Building"}),
    ("019_03_02", {"idPattern": "invalid_entity_id_pattern**", "type": ETSI + "Building"}),
    ("019_03_03", {"attrs": "id,type"}),
    ("019_03_04", {"type": "Building", "geoproperty": "location", "georel": "invalid",
                   "geometry": "Point", "coordinates": "[-8.503,41.202]"}),
    ("019_03_05", {"id": "urn:ngsi-ld:Building:etsi-minimal-1,urn:ngsi-ld:Building:etsi-minimal-2"}),
])
async def test_019_03_query_entities_with_bad_input_is_bad_request_data(facade: Facade, case: str,
                                                                        params: dict):
    status, body, _ = await facade.get("/entities", params, key="etsi-minimal",
                                       headers={"Link": f'<{ETSI_CONTEXT}>; rel="http://www.w3.org/ns/'
                                                        'json-ld#context"; type="application/ld+json"'})
    assert_problem(status, body, 400, BAD_REQUEST)


async def test_019_06_01_query_entities_specifying_a_maximum_number_of_results(facade: Facade):
    v = "etsi-minimal"
    status, body, _ = await facade.get("/entities", {
        "id": ",".join(bid(v, n) for n in (1, 2, 3)), "type": ETSI + "Building", "limit": "2"}, key=v)
    assert status == 200 and len(body) == 2


LINK = {"Link": f'<{ETSI_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; '
                'type="application/ld+json"'}


@pytest.mark.parametrize("case,q,expected_count", [
    ("019_07_01", None, 2),
    ("019_07_02", "airQualityLevel==6", 1),
])
async def test_019_07_count(facade: Facade, case: str, q: str | None, expected_count: int):
    params = {"type": "Building", "count": "true", **({"q": q} if q else {})}
    status, _, headers = await facade.get("/entities", params, key="etsi-count", headers=LINK)
    assert status == 200 and headers["NGSILD-Results-Count"] == str(expected_count), case


@pytest.mark.parametrize("case,q,expected_count", [
    ("019_09_01", 'name=="Eiffel Tower"', 1),
    ("019_09_02", 'name=="Pisa Tower";almostFull==false', 1),
    ("019_09_04", 'name=="Pisa Tower"|almostFull==false', 3),
    ("019_09_05", '(name=="Pisa Tower"|name=="Eiffel Tower");almostFull==false', 2),
    ("019_09_06", "airQualityLevel==4", 1),
    ("019_09_07", "airQualityLevel>=4;airQualityLevel<7", 2),
    ("019_09_08", "locatedIn==urn:ngsi-ld:City:Pisa", 1),
    ("019_09_09", "locatedIn==urn:ngsi-ld:City:Paris", 0),
    ("019_09_10", "locatedIn==urn:ngsi-ld:City:Pisa|locatedIn==urn:ngsi-ld:City:Paris", 1),
])
async def test_019_09_query_several_entities_based_on_q(facade: Facade, case: str, q: str,
                                                        expected_count: int):
    status, body, headers = await facade.get("/entities", {"q": q, "count": "true"},
                                             key="etsi-simple", headers=LINK)
    assert status == 200, body
    assert headers["NGSILD-Results-Count"] == str(expected_count), case
    assert len(body) == expected_count


BERLIN = ("[[[13.1616211,52.5438124],[13.597641,52.4840224],[13.5948944,52.3402782],"
          "[13.142395,52.386428],[13.1616211,52.5438124]]]")


@pytest.mark.parametrize("case,georel,geometry,coordinates,expected_count", [
    ("019_10_01", "equals", "Point", "[13.3986, 52.5547]", 1),
    ("019_10_02", "near;maxDistance==15000", "Point", "[13.388930, 52.534473]", 2),
    ("019_10_03", "near;minDistance==15000", "Point", "[13.388930, 52.534473]", 1),
    ("019_10_04", "within", "Polygon", BERLIN, 2),
    ("019_10_05", "disjoint", "Polygon", BERLIN, 1),
    ("019_10_06", "disjoint", "Point", "[13.3986, 52.5547]", 2),
    ("019_10_07", "contains", "Point", "[13.3986, 52.5547]", 1),
    ("019_10_08", "intersects", "Point", "[13.3986, 52.5547]", 1),
])
async def test_019_10_geoqueries_with_point_target_geometries(facade: Facade, case, georel, geometry,
                                                              coordinates, expected_count):
    status, body, headers = await facade.get("/entities", {
        "type": "Building", "georel": georel, "geometry": geometry, "coordinates": coordinates,
        "count": "true"}, key="etsi-points", headers=LINK)
    assert status == 200, body
    assert headers["NGSILD-Results-Count"] == str(expected_count), case


@pytest.mark.parametrize("case,georel,geometry,coordinates,expected_count", [
    ("019_11_01", "equals", "Polygon", "[[[13.2865906,52.5648645],[13.2879639,52.5648645],"
     "[13.2797241,52.4988679],[13.477478,52.4712703],[13.5049438,52.5373084],[13.2865906,52.5648645]]]", 1),
    ("019_11_02", "intersects", "Polygon", "[[[13.3456421,52.4794848],[13.3641815,52.4428773],"
     "[13.4177399,52.4730023],[13.3459854,52.479903],[13.3456421,52.4794848]]]", 1),
    ("019_11_03", "contains", "Polygon", "[[[13.3844376,52.5356966],[13.3844376,52.5356966],"
     "[13.381691,52.5123012],[13.4235764,52.5100027],[13.4331894,52.5273425],[13.3844376,52.5356966]]]", 1),
    ("019_11_04", "contains", "Polygon", "[[[13.1369019,52.5198225],[13.1365585,52.5200314],"
     "[13.131752,52.4980907],[13.1832504,52.5026887],[13.1369019,52.5198225]]]", 0),
    ("019_11_05", "disjoint", "Polygon", "[[[13.1369019,52.5198225],[13.1365585,52.5200314],"
     "[13.131752,52.4980907],[13.1832504,52.5026887],[13.1369019,52.5198225]]]", 2),
    ("019_11_06", "within", "Polygon", "[[[13.3023834,52.4903066],[13.3027267,52.4905156],"
     "[13.2745743,52.465632],[13.3343124,52.4185447],[13.4311295,52.47107],[13.3023834,52.4903066]]]", 1),
    ("019_11_07", "overlaps", "Polygon", "[[[13.3456421,52.4794848],[13.3641815,52.4428773],"
     "[13.4177399,52.4730023],[13.3459854,52.479903],[13.3456421,52.4794848]]]", 1),
    ("019_11_08", "contains", "Point", "[13.3442688,52.4650045]", 1),
])
async def test_019_11_geoqueries_with_polygon_target_geometries(facade: Facade, case, georel, geometry,
                                                                coordinates, expected_count):
    status, body, headers = await facade.get("/entities", {
        "type": "Building", "georel": georel, "geometry": geometry, "coordinates": coordinates,
        "count": "true"}, key="etsi-polygons", headers=LINK)
    assert status == 200, body
    assert headers["NGSILD-Results-Count"] == str(expected_count), case


async def test_018_01_01_get_an_entity_by_id(facade: Facade):
    v = "etsi-simple"
    status, body, _ = await facade.get(f"/entities/{bid(v, 1)}", key=v, headers={"Accept": LD})
    assert status == 200
    assert body == {"id": bid(v, 1), "type": ETSI + "Building", "@context": CORE,
                    ETSI + "name": {"type": "Property", "value": "Eiffel Tower"},
                    ETSI + "subCategory": {"type": "Property", "value": "tourism"},
                    ETSI + "airQualityLevel": {"type": "Property", "value": 4},
                    ETSI + "almostFull": {"type": "Property", "value": False}}


async def test_018_01_02_get_some_attributes_of_an_entity(facade: Facade):
    v = "etsi-simple"
    status, body, _ = await facade.get(f"/entities/{bid(v, 1)}", {
        "attrs": f"{ETSI}airQualityLevel,{ETSI}subCategory"}, key=v, headers={"Accept": LD})
    assert status == 200
    assert set(body) == {"id", "type", "@context", ETSI + "airQualityLevel", ETSI + "subCategory"}


async def test_018_02_01_get_an_entity_if_the_entity_id_is_not_a_valid_uri(facade: Facade):
    status, body, _ = await facade.get("/entities/thisisaninvaliduri", key="etsi-simple")
    assert_problem(status, body, 400, BAD_REQUEST)


async def test_018_03_01_get_an_entity_not_known_to_the_system(facade: Facade):
    status, body, _ = await facade.get("/entities/urn:ngsi-ld:Building:unknown", key="etsi-simple")
    assert_problem(status, body, 404, NOT_FOUND)


async def test_018_03_02_get_an_entity_if_an_attribute_is_not_known(facade: Facade):
    status, body, _ = await facade.get(f"/entities/{bid('etsi-simple', 1)}",
                                       {"attrs": "property_not_found"}, key="etsi-simple",
                                       headers={"Accept": LD})
    assert_problem(status, body, 404, NOT_FOUND)


async def test_018_04_01_get_an_entity_in_a_simplified_representation(facade: Facade):
    v = "etsi-simple"
    status, body, _ = await facade.get(f"/entities/{bid(v, 1)}", {"options": "keyValues"}, key=v,
                                       headers={"Accept": LD})
    assert status == 200
    assert body == {"id": bid(v, 1), "type": ETSI + "Building", "@context": CORE,
                    ETSI + "name": "Eiffel Tower", ETSI + "airQualityLevel": 4,
                    ETSI + "almostFull": False, ETSI + "subCategory": "tourism"}


@pytest.mark.parametrize("case,headers,expected", [
    ("022_01_01", {}, [ETSI + "Building"]),       # without a @context: full IRIs
    ("022_01_02", LINK, ["Building"]),
])
async def test_022_01_retrieve_available_entity_types(facade: Facade, case, headers, expected):
    status, body, _ = await facade.get("/types", key="etsi-simple", headers=headers)
    assert status == 200, case
    assert body["type"] == "EntityTypeList" and body["typeList"] == expected
    assert body["id"].startswith("urn:ngsi-ld:EntityTypeList:")


@pytest.mark.parametrize("case,headers,prefix", [
    ("023_01_01", {}, ETSI),
    ("023_01_02", LINK, ""),
])
async def test_023_01_retrieve_details_of_available_entity_types(facade: Facade, case, headers, prefix):
    status, body, _ = await facade.get("/types", {"details": "true"}, key="etsi-simple",
                                       headers=headers)
    assert status == 200, case
    assert len(body) == 1
    building = body[0]
    assert building["id"] == ETSI + "Building" and building["type"] == "EntityType"
    assert building["typeName"] == prefix + "Building"
    # the suite's Building has name, subCategory, airQualityLevel, almostFull; our third Building
    # also has the locatedIn relationship
    assert set(building["attributeNames"]) == {prefix + a for a in (
        "name", "subCategory", "airQualityLevel", "almostFull", "locatedIn")}


# ---- the subset's own behaviour ---------------------------------------------------------------


async def test_with_the_models_context_terms_are_short_and_the_link_header_names_it(facade: Facade):
    status, body, headers = await facade.get("/entities", {"type": "Building", "limit": "1"},
                                             key="etsi-simple", headers=LINK)
    assert status == 200 and body[0]["type"] == "Building" and "airQualityLevel" in body[0]
    assert f"<{ETSI_CONTEXT}>" in headers["Link"]


async def test_paging_count_and_types(facade: Facade):
    pages = []
    for offset in (0, 2, 4):
        status, body, headers = await facade.get("/entities", {
            "type": "AED", "limit": "2", "offset": str(offset), "count": "true"}, key="aed")
        assert status == 200 and headers["NGSILD-Results-Count"] == "5"
        pages.append([e["id"] for e in body])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert len({i for p in pages for i in p}) == 5
    status, body, _ = await facade.get("/types", key="aed")
    assert status == 200 and body["typeList"] == ["urn:areamesh:vocab:aed:AED"]
    ctx = f"http://127.0.0.1:{facade.port}/ngsi-ld/v1/jsonldContexts/aed"
    status, body, _ = await facade.get("/types", {"details": "true"}, key="aed", headers={
        "Link": f'<{ctx}>; rel="http://www.w3.org/ns/json-ld#context"'})
    assert status == 200 and body[0]["typeName"] == "AED" and "location" in body[0]["attributeNames"]
    async with aiohttp.ClientSession() as s, s.get(ctx) as r:      # public: no key needed
        assert r.status == 200
        assert (await r.json(content_type=None))["@context"]["AED"] == "urn:areamesh:vocab:aed:AED"


async def test_a_key_reads_only_its_views_and_bad_keys_get_401(facade: Facade):
    status, body, _ = await facade.get("/entities", {"type": "AED"}, key="etsi-simple")
    assert status == 200 and body == []         # the AED view is not this key's
    status, body, _ = await facade.get("/entities/urn:ngsi-ld:AED:282014-0001", key="etsi-simple")
    assert_problem(status, body, 404, NOT_FOUND)
    async with aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": "Bearer amld_000000000000_" + "x" * 43},
                        {"Authorization": "Bearer not-a-key"}):
            async with s.get(facade.base + "/entities", params={"type": "AED"}, headers=headers) as r:
                body = await r.json(content_type=None)
                assert r.status == 401 and body["type"].endswith("Unauthenticated"), body
    status, body, _ = await facade.get("/entities", {"type": "AED"}, key="revocable")
    assert status == 200 and len(body) == 5
    FacadeKeys(facade.data_dir).revoke(facade.keys["revocable"].split("_")[1])
    status, body, _ = await facade.get("/entities", {"type": "AED"}, key="revocable")
    assert status == 401 and body["code"] == "api_key_revoked"     # at once, no restart


@pytest.mark.parametrize("params,parameter", [
    ({"type": "AED", "q": "name=="}, "q"),
    ({"type": "AED", "q": '(name=="a"'}, "q"),
    ({"type": "AED", "q": "name==姫路"}, "q"),
    ({"type": "AED", "q": 'name=="a";;x==1'}, "q"),
    ({"type": "AED", "q": "height>true"}, "q"),
    ({"type": "AED", "q": "height==1..2..3"}, "q"),
    ({"type": "AED", "q": "(" * 40 + "a" + ")" * 40}, "q"),
    ({"type": "AED", "georel": "nearby", "geometry": "Point", "coordinates": "[134.69,34.82]"}, "georel"),
    ({"type": "AED", "georel": "near", "geometry": "Point", "coordinates": "[134.69,34.82]"}, "georel"),
    ({"type": "AED", "georel": "near;maxDistance==-5", "geometry": "Point",
      "coordinates": "[134.69,34.82]"}, "georel"),
    ({"type": "AED", "georel": "within", "geometry": "Circle", "coordinates": "[134.69,34.82]"},
     "geometry"),
    ({"type": "AED", "georel": "near;maxDistance==500", "geometry": "Point",
      "coordinates": "[34.82,234.69]"}, "coordinates"),
    ({"type": "AED", "georel": "near;maxDistance==500", "geometry": "Point",
      "coordinates": "134.69,34.82"}, "coordinates"),
    ({"type": "AED", "georel": "within", "geometry": "Polygon",
      "coordinates": "[[[134,34],[135,34],[135,35]]]"}, "coordinates"),
    ({"type": "AED", "georel": "within", "geometry": "Polygon",
      "coordinates": "[[[134,34],[135,35],[135,34],[134,35],[134,34.5]]]"}, "coordinates"),
    ({"type": "AED", "georel": "within", "geometry": "Polygon",
      "coordinates": '[[[134,34],[135,"35"],[135,34],[134,34]]]'}, "coordinates"),
    ({"type": "AED", "georel": "within", "geometry": "Point"}, "coordinates"),
    ({"type": "AED", "limit": "100000"}, "limit"),
    ({"type": "AED", "limit": "-1"}, "limit"),
    ({"type": "AED", "offset": "x"}, "offset"),
    ({"type": "AED", "limit": "0"}, "limit"),
    ({"type": "AED", "count": "yes"}, "count"),
    ({"type": "AED", "sortBy": "name"}, "sortBy"),
    ({"type": "AED;Building"}, "type"),
])
async def test_bad_queries_are_problem_details_400_naming_the_parameter(facade: Facade, params: dict,
                                                                        parameter: str):
    status, body, headers = await facade.get("/entities", params, key="aed")
    assert_problem(status, body, 400, BAD_REQUEST)
    assert body["details"]["parameter"] == parameter, body
    assert headers["Content-Type"].startswith("application/json")


async def test_post_query_bad_bodies_and_unknown_contexts(facade: Facade):
    for body in ([], {"type": "NotAQuery"}, {"type": "Query", "entities": "AED"},
                 {"type": "Query", "entities": [{"type": "AED"}], "geoQ": {"georel": "within",
                  "geometry": "Polygon", "coordinates": [[[1, 2]]]}},
                 {"type": "Query", "entities": [{"type": "AED"}], "q": 5}):
        status, answer, _ = await facade.post("/entityOperations/query", body, key="aed")
        assert_problem(status, answer, 400, BAD_REQUEST)
    status, answer, _ = await facade.get("/entities", {"type": "AED"}, key="aed", headers={
        "Link": '<https://example.org/unknown.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'})
    assert_problem(status, answer, 503, "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable")
    status, answer, _ = await facade.get("/entities", {"type": "AED"}, key="aed",
                                         headers={"Accept": "text/csv"})
    assert status == 406 and answer["type"].endswith("NotAcceptable")
    status, answer, _ = await facade.post("/entities", {"id": "urn:x", "type": "AED"}, key="aed")
    assert_problem(status, answer, 405, "https://uri.etsi.org/ngsi-ld/errors/OperationNotSupported")
    status, answer, _ = await facade.get("/subscriptions", key="aed")
    assert_problem(status, answer, 404, NOT_FOUND)


async def test_geojson_representation(facade: Facade):
    status, body, headers = await facade.get("/entities", {
        "type": "AED", "georel": "near;maxDistance==200", "geometry": "Point",
        "coordinates": json.dumps(list(HIMEJI_STATION))}, key="aed",
        headers={"Accept": "application/geo+json"})
    assert status == 200 and headers["Content-Type"].startswith("application/geo+json")
    assert body["type"] == "FeatureCollection"
    assert [f["id"] for f in body["features"]] == ["urn:ngsi-ld:AED:282014-0001"]
    assert body["features"][0]["geometry"]["type"] == "Point"
