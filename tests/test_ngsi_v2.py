"""NGSI v2 (FIWARE Orion): the source and sink adapters against ``tests/orion_fake.py`` (the
documented Orion API shapes: paging with ``Fiware-Total-Count``, tenancy headers, ``op/update``,
error bodies), the shared adapter contracts, and the bad payloads that must not cross."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow as pa
import pytest
import yaml
from aiohttp import web

from connector.adapters.base import SinkError, SourceError
from connector.adapters.registry import load_adapters, open_sink, open_source
from connector.datasets.store import PublisherStore
from connector.subscriptions.follow import follow
from connector.subscriptions.orion import subscribe
from connector.subscriptions.orion_store import OrionSubscriptionStore
from mesh.errors import FailedPrecondition, InvalidRequest, Unavailable
from tests.adapter_contract import SinkContract, SourceContract, read_rows, sample_batches

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness, wait_for
from .orion_fake import FakeOrion
from .transfer_fixtures import (
    DATASET_ID,
    agree,
    dataset_doc,
    fetch_cli,
    ndjson_rows,
    setup_transfer_mesh,
)


def aed(i: int) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:AED:{i:03d}", "type": "AED",
            "name": {"type": "Text", "value": f"姫路市役所 AED {i}"},
            "available": {"type": "Boolean", "value": i != 2},
            "units": {"type": "Number", "value": i},
            "location": {"type": "geo:json",
                         "value": {"type": "Point", "coordinates": [134.68 + i, 34.81]}}}


@pytest.fixture
async def orion():
    fake = await FakeOrion().start()
    yield fake
    await fake.stop()


def seed(fake: FakeOrion, n: int = 5, *, service: str = "himeji", path: str = "/aed") -> None:
    for i in range(1, n + 1):
        fake.put(aed(i), service=service, path=path)


def config(fake: FakeOrion, **extra: Any) -> dict[str, Any]:
    return {"adapter": "ngsi_v2", "broker": fake.base, "type": "AED", "service": "himeji",
            "service_path": "/aed", "limit": 2, **extra}


def expected(n: int = 5) -> list[dict[str, Any]]:
    return [{"id": f"urn:ngsi-ld:AED:{i:03d}", "type": "AED", "name": f"姫路市役所 AED {i}",
             "available": i != 2, "units": i, "location_lon": 134.68 + i, "location_lat": 34.81}
            for i in range(1, n + 1)]


def test_registered_as_source_and_sink():
    assert load_adapters()["ngsi_v2"].kind == "ngsi_v2"


async def orion_call(fake: FakeOrion, method: str, path: str, *, body: Any = None,
                     headers: dict[str, str] | None = None, raw: bytes | None = None
                     ) -> tuple[int, Any, dict[str, str]]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    async with aiohttp.ClientSession() as s, s.request(method, fake.base + path, data=data, headers={
            "Content-Type": "application/json", **(headers or {})}) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None), dict(r.headers)


async def test_the_fake_answers_as_the_specification_documents(orion: FakeOrion):
    """The server the adapters are tested against: paging header, error bodies, tenancy."""
    himeji = {"Fiware-Service": "himeji", "Fiware-ServicePath": "/aed/east"}
    e1 = {"id": "E1", "type": "AED", "n": {"value": 1}}
    assert (await orion_call(orion, "POST", "/v2/op/update", headers=himeji,
                             body={"actionType": "append", "entities": [e1]}))[0] == 204
    status, page, headers = await orion_call(orion, "GET", "/v2/entities?type=AED&options=count",
                                             headers={"Fiware-Service": "himeji"})
    assert status == 200 and headers["Fiware-Total-Count"] == "1"
    assert page == [{"id": "E1", "type": "AED", "n": {"type": "Number", "value": 1, "metadata": {}}}]
    _, page, headers = await orion_call(orion, "GET", "/v2/entities?options=keyValues",
                                        headers={"Fiware-Service": "himeji",
                                                 "Fiware-ServicePath": "/aed/#"})
    assert page == [{"id": "E1", "type": "AED", "n": 1}] and "Fiware-Total-Count" not in headers
    for path_header in ("/aed/west", "/"):       # another path: not there
        _, page, _ = await orion_call(orion, "GET", "/v2/entities", headers={
            "Fiware-Service": "himeji", "Fiware-ServicePath": path_header})
        assert page == []
    _, page, _ = await orion_call(orion, "GET", "/v2/entities", headers={"Fiware-Service": "kobe"})
    assert page == []                            # another tenant: nothing
    cases = [
        ("GET", "/v2/entities?limit=1001", None, None, 400, "BadRequest"),
        ("GET", "/v2/entities?options=values", None, None, 400, "BadRequest"),
        ("POST", "/v2/op/update", None, b"{nope", 400, "ParseError"),
        ("POST", "/v2/op/update", {"actionType": "upsert", "entities": []}, None, 400, "BadRequest"),
        ("POST", "/v2/op/update", {"actionType": "update", "entities": [
            {"id": "E9", "type": "AED", "n": {"value": 2}}]}, None, 404, "NotFound"),
        ("POST", "/v2/op/update", None, b"[" + b" " * (1 << 20) + b"]", 413, "RequestEntityTooLarge"),
        ("POST", "/v2/subscriptions", {"subject": {"entities": [{"idPattern": ".*"}]},
                                       "notification": {"http": {"url": "mailto:x"}}}, None, 400,
         "BadRequest"),
        ("DELETE", "/v2/subscriptions/0123456789abcdef01234567", None, None, 404, "NotFound"),
    ]
    for method, path, body, raw, want, error in cases:
        status, doc, _ = await orion_call(orion, method, path, body=body, raw=raw, headers=himeji)
        assert status == want and doc["error"] == error and doc.get("description"), (path, doc)
    # a payload with one bad entity changes nothing, not even the good one before it
    status, doc, _ = await orion_call(orion, "POST", "/v2/op/update", headers=himeji, body={
        "actionType": "append", "entities": [{"id": "E2", "type": "AED"},
                                             {"id": "E3", "type": "AED", "n": {"value": "a(b)"}}]})
    assert status == 400 and doc["description"] == "Invalid characters in attribute value"
    assert [e.id for e in orion.entities_of("himeji")] == ["E1"]
    status, doc, _ = await orion_call(orion, "GET", "/v2/entities",
                                      headers={"Fiware-Service": "Himeji City"})
    assert status == 400 and doc["error"] == "BadRequest"


# ---------------------------------------------------------------- the contracts


class TestNgsiV2Source(SourceContract):
    @pytest.fixture
    def source_config(self, orion: FakeOrion) -> dict[str, Any]:
        self.orion = orion
        seed(orion)
        orion.put({"id": "urn:ngsi-ld:Toilet:1", "type": "Toilet"}, service="himeji", path="/aed")
        orion.put(aed(9), service="kobe", path="/aed")        # another tenant: never seen
        orion.put(aed(8), service="himeji", path="/other")    # another service path
        return config(orion)

    @pytest.fixture
    def expected_rows(self) -> list[dict[str, Any]]:
        return expected()

    async def mutate(self, config: dict[str, Any], base_dir: Path) -> None:
        self.orion.put({**aed(3), "units": {"type": "Number", "value": 30}}, service="himeji",
                       path="/aed")

    async def test_pages_with_count_and_tenancy_headers(self, source) -> None:
        self.orion.requests.clear()
        await read_rows(source)
        gets = [r for r in self.orion.requests if r[1] == "/v2/entities"]
        # schema (3 pages) and read (3 pages): 5 entities, limit 2, stopping at the total
        assert [int(q["offset"]) for _, _, q, _ in gets] == [0, 2, 4, 0, 2, 4]
        assert all(q["options"] == "count" and q["limit"] == "2" and q["type"] == "AED"
                   for _, _, q, _ in gets)
        assert all(h["Fiware-Service"] == "himeji" and h["Fiware-ServicePath"] == "/aed"
                   for _, _, _, h in gets)


class TestNgsiV2KeyValuesSource(TestNgsiV2Source):
    @pytest.fixture
    def source_config(self, orion: FakeOrion) -> dict[str, Any]:
        self.orion = orion
        seed(orion)
        return config(orion, format="keyValues", limit=1000,
                      attrs=["name", "available", "units", "location"],
                      types={"units": "int64"})

    async def test_pages_with_count_and_tenancy_headers(self, source) -> None:
        self.orion.requests.clear()
        await read_rows(source)
        [_, (_, _, q, _)] = [r for r in self.orion.requests if r[1] == "/v2/entities"]
        assert q["options"] == "count,keyValues" and "attrs" not in q


class TestNgsiV2Sink(SinkContract):
    @pytest.fixture
    def sink_config(self, orion: FakeOrion) -> dict[str, Any]:
        self.orion = orion
        return {"adapter": "ngsi_v2", "broker": orion.base, "type": "Municipality",
                "service": "hyogo", "service_path": "/cities", "id_column": "code",
                "id_prefix": "urn:ngsi-ld:Municipality:", "batch_size": 2}

    async def read_back(self, config: dict[str, Any], base_dir: Path) -> list[dict[str, Any]] | None:
        found = self.orion.entities_of("hyogo", "Municipality")
        if not found:
            return None
        assert all(e.path == "/cities" for e in found)
        return [{"code": e.id.removeprefix("urn:ngsi-ld:Municipality:"),
                 "name": e.attrs["name"]["value"], "count": e.attrs["count"]["value"]}
                for e in found]

    async def test_batches_and_types(self, sink_config: dict[str, Any], base_dir: Path) -> None:
        sink = open_sink(sink_config, base_dir)
        for batch in sample_batches():
            await sink.write(batch)
        await sink.commit()
        assert self.orion.update_calls == 2      # 3 entities, batch_size 2
        e = self.orion.entities_of("hyogo")[0]
        assert e.attrs["name"]["type"] == "Text" and e.attrs["count"] == {
            "type": "Number", "value": 1, "metadata": {}}
        assert "code" not in e.attrs


# ---------------------------------------------------------------- source: bad payloads


@pytest.mark.parametrize(("cfg", "key"), [
    ({"adapter": "ngsi_v2", "type": "AED"}, "broker"),
    ({"adapter": "ngsi_v2", "broker": "orion:1026", "type": "AED"}, "broker"),
    ({"adapter": "ngsi_v2", "broker": "http://127.0.0.1:1"}, "type"),
    ({"adapter": "ngsi_v2", "broker": "http://127.0.0.1:1", "type": "AED", "limit": 1001}, "limit"),
    ({"adapter": "ngsi_v2", "broker": "http://127.0.0.1:1", "type": "AED", "service": "Himeji City"},
     "service"),
    ({"adapter": "ngsi_v2", "broker": "http://127.0.0.1:1", "type": "AED", "service_path": "aed"},
     "service_path"),
    ({"adapter": "ngsi_v2", "broker": "http://127.0.0.1:1", "type": "AED", "attrs": ["名称"]}, "attrs"),
    ({"adapter": "ngsi_v2", "broker": "http://127.0.0.1:1", "type": "AED", "format": "values"}, "format"),
    ({"adapter": "ngsi_v2", "broker": "http://127.0.0.1:1", "type": "AED",
      "unknown_attributes": "drop"}, "unknown_attributes"),
])
def test_bad_source_config_names_the_key(tmp_path: Path, cfg: dict[str, Any], key: str):
    with pytest.raises(InvalidRequest) as err:
        open_source(cfg, tmp_path)
    assert f"'{key}'" in err.value.message and err.value.message_ja


async def test_wrong_type_is_refused_naming_entity_and_attribute(orion: FakeOrion, tmp_path: Path):
    seed(orion, 3)
    orion.put({**aed(4), "units": {"type": "Text", "value": "四"}}, service="himeji", path="/aed")
    source = open_source(config(orion, types={"units": "int64"}), tmp_path)
    with pytest.raises(SourceError) as err:
        await read_rows(source)
    assert "entity 4 ('urn:ngsi-ld:AED:004')" in err.value.message
    assert "'units'" in err.value.message and "not an integer" in err.value.message
    assert err.value.details["id"] == "urn:ngsi-ld:AED:004" and err.value.message_ja
    # without declared types, a type change after the inferred rows is still refused
    source = open_source(config(orion, infer_rows=1), tmp_path)
    with pytest.raises(SourceError, match=r"urn:ngsi-ld:AED:004.*'units'"):
        await read_rows(source)


async def test_booleans_are_not_integers_and_dates_are_checked(orion: FakeOrion, tmp_path: Path):
    orion.put({**aed(1), "units": {"type": "Boolean", "value": True}}, service="himeji", path="/aed")
    with pytest.raises(SourceError, match=r"'units'.*not an integer"):
        await read_rows(open_source(config(orion, types={"units": "int64"}), tmp_path))
    orion.put({**aed(1), "installed": {"type": "DateTime", "value": "2024-04-01T09:00:00.000Z"}},
              service="himeji", path="/aed")
    rows = await read_rows(open_source(config(orion, types={"installed": "timestamp[ms]"}),
                                       tmp_path))
    assert rows[0]["installed"].isoformat() == "2024-04-01T09:00:00"  # UTC
    orion.put({**aed(1), "installed": {"type": "DateTime", "value": "令和6年4月1日"}},
              service="himeji", path="/aed")
    with pytest.raises(SourceError, match=r"'installed'.*ISO 8601"):
        await read_rows(open_source(config(orion, types={"installed": "timestamp[ms]"}),
                                    tmp_path))


async def test_unknown_attribute_is_refused_or_not_asked_for(orion: FakeOrion, tmp_path: Path):
    seed(orion, 2)
    orion.put({**aed(3), "ownerPhone": {"type": "Text", "value": "079-000-0000"}},
              service="himeji", path="/aed")
    attrs = ["name", "available", "units", "location"]
    with pytest.raises(SourceError) as err:
        await read_rows(open_source(config(orion, attrs=attrs), tmp_path))
    assert "entity 3 ('urn:ngsi-ld:AED:003')" in err.value.message
    assert "'ownerPhone'" in err.value.message and err.value.details["attribute"] == "ownerPhone"
    # with unknown_attributes: ignore only the dataset's attributes are asked for and come
    orion.requests.clear()
    rows = await read_rows(open_source(config(orion, attrs=attrs, unknown_attributes="ignore"),
                                       tmp_path))
    assert len(rows) == 3 and all("ownerPhone" not in r for r in rows)
    assert all(q.get("attrs") == ",".join(attrs) for _, p, q, _ in orion.requests if p == "/v2/entities")


async def test_huge_array_is_refused(orion: FakeOrion, tmp_path: Path):
    seed(orion, 1)
    orion.put({**aed(2), "history": {"type": "StructuredValue",
                                      "value": {"checks": list(range(5000))}}},
              service="himeji", path="/aed")
    with pytest.raises(SourceError) as err:
        await read_rows(open_source(config(orion), tmp_path))
    assert "holds an array of 5000 items" in err.value.message and "AED:002" in err.value.message
    assert err.value.details["items"] == 5000
    # a small array passes, as JSON text
    orion.put({**aed(2), "history": {"type": "StructuredValue", "value": [1, 2]}},
              service="himeji", path="/aed")
    rows = await read_rows(open_source(config(orion), tmp_path))
    assert rows[1]["history"] == "[1,2]"


def replace_entities_route(orion: FakeOrion, handler) -> None:
    """Make the fake's GET /v2/entities misbehave (a broken or non-Orion server)."""
    for route in orion.app.router.routes():
        if route.resource is not None and route.resource.canonical == "/v2/entities" \
                and route.method == "GET":
            route._handler = handler


