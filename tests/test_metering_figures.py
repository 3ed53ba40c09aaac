"""Per-organisation figures (registry/metering/figures.py) over a migrated registry database:
a hosted tenant's provided records go to the tenant, API calls to the key's owner, consent counts
to the dataset's publisher (the latest day of the period)."""

from __future__ import annotations

from pathlib import Path

from mesh.db import Database
from registry.metering.figures import FIGURES, api_call_totals, organisation_figures
from registry.metering.usage import parse_period
from registry.migrations import MIGRATIONS

NOW = "2026-11-05T00:00:00Z"


async def seed(db: Database) -> None:
    async with db.transaction() as conn:
        for pid in ("270008", "282014", "282103", "283002"):
            await conn.execute("INSERT INTO participants(id, name, type, created_at, updated_at) "
                               "VALUES (?, ?, 'municipality', ?, ?)", (pid, pid, NOW, NOW))
        # 283002 is hosted by 282014; its dataset is served by 282014's node
        await conn.execute("INSERT INTO hosting VALUES ('283002', '282014', ?)", (NOW,))
        for ds, publisher in (("tenant-ds", "283002"), ("host-ds", "282014")):
            await conn.execute(
                "INSERT INTO datasets(id, publisher_id, node_participant_id, node_name, version, "
                "status, doc, created_at, modified_at) VALUES (?, ?, '282014', 'main', 1, "
                "'published', '{}', ?, ?)", (ds, publisher, NOW, NOW))
        for tid, ds, records, ended in (("t1", "tenant-ds", 100, "2026-11-10T00:00:00Z"),
                                        ("t2", "host-ds", 7, "2026-11-11T00:00:00Z"),
                                        # JST 2026-12-01 09:00 → December, not November
                                        ("t3", "tenant-ds", 50, "2026-12-01T00:00:00Z"),
                                        # JST 2026-11-01 08:00 → November
                                        ("t4", "tenant-ds", 3, "2026-10-31T23:00:00Z")):
            await conn.execute(
                "INSERT INTO usage_records(transfer_id, agreement_id, dataset_id, "
                "provider_participant, consumer_participant, provider_node, consumer_node, "
                "records, bytes, batches, incremental, started_at, ended_at, reported_at, "
                "provider_org, consumer_org) VALUES (?, 'a', ?, '282014', '282103', "
                "'urn:areamesh:org:282014:node:main', 'urn:areamesh:org:282103:node:main', "
                "?, ?, 1, 0, ?, ?, ?, (SELECT publisher_id FROM datasets WHERE id = ?), '282103')",
                (tid, ds, records, records * 10, ended, ended, ended, ds))
        await conn.execute("INSERT INTO api_keys(id, kind, owner, secret_sha256, created_at, "
                           "created_by) VALUES ('k1', 'participant', '282103', 'x', ?, 'op')", (NOW,))
        await conn.execute("INSERT INTO api_keys(id, kind, owner, secret_sha256, created_at, "
                           "created_by) VALUES ('k2', 'operator', 'op', 'x', ?, 'op')", (NOW,))
        for day, api, key, n in (("2026-11-02", "public", "k1", 4), ("2026-11-03", "ckan", "k1", 2),
                                 ("2026-11-03", "ckan", "", 9), ("2026-11-03", "public", "k2", 1),
                                 ("2026-12-01", "public", "k1", 100)):
            await conn.execute("INSERT INTO api_call_counts VALUES (?, ?, ?, ?)", (day, api, key, n))
        for day, residents in (("2026-11-02", 10), ("2026-11-20", 12), ("2026-12-02", 99)):
            await conn.execute("INSERT INTO consent_counts VALUES ('urn:areamesh:org:282014:node:"
                               "main', 'tenant-ds', ?, '283002', ?, ?, ?)",
                               (day, residents, residents + 1, NOW))


async def test_figures_credit_organisations_not_nodes(tmp_path: Path):
    async with Database(tmp_path / "registry.db", MIGRATIONS) as db:
        await seed(db)
        figures = await organisation_figures(db, parse_period("2026-11"))
        calls = await api_call_totals(db, parse_period("2026-11"))
    assert set(figures) == {"270008", "282014", "282103", "283002"}
    assert all(set(f) == set(FIGURES) for f in figures.values())
    tenant, host, consumer = figures["283002"], figures["282014"], figures["282103"]
    assert (tenant["records_provided"], tenant["transfers_provided"], tenant["bytes_provided"]) \
        == (103, 2, 1030)
    assert (host["records_provided"], host["transfers_provided"]) == (7, 1)
    assert (consumer["records_received"], consumer["transfers_received"]) == (110, 3)
    assert consumer["records_provided"] == 0 and tenant["records_received"] == 0
    assert consumer["api_calls"] == 6 and host["api_calls"] == 0
    assert tenant["consented_records"] == 12 and host["consented_records"] == 0
    assert figures["270008"] == dict.fromkeys(FIGURES, 0)
    assert calls == {"participant": 6, "operator": 1, "anonymous": 9, "unknown": 0, "total": 16}
