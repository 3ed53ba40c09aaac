"""Flow-ledger checkpoints at the registry and the operator's audit of an export (5-2).

Real processes: a registry and a serving connector whose maintenance loop signs its ledger's head
and hands the checkpoints in; the test appends to that connector's ledger, exports it with the
CLI and uploads copies to the registry's audit endpoint. Forged, foreign and conflicting
checkpoints are handed in over gRPC with the nodes' own credentials.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from connector.config import ConnectorConfig
from connector.ledger import FlowBatch, SignedCheckpoint, SqliteLedger
from connector.maintenance import Maintenance
from connector.node_state import NodeState
from connector.registry_client import RegistryClient
from mesh.certs import to_pem
from mesh.clock import iso, utcnow
from mesh.datasets import canonical_json
from mesh.errors import Unavailable
from mesh.ids import node_identity_uri
from mesh.keystore import NodeKeyStore
from mesh.ledger_checkpoints import Checkpoint
from mesh.proto.areamesh.v1 import registry_pb2, registry_pb2_grpc
from registry.ca.authority import CertificateAuthority

from .conftest import MeshHarness, wait_for

pytestmark = pytest.mark.integration

HIMEJI = node_identity_uri("282014", "main")
OSAKA = node_identity_uri("270008", "main")
FAST = ("--heartbeat-interval", "200ms", "--ledger-checkpoint-interval", "200ms")


def batch() -> FlowBatch:
    return FlowBatch("himeji-residents", "282014", "main", "270008", "main", "防災", "agr-1",
                     transfer="tr-1")


async def append(data_dir: Path, subjects: list[str]) -> tuple[int, str]:
    """One ledger entry (one transfer batch) per pair of ``subjects``."""
    ledger = await SqliteLedger.open(data_dir)
    try:
        for i in range(0, len(subjects), 2):
            done = await ledger.append_batch(batch(), subjects[i:i + 2],
                                             [1 + i % 3, 2 + i % 3][:len(subjects[i:i + 2])])
        return done.last_seq, done.head
    finally:
        await ledger.close()


# The operating organisation's auditor reads checkpoints and runs audits (docs/security.md).
AUDITOR: dict[str, str] = {}


async def get(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=AUDITOR) as r:
        return r.status, json.loads(await r.text())


async def post(url: str, body: bytes) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.post(
            url, data=body, headers={"Content-Type": "application/x-ndjson", **AUDITOR}) as r:
        return r.status, json.loads(await r.text())


async def submit(h: MeshHarness, as_node: str, *signed: SignedCheckpoint | bytes
                 ) -> registry_pb2.SubmitLedgerCheckpointsResponse:
    """SubmitLedgerCheckpoints over mTLS with the credentials of connector ``as_node``."""
    channel = h.registry_channel(h.node_credentials(as_node))
    try:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        return await stub.SubmitLedgerCheckpoints(registry_pb2.SubmitLedgerCheckpointsRequest(
            signed_checkpoint_json=[s if isinstance(s, bytes) else canonical_json(s.to_json())
                                    for s in signed]), timeout=10)
    finally:
        await channel.close()


def signed_by(keystore: NodeKeyStore, node: str, seq: int, head: str) -> SignedCheckpoint:
    """A checkpoint naming ``node``, signed with whatever key ``keystore`` holds."""
    cp = Checkpoint(node, seq, head, iso(utcnow()))
    return SignedCheckpoint(cp, to_pem(keystore.certificate()).decode(),
                            base64.b64encode(keystore.sign(cp.canonical())).decode())


def foreign_keystore(tmp: Path) -> NodeKeyStore:
    """Himeji's node name in a certificate of another CA (not the mesh's)."""
    ca = CertificateAuthority.create(tmp / "foreign-ca", mesh_id="other", name="偽の運営組織")
    ks = NodeKeyStore(tmp / "foreign-node")
    csr = ca.check_csr(ks.new_csr(node_name="main"), participant_id="282014", node_name="main")
    ks.install(to_pem(ca.issue_node_certificate(csr, participant_id="282014", node_name="main",
                                                lifetime=timedelta(hours=1))), ca.ca_pem())
    return ks


async def checkpoints(h: MeshHarness, node: str) -> list[dict]:
    status, body = await get(f"{h.http_url}/api/v1/ledger/checkpoints?node={node}")
    assert status == 200, body
    return body["checkpoints"]


async def test_checkpoints_reach_the_registry_and_exports_are_audited(harness: MeshHarness,
                                                                      tmp_path: Path):
    h = harness
    await h.start_registry()
    AUDITOR.clear()
    AUDITOR.update(await h.operator_headers("auditor"))
    himeji = await h.enrol("himeji", "282014")
    osaka = await h.enrol("osaka", "270008")
    await h.start_connector("himeji", *FAST)

    # The serving connector signs its ledger's head and the registry comes to hold it.
    seq, head = await append(himeji, [f"R{i:03d}" for i in range(24)])

    async def held_at_head():
        return [c for c in await checkpoints(h, HIMEJI)
                if c["seq"] == seq and c["status"] == "accepted"]

    [cp] = await wait_for(held_at_head, timeout=15, what="the registry to hold the checkpoint")
    assert cp["head"] == head and cp["node"] == HIMEJI and cp["conflict"] is None
    assert cp["signed"]["checkpoint"]["head"] == head and "BEGIN CERTIFICATE" in \
        cp["signed"]["certificate_pem"]
    local = await SqliteLedger.open(himeji)
    assert [c for c in await local.checkpoints(unpublished=True) if c.checkpoint.seq == seq] == []
    await local.close()

    # The operator audits the file the connector's CLI exported.
    export = tmp_path / "himeji-ledger.ndjson"
    rc, _, err = await h.cli("connector", "ledger", "export", "--data-dir", str(himeji),
                               "--out", str(export))
    assert rc == 0, err
    audit = f"{h.http_url}/api/v1/ledger/audit?node={HIMEJI}"
    status, report = await post(audit, export.read_bytes())
    assert status == 200, report
    assert (report["ok"], report["entries"], report["first_bad_seq"], report["reason"]) == (
        True, seq, None, None)
    assert report["checkpoint"]["seq"] == seq and report["forks"] == 0
    assert report["message"] and report["message_ja"]

    lines = export.read_bytes().splitlines(keepends=True)
    edited = json.loads(lines[4])
    edited["records"] += 40
    status, report = await post(audit, b"".join([*lines[:4], canonical_json(edited) + b"\n",
                                                 *lines[5:]]))
    assert status == 200
    assert (report["ok"], report["reason"], report["first_bad_seq"]) == (False, "modified", 5)
    assert "5" in report["message"] and report["message_ja"]
    edited = json.loads(lines[5])                  # a resident's row inside an entry
    edited["subjects"][1][0] = "R999"
    status, report = await post(audit, b"".join([*lines[:5], canonical_json(edited) + b"\n",
                                                 *lines[6:]]))
    assert (status, report["ok"], report["reason"], report["first_bad_seq"]) == (
        200, False, "modified", 6)
    assert "resident" in report["message"]
    status, report = await post(audit, b"".join(lines[:7]))
    assert (status, report["ok"], report["reason"], report["first_bad_seq"]) == (
        200, False, "truncated", 8)

    # Bad requests get clear errors; nothing is audited against nothing.
    status, body = await post(audit, b"{not json}\n")
    assert (status, body["error"]["code"], body["error"]["details"]["line"]) == (
        400, "ledger_export_malformed", 1)
    status, body = await post(audit, b'{"a": "' + b"x" * (1 << 20) + b'"}\n')
    assert (status, body["error"]["code"]) == (400, "ledger_export_malformed")
    status, body = await post(f"{h.http_url}/api/v1/ledger/audit?node={OSAKA}", export.read_bytes())
    assert (status, body["error"]["code"]) == (404, "no_checkpoint")
    status, body = await post(f"{h.http_url}/api/v1/ledger/audit?node=himeji", b"")
    assert (status, body["error"]["code"]) == (400, "invalid_node")
    assert await checkpoints(h, OSAKA) == []
    assert await too_large(h) == (413, "payload_too_large")

    # Only the node itself, signing with its mesh certificate, can hand in its checkpoints.
    genuine = SignedCheckpoint.from_json(cp["signed"])
    osaka_keys = NodeKeyStore(osaka / "tls")
    next_head = "sha256:" + "1" * 64
    reply = await submit(h, "osaka", genuine, signed_by(osaka_keys, HIMEJI, seq + 1, next_head))
    assert (reply.accepted, reply.duplicates) == (0, 0)
    assert [(r.index, r.code) for r in reply.rejected] == [(0, "checkpoint_not_own"),
                                                            (1, "checkpoint_not_own")]
    reply = await submit(h, "himeji", signed_by(osaka_keys, HIMEJI, seq + 1, next_head),
                         signed_by(foreign_keystore(tmp_path), HIMEJI, seq + 1, next_head),
                         b"{not json", genuine)
    assert [(r.index, r.code) for r in reply.rejected] == [
        (0, "checkpoint_signer_mismatch"), (1, "checkpoint_signer_untrusted"),
        (2, "malformed_checkpoint")]
    assert (reply.accepted, reply.duplicates) == (0, 1)          # the genuine one, again
    assert [c["seq"] for c in await checkpoints(h, HIMEJI) if c["seq"] > seq] == []

    # A checkpoint that contradicts the ones held is a fork: refused, kept, reported.
    himeji_keys = NodeKeyStore(himeji / "tls")
    rewritten = signed_by(himeji_keys, HIMEJI, seq, "sha256:" + "ab" * 32)
    cut_back = signed_by(himeji_keys, HIMEJI, 3, "sha256:" + "cd" * 32)
    reply = await submit(h, "himeji", rewritten, cut_back, rewritten)
    assert [(r.index, r.seq, r.code) for r in reply.rejected] == [
        (0, seq, "checkpoint_conflict"), (1, 3, "checkpoint_conflict"),
        (2, seq, "checkpoint_conflict")]
    assert "rewritten" in reply.rejected[0].message and "cut back" in reply.rejected[1].message
    forks = [c for c in await checkpoints(h, HIMEJI) if c["status"] == "fork"]
    assert sorted((c["seq"], c["head"]) for c in forks) == [(3, "sha256:" + "cd" * 32),
                                                            (seq, "sha256:" + "ab" * 32)]
    assert all(c["conflict"] for c in forks)
    [held] = [c for c in await checkpoints(h, HIMEJI) if c["seq"] == seq and
              c["status"] == "accepted"]
    assert held["head"] == head                                   # the reference is unchanged
    status, report = await post(audit, export.read_bytes())
    assert (status, report["ok"], report["forks"]) == (200, True, 2)
    assert f"ledger checkpoint of {HIMEJI} at seq 3 recorded as a fork" in (
        h.root / "logs" / "registry.log").read_text()

    # The connector hands in what the registry lacks; the registry being away defers it.
    await append(osaka, ["R900", "R901", "R902"])
    state = NodeState.load(osaka)
    maintenance = Maintenance(ConnectorConfig(data_dir=osaka), osaka_keys,
                              RegistryClient(state, osaka_keys, await closed_port(),
                                             timeout=timedelta(seconds=3)), None, None, "")
    with pytest.raises(Unavailable) as down:
        await maintenance.checkpoint_ledger_once()
    assert "SubmitLedgerCheckpoints" in str(down.value)
    await maintenance.registry.close()
    ledger = await SqliteLedger.open(osaka)
    assert [c.checkpoint.seq for c in await ledger.checkpoints(unpublished=True)] == [2]
    await ledger.close()
    maintenance.registry = RegistryClient(state, osaka_keys, h.grpc_address)
    assert await maintenance.checkpoint_ledger_once() == 1
    assert await maintenance.checkpoint_ledger_once() == 0        # nothing new, nothing pending
    await maintenance.registry.close()
    assert [(c["seq"], c["status"]) for c in await checkpoints(h, OSAKA)] == [(2, "accepted")]


async def too_large(h: MeshHarness) -> tuple[int, str]:
    """Announce a body over the limit: refused before any of it is read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", h.registry.ready["http_port"])
    writer.write(f"POST /api/v1/ledger/audit?node={HIMEJI} HTTP/1.1\r\nHost: registry\r\n"
                 f"Authorization: {AUDITOR['Authorization']}\r\n"
                 f"Content-Type: application/x-ndjson\r\nContent-Length: {(1 << 30) + 1}\r\n\r\n"
                 "{}\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    length = int(next(line.split(":")[1] for line in head.split("\r\n")
                      if line.lower().startswith("content-length:")))
    body = json.loads(await reader.readexactly(length))
    writer.close()
    return int(head.split()[1]), body["error"]["code"]


async def closed_port() -> str:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return f"127.0.0.1:{port}"