async def test_not_normalized_or_wrong_entity_type_is_refused(orion: FakeOrion, tmp_path: Path):
    answers = [[{"id": "a1", "type": "AED", "name": "keyValues without asking"}],
               [{"id": "a1", "type": "Toilet", "name": {"type": "Text", "value": "x"}}],
               [["a1", "AED"]]]

    async def odd(request):
        return web.json_response(answers[0], headers={"Fiware-Total-Count": "1"})

    replace_entities_route(orion, odd)
    with pytest.raises(SourceError, match="attribute 'name' is not in normalized form"):
        await read_rows(open_source(config(orion), tmp_path))
    answers.pop(0)
    with pytest.raises(SourceError, match="has type 'Toilet', not 'AED'"):
        await read_rows(open_source(config(orion), tmp_path))
    answers.pop(0)
    with pytest.raises(SourceError, match="not an entity object"):
        await read_rows(open_source(config(orion), tmp_path))


async def test_broker_errors_are_clear(orion: FakeOrion, tmp_path: Path):
    seed(orion, 3)
    with pytest.raises(SourceError) as err:
        await read_rows(open_source(config(orion, q="units=="), tmp_path))
    assert "HTTP 400: BadRequest: invalid query expression" in err.value.message
    assert err.value.details["status"] == 400
    with pytest.raises(SourceError, match="BadRequest: invalid regex for idPattern"):
        await read_rows(open_source(config(orion, id_pattern="AED:(("), tmp_path))
    closed = open_source({**config(orion), "broker": "http://127.0.0.1:9"}, tmp_path)
    with pytest.raises(Unavailable):
        await closed.schema()


