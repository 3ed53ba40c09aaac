"""Many small transfers (issue 18, item 2): what the provider now remembers between calls and
commits together never weakens a check or loses a metered transfer.

After a burst of concurrent 1-row transfers (so every cache is warm and commits are shared):
a terminated agreement (by the consumer over gRPC, or by the provider's own CLI, another
process) and a tampered stored document are refused on the very next call; a revoked consumer
within one revocation-list refresh; an agreement past its ``expires`` and a policy past its
validity window as soon as the time has come; a withdrawn dataset at the next call; transfer
and record limits hold exactly under concurrency; a small file kept typed in memory and then
changed in place (same size, same inode) is sent as it is now at the next call. And the
provider killed with SIGKILL in the middle of a burst: after its restart every transfer whose
summary reached the consumer is metered, and every transfer the provider acknowledged complete
is complete. Real processes, mTLS, 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sqlite3
import time
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
import yaml

from connector.contracts.store import AgreementStore, open_contracts_db
from connector.node_state import NodeState
from connector.transfer.batches import decode_batch, read_schema
from mesh.agreements import Agreement, SignedAgreement
from mesh.clock import iso, utcnow
from mesh.files import STABLE_AFTER, atomic_write
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc
from registry.ca.authority import CertificateAuthority

from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness, node_target, wait_for
from .test_transfer import _tamper
from .transfer_fixtures import DATASET_ID, OFFERS, agree, dataset_doc, write_rows

pytestmark = pytest.mark.integration

PROVIDER = "270008"
REFRESH = 1.0
PURPOSE = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "研究"}
LIMITED = [
    {"id": "five-transfers", "policy": {"permissions": [{"action": "use", "constraints": [
        PURPOSE, {"leftOperand": "transferCount", "operator": "lteq", "rightOperand": 5}]}]}},
    {"id": "three-records", "policy": {"permissions": [{"action": "use", "constraints": [
        PURPOSE, {"leftOperand": "recordCount", "operator": "lteq", "rightOperand": 3}]}]}},
]


async def _setup(h: MeshHarness):
    """Registry; 大阪府 serving a 1-row contract dataset (revocation list refreshed every
    second); 加古川市 and 姫路市 enrolled."""
    await setup_catalog_mesh(h, certify=(PROVIDER, "282014", "282103"), publish=False)
    folder = h.root / "feed"
    folder.mkdir()
    write_rows(folder / "population.csv", 1, 1)
    doc = dataset_doc(folder / "population.csv")
    doc["offers"] = [*OFFERS, *LIMITED]
    (folder / "dataset.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(folder / "dataset.yaml"))
    assert rc == 0, err
    return await h.start_connector("osaka", "--crl-refresh", f"{REFRESH}s",
                                   "--heartbeat-interval", "500ms")


@dataclass
class Small:
    """One small transfer as the fetch command does it: the stream, then the final ack."""

    transfer_id: str = ""
    records: int = 0
    summary: peer_pb2.TransferSummary | None = None
    complete: bool = False
    error: grpc.aio.AioRpcError | None = None

    @property
    def details(self) -> str:
        return (self.error.details() or "") if self.error else ""


async def _small(stub: peer_pb2_grpc.PeerServiceStub, agreement: str, ack: bool = True) -> Small:
    got = Small()
    try:
        async for chunk in stub.Transfer(peer_pb2.TransferRequest(agreement_id=agreement), timeout=30):
            kind = chunk.WhichOneof("body")
            if kind == "header":
                got.transfer_id = chunk.header.transfer_id
            elif kind == "batch":
                got.records += chunk.batch.records
            else:
                got.summary = chunk.summary
        if ack and got.summary is not None:
            reply = await stub.AcknowledgeTransfer(peer_pb2.AcknowledgeTransferRequest(
                agreement_id=agreement, transfer_id=got.transfer_id,
                acked_seq=got.summary.batches, chain=got.summary.digest), timeout=30)
            got.complete = reply.complete
    except grpc.aio.AioRpcError as exc:
        got.error = exc
    return got


class Consumer:
    """One reused mTLS channel from a consumer node to the provider."""

    def __init__(self, h: MeshHarness, provider, node: str = "kakogawa") -> None:
        address, options = node_target(provider, PROVIDER)
        self.channel = grpc.aio.secure_channel(address, h.node_credentials(node), options=options)
        self.stub = peer_pb2_grpc.PeerServiceStub(self.channel)

    async def burst(self, agreement: str, n: int, concurrency: int = 10) -> list[Small]:
        results: list[Small] = []
        left = [n]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                results.append(await _small(self.stub, agreement))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results

    async def one(self, agreement: str) -> Small:
        return await _small(self.stub, agreement)

    async def close(self) -> None:
        await self.channel.close()


def _metered(h: MeshHarness, agreement: str) -> dict[str, sqlite3.Row]:
    con = sqlite3.connect(f"file:{h.root / 'osaka' / 'metering.db'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return {r["id"]: r for r in con.execute(
            "SELECT * FROM transfers WHERE agreement_id = ? AND role = 'provider'", (agreement,))}
    finally:
        con.close()


def _all_good(results: list[Small]) -> bool:
    return all(r.error is None and r.records == 1 and r.complete for r in results)


async def _craft(h: MeshHarness, policy: dict, expires=None) -> str:
    """An agreement both nodes signed, stored FINALIZED on the provider as negotiation would."""
    provider = NodeState.load(h.root / "osaka").identity_uri
    consumer = NodeState.load(h.root / "kakogawa").identity_uri
    agreement = Agreement.new(dataset_id=DATASET_ID, offer_id="research-use", policy=policy,
                              provider=provider, consumer=consumer, purpose="研究", expires=expires)
    signed = SignedAgreement(agreement, {}).with_signature(
        "provider", NodeKeyStore(h.root / "osaka" / "tls")).with_signature(
        "consumer", NodeKeyStore(h.root / "kakogawa" / "tls"))
    async with open_contracts_db(h.root / "osaka") as db:
        await AgreementStore(db).save(id=agreement.id, role="provider", state="FINALIZED",
                                      dataset_id=DATASET_ID, offer_id="research-use",
                                      counterparty=consumer, purpose="研究", signed=signed.to_json(),
                                      digest=agreement.digest())
    return agreement.id


async def test_warm_caches_refuse_terminated_tampered_revoked_expired_and_out_of_window(
        harness: MeshHarness):
    h = harness
    provider = await _setup(h)
    by_consumer, by_provider_cli, tampered = await agree(h), await agree(h), await agree(h)
    soon = utcnow() + timedelta(seconds=6)
    expiring = await _craft(h, {"permissions": [{"action": "use", "constraints": [PURPOSE]}]},
                            expires=soon)
    windowed = await _craft(h, {"permissions": [{"action": "use", "constraints": [
        PURPOSE, {"leftOperand": "dateTime", "operator": "lt", "rightOperand": iso(soon)}]}]})
    kakogawa = Consumer(h, provider)
    try:
        for agreement in (by_consumer, by_provider_cli, tampered, expiring, windowed):
            results = await kakogawa.burst(agreement, 20)
            assert _all_good(results), [r.details for r in results if r.error]

        # the consumer terminates over gRPC: the next call is refused
        rc, _, err = await h.cli("connector", "contract", "terminate", "--data-dir",
                                 str(h.root / "kakogawa"), by_consumer, "--reason",
                                 "purpose_fulfilled")
        assert rc == 0, err
        got = await kakogawa.one(by_consumer)
        assert got.error is not None and "agreement_terminated" in got.details
        # the provider's operator terminates from the CLI, another process writing the database
        rc, _, err = await h.cli("connector", "contract", "terminate", "--data-dir",
                                 str(h.root / "osaka"), by_provider_cli, "--reason",
                                 "purpose_fulfilled")
        assert rc == 0, err
        got = await kakogawa.one(by_provider_cli)
        assert got.error is not None and "agreement_terminated" in got.details
        # the provider's stored document edited behind its back: its checked copy is not used
        _tamper(h, "osaka", tampered)
        got = await kakogawa.one(tampered)
        assert got.error is not None and "agreement_signature_invalid" in got.details

        # past the agreement's expires, and past the policy's dateTime bound
        await asyncio.sleep(max(0.0, (soon - utcnow()).total_seconds()) + 0.2)
        got = await kakogawa.one(expiring)
        assert got.error is not None and "agreement_expired" in got.details
        got = await kakogawa.one(windowed)
        assert got.error is not None and "policy_denied" in got.details
        # refused calls are not metered; every served one is, complete
        for agreement in (by_consumer, by_provider_cli, tampered, expiring, windowed):
            rows = _metered(h, agreement)
            assert len(rows) == 20, agreement
            assert all(r["status"] == "complete" and r["records"] == 1 for r in rows.values())

        # a revoked consumer: refused within one refresh of the revocation list
        live = await agree(h)
        assert _all_good(await kakogawa.burst(live, 20))
        rc, _, err = await h.cli("registry", "node", "revoke", "--data-dir", str(h.registry_dir),
                                 "--participant", "282103", "--name", "main")
        assert rc == 0, err

        async def refused() -> bool:
            got = await kakogawa.one(live)
            return got.error is not None and got.error.code() == grpc.StatusCode.PERMISSION_DENIED \
                and "certificate_revoked" in got.details

        await wait_for(refused, timeout=REFRESH + 4, what="the revoked consumer to be refused")
    finally:
        await kakogawa.close()


async def test_limits_hold_exactly_under_concurrent_small_transfers(harness: MeshHarness):
    h = harness
    provider = await _setup(h)
    five, three = await agree(h, "five-transfers"), await agree(h, "three-records")
    other = await agree(h, node="himeji")
    kakogawa, himeji = Consumer(h, provider), Consumer(h, provider, "himeji")
    try:
        results = await kakogawa.burst(five, 30, concurrency=15)
        served = [r for r in results if r.error is None]
        assert len(served) == 5 and _all_good(served)
        assert all("policy_denied" in r.details and "転送回数" in r.details
                   for r in results if r.error is not None)
        assert len(_metered(h, five)) == 5

        results = await kakogawa.burst(three, 12, concurrency=6)
        while len([r for r in results if r.error is None]) < 3:   # a running transfer holds the
            got = await kakogawa.one(three)                       # records it may still send,
            if got.error is not None and "レコード数" in got.details:  # so some were refused
                break                                             # only for the moment
            results.append(got)
        served = [r for r in results if r.error is None]
        assert len(served) == 3 and _all_good(served)
        got = await kakogawa.one(three)
        assert got.error is not None and "policy_denied" in got.details
        assert sum(r["records"] for r in _metered(h, three).values()) == 3

        # another consumer naming kakogawa's agreement is still not a party
        got = await himeji.one(five)
        assert got.error is not None and "not_a_party" in got.details
        assert _all_good(await himeji.burst(other, 10))
        # the dataset withdrawn (its description moved away by the CLI): refused at once
        rc, _, err = await h.cli("connector", "dataset", "withdraw", "--data-dir",
                                 str(h.root / "osaka"), "--id", DATASET_ID)
        assert rc == 0, err
        got = await himeji.one(other)
        assert got.error is not None and "dataset_withdrawn" in got.details
    finally:
        await kakogawa.close()
        await himeji.close()


async def test_every_summary_sent_is_metered_after_sigkill(harness: MeshHarness):
    h = harness
    provider = await _setup(h)
    agreement = await agree(h)
    kakogawa = Consumer(h, provider)
    summaries: list[Small] = []
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            got = await _small(kakogawa.stub, agreement)
            if got.summary is not None:
                summaries.append(got)
            if got.error is not None and not got.summary:
                return  # the provider is gone

    try:
        workers = [asyncio.ensure_future(worker()) for _ in range(16)]
        async def enough() -> bool:
            return len(summaries) >= 150

        await wait_for(enough, timeout=90, what="150 small transfers")
        pid = provider.proc.pid
        pidfd = os.pidfd_open(pid)
        try:
            os.killpg(pid, signal.SIGKILL)   # in the middle of the burst
            assert select.select([pidfd], [], [], 30)[0], "the provider did not die"
        finally:
            os.close(pidfd)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), 30)
    finally:
        await kakogawa.close()
    complete = {r.transfer_id for r in summaries if r.complete}
    assert len(complete) >= 100
    await provider.proc.wait()
    await provider.start()   # the restart recovers what was running
    rows = _metered(h, agreement)
    # the summary leaves only once the counts are committed: all there, one record, one batch
    missing = [r.transfer_id for r in summaries if r.transfer_id not in rows]
    assert not missing, f"{len(missing)} transfers whose summary arrived are not metered"
    for r in summaries:
        row = rows[r.transfer_id]
        assert (row["records"], row["batches"]) == (1, 1), dict(row)
        assert row["status"] in ("sent", "complete")
    # and a final ack was answered only once 'complete' was committed
    assert all(rows[t]["status"] == "complete" for t in complete)
    # nothing is left running after the restart; what was cut off before a batch is released
    assert all(row["status"] != "running" for row in rows.values())
    # the provider serves again, and the next transfers count on top
    kakogawa = Consumer(h, provider)
    try:
        assert _all_good(await kakogawa.burst(agreement, 5))
    finally:
        await kakogawa.close()


async def _rows(stub: peer_pb2_grpc.PeerServiceStub, agreement: str) -> list[dict]:
    """The records of one transfer (and its final ack), decoded."""
    schema, rows, summary, transfer_id = None, [], None, ""
    async for chunk in stub.Transfer(peer_pb2.TransferRequest(agreement_id=agreement), timeout=30):
        kind = chunk.WhichOneof("body")
        if kind == "header":
            schema, transfer_id = read_schema(chunk.header.arrow_schema), chunk.header.transfer_id
        elif kind == "batch":
            rows += decode_batch(chunk.batch.arrow_ipc, schema).to_pylist()
        else:
            summary = chunk.summary
    reply = await stub.AcknowledgeTransfer(peer_pb2.AcknowledgeTransferRequest(
        agreement_id=agreement, transfer_id=transfer_id, acked_seq=summary.batches,
        chain=summary.digest), timeout=30)
    assert reply.complete
    return rows


async def test_a_kept_small_file_changed_in_place_is_sent_as_it_is_now(harness: MeshHarness):
    h = harness
    provider = await _setup(h)
    agreement = await agree(h)
    source = h.root / "feed" / "population.csv"
    kakogawa = Consumer(h, provider)
    try:
        # unchanged for longer than STABLE_AFTER: its typed records are kept and sent again
        await asyncio.sleep(max(0.0, source.stat().st_ctime + STABLE_AFTER + 0.2 - time.time()))
        assert _all_good(await kakogawa.burst(agreement, 10))
        before = await _rows(kakogawa.stub, agreement)
        assert before[0]["人口総数"] == 1001 and before[0]["市区町村名"] == "市町村1"
        # the same number of bytes, other values, written in place (same inode)
        text = source.read_text(encoding="utf-8")
        changed = text.replace("1001", "2002")
        assert len(changed) == len(text)
        with source.open("r+", encoding="utf-8", newline="") as f:
            f.write(changed)
        for _ in range(3):   # at once, and while it is too fresh to be kept
            rows = await _rows(kakogawa.stub, agreement)
            assert rows[0]["人口総数"] == 2002 and rows[0]["市区町村名"] == "市町村1"
        await asyncio.sleep(STABLE_AFTER + 0.2)   # kept again, now with the new values
        assert _all_good(await kakogawa.burst(agreement, 10))
        assert (await _rows(kakogawa.stub, agreement))[0]["人口総数"] == 2002
    finally:
        await kakogawa.close()


async def test_a_replaced_trust_bundle_is_checked_against_at_the_next_call(
        harness: MeshHarness, tmp_path):
    """The guard keeps what it checked of a stored agreement (``VerifiedAgreements``), for that
    bundle only: a bundle replaced behind the provider's back (another mesh's CA only), even
    once the file has settled, is what the next call's signatures are checked against, and so
    is the original put back."""
    h = harness
    provider = await _setup(h)
    agreement = await agree(h)
    bundle = h.root / "osaka" / "tls" / "ca.crt"
    original = bundle.read_bytes()
    rogue = CertificateAuthority.create(tmp_path / "rogue", mesh_id="testmesh", name="偽の運営組織")
    kakogawa = Consumer(h, provider)
    try:
        # settled for longer than any file-state cache would wait before trusting it
        await asyncio.sleep(max(0.0, bundle.stat().st_ctime + STABLE_AFTER + 0.2 - time.time()))
        assert _all_good(await kakogawa.burst(agreement, 10))
        atomic_write(bundle, rogue.ca_pem())
        got = await kakogawa.one(agreement)
        assert got.error is not None and "agreement_signer_untrusted" in got.details
        atomic_write(bundle, original)
        assert _all_good(await kakogawa.burst(agreement, 5))
    finally:
        atomic_write(bundle, original)
        await kakogawa.close()
