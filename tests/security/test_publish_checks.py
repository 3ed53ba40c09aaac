"""Publishing checks what it publishes, and no error a peer or the public sees names the
provider's local paths or host.

Attacks and mistakes tried: publishing a source that cannot be read; publishing a CSV whose header
is not the standard's; refreshing a dataset whose source changed its columns; and, as a
certified consumer, provoking every error a provider can send (missing, unreadable and garbled
source files, a database gone, a source that breaks mid-transfer, a source API that fails, a
damaged ledger, a broken store key, bad ids) to read the provider's file system and host name
out of the gRPC status details and the HTTP bodies. Real processes on 127.0.0.1.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import socket
import sqlite3
from pathlib import Path

import aiohttp
import grpc
import pytest
import yaml
from aiohttp import web

from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc
from mesh.standards import get_standard

from ..catalog_fixtures import setup_catalog_mesh
from ..conftest import MeshHarness, http_json, node_target
from ..transfer_fixtures import dataset_doc, write_rows

pytestmark = pytest.mark.integration

HOST = socket.gethostname()


async def mesh(h: MeshHarness) -> Path:
    """Registry with 大阪府, 姫路市 and 加古川市 certified and enrolled; returns a source folder
    named after this machine, so a leaked path also leaks the host name."""
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    folder = h.root / "feed" / HOST
    folder.mkdir(parents=True)
    return folder


def describe(folder: Path, doc: dict, name: str = "dataset") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


async def add(h: MeshHarness, node: str, desc: Path, *extra: str) -> tuple[int, str, str]:
    return await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / node),
                       "--file", str(desc), *extra)


async def catalog_entry(h: MeshHarness, dataset_id: str) -> dict:
    return await http_json(f"{h.http_url}/api/v1/datasets/{dataset_id}")


async def test_add_refuses_unreadable_source(harness: MeshHarness):
    h = harness
    folder = await mesh(h)
    doc = dataset_doc(folder / "population.csv")
    desc = describe(folder, doc)
    cases = {
        "missing file": lambda p: None,
        "a folder, not a file": lambda p: p.mkdir(),
        "Shift_JIS read as UTF-8": lambda p: p.write_bytes(
            ",".join(["全国地方公共団体コード", "市区町村名", "人口総数", "世帯数", "備考"]
                     ).encode("cp932") + b"\n270008,\x91\xe5\x8d\xe3,1,1,\n"),
        "empty file": lambda p: p.write_bytes(b""),
    }
    for case, make in cases.items():
        source = folder / f"{case.split()[0]}.csv"
        make(source)
        doc["source"] = {"adapter": "csv", "path": source.name}
        if case.startswith("Shift_JIS"):
            doc["source"]["encoding"] = "utf-8"
        rc, out, err = await add(h, "osaka", describe(folder, doc))
        assert rc != 0, f"{case}: published: {out}"
        assert "source_unreadable" in err and "データソースを読めません" in err, (case, err)
    # a database that is not there, an NDJSON file that is not JSON: the same refusal
    for source in ({"adapter": "sqlite", "path": "gone.db", "query": "SELECT * FROM t"},
                   {"adapter": "ndjson", "path": "garbled.ndjson"}):
        (folder / "garbled.ndjson").write_text("{not json\n", encoding="utf-8")
        doc["source"] = source
        rc, _, err = await add(h, "osaka", describe(folder, doc))
        assert rc != 0 and "source_unreadable" in err, (source, err)
    # nothing was published, nothing kept on the connector
    assert (await catalog_entry(h, doc["id"]))["_status"] == 404
    assert not (h.root / "osaka" / "publishers" / "270008" / "datasets" / f"{doc['id']}.json").exists()
    # the same description with a readable source is published, and says it was checked
    write_rows(folder / "population.csv", 1, 10)
    doc["source"] = {"adapter": "csv", "path": "population.csv"}
    rc, out, err = await add(h, "osaka", describe(folder, doc))
    assert rc == 0, err
    assert (await catalog_entry(h, doc["id"]))["source_check"]["status"] == "passed"
    assert desc.exists()


async def test_add_refuses_header_not_matching_standard_names_columns(harness: MeshHarness):
    h = harness
    folder = await mesh(h)
    standard = get_standard("AED設置箇所一覧")
    header = [c for c in standard.column_names if c != "備考"]          # missing
    header[header.index("建物名等(方書)")] = "建物名等（方書）"          # full-width: misnamed
    header[header.index("緯度")] = "緯度 "                              # a stray space: misnamed
    header.append("独自管理番号")                                        # unexpected
    source = folder / "aed.csv"
    with source.open("w", encoding="utf-8-sig", newline="") as f:     # with a BOM, as Excel saves
        w = csv.writer(f)
        w.writerow(header)
        w.writerow(["282014", "1", *["x"] * (len(header) - 2)])
    doc = {"id": "himeji-aed-check", "publisher": "282014", "title": "姫路市 AED設置箇所一覧",
           "description": "テスト", "themes": ["防災"], "standard_type": "AED設置箇所一覧",
           "license": "CC-BY-4.0", "source": {"adapter": "csv", "path": source.name}}
    rc, out, err = await add(h, "himeji", describe(folder, doc))
    assert rc != 0, out
    assert "header_mismatch" in err
    for en, ja in [("column '備考' is missing", "列「備考」がデータソースにありません"),
                   ("column '独自管理番号' of the source is not in the announced schema",
                    "データソースの列「独自管理番号」はスキーマにありません"),
                   ("column '建物名等（方書）' of the source should be named '建物名等(方書)'",
                    "列「建物名等（方書）」は「建物名等(方書)」という名前のはずです"),
                   ("column '緯度 ' of the source should be named '緯度'",
                    "列「緯度 」は「緯度」という名前のはずです")]:
        assert en in err and ja in err, (en, err)
    for fine in ("名称", "全国地方公共団体コード", "URL"):                  # matching columns are not named
        assert f"'{fine}'" not in err
    assert (await catalog_entry(h, doc["id"]))["_status"] == 404
    # the source fixed to the standard's columns: published
    with source.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerow(standard.column_names)
    rc, out, err = await add(h, "himeji", describe(folder, doc))
    assert rc == 0, err


async def test_defer_check_is_recorded(harness: MeshHarness):
    h = harness
    folder = await mesh(h)
    doc = dataset_doc(folder / "not-there-yet.csv")
    desc = describe(folder, doc)
    rc, _, err = await add(h, "osaka", desc)
    assert rc != 0 and "source_unreadable" in err
    rc, out, err = await add(h, "osaka", desc, "--defer-check")
    assert rc == 0, err
    assert "deferred" in err
    entry = await catalog_entry(h, doc["id"])
    assert entry["_status"] == 200 and entry["source_check"]["status"] == "deferred"
    rc, out, err = await h.cli("connector", "dataset", "list", "--data-dir", str(h.root / "osaka"))
    header, *rows = [line.split("\t") for line in out.splitlines()]
    assert rc == 0 and header[-1] == "ソース確認/source check", out
    assert [doc["id"], "deferred"] in [[r[1], r[-1]] for r in rows], out
    # a publisher cannot claim a check it did not pass: the file's own claim is replaced
    doc["source_check"] = {"status": "passed"}
    rc, out, err = await add(h, "osaka", describe(folder, doc), "--defer-check")
    assert rc == 0, err
    assert (await catalog_entry(h, doc["id"]))["source_check"]["status"] == "deferred"


async def test_refresh_refuses_changed_header(harness: MeshHarness):
    h = harness
    folder = await mesh(h)
    source = folder / "population.csv"
    write_rows(source, 1, 50)
    rc, _, err = await add(h, "osaka", describe(folder, dataset_doc(source)))
    assert rc == 0, err
    refresh = ("connector", "dataset", "refresh", "--data-dir", str(h.root / "osaka"),
               "--id", "osaka-population-feed")
    rc, out, err = await h.cli(*refresh)
    assert rc == 0 and "generation 1" in out, err
    # the source system's export changed: a column renamed, one dropped
    with source.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["全国地方公共団体コード", "市区町村名", "総人口", "世帯数"])
        w.writerows([f"27{i:04d}", f"市町村{i}", 1000 + i, 400 + i] for i in range(1, 51))
    rc, out, err = await h.cli(*refresh)
    assert rc != 0 and "header_mismatch" in err, out
    assert "column '総人口' of the source should be named '人口総数'" in err
    assert "列「備考」がデータソースにありません" in err and "column '備考' is missing" in err
    generation = (h.root / "osaka" / "publishers" / "270008" / "store" / "osaka-population-feed"
                  / "generation.json")
    assert json.loads(generation.read_text())["generation"] == 1          # not marked changed
    source.unlink()
    rc, _, err = await h.cli(*refresh)
    assert rc != 0 and "source_unreadable" in err
    rc, out, err = await h.cli(*refresh, "--defer-check")
    assert rc == 0 and "generation 2" in out, err
    rc, out, _ = await h.cli("connector", "dataset", "list", "--data-dir", str(h.root / "osaka"),
                             "--json")
    assert {"publisher": "270008", "id": "osaka-population-feed", "title": "大阪府 市区町村別人口（配信）",
            "source_check": "deferred"} in json.loads(out)


# ---------------------------------------------------------------- what a peer and the public see


def leaks(text: str, h: MeshHarness) -> list[str]:
    """The provider's local paths and this machine's host name found in ``text``. The host name
    is matched as a whole name ('vm' in 'http://vm:80/', not in 'jvm')."""
    found = [p for p in {str(h.root), str(h.root.resolve()), str(Path.home())} if p in text]
    if re.search(rf"(?<![\w-]){re.escape(HOST)}(?![\w-])", text, re.IGNORECASE):
        found.append(f"host name {HOST!r}")
    return found


async def agree(h: MeshHarness, dataset_id: str, offer: str = "research-use") -> str:
    rc, out, err = await h.cli("connector", "contract", "request", "--data-dir",
                               str(h.root / "kakogawa"), "--dataset", dataset_id, "--offer", offer,
                               "--purpose", "研究")
    assert rc == 0 and "FINALIZED" in out, err
    return out.split("agreement ")[1].split()[0]


async def transfer_error(h: MeshHarness, provider, agreement: str, **req) -> tuple[str, str, int]:
    """(gRPC status name, details, batches received before the error) of one Transfer."""
    address, options = node_target(provider, "270008")
    async with grpc.aio.secure_channel(address, h.node_credentials("kakogawa"),
                                       options=options) as channel:
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        batches = 0
        try:
            async for chunk in stub.Transfer(peer_pb2.TransferRequest(
                    agreement_id=agreement, batch_rows=req.pop("batch_rows", 100), **req),
                    timeout=20):
                batches += chunk.HasField("batch")
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, exc.details() or "", batches
    raise AssertionError(f"transfer of {agreement} did not fail")


async def negotiate_error(h: MeshHarness, provider, dataset_id: str) -> tuple[str, str, int]:
    address, options = node_target(provider, "270008")
    async with grpc.aio.secure_channel(address, h.node_credentials("kakogawa"),
                                       options=options) as channel:
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        try:
            await stub.Negotiate(peer_pb2.NegotiateRequest(dataset_id=dataset_id,
                                                           offer_id="research-use",
                                                           purpose="研究"), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, exc.details() or "", 0
    raise AssertionError(f"negotiation for {dataset_id!r} did not fail")


async def failing_api(folder: Path) -> tuple[web.AppRunner, str]:
    """A source API on loopback: page 1 answers, page 2 fails with a stack trace that names the
    provider's files and host, as misconfigured servers do."""
    async def items(request: web.Request) -> web.Response:
        if request.query.get("page", "1") == "1":
            return web.json_response([{"全国地方公共団体コード": "270008", "市区町村名": "大阪市",
                                       "人口総数": 1, "世帯数": 1, "備考": ""}])
        return web.Response(status=500, text=f"Traceback: File \"{folder}/app.py\" on {HOST}")

    app = web.Application()
    app.router.add_get("/items", items)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/items"