async def test_full_pages_of_1000_arrive_whole(orion: FakeOrion, tmp_path: Path):
    for i in range(1, 1201):
        orion.put({**aed(i), "note": {"type": "Text", "value": "姫路市の設置場所" * 10}},
                  service="himeji", path="/aed")
    rows = await read_rows(open_source(config(orion, limit=1000), tmp_path))
    assert len(rows) == 1200 and rows[-1]["id"] == "urn:ngsi-ld:AED:1200"


async def test_filters_id_pattern_and_q(orion: FakeOrion, tmp_path: Path):
    seed(orion, 5)
    rows = await read_rows(open_source(config(orion, q="units>2;available==true",
                                              id_pattern="AED:00[1-4]$"), tmp_path))
    assert [r["id"][-3:] for r in rows] == ["003", "004"]


async def test_paging_anomalies(orion: FakeOrion, tmp_path: Path):
    seed(orion, 5)
    source = open_source(config(orion), tmp_path)
    await source.schema()
    original, calls = orion.list_entities, 0

    async def growing(request):   # an entity is created while the source pages
        nonlocal calls
        calls += 1
        if calls == 2:
            orion.put(aed(6), service="himeji", path="/aed")
        return await original(request)

    replace_entities_route(orion, growing)
    with pytest.raises(Unavailable) as err:
        await read_rows(source)
    assert err.value.code == "source_changed_while_reading" and "5 → 6" in err.value.message

    async def too_long(request):  # a server ignoring limit
        response = await original(request)
        page = json.loads(response.body)
        return web.json_response(page * 3, headers={"Fiware-Total-Count": "6"})

    replace_entities_route(orion, too_long)
    with pytest.raises(SourceError, match="6 entities for limit 2"):
        await read_rows(open_source(config(orion), tmp_path))


