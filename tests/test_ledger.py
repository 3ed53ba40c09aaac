"""The flow ledger: hash chain, tamper detection with reasons, signed checkpoints, export, CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.ledger import (
    GENESIS,
    BatchHasher,
    Flow,
    FlowBatch,
    LedgerUnreadable,
    SignedCheckpoint,
    SqliteLedger,
    entry_hash,
    read_ndjson,
    verify_checkpoint,
    verify_export,
)
from connector.ledger.cli import ledger as ledger_cli
from mesh.certs import to_pem
from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.ids import node_identity_uri
from mesh.keystore import NodeKeyStore
from registry.ca.authority import CertificateAuthority

TRIGGERS = ("entries_no_update", "entries_no_delete", "batches_no_update", "batches_no_delete",
            "checkpoints_no_delete", "checkpoints_publish_only")


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


async def test_append_chains_entries_and_verifies(data_dir: Path):
    lg = await SqliteLedger.open(data_dir)
    assert await lg.head() == (0, GENESIS)
    first = await lg.append_many(flows(["R1", "R2"]))
    second = await lg.append_many(flows(["R3"]))
    assert (first.first_seq, first.last_seq, second.first_seq, second.last_seq) == (1, 2, 3, 3)
    rows = [e async for e in lg.entries()]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == GENESIS and rows[1]["prev_hash"] == rows[0]["hash"]
    body = {k: v for k, v in rows[2].items() if k not in ("seq", "hash")}
    assert rows[2]["hash"] == "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()
    assert rows[2]["hash"] == entry_hash(rows[2]) == second.head
    report = await lg.verify()
    assert report.ok and report.entries == 3 and report.head == second.head
    for bad in ([Flow("R9", "ds", "282014", "main", "270008", "main", "", "a", 1)],
                [Flow("", "ds", "282014", "main", "270008", "main", "防災", "a", 1)],
                [Flow("R9", "ds", "282014", "main", "270008", "main", "防災", "a", 0)]):
        with pytest.raises(InvalidRequest) as exc:
            await lg.append_many(bad)
        assert exc.value.code == "invalid_ledger_entry"
    assert (await lg.head())[0] == 3
    await lg.close()


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
    assert rows_a == rows_b and len(rows_a) == 3
    assert (await a.verify()).ok and (await b.verify()).ok
    with pytest.raises(InvalidRequest):
        await a.append_batch(meta, ["R4"], [1, 2])
    await a.close()
    await b.close()


async def test_triggers_refuse_update_and_delete(data_dir: Path):
    lg = await filled(data_dir, 1, 2)
    for sql in ("UPDATE entries SET records = 9 WHERE seq = 1", "DELETE FROM entries WHERE seq = 2"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            await lg.db.conn.execute(sql)
    await lg.close()


@pytest.mark.parametrize("statements,reason,seq", [
    (["UPDATE batches SET purpose = '観光' WHERE id = 2"], "modified", 6),
    (["UPDATE entries SET records = records + 1 WHERE seq = 12"], "modified", 12),
    (["UPDATE entries SET subject = 'R0999' WHERE seq = 13"], "modified", 13),
    (["UPDATE batches SET to_participant = '282103' WHERE id = 1"], "modified", 1),
    (["UPDATE entries SET batch = 3 WHERE seq = 4"], "modified", 4),
    (["DELETE FROM batches WHERE id = 4"], "modified", 16),
    (["DELETE FROM entries WHERE seq = 9"], "deleted", 9),
    (["DELETE FROM entries WHERE seq IN (1, 2)"], "deleted", 1),
    (["UPDATE entries SET seq = -1 WHERE seq = 5", "UPDATE entries SET seq = 5 WHERE seq = 6",
      "UPDATE entries SET seq = 6 WHERE seq = -1"], "reordered", 5),
    (["UPDATE entries SET seq = 100 WHERE seq = 20"], "modified", 100),
    (["DELETE FROM entries WHERE seq = 10", "UPDATE entries SET seq = seq - 1 WHERE seq > 10"],
     "rewritten", 9),
])
async def test_tampering_is_detected_with_its_reason(data_dir: Path, statements, reason, seq):
    await (await filled(data_dir)).close()
    report = await reopen_verify(data_dir, *statements)
    assert not report.ok
    assert (report.reason, report.first_bad_seq) == (reason, seq), report.message
    assert report.message and report.message_ja


async def test_modified_and_rehashed_entry_breaks_the_next_link(data_dir: Path):
    lg = await filled(data_dir)
    row = [e async for e in lg.entries()][7]
    await lg.close()
    forged = {**row, "purpose": "マーケティング"}
    report = await reopen_verify(
        data_dir, "INSERT INTO batches SELECT 99, time, dataset, from_participant, from_node, "
        "to_participant, to_node, 'マーケティング', agreement, service, component, transfer "
        "FROM batches WHERE id = 2", f"UPDATE entries SET batch = 99, hash = "
        f"'{entry_hash(forged)}' WHERE seq = 8")
    assert (report.ok, report.reason, report.first_bad_seq) == (False, "rewritten", 8)


async def test_checkpoint_catches_deleted_tail_and_full_rewrite(data_dir: Path, ca):
    ks = keystore_at(ca, data_dir / "tls")
    lg = await filled(data_dir)
    cp = await lg.checkpoint(ks)
    assert (cp.checkpoint.seq, cp.checkpoint.head) == await lg.head()
    assert cp.checkpoint.node == node_identity_uri("282014", "main")
    assert await lg.checkpoint_if_changed(ks) is None
    await lg.append_many(flows(["R100"]))
    assert (await lg.checkpoint_if_changed(ks)).checkpoint.seq == 21
    assert [c.checkpoint.seq for c in await lg.checkpoints(unpublished=True)] == [20, 21]
    await lg.mark_published(cp)                     # the registry accepted the first one
    assert [c.checkpoint.seq for c in await lg.checkpoints(unpublished=True)] == [21]
    assert len(await lg.checkpoints()) == 2
    assert (await lg.verify(roots=[ca.certificate])).ok
    await lg.close()
    # The tail after the last checkpoint is gone: truncated, counted from the checkpoint.
    report = await reopen_verify(data_dir, "DELETE FROM entries WHERE seq > 18",
                                 roots=[ca.certificate])
    assert (report.ok, report.reason, report.first_bad_seq) == (False, "truncated", 19)
    assert report.checkpoints == 2 and "21" in report.message


async def test_checkpoint_catches_a_consistently_rehashed_chain(data_dir: Path, ca):
    ks = keystore_at(ca, data_dir / "tls")
    lg = await filled(data_dir)
    await lg.checkpoint(ks)
    rows = [e async for e in lg.entries()]
    await lg.close()
    prev, statements = GENESIS, []
    for row in rows:  # rewrite entry 3 and re-hash everything after it, links included
        row = {**row, "prev_hash": prev, "records": 99 if row["seq"] == 3 else row["records"]}
        prev = entry_hash(row)
        statements.append(f"UPDATE entries SET records = {row['records']}, prev_hash = "
                          f"'{row['prev_hash']}', hash = '{prev}' WHERE seq = {row['seq']}")
    report = await reopen_verify(data_dir, *statements)
    assert (report.ok, report.reason, report.first_bad_seq) == (False, "rewritten", 20)


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
    await (await filled(data_dir, 40, 50)).close()
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
    await lg.append_many(flows(["R1", "R3"]))
    found = await lg.flows_for("R1")
    assert [(f.to_participant, f.purpose, f.agreement, f.service, f.entries) for f in found] == [
        ("270008", "防災", "agr-1", None, 2), ("282103", "福祉", "agr-2", "mimamori", 1)]
    assert found[0].records == 2 and found[0].first_at <= found[0].last_at
    assert await lg.flows_for("nobody") == []
    assert [e["seq"] for e in await lg.entries_for("R1")] == [1, 3, 4]
    await lg.append_many(flows(["R1"]))             # indexed on the next query, not on append
    assert [e["seq"] for e in await lg.entries_for("R1")] == [1, 3, 4, 6]
    assert await lg.index_subjects() == 0
    assert (await lg.verify()).ok
    await lg.close()
    report = await reopen_verify(data_dir, "DELETE FROM subject_index WHERE seq = 3")
    assert (report.ok, report.reason) == (False, "index_inconsistent")


async def test_export_and_audit_against_a_registry_checkpoint(data_dir: Path, ca, tmp_path: Path):
    ks = keystore_at(ca, data_dir / "tls")
    lg = await filled(data_dir)
    cp = await lg.checkpoint(ks)
    out = tmp_path / "ledger.ndjson"
    assert await lg.export(out) == 20
    await lg.close()
    assert [e["seq"] async for e in read_ndjson(out)] == list(range(1, 21))
    assert (await verify_export(out, cp, roots=[ca.certificate])).ok
    lines = out.read_bytes().splitlines(keepends=True)

    async def audit(new_lines: list[bytes]):
        copy = tmp_path / "copy.ndjson"
        copy.write_bytes(b"".join(new_lines))
        return await verify_export(copy, cp, roots=[ca.certificate])

    edited = json.loads(lines[4])
    edited["records"] = 50
    cases = [([*lines[:4], canonical_json(edited) + b"\n", *lines[5:]], "modified", 5),
             ([*lines[:10], *lines[11:]], "deleted", 11),
             ([*lines[:6], lines[7], lines[6], *lines[8:]], "reordered", 8),
             (lines[:15], "truncated", 16)]
    for new_lines, reason, seq in cases:
        report = await audit(new_lines)
        assert (report.ok, report.reason, report.first_bad_seq) == (False, reason, seq)
    with pytest.raises(InvalidRequest) as exc:
        await audit([*lines[:3], lines[3][:40]])
    assert exc.value.code == "ledger_export_malformed" and exc.value.details["line"] == 4
    with pytest.raises(InvalidRequest):
        await audit([*lines[:3], b"{not json}\n"])


def test_cli_verify_flows_export_checkpoint(data_dir: Path, ca, tmp_path: Path):
    keystore_at(ca, data_dir / "tls")

    async def fill() -> None:
        await (await filled(data_dir)).close()

    asyncio.run(fill())
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(ledger_cli, [*args], catch_exceptions=False)

    ok = run("verify", "--data-dir", str(data_dir))
    assert ok.exit_code == 0 and "ledger intact: 20 entries" in ok.output
    cp = run("checkpoint", "--data-dir", str(data_dir))
    assert cp.exit_code == 0 and json.loads(cp.output)["checkpoint"]["seq"] == 20
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
               "--json")
    assert held.exit_code == 0 and json.loads(held.output)["checkpoints"] == 2
    (tmp_path / "bad.json").write_text("{not json")
    unreadable_cp = run("verify", "--data-dir", str(data_dir), "--checkpoint",
                        str(tmp_path / "bad.json"))
    assert unreadable_cp.exit_code == 2 and "malformed_checkpoint" in unreadable_cp.output
    tamper(data_dir / "ledger.db", "UPDATE entries SET subject = 'R9999' WHERE seq = 3")
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
