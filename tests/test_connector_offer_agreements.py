"""Agreements and the offers they were made under, between two real connectors:

- the registry's notarisation time is kept in both sides' contracts.db when the agreement is
  FINALIZED (the provider from the registry's reply, the consumer from ``CountersignResponse``),
  shown by ``contract show`` and by the console's agreement page, which never asks the registry
  (the page still shows it with the registry stopped); a row finalized before the time was kept
  says 記録なし;
- removing an offer in the provider's console leaves the agreements made under it in force (a
  fetch still works) while a new request under it is refused; the last offer of a contract
  dataset cannot be removed.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import timedelta

import pytest

from connector.contracts.store import MIGRATIONS, AgreementStore
from mesh.clock import from_iso, utcnow
from mesh.db import Database
from mesh.web.render import jst

from .conftest import MeshHarness, http_json
from .test_connector_agreement_pages import Browser, base_of, two_connectors
from .transfer_fixtures import DATASET_ID, agree, fetch_cli


async def show(h: MeshHarness, node: str, agreement: str) -> dict:
    rc, out, err = await h.cli("connector", "contract", "show", "--data-dir", str(h.root / node),
                               agreement)
    assert rc == 0, err
    return json.loads(out)


def registry_time(h: MeshHarness, agreement: str) -> str:
    with sqlite3.connect(h.registry_dir / "registry.db") as db:
        return db.execute("SELECT notarised_at FROM notarisations WHERE agreement_id = ?",
                          (agreement,)).fetchone()[0]


def shown_time(page: str) -> str:
    return re.search(r'<dd id="notarised-at">(.*?)</dd>', page, re.S)[1].strip()


@pytest.mark.integration
async def test_notarised_at_is_kept_and_agreements_outlive_their_offer(harness: MeshHarness):
    h = harness
    provider, consumer = await two_connectors(h, {"kakogawa": [("tanaka", "admin")],
                                                  "osaka": [("osaka-admin", "admin")]})
    agreed = await agree(h, "research-use")
    consumer_row, provider_row = await show(h, "kakogawa", agreed), await show(h, "osaka", agreed)
    # both sides keep the registry's time, the same one the registry recorded
    at = from_iso(registry_time(h, agreed))
    assert from_iso(consumer_row["notarised_at"]) == from_iso(provider_row["notarised_at"]) == at
    assert abs(utcnow() - at) < timedelta(minutes=10)
    assert consumer_row["digest"] == provider_row["digest"] and consumer_row["state"] == "FINALIZED"

    admin = await Browser(base_of(provider)).sign_in("osaka-admin")
    buyer = await Browser(base_of(consumer)).sign_in("tanaka")
    try:
        # the provider removes the offer the agreement was made under
        remove = f"/admin/datasets/{DATASET_ID}/offers/research-use/remove"
        status, page = await admin.get(remove)
        assert status == 200 and "この提供条件による確定済みの合意が 1 件あります。" in page
        assert "研究目的に限り" in page and "削除しても無効になりません" in page
        status, where = await admin.post(remove, {})
        assert status == 303 and where.endswith("?done=offer_removed"), where
        listed = await http_json(f"{h.http_url}/api/v1/datasets/{DATASET_ID}")
        assert [o["id"] for o in listed["offers"]] == ["one-transfer", "capped"]
        # ... the agreement is still in force: a fetch under it works
        rc, summary, err = await fetch_cli(h, agreed, h.root / "got" / "feed.ndjson")
        assert rc == 0 and summary["records"] > 0, err
        assert (await show(h, "osaka", agreed))["state"] == "FINALIZED"
        # ... and nobody can make a new one under the removed offer
        rc, out, err = await h.cli("connector", "contract", "request", "--data-dir",
                                   str(h.root / "kakogawa"), "--dataset", DATASET_ID,
                                   "--offer", "research-use", "--purpose", "研究")
        assert rc != 0 and "research-use" in out + err
        # the last offer of a contract dataset stays, with the reason on the page
        status, _ = await admin.post(f"/admin/datasets/{DATASET_ID}/offers/capped/remove", {})
        assert status == 303
        last = f"/admin/datasets/{DATASET_ID}/offers/one-transfer/remove"
        status, page = await admin.get(last)
        assert status == 200 and 'id="remove-blocked"' in page and "契約型" in page
        assert f'action="{last}"' not in page
        status, page = await admin.post(last, {})
        assert status == 409 and "最後の提供条件のため削除できません" in page
        listed = await http_json(f"{h.http_url}/api/v1/datasets/{DATASET_ID}")
        assert [o["id"] for o in listed["offers"]] == ["one-transfer"]

        # the agreement pages show the kept time with the registry stopped: no registry call
        await h.registry.stop()
        for browser in (buyer, admin):
            status, page = await browser.get(f"/admin/agreements/{agreed}")
            assert status == 200 and shown_time(page) == jst(at), browser.base
            assert "この合意文書のダイジェストと一致します" in page
    finally:
        await admin.close()
        await buyer.close()

    # a row finalized before the time was kept: 記録なし, and still no registry call
    with sqlite3.connect(h.root / "kakogawa" / "contracts.db") as db:
        db.execute("UPDATE agreements SET notarised_at = NULL WHERE id = ?", (agreed,))
    buyer = await Browser(base_of(consumer)).sign_in("tanaka")
    try:
        status, page = await buyer.get(f"/admin/agreements/{agreed}")
        assert status == 200 and shown_time(page).startswith("記録なし")
    finally:
        await buyer.close()


async def test_rows_finalized_before_the_migration_have_no_time(tmp_path):
    """Migration 3 adds the column; older rows read as None; a new FINALIZED keeps the time and
    saving a row again without one keeps it."""
    old = Database(tmp_path / "contracts.db", MIGRATIONS[:2])
    await old.open()
    async with old.transaction() as conn:
        await conn.execute(
            "INSERT INTO agreements(id, role, state, dataset_id, offer_id, counterparty, purpose, "
            "digest, created_at, updated_at) VALUES ('a-old', 'consumer', 'FINALIZED', 'd-1', "
            "'o-1', 'urn:x', '研究', 'sha256:00', '2026-01-01', '2026-01-01')")
    await old.close()
    db = await Database(tmp_path / "contracts.db", MIGRATIONS).open()
    try:
        store = AgreementStore(db)
        row = await store.get("a-old")
        assert row.notarised_at is None and row.to_json()["notarised_at"] is None
        common = {"id": "a-new", "role": "provider", "dataset_id": "d-1", "offer_id": "o-1",
                  "counterparty": "urn:x", "purpose": "研究"}
        await store.save(state="FINALIZED", digest="sha256:11",
                         notarised_at="2026-05-01T01:02:03.000000+00:00", **common)
        await store.save(state="TERMINATED", reason={"reason": "test"}, **common)
        row = await store.get("a-new")
        assert row.notarised_at == "2026-05-01T01:02:03.000000+00:00" and row.digest == "sha256:11"
    finally:
        await db.close()