async def test_missing_total_count_header_is_refused(orion: FakeOrion, tmp_path: Path):
    async def no_count(request):
        return web.json_response([])

    replace_entities_route(orion, no_count)
    with pytest.raises(SourceError, match="no Fiware-Total-Count header"):
        await read_rows(open_source(config(orion), tmp_path))


async def test_auth_file_must_be_private_and_is_sent(orion: FakeOrion, tmp_path: Path):
    seed(orion, 2)
    orion.require_token = "s3cret-token"
    token = tmp_path / "orion.token"
    token.write_text("s3cret-token\n")
    token.chmod(0o644)
    source = open_source(config(orion, auth_file="orion.token"), tmp_path)
    with pytest.raises(InvalidRequest) as err:
        await read_rows(source)
    assert "'auth_file'" in err.value.message and "chmod 600" in err.value.message
    token.chmod(0o600)
    assert len(await read_rows(source)) == 2
    assert orion.requests[-1][3]["Authorization"] == "Bearer s3cret-token"
    # a PEP proxy's header without a scheme
    rows = await read_rows(open_source(config(orion, auth_file="orion.token",
                                              auth_header="X-Auth-Token"), tmp_path))
    assert len(rows) == 2 and orion.requests[-1][3]["X-Auth-Token"] == "s3cret-token"
    # a wrong token: the proxy's 401 is a clear error that does not show the token
    token.write_text("wrong")
    with pytest.raises(SourceError) as err:
        await read_rows(open_source(config(orion, auth_file="orion.token"), tmp_path))
    assert "HTTP 401" in err.value.message and "wrong" not in err.value.message.replace(
        "wrong token", "")


