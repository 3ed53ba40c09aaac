"""Personal data through the mesh: only consented residents' records leave, every one is in the
flow ledger, a withdrawal reaches the next batch, and the dataset rules are enforced."""

from __future__ import annotations

import asyncio
import csv
import json
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from connector.consent.filter import ConsentFilter
from connector.consent.gate import ConsentGate
from connector.consent.store import ConsentStore
from connector.ledger.chain import FlowBatch, SqliteLedger
from connector.metering.store import UsageStore, open_metering_db
from connector.transfer.provider import TransferProvider
from mesh.datasets import parse_description
from mesh.errors import InvalidRequest
from mesh.proto.areamesh.v1 import peer_pb2

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness
from .transfer_fixtures import fetch_cli, ndjson_rows

CONSENT = {"leftOperand": "consent", "operator": "eq", "rightOperand": True}
PURPOSE = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "研究"}


def personal_doc(source: Path) -> dict:
    return {
        "id": "himeji-health-checkups", "publisher": "282014",
        "title": {"ja": "姫路市 健診結果（本人同意に基づく提供）"}, "description": {"ja": "テスト"},
        "themes": ["健康"], "classification": "personal", "subject_field": "住民ID",
        "schema": {"fields": [{"name": "住民ID", "type": "string"}, {"name": "受診日", "type": "string"},
                              {"name": "BMI", "type": "number"}]},
        "spatial": ["282014"], "license": "個別契約", "access": "contract",
        "offers": [{"id": "research-with-consent", "policy": {"permissions": [
            {"action": "use", "constraints": [PURPOSE, CONSENT]}]}}],
        "source": {"adapter": "csv", "path": source.name, "types": {"住民ID": "string"}},
    }


def write_checkups(path: Path, residents: int = 100) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["住民ID", "受診日", "BMI"])
        for i in range(1, residents + 1):
            for visit in ("2026-04-01", "2026-10-01"):
                w.writerow([f"R{i:04d}", visit, 20 + i % 7])


def test_personal_dataset_rules_are_checked_at_publish_time(tmp_path):
    doc = personal_doc(tmp_path / "x.csv")
    doc.pop("source")
    assert parse_description(doc)["subject_field"] == "住民ID"
    no_subject = {k: v for k, v in doc.items() if k != "subject_field"}
    no_consent = dict(doc, offers=[{"id": "open", "policy": {"permissions": [
        {"action": "use", "constraints": [PURPOSE]}]}}])
    wrong_column = dict(doc, subject_field="マイナンバー")
    for bad, field in ((no_subject, "subject_field"), (no_consent, "offers[0].policy.permissions[0]"),
                       (wrong_column, "subject_field")):
        with pytest.raises(InvalidRequest) as exc:
            parse_description(bad)
        assert field in [e["field"] for e in exc.value.details["errors"]]


@pytest.mark.integration
async def test_only_consented_residents_leave_and_the_ledger_records_them(harness: MeshHarness):
    h = harness
    await setup_catalog_mesh(h, certify=("270008", "282014", "282103"), publish=False)
    himeji = h.root / "himeji"
    source = h.root / "checkups.csv"
    write_checkups(source)
    desc = h.root / "checkups.yaml"
    desc.write_text(yaml.safe_dump(personal_doc(source), allow_unicode=True), encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(himeji), "--file", str(desc))
    assert rc == 0, err
    for i in range(1, 11):  # ten residents consent to 加古川市 for 研究
        rc, _, err = await h.cli("connector", "consent", "grant", "--data-dir", str(himeji), "--resident",
                                 f"R{i:04d}", "--participant", "282103", "--purpose", "研究",
                                 "--dataset", "himeji-health-checkups")
        assert rc == 0, err
    # consent for a resident who is not in the personal data is refused
    rc, _, err = await h.cli("connector", "consent", "grant", "--data-dir", str(himeji), "--resident",
                             "R9999", "--participant", "282103", "--purpose", "研究",
                             "--dataset", "himeji-health-checkups")
    assert rc != 0 and "unknown_resident" in err
    await h.start_connector("himeji")
    rc, out, err = await h.cli("connector", "contract", "request", "--data-dir", str(h.root / "kakogawa"),
                               "--dataset", "himeji-health-checkups", "--offer", "research-with-consent",
                               "--purpose", "研究")
    assert rc == 0 and "FINALIZED" in out, err
    agreement = out.split("agreement ")[1].split()[0]

    rc, _, err = await fetch_cli(h, agreement, h.root / "got" / "a.ndjson")
    assert rc == 0, err
    got = ndjson_rows(h.root / "got" / "a.ndjson")
    assert {r["住民ID"] for r in got} == {f"R{i:04d}" for i in range(1, 11)} and len(got) == 20

    rc, out, err = await h.cli("connector", "ledger", "flows", "--data-dir", str(himeji), "--subject",
                               "R0003", "--json")
    assert rc == 0, err
    flows = json.loads(out)
    text = json.dumps(flows, ensure_ascii=False)
    assert agreement in text and "282103" in text and "研究" in text
    rc, out, err = await h.cli("connector", "ledger", "flows", "--data-dir", str(himeji), "--subject",
                               "R0050", "--json")
    assert rc == 0 and agreement not in out  # never sent, never recorded

    # R0003 withdraws: the next fetch leaves them out; the ledger still verifies
    rc, _, err = await h.cli("connector", "consent", "withdraw", "--data-dir", str(himeji), "--resident",
                             "R0003", "--participant", "282103", "--reason", "本人の申出")
    assert rc == 0, err
    rc, _, err = await fetch_cli(h, agreement, h.root / "got" / "b.ndjson")
    assert rc == 0, err
    ids = {r["住民ID"] for r in ndjson_rows(h.root / "got" / "b.ndjson")}
    assert "R0003" not in ids and len(ids) == 9
    rc, out, err = await h.cli("connector", "ledger", "verify", "--data-dir", str(himeji))
    assert rc == 0, out + err
    # personal data is never passed through as a file
    rc, _, err = await fetch_cli(h, agreement, h.root / "got" / "raw.csv", "--format", "raw")
    assert rc != 0 and "passthrough_unavailable" in err


