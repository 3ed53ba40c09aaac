"""Consent at volume (issue 18): a bulk load decides as single grants do, a bad grant stops it
and names its row, and the scope snapshot a restart starts from decides as a full read does —
including grants, withdrawals and expiries that happened while the connector was down."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import timedelta

import pyarrow as pa
import pytest

from connector.consent.filter import ConsentFilter
from connector.consent.scope import SNAPSHOTS
from connector.consent.store import ConsentGrant, ConsentProof, ConsentStore
from mesh.clock import iso, utcnow
from mesh.errors import InvalidRequest

DS, TO, PURPOSE = "ds-vol", "282103", "防災"


def grants(n: int) -> list[ConsentGrant]:
    """A mix: all items, some items, a service, another purpose, an expiry, repeats of one key
    (the later supersedes the earlier, or equals it)."""
    later = utcnow() + timedelta(days=30)
    out = []
    for i in range(n):
        r = f"R{i:05d}"
        kind = i % 6
        if kind == 0:
            out.append(ConsentGrant(r, TO, PURPOSE, DS))
        elif kind == 1:
            out.append(ConsentGrant(r, TO, PURPOSE, DS, items=("氏名", "住所")))
        elif kind == 2:
            out.append(ConsentGrant(r, TO, PURPOSE, "*", service_id="app-1"))
        elif kind == 3:
            out.append(ConsentGrant(r, TO, "研究", DS, expires_at=later))
        elif kind == 4:   # granted twice, the second with items: superseded within the call
            out.append(ConsentGrant(r, TO, PURPOSE, DS))
            out.append(ConsentGrant(r, TO, PURPOSE, DS, items=("氏名",)))
        else:             # granted twice alike: the same consent
            out.append(ConsentGrant(r, "282014", PURPOSE, DS))
            out.append(ConsentGrant(r, "282014", PURPOSE, DS))
    return out


KEYS = [(DS, TO, PURPOSE, None), (DS, TO, PURPOSE, "app-1"), (DS, TO, "研究", None),
        (DS, "282014", PURPOSE, None), ("other-ds", TO, PURPOSE, "app-1")]


async def decisions(store: ConsentStore, *, exact: bool = False) -> list[tuple]:
    """Who may be sent, with which items, for each key (``exact``: read at a moment, uncached)."""
    out = []
    for ds, to, purpose, service in KEYS:
        scope = await store.scope(ds, to, purpose, service=service,
                                  at=utcnow() if exact else None)
        out.append((sorted(scope.subjects), sorted((k, sorted(v))
                                                  for k, v in scope.restricted.items())))
    return out


def _shape(c) -> tuple:
    return (c.resident, c.dataset_id, c.participant, c.service_id, c.component_id, c.purpose,
            c.items, c.expires_at, c.withdrawn_at is not None)


async def test_a_bulk_load_decides_as_single_grants(tmp_path):
    batch = grants(120)
    bulk = await ConsentStore.open(tmp_path / "bulk")
    single = await ConsentStore.open(tmp_path / "single")
    try:
        ids = await bulk.grant_many(batch)
        one_by_one = [await single.grant(g.resident, participant=g.participant, purpose=g.purpose,
                                         dataset_id=g.dataset_id, service_id=g.service_id,
                                         items=g.items, expires_at=g.expires_at) for g in batch]
        assert len(ids) == len(batch) == len(one_by_one)
        # the same consents recorded (ids aside), the same withdrawn by supersession
        assert sorted(map(_shape, await bulk.list()), key=repr) == sorted(
            map(_shape, await single.list()), key=repr)
        assert await decisions(bulk) == await decisions(single)
        assert await decisions(bulk) == await decisions(bulk, exact=True)
        # a repeat of an identical grant returns the same id; a changed one a new id
        assert ids[-1] == ids[-2]                       # kind 5: granted twice alike
        assert len(set(ids)) == len(ids) - sum(1 for i in range(120) if i % 6 == 5)
        # the evidence: one 'granted' event per new consent, one 'superseded' per replaced one
        for store in (bulk, single):
            history = await store.history("R00004")
            assert [e.event for e in history] == ["granted", "superseded", "granted"]
        # the event's JSON is the consent's fields, as json.dumps of Consent.to_json gives them
        rows = await bulk.db.fetchall(
            "SELECT e.detail_json, c.id FROM consent_events e JOIN consents c ON c.id = "
            "e.consent_id WHERE e.event = 'granted'")
        for detail_json, cid in rows:
            doc = (await bulk.get(cid)).to_json()
            for k in ("status", "withdrawn_at", "withdraw_reason"):
                del doc[k]
            assert detail_json == json.dumps(doc, ensure_ascii=False)
    finally:
        await bulk.close()
        await single.close()


async def test_a_bulk_load_with_proof_keeps_the_evidence_text(tmp_path):
    store = await ConsentStore.open(tmp_path)
    try:
        proof = ConsentProof("jti-1", iso(utcnow() + timedelta(minutes=5)),
                             {"issuer": "姫路市", "ial": 2})
        [cid] = await store.grant_many([ConsentGrant("R1", TO, PURPOSE, DS, items=("氏名",))],
                                       proof=proof, actor="窓口")
        [event] = await store.history("R1")
        doc = (await store.get(cid)).to_json()
        for k in ("status", "withdrawn_at", "withdraw_reason"):
            del doc[k]
        assert event.detail == {**doc, "proof": {"issuer": "姫路市", "ial": 2}}
        assert event.actor == "窓口"
    finally:
        await store.close()


@pytest.mark.parametrize("bad, code", [
    (ConsentGrant("R 7", TO, PURPOSE, DS), "invalid_resident"),
    (ConsentGrant("R7", "282100", PURPOSE, DS), "invalid_participant_id"),   # check digit
    (ConsentGrant("R7", TO, " ", DS), "invalid_purpose"),
    (ConsentGrant("R7", TO, PURPOSE, DS, items=("氏名", "氏名")), "invalid_items"),
])
async def test_a_bad_grant_stops_the_load_and_names_its_row(tmp_path, bad, code):
    store = await ConsentStore.open(tmp_path)
    try:
        batch = [ConsentGrant(f"R{i}", TO, PURPOSE, DS) for i in range(7)]
        batch += [bad, ConsentGrant("R8", TO, PURPOSE, DS)]
        with pytest.raises(InvalidRequest) as caught:
            await store.grant_many(batch)
        assert caught.value.code == code
        assert caught.value.details["row"] == 7
        assert await store.list() == []                       # all or none
        assert await store.db.fetchall("SELECT seq FROM consent_events") == []
    finally:
        await store.close()


async def test_the_scope_after_a_restart_decides_as_a_full_read(tmp_path):
    """The serving store leaves a snapshot of each key's base; after a restart it is the
    starting point, brought up to date with what happened while the connector was down."""
    first = await ConsentStore.open(tmp_path)
    try:
        soon = utcnow() + timedelta(seconds=2)
        await first.grant_many([*grants(90), ConsentGrant("X-expiring", TO, PURPOSE, DS,
                                                          expires_at=soon)])
        before = await decisions(first)
        assert "X-expiring" in before[0][0]
        assert len(list((tmp_path / SNAPSHOTS).glob("*.arrow"))) == len(KEYS)
    finally:
        await first.close()
    # while the connector is down, another process (the CLI) changes consent
    cli = await ConsentStore.open(tmp_path)
    try:
        await cli.withdraw(resident="R00000", participant=TO, reason="本人の申出")
        await cli.withdraw(resident="R00001", participant=TO, purpose=PURPOSE)
        await cli.grant("NEW-1", participant=TO, purpose=PURPOSE, dataset_id=DS)
        await cli.grant("NEW-2", participant=TO, purpose=PURPOSE, dataset_id="*",
                        items=["住所"], service_id="app-1")
        await cli.grant("R00006", participant=TO, purpose=PURPOSE, dataset_id=DS,
                        items=["電話番号"])                 # supersedes an all-items consent
    finally:
        await cli.close()
    await asyncio.sleep(max(0.0, (soon - utcnow()).total_seconds()) + 0.1)   # X expires
    restarted = await ConsentStore.open(tmp_path)
    try:
        after = await decisions(restarted)
        assert restarted._cache.loaded_snapshots == len(KEYS)
        assert after == await decisions(restarted, exact=True)
        subjects, restricted = after[0]
        assert "R00000" not in subjects and "R00001" not in subjects
        assert "X-expiring" not in subjects
        assert "NEW-1" in subjects
        assert ("R00006", ["電話番号"]) in restricted
        assert after != before
        # the filter (its index built from the snapshot's array) keeps and nulls as a full read
        residents = [f"R{i:05d}" for i in range(90)] + ["NEW-1", "NEW-2", "X-expiring", "nobody"]
        rows = pa.record_batch({"住民ID": residents, "氏名": [f"n{i}" for i in range(94)],
                                "住所": [f"a{i}" for i in range(94)],
                                "電話番号": [f"t{i}" for i in range(94)]})
        from_snapshot = ConsentFilter("住民ID").apply(
            rows, await restarted.scope(DS, TO, PURPOSE))
        assert from_snapshot.batch.to_pylist() == ConsentFilter("住民ID").apply(
            rows, await restarted.scope(DS, TO, PURPOSE, at=utcnow())).batch.to_pylist()
        assert "R00000" not in from_snapshot.subjects
    finally:
        await restarted.close()


async def test_a_snapshot_of_another_consent_database_is_not_used(tmp_path):
    """A consent.db restored from a backup or replaced: the event at the snapshot's seq is not
    the one it names, so the key is read in full (never the old residents)."""
    first = await ConsentStore.open(tmp_path)
    try:
        await first.grant_many([ConsentGrant(f"A{i}", TO, PURPOSE, DS) for i in range(50)])
        await decisions(first)
    finally:
        await first.close()
    snapshots = tmp_path / SNAPSHOTS
    kept = tmp_path.parent / f"{tmp_path.name}-snapshots"
    shutil.copytree(snapshots, kept)
    for name in ("consent.db", "consent.db-wal", "consent.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    shutil.rmtree(snapshots)
    other = await ConsentStore.open(tmp_path)
    try:   # as many events as before, other residents
        await other.grant_many([ConsentGrant(f"B{i}", TO, PURPOSE, DS) for i in range(50)])
    finally:
        await other.close()
    shutil.rmtree(snapshots, ignore_errors=True)
    shutil.copytree(kept, snapshots)                       # the old snapshots are back
    restarted = await ConsentStore.open(tmp_path)
    try:
        [(subjects, _), *_] = await decisions(restarted)
        assert restarted._cache.loaded_snapshots == 0
        assert subjects == sorted(f"B{i}" for i in range(50))
    finally:
        await restarted.close()


async def test_a_damaged_snapshot_is_not_used(tmp_path):
    first = await ConsentStore.open(tmp_path)
    try:
        await first.grant_many([ConsentGrant(f"A{i:03d}", TO, PURPOSE, DS) for i in range(50)])
        expected = await decisions(first)
    finally:
        await first.close()
    for path in (tmp_path / SNAPSHOTS).glob("*.arrow"):
        data = bytearray(path.read_bytes())
        at = data.find(b"A007")
        if at >= 0:
            data[at:at + 4] = b"Z007"                      # a resident's id changed in place
            path.write_bytes(bytes(data))
    restarted = await ConsentStore.open(tmp_path)
    try:
        assert await decisions(restarted) == expected
        assert restarted._cache.loaded_snapshots < len(KEYS)   # the damaged one was not used
    finally:
        await restarted.close()