async def test_fingerprint_is_one_request_and_sees_deletes(orion: FakeOrion, tmp_path: Path):
    seed(orion, 3)
    source = open_source(config(orion), tmp_path)
    orion.requests.clear()
    first = await source.fingerprint()
    [(_, _, q, _)] = orion.requests
    assert q["limit"] == "1" and q["orderBy"] == "!dateModified" and q["attrs"] == "dateModified"
    del orion.tenants["himeji"].entities[("urn:ngsi-ld:AED:001", "AED")]
    assert await source.fingerprint() != first


# ---------------------------------------------------------------- sink: bad rows, broker errors


def sink_cfg(orion: FakeOrion, **extra: Any) -> dict[str, Any]:
    return {"adapter": "ngsi_v2", "broker": orion.base, "type": "AED", "service": "himeji",
            "id_column": "NO", "id_prefix": "urn:ngsi-ld:AED:282014-",
            "attributes": {"名称": "name", "住所": "address"},
            "location": {"lat": "緯度", "lon": "経度"}, **extra}


def aed_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    schema = pa.schema([("NO", pa.string()), ("名称", pa.string()), ("住所", pa.string()),
                        ("緯度", pa.float64()), ("経度", pa.float64())])
    return pa.RecordBatch.from_pylist(rows, schema)


AED_ROWS = [{"NO": "1", "名称": "姫路市役所", "住所": "姫路市安田四丁目1番地",
             "緯度": 34.8151, "経度": 134.6854},
            {"NO": "2", "名称": "姫路城管理事務所", "住所": "姫路市本町68番地",
             "緯度": 34.8394, "経度": 134.6939}]


async def test_sink_writes_aed_rows_with_location(orion: FakeOrion, tmp_path: Path):
    sink = open_sink(sink_cfg(orion), tmp_path)
    await sink.write(aed_batch(AED_ROWS))
    await sink.commit()
    [first, _] = orion.entities_of("himeji", "AED")
    assert first.id == "urn:ngsi-ld:AED:282014-1" and first.path == "/"
    assert first.attrs["location"]["value"] == {"type": "Point", "coordinates": [134.6854, 34.8151]}
    assert set(first.attrs) == {"name", "address", "location"}
    # and read back through the source: the same values
    rows = await read_rows(open_source({"adapter": "ngsi_v2", "broker": orion.base, "type": "AED",
                                        "service": "himeji"}, tmp_path))
    assert rows[0]["name"] == "姫路市役所" and rows[0]["location_lat"] == 34.8151


async def test_sink_refuses_bad_rows_before_sending_anything(orion: FakeOrion, tmp_path: Path):
    cases = [
        ({**AED_ROWS[0], "名称": "市役所(本庁舎)"}, "holds ( )", "forbidden"),
        ({**AED_ROWS[0], "NO": "一"}, "printable ASCII", "id"),
        ({**AED_ROWS[0], "NO": None}, "is empty", "id"),
        ({**AED_ROWS[0], "緯度": 134.0}, "outside WGS84", "location"),
    ]
    for row, text, _ in cases:
        sink = open_sink(sink_cfg(orion), tmp_path)
        with pytest.raises(SinkError) as err:
            await sink.write(aed_batch([AED_ROWS[1], row]))
        assert text in err.value.message and "row 2" in err.value.message, err.value.message
        assert err.value.details["row"] == 2 and err.value.message_ja
        await sink.abort()
    assert orion.update_calls == 0 and not orion.entities_of("himeji")
    # a repeated id
    sink = open_sink(sink_cfg(orion), tmp_path)
    with pytest.raises(SinkError, match="already in row 1"):
        await sink.write(aed_batch([AED_ROWS[0], AED_ROWS[0]]))
    # a Japanese column name without an attribute name
    sink = open_sink(sink_cfg(orion, attributes={"名称": "name"}), tmp_path)
    with pytest.raises(SinkError) as err:
        await sink.write(aed_batch(AED_ROWS))
    assert "column '住所' is not a valid NGSI v2 attribute name" in err.value.message
    # NaN, and a huge array
    schema = pa.schema([("code", pa.string()), ("v", pa.float64()), ("xs", pa.list_(pa.int64()))])
    sink = open_sink({"adapter": "ngsi_v2", "broker": orion.base, "type": "T", "id_column": "code"},
                     tmp_path)
    with pytest.raises(SinkError, match="nan"):
        await sink.write(pa.RecordBatch.from_pylist([{"code": "a", "v": float("nan"), "xs": []}], schema))
    sink = open_sink({"adapter": "ngsi_v2", "broker": orion.base, "type": "T", "id_column": "code",
                      "max_array": 10}, tmp_path)
    with pytest.raises(SinkError, match="array of 11 items"):
        await sink.write(pa.RecordBatch.from_pylist([{"code": "a", "v": 1.0, "xs": list(range(11))}],
                                                    schema))
    assert orion.update_calls == 0


