"""The flow ledger: batch entries in a hash chain, tamper detection with reasons (entries and the
resident rows inside them), the residents' index, signed checkpoints, export, the migration of a
ledger written one entry per resident, CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import shutil
import sqlite3
import time
import unicodedata
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from connector.ledger import (
    GENESIS,
    MAX_RESIDENTS,
    BatchHasher,
    Flow,
    FlowBatch,
    LedgerUnreadable,
    SignedCheckpoint,
    SqliteLedger,
    decode_subjects,
    encode_subjects,
    entry_hash,
    read_ndjson,
    subjects_digest,
    verify_checkpoint,
    verify_export,
)
from connector.ledger import index as ledger_index
from connector.ledger.cli import ledger as ledger_cli
from connector.ledger.residents import encode_arrow
from connector.ledger.schema import MIGRATIONS
from mesh.certs import to_pem
from mesh.clock import iso, utcnow
from mesh.datasets import canonical_json
from mesh.db import Database
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.ids import node_identity_uri
from mesh.keystore import NodeKeyStore
from registry.ca.authority import CertificateAuthority

TRIGGERS = ("flow_entries_no_update", "flow_entries_no_delete", "entries_no_update",
            "entries_no_delete", "batches_no_update", "batches_no_delete", "checkpoints_no_delete",
            "checkpoints_publish_only")


def keystore_at(ca: CertificateAuthority, tls_dir: Path, pid: str = "282014",
                name: str = "main") -> NodeKeyStore:
    """A node key store with a real certificate from ``ca`` (as enrolment would leave it)."""
    ks = NodeKeyStore(tls_dir)
    csr = ca.check_csr(ks.new_csr(node_name=name), participant_id=pid, node_name=name)
    ks.install(to_pem(ca.issue_node_certificate(csr, participant_id=pid, node_name=name,
                                                lifetime=timedelta(days=1))), ca.ca_pem())
    return ks


def flows(subjects: list[str], *, to: str = "270008", purpose: str = "防災",
          agreement: str = "agr-1", service: str | None = None) -> list[Flow]:
    return [Flow(s, "himeji-residents", "282014", "main", to, "main", purpose, agreement,
                 1 + i % 3, service=service, transfer="tr-1") for i, s in enumerate(subjects)]


def tamper(path: Path, *statements: str) -> None:
    """What someone with the file can do: drop the guard triggers and edit rows directly."""
    con = sqlite3.connect(path)
    for trigger in TRIGGERS:
        con.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("ca") / "ca", mesh_id="t",
                                       name="運営組織")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "node"


async def filled(data_dir: Path, batches: int = 4, size: int = 5) -> SqliteLedger:
    lg = await SqliteLedger.open(data_dir)
    for b in range(batches):
        await lg.append_many(flows([f"R{b * size + i:04d}" for i in range(size)]))
    return lg


async def reopen_verify(data_dir: Path, *statements: str, **kw):
    tamper(data_dir / "ledger.db", *statements)
    lg = await SqliteLedger.open(data_dir)
    try:
        return await lg.verify(**kw)
    finally:
        await lg.close()


async def test_append_chains_batch_entries_and_verifies(data_dir: Path):
    lg = await SqliteLedger.open(data_dir)
    assert await lg.head() == (0, GENESIS)
    first = await lg.append_many(flows(["R1", "R2"]))
    second = await lg.append_many(flows(["R3"]))
    assert (first.first_seq, first.last_seq, second.first_seq, second.last_seq) == (1, 1, 2, 2)
    rows = [e async for e in lg.entries()]
    assert [r["seq"] for r in rows] == [1, 2]
    assert rows[0]["prev_hash"] == GENESIS and rows[1]["prev_hash"] == rows[0]["hash"]
    assert rows[0]["subjects"] == [["R1", 1], ["R2", 2]]
    assert (rows[0]["residents"], rows[0]["records"]) == (2, 3)
    # the digest is one SHA-256 over the compact list; the hash covers it, not the list itself
    blob = encode_subjects(["R1", "R2"], [1, 2])
    assert blob == bytes([0, 1]) + (2).to_bytes(4, "little") + (2).to_bytes(4, "little") \
        + bytes([1, 2]) + b"R1R2"                  # one length for all, a byte per count
    assert encode_subjects(["R1", "R22"], [300, 300]) == bytes([1, 0]) + (2).to_bytes(
        4, "little") + bytes([2, 3]) + (300).to_bytes(4, "little") + b"R1R22"
    assert rows[0]["subjects_digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
    body = {k: v for k, v in rows[1].items() if k not in ("seq", "hash", "subjects")}
    assert rows[1]["hash"] == "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()
    assert rows[1]["hash"] == entry_hash(rows[1]) == second.head
    report = await lg.verify()
    assert report.ok and report.entries == 2 and report.head == second.head
    for bad in ([Flow("R9", "ds", "282014", "main", "270008", "main", "", "a", 1)],
                [Flow("", "ds", "282014", "main", "270008", "main", "防災", "a", 1)],
                [Flow("R9", "ds", "282014", "main", "270008", "main", "防災", "a", 0)],
                [Flow("R9", "ds", "282014", "main", "270008", "main", "防災", "a", 1 << 32)]):
        with pytest.raises(InvalidRequest) as exc:
            await lg.append_many(bad)
        assert exc.value.code == "invalid_ledger_entry"
    assert (await lg.head())[0] == 2
    await lg.close()


async def test_large_batches_take_several_entries_and_arrow_input_is_the_list(tmp_path: Path):
    a, b = await SqliteLedger.open(tmp_path / "a"), await SqliteLedger.open(tmp_path / "b")
    meta = FlowBatch("himeji-residents", "282014", "main", "270008", "main", "防災", "agr-1")
    subjects = [f"H{i:09d}" for i in range(MAX_RESIDENTS + 5)]
    counts = [1 + i % 300 for i in range(len(subjects))]        # two-byte records counts
    done = await a.append_batch(meta, pa.array(subjects).slice(0), np.array(counts))
    assert (done.first_seq, done.last_seq) == (1, 2)
    await b.append_batch(meta, subjects, counts)
    rows_a, rows_b = [e async for e in a.entries()], [e async for e in b.entries()]
    assert [r["residents"] for r in rows_a] == [MAX_RESIDENTS, 5]
    assert [p for r in rows_a for p in r["subjects"]] == [[s, n] for s, n in
                                                          zip(subjects, counts, strict=True)]
    assert [r["subjects_digest"] for r in rows_a] == [r["subjects_digest"] for r in rows_b]
    assert (await a.verify()).ok
    [flow] = await a.flows_for(subjects[-1])
    assert (flow.records, flow.entries) == (counts[-1], 1)
    for subjects_, counts_ in ((pa.array(["R1", None]), [1, 1]), (pa.array(["R1", ""]), [1, 1]),
                               (pa.array(["R1"]), np.array([0])), (pa.array(["R1"]), [1, 2])):
        with pytest.raises(InvalidRequest) as exc:
            await a.append_batch(meta, subjects_, counts_)
        assert exc.value.code == "invalid_ledger_entry"
    assert (await a.head())[0] == 2 and (await a.append_batch(meta, [], [])).last_seq == 2
    await a.close()
    await b.close()


async def test_long_ids_are_cut_into_entries_that_export_as_short_lines(tmp_path: Path):
    lg = await SqliteLedger.open(tmp_path / "n")
    meta = FlowBatch("ds", "282014", "main", "270008", "main", "防災", "agr-1")
    subjects = [f"{i:05d}" + "x" * 123 for i in range(9000)]     # 128-character ids
    for names in (subjects, pa.array(subjects)):
        done = await lg.append_batch(meta, names, [1] * len(subjects))
        assert done.last_seq - done.first_seq + 1 == 3              # 4096 ids of 128 bytes each
    out = tmp_path / "x.ndjson"
    assert await lg.export(out) == 6
    assert max(len(line) for line in out.read_bytes().splitlines()) < 1 << 20
    assert [p[0] for e in [e async for e in lg.entries()][:3] for p in e["subjects"]] == subjects
    assert (await lg.verify()).ok
    await lg.close()


@pytest.mark.parametrize("subjects", [
    ["H000000001", "H000000002", "H000000003"],                  # one width
    ["a", "bb" * 200, "ccc"],                                     # two-byte lengths
    ["e\u0301", "\u30ab\u3099", "R1"],                           # not ASCII, not NFC
    ["x" * 70_000, "y"],                                          # four-byte lengths
])
def test_arrow_encoding_is_the_reference_encoding(subjects):
    for counts in ([1] * len(subjects), [70_000] * len(subjects), [1, 255, 256][:len(subjects)],
                   [1, 70_000, 2][:len(subjects)]):
        array = pa.array(["pad", *subjects]).slice(1)                 # a sliced Arrow array
        blob, total, problems = encode_arrow(array, np.array(counts))
        assert problems == [] and total == sum(counts)
        assert blob == encode_subjects(subjects, counts)
        assert decode_subjects(blob) == ([unicodedata.normalize("NFC", s) for s in subjects],
                                         counts)


@pytest.mark.parametrize("subject,shared", [
    ("R1", {}),
    ('quote"back\\slash\ttab\u0001', {"purpose": 'say "hi"\n'}),
    ("ｶﾞｯｺｳ", {"service": "見守り", "component": None, "transfer": None}),
    ("\u30ab\u3099", {"dataset": "e\u0301", "agreement": "\U0001f600"}),   # NFD input
])
def test_fast_batch_hash_is_byte_equal_to_the_reference(subject, shared):
    meta = {"time": "2026-01-01T00:00:00.000000+00:00", "dataset": "ds",
            "from_participant": "282014", "from_node": "main", "to_participant": "270008",
            "to_node": "main", "purpose": "防災", "agreement": "agr", "service": None,
            "component": "c", "transfer": "t", **shared}
    for records, prev in ((1, GENESIS), (123456, "sha256:" + "ab" * 32)):
        assert BatchHasher(meta)(subject, records, prev) == entry_hash(
            {**meta, "subject": subject, "records": records, "prev_hash": prev})


async def test_two_writers_chain_on_each_other(data_dir: Path):
    """A writer's remembered head goes stale when another connection appends: its next append
    sees that in the same statement and chains on the real head."""
    a, b = await SqliteLedger.open(data_dir), await SqliteLedger.open(data_dir)
    meta = FlowBatch("ds", "282014", "main", "270008", "main", "防災", "agr-1")
    await a.append_batch(meta, ["R1"], [1])
    await b.append_batch(meta, ["R2"], [1])                    # a's head is stale now
    done = await a.append_batch(meta, ["R3"], [1])
    assert (done.first_seq, done.last_seq) == (3, 3)
    await b.append_batch(meta, pa.array(["R4"]), np.array([2]))
    assert (await a.head())[0] == 4 and (await a.verify()).ok
    await a.close()
    await b.close()


async def test_the_index_fills_in_short_transactions_beside_appends(data_dir: Path, monkeypatch):
    monkeypatch.setattr(ledger_index, "CHUNK", 7)
    lg = await filled(data_dir, 6, 5)
    other = await SqliteLedger.open(data_dir)

    async def keep_appending() -> None:
        for i in range(5):
            await other.append_many(flows([f"X{i}"]))

    filled_rows, _ = await asyncio.gather(lg.index_subjects(), keep_appending())
    assert filled_rows >= 30
    await lg.index_subjects()
    assert [e["seq"] for e in await lg.entries_for("X4")] == [11]
    assert (await lg.verify()).ok
    await other.close()
    await lg.close()


async def test_verify_reads_one_snapshot_while_a_running_connector_fills_the_index(
        data_dir: Path, monkeypatch):
    """The connector fills the index after a transfer while ``areamesh connector ledger verify``
    reads: a fill committed between verify's reads must not look like tampering (CI saw an intact
    index reported as listing 19 flows against 10)."""
    lg = await filled(data_dir, 2, 5)
    await lg.index_subjects()
    await lg.append_many(flows([f"N{i}" for i in range(9)]))     # the next transfer, unindexed
    connector = await SqliteLedger.open(data_dir)                 # the running connector's
    loop = asyncio.get_running_loop()
    fingerprint, filled_meanwhile = ledger_index._fingerprint, []

    def fingerprint_then_fill(key, rows):
        if not filled_meanwhile:      # between verify's first read and its last
            filled_meanwhile.append(asyncio.run_coroutine_threadsafe(
                connector.index_subjects(), loop).result(timeout=30))
        return fingerprint(key, rows)

    monkeypatch.setattr(ledger_index, "_fingerprint", fingerprint_then_fill)
    report = await lg.verify()
    assert filled_meanwhile == [9], filled_meanwhile
    assert report.ok, report.message
    monkeypatch.setattr(ledger_index, "_fingerprint", fingerprint)
    assert (await lg.verify()).ok                                  # and with the fill in view
    assert [e["seq"] for e in await lg.entries_for("N3")] == [3]
    await connector.close()
    await lg.close()


async def test_append_batch_is_append_many(tmp_path: Path):
    a, b = await SqliteLedger.open(tmp_path / "a"), await SqliteLedger.open(tmp_path / "b")
    subjects = ["R1", "R2", "R3"]
    meta = FlowBatch("himeji-residents", "282014", "main", "270008", "main", "防災", "agr-1",
                     transfer="tr-1")
    await a.append_batch(meta, subjects, [1, 2, 3])
    await b.append_many(Flow(s, "himeji-residents", "282014", "main", "270008", "main", "防災",
                             "agr-1", n, transfer="tr-1") for s, n in zip(subjects, [1, 2, 3], strict=True))
    rows_a = [{k: v for k, v in e.items() if k not in ("time", "hash", "prev_hash")}
              async for e in a.entries()]
    rows_b = [{k: v for k, v in e.items() if k not in ("time", "hash", "prev_hash")}
              async for e in b.entries()]
    assert rows_a == rows_b and len(rows_a) == 1 and rows_a[0]["residents"] == 3
    assert (await a.verify()).ok and (await b.verify()).ok
    with pytest.raises(InvalidRequest):
        await a.append_batch(meta, ["R4"], [1, 2])
    await a.close()
    await b.close()


async def test_triggers_refuse_update_and_delete(data_dir: Path):
    lg = await filled(data_dir, 2, 2)
    for sql in ("UPDATE flow_entries SET records = 9 WHERE seq = 1",
                "UPDATE flow_entries SET subjects = x'00' WHERE seq = 1",
                "DELETE FROM flow_entries WHERE seq = 2"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            await lg.db.conn.execute(sql)
    await lg.close()


@pytest.mark.parametrize("statements,reason,seq", [
    (["UPDATE flow_entries SET purpose = '観光' WHERE seq = 2"], "modified", 2),
    (["UPDATE flow_entries SET to_participant = '282103' WHERE seq = 1"], "modified", 1),
    (["UPDATE flow_entries SET records = records + 1 WHERE seq = 3"], "modified", 3),
    (["UPDATE flow_entries SET residents = 4 WHERE seq = 4"], "modified", 4),
    (["DELETE FROM flow_entries WHERE seq = 2"], "deleted", 2),
    (["DELETE FROM flow_entries WHERE seq IN (1, 2)"], "deleted", 1),
    (["UPDATE flow_entries SET seq = -1 WHERE seq = 2", "UPDATE flow_entries SET seq = 2 WHERE seq = 3",
      "UPDATE flow_entries SET seq = 3 WHERE seq = -1"], "reordered", 2),
    (["UPDATE flow_entries SET seq = 100 WHERE seq = 4"], "modified", 100),
    (["DELETE FROM flow_entries WHERE seq = 3", "UPDATE flow_entries SET seq = 3 WHERE seq = 4"],
     "rewritten", 2),
])
async def test_tampering_is_detected_with_its_reason(data_dir: Path, statements, reason, seq):
    await (await filled(data_dir)).close()
    report = await reopen_verify(data_dir, *statements)
    assert not report.ok
    assert (report.reason, report.first_bad_seq) == (reason, seq), report.message
    assert report.message and report.message_ja


def _changed(pairs: list[list]) -> list[list]:
    return [*pairs[:2], [pairs[2][0], pairs[2][1] + 1], *pairs[3:]]


@pytest.mark.parametrize("edit", [
    _changed,                                                    # a resident's records
    lambda p: [*p[:1], ["R9999", p[1][1]], *p[2:]],              # a resident's id
    lambda p: p[:2] + p[3:],                                     # a resident's row deleted
    lambda p: [*p, ["R9999", 1]],                                # a row added
    lambda p: [p[1], p[0], *p[2:]],                              # two rows swapped
    lambda p: p[1:],                                             # the first row deleted
])
async def test_tampering_with_a_resident_row_of_an_entry_is_detected(data_dir: Path, edit):
    lg = await filled(data_dir)
    [entry] = [e async for e in lg.entries() if e["seq"] == 3]
    await lg.close()
    pairs = edit(entry["subjects"])
    blob = encode_subjects([p[0] for p in pairs], [p[1] for p in pairs])
    report = await reopen_verify(data_dir, f"UPDATE flow_entries SET subjects = x'{blob.hex()}' "
                                           "WHERE seq = 3")
    assert (report.ok, report.reason, report.first_bad_seq) == (False, "modified", 3)
    assert "resident" in report.message and "住民" in report.message_ja
    # cut short, garbled: the same
    report = await reopen_verify(data_dir, "UPDATE flow_entries SET subjects = x'0101' WHERE seq = 3")
    assert (report.ok, report.reason, report.first_bad_seq) == (False, "modified", 3)


async def test_modified_and_rehashed_entry_breaks_the_next_link(data_dir: Path):
    lg = await filled(data_dir)
    row = [e async for e in lg.entries()][1]
    await lg.close()
    pairs = _changed(row["subjects"])
    blob = encode_subjects([p[0] for p in pairs], [p[1] for p in pairs])
    forged = {**row, "records": row["records"] + 1, "subjects_digest": subjects_digest(blob)}
    report = await reopen_verify(
        data_dir, f"UPDATE flow_entries SET subjects = x'{blob.hex()}', records = "
        f"{forged['records']}, subjects_digest = '{forged['subjects_digest']}', hash = "
        f"'{entry_hash(forged)}' WHERE seq = 2")
    assert (report.ok, report.reason, report.first_bad_seq) == (False, "rewritten", 2)


async def test_checkpoint_catches_deleted_tail_and_full_rewrite(data_dir: Path, ca):
    ks = keystore_at(ca, data_dir / "tls")
    lg = await filled(data_dir)
    cp = await lg.checkpoint(ks)
    assert (cp.checkpoint.seq, cp.checkpoint.head) == await lg.head()
    assert cp.checkpoint.node == node_identity_uri("282014", "main")
    assert await lg.checkpoint_if_changed(ks) is None
    await lg.append_many(flows(["R100"]))
    assert (await lg.checkpoint_if_changed(ks)).checkpoint.seq == 5
    assert [c.checkpoint.seq for c in await lg.checkpoints(unpublished=True)] == [4, 5]
    await lg.mark_published(cp)                     # the registry accepted the first one
    assert [c.checkpoint.seq for c in await lg.checkpoints(unpublished=True)] == [5]
    assert len(await lg.checkpoints()) == 2
    assert (await lg.verify(roots=[ca.certificate])).ok
    await lg.close()
    # The tail after the last checkpoint is gone: truncated, counted from the checkpoint.
    report = await reopen_verify(data_dir, "DELETE FROM flow_entries WHERE seq > 3",
                                 roots=[ca.certificate])
    assert (report.ok, report.reason, report.first_bad_seq) == (False, "truncated", 4)
    assert report.checkpoints == 2 and "5" in report.message


async def test_checkpoint_catches_a_consistently_rehashed_chain(data_dir: Path, ca):
    ks = keystore_at(ca, data_dir / "tls")
    lg = await filled(data_dir)
    await lg.checkpoint(ks)
    rows = [e async for e in lg.entries()]
    await lg.close()
    prev, statements = GENESIS, []
    for row in rows:  # rewrite a resident row of entry 2 and re-hash everything after it
        pairs = _changed(row["subjects"]) if row["seq"] == 2 else row["subjects"]
        blob = encode_subjects([p[0] for p in pairs], [p[1] for p in pairs])
        row = {**row, "prev_hash": prev, "records": sum(p[1] for p in pairs),
               "subjects_digest": subjects_digest(blob)}
        prev = entry_hash(row)
        statements.append(f"UPDATE flow_entries SET subjects = x'{blob.hex()}', records = "
                          f"{row['records']}, subjects_digest = '{row['subjects_digest']}', "
                          f"prev_hash = '{row['prev_hash']}', hash = '{prev}' WHERE seq = {row['seq']}")
    report = await reopen_verify(data_dir, *statements)
    assert (report.ok, report.reason, report.first_bad_seq) == (False, "rewritten", 4)


async def test_signed_checkpoint_verification_and_forgeries(data_dir: Path, ca, tmp_path: Path):
    ks = keystore_at(ca, data_dir / "tls")
    lg = await filled(data_dir, 1)
    cp = await lg.checkpoint(ks)
    await lg.close()
    verify_checkpoint(cp, [ca.certificate])
    verify_checkpoint(SignedCheckpoint.from_json(json.loads(json.dumps(cp.to_json()))),
                      [ca.certificate])
    moved = SignedCheckpoint.from_json({**cp.to_json(), "checkpoint": {
        **cp.checkpoint.to_json(), "seq": 2}})
    other_ca = CertificateAuthority.create(tmp_path / "other", mesh_id="x", name="偽")
    impostor = keystore_at(other_ca, tmp_path / "impostor")
    foreign = SignedCheckpoint.sign(impostor, cp.checkpoint.seq, cp.checkpoint.head)
    other_node = SignedCheckpoint.sign(keystore_at(ca, tmp_path / "n2", "270008"), 5, GENESIS)
    claimed = SignedCheckpoint.from_json({**other_node.to_json(), "checkpoint": {
        **other_node.checkpoint.to_json(), "node": cp.checkpoint.node}})
    for forged, code in [(moved, "checkpoint_signature_invalid"),
                         (foreign, "checkpoint_signer_untrusted"),
                         (claimed, "checkpoint_signer_mismatch")]:
        with pytest.raises(PermissionDenied) as exc:
            verify_checkpoint(forged, [ca.certificate])
        assert exc.value.code == code
    with pytest.raises(InvalidRequest) as bad:
        SignedCheckpoint.from_json({"checkpoint": {"kind": "x"}})
    assert bad.value.code == "malformed_checkpoint"
    # A forged checkpoint stored in the ledger's own table is reported, not trusted.
    forged_doc = json.dumps(moved.to_json()).replace("'", "''")
    report = await reopen_verify(data_dir, "INSERT INTO checkpoints(seq, head, time, signed_json) "
                                           f"VALUES (2, 'x', 't', '{forged_doc}')")
    assert (report.ok, report.reason) == (False, "checkpoint_invalid")
    # The registry's copy of a checkpoint can be handed in directly.
    lg = await SqliteLedger.open(data_dir)
    assert not (await lg.verify(roots=[ca.certificate], checkpoint=foreign)).ok
    await lg.close()


@pytest.mark.parametrize("mutate", [lambda b: b[: len(b) // 2], lambda b: b"\0" * 100 + b[100:],
                                    lambda b: b[:8192] + b"\xff" * 8192 + b[16384:]])
async def test_damaged_file_is_a_clear_error(data_dir: Path, mutate):
    await (await filled(data_dir, 40, 500)).close()
    path = data_dir / "ledger.db"
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(LedgerUnreadable) as exc:
        lg = await SqliteLedger.open(data_dir)
        try:
            await lg.verify()
        finally:
            await lg.close()
    assert exc.value.code == "ledger_unreadable" and "ledger.db" in exc.value.message


async def test_flows_for_a_resident(data_dir: Path):
    lg = await SqliteLedger.open(data_dir)
    await lg.append_many(flows(["R1", "R2"]))
    await lg.append_many(flows(["R1"], to="282103", purpose="福祉", agreement="agr-2",
                               service="mimamori"))
    await lg.append_many(flows(["R3", "R1"]))
    found = await lg.flows_for("R1")
    assert [(f.to_participant, f.purpose, f.agreement, f.service, f.entries) for f in found] == [
        ("270008", "防災", "agr-1", None, 2), ("282103", "福祉", "agr-2", "mimamori", 1)]
    assert found[0].records == 3 and found[0].first_at <= found[0].last_at
    assert await lg.flows_for("nobody") == []
    r1 = await lg.entries_for("R1")
    assert [(e["seq"], e["subject"], e["records"]) for e in r1] == [(1, "R1", 1), (2, "R1", 1),
                                                                   (3, "R1", 2)]
    assert set(r1[0]) == {"seq", "time", "subject", "dataset", "from_participant", "from_node",
                          "to_participant", "to_node", "purpose", "agreement", "service",
                          "component", "transfer", "records", "prev_hash", "hash"}
    chain = [e async for e in lg.entries()]
    assert r1[1]["service"] == "mimamori" and r1[1]["hash"] == chain[1]["hash"]
    await lg.append_many(flows(["R1"]))             # indexed on the next query, not on append
    assert [e["seq"] for e in await lg.entries_for("R1")] == [1, 2, 3, 4]
    assert await lg.index_subjects() == 0
    assert (await lg.verify()).ok
    await lg.close()
    for statement in ("DELETE FROM flow_index WHERE seq = 3 AND subject = 'R1'",
                      "UPDATE flow_index SET records = 7 WHERE seq = 1 AND subject = 'R2'",
                      "UPDATE flow_index SET subject = 'R9' WHERE seq = 1 AND subject = 'R2'",
                      "INSERT INTO flow_index SELECT run, 'R2', 3, 1 FROM flow_index_runs",
                      # rows moved out of sight: an unlisted run, or their run unlisted
                      "UPDATE flow_index SET run = 99 WHERE seq = 1",
                      "DELETE FROM flow_index_runs"):
        report = await reopen_verify(data_dir, statement)
        assert (report.ok, report.reason) == (False, "index_inconsistent"), statement
        await asyncio.to_thread(shutil.rmtree, data_dir)
        await (await filled_like_above(data_dir)).close()


async def filled_like_above(data_dir: Path) -> SqliteLedger:
    lg = await SqliteLedger.open(data_dir)
    for batch in (flows(["R1", "R2"]), flows(["R1"], to="282103", purpose="福祉",
                                             agreement="agr-2", service="mimamori"),
                  flows(["R3", "R1"]), flows(["R1"])):
        await lg.append_many(batch)
    await lg.index_subjects()
    return lg


async def test_a_resident_listed_twice_in_a_batch_is_one_flow_with_the_sum(data_dir: Path):
    lg = await SqliteLedger.open(data_dir)
    meta = FlowBatch("ds", "282014", "main", "270008", "main", "防災", "agr-1")
    await lg.append_batch(meta, ["R1", "R2", "R1"], [1, 2, 3])
    [flow] = await lg.flows_for("R1")
    assert (flow.records, flow.entries) == (4, 1)
    assert (await lg.verify()).ok
    await lg.close()


async def test_export_and_audit_against_a_registry_checkpoint(data_dir: Path, ca, tmp_path: Path):
    ks = keystore_at(ca, data_dir / "tls")
    lg = await filled(data_dir, 12, 5)
    cp = await lg.checkpoint(ks)
    out = tmp_path / "ledger.ndjson"
    assert await lg.export(out) == 12
    await lg.close()
    assert [e["seq"] async for e in read_ndjson(out)] == list(range(1, 13))
    assert (await verify_export(out, cp, roots=[ca.certificate])).ok
    lines = out.read_bytes().splitlines(keepends=True)
    first = json.loads(lines[0])
    assert first["subjects"] == [["R0000", 1], ["R0001", 2], ["R0002", 3], ["R0003", 1],
                                 ["R0004", 2]] and first["residents"] == 5

    async def audit(new_lines: list[bytes]):
        copy = tmp_path / "copy.ndjson"
        copy.write_bytes(b"".join(new_lines))
        return await verify_export(copy, cp, roots=[ca.certificate])

    def edited(index: int, **changes) -> list[bytes]:
        doc = {**json.loads(lines[index]), **changes}
        return [*lines[:index], canonical_json(doc) + b"\n", *lines[index + 1:]]

    pairs = json.loads(lines[4])["subjects"]
    cases = [(edited(4, records=50), "modified", 5),
             (edited(4, subjects=_changed(pairs)), "modified", 5),            # a resident row
             (edited(4, subjects=pairs[1:]), "modified", 5),                  # one removed
             (edited(4, subjects=[pairs[1], pairs[0], *pairs[2:]]), "modified", 5),   # moved
             (edited(4, subjects=[*pairs, ["R0002", 1]]), "modified", 5),     # one added
             ([*lines[:10], *lines[11:]], "deleted", 11),
             ([*lines[:6], lines[7], lines[6], *lines[8:]], "reordered", 8),
             (lines[:9], "truncated", 10)]
    for new_lines, reason, seq in cases:
        report = await audit(new_lines)
        assert (report.ok, report.reason, report.first_bad_seq) == (False, reason, seq)
    with pytest.raises(InvalidRequest) as exc:
        await audit([*lines[:3], lines[3][:40]])
    assert exc.value.code == "ledger_export_malformed" and exc.value.details["line"] == 4
    with pytest.raises(InvalidRequest):
        await audit([*lines[:3], b"{not json}\n"])
    with pytest.raises(InvalidRequest) as exc:
        doc = json.loads(lines[2])
        del doc["subjects"]
        await audit([*lines[:2], canonical_json(doc) + b"\n"])
    assert "subjects" in exc.value.message


async def write_v1_ledger(data_dir: Path, groups: list[tuple[FlowBatch, list[str], list[int]]]
                          ) -> tuple[int, str]:
    """A ledger as schema version 1 wrote it: one chained entry per resident per batch."""
    db = Database(data_dir / "ledger.db", MIGRATIONS[:1])
    await db.open()
    seq, prev = 0, GENESIS
    async with db.transaction() as conn:
        for batch_id, (meta, subjects, records) in enumerate(groups, start=1):
            shared = {"time": iso(utcnow()), **dataclasses.asdict(meta)}
            await conn.execute(f"INSERT INTO batches(id, {', '.join(shared)}) VALUES "
                               f"(?, {', '.join('?' * len(shared))})", (batch_id, *shared.values()))
            for subject, n in zip(subjects, records, strict=True):
                seq += 1
                digest = BatchHasher(shared)(subject, n, prev)
                await conn.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                                   (seq, batch_id, subject, n, prev, digest))
                prev = digest
    await db.close()
    return seq, prev


async def test_a_ledger_of_resident_entries_is_kept_verified_and_extended(data_dir: Path, ca,
                                                                         tmp_path: Path):
    ks = keystore_at(ca, data_dir / "tls")
    meta = FlowBatch("himeji-residents", "282014", "main", "270008", "main", "防災", "agr-0")
    seq, head = await write_v1_ledger(data_dir, [(meta, ["R1", "R2", "R3"], [1, 2, 1]),
                                                 (meta, ["R1", "R4"], [1, 1])])
    old = SignedCheckpoint.sign(ks, seq, head)         # what the registry holds from before
    lg = await SqliteLedger.open(data_dir)             # migrates the schema to the current one
    assert await lg.db.version() == len(MIGRATIONS) and await lg.head() == (5, head)
    assert (await lg.verify(checkpoint=old, roots=[ca.certificate])).ok
    done = await lg.append_many(flows(["R1", "R5"]))
    assert (done.first_seq, done.last_seq) == (6, 6)
    rows = [e async for e in lg.entries()]
    assert [("subject" in r, r["seq"]) for r in rows] == [(True, 1), (True, 2), (True, 3),
                                                         (True, 4), (True, 5), (False, 6)]
    assert rows[5]["prev_hash"] == head                # the first batch entry chains on
    report = await lg.verify(checkpoint=old, roots=[ca.certificate])
    assert report.ok and report.entries == 6
    [before, after] = await lg.flows_for("R1")
    assert (before.agreement, before.records, before.entries) == ("agr-0", 2, 2)
    assert (after.agreement, after.records, after.entries) == ("agr-1", 1, 1)
    assert [e["seq"] for e in await lg.entries_for("R1")] == [1, 4, 6]
    new = await lg.checkpoint(ks)
    out = tmp_path / "mixed.ndjson"
    assert await lg.export(out) == 6
    await lg.close()
    assert (await verify_export(out, [old, new], roots=[ca.certificate])).ok
    for statement, reason, bad_seq in [
            ("UPDATE entries SET records = 5 WHERE seq = 2", "modified", 2),
            ("UPDATE batches SET purpose = '観光' WHERE id = 2", "modified", 4),
            ("DELETE FROM entries WHERE seq = 5", "deleted", 5),
            ("DELETE FROM flow_entries", "truncated", 6),
            ("DELETE FROM subject_index WHERE seq = 4", "index_inconsistent", None)]:
        copy = tmp_path / f"copy-{bad_seq}"
        await asyncio.to_thread(shutil.copytree, data_dir, copy)
        report = await reopen_verify(copy, statement)
        assert (report.ok, report.reason, report.first_bad_seq) == (False, reason, bad_seq), \
            statement


def test_cli_verify_flows_export_checkpoint(data_dir: Path, ca, tmp_path: Path):
    keystore_at(ca, data_dir / "tls")

    async def fill() -> None:
        await (await filled(data_dir)).close()

    asyncio.run(fill())
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(ledger_cli, [*args], catch_exceptions=False)

    ok = run("verify", "--data-dir", str(data_dir), "--offline")
    assert ok.exit_code == 0 and "ledger intact: 4 entries" in ok.output
    # without --offline the registry is asked too; this node never joined one: exit 3, said so
    unasked = run("verify", "--data-dir", str(data_dir))
    assert unasked.exit_code == 3 and "ledger intact: 4 entries" in unasked.output
    assert "registry could not be reached" in unasked.output and "--offline" in unasked.output
    cp = run("checkpoint", "--data-dir", str(data_dir))
    assert cp.exit_code == 0 and json.loads(cp.output)["checkpoint"]["seq"] == 4
    (tmp_path / "cp.json").write_text(cp.output)
    flows_out = run("flows", "--data-dir", str(data_dir), "--subject", "R0003")
    assert flows_out.exit_code == 0 and "270008:main" in flows_out.output
    assert json.loads(run("flows", "--data-dir", str(data_dir), "--subject", "R0003",
                          "--json").output)[0]["purpose"] == "防災"
    out = tmp_path / "x.ndjson"
    assert run("export", "--data-dir", str(data_dir), "--out", str(out)).exit_code == 0
    audit = run("verify-export", "--file", str(out), "--checkpoint", str(tmp_path / "cp.json"),
                "--ca", str(data_dir / "tls" / "ca.crt"))
    assert audit.exit_code == 0, audit.output
    held = run("verify", "--data-dir", str(data_dir), "--checkpoint", str(tmp_path / "cp.json"),
               "--json", "--offline")
    assert held.exit_code == 0 and json.loads(held.output)["checkpoints"] == 2
    (tmp_path / "bad.json").write_text("{not json")
    unreadable_cp = run("verify", "--data-dir", str(data_dir), "--checkpoint",
                        str(tmp_path / "bad.json"))
    assert unreadable_cp.exit_code == 2 and "malformed_checkpoint" in unreadable_cp.output
    blob = encode_subjects(["R0010", "R9999"], [1, 1])
    tamper(data_dir / "ledger.db", f"UPDATE flow_entries SET subjects = x'{blob.hex()}' WHERE seq = 3")
    bad = run("verify", "--data-dir", str(data_dir))
    assert bad.exit_code == 1 and "TAMPERING DETECTED at entry 3 [modified]" in bad.output
    assert "改ざんを検出しました" in bad.output and "Traceback" not in bad.output
    (data_dir / "ledger.db").write_bytes(b"garbage" * 1000)
    broken = run("verify", "--data-dir", str(data_dir))
    assert broken.exit_code == 2 and "ledger_unreadable" in broken.output
    missing = run("verify", "--data-dir", str(tmp_path / "none"))
    assert missing.exit_code == 1 and "no_ledger" in missing.output
    for command in ("verify", "verify-export", "flows", "export", "checkpoint"):
        shown = run(command, "--help")
        assert shown.exit_code == 0 and " / " in shown.output
        assert any("\u3040" <= ch <= "\u9fff" for ch in shown.output)   # Japanese first


async def test_blocking_appends_chain_with_async_ones_and_verify(tmp_path: Path):
    """``append_batch_blocking`` (a transfer's one-trip path, from worker threads) writes
    through a connection of its own: it chains with ``append_batch`` whichever wrote last."""
    ledger = await SqliteLedger.open(tmp_path)
    try:
        meta = FlowBatch("ds", "282014", "n1", "282103", "n2", "研究", "a-1", transfer="t")
        ids = [pa.array([f"R{k}-{i}" for i in range(50)]) for k in range(6)]
        ones = np.ones(50, np.int64)
        await ledger.append_batch(meta, ids[0], ones)
        await asyncio.gather(*(asyncio.to_thread(ledger.append_batch_blocking, meta, ids[k], ones)
                               for k in (1, 2, 3)))          # three threads at once
        await ledger.append_batch(meta, ids[4], ones)        # the async head is stale now
        got = await asyncio.to_thread(ledger.append_batch_blocking, meta, ids[5], ones)
        assert got.last_seq == 6
        report = await ledger.verify()
        assert report.ok and report.entries == 6
        [flow] = await ledger.flows_for("R3-7")
        assert (flow.records, flow.entries) == (1, 1)
    finally:
        await ledger.close()


async def test_a_checkpoint_fill_waits_for_the_transfer_appending(tmp_path: Path):
    """The residents' index is filled off the transfer path: the fill a checkpoint asks for
    starts only once transfer batches stop being appended (``index.appending``); meanwhile the
    batches' appends never wait for one of its chunks."""
    ledger = await SqliteLedger.open(tmp_path)
    try:
        meta = FlowBatch("ds", "282014", "n1", "282103", "n2", "研究", "a-1", transfer="t")
        ones = np.ones(100, np.int64)
        for k in range(3):
            await ledger.append_batch(meta, pa.array([f"S{k}-{i}" for i in range(100)]), ones)
        upto = "SELECT value FROM ledger_state WHERE key = 'indexed_upto'"
        stop = False

        def transfer() -> None:
            k = 0
            while not stop:
                ledger.append_batch_blocking(meta, pa.array([f"T{k}-{i}" for i in range(100)]),
                                             ones)
                k += 1
                time.sleep(0.02)

        streaming = asyncio.create_task(asyncio.to_thread(transfer))
        await asyncio.sleep(0.05)
        filling = asyncio.create_task(ledger.index_subjects(defer=0.4))
        await asyncio.sleep(0.8)
        assert not filling.done()
        assert await ledger.db.fetchall(upto) == []      # not a chunk while batches go out
        stop = True
        await streaming
        added = await asyncio.wait_for(filling, 30)
        assert added >= 300
        assert (await ledger.verify()).ok
    finally:
        await ledger.close()
