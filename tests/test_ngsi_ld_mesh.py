"""The NGSI-LD facade between real processes: 姫路市 serves its AED list under contract, 大阪府
agrees and fetches it, and an NGSI-LD client asks 大阪府's connector (its `connector serve`
process) for AEDs within 500 m of a point. The agreement's policy is enforced at every read:
once the agreement is terminated, or its delete duty falls due, the facade serves nothing."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import aiohttp
import pytest
import yaml

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness, wait_for
from .ngsi_ld_fixtures import HIMEJI_STATION, aed_rows

pytestmark = pytest.mark.integration
DATASET = "himeji-aed"
PURPOSE = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "防災"}
NEAR = {"type": "AED", "georel": "near;maxDistance==500", "geometry": "Point",
        "coordinates": json.dumps(list(HIMEJI_STATION))}
WITHIN_500 = {"urn:ngsi-ld:AED:282014-0001", "urn:ngsi-ld:AED:282014-0002",
              "urn:ngsi-ld:AED:282014-0003"}


def _dataset(source: Path) -> dict:
    rows = aed_rows()
    return {
        "id": DATASET, "publisher": "282014", "title": {"ja": "姫路市 AED設置箇所一覧", "en": "Himeji AEDs"},
        "description": {"ja": "NGSI-LD ファサードの試験用"}, "themes": ["防災"],
        "schema": {"fields": [{"name": k, "type": "number" if k in ("緯度", "経度") else "string"}
                              for k in rows[0]]},
        "classification": "non_personal", "management": "external", "spatial": ["282014"],
        "license": "CC-BY-4.0", "access": "contract",
        "offers": [
            {"id": "disaster-map", "policy": {"permissions": [{"action": "use", "constraints": [PURPOSE]}]}},
            {"id": "short-hold", "policy": {"permissions": [{"action": "use", "constraints": [PURPOSE]}],
                                            "duties": [{"action": "delete", "constraints": [{
                                                "leftOperand": "elapsedTime", "operator": "eq",
                                                "rightOperand": "PT30S"}]}]}},
        ],
        "source": {"adapter": "csv", "path": source.name},
    }


async def _agree(h: MeshHarness, offer: str) -> str:
    rc, text, err = await h.cli("connector", "contract", "request", "--data-dir", str(h.root / "osaka"),
                                "--dataset", DATASET, "--offer", offer, "--purpose", "防災")
    assert rc == 0 and "FINALIZED" in text, err
    return text.split("agreement ")[1].split()[0]


async def _agree_and_fetch(h: MeshHarness, offer: str, out: str) -> str:
    osaka = h.root / "osaka"
    rc, text, err = await h.cli("connector", "contract", "request", "--data-dir", str(osaka),
                                "--dataset", DATASET, "--offer", offer, "--purpose", "防災")
    assert rc == 0 and "FINALIZED" in text, err
    agreement = text.split("agreement ")[1].split()[0]
    (osaka / "downloads").mkdir(exist_ok=True)
    rc, _, err = await h.cli("connector", "fetch", "--data-dir", str(osaka), "--agreement", agreement,
                             "--out", str(osaka / out), "--json")
    assert rc == 0, err
    return agreement


async def _cli_json(h: MeshHarness, *args: str):
    rc, out, err = await h.cli(*args)
    assert rc == 0, err
    return json.loads(out)


async def test_an_ngsi_ld_client_reads_fetched_aeds_while_the_agreement_allows(harness: MeshHarness):
    h = harness
    await setup_catalog_mesh(h, certify=("282014", "270008"), publish=False)
    feed = h.root / "feed"
    feed.mkdir()
    source = feed / "aed.csv"
    rows = aed_rows()
    with source.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (feed / "dataset.yaml").write_text(yaml.safe_dump(_dataset(source), allow_unicode=True),
                                       encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "himeji"),
                             "--file", str(feed / "dataset.yaml"))
    assert rc == 0, err
    await h.start_connector("himeji", "--heartbeat-interval", "500ms")
    osaka = h.root / "osaka"
    long_agreement = await _agree_and_fetch(h, "disaster-map", "downloads/aed.ndjson")
    short_agreement = await _agree(h, "short-hold")
    d = str(osaka)
    for name, agreement, file in (("aed", long_agreement, "downloads/aed.ndjson"),
                                  ("aed-short", short_agreement, "ngsi-ld/held/aed-short.csv")):
        rc, _, err = await h.cli("connector", "ngsi-ld", "view", "add", "--data-dir", d, name,
                                 "--agreement", agreement, "--file", file, "--model", "builtin:aed")
        assert rc == 0, err
    views = {v["name"]: v for v in await _cli_json(h, "connector", "ngsi-ld", "view", "list",
                                                    "--data-dir", d, "--json")}
    assert not views["aed-short"]["serving"] and "nothing fetched yet" in views["aed-short"]["reason"]
    # the short view's data: fetched by the view's own refresh (the agreement's fetch, as CSV)
    rc, out, err = await h.cli("connector", "ngsi-ld", "view", "refresh", "--data-dir", d, "aed-short",
                               "--quiet")
    assert rc == 0 and "5 records" in out, err
    rc, _, err = await h.cli("connector", "ngsi-ld", "view", "refresh", "--data-dir", d, "nope")
    assert rc != 0
    rc, _, err = await h.cli("connector", "ngsi-ld", "key", "create", "--data-dir", d, "--label",
                             "防災マップ", "--view", "aed", "--out", str(h.root / "map.key"))
    assert rc == 0, err
    rc, _, err = await h.cli("connector", "ngsi-ld", "key", "create", "--data-dir", d, "--label",
                             "短期利用", "--view", "aed-short", "--out", str(h.root / "short.key"))
    assert rc == 0, err
    node = await h.start_connector("osaka")
    base = f"http://127.0.0.1:{node.ready['http_port']}"
    map_key, short_key = ((h.root / f).read_text().strip() for f in ("map.key", "short.key"))

    async def query(key: str, params: dict) -> tuple[int, object]:
        async with aiohttp.ClientSession() as s, s.get(
                f"{base}/ngsi-ld/v1/entities", params=params,
                headers={"Authorization": f"Bearer {key}"}) as r:
            return r.status, await r.json(content_type=None)

    # the client library, against the real process (where it is installed: pyproject.toml's note)
    try:
        import ngsildclient
        from requests.auth import AuthBase
    except ImportError:
        ngsildclient = None
    if ngsildclient is not None:
        class Bearer(AuthBase):
            def __call__(self, r):
                r.headers["Authorization"] = f"Bearer {map_key}"
                return r

        def ask() -> set[str]:
            with ngsildclient.Client(hostname="127.0.0.1", port=node.ready["http_port"],
                                     custom_auth=Bearer(), verbose=False) as client:
                found = client.alt.query({"type": "Query", "entities": [{"type": "AED"}],
                                          "geoQ": {"georel": "near;maxDistance==500",
                                                   "geometry": "Point",
                                                   "coordinates": list(HIMEJI_STATION)}})
                return {e.id for e in found}

        assert await asyncio.to_thread(ask) == WITHIN_500
    status, body = await query(map_key, NEAR)
    assert status == 200 and {e["id"] for e in body} == WITHIN_500
    views = {v["name"]: v for v in await _cli_json(h, "connector", "ngsi-ld", "view", "list",
                                                    "--data-dir", d, "--json")}
    assert views["aed"]["serving"] and views["aed"]["entities"] == 5

    # the delete duty (30 s after the fetch) falls due: nothing more from that view
    status, body = await query(short_key, NEAR)
    assert status == 200 and {e["id"] for e in body} == WITHIN_500      # not yet due

    async def short_is_empty() -> bool:
        return (await query(short_key, NEAR))[1] == []

    await wait_for(short_is_empty, timeout=45, what="the delete duty to stop the short view")
    views = {v["name"]: v for v in await _cli_json(h, "connector", "ngsi-ld", "view", "list",
                                                    "--data-dir", d, "--json")}
    assert not views["aed-short"]["serving"] and "delete duty" in views["aed-short"]["reason"]

    # terminated: no data, although the fetched file is still on disk
    rc, _, err = await h.cli("connector", "contract", "terminate", "--data-dir", d, long_agreement,
                             "--reason", "no_longer_needed")
    assert rc == 0, err
    status, body = await query(map_key, NEAR)
    assert status == 200 and body == []
    assert (osaka / "downloads" / "aed.ndjson").exists()
    views = {v["name"]: v for v in await _cli_json(h, "connector", "ngsi-ld", "view", "list",
                                                    "--data-dir", d, "--json")}
    assert not views["aed"]["serving"] and "terminated" in views["aed"]["reason"]