async def test_sink_fullwidth_option(orion: FakeOrion, tmp_path: Path):
    sink = open_sink(sink_cfg(orion, forbidden_characters="fullwidth"), tmp_path)
    await sink.write(aed_batch([{**AED_ROWS[0], "名称": "市役所(本庁舎)"}]))
    await sink.commit()
    assert orion.entities_of("himeji")[0].attrs["name"]["value"] == "市役所（本庁舎）"


async def test_sink_failure_mid_load_is_never_success(orion: FakeOrion, tmp_path: Path):
    orion.fail_updates = {2: (500, "InternalServerError", "database connection lost")}
    rows = [{**AED_ROWS[0], "NO": str(i)} for i in range(1, 6)]
    sink = open_sink(sink_cfg(orion, batch_size=2), tmp_path)
    await sink.write(aed_batch(rows))
    with pytest.raises(Unavailable) as err:
        await sink.commit()
    msg = err.value.message
    assert "request 2, entities 3–4 of 5" in msg
    assert "HTTP 500: InternalServerError: database connection lost" in msg
    assert "2 of 5 entities were written" in msg and err.value.details["written"] == 2
    with pytest.raises(InvalidRequest):
        await sink.write(aed_batch(rows))
    # loading again converges (append is an upsert)
    sink = open_sink(sink_cfg(orion, batch_size=2), tmp_path)
    await sink.write(aed_batch(rows))
    await sink.commit()
    assert len(orion.entities_of("himeji")) == 5


async def test_sink_broker_refusals(orion: FakeOrion, tmp_path: Path):
    # update of entities that do not exist: the broker's 404 names the cause
    sink = open_sink(sink_cfg(orion, action_type="update"), tmp_path)
    await sink.write(aed_batch(AED_ROWS))
    with pytest.raises(SinkError) as err:
        await sink.commit()
    assert "HTTP 404: NotFound" in err.value.message and err.value.details["written"] == 0
    # appendStrict on existing attributes: 422 Unprocessable
    sink = open_sink(sink_cfg(orion), tmp_path)
    await sink.write(aed_batch(AED_ROWS))
    await sink.commit()
    sink = open_sink(sink_cfg(orion, action_type="appendStrict"), tmp_path)
    await sink.write(aed_batch(AED_ROWS))
    with pytest.raises(SinkError, match="HTTP 422: Unprocessable: one or more of the attributes"):
        await sink.commit()
    # a tenant the broker refuses (upper case service names are lower-cased by config check)
    with pytest.raises(InvalidRequest, match="'service'"):
        open_sink(sink_cfg(orion, service="Himeji"), tmp_path)


async def test_sink_keeps_requests_under_the_payload_limit(orion: FakeOrion, tmp_path: Path):
    big = "姫" * 60_000      # 180 kB of UTF-8 per entity: 5 per request at most
    rows = [{**AED_ROWS[0], "NO": str(i), "住所": big} for i in range(12)]
    sink = open_sink(sink_cfg(orion, batch_size=100), tmp_path)
    await sink.write(aed_batch(rows))
    await sink.commit()
    assert orion.update_calls >= 3 and len(orion.entities_of("himeji")) == 12
    sink = open_sink(sink_cfg(orion), tmp_path)
    with pytest.raises(SinkError, match="request limit"):
        await sink.write(aed_batch([{**AED_ROWS[0], "住所": "x" * 1_100_000}]))


async def test_tenants_are_separate(orion: FakeOrion, tmp_path: Path):
    for service in ("himeji", "kobe"):
        sink = open_sink(sink_cfg(orion, service=service), tmp_path)
        await sink.write(aed_batch(AED_ROWS[:1] if service == "kobe" else AED_ROWS))
        await sink.commit()
    himeji = await read_rows(open_source({"adapter": "ngsi_v2", "broker": orion.base, "type": "AED",
                                          "service": "himeji"}, tmp_path))
    kobe = await read_rows(open_source({"adapter": "ngsi_v2", "broker": orion.base, "type": "AED",
                                        "service": "kobe"}, tmp_path))
    assert len(himeji) == 2 and len(kobe) == 1


# ---------------------------------------------------------------- Orion subscriptions → update notices


async def post(url: str, body: bytes | dict | list | None = None, headers: dict[str, str] | None = None
               ) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as s, s.post(url, data=data, headers={
            "Content-Type": "application/json", **(headers or {})}) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text.startswith("{") else {})


def orion_dataset(orion: FakeOrion) -> dict[str, Any]:
    doc = dataset_doc(Path("unused.csv"))
    doc["schema"] = {"fields": [{"name": "id", "type": "string"}, {"name": "type", "type": "string"},
                                {"name": "name", "type": "string"},
                                {"name": "available", "type": "boolean"},
                                {"name": "units", "type": "integer"},
                                {"name": "location_lon", "type": "number"},
                                {"name": "location_lat", "type": "number"}]}
    doc["source"] = {"adapter": "ngsi_v2", "broker": orion.base, "type": "AED", "service": "osaka",
                     "service_path": "/aed", "limit": 2,
                     "attrs": ["name", "available", "units", "location"], "types": {"units": "int64"}}
    return doc


