"""Across meshes, a provider negotiates only under a permission that names the consumer's mesh;
it judges the consumer by its own mesh's participant record (fetched through the federation),
and the agreement names both parties mesh-qualified."""

from __future__ import annotations

import json

import grpc
import pytest
import pytest_asyncio
import yaml

from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

from .conftest import wait_for
from .federation_fixtures import REFRESH, NamedMesh, cross_credentials, node_address, stop
from .transfer_fixtures import DATASET_ID, dataset_doc, write_rows

# Both tests share one pair of meshes (two registries, two connectors): neither changes what
# the other reads (the first negotiates over a raw channel, the second through himeji's CLI).
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
ROWS = 120

FEDERATED_OFFER = {"id": "federated-research", "policy": {"permissions": [{
    "action": "use", "constraints": [
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "研究"},
        {"leftOperand": "mesh", "operator": "isAnyOf", "rightOperand": ["osaka", "hyogo"]},
        {"leftOperand": "consumerType", "operator": "eq", "rightOperand": "municipality"}]}]}}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def provider(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("federation-contracts")
    hyogo = NamedMesh(tmp_path / "hyogo", "hyogo", "兵庫県")
    osaka = NamedMesh(tmp_path / "osaka", "osaka", "大阪府")
    try:
        for mesh, node, pid in ((hyogo, "himeji", "282014"), (osaka, "osaka", "270008")):
            await mesh.init_registry()
            rc, _o, err = await mesh.cli("registry", "participant", "certify", "--data-dir",
                                         str(mesh.registry_dir), "--id", pid)
            assert rc == 0, err
            await mesh.start_registry()
            await mesh.enrol(node, pid)
        feed = osaka.root / "feed"
        feed.mkdir()
        write_rows(feed / "population.csv", 1, ROWS)
        doc = dataset_doc(feed / "population.csv")
        doc["offers"] = [*doc["offers"], FEDERATED_OFFER]
        path = feed / "dataset.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        rc, _o, err = await osaka.cli("connector", "dataset", "add", "--data-dir",
                                      str(osaka.root / "osaka"), "--file", str(path))
        assert rc == 0, err
        proc = await osaka.start_connector("osaka", "--crl-refresh", f"{REFRESH}s",
                                           "--heartbeat-interval", "1s")
        await hyogo.start_connector("himeji", "--crl-refresh", f"{REFRESH}s",
                                    "--heartbeat-interval", "1s")
        for mesh, other in ((hyogo, osaka), (osaka, hyogo)):
            rc, _o, err = await mesh.add(await other.export())
            assert rc == 0, err

        async def known():
            return (osaka.federated_at("osaka") == ["hyogo"]
                    and hyogo.federated_at("himeji") == ["osaka"]
                    and (await hyogo.federations())["osaka"]["status"] == "active")

        await wait_for(known, timeout=20, what="the federation active both sides")
        yield hyogo, osaka, proc
    finally:
        await stop(osaka, hyogo)


async def _negotiate(hyogo, osaka, proc, offer: str) -> peer_pb2.NegotiateResponse:
    address, options = node_address(proc, "osaka", "270008")
    async with grpc.aio.secure_channel(
            address, cross_credentials(hyogo, "himeji", osaka), options=options) as ch:
        return await peer_pb2_grpc.PeerServiceStub(ch).Negotiate(peer_pb2.NegotiateRequest(
            dataset_id=DATASET_ID, offer_id=offer, purpose="研究"), timeout=15)


async def test_a_federated_consumer_needs_an_offer_naming_its_mesh(provider):
    hyogo, osaka, proc = provider
    refused = await _negotiate(hyogo, osaka, proc, "research-use")
    assert refused.state == "TERMINATED"
    reason = json.loads(refused.reason_json)
    assert reason["counterparty"] == "urn:areamesh:mesh:hyogo:org:282014:node:main"
    [failure] = reason["decision"]["failures"]
    assert failure["leftOperand"] == "mesh" and failure["actual"] == "hyogo"

    agreed = await _negotiate(hyogo, osaka, proc, "federated-research")
    assert agreed.state == "AGREED", agreed.reason_json
    signed = json.loads(agreed.signed_agreement_json)
    assert signed["agreement"]["provider"] == "urn:areamesh:mesh:osaka:org:270008:node:main"
    assert signed["agreement"]["consumer"] == "urn:areamesh:mesh:hyogo:org:282014:node:main"


async def _notarisation(mesh: NamedMesh, digest: str) -> dict | None:
    from registry.store import RegistryStore, open_registry_db

    async with open_registry_db(mesh.registry_dir) as db:
        return await RegistryStore(db).notarisation(digest)


async def test_cross_mesh_agreement_is_notarised_at_both_registries(provider):
    hyogo, osaka, _proc = provider
    args = ("connector", "contract", "request", "--data-dir", str(hyogo.root / "himeji"),
            "--dataset", DATASET_ID, "--purpose", "研究", "--mesh", "osaka")
    rc, _out, err = await hyogo.cli(*args, "--offer", "research-use")
    assert rc == 1 and "mesh" in err and "連携先メッシュ" in err     # names no mesh: refused
    rc, out, err = await hyogo.cli(*args, "--offer", "federated-research")
    assert rc == 0 and "FINALIZED" in out, err
    rc, out, err = await hyogo.cli("connector", "contract", "list", "--data-dir",
                                   str(hyogo.root / "himeji"), "--json")
    assert rc == 0, err
    [row] = [r for r in json.loads(out) if r["state"] == "FINALIZED"]
    assert row["counterparty"] == "urn:areamesh:mesh:osaka:org:270008:node:main"
    digest = row["digest"]
    at_osaka, at_hyogo = await _notarisation(osaka, digest), await _notarisation(hyogo, digest)
    assert at_osaka and at_hyogo
    for note in (at_osaka, at_hyogo):
        assert note["provider"] == "urn:areamesh:mesh:osaka:org:270008:node:main"
        assert note["consumer"] == "urn:areamesh:mesh:hyogo:org:282014:node:main"

    # the consumer fetches from the provider in the other mesh; metered at both registries
    out = hyogo.root / "medical.ndjson"
    rc, stdout, err = await hyogo.cli("connector", "fetch", "--data-dir",
                                      str(hyogo.root / "himeji"), "--agreement", row["id"],
                                      "--out", str(out), "--json")
    assert rc == 0, err
    fetched = json.loads(stdout)
    assert fetched["records"] == ROWS
    assert len(out.read_text(encoding="utf-8").splitlines()) == ROWS

    async def metered():
        from registry.store import open_registry_db

        async with open_registry_db(osaka.registry_dir) as db:
            provided = await db.fetchall("SELECT records FROM usage_records WHERE agreement_id = ?",
                                         (row["id"],))
        async with open_registry_db(hyogo.registry_dir) as db:
            received = await db.fetchall(
                "SELECT records FROM usage_consumer_records WHERE agreement_id = ?", (row["id"],))
        return (provided and received
                and provided[0][0] == received[0][0] == fetched["records"])

    await wait_for(metered, timeout=20, what="the transfer to be metered at both registries")

    # a dataset of a mesh never federated
    rc, _out, err = await hyogo.cli("connector", "contract", "request", "--data-dir",
                                    str(hyogo.root / "himeji"), "--dataset", DATASET_ID,
                                    "--offer", "federated-research", "--purpose", "研究",
                                    "--mesh", "kyoto", "--registry-wait", "2s")
    assert rc != 0 and "kyoto" in err