class _ListSource:
    def __init__(self, batches: list[pa.RecordBatch]) -> None:
        self.batches = batches

    async def read(self, *, batch_rows: int = 10_000):
        for b in self.batches:
            yield b


async def test_a_withdrawal_takes_effect_on_the_next_batch(tmp_path):
    consents = await ConsentStore.open(tmp_path)
    ledger = await SqliteLedger.open(tmp_path)
    mdb = await open_metering_db(tmp_path).open()
    try:
        ids = {}
        for r in ("R1", "R2", "R3"):
            ids[r] = await consents.grant(r, participant="282103", purpose="研究", dataset_id="ds-1")
        usage = UsageStore(mdb)
        own = "urn:areamesh:org:282014:node:main"
        provider = TransferProvider(None, usage, own, consents=consents, ledger=ledger)  # type: ignore[arg-type]
        transfer_id = str(uuid.uuid4())
        await usage.start(id=transfer_id, role="provider", agreement_id="a-1", dataset_id="ds-1",
                          provider="urn:areamesh:org:282014:node:main",
                          consumer="urn:areamesh:org:282103:node:main", version="v1", incremental=False)
        flow = FlowBatch(dataset="ds-1", from_participant="282014", from_node=own,
                         to_participant="282103", to_node="urn:areamesh:org:282103:node:main",
                         purpose="研究", agreement="a-1", transfer=transfer_id)
        gate = ConsentGate(consents, ledger, ConsentFilter("id"), flow, "282103")
        batch = pa.record_batch({"id": ["R1", "R2", "R3", "R4"], "v": [1, 2, 3, 4]})
        stream = provider._batches(_ListSource([batch, batch, batch]), transfer_id,
                                   peer_pb2.TransferRequest(agreement_id="a-1"), 10, None, None, gate)
        import pyarrow.ipc as ipc

        def ids_of(chunk) -> list[str]:
            data = pa.py_buffer(chunk.batch.arrow_ipc)
            return ipc.read_record_batch(data, batch.schema).column(0).to_pylist()

        assert ids_of(await anext(stream)) == ["R1", "R2", "R3"]      # R4 never consented
        await consents.withdraw(ids["R2"], reason="本人の申出")
        assert ids_of(await anext(stream)) == ["R1", "R3"]            # the very next batch
        await consents.withdraw(resident="R1", participant="282103")
        assert ids_of(await anext(stream)) == ["R3"]
        summary = await anext(stream)
        assert summary.summary.records == 6
        [r2] = await ledger.flows_for("R2")  # sent once (first batch), recorded once
        assert (r2.to_participant, r2.records, r2.entries) == ("282103", 1, 1)
        [r3] = await ledger.flows_for("R3")
        assert (r3.records, r3.entries) == (3, 3)
    finally:
        await consents.close()
        await ledger.close()
        await mdb.close()


@pytest.mark.parametrize("cap", [None, 5])
async def test_a_batch_whose_ledger_entry_fails_is_not_sent(tmp_path, monkeypatch, cap):
    """The ledger says where data went before it goes: the batch is encoded while its entry is
    written, but an entry that cannot be stored stops the stream before the batch is sent.
    Uncapped, a batch is filtered, encoded and recorded in one worker-thread trip
    (``ConsentGate.prepare``, the entry through ``append_batch_blocking``); capped, step by step
    (``append_batch``)."""
    consents = await ConsentStore.open(tmp_path)
    ledger = await SqliteLedger.open(tmp_path)
    mdb = await open_metering_db(tmp_path).open()
    try:
        await consents.grant("R1", participant="282103", purpose="研究", dataset_id="ds-1")
        usage = UsageStore(mdb)
        own = "urn:areamesh:org:282014:node:main"
        provider = TransferProvider(None, usage, own, consents=consents, ledger=ledger)  # type: ignore[arg-type]
        transfer_id = str(uuid.uuid4())
        await usage.start(id=transfer_id, role="provider", agreement_id="a-1", dataset_id="ds-1",
                          provider=own, consumer="urn:areamesh:org:282103:node:main",
                          version="v1", incremental=False)
        flow = FlowBatch(dataset="ds-1", from_participant="282014", from_node=own,
                         to_participant="282103", to_node="urn:areamesh:org:282103:node:main",
                         purpose="研究", agreement="a-1", transfer=transfer_id)
        gate = ConsentGate(consents, ledger, ConsentFilter("id"), flow, "282103")
        batch = pa.record_batch({"id": ["R1", "R2"], "v": [1, 2]})
        sent = []

        async def full_disk(*args, **kwargs):
            await asyncio.sleep(0.05)          # longer than encoding the batch
            raise OSError(28, "No space left on device")

        def full_disk_blocking(*args, **kwargs):
            time.sleep(0.05)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(ledger, "append_batch", full_disk)
        monkeypatch.setattr(ledger, "append_batch_blocking", full_disk_blocking)
        with pytest.raises(OSError, match="No space"):
            async for chunk in provider._batches(_ListSource([batch]), transfer_id,
                                                 peer_pb2.TransferRequest(agreement_id="a-1"),
                                                 10, cap, None, gate):
                sent.append(chunk)
        assert sent == []
        assert (await usage.get(transfer_id)).status == "interrupted"
    finally:
        await consents.close()
        await ledger.close()
        await mdb.close()