async def setup_orion_mesh(h: MeshHarness, orion: FakeOrion):
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    seed(orion, 5, service="osaka")
    folder = h.root / "feed"
    folder.mkdir()
    (folder / "dataset.yaml").write_text(yaml.safe_dump(orion_dataset(orion), allow_unicode=True),
                                         encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(folder / "dataset.yaml"))
    assert rc == 0, err
    # a long watch interval: only the broker's notifications can make a notice in this test
    return await h.start_connector("osaka", "--watch-interval", "1h", "--heartbeat-interval", "500ms")


@pytest.mark.integration
async def test_orion_notification_becomes_the_meshs_update_notice(harness: MeshHarness,
                                                                  orion: FakeOrion):
    h = harness
    provider = await setup_orion_mesh(h, orion)
    base = f"http://127.0.0.1:{provider.ready['http_port']}"
    osaka = str(h.root / "osaka")
    agreement = await agree(h)
    rc, first, err = await fetch_cli(h, agreement, h.root / "got" / "full.ndjson")
    assert rc == 0 and first["records"] == 5, err

    # the provider registers its subscription at the broker, in the source's tenant
    rc, out, err = await h.cli("connector", "ngsi-v2", "subscribe", "--data-dir", osaka,
                               "--dataset", DATASET_ID, "--callback-url", base)
    assert rc == 0 and "subscribed" in out, err
    [sub] = orion.subscriptions_of("osaka")
    assert sub.path == "/aed" and sub.url == f"{base}/ngsi/v2/notify/{DATASET_ID}"
    assert sub.doc["subject"]["entities"] == [{"idPattern": ".*", "type": "AED"}]
    token = sub.headers["Authorization"].removeprefix("Bearer ")
    store = h.root / "osaka" / "ngsi_v2" / "subscriptions.json"
    assert oct(store.stat().st_mode & 0o777) == "0o600" and token not in store.read_text()
    rc, out, err = await h.cli("connector", "ngsi-v2", "list", "--data-dir", osaka, "--json")
    assert rc == 0 and json.loads(out)[0]["subscription_id"] == sub.id and token not in out

    notices: list = []
    fetched: list = []
    follower = asyncio.create_task(follow(h.root / "kakogawa", agreement, on_notice=notices.append,
                                          fetch_dir=h.root / "updates", on_fetched=fetched.append,
                                          once=True))
    await wait_for(lambda: watching(base, h), timeout=20, what="the provider watches the dataset")

    # the data changes behind the broker's back (no notification): bad notifications must not
    # make it cross
    orion.put({**aed(4), "units": {"type": "Number", "value": 40}}, service="osaka", path="/aed")
    url = f"{base}/ngsi/v2/notify/{DATASET_ID}"
    good = {"subscriptionId": sub.id, "data": [{"id": "urn:ngsi-ld:AED:004", "type": "AED"}]}
    auth = {"Authorization": f"Bearer {token}"}
    for headers, body, status, code in [
        ({}, good, 401, "notification_token_required"),
        ({"Authorization": "Bearer " + "x" * 43}, good, 401, "notification_token_required"),
        (h.node_operator_headers("osaka"), good, 403, "forbidden"),
        (auth, b"{not json", 400, "bad_ngsi_notification"),
        (auth, {**good, "subscriptionId": "0" * 24}, 400, "bad_ngsi_notification"),
        (auth, {**good, "data": [{"id": "t1", "type": "Toilet"}]}, 400, "bad_ngsi_notification"),
        (auth, {**good, "data": [{"id": f"a{i}", "type": "AED"} for i in range(1001)]}, 400,
         "bad_ngsi_notification"),
        (auth, {**good, "data": []}, 400, "bad_ngsi_notification"),
        ({**auth, "Fiware-Service": "kobe"}, good, 400, "bad_ngsi_notification"),
        (auth, {**good, "pad": "x" * 1_100_000}, 413, None),
    ]:
        got, body_json = await post(url, body, headers)
        assert got == status, (headers, str(body)[:80], body_json)
        if code:
            assert body_json["error"]["code"] == code, body_json
    # the token of this dataset does not open another dataset's door
    got, _ = await post(f"{base}/ngsi/v2/notify/another-dataset", good, auth)
    assert got == 401
    await asyncio.sleep(1.0)
    assert not notices and not follower.done()

    # a real change at the broker: Orion notifies, the connector checks at once, the consumer
    # gets the update notice and fetches what changed
    async with aiohttp.ClientSession() as s, s.post(f"{orion.base}/v2/op/update", json={
            "actionType": "append", "entities": [{"id": "urn:ngsi-ld:AED:002", "type": "AED",
                                                  "available": {"type": "Boolean", "value": True}}]},
            headers={"Fiware-Service": "osaka", "Fiware-ServicePath": "/aed"}) as r:
        assert r.status == 204
    await asyncio.wait_for(follower, timeout=30)
    [notice] = notices
    assert notice.cause == "ngsi_v2_notification" and notice.previous_version == first["version"]
    [result] = fetched
    assert result.incremental and result.records == 2      # AED 2 and 4 changed
    got_rows = {r["id"]: r for r in ndjson_rows(result.out)}
    assert got_rows["urn:ngsi-ld:AED:002"]["available"] is True
    assert got_rows["urn:ngsi-ld:AED:004"]["units"] == 40
    await orion.drain()
    assert sub.last.get("lastSuccessCode") == 204 and sub.times_sent == 1

    # subscribing again replaces the broker's subscription and revokes the old token
    rc, _, err = await h.cli("connector", "ngsi-v2", "subscribe", "--data-dir", osaka,
                             "--dataset", DATASET_ID, "--callback-url", base)
    assert rc == 0, err
    [new] = orion.subscriptions_of("osaka")
    assert new.id != sub.id
    got, _ = await post(url, good, auth)
    assert got == 401
    # unsubscribing deletes it at the broker and here
    rc, out, err = await h.cli("connector", "ngsi-v2", "unsubscribe", "--data-dir", osaka,
                               "--dataset", DATASET_ID)
    assert rc == 0 and "unsubscribed" in out, err
    assert not orion.subscriptions_of("osaka")
    got, _ = await post(url, {**good, "subscriptionId": new.id}, new.headers)
    assert got == 401


