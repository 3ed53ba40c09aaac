"""The NGSI-LD sink against a fake Orion-LD on 127.0.0.1 (random port) that implements the
documented shape of ``POST /ngsi-ld/v1/entityOperations/upsert``: 201 with the created ids, 204
when every entity existed, 207 Multi-Status with per-entity ProblemDetails, ProblemDetails 4xx
and 5xx. Loaded through the same ``deliver`` a ``connector fetch --sink`` uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from aiohttp import web

from connector.adapters.registry import open_sink
from connector.transfer.sinks import add_sink, deliver
from mesh.errors import AreameshError, InvalidRequest, Unavailable

from .ngsi_ld_fixtures import aed_rows

BAD = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


class FakeOrionLd:
    """Keeps entities by id; refuses an entity whose name is 'REFUSE' (207), or every request
    with ``fail`` = (status, problem type)."""

    def __init__(self) -> None:
        self.entities: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail: tuple[int, str] | None = None

    async def upsert(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"content_type": request.content_type, "options": request.query.get("options"),
                              "tenant": request.headers.get("NGSILD-Tenant"), "count": len(body)})
        if self.fail:
            status, kind = self.fail
            return web.json_response({"type": kind, "title": "refused", "detail": "as told"},
                                     status=status)
        if request.content_type != "application/ld+json" or not isinstance(body, list):
            return web.json_response({"type": BAD, "title": "Bad request", "detail": "ld+json list"},
                                     status=400)
        created, errors, success = [], [], []
        for entity in body:
            if "@context" not in entity or not entity.get("id") or not entity.get("type"):
                errors.append({"entityId": entity.get("id"), "error": {
                    "type": BAD, "title": "Bad request data", "detail": "id, type and @context"}})
                continue
            if entity.get("name", {}).get("value") == "REFUSE":
                errors.append({"entityId": entity["id"], "error": {
                    "type": BAD, "title": "Bad request data", "detail": "the broker refuses it"}})
                continue
            if entity["id"] not in self.entities:
                created.append(entity["id"])
            old = self.entities.get(entity["id"], {})
            self.entities[entity["id"]] = {**old, **entity} if request.query.get("options") == "update" \
                else entity
            success.append(entity["id"])
        if errors:
            return web.json_response({"success": success, "errors": errors}, status=207)
        if created:
            return web.json_response(created, status=201)
        return web.Response(status=204)


@pytest.fixture
async def orion():
    fake = FakeOrionLd()
    app = web.Application()
    app.router.add_post("/ngsi-ld/v1/entityOperations/upsert", fake.upsert)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore
    try:
        yield fake
    finally:
        await runner.cleanup()


def staging_file(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    table = pa.Table.from_pylist(rows)
    path = tmp_path / "staging.arrow"
    with ipc.new_stream(str(path), table.schema) as writer:
        for batch in table.to_batches(max_chunksize=2):
            writer.write_batch(batch)
    return path


async def test_aeds_are_upserted_in_batches_and_a_second_load_changes_nothing(orion, tmp_path: Path):
    setting = add_sink(tmp_path, "orion", {"adapter": "ngsi_ld", "broker": orion.url,
                                           "model": "builtin:aed", "batch": 2, "tenant": "hyogo"})
    staged = staging_file(tmp_path, aed_rows())
    assert await deliver(staged, setting, data_dir=tmp_path) == 5
    assert [r["count"] for r in orion.requests] == [2, 2, 1]
    assert {r["content_type"] for r in orion.requests} == {"application/ld+json"}
    assert {r["tenant"] for r in orion.requests} == {"hyogo"}
    aed = orion.entities["urn:ngsi-ld:AED:282014-0002"]
    assert aed["type"] == "AED" and aed["name"] == {"type": "Property", "value": "大手前公園"}
    assert aed["location"]["type"] == "GeoProperty"
    assert aed["@context"] == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
    assert await deliver(staged, setting, data_dir=tmp_path) == 5     # all exist: 204s
    assert len(orion.entities) == 5 and len(orion.requests) == 6


async def test_update_option_keeps_the_brokers_other_attributes(orion, tmp_path: Path):
    orion.entities["urn:ngsi-ld:AED:282014-0001"] = {"id": "urn:ngsi-ld:AED:282014-0001", "type": "AED",
                                                     "status": {"type": "Property", "value": "点検中"}}
    sink = open_sink({"adapter": "ngsi_ld", "broker": orion.url, "model": "builtin:aed",
                      "options": "update"}, tmp_path)
    await sink.write(pa.RecordBatch.from_pylist(aed_rows()[:1]))
    await sink.commit()
    assert orion.requests[-1]["options"] == "update"
    kept = orion.entities["urn:ngsi-ld:AED:282014-0001"]
    assert kept["status"]["value"] == "点検中" and kept["name"]["value"] == "姫路駅北口"


async def test_a_207_partial_failure_is_reported_per_entity(orion, tmp_path: Path):
    rows = aed_rows()
    rows[1]["名称"] = rows[3]["名称"] = "REFUSE"
    setting = add_sink(tmp_path, "orion", {"adapter": "ngsi_ld", "broker": orion.url,
                                           "model": "builtin:aed", "batch": 2})
    with pytest.raises(AreameshError) as err:
        await deliver(staging_file(tmp_path, rows), setting, data_dir=tmp_path)
    assert err.value.code == "sink_load_failed" and err.value.details["cause"] == "ngsi_ld_partial_failure"
    assert "refused 2 of 5 entities" in err.value.message
    assert "urn:ngsi-ld:AED:282014-0002: BadRequestData: the broker refuses it" in err.value.message
    assert "urn:ngsi-ld:AED:282014-0004" in err.value.message
    assert set(orion.entities) == {"urn:ngsi-ld:AED:282014-0001", "urn:ngsi-ld:AED:282014-0003",
                                   "urn:ngsi-ld:AED:282014-0005"}   # the rest went in (no transactions)


async def test_a_row_without_an_id_sends_nothing(orion, tmp_path: Path):
    rows = aed_rows()
    rows[4]["ID"] = ""
    sink = open_sink({"adapter": "ngsi_ld", "broker": orion.url, "model": "builtin:aed"}, tmp_path)
    with pytest.raises(AreameshError) as err:
        await sink.write(pa.RecordBatch.from_pylist(rows))
    await sink.abort()
    assert err.value.details == {"row": 5} and orion.requests == []


@pytest.mark.parametrize("status,kind,error", [
    (400, BAD, "ngsi_ld_refused"),
    (503, "https://uri.etsi.org/ngsi-ld/errors/InternalError", "broker_unavailable"),
])
async def test_broker_errors_are_surfaced(orion, tmp_path: Path, status: int, kind: str, error: str):
    orion.fail = (status, kind)
    sink = open_sink({"adapter": "ngsi_ld", "broker": orion.url, "model": "builtin:aed"}, tmp_path)
    await sink.write(pa.RecordBatch.from_pylist(aed_rows()))
    with pytest.raises(AreameshError) as err:
        await sink.commit()
    assert err.value.code == error and f"HTTP {status}" in err.value.message
    assert kind.rsplit("/", 1)[-1] in err.value.message
    assert isinstance(err.value, Unavailable) == (status == 503)


async def test_an_unreachable_broker_is_unavailable(tmp_path: Path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = open_sink({"adapter": "ngsi_ld", "broker": f"http://127.0.0.1:{port}"}, tmp_path)
    await sink.write(pa.RecordBatch.from_pylist([{"id": "urn:ngsi-ld:Thing:1", "type": "Thing", "v": 1}]))
    with pytest.raises(Unavailable):
        await sink.commit()


async def test_flat_rows_become_entities(orion, tmp_path: Path):
    sink = open_sink({"adapter": "ngsi_ld", "broker": orion.url}, tmp_path)
    await sink.write(pa.RecordBatch.from_pylist([
        {"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor", "temperature": 21.5,
         "location_lon": 135.5, "location_lat": 34.7, "note": None}]))
    await sink.commit()
    sensor = orion.entities["urn:ngsi-ld:Sensor:1"]
    assert sensor["temperature"] == {"type": "Property", "value": 21.5}
    assert sensor["location"]["value"] == {"type": "Point", "coordinates": [135.5, 34.7]}
    assert "note" not in sensor and json.dumps(sensor)


@pytest.mark.parametrize("config,key", [
    ({"broker": "ftp://x"}, "broker"),
    ({"broker": "http://127.0.0.1:1", "batch": 5000}, "batch"),
    ({"broker": "http://127.0.0.1:1", "options": "merge"}, "options"),
    ({"broker": "http://127.0.0.1:1", "model": "builtin:nothing"}, None),
])
def test_bad_sink_configs_are_refused(tmp_path: Path, config: dict, key: str | None):
    with pytest.raises(AreameshError) as err:
        open_sink({"adapter": "ngsi_ld", **config}, tmp_path)
    if key:
        assert isinstance(err.value, InvalidRequest) and err.value.details["key"] == key
    else:
        assert err.value.code == "unknown_ngsi_ld_model"