async def test_peer_visible_errors_leak_no_paths_or_hostnames(harness: MeshHarness):
    h = harness
    folder = await mesh(h)
    osaka = h.root / "osaka"
    csv_source = folder / "population.csv"
    write_rows(csv_source, 1, 50)
    db = folder / "population.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE p (全国地方公共団体コード TEXT, 市区町村名 TEXT, 人口総数 INTEGER, "
                    "世帯数 INTEGER, 備考 TEXT)")
        con.execute("INSERT INTO p VALUES ('270008', '大阪市', 1, 1, '')")
    api, api_url = await failing_api(folder)
    sources = {
        "feed-csv": {"adapter": "csv", "path": csv_source.name, "block_size": 65536},
        "feed-sqlite": {"adapter": "sqlite", "path": db.name, "query": "SELECT * FROM p"},
        "feed-api": {"adapter": "http_json", "url": api_url, "page_param": "page",
                     "per_page_param": "n", "per_page": 1, "infer_rows": 1},
        "feed-internal": {"adapter": "csv", "path": csv_source.name},
    }
    for ident, source in sources.items():
        doc = dict(dataset_doc(csv_source, management="internal" if "internal" in ident
                               else "external"), id=ident, source=source)
        rc, _, err = await add(h, "osaka", describe(folder, doc, ident))
        assert rc == 0, (ident, err)
    provider = await h.start_connector("osaka")
    agreements = {ident: await agree(h, ident) for ident in sources}
    seen: list[tuple[str, str, str]] = []          # (case, code, details)

    async def provoke(case: str, expected_code: str, call) -> int:
        status, details, batches = await call
        assert not leaks(details, h), (case, status, details)
        assert details.startswith(f"{expected_code}:"), (case, status, details)
        seen.append((case, status, details))
        return batches

    # the flow ledger is damaged before the first transfer opens it
    (osaka / "ledger.db").write_bytes(b"not a database " * 100)
    await provoke("damaged ledger", "ledger_unreadable",
                  transfer_error(h, provider, agreements["feed-csv"]))
    (osaka / "ledger.db").unlink()
    # a bad row far into the file, after batches went out; its text names paths and the host
    write_rows(csv_source, 1, 6000)
    with csv_source.open("a", encoding="utf-8") as f:
        f.write(f"270008,{osaka},{HOST},1\n")
    sent = await provoke("bad row mid-transfer", "bad_source_data",
                         transfer_error(h, provider, agreements["feed-csv"]))
    assert sent > 0                                                  # it broke mid-stream
    csv_source.unlink()
    csv_source.mkdir()
    await provoke("unreadable file (a folder)", "bad_source_data",
                  transfer_error(h, provider, agreements["feed-csv"]))
    csv_source.rmdir()
    await provoke("missing file", "bad_source_data",
                  transfer_error(h, provider, agreements["feed-csv"]))
    await provoke("passthrough of a missing file", "bad_source_data",
                  transfer_error(h, provider, agreements["feed-csv"], passthrough=True))
    db.unlink()
    await provoke("database gone", "bad_source_data",
                  transfer_error(h, provider, agreements["feed-sqlite"]))
    await provoke("source API failing", "unavailable",
                  transfer_error(h, provider, agreements["feed-api"]))
    key = osaka / "publishers" / "270008" / "credentials" / "store.key"
    key.write_bytes(b"short")
    await provoke("broken store key", "bad_store_key",
                  transfer_error(h, provider, agreements["feed-internal"]))
    await provoke("bad dataset id", "invalid_dataset_id",
                  negotiate_error(h, provider, "../../publishers"))
    await provoke("unknown dataset", "not_found", negotiate_error(h, provider, "no-such-dataset"))
    await provoke("unknown agreement", "unknown_agreement",
                  transfer_error(h, provider, "00000000-0000-0000-0000-000000000000"))
    await api.cleanup()
    # what the provider's own log says keeps the detail, under the reference the peer got
    log = (h.root / "logs" / "osaka.log").read_text(encoding="utf-8")
    for case, _, details in seen:
        ref = re.search(r"reference ([0-9a-f]{8})", details)
        if ref:
            assert ref.group(1) in log, case
    assert str(osaka) in log or str(folder) in log

    # the public HTTP APIs of the registry: refusals name nothing local either
    async with aiohttp.ClientSession() as s:
        for url in (f"{h.http_url}/api/v1/datasets/{'x' * 3}",
                    f"{h.http_url}/api/v1/datasets/..%2F..%2Fetc",
                    f"{h.http_url}/api/3/action/package_show?id=nothing-here",
                    f"{h.http_url}/api/v1/ledger/checkpoints?node=bad",
                    f"{h.http_url}/api/v1/no-such-route"):
            async with s.get(url) as r:
                body = await r.text()
                assert r.status >= 400 and not leaks(body, h), (url, body)
    shutil.rmtree(folder)