async def watching(base: str, h: MeshHarness) -> bool:
    async with aiohttp.ClientSession() as s, s.get(f"{base}/admin/node/",
                                                    headers=h.node_operator_headers("osaka")) as r:
        return r.status == 200 and DATASET_ID in await r.text()


async def test_subscribe_refuses_other_sources_and_bad_callbacks(tmp_path: Path, orion: FakeOrion):
    data_dir = tmp_path / "osaka"
    store = PublisherStore(data_dir, "270008")
    doc = orion_dataset(orion)
    store.save(doc)
    with pytest.raises(InvalidRequest, match="callback URL"):
        await subscribe(data_dir, DATASET_ID, "ftp://connector")
    orion.require_token = "t"     # the broker refuses: a clear error, nothing stored
    with pytest.raises(InvalidRequest, match="HTTP 401: Unauthorized"):
        await subscribe(data_dir, DATASET_ID, "http://127.0.0.1:7781")
    assert OrionSubscriptionStore(data_dir).all() == {}
    store.save({**doc, "source": {"adapter": "csv", "path": "x.csv"}})
    with pytest.raises(FailedPrecondition, match="not served from an ngsi_v2 source"):
        await subscribe(data_dir, DATASET_ID, "http://127.0.0.1:7781")


@pytest.mark.integration
async def test_fetch_into_an_orion_sink_and_a_failure_mid_load(harness: MeshHarness, orion: FakeOrion):
    """``connector fetch --sink`` into Orion between real connectors; a broker failing mid-load is
    reported with what was written, never as loaded, and ``sink load`` finishes it."""
    h = harness
    await setup_transfer_mesh(h, rows=120)
    agreement = await agree(h)
    data_dir = h.root / "kakogawa"
    config = {"adapter": "ngsi_v2", "broker": orion.base, "type": "Population", "service": "hyogo",
              "service_path": "/stats", "id_column": "全国地方公共団体コード",
              "id_prefix": "urn:ngsi-ld:Population:",
              "attributes": {"市区町村名": "name", "人口総数": "population", "世帯数": "households",
                             "備考": "note"}, "batch_size": 50}
    (h.root / "orion.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    rc, out, err = await h.cli("connector", "sink", "add", "--data-dir", str(data_dir), "orion",
                               "--config", str(h.root / "orion.yaml"))
    assert rc == 0 and orion.base in out, err

    orion.fail_updates = {2: (503, "ServiceUnavailable", "mongo primary stepping down")}
    rc, stdout, err = await h.cli("connector", "fetch", "--data-dir", str(data_dir),
                                  "--agreement", agreement, "--sink", "orion")
    assert rc != 0 and "loaded" not in stdout, stdout
    assert "sink_load_failed" in err and "request 2, entities 51–100 of 120" in err, err
    assert "mongo primary stepping down" in err and "50 of 120 entities were written" in err, err
    assert len(orion.entities_of("hyogo")) == 50
    kept = data_dir / "sinks" / "staging" / f"{agreement}.orion.arrow"
    assert kept.is_file()

    rc, stdout, err = await h.cli("connector", "sink", "load", "--data-dir", str(data_dir), "orion",
                                  "--file", str(kept))
    assert rc == 0 and "loaded 120 rows" in stdout, err
    found = orion.entities_of("hyogo", "Population")
    assert len(found) == 120 and all(e.path == "/stats" for e in found)
    first = next(e for e in found if e.id == "urn:ngsi-ld:Population:270001")
    assert first.attrs["name"]["value"] == "市町村1"
    assert first.attrs["population"] == {"type": "Number", "value": 1001, "metadata": {}}
