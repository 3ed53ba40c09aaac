"""Contract negotiation between two connector processes, notarised at the registry."""

from __future__ import annotations

import json

import grpc
import pytest
import yaml

from mesh.agreements import SignedAgreement
from mesh.datasets import canonical_json
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

from .catalog_fixtures import dataset, setup_catalog_mesh
from .conftest import MeshHarness, node_target

pytestmark = pytest.mark.integration


@pytest.fixture
async def mesh(harness: MeshHarness):
    await setup_catalog_mesh(harness, certify=("270008", "282014", "282103"), publish=False)
    path = harness.root / "medical.yaml"
    path.write_text(yaml.safe_dump(dataset("osaka-medical"), allow_unicode=True), encoding="utf-8")
    rc, _, err = await harness.cli("connector", "dataset", "add", "--data-dir",
                                   str(harness.root / "osaka"), "--file", str(path))
    assert rc == 0, err
    provider = await harness.start_connector("osaka")
    return harness, provider


async def request(h: MeshHarness, purpose: str, offer: str = "research-use", node="kakogawa"):
    return await h.cli("connector", "contract", "request", "--data-dir", str(h.root / node),
                       "--dataset", "osaka-medical", "--offer", offer, "--purpose", purpose)


async def rows(h: MeshHarness, node: str) -> list[list[str]]:
    rc, out, err = await h.cli("connector", "contract", "list", "--data-dir", str(h.root / node))
    assert rc == 0, err
    header, *lines = out.strip().splitlines()
    assert header.split("\t")[:3] == ["ID/id", "役割/role", "状態/state"]
    return [line.split("\t") for line in lines]


async def show(h: MeshHarness, node: str, agreement_id: str) -> dict:
    rc, out, err = await h.cli("connector", "contract", "show", "--data-dir", str(h.root / node),
                               agreement_id)
    assert rc == 0, err
    return json.loads(out)


async def test_allowed_request_is_signed_by_both_and_notarised(mesh):
    h, provider = mesh
    rc, out, err = await request(h, "研究")
    assert rc == 0 and "FINALIZED" in out, err
    [consumer_row] = await rows(h, "kakogawa")
    agreement_id = consumer_row[0]
    assert consumer_row[1:4] == ["consumer", "FINALIZED", "osaka-medical"]
    [provider_row] = await rows(h, "osaka")
    assert provider_row[:3] == [agreement_id, "provider", "FINALIZED"]
    assert provider_row[5] == "urn:areamesh:org:282103:node:main"
    detail = await show(h, "kakogawa", agreement_id)
    signed = SignedAgreement.from_json(detail["signed"])
    assert set(signed.signatures) == {"provider", "consumer"}
    assert detail["digest"] == signed.agreement.digest()
    from registry.store import RegistryStore, open_registry_db
    async with open_registry_db(h.registry_dir) as db:
        note = await RegistryStore(db).notarisation(detail["digest"])
    assert note and note["consumer"] == "urn:areamesh:org:282103:node:main"
    # states survive a restart of the provider
    await provider.stop()
    assert (await rows(h, "osaka"))[0][2] == "FINALIZED"


async def test_refusal_terminates_with_the_constraint_that_failed(mesh):
    h, _ = mesh
    rc, _out, err = await request(h, "観光")
    assert rc == 1
    assert "TERMINATED" in err and "purpose" in err and "研究" in err
    [row] = await rows(h, "kakogawa")
    assert row[2] == "TERMINATED"
    detail = await show(h, "kakogawa", row[0])
    failure = detail["reason"]["decision"]["failures"][0]
    assert failure["leftOperand"] == "purpose" and failure["actual"] == "観光"
    assert detail["reason"]["counterparty"] == "urn:areamesh:org:282103:node:main"
    assert (await rows(h, "osaka"))[0][2] == "TERMINATED"


async def test_unknown_offer_and_dataset_are_clear_errors(mesh):
    h, _ = mesh
    rc, _, err = await request(h, "研究", offer="no-such-offer")
    assert rc != 0 and "no-such-offer" in err
    rc, _, err = await h.cli("connector", "contract", "request", "--data-dir",
                             str(h.root / "kakogawa"), "--dataset", "nothing", "--offer", "x",
                             "--purpose", "研究")
    assert rc != 0 and "nothing" in err


async def _negotiate_direct(h: MeshHarness, provider, caller: str):
    address, options = node_target(provider, "270008")
    channel = grpc.aio.secure_channel(address, h.node_credentials(caller), options=options)
    stub = peer_pb2_grpc.PeerServiceStub(channel)
    reply = await stub.Negotiate(peer_pb2.NegotiateRequest(
        dataset_id="osaka-medical", offer_id="research-use", purpose="研究"), timeout=10)
    return channel, stub, reply


async def test_tampered_or_foreign_countersignature_is_refused(mesh):
    h, provider = mesh
    channel, stub, reply = await _negotiate_direct(h, provider, "kakogawa")
    assert reply.state == "AGREED"
    signed = SignedAgreement.from_json(json.loads(reply.signed_agreement_json))
    from mesh.keystore import NodeKeyStore
    both = signed.with_signature("consumer", NodeKeyStore(h.root / "kakogawa" / "tls"))
    doc = both.to_json()
    doc["agreement"]["purpose"] = "何にでも使う"
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Countersign(peer_pb2.CountersignRequest(
            signed_agreement_json=canonical_json(doc)), timeout=10)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "agreement_tampered" in exc.value.details()
    await channel.close()
    # another participant cannot countersign kakogawa's agreement
    address, options = node_target(provider, "270008")
    async with grpc.aio.secure_channel(address, h.node_credentials("himeji"),
                                       options=options) as other:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await peer_pb2_grpc.PeerServiceStub(other).Countersign(peer_pb2.CountersignRequest(
                signed_agreement_json=canonical_json(both.to_json())), timeout=10)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not_a_party" in exc.value.details()


async def test_peer_supplied_dataset_id_cannot_reach_the_filesystem(mesh):
    # One mesh for every hostile id (each case is its own call, checked on its own).
    h, provider = mesh
    address, options = node_target(provider, "270008")
    async with grpc.aio.secure_channel(address, h.node_credentials("kakogawa"),
                                       options=options) as ch:
        for bad_id in ("../../tls/node", "..", "a/b", "/etc/passwd", ".hidden"):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await peer_pb2_grpc.PeerServiceStub(ch).Negotiate(peer_pb2.NegotiateRequest(
                    dataset_id=bad_id, offer_id="x", purpose="研究"), timeout=10)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad_id
            assert "invalid_dataset_id" in exc.value.details(), bad_id
