"""Subscriptions (購読), incremental fetch, internal-mode copies and mappings applied on receipt."""

from __future__ import annotations

import asyncio
import csv
import json
import os

import pytest
import yaml

from connector.datasets.internal_copy import InternalCopies
from connector.datasets.store import PublisherStore
from connector.subscriptions.follow import follow
from mesh.errors import InvalidRequest

from .conftest import MeshHarness
from .transfer_fixtures import (
    agree,
    as_text,
    fetch_cli,
    ndjson_rows,
    setup_transfer_mesh,
    source_rows,
    write_rows,
)

pytestmark = pytest.mark.integration


async def test_subscriber_is_notified_of_a_change_and_fetches_only_what_changed(harness: MeshHarness):
    h = harness
    _provider, source = await setup_transfer_mesh(h, rows=300)
    agreement = await agree(h)
    rc, first, err = await fetch_cli(h, agreement, h.root / "got" / "full.ndjson")
    assert rc == 0 and first["records"] == 300, err

    notices, fetched = [], []
    task = asyncio.create_task(follow(
        h.root / "kakogawa", agreement, on_notice=notices.append, fetch_dir=h.root / "updates",
        on_fetched=fetched.append, once=True))
    await asyncio.sleep(1.0)  # subscribed, and the provider took its row-hash snapshot
    assert not notices  # the consumer already holds the current version
    # the provider's source file changes: 20 new rows, and row 5 edited
    rows = source_rows(source)
    rows[4]["市区町村名"] = "改名市"
    with source.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_rows(source, 301, 20, append=True)
    await asyncio.wait_for(task, timeout=30)
    [notice] = notices
    assert notice.dataset_id == "osaka-population-feed" and notice.previous_version == first["version"]
    [result] = fetched
    assert result.incremental and result.records == 21 and result.removed_records == 1
    got = [as_text(r) for r in ndjson_rows(result.out)]
    assert got[0]["市区町村名"] == "改名市"
    assert [r["市区町村名"] for r in got[1:]] == [f"市町村{i}" for i in range(301, 321)]

    # an explicit refresh (for sources that cannot notice their own changes) also notifies
    task = asyncio.create_task(follow(h.root / "kakogawa", agreement, on_notice=notices.append, once=True))
    await asyncio.sleep(1.0)
    rc, out, err = await h.cli("connector", "dataset", "refresh", "--data-dir", str(h.root / "osaka"),
                               "--id", "osaka-population-feed")
    assert rc == 0 and "generation 1" in out, err
    await asyncio.wait_for(task, timeout=30)
    assert notices[-1].version != notice.version


async def test_internal_mode_serves_the_encrypted_copy_until_refreshed(harness: MeshHarness):
    h = harness
    _provider, source = await setup_transfer_mesh(h, rows=120, management="internal")
    store = PublisherStore(h.root / "osaka", "270008")
    copies = InternalCopies(store)
    meta = copies.current("osaka-population-feed")
    assert meta and meta["records"] == 120
    blob = (copies.folder("osaka-population-feed") / f"{meta['version']}.amc").read_bytes()
    assert "市町村7".encode() not in blob  # encrypted at rest with the tenant's key
    assert oct((store.root / "credentials" / "store.key").stat().st_mode & 0o777) == "0o600"

    agreement = await agree(h)
    write_rows(source, 1, 999)  # the source changes, the copy does not
    rc, got, err = await fetch_cli(h, agreement, h.root / "got" / "a.ndjson")
    assert rc == 0 and got["records"] == 120 and got["version"] == meta["version"], err
    rc, out, err = await h.cli("connector", "dataset", "refresh", "--data-dir", str(h.root / "osaka"),
                               "--id", "osaka-population-feed")
    assert rc == 0 and "999" in out, err
    rc, got, err = await fetch_cli(h, agreement, h.root / "got" / "b.ndjson")
    assert rc == 0 and got["records"] == 999, err


async def test_internal_copy_is_unreadable_with_another_tenants_key_or_when_altered(tmp_path):
    from connector.adapters.registry import open_source

    src = tmp_path / "s.csv"
    write_rows(src, 1, 50)
    a = PublisherStore(tmp_path, "270008")
    csv_source = open_source({"adapter": "csv", "path": str(src)}, tmp_path)
    meta = await InternalCopies(a).snapshot("feed", csv_source)
    rows = [r async for b in InternalCopies(a).source("feed").read() for r in b.to_pylist()]
    assert len(rows) == 50
    copy = InternalCopies(a).folder("feed") / f"{meta['version']}.amc"
    # another tenant's key (its own credentials) cannot read it
    b = PublisherStore(tmp_path, "282014")
    b.ensure()
    other_dir = InternalCopies(b).folder("feed")
    other_dir.mkdir(parents=True)
    os.link(copy, other_dir / copy.name)
    (other_dir / "current.json").write_text((copy.parent / "current.json").read_text())
    with pytest.raises(InvalidRequest, match="fails authentication"):
        [b async for b in InternalCopies(b).source("feed").read()]
    # a flipped byte, or a cut-off end, is detected
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data[: len(data)]))
    with pytest.raises(InvalidRequest):
        [b async for b in InternalCopies(a).source("feed").read()]
    copy.write_bytes(bytes(data[: len(data) - 40]))
    with pytest.raises(InvalidRequest):
        [b async for b in InternalCopies(a).source("feed").read()]


async def test_fetch_through_a_mapping_reports_rejects_with_row_numbers(harness: MeshHarness):
    h = harness
    _provider, source = await setup_transfer_mesh(h, rows=200)
    rows = source_rows(source)
    rows[9]["市区町村名"] = ""  # source row 10 → CSV line 11; the mapping requires a name
    with source.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    mapping = h.root / "mapping.yaml"
    mapping.write_text(yaml.safe_dump({"version": 1, "columns": [
        {"to": "code", "from": "全国地方公共団体コード", "required": True},
        {"to": "name", "from": "市区町村名", "required": True},
        {"to": "population", "from": "人口総数", "cast": "int", "required": True},
    ]}, allow_unicode=True), encoding="utf-8")
    agreement = await agree(h)
    out = h.root / "got" / "mapped.csv"
    rc, stdout, err = await h.cli("connector", "fetch", "--data-dir", str(h.root / "kakogawa"), "--agreement",
                                  agreement, "--out", str(out), "--json", "--format", "csv",
                                  "--mapping", str(mapping))
    assert rc == 3, err  # rows rejected: exit 3, as `areamesh mapping test` does, naming the file
    assert "mapped.csv.rejects.csv" in err
    result = json.loads(stdout)
    assert result["records"] == 200 and result["written"] == 199 and result["rejected_rows"] == 1
    with out.open(encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["code", "name", "population"] and len(got) == 199
    rejects = (h.root / "got" / "mapped.csv.rejects.csv").read_text(encoding="utf-8-sig")
    assert "市区町村名" in rejects and "\n10," in rejects  # the record's position in the stream
